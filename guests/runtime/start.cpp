// Checked boot: everything the hypervisor promises in kernel/abi/guest_abi.hpp
// that the guest can see is verified here before guest_main runs. A broken
// promise the guest cannot work around stops it with exit code 1 after a
// `guest.boot_error` line; anything merely unexpected is reported as
// `guest.boot_warning` and the boot goes on.

#include "guests/runtime/runtime.hpp"

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"
#include "guests/runtime/x86.hpp"

extern "C" char __image_start[];
extern "C" char __image_end[];

namespace hvg {

namespace {

using hv::abi::BootInfo;

constinit BootInfo g_info = {};

// The guest RAM limit of this ABI; a BootInfo pointer beyond it cannot be mapped.
constexpr uint64_t kMaxGuestBytes = hv::abi::kMaxGuestGib << 30;

[[noreturn]] void boot_error(const char* what, uint64_t expected, uint64_t got) {
    Event("boot_error").s("what", what).x("expected", expected).x("got", got).emit();
    hc::exit(1);
}

void boot_warning(const char* what, uint64_t expected, uint64_t got) {
    Event("boot_warning").s("what", what).x("expected", expected).x("got", got).emit();
}

}  // namespace

const BootInfo& boot_info() {
    return g_info;
}

void exit(uint64_t code) {
    hc::exit(code);
}

uint64_t image_start() {
    return reinterpret_cast<uint64_t>(__image_start);
}
uint64_t image_end() {
    return reinterpret_cast<uint64_t>(__image_end);
}

}  // namespace hvg

// Called once by _start (entry.asm) with the registers the hypervisor set:
// RDI (BootInfo address), RSI (magic) and RSP at the first instruction.
extern "C" int hvg_start(uint64_t info_gpa, uint64_t magic, uint64_t entry_rsp) {
    using namespace hvg;
    using hv::abi::BootInfo;

    if (magic != hv::abi::kBootMagic) boot_error("bad_boot_magic", hv::abi::kBootMagic, magic);
    if (info_gpa == 0 || info_gpa % alignof(BootInfo) != 0 || info_gpa + sizeof(BootInfo) > kMaxGuestBytes)
        boot_error("bad_boot_info_address", hv::abi::kBootInfoGpa, info_gpa);
    if (info_gpa != hv::abi::kBootInfoGpa) boot_warning("boot_info_address", hv::abi::kBootInfoGpa, info_gpa);

    // Copy first, then validate the copy: what is checked is what is used.
    const auto* src = reinterpret_cast<const volatile uint8_t*>(info_gpa);
    auto* dst = reinterpret_cast<uint8_t*>(&g_info);
    for (size_t k = 0; k < sizeof(BootInfo); ++k) dst[k] = src[k];

    if (g_info.version < hv::abi::kBootInfoVersion)
        boot_error("bad_boot_info_version", hv::abi::kBootInfoVersion, g_info.version);
    if (g_info.size < sizeof(BootInfo)) boot_error("bad_boot_info_size", sizeof(BootInfo), g_info.size);
    console_set_port(g_info.console_port);

    if (g_info.name[sizeof g_info.name - 1] != '\0') {
        boot_warning("name_not_terminated", 0, static_cast<uint8_t>(g_info.name[sizeof g_info.name - 1]));
        g_info.name[sizeof g_info.name - 1] = '\0';
    }
    if (g_info.args[sizeof g_info.args - 1] != '\0') {
        boot_warning("args_not_terminated", 0, static_cast<uint8_t>(g_info.args[sizeof g_info.args - 1]));
        g_info.args[sizeof g_info.args - 1] = '\0';
    }
    if (g_info.memory_bytes < image_end()) boot_error("memory_below_image_end", image_end(), g_info.memory_bytes);
    if (g_info.memory_bytes > kMaxGuestBytes) boot_warning("memory_above_abi_max", kMaxGuestBytes, g_info.memory_bytes);
    if (g_info.hypercall_abi != hv::abi::kHypercallAbiVersion)
        boot_warning("hypercall_abi", hv::abi::kHypercallAbiVersion, g_info.hypercall_abi);
    if (g_info.image_start != image_start()) boot_warning("image_start", image_start(), g_info.image_start);
    if (g_info.image_end != image_end()) boot_warning("image_end", image_end(), g_info.image_end);
    if (g_info.cpu_count == 0) boot_warning("cpu_count", 1, 0);
    if (g_info.console_port != kDefaultConsolePort)
        boot_warning("console_port", kDefaultConsolePort, g_info.console_port);
    if (entry_rsp != hv::abi::kStackTopGpa) boot_warning("entry_rsp", hv::abi::kStackTopGpa, entry_rsp);

    // Long mode with 4-level paging, as the ABI promises (we already run 64-bit
    // code, so a failure here means the state is not what the hypervisor claims).
    uint64_t cr0 = read_cr0(), cr4 = read_cr4();
    if ((cr0 & (kCr0Pe | kCr0Pg)) != (kCr0Pe | kCr0Pg)) boot_warning("cr0_pe_pg", kCr0Pe | kCr0Pg, cr0);
    if (!(cr4 & kCr4Pae) || (cr4 & kCr4La57)) boot_warning("cr4_pae_not_la57", kCr4Pae, cr4);

#if HVG_QEMU_HARNESS
    // entry.asm's exit is a VMCALL, which plain QEMU does not have.
    hc::exit(static_cast<uint64_t>(guest_main(&g_info)));
#else
    return guest_main(&g_info);
#endif
}
