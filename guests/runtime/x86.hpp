#pragma once
// Always-inline wrappers for the x86 instructions guests use. Inline assembly of
// the guest runtime lives here and in hypercall.hpp (STYLE.md §7).

#include <stdint.h>

#include "kernel/cpu/x86.hpp"

namespace hvg {

#define HVG_ALWAYS_INLINE inline __attribute__((always_inline))

// The instructions the hypervisor wraps too (a guest also runs at CPL 0).
using hv::x86::cli;
using hv::x86::cpuid;
using hv::x86::CpuidResult;
using hv::x86::inb;
using hv::x86::inl;
using hv::x86::inw;
using hv::x86::outb;
using hv::x86::outl;
using hv::x86::outw;
using hv::x86::pause;
using hv::x86::rdmsr;
using hv::x86::rdtsc;
using hv::x86::read_cr0;
using hv::x86::read_cr2;
using hv::x86::read_cr3;
using hv::x86::read_cr4;
using hv::x86::wrmsr;

// RDMSR/WRMSR that survive a #GP: the runtime's #GP path skips the 2-byte
// instruction while one of these is running (exception.cpp). `ok` is false when
// the instruction faulted; `value` is then 0.
struct MsrResult {
    bool ok;
    uint64_t value;
};
MsrResult rdmsr_safe(uint32_t msr);
bool wrmsr_safe(uint32_t msr, uint64_t v);

// RDTSC ordered after all earlier instructions (SDM Vol. 2B RDTSC: LFENCE before
// it waits for prior instructions to complete locally).
HVG_ALWAYS_INLINE uint64_t rdtsc_ordered() {
    uint32_t lo, hi;
    asm volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
    return (static_cast<uint64_t>(hi) << 32) | lo;
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
