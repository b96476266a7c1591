// The few C symbols GCC may emit calls to even in freestanding mode (it lowers
// struct copies and zeroing to memcpy/memset; GCC manual, "Standards": a
// freestanding environment must still provide memcpy, memmove, memset, memcmp).
// Built into the hypervisor and into the guest runtime (guests/CMakeLists.txt),
// which both run freestanding; host tests use the system C library. Each image
// provides its own __cxa_pure_virtual (kernel/panic.cpp, guests/runtime/cxa.cpp).

#include <stddef.h>
#include <stdint.h>

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
    while (n--) d[n] = s[n];
    return dst;
}

void* memset(void* dst, int c, size_t n) {
    auto* d = static_cast<uint8_t*>(dst);
    // Large aligned fills (guest RAM, page tables) by quadwords: eight times
    // fewer iterations where REP STOSB is not fast-stringed (and in emulators).
    if (n >= 256 && (reinterpret_cast<uintptr_t>(d) & 7) == 0) {
        uint64_t pattern = 0x0101010101010101ull * static_cast<uint8_t>(c);
        size_t q = n / 8;
        asm volatile("rep stosq" : "+D"(d), "+c"(q) : "a"(pattern) : "memory");
        n &= 7;
    }
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

}  // extern "C"
