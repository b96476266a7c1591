#pragma once
// TSC frequency: from CPUID leaf 0x15 when the CPU enumerates it, otherwise
// measured against PIT channel 2 (SDM Vol. 3B §18.7.3; Intel 8254 datasheet).

#include <stdint.h>

namespace hv::drv {

struct TscCalibration {
    uint64_t hz;
    const char* source;  // "cpuid15", "pit" or "none"
};

TscCalibration calibrate_tsc();

}  // namespace hv::drv
