#pragma once
// CPU exceptions inside a guest. entry.asm points all 32 exception vectors at
// stubs that build an ExceptionFrame and call hvg_exception(). By default an
// exception prints `guest.exception ...` and exits with code 100 + vector; a
// guest can claim a vector with a hook first.

#include <stddef.h>
#include <stdint.h>

namespace hvg {

// Layout pushed by guests/runtime/entry.asm (SDM Vol. 3A §6.14.2 for the part
// the CPU pushes).
struct ExceptionFrame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;  // pushed by the CPU
};
static_assert(sizeof(ExceptionFrame) == 22 * 8);
static_assert(offsetof(ExceptionFrame, vector) == 15 * 8);
static_assert(offsetof(ExceptionFrame, rip) == 17 * 8);

inline constexpr uint32_t kExceptionVectors = 32;
inline constexpr uint8_t kVectorUd = 6;
inline constexpr uint8_t kVectorGp = 13;
inline constexpr uint8_t kVectorPf = 14;
// Exit code of a guest stopped by an unhandled exception: kExceptionExitBase + vector.
inline constexpr uint64_t kExceptionExitBase = 100;

// Returns true when it handled the exception (the frame, RIP included, is then
// resumed as modified); false falls through to the default report-and-exit.
using ExceptionHook = bool (*)(ExceptionFrame& frame);
void set_exception_hook(uint8_t vector, ExceptionHook hook);

const char* exception_name(uint64_t vector);

}  // namespace hvg
