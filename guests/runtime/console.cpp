#include "guests/runtime/console.hpp"

#include "guests/runtime/x86.hpp"

namespace hvg {

namespace {

// 16550 registers (offsets from the base port) and LSR bits (PC16550D data sheet).
constexpr uint16_t kThr = 0;
constexpr uint16_t kLsr = 5;
constexpr uint8_t kLsrThrEmpty = 1 << 5;
// The hypervisor's emulation always reports THR empty, so the first poll
// succeeds. The bound only keeps a broken emulation (LSR stuck at 0) from
// hanging the guest silently: after it, the byte is written anyway.
constexpr int kMaxPolls = 100000;

constinit uint16_t g_port = kDefaultConsolePort;
// One UART, several vCPUs: whole writes go out under this lock so that lines
// from different vCPUs do not interleave character by character.
constinit uint32_t g_lock = 0;

class ConsoleLock {
  public:
    ConsoleLock() {
        while (__atomic_exchange_n(&g_lock, 1u, __ATOMIC_ACQUIRE)) pause();
    }
    ~ConsoleLock() { __atomic_store_n(&g_lock, 0u, __ATOMIC_RELEASE); }
};

}  // namespace

void console_set_port(uint16_t port) {
    if (port != 0) g_port = port;
}

uint16_t console_port() {
    return g_port;
}

static void putc_unlocked(char c) {
    for (int k = 0; k < kMaxPolls; ++k) {
        if (inb(static_cast<uint16_t>(g_port + kLsr)) & kLsrThrEmpty) break;
        pause();
    }
    outb(static_cast<uint16_t>(g_port + kThr), static_cast<uint8_t>(c));
}

void putc(char c) {
    ConsoleLock lock;
    putc_unlocked(c);
}

void write(const char* s, size_t n) {
    ConsoleLock lock;
    for (size_t k = 0; k < n; ++k) putc_unlocked(s[k]);
}

void puts(const char* s) {
    ConsoleLock lock;
    while (*s) putc_unlocked(*s++);
}

void vprintf(const char* fmt, va_list ap) {
    char buf[256];
    size_t n = hv::vformat(buf, sizeof buf, fmt, ap);
    write(buf, n);
}

void printf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

Event& Event::f(const char* key, const char* fmt, ...) {
    char tmp[hv::Line::kCapacity + 1];
    va_list ap;
    va_start(ap, fmt);
    size_t n = hv::vformat(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    line_.s(key, tmp, n);
    return *this;
}

void Event::emit() const {
    // hv::Line starts every line with "hv."; guests replace that prefix.
    const char* p = line_.c_str();
    if (p[0] == 'h' && p[1] == 'v' && p[2] == '.') p += 3;
    ConsoleLock lock;
    for (const char* q = "guest."; *q; ++q) putc_unlocked(*q);
    while (*p) putc_unlocked(*p++);
    putc_unlocked('\n');
}

}  // namespace hvg
