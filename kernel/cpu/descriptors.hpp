#pragma once
// GDT, TSS and IDT layouts for 64-bit mode (SDM Vol. 3A §3.4.5, §7.7, §6.14.1).

#include <stddef.h>
#include <stdint.h>

namespace hv::cpu {

// Selectors; the boot GDT (boot/entry.asm) uses the same code/data numbers.
constexpr uint16_t kKernelCode = 0x08;
constexpr uint16_t kKernelData = 0x10;
constexpr uint16_t kTssSelector = 0x18;

// Interrupt stack table slots (TSS.IST1..3): NMI, #DF and #MC arrive on their own
// known-good stacks even when the kernel stack is what broke.
constexpr uint8_t kIstNmi = 1;
constexpr uint8_t kIstDoubleFault = 2;
constexpr uint8_t kIstMachineCheck = 3;

// 64-bit TSS (SDM Vol. 3A Figure 7-11).
struct [[gnu::packed]] Tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
};
static_assert(sizeof(Tss) == 104);
static_assert(offsetof(Tss, ist) == 36);

// null, code, data, TSS (16 bytes = two slots).
struct alignas(16) GdtEntries {
    uint64_t e[5];
};

// Accessed bits preset so that loading a selector never writes the GDT.
constexpr uint64_t kGdtCode64 = 0x00AF9B000000FFFF;  // P, DPL0, code exec/read, accessed, L=1
constexpr uint64_t kGdtData = 0x00CF93000000FFFF;    // P, DPL0, data read/write, accessed

// Low and high halves of a 64-bit available-TSS descriptor (type 9).
constexpr uint64_t tss_descriptor_low(uint64_t base, uint32_t limit) {
    return (limit & 0xFFFFull) | ((base & 0xFFFFFFull) << 16) | (0x89ull << 40) |
           (static_cast<uint64_t>((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFFull) << 56);
}
constexpr uint64_t tss_descriptor_high(uint64_t base) { return base >> 32; }

// 64-bit interrupt gate (type 0xE), DPL0, present (SDM Vol. 3A Figure 6-8).
struct IdtGate {
    uint64_t lo;
    uint64_t hi;
};
static_assert(sizeof(IdtGate) == 16);

constexpr IdtGate interrupt_gate(uint64_t handler, uint16_t selector, uint8_t ist) {
    return IdtGate{(handler & 0xFFFF) | (static_cast<uint64_t>(selector) << 16) |
                       (static_cast<uint64_t>(ist & 7) << 32) | (0x8Eull << 40) |
                       (((handler >> 16) & 0xFFFF) << 48),
                   handler >> 32};
}

}  // namespace hv::cpu
