#include "drivers/uart_16550.hpp"

#include "kernel/cpu/x86.hpp"

namespace hv::drv {

namespace {
// Register offsets from the port base (PC16550D datasheet, table "Register summary").
enum Reg : uint16_t { THR = 0, IER = 1, DLL = 0, DLM = 1, FCR = 2, LCR = 3, MCR = 4, LSR = 5, SCR = 7 };
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLcr8N1 = 0x03;
constexpr uint8_t kFcrEnableClear = 0x07;  // FIFO on, clear RX and TX FIFOs
constexpr uint8_t kMcrDtrRts = 0x03;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint32_t kBaseClock = 115200;
constexpr uint32_t kTxSpinLimit = 100000;
}  // namespace

bool Uart16550::init(uint32_t baud) {
    x86::outb(base_ + SCR, 0x5A);
    if (x86::inb(base_ + SCR) != 0x5A) return present_ = false;
    uint16_t divisor = static_cast<uint16_t>(kBaseClock / (baud ? baud : kBaseClock));
    x86::outb(base_ + IER, 0x00);  // polled: no interrupts
    x86::outb(base_ + LCR, kLcrDlab);
    x86::outb(base_ + DLL, static_cast<uint8_t>(divisor));
    x86::outb(base_ + DLM, static_cast<uint8_t>(divisor >> 8));
    x86::outb(base_ + LCR, kLcr8N1);
    x86::outb(base_ + FCR, kFcrEnableClear);
    x86::outb(base_ + MCR, kMcrDtrRts);
    return present_ = true;
}

void Uart16550::put(uint8_t c) {
    for (uint32_t i = 0; i < kTxSpinLimit; ++i) {
        if (x86::inb(base_ + LSR) & kLsrThrEmpty) break;
        x86::pause();
    }
    x86::outb(base_ + THR, c);
}

void Uart16550::write(const char* s, size_t n) {
    if (!present_) return;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] == '\n') put('\r');
        put(static_cast<uint8_t>(s[i]));
    }
}

}  // namespace hv::drv
