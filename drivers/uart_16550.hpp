#pragma once
// 16550 UART, polled, for the hypervisor console. Usable from the first
// instructions: no memory allocation, no interrupts.

#include <stddef.h>
#include <stdint.h>

namespace hv::drv {

class Uart16550 {
  public:
    static constexpr uint16_t kCom1 = 0x3F8;

    explicit constexpr Uart16550(uint16_t base) : base_(base) {}

    // Programs 8N1 at `baud`; returns false (and stays silent) when no UART
    // answers at this port (the scratch register does not hold a value).
    bool init(uint32_t baud = 115200);
    bool present() const { return present_; }
    // Writes bytes, turning "\n" into "\r\n". Waits for the transmitter only a
    // bounded time per byte, so a wedged UART slows the console but never hangs it.
    void write(const char* s, size_t n);

  private:
    void put(uint8_t c);
    uint16_t base_;
    bool present_ = false;
};

}  // namespace hv::drv
