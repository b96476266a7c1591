#pragma once
// The hypervisor console: one event per line on COM1 (docs/console.md).
// Lines from different CPUs never interleave (one lock around each line).

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/format.hpp"

namespace hv::log {

void init();
void emit(const Line& line);
// Raw text (already formatted), used by the panic path.
void write(const char* s, size_t n);

// Free-form messages, counted: the boot summary reports errors and warnings,
// and a test can assert that a broken input was noticed.
void info(const char* component, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void warn(const char* component, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void error(const char* component, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

uint32_t error_count();
uint32_t warning_count();

// Panic path: take the console even if another CPU holds it (after a bounded wait).
void enter_panic_mode();

}  // namespace hv::log
