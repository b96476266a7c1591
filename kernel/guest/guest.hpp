#pragma once
// A guest partition: its configuration, its RAM and EPT, its vCPU state, its
// console, its counters and its life (start, crash record, restarts).

#include <stddef.h>
#include <stdint.h>

#include "kernel/abi/guest_abi.hpp"
#include "kernel/config/config.hpp"
#include "kernel/guest/console_ring.hpp"
#include "kernel/guest/elf_loader.hpp"
#include "kernel/guest/guest_memory.hpp"
#include "kernel/lib/result.hpp"
#include "kernel/lib/spinlock.hpp"
#include "kernel/vdev/vlapic.hpp"

namespace hv::guest {

enum class GuestState : uint32_t {
    invalid = 0,      // configuration rejected: never runs
    ready,            // memory loaded, waiting for its CPU to launch it
    running,          // its CPU is in VMX non-root operation for it (or handling an exit)
    stopped,          // stopped by the hypervisor (crash) or by itself (exit hypercall)
    waiting_restart,  // stopped; the restart policy will start it again at restart_tsc
    given_up,         // stopped for good (policy never, or restart limit reached)
    parked,           // stopped by an operator action; `start` runs it again
};
const char* state_name(GuestState s);

inline constexpr uint16_t kNoExit = 0xFFFF;

// Why a guest stopped: the exit that ended it and where.
struct StopRecord {
    const char* reason;   // "ept_violation", "triple_fault", "exit", "entry_failed", ...
    bool failure;         // counts for the on-failure policy; exit code 0 is not a failure
    uint16_t exit_reason; // basic VM-exit reason, kNoExit when the stop was not caused by an exit
    uint64_t rip;
    uint64_t gpa;         // EPT violation: guest-physical address
    uint64_t qualification;
    int64_t code;         // exit hypercall's code, or the VM-instruction error
    uint64_t tsc;
};

struct Counters {
    uint64_t exits;
    uint64_t by_reason[66];
    uint64_t msr_denied;      // RDMSR/WRMSR outside the allow-list (#GP injected)
    uint64_t io_unknown_in;   // reads of ports nothing emulates (all-ones returned)
    uint64_t io_dropped_out;  // writes to such ports (dropped)
    uint64_t hypercalls;
    uint64_t hypercall_errors;
    uint64_t injected;        // exceptions injected into the guest
    uint64_t timer_ticks;     // VMX-preemption timer exits
    uint64_t nmis;            // NMIs that arrived while the guest ran (the hypervisor's)
    uint64_t nmis_injected;   // the guest's own NMIs (IPIs, MSIs) delivered to it
    uint64_t interrupts;      // interrupts injected from the virtual APIC
    uint64_t ipis;            // IPIs this vCPU sent through its ICR
    uint64_t apic_errors;     // x2APIC MSR accesses refused with #GP
    uint64_t mmio;            // device-memory accesses emulated
    uint64_t host_ticks;      // TSC ticks from VM exits to the next entries: the hypervisor's share
    uint64_t ticks_by_reason[66];  // the same, per basic exit reason
};

// Writes the 64-bit start state into guest RAM (zeroed first): identity page
// tables at kPml4Gpa, BootInfo at kBootInfoGpa, the image's segments. Pure
// except for the bytes it writes through `mem`.
Result<void> load_guest_image(const GuestMemory& mem, const ElfImage& elf, const uint8_t* image, size_t image_size,
                              const abi::BootInfo& info);

// General registers of a vCPU in GPR-encoding order (0 = RAX ... 15 = R15;
// slot 4 unused, the guest RSP lives in the VMCS), then CR2. The layout is
// shared with vmx/vmx_entry.asm.
struct GuestRegs {
    uint64_t gpr[16];
    uint64_t cr2;
};
static_assert(sizeof(GuestRegs) == 17 * 8);

// Where a vCPU starts (docs/guest-abi.md "Start states" and "vCPUs").
enum class VcpuStart : uint8_t {
    image,  // vCPU 0: the configured mode at the image's entry point
    long64, // vcpu_start hypercall: 64-bit mode with the caller's paging, at rip/rsp
    sipi,   // INIT-SIPI through the virtual x2APIC: real mode at vector << 12
};

// Life of one vCPU inside its guest's life. Transitions are atomic (CAS):
// another vCPU starts an AP, the AP's own CPU claims it, the boot CPU resets
// it for a restart.
enum class VcpuRun : uint32_t {
    offline,        // not part of the guest (or guest not launched)
    waiting_start,  // an AP waiting for vcpu_start / INIT-SIPI
    runnable,       // asked to start: its CPU will claim it
    running,        // its CPU is inside run_vcpu() for it
    exited,         // left run_vcpu(); the guest is stopping
};

struct Guest;
struct GuestDevices;

struct Vcpu {
    Guest* guest = nullptr;
    uint32_t index = 0;                // vCPU number in the guest = its APIC ID
    uint32_t cpu_index = 0;            // physical CPU (PerCpu index) it runs on
    uint16_t vpid = 0;
    uint64_t vmcs_phys = 0;
    VcpuRun run = VcpuRun::offline;
    GuestRegs regs{};
    bool launched = false;
    bool halted = false;               // in HLT activity state
    bool yielding = false;             // asleep in the yield hypercall until the next tick
    // Start request, written by whoever makes it runnable.
    VcpuStart start = VcpuStart::image;
    uint64_t start_rip = 0, start_rsp = 0, start_cr3 = 0, start_cr0 = 0, start_cr4 = 0, start_efer = 0;
    uint64_t first_entry_tsc = 0;      // TSC right before its first VM entry
    // Its local APIC, in x2APIC mode (docs/guest-abi.md "Interrupts"). Other
    // CPUs only ever call accept_interrupt()/accept_nmi() on it.
    vdev::VirtualLapic lapic;
    Counters counters{};               // written only by this vCPU's CPU
};

struct Guest {
    uint32_t id = 0;
    config::GuestConfig cfg{};
    GuestState state = GuestState::invalid;
    bool stop_requested = false;       // set by any CPU; checked by every vCPU on every exit
    bool stop_claimed = false;         // the first vCPU (or the boot CPU) to stop it writes `stop`
    uint32_t active_vcpus = 0;         // vCPUs inside run_vcpu(); the last one out marks it stopped
    bool park_on_stop = false;         // an operator stop: no restart policy, state parked
    bool start_after_park = false;     // operator restart: start again once parked

    // Memory: one contiguous, 2 MiB-aligned block of host RAM, guest-physical 0.
    uint64_t ram_hpa = 0;
    uint64_t ram_bytes = 0;
    GuestMemory mem;
    uint64_t eptp = 0;
    uint64_t ept_tables = 0;           // pages used by the EPT
    const uint8_t* image = nullptr;    // the boot module: kept pristine for restarts
    uint64_t image_size = 0;
    ElfImage elf{};
    uint64_t tsc_hz = 0;

    // vCPUs: vcpus[i] runs on physical CPU cfg.cpus[i].
    Vcpu vcpus[config::kMaxGuestCpus];
    uint32_t vcpu_count = 0;

    // Lifecycle.
    uint32_t restart_count = 0;
    uint32_t consecutive_restarts = 0;
    uint64_t restart_tsc = 0;
    uint64_t start_tsc = 0;            // TSC when the CPUs were told to launch it
    StopRecord stop{};
    const char* stop_detail = nullptr; // hypervisor-side detail (VMX error name, ...)
    uint32_t stop_vcpu = 0;            // which vCPU stopped it
    bool stop_reported = false;       // (all-zero defaults keep g_guests in .bss)
    bool running_reported = false;

    GuestDevices* devices = nullptr;   // PCI bus and network ports (guest_devices.cpp)
    uint64_t nmis_dropped = 0;         // atomic: NMIs sent to vCPUs not started yet (send_nmi)

    ConsoleRing console;
    Spinlock uart_lock;                // the UART is one device shared by the guest's vCPUs
    Spinlock start_lock;               // vCPU start requests (one starter at a time)
    uint8_t uart_scratch = 0;          // the UART's scratch register
    uint8_t uart_lcr = 0;

    // Sum of the vCPUs' counters (for reports; racy reads of live counters are fine).
    Counters total_counters() const;
};


// The wake-up IPI to v's CPU: it leaves its idle HLT (a vCPU to start) or the
// guest (a VM exit), and then looks at v's state.
void wake_cpu(const Vcpu& v);
// News for v (an interrupt, a stop request): only a vCPU inside the guest on
// another CPU needs the IPI to exit; any other sees it at its next entry.
void kick(const Vcpu& v);
// An NMI for v from the guest itself (an NMI IPI, an MSI with NMI delivery):
// latched in v's APIC and v kicked, so the NMI reaches it even in HLT. A vCPU
// that has not been started yet is in wait-for-SIPI, which blocks NMIs (SDM
// Vol. 3C, VM entry's event-blocking rules); its start begins from a fresh
// state without an IDT, so the NMI is dropped and counted
// (Guest::nmis_dropped) instead of held. False when dropped.
bool send_nmi(Vcpu& v);

}  // namespace hv::guest
