#pragma once
// Memory-mapped I/O accessors. Each is exactly one MOV of the field's width,
// written in inline assembly so that the compiler can neither merge, split nor
// re-encode the access: the hypervisor emulates device registers by decoding
// the faulting instruction (EPT violation), and virtio 1.2 §4.1.3.1 asks for
// natural-width accesses. The mapping must be uncached (paging.hpp map_mmio).

#include <stdint.h>

#include "guests/runtime/x86.hpp"

namespace hvg {

HVG_ALWAYS_INLINE uint8_t mmio_read8(uint64_t addr) {
    uint8_t v;
    asm volatile("movb (%1), %0" : "=q"(v) : "r"(addr) : "memory");
    return v;
}
HVG_ALWAYS_INLINE uint16_t mmio_read16(uint64_t addr) {
    uint16_t v;
    asm volatile("movw (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}
HVG_ALWAYS_INLINE uint32_t mmio_read32(uint64_t addr) {
    uint32_t v;
    asm volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}
HVG_ALWAYS_INLINE void mmio_write8(uint64_t addr, uint8_t v) {
    asm volatile("movb %0, (%1)" ::"q"(v), "r"(addr) : "memory");
}
HVG_ALWAYS_INLINE void mmio_write16(uint64_t addr, uint16_t v) {
    asm volatile("movw %0, (%1)" ::"r"(v), "r"(addr) : "memory");
}
HVG_ALWAYS_INLINE void mmio_write32(uint64_t addr, uint32_t v) {
    asm volatile("movl %0, (%1)" ::"r"(v), "r"(addr) : "memory");
}
// A 64-bit register as two 32-bit writes, low half first: virtio 1.2
// §4.1.3.1 lets the driver access the halves of a 64-bit field independently,
// and a device emulation then needs to decode only 32-bit moves.
HVG_ALWAYS_INLINE void mmio_write64_split(uint64_t addr, uint64_t v) {
    mmio_write32(addr, static_cast<uint32_t>(v));
    mmio_write32(addr + 4, static_cast<uint32_t>(v >> 32));
}

}  // namespace hvg
