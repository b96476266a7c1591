#pragma once
// The contract between the hypervisor and a guest it starts in 64-bit mode
// (docs/guest-abi.md). Shared by the hypervisor (kernel/, vmx/) and the guest
// runtime (guests/). Versioned: fields are only appended; a guest checks
// `version` and `size` before reading.

#include <stddef.h>
#include <stdint.h>

namespace hv::abi {

// ---------------------------------------------------------------------------
// Guest-physical layout of a 64-bit guest. RAM starts at GPA 0 and is
// `memory_bytes` long; the hypervisor writes the first 1 MiB, the image is
// loaded from its ELF program headers (all PT_LOAD p_paddr in [kImageBase, RAM end)).
inline constexpr uint64_t kPml4Gpa = 0x1000;        // guest page tables (identity map of RAM)
inline constexpr uint64_t kPdptGpa = 0x2000;
inline constexpr uint64_t kPdGpa = 0x3000;          // one page directory per GiB, up to kMaxGuestGib
inline constexpr uint64_t kMaxGuestGib = 4;
inline constexpr uint64_t kBootInfoGpa = 0x8000;    // struct BootInfo
inline constexpr uint64_t kStackTopGpa = 0x80000;   // initial RSP; 0x10000-0x80000 is stack
inline constexpr uint64_t kImageBase = 0x100000;    // lowest address a 64-bit image may load at
// 16- and 32-bit guests (mode = "real16"/"protected32") may load from 64 KiB:
// a real-mode entry point must be below 1 MiB. Their initial stack is below
// kRealStackTop (real16, SS = 0) or at kStackTopGpa (protected32).
inline constexpr uint64_t kLowImageBase = 0x10000;
inline constexpr uint64_t kRealStackTop = 0xFFF0;

// ---------------------------------------------------------------------------
// Boot information, at kBootInfoGpa; RDI holds its address and RSI kBootMagic
// when the guest's first instruction runs.
inline constexpr uint64_t kBootMagic = 0x31424F4F42564800ull;  // "\0HVBOOB1" little-endian
inline constexpr uint32_t kBootInfoVersion = 2;  // 2: args appended

struct BootInfo {
    uint32_t version;         // kBootInfoVersion
    uint32_t size;            // sizeof(BootInfo) of the hypervisor that wrote it
    uint32_t hypercall_abi;   // kHypercallAbiVersion
    uint32_t guest_id;        // index of the guest in the configuration
    char name[32];            // NUL-terminated guest name
    uint64_t memory_bytes;    // RAM size (GPA 0 .. memory_bytes)
    uint64_t image_start;     // lowest GPA of the loaded image
    uint64_t image_end;       // end of the loaded image (exclusive, page aligned)
    uint64_t tsc_hz;          // TSC frequency as the hypervisor calibrated it
    uint32_t cpu_count;       // vCPUs of this guest
    uint32_t restart_count;   // how many times this guest has been restarted
    uint16_t console_port;    // 16550 UART I/O base (0x3F8)
    uint16_t reserved0;
    uint32_t reserved1;
    // Version 2: the guest's `args` from the configuration (docs/config.md),
    // NUL-terminated, "" when none. The guest parses it; the hypervisor does not.
    char args[128];
};
inline constexpr uint32_t kBootInfoV1Size = 96;
static_assert(sizeof(BootInfo) == 224);
static_assert(offsetof(BootInfo, name) == 16);
static_assert(offsetof(BootInfo, memory_bytes) == 48);
static_assert(offsetof(BootInfo, console_port) == 88);
static_assert(offsetof(BootInfo, args) == kBootInfoV1Size);

// ---------------------------------------------------------------------------
// Hypercalls: VMCALL with RAX = call number, arguments in RDI, RSI, RDX.
// On return RAX = status (0 or a negative Status), RDX = result value.
// All other registers are preserved.
inline constexpr uint32_t kHypercallAbiVersion = 2;  // 2: vcpu_start

enum class Hypercall : uint64_t {
    abi_version = 0,   // -> RDX = kHypercallAbiVersion
    console_write = 1, // RDI = GPA of bytes, RSI = length (<= 4096) -> RDX = bytes taken
    exit = 2,          // RDI = exit code; the guest stops (0 = clean, else failure); does not return
    tsc_hz = 3,        // -> RDX = TSC frequency
    yield = 4,         // give up the CPU until the next timer tick (returns 0)
    vcpu_start = 5,    // RDI = vCPU index (1..cpu_count-1), RSI = RIP, RDX = RSP: start that vCPU in
                       // 64-bit mode with the caller's CR0/CR3/CR4/EFER; it begins with RDI = index.
                       // Only from 64-bit mode; each vCPU starts once per guest run.
};

enum class Status : int64_t {
    ok = 0,
    unknown_call = -1,    // call number not defined in this ABI version
    invalid_argument = -2,
    fault = -3,           // a GPA argument is outside the guest's RAM
};

// ---------------------------------------------------------------------------
// CPUID as the guest sees it: leaf 1 ECX bit 31 set (hypervisor present), VMX
// (ECX bit 5) clear; leaf 0x40000000 returns EAX = highest hypervisor leaf and
// EBX, ECX, EDX = kCpuidSignature.
inline constexpr uint32_t kCpuidHypervisorBase = 0x40000000;
inline constexpr char kCpuidSignature[13] = "HvPartition!";
inline constexpr uint32_t kCpuidHypervisorMaxLeaf = 0x40000001;  // EAX = hypercall ABI version

}  // namespace hv::abi
