#pragma once
// PANIC is for states that cannot happen if the hypervisor is correct. Guest
// behaviour and bad input never panic (STYLE.md §9): they return errors.

#include <stdint.h>

namespace hv {

[[noreturn]] void panic(const char* file, int line, const char* msg);

// How the run ends. Under test (hv.test_exit=1) the emulator is told to quit
// with the status; otherwise the CPU halts.
enum class ExitStatus : uint8_t { success = 0, failure = 1 };
[[noreturn]] void platform_exit(ExitStatus status);
void set_test_exit(bool enabled);
bool test_exit_enabled();

}  // namespace hv

#define PANIC(msg) ::hv::panic(__FILE__, __LINE__, (msg))
