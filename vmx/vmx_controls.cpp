#include "vmx/vmx_controls.hpp"

#include <stddef.h>

namespace hv::vmx {

namespace {

struct Want {
    uint32_t bit;
    bool required;       // refuse the CPU without it
    const char* missing; // error detail when required and unavailable
};

// Bit-by-bit requests so that the error names the exact missing control.
Result<uint32_t> compute(uint64_t cap, const Want* wants, size_t n) {
    uint32_t allowed0 = static_cast<uint32_t>(cap);
    uint32_t allowed1 = static_cast<uint32_t>(cap >> 32);
    uint32_t value = allowed0;  // default-1 bits the CPU insists on
    for (size_t i = 0; i < n; ++i) {
        if (allowed1 & wants[i].bit) value |= wants[i].bit;
        else if (wants[i].required) return make_error(Errc::unsupported, wants[i].missing, wants[i].bit);
    }
    return value & allowed1;
}

template <size_t N>
Result<uint32_t> compute(uint64_t cap, const Want (&wants)[N]) {
    return compute(cap, wants, N);
}

}  // namespace

Result<uint32_t> adjust_controls(uint64_t capability_msr, uint32_t wanted, uint32_t required, const char* what) {
    uint32_t allowed0 = static_cast<uint32_t>(capability_msr);
    uint32_t allowed1 = static_cast<uint32_t>(capability_msr >> 32);
    if (required & ~allowed1) return make_error(Errc::unsupported, what, required & ~allowed1);
    return (wanted | required | allowed0) & allowed1;
}

Result<VmcsControls> compute_controls(const RawCaps& raw) {
    if (!raw.cpuid_vmx) return make_error(Errc::unsupported, "CPU has no VMX");
    // With BASIC bit 55 the TRUE_* MSRs report which default-1 controls may be 0
    // (e.g. CR3 load/store exiting, pointless with EPT). SDM Vol. 3D §A.2.
    bool true_ctls = (raw.basic & kBasicTrueCtls) != 0;
    uint64_t pin_cap = true_ctls ? raw.true_pinbased : raw.pinbased;
    uint64_t proc_cap = true_ctls ? raw.true_procbased : raw.procbased;
    uint64_t exit_cap = true_ctls ? raw.true_exit : raw.exit;
    uint64_t entry_cap = true_ctls ? raw.true_entry : raw.entry;

    static constexpr Want kPin[] = {
        // Host interrupts (IPIs that stop or restart a guest) must reach the hypervisor.
        {pin::EXTERNAL_INTERRUPT_EXITING, true, "pin control 'external-interrupt exiting' unavailable"},
        // The CPU's NMIs belong to the hypervisor (watchdog, crash broadcast), never to a guest.
        {pin::NMI_EXITING, true, "pin control 'NMI exiting' unavailable"},
        // A guest's own NMIs (IPIs, MSIs) are injected, and the CPU tracks its NMI
        // blocking up to its IRET; without it an NMI handler could be re-entered.
        {pin::VIRTUAL_NMIS, true, "pin control 'virtual NMIs' unavailable"},
        // A periodic exit even from a guest spinning with interrupts off, so it can be stopped.
        {pin::ACTIVATE_PREEMPTION_TIMER, true, "pin control 'VMX-preemption timer' unavailable"},
    };
    static constexpr Want kProc[] = {
        // A halted guest gives its CPU back to the hypervisor.
        {proc::HLT_EXITING, true, "processor control 'HLT exiting' unavailable"},
        // Port I/O is denied by default and emulated (UART) through the bitmaps.
        {proc::USE_IO_BITMAPS, true, "processor control 'use I/O bitmaps' unavailable"},
        // MSR access goes through an allow-list; everything else is intercepted.
        {proc::USE_MSR_BITMAPS, true, "processor control 'use MSR bitmaps' unavailable"},
        // MONITOR/MWAIT would let a guest arm wake-ups on hypervisor memory and sleep unseen.
        {proc::MWAIT_EXITING, false, nullptr},
        {proc::MONITOR_EXITING, false, nullptr},
        // Performance counters are not virtualised: a guest must not read the host's.
        {proc::RDPMC_EXITING, false, nullptr},
        // The guest's CR8 is virtual: the real TPR would let it mask the hypervisor's IPIs.
        {proc::CR8_LOAD_EXITING, true, "processor control 'CR8-load exiting' unavailable"},
        {proc::CR8_STORE_EXITING, true, "processor control 'CR8-store exiting' unavailable"},
        // EPT, VPID and unrestricted guest live in the secondary controls.
        {proc::ACTIVATE_SECONDARY_CONTROLS, true, "processor control 'activate secondary controls' unavailable"},
    };
    static constexpr Want kProc2[] = {
        // Guest memory isolation: each guest sees only its own RAM.
        {proc2::ENABLE_EPT, true, "secondary control 'enable EPT' unavailable"},
        // Tagged TLB entries: no flush on every VM exit and entry.
        {proc2::ENABLE_VPID, true, "secondary control 'enable VPID' unavailable"},
        // Real-mode and unpaged protected-mode guests (Linux boot, other OSes).
        {proc2::UNRESTRICTED_GUEST, true, "secondary control 'unrestricted guest' unavailable"},
        // Otherwise RDTSCP and INVPCID raise #UD in the guest.
        {proc2::ENABLE_RDTSCP, false, nullptr},
        {proc2::ENABLE_INVPCID, false, nullptr},
        // WBINVD would flush caches shared with other partitions: emulate as a no-op.
        {proc2::WBINVD_EXITING, false, nullptr},
    };
    static constexpr Want kExit[] = {
        // The hypervisor runs in 64-bit mode.
        {exit_ctl::HOST_ADDRESS_SPACE_SIZE, true, "exit control 'host address-space size' unavailable"},
        // The interrupt is acknowledged by the exit: its vector arrives in the exit information.
        {exit_ctl::ACK_INTERRUPT_ON_EXIT, true, "exit control 'acknowledge interrupt on exit' unavailable"},
        // Guest and host EFER/PAT differ (NXE, LMA, memory types): switch them atomically.
        {exit_ctl::SAVE_IA32_EFER, true, "exit control 'save IA32_EFER' unavailable"},
        {exit_ctl::LOAD_IA32_EFER, true, "exit control 'load IA32_EFER' unavailable"},
        {exit_ctl::SAVE_IA32_PAT, true, "exit control 'save IA32_PAT' unavailable"},
        {exit_ctl::LOAD_IA32_PAT, true, "exit control 'load IA32_PAT' unavailable"},
    };
    static constexpr Want kEntry[] = {
        {entry_ctl::LOAD_IA32_EFER, true, "entry control 'load IA32_EFER' unavailable"},
        {entry_ctl::LOAD_IA32_PAT, true, "entry control 'load IA32_PAT' unavailable"},
    };

    VmcsControls c{};
    c.pin = TRY(compute(pin_cap, kPin));
    c.proc = TRY(compute(proc_cap, kProc));
    // Not set here but toggled per entry: an interrupt for the guest that it
    // cannot take yet (IF = 0, STI/MOV SS shadow) exits the moment it can.
    if (!((proc_cap >> 32) & proc::INTERRUPT_WINDOW_EXITING))
        return make_error(Errc::unsupported, "processor control 'interrupt-window exiting' unavailable",
                          proc::INTERRUPT_WINDOW_EXITING);
    // Toggled per entry the same way: a guest NMI held by the guest's own NMI
    // blocking (its handler still running) or a MOV SS shadow.
    if (!((proc_cap >> 32) & proc::NMI_WINDOW_EXITING))
        return make_error(Errc::unsupported, "processor control 'NMI-window exiting' unavailable",
                          proc::NMI_WINDOW_EXITING);
    // Without TRUE controls these may be stuck at 1; with them we clear what EPT makes pointless.
    c.proc &= ~(proc::CR3_LOAD_EXITING | proc::CR3_STORE_EXITING) | static_cast<uint32_t>(proc_cap);
    c.proc2 = TRY(compute(raw.procbased2, kProc2));
    c.exit = TRY(compute(exit_cap, kExit));
    c.entry = TRY(compute(entry_cap, kEntry));
    // IA-32e mode guest is set per guest on entry; never as a default here.
    c.entry &= ~entry_ctl::IA32E_MODE_GUEST;
    return c;
}

}  // namespace hv::vmx
