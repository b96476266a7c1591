#pragma once
// Thin always-inline wrappers for privileged x86 instructions. Inline assembly
// lives only here (and in vmx/ and driver *_hw files), per STYLE.md §7.

#include <stdint.h>

namespace hv::x86 {

#define HV_ALWAYS_INLINE inline __attribute__((always_inline))

struct CpuidResult {
    uint32_t eax, ebx, ecx, edx;
};

HV_ALWAYS_INLINE CpuidResult cpuid(uint32_t leaf, uint32_t subleaf = 0) {
    CpuidResult r;
    asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
    return r;
}

HV_ALWAYS_INLINE uint64_t rdmsr(uint32_t msr) {
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

HV_ALWAYS_INLINE void wrmsr(uint32_t msr, uint64_t v) {
    asm volatile("wrmsr" ::"c"(msr), "a"(static_cast<uint32_t>(v)), "d"(static_cast<uint32_t>(v >> 32)) : "memory");
}

HV_ALWAYS_INLINE uint64_t rdtsc() {
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

HV_ALWAYS_INLINE void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
HV_ALWAYS_INLINE void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
HV_ALWAYS_INLINE void outl(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
HV_ALWAYS_INLINE uint8_t inb(uint16_t port) {
    uint8_t v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
HV_ALWAYS_INLINE uint16_t inw(uint16_t port) {
    uint16_t v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
HV_ALWAYS_INLINE uint32_t inl(uint16_t port) {
    uint32_t v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

HV_ALWAYS_INLINE uint64_t read_cr0() { uint64_t v; asm volatile("mov %%cr0, %0" : "=r"(v)); return v; }
HV_ALWAYS_INLINE uint64_t read_cr2() { uint64_t v; asm volatile("mov %%cr2, %0" : "=r"(v)); return v; }
HV_ALWAYS_INLINE uint64_t read_cr3() { uint64_t v; asm volatile("mov %%cr3, %0" : "=r"(v)); return v; }
HV_ALWAYS_INLINE uint64_t read_cr4() { uint64_t v; asm volatile("mov %%cr4, %0" : "=r"(v)); return v; }
HV_ALWAYS_INLINE void write_cr3(uint64_t v) { asm volatile("mov %0, %%cr3" ::"r"(v) : "memory"); }
HV_ALWAYS_INLINE void write_cr4(uint64_t v) { asm volatile("mov %0, %%cr4" ::"r"(v) : "memory"); }

struct [[gnu::packed]] DescriptorPointer {
    uint16_t limit;
    uint64_t base;
};
static_assert(sizeof(DescriptorPointer) == 10);

HV_ALWAYS_INLINE void lgdt(const DescriptorPointer& p) { asm volatile("lgdt %0" ::"m"(p) : "memory"); }
HV_ALWAYS_INLINE void lidt(const DescriptorPointer& p) { asm volatile("lidt %0" ::"m"(p) : "memory"); }
HV_ALWAYS_INLINE void ltr(uint16_t sel) { asm volatile("ltr %0" ::"r"(sel) : "memory"); }

HV_ALWAYS_INLINE void cli() { asm volatile("cli" ::: "memory"); }
HV_ALWAYS_INLINE void sti() { asm volatile("sti" ::: "memory"); }
HV_ALWAYS_INLINE void hlt() { asm volatile("hlt" ::: "memory"); }
HV_ALWAYS_INLINE void pause() { asm volatile("pause" ::: "memory"); }
HV_ALWAYS_INLINE uint64_t read_rbp() { uint64_t v; asm volatile("mov %%rbp, %0" : "=r"(v)); return v; }

// Architectural MSR numbers used outside vmx/ (SDM Vol. 4 Table 2-2).
enum class Msr : uint32_t {
    IA32_APIC_BASE = 0x1B,
    IA32_FEATURE_CONTROL = 0x3A,
    IA32_EFER = 0xC0000080,
    IA32_FS_BASE = 0xC0000100,
    IA32_GS_BASE = 0xC0000101,
    IA32_KERNEL_GS_BASE = 0xC0000102,
};

HV_ALWAYS_INLINE uint64_t rdmsr(Msr m) { return rdmsr(static_cast<uint32_t>(m)); }
HV_ALWAYS_INLINE void wrmsr(Msr m, uint64_t v) { wrmsr(static_cast<uint32_t>(m), v); }

// Stops this CPU for good: interrupts off, halt forever (NMIs return to the loop).
[[noreturn]] HV_ALWAYS_INLINE void halt_forever() {
    for (;;) {
        cli();
        hlt();
    }
}

}  // namespace hv::x86
