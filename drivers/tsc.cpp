#include "drivers/tsc.hpp"

#include "kernel/cpu/x86.hpp"

namespace hv::drv {

namespace {
constexpr uint32_t kPitHz = 1193182;
constexpr uint16_t kPitCh2 = 0x42;
constexpr uint16_t kPitCmd = 0x43;
constexpr uint16_t kPort61 = 0x61;  // bit0 gate ch2, bit1 speaker, bit5 ch2 output
constexpr uint32_t kCalibrationMs = 10;

// Mode 0 (interrupt on terminal count) on channel 2, gate high, speaker off;
// output bit 5 of port 0x61 goes high when the count reaches zero.
uint64_t measure_with_pit() {
    uint16_t count = static_cast<uint16_t>(kPitHz * kCalibrationMs / 1000);
    uint8_t p61 = x86::inb(kPort61);
    x86::outb(kPort61, static_cast<uint8_t>((p61 & ~0x02) | 0x01));
    x86::outb(kPitCmd, 0xB0);  // channel 2, lobyte/hibyte, mode 0, binary
    x86::outb(kPitCh2, static_cast<uint8_t>(count));
    x86::outb(kPitCh2, static_cast<uint8_t>(count >> 8));
    uint64_t start = x86::rdtsc();
    // A missing PIT never raises the output: give up after a generous bound.
    for (uint64_t spins = 0; spins < 500'000'000; ++spins) {
        if (x86::inb(kPort61) & 0x20) {
            uint64_t delta = x86::rdtsc() - start;
            x86::outb(kPort61, p61);
            return delta * 1000 / kCalibrationMs;
        }
    }
    x86::outb(kPort61, p61);
    return 0;
}
}  // namespace

TscCalibration calibrate_tsc() {
    auto max_leaf = x86::cpuid(0).eax;
    if (max_leaf >= 0x15) {
        auto r = x86::cpuid(0x15);
        // eax = denominator, ebx = numerator of TSC/crystal; ecx = crystal Hz (may be 0).
        if (r.eax != 0 && r.ebx != 0 && r.ecx != 0)
            return {static_cast<uint64_t>(r.ecx) * r.ebx / r.eax, "cpuid15"};
    }
    uint64_t hz = measure_with_pit();
    if (hz != 0) return {hz, "pit"};
    return {0, "none"};
}

}  // namespace hv::drv
