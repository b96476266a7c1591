#pragma once
// What to inject into a guest at the next VM entry, and which window exits to
// ask for when the guest cannot take an event yet. Pure: the caller reads the
// VMCS and the virtual APIC, passes the facts in, and writes the plan back.
//
// With the "virtual NMIs" pin control (always on here), the CPU tracks the
// guest's NMI blocking for us: delivering an NMI sets virtual-NMI blocking
// (bit 3 of the interruptibility state) and the guest's IRET clears it, and
// "NMI-window exiting" exits as soon as the guest can take the next one
// (SDM Vol. 3C §26.2 for the window exits, §26.3 for IRET, §27.6 for
// injection).

#include <stdint.h>

#include "vmx/vmcs_fields.hpp"

namespace hv::vmx {

// Guest interruptibility state (SDM Vol. 3C §25.4.2, Table 25-3).
inline constexpr uint32_t kBlockingBySti = 1u << 0;
inline constexpr uint32_t kBlockingByMovSs = 1u << 1;
inline constexpr uint32_t kBlockingBySmi = 1u << 2;
inline constexpr uint32_t kBlockingByNmi = 1u << 3;  // virtual-NMI blocking, with virtual NMIs

// Valid bit of the interruption-information fields (Tables 25-17, 28-7, 28-8).
inline constexpr uint32_t kInterruptionValid = 1u << 31;

struct EventState {
    bool event_pending;         // the entry already delivers an event (re-injection, an exception)
    uint32_t interruptibility;  // GUEST_INTERRUPTIBILITY_INFO
    bool interrupts_enabled;    // RFLAGS.IF
    bool nmi_pending;           // the virtual APIC holds an NMI
    bool interrupt_pending;     // the virtual APIC has a vector above its PPR
};

enum class Inject : uint8_t { none, nmi, interrupt };

struct EventPlan {
    Inject inject = Inject::none;
    bool nmi_window = false;        // NMI-window exiting for this entry
    bool interrupt_window = false;  // interrupt-window exiting for this entry
};

// One event per entry, the NMI first (SDM Vol. 3A §6.9: NMIs rank above
// maskable interrupts). An NMI goes in unless it is blocked by NMI, MOV SS or
// STI (§27.3.1.5: entry refuses an NMI under MOV SS blocking or virtual-NMI
// blocking, and "may" refuse it under STI blocking). An external interrupt
// needs IF = 1 and neither shadow (§27.3.1.5). Whatever waits gets a window:
//  - an interrupt: interrupt-window exiting (IF = 1, no shadow);
//  - an NMI blocked only by STI: interrupt-window exiting too, since STI
//    blocking implies IF = 1, so that window opens right after the shadow,
//    while an NMI window may open at once and spin (§26.2: a CPU "may"
//    hold NMI-window exits under STI blocking; KVM does the same);
//  - any other blocked NMI: NMI-window exiting (no virtual-NMI blocking and
//    no MOV-SS blocking; after the guest's IRET for a running handler).
EventPlan plan_events(const EventState& s);

// SDM Vol. 3C §28.2.3 "Information About NMI Unblocking Due to IRET": an exit
// caused by a fault, EPT violation (or PML-full) during an IRET that had just
// lifted virtual-NMI blocking reports it in bit 12 of the exit
// qualification (EPT violation, PML full) or of the exit interruption
// information (exceptions other than #DF). The bit means nothing when the
// exit happened during event delivery (IDT-vectoring valid). When this says
// so, the hypervisor sets blocking by NMI again before resuming: the IRET is
// executed again and lifts it then.
// Inline: every exit asks, and nearly every exit is none of the three.
bool exception_unblocked_nmis(uint32_t exit_interruption);
inline bool nmi_unblocked_by_iret(uint16_t exit_reason, uint64_t qualification, uint32_t exit_interruption,
                                  uint32_t idt_vectoring) {
    constexpr uint64_t kNmiUnblockingDueToIret = 1ull << 12;  // same bit in the qualification and the info
    if (idt_vectoring & kInterruptionValid) return false;     // undefined during event delivery
    switch (static_cast<ExitReason>(exit_reason)) {
        case ExitReason::EPT_VIOLATION:
        case ExitReason::PML_FULL: return (qualification & kNmiUnblockingDueToIret) != 0;
        case ExitReason::EXCEPTION_NMI: return exception_unblocked_nmis(exit_interruption);
        default: return false;
    }
}

// The interruptibility state to resume with when the exit cut off the
// delivery of the event in `idt_vectoring` (re-injected as it was). For an
// NMI, virtual-NMI blocking may already be set (§28.1: delivery that hits a
// nested exception or APIC access exits with blocking in effect) but entry
// refuses to inject an NMI under it (§27.3.1.5): it is cleared, and comes
// back when the NMI is delivered.
uint32_t reinjection_interruptibility(uint32_t idt_vectoring, uint32_t interruptibility);

}  // namespace hv::vmx
