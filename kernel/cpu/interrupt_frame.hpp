#pragma once
// Register frame built by boot/isr.asm for every vector.

#include <stddef.h>
#include <stdint.h>

namespace hv::cpu {

struct InterruptFrame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;  // pushed by the CPU
};
static_assert(sizeof(InterruptFrame) == 22 * 8);
static_assert(offsetof(InterruptFrame, vector) == 15 * 8);

namespace vector {
constexpr uint8_t NMI = 2;
constexpr uint8_t DOUBLE_FAULT = 8;
constexpr uint8_t PAGE_FAULT = 14;
constexpr uint8_t MACHINE_CHECK = 18;
constexpr uint8_t WAKEUP = 0xF0;    // IPI from the boot CPU: new work (launch a guest)
constexpr uint8_t SPURIOUS = 0xFF;
}  // namespace vector

}  // namespace hv::cpu
