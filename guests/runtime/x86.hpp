#pragma once
// Always-inline wrappers for the x86 instructions guests use. Inline assembly of
// the guest runtime lives here and in hypercall.hpp (STYLE.md §7).

#include <stdint.h>

namespace hvg {

#define HVG_ALWAYS_INLINE inline __attribute__((always_inline))

struct CpuidResult {
    uint32_t eax, ebx, ecx, edx;
};

HVG_ALWAYS_INLINE CpuidResult cpuid(uint32_t leaf, uint32_t subleaf = 0) {
    CpuidResult r;
    asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
    return r;
}

HVG_ALWAYS_INLINE uint64_t rdmsr(uint32_t msr) {
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

HVG_ALWAYS_INLINE void wrmsr(uint32_t msr, uint64_t v) {
    asm volatile("wrmsr" ::"c"(msr), "a"(static_cast<uint32_t>(v)), "d"(static_cast<uint32_t>(v >> 32)) : "memory");
}

// RDMSR/WRMSR that survive a #GP: the runtime's #GP path skips the 2-byte
// instruction while one of these is running (exception.cpp). `ok` is false when
// the instruction faulted; `value` is then 0.
struct MsrResult {
    bool ok;
    uint64_t value;
};
MsrResult rdmsr_safe(uint32_t msr);
bool wrmsr_safe(uint32_t msr, uint64_t v);

HVG_ALWAYS_INLINE uint64_t rdtsc() {
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

// RDTSC ordered after all earlier instructions (SDM Vol. 2B RDTSC: LFENCE before
// it waits for prior instructions to complete locally).
HVG_ALWAYS_INLINE uint64_t rdtsc_ordered() {
    uint32_t lo, hi;
    asm volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

HVG_ALWAYS_INLINE void outb(uint16_t port, uint8_t v) {
    asm volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
HVG_ALWAYS_INLINE void outw(uint16_t port, uint16_t v) {
    asm volatile("outw %0, %1" ::"a"(v), "Nd"(port));
}
HVG_ALWAYS_INLINE void outl(uint16_t port, uint32_t v) {
    asm volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
HVG_ALWAYS_INLINE uint8_t inb(uint16_t port) {
    uint8_t v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
HVG_ALWAYS_INLINE uint16_t inw(uint16_t port) {
    uint16_t v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
HVG_ALWAYS_INLINE uint32_t inl(uint16_t port) {
    uint32_t v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

HVG_ALWAYS_INLINE uint64_t read_cr0() {
    uint64_t v;
    asm volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}
HVG_ALWAYS_INLINE uint64_t read_cr2() {
    uint64_t v;
    asm volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}
HVG_ALWAYS_INLINE uint64_t read_cr3() {
    uint64_t v;
    asm volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}
HVG_ALWAYS_INLINE uint64_t read_cr4() {
    uint64_t v;
    asm volatile("mov %%cr4, %0" : "=r"(v));
    return v;
}
HVG_ALWAYS_INLINE uint64_t read_rflags() {
    uint64_t v;
    asm volatile("pushfq; popq %0" : "=r"(v)::"memory");
    return v;
}
HVG_ALWAYS_INLINE uint16_t read_cs() {
    uint16_t v;
    asm volatile("mov %%cs, %0" : "=r"(v));
    return v;
}

HVG_ALWAYS_INLINE void invlpg(uint64_t va) {
    asm volatile("invlpg (%0)" ::"r"(va) : "memory");
}
HVG_ALWAYS_INLINE void cli() {
    asm volatile("cli" ::: "memory");
}
HVG_ALWAYS_INLINE void pause() {
    asm volatile("pause" ::: "memory");
}

// Architectural numbers the guests use (SDM Vol. 3A §2.5, Vol. 4 Table 2-2).
inline constexpr uint64_t kCr0Pe = 1ull << 0;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4Pae = 1ull << 5;
inline constexpr uint64_t kCr4La57 = 1ull << 12;
inline constexpr uint64_t kRflagsIf = 1ull << 9;

inline constexpr uint32_t kMsrIa32Tsc = 0x10;
inline constexpr uint32_t kMsrIa32ApicBase = 0x1B;
inline constexpr uint32_t kMsrIa32FeatureControl = 0x3A;
inline constexpr uint32_t kMsrIa32VmxBasic = 0x480;
inline constexpr uint32_t kMsrIa32Efer = 0xC0000080;
inline constexpr uint64_t kEferLma = 1ull << 10;

inline constexpr uint32_t kCpuid1EcxVmx = 1u << 5;          // SDM Vol. 2A Table 3-10
inline constexpr uint32_t kCpuid1EcxHypervisor = 1u << 31;  // reserved for hypervisors to set

}  // namespace hvg
