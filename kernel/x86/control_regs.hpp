#pragma once
// Architectural bits of CR0, CR4 and IA32_EFER (SDM Vol. 3A §2.5, Vol. 4
// Table 2-2), defined once for the VMX backend and the guest page walker.

#include <stdint.h>

namespace hv::x86 {

inline constexpr uint64_t kCr0PE = 1ull << 0;
inline constexpr uint64_t kCr0MP = 1ull << 1;
inline constexpr uint64_t kCr0TS = 1ull << 3;
inline constexpr uint64_t kCr0ET = 1ull << 4;
inline constexpr uint64_t kCr0NE = 1ull << 5;
inline constexpr uint64_t kCr0WP = 1ull << 16;
inline constexpr uint64_t kCr0NW = 1ull << 29;
inline constexpr uint64_t kCr0CD = 1ull << 30;
inline constexpr uint64_t kCr0PG = 1ull << 31;

inline constexpr uint64_t kCr4PSE = 1ull << 4;
inline constexpr uint64_t kCr4PAE = 1ull << 5;
inline constexpr uint64_t kCr4LA57 = 1ull << 12;
inline constexpr uint64_t kCr4VMXE = 1ull << 13;
inline constexpr uint64_t kCr4SMEP = 1ull << 20;

inline constexpr uint64_t kEferSCE = 1ull << 0;
inline constexpr uint64_t kEferLME = 1ull << 8;
inline constexpr uint64_t kEferLMA = 1ull << 10;
inline constexpr uint64_t kEferNXE = 1ull << 11;

}  // namespace hv::x86
