#pragma once
// External interrupts (vectors 32-255). entry.asm points every one of them at
// a stub that calls hvg_interrupt(), which runs the registered handler with
// interrupts off and then sends the x2APIC EOI (not for the spurious vector,
// SDM Vol. 3A §10.9). Handlers must be short: they usually set a flag or bump
// a counter that the main loop looks at.

#include <stdint.h>

#include "guests/runtime/x86.hpp"

namespace hvg {

inline constexpr uint8_t kFirstIrqVector = 32;
// Vectors handed out by alloc_irq_vector(); 0xFE (APIC timer) and 0xFF
// (spurious) are reserved by the runtime.
inline constexpr uint8_t kFirstDynamicVector = 0x40;
inline constexpr uint8_t kLastDynamicVector = 0xEF;

using IrqHandler = void (*)(void* ctx, uint8_t vector);

// Installs `fn(ctx, vector)` for `vector` (>= 32); nullptr removes it.
bool set_irq_handler(uint8_t vector, IrqHandler fn, void* ctx);
// A free vector in [kFirstDynamicVector, kLastDynamicVector] with `fn`
// installed, or 0 when none is left.
uint8_t alloc_irq_vector(IrqHandler fn, void* ctx);

uint64_t irq_count(uint8_t vector);
uint64_t irq_total();
uint64_t irq_unhandled();  // arrived on a vector without a handler (EOI sent)

// NMIs (vector 2) have their own entry (entry.asm -> hvg_nmi): the handler
// installed here runs for each one, on whichever vCPU took it. With none, an
// NMI is reported like any unexpected exception (exit code 102). The CPU
// holds further NMIs until the handler has returned (IRET), so it never
// nests with itself; but it may interrupt anything else, interrupts off or
// not, so it should only touch atomics and data of its own.
using NmiHandler = void (*)(void* ctx);
void set_nmi_handler(NmiHandler fn, void* ctx);
uint64_t nmi_count();  // NMIs taken with a handler installed, on every vCPU

HVG_ALWAYS_INLINE void irq_enable() {
    asm volatile("sti" ::: "memory");
}
HVG_ALWAYS_INLINE void irq_disable() {
    asm volatile("cli" ::: "memory");
}
// Enables interrupts and halts until one has been handled, then disables them
// again. STI's one-instruction interrupt shadow (SDM Vol. 2B STI) keeps an
// interrupt that is already pending from being taken before the HLT, which
// would otherwise sleep through it. Call with interrupts off after checking,
// with interrupts still off, that there is nothing to do.
HVG_ALWAYS_INLINE void wait_for_interrupt() {
    asm volatile("sti; hlt; cli" ::: "memory");
}
// Lets pending interrupts in without halting (a polling loop's window).
HVG_ALWAYS_INLINE void irq_window() {
    asm volatile("sti; nop; cli" ::: "memory");
}

}  // namespace hvg
