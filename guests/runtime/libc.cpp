// The C symbols GCC may call even in freestanding mode (GCC manual,
// "Standards": memcpy, memmove, memset and memcmp must be provided; struct
// copies and zeroing loops are lowered to them), plus the C++ ABI hook for a
// pure virtual call.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"

extern "C" {

void* memcpy(void* dst, const void* src, size_t n) {
    auto* d = static_cast<uint8_t*>(dst);
    auto* s = static_cast<const uint8_t*>(src);
    asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n)::"memory");
    return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
    auto* d = static_cast<uint8_t*>(dst);
    auto* s = static_cast<const uint8_t*>(src);
    if (d == s || n == 0) return dst;
    if (d < s || d >= s + n) return memcpy(dst, src, n);
    while (n--) d[n] = s[n];  // overlapping with dst above src: copy backwards
    return dst;
}

void* memset(void* dst, int c, size_t n) {
    auto* d = static_cast<uint8_t*>(dst);
    asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
    auto* x = static_cast<const uint8_t*>(a);
    auto* y = static_cast<const uint8_t*>(b);
    for (size_t i = 0; i < n; ++i)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char* s) {
    size_t n = 0;
    while (s[n]) ++n;
    return n;
}

// A pure virtual call is a guest bug: report it and stop the guest.
[[noreturn]] void __cxa_pure_virtual() {
    hvg::Event("error").s("what", "pure_virtual_call").emit();
    hvg::hc::exit(2);
}

}  // extern "C"
