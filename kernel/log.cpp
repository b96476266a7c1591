#include "kernel/log.hpp"

#include <stdarg.h>

#include "drivers/uart_16550.hpp"
#include "kernel/lib/spinlock.hpp"

namespace hv::log {

namespace {
constinit drv::Uart16550 g_uart{drv::Uart16550::kCom1};
constinit Spinlock g_lock;
constinit uint32_t g_errors = 0;
constinit uint32_t g_warnings = 0;
constinit bool g_panic = false;

void locked_write(const char* s, size_t n) {
    if (g_panic) {
        // The holder may be the CPU that faulted: wait a bounded time, then write anyway.
        bool got = g_lock.try_lock_for(10'000'000);
        g_uart.write(s, n);
        if (got) g_lock.unlock();
        return;
    }
    LockGuard guard(g_lock);
    g_uart.write(s, n);
}

void message(const char* level, const char* component, const char* fmt, va_list ap) {
    char text[320];
    vformat(text, sizeof text, fmt, ap);
    Line l("log");
    l.s("level", level).s("component", component).s("msg", text);
    emit(l);
}
}  // namespace

// Starts with a line break: the boot loader may have left its cursor mid-line,
// and every event must begin a line of its own.
void init() {
    g_uart.init();
    g_uart.write("\n", 1);
}

void emit(const Line& line) {
    char buf[Line::kCapacity + 2];
    size_t n = line.size();
    __builtin_memcpy(buf, line.c_str(), n);
    buf[n++] = '\n';
    locked_write(buf, n);
}

void write(const char* s, size_t n) { locked_write(s, n); }

void info(const char* component, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    message("info", component, fmt, ap);
    va_end(ap);
}

void warn(const char* component, const char* fmt, ...) {
    __atomic_fetch_add(&g_warnings, 1, __ATOMIC_RELAXED);
    va_list ap;
    va_start(ap, fmt);
    message("warn", component, fmt, ap);
    va_end(ap);
}

void error(const char* component, const char* fmt, ...) {
    __atomic_fetch_add(&g_errors, 1, __ATOMIC_RELAXED);
    va_list ap;
    va_start(ap, fmt);
    message("error", component, fmt, ap);
    va_end(ap);
}

uint32_t error_count() { return __atomic_load_n(&g_errors, __ATOMIC_RELAXED); }
uint32_t warning_count() { return __atomic_load_n(&g_warnings, __ATOMIC_RELAXED); }

void enter_panic_mode() { g_panic = true; }

}  // namespace hv::log
