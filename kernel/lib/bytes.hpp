#pragma once
// Little-endian loads from byte buffers that may be unaligned (firmware tables,
// loader structures). Parsers read fields through these instead of casting
// pointers to packed structs, so the same code is UB-free on the host under UBSan.

#include <stddef.h>
#include <stdint.h>

namespace hv {

inline uint8_t load_u8(const uint8_t* p) { return p[0]; }
inline uint16_t load_u16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t load_u32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
           (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t load_u64(const uint8_t* p) {
    return static_cast<uint64_t>(load_u32(p)) | (static_cast<uint64_t>(load_u32(p + 4)) << 32);
}

// Sum of bytes modulo 256; ACPI structures are valid when this is zero.
inline uint8_t byte_sum(const uint8_t* p, size_t len) {
    uint8_t s = 0;
    for (size_t i = 0; i < len; ++i) s = static_cast<uint8_t>(s + p[i]);
    return s;
}

inline bool bytes_equal(const uint8_t* a, const char* b, size_t len) {
    for (size_t i = 0; i < len; ++i)
        if (a[i] != static_cast<uint8_t>(b[i])) return false;
    return true;
}

constexpr uint64_t align_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }
constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
constexpr bool is_aligned(uint64_t v, uint64_t a) { return (v & (a - 1)) == 0; }

// a + b into *out; returns true when the sum wrapped past 2^64 (as the builtin).
inline bool add_overflows(uint64_t a, uint64_t b, uint64_t* out) {
    return __builtin_add_overflow(a, b, out);
}

}  // namespace hv
