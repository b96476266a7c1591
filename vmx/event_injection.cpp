#include "vmx/event_injection.hpp"

#include "vmx/exit_qualification.hpp"

namespace hv::vmx {

namespace {

constexpr uint8_t kVectorDoubleFault = 8;

}  // namespace

EventPlan plan_events(const EventState& s) {
    EventPlan p;
    const uint32_t shadow = s.interruptibility & (kBlockingBySti | kBlockingByMovSs);
    if (s.nmi_pending) {
        if (!s.event_pending && !shadow && !(s.interruptibility & kBlockingByNmi)) {
            p.inject = Inject::nmi;
        } else if (!s.event_pending && (s.interruptibility & (kBlockingByMovSs | kBlockingByNmi)) == 0) {
            p.interrupt_window = true;  // only STI blocks it: wait out the shadow
        } else {
            p.nmi_window = true;
        }
    }
    if (s.interrupt_pending) {
        if (p.inject == Inject::none && !s.event_pending && s.interrupts_enabled && !shadow)
            p.inject = Inject::interrupt;
        else
            p.interrupt_window = true;
    }
    return p;
}

bool exception_unblocked_nmis(uint32_t exit_interruption) {
    const Interruption i = decode_interruption(exit_interruption);
    // Undefined for a double fault (§28.2.2).
    if (!i.valid || (i.type == InterruptionType::hardware_exception && i.vector == kVectorDoubleFault)) return false;
    return i.nmi_unblocking;
}

uint32_t reinjection_interruptibility(uint32_t idt_vectoring, uint32_t interruptibility) {
    const Interruption i = decode_interruption(idt_vectoring);
    if (i.valid && i.type == InterruptionType::nmi) return interruptibility & ~kBlockingByNmi;
    return interruptibility;
}

}  // namespace hv::vmx
