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

// Read by any vCPU's NMI at any moment: the context is published before the
// function that uses it.
constinit void* g_nmi_ctx = nullptr;
constinit NmiHandler g_nmi_fn = nullptr;
constinit uint64_t g_nmis = 0;

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

void set_nmi_handler(NmiHandler fn, void* ctx) {
    __atomic_store_n(&g_nmi_fn, nullptr, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_nmi_ctx, ctx, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_nmi_fn, fn, __ATOMIC_SEQ_CST);
}

uint64_t nmi_count() {
    return __atomic_load_n(&g_nmis, __ATOMIC_SEQ_CST);
}

}  // namespace hvg

extern "C" void hvg_exception(hvg::ExceptionFrame* frame);

// Called by nmi_common (entry.asm), with further NMIs blocked until it returns.
extern "C" void hvg_nmi(hvg::ExceptionFrame* frame) {
    using namespace hvg;
    NmiHandler fn = __atomic_load_n(&g_nmi_fn, __ATOMIC_SEQ_CST);
    if (!fn) {
        hvg_exception(frame);  // no handler: an exception hook, or the report and exit 102
        return;
    }
    __atomic_add_fetch(&g_nmis, 1, __ATOMIC_SEQ_CST);
    fn(__atomic_load_n(&g_nmi_ctx, __ATOMIC_SEQ_CST));
}

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
