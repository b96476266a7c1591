#pragma once
// A guest's console: what the guest writes to its emulated UART is cut into
// lines by the guest's own CPU (the producer) and queued here; only the boot
// CPU (the consumer) prints them. A guest that floods its UART fills its own
// ring and loses its own lines (counted); it never holds the console lock or
// slows another guest. Single producer, single consumer, lock-free.

#include <stddef.h>
#include <stdint.h>

namespace hv::guest {

class ConsoleRing {
  public:
    static constexpr size_t kLineMax = 320;   // longer lines are split (guest event lines fit)
    static constexpr size_t kLines = 32;      // queued lines per guest

    // Producer side (the guest's CPU, inside an exit handler).
    void put_char(char c);
    void flush_partial();  // emit what is buffered as a line (guest exit, crash)
    uint64_t dropped_lines() const { return __atomic_load_n(&dropped_, __ATOMIC_RELAXED); }
    // No room for another line: the emulated UART then reports its transmitter
    // busy, so a guest that polls LSR (as a real driver does) waits instead of
    // losing output; only a guest that ignores LSR loses lines.
    bool full() const { return head_ - __atomic_load_n(&tail_, __ATOMIC_ACQUIRE) >= kLines; }

    // Consumer side (the boot CPU). Copies one line into out (NUL-terminated);
    // returns false when the ring is empty.
    bool pop(char (&out)[kLineMax + 1]);

    // Both sides stopped (guest restart): forget everything queued.
    void reset();

  private:
    void push_line();
    struct Line {
        uint16_t len;
        char text[kLineMax];
    };
    Line lines_[kLines] = {};
    uint32_t head_ = 0;  // next slot the producer fills (written by producer only)
    uint32_t tail_ = 0;  // next slot the consumer reads (written by consumer only)
    char partial_[kLineMax] = {};
    uint16_t partial_len_ = 0;
    uint64_t dropped_ = 0;
};

}  // namespace hv::guest
