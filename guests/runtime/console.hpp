#pragma once
// Guest console: the emulated 16550 UART (COM1, 0x3F8 unless BootInfo says
// otherwise). Output is written byte by byte to THR after polling LSR.THRE.
//
// Guests print machine-readable events in the hypervisor's format
// (docs/console.md), with the prefix `guest.` instead of `hv.`:
//   guest.<event> key=value key=value ...
// Event builds one such line with the hypervisor's own quoting rules
// (hv::Line, kernel/lib/format.cpp).

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/format.hpp"

namespace hvg {

inline constexpr uint16_t kDefaultConsolePort = 0x3F8;

// Port used from now on; 0 keeps the default. Set by the runtime from BootInfo.
void console_set_port(uint16_t port);
uint16_t console_port();

void putc(char c);
void write(const char* s, size_t n);
void puts(const char* s);  // no newline appended
void printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void vprintf(const char* fmt, va_list ap);

class Event {
  public:
    explicit Event(const char* event) : line_(event) {}

    Event& u(const char* key, uint64_t v) {
        line_.u(key, v);
        return *this;
    }
    Event& i(const char* key, int64_t v) {
        line_.i(key, v);
        return *this;
    }
    Event& x(const char* key, uint64_t v) {
        line_.x(key, v);
        return *this;
    }
    Event& s(const char* key, const char* v) {
        line_.s(key, v);
        return *this;
    }
    Event& s(const char* key, const char* v, size_t len) {
        line_.s(key, v, len);
        return *this;
    }
    Event& b(const char* key, bool v) {
        line_.b(key, v);
        return *this;
    }
    Event& f(const char* key, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

    // Writes "guest.<event> ...\n" to the console.
    void emit() const;

  private:
    hv::Line line_;
};

}  // namespace hvg
