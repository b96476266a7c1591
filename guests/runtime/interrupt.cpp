#include "guests/runtime/interrupt.hpp"

#include "guests/runtime/exception.hpp"
#include "guests/runtime/x2apic.hpp"

namespace hvg {

namespace {

constexpr unsigned kVectors = 256;

struct Slot {
    IrqHandler fn;
    void* ctx;
    uint64_t count;
};

constinit Slot g_slots[kVectors] = {};
constinit uint64_t g_total = 0;
constinit uint64_t g_unhandled = 0;

}  // namespace

bool set_irq_handler(uint8_t vector, IrqHandler fn, void* ctx) {
    if (vector < kFirstIrqVector) return false;
    // Handlers run with interrupts off; update with them off too so a handler
    // never sees a half-written slot.
    bool was_on = (read_rflags() & kRflagsIf) != 0;
    irq_disable();
    g_slots[vector].fn = fn;
    g_slots[vector].ctx = ctx;
    if (was_on) irq_enable();
    return true;
}

uint8_t alloc_irq_vector(IrqHandler fn, void* ctx) {
    for (unsigned v = kFirstDynamicVector; v <= kLastDynamicVector; ++v) {
        if (g_slots[v].fn == nullptr) {
            set_irq_handler(static_cast<uint8_t>(v), fn, ctx);
            return static_cast<uint8_t>(v);
        }
    }
    return 0;
}

uint64_t irq_count(uint8_t vector) {
    return g_slots[vector].count;
}
uint64_t irq_total() {
    return g_total;
}
uint64_t irq_unhandled() {
    return g_unhandled;
}

}  // namespace hvg

// Called by irq_common (entry.asm) with interrupts off, vector >= 32.
extern "C" void hvg_interrupt(hvg::ExceptionFrame* frame) {
    using namespace hvg;
    uint8_t vector = static_cast<uint8_t>(frame->vector);
    ++g_total;
    Slot& s = g_slots[vector];
    ++s.count;
    // A spurious interrupt is not in service: no EOI (SDM Vol. 3A §10.9).
    if (vector == x2apic::kSpuriousVector) return;
    if (s.fn) {
        s.fn(s.ctx, vector);
    } else {
        ++g_unhandled;
    }
    x2apic::eoi();
}
