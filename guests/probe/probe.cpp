// probe: asserts what the guest sees of the hypervisor's CPUID, MSR, port I/O,
// hypercall and memory contract (kernel/abi/guest_abi.hpp). One line per check,
// then a summary; the exit code is the number of failed checks.
//
//   guest.check name=<check> result=pass|fail expected=<value> got=<value>
//   guest.probe passed=N failed=M
//
// The hypercall check `hc_console_write_ok` also prints
//   guest.console_write via=hypercall
// through the console_write hypercall itself.

#include "guests/runtime/console.hpp"
#include "guests/runtime/exception.hpp"
#include "guests/runtime/hypercall.hpp"
#include "guests/runtime/runtime.hpp"
#include "guests/runtime/x86.hpp"

namespace {

using hv::abi::Status;

// A port nobody emulates or passes through: the LSR of COM2 (0x2F8 + 5). An
// unclaimed ISA port reads as all ones, as on real hardware.
constexpr uint16_t kUnknownPort = 0x2F8 + 5;
// An AMD-model-specific MSR number no Intel CPU defines.
constexpr uint32_t kMsrUnknown = 0xC0011234;
constexpr uint64_t kUnknownHypercall = 0x7777;

size_t hvg_strlen(const char* s) {
    size_t n = 0;
    while (s[n]) ++n;
    return n;
}

class Probe {
  public:
    void check(const char* name, bool pass, const char* expected, const char* got) {
        check(name, pass, expected, got, hvg_strlen(got));
    }

    // `got` may hold any bytes: Event quotes and \x-escapes what needs it.
    void check(const char* name, bool pass, const char* expected, const char* got, size_t got_len) {
        hvg::Event("check")
            .s("name", name)
            .s("result", pass ? "pass" : "fail")
            .s("expected", expected)
            .s("got", got, got_len)
            .emit();
        (pass ? passed_ : failed_)++;
    }

    void check_eq(const char* name, uint64_t expected, uint64_t got) {
        char e[24], g[24];
        hv::format(e, sizeof e, "0x%llx", static_cast<unsigned long long>(expected));
        hv::format(g, sizeof g, "0x%llx", static_cast<unsigned long long>(got));
        check(name, expected == got, e, g);
    }

    // A hypercall that must fail with `expected`.
    void check_status(const char* name, Status expected, const hvg::HypercallResult& r) {
        check(name, r.status == expected, hvg::status_name(expected), hvg::status_name(r.status));
    }

    // A hypercall that must succeed with value `expected`.
    void check_ok_value(const char* name, uint64_t expected, const hvg::HypercallResult& r) {
        if (!r.ok()) {
            char e[24];
            hv::format(e, sizeof e, "0x%llx", static_cast<unsigned long long>(expected));
            check(name, false, e, hvg::status_name(r.status));
            return;
        }
        check_eq(name, expected, r.value);
    }

    // RDMSR of an MSR the hypervisor must not let the guest read: #GP expected.
    void check_msr_gp(const char* name, uint32_t msr) {
        hvg::MsrResult r = hvg::rdmsr_safe(msr);
        char g[24] = "";
        if (r.ok) hv::format(g, sizeof g, "0x%llx", static_cast<unsigned long long>(r.value));
        check(name, !r.ok, "gp", r.ok ? g : "gp");
    }

    int passed() const { return passed_; }
    int failed() const { return failed_; }

  private:
    int passed_ = 0;
    int failed_ = 0;
};

// Memory accesses that survive a #PF: the hook skips exactly the 2-byte
// `mov (%rdi),%al` (8A 07) or `mov %al,(%rdi)` (88 07) below while armed.
constinit volatile bool g_pf_armed = false;
constinit volatile bool g_pf_seen = false;

bool pf_fixup(hvg::ExceptionFrame& f) {
    auto* code = reinterpret_cast<const volatile uint8_t*>(f.rip);
    if (!g_pf_armed || (code[0] != 0x8A && code[0] != 0x88) || code[1] != 0x07) return false;
    f.rip += 2;
    g_pf_seen = true;
    g_pf_armed = false;
    return true;
}

// Reads the byte at `gpa` and writes it back; false if either access faulted.
bool touch_byte(uint64_t gpa) {
    g_pf_seen = false;
    g_pf_armed = true;
    uint8_t v = 0;
    asm volatile("movb (%%rdi), %%al" : "+a"(v) : "D"(gpa) : "memory");
    if (!g_pf_seen) asm volatile("movb %%al, (%%rdi)" ::"a"(v), "D"(gpa) : "memory");
    g_pf_armed = false;
    return !g_pf_seen;
}

void probe_cpuid(Probe& p) {
    hvg::CpuidResult l1 = hvg::cpuid(1);
    p.check_eq("cpuid1_ecx_vmx_clear", 0, (l1.ecx & hvg::kCpuid1EcxVmx) ? 1 : 0);
    p.check_eq("cpuid1_ecx_hypervisor_set", 1, (l1.ecx & hvg::kCpuid1EcxHypervisor) ? 1 : 0);

    hvg::CpuidResult base = hvg::cpuid(hv::abi::kCpuidHypervisorBase);
    char sig[13];
    const uint32_t regs[3] = {base.ebx, base.ecx, base.edx};
    for (int r = 0; r < 3; ++r)
        for (int b = 0; b < 4; ++b) sig[r * 4 + b] = static_cast<char>(regs[r] >> (8 * b));
    sig[12] = '\0';
    bool sig_ok = true;
    for (int k = 0; k < 12; ++k) sig_ok = sig_ok && sig[k] == hv::abi::kCpuidSignature[k];
    p.check("cpuid_hv_signature", sig_ok, hv::abi::kCpuidSignature, sig, 12);

    char got[24] = "";
    hv::format(got, sizeof got, "0x%x", base.eax);
    p.check("cpuid_hv_max_leaf", base.eax >= hv::abi::kCpuidHypervisorMaxLeaf, ">=0x40000001", got);

    hvg::CpuidResult abi = hvg::cpuid(hv::abi::kCpuidHypervisorMaxLeaf);
    p.check_eq("cpuid_hv_abi_version", hv::abi::kHypercallAbiVersion, abi.eax);
}

void probe_hypercalls(Probe& p, const hv::abi::BootInfo& info) {
    p.check_ok_value("hc_abi_version", hv::abi::kHypercallAbiVersion, hvg::hc::abi_version());
    p.check_status("hc_unknown_call", Status::unknown_call, hvg::hypercall(kUnknownHypercall));
    // A buffer that starts exactly at the end of RAM, and one whose end wraps
    // around 2^64 (catches `gpa + len <= ram` overflow bugs).
    p.check_status("hc_console_write_beyond_ram", Status::fault, hvg::hc::console_write(info.memory_bytes, 16));
    p.check_status("hc_console_write_wrapping", Status::fault, hvg::hc::console_write(~0ull - 7, 32));

    static constexpr char kLine[] = "guest.console_write via=hypercall\n";
    constexpr uint64_t kLen = sizeof kLine - 1;
    p.check_ok_value("hc_console_write_ok", kLen, hvg::hc::console_write(reinterpret_cast<uint64_t>(kLine), kLen));

    p.check_ok_value("hc_tsc_hz", info.tsc_hz, hvg::hc::tsc_hz());
    p.check_status("hc_yield", Status::ok, hvg::hc::yield());
}

void probe_io_and_msrs(Probe& p) {
    p.check_eq("pio_unknown_port_reads_ff", 0xFF, hvg::inb(kUnknownPort));

    p.check_msr_gp("msr_feature_control_gp", hvg::kMsrIa32FeatureControl);
    p.check_msr_gp("msr_vmx_basic_gp", hvg::kMsrIa32VmxBasic);
    p.check_msr_gp("msr_unknown_gp", kMsrUnknown);

    hvg::MsrResult tsc = hvg::rdmsr_safe(hvg::kMsrIa32Tsc);
    char got[24] = "";
    if (tsc.ok) hv::format(got, sizeof got, "0x%llx", static_cast<unsigned long long>(tsc.value));
    p.check("msr_tsc_readable", tsc.ok && tsc.value != 0, "nonzero", tsc.ok ? got : "gp");
}

// Control registers and XCR0 go through the hypervisor's CR and XSETBV exit
// handlers. A #GP from one of the instructions below is caught by skipping it
// (its length is known: the asm pins the register operand).
constinit volatile bool g_gp_armed = false;
constinit volatile bool g_gp_seen = false;
constinit volatile uint8_t g_gp_skip = 0;

bool gp_fixup(hvg::ExceptionFrame& f) {
    if (!g_gp_armed) return false;
    f.rip += g_gp_skip;
    g_gp_seen = true;
    g_gp_armed = false;
    return true;
}

template <typename F>
bool raises_gp(uint8_t insn_len, F&& op) {
    hvg::set_exception_hook(13, gp_fixup);
    g_gp_seen = false;
    g_gp_skip = insn_len;
    g_gp_armed = true;
    op();
    g_gp_armed = false;
    return g_gp_seen;
}

void probe_control_registers(Probe& p) {
    constexpr uint64_t kCr4Vmxe = 1ull << 13, kCr4Osfxsr = 1ull << 9, kCr4Osxsave = 1ull << 18;
    uint64_t cr4;
    asm volatile("mov %%cr4, %0" : "=a"(cr4));
    p.check("cr4_vmxe_hidden", (cr4 & kCr4Vmxe) == 0, "0", (cr4 & kCr4Vmxe) ? "1" : "0");
    // mov %rax, %cr4 is 0F 22 E0 (3 bytes).
    bool gp = raises_gp(3, [&] { asm volatile("mov %0, %%cr4" ::"a"(cr4 | kCr4Vmxe) : "memory"); });
    p.check("cr4_set_vmxe_gp", gp, "gp", gp ? "gp" : "accepted");
    gp = raises_gp(3, [&] { asm volatile("mov %0, %%cr4" ::"a"(cr4 | kCr4Osfxsr) : "memory"); });
    uint64_t after;
    asm volatile("mov %%cr4, %0" : "=a"(after));
    p.check("cr4_set_osfxsr", !gp && (after & kCr4Osfxsr), "set", gp ? "gp" : (after & kCr4Osfxsr) ? "set" : "clear");
    // CR8 is virtual: a value round-trips; one above 15 is refused.
    // mov %rax, %cr8 is 44 0F 22 C0 (4 bytes).
    uint64_t cr8 = 5;
    asm volatile("mov %0, %%cr8\n mov %%cr8, %0" : "+a"(cr8)::"memory");
    p.check_eq("cr8_roundtrip", 5, cr8);
    gp = raises_gp(4, [&] { asm volatile("mov %0, %%cr8" ::"a"(uint64_t{16}) : "memory"); });
    p.check("cr8_above_15_gp", gp, "gp", gp ? "gp" : "accepted");
    asm volatile("mov %0, %%cr8" ::"a"(uint64_t{0}) : "memory");

    // XSETBV: XCR0 = x87|SSE is accepted, XCR0 = 0 (no x87) is refused.
    uint32_t ecx1 = 0;
    asm volatile("cpuid" : "=c"(ecx1) : "a"(1), "c"(0) : "ebx", "edx");
    if (!(ecx1 & (1u << 26))) {
        p.check("xsetbv_valid", true, "no_xsave", "no_xsave");
        return;
    }
    asm volatile("mov %0, %%cr4" ::"a"(after | kCr4Osxsave) : "memory");
    // xsetbv is 0F 01 D1 (3 bytes).
    gp = raises_gp(3, [&] { asm volatile("xsetbv" ::"c"(0), "a"(3), "d"(0) : "memory"); });
    uint32_t lo = 0, hi = 0;
    if (!gp) asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    p.check("xsetbv_valid", !gp && lo == 3 && hi == 0, "0x3", gp ? "gp" : lo == 3 ? "0x3" : "other");
    gp = raises_gp(3, [&] { asm volatile("xsetbv" ::"c"(0), "a"(0), "d"(0) : "memory"); });
    p.check("xsetbv_no_x87_gp", gp, "gp", gp ? "gp" : "accepted");
}

void probe_boot_state(Probe& p, const hv::abi::BootInfo& info) {
    p.check_eq("bootinfo_hypercall_abi", hv::abi::kHypercallAbiVersion, info.hypercall_abi);
    p.check_eq("bootinfo_console_port", 0x3F8, info.console_port);
    p.check_eq("bootinfo_image_start", hvg::image_start(), info.image_start);
    p.check_eq("bootinfo_image_end", hvg::image_end(), info.image_end);
    char got[24] = "";
    hv::format(got, sizeof got, "%u", info.cpu_count);
    p.check("bootinfo_cpu_count", info.cpu_count >= 1, ">=1", got);
    p.check_eq("cr3_page_tables_at_kPml4Gpa", hv::abi::kPml4Gpa, hvg::read_cr3() & 0x000F'FFFF'FFFF'F000ull);

    // RAM is identity mapped up to memory_bytes: the last byte and the first
    // byte above this image are readable and writable (a #PF is reported as a
    // failed check, not as a crash).
    hvg::set_exception_hook(hvg::kVectorPf, pf_fixup);
    bool ok = touch_byte(info.memory_bytes - 1);
    p.check("ram_last_byte_rw", ok, "rw", ok ? "rw" : "pf");
    if (hvg::image_end() < info.memory_bytes) {
        ok = touch_byte(hvg::image_end());
        p.check("ram_after_image_rw", ok, "rw", ok ? "rw" : "pf");
    }
    hvg::set_exception_hook(hvg::kVectorPf, nullptr);
}

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    hvg::Event("probe.start").s("name", info->name).u("restart", info->restart_count).emit();
    Probe p;
    probe_cpuid(p);
    probe_hypercalls(p, *info);
    probe_io_and_msrs(p);
    probe_boot_state(p, *info);
    probe_control_registers(p);
    hvg::Event("probe").u("passed", p.passed()).u("failed", p.failed()).emit();
    return p.failed();
}
