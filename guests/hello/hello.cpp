// hello: the smallest useful guest. Says who it is, then proves it is still
// scheduled with a heartbeat line every ~100 ms of TSC time, forever.
//
//   guest.hello name=web id=0 mem_mib=16 restart=0 cpus=1 tsc_hz=2000000000 abi=1
//   guest.heartbeat n=1
//   guest.heartbeat n=2 ...

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"
#include "guests/runtime/runtime.hpp"
#include "guests/runtime/x86.hpp"

namespace {

// Without a known TSC frequency: a fixed period, about 2-5 ms on current CPUs.
constexpr uint64_t kFallbackPeriodTicks = 5'000'000;
constexpr uint64_t kHeartbeatsPerSecond = 10;

uint64_t tsc_frequency(const hv::abi::BootInfo& info) {
    hvg::HypercallResult r = hvg::hc::tsc_hz();
    if (r.ok() && r.value != 0) return r.value;
    return info.tsc_hz;
}

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    uint64_t hz = tsc_frequency(*info);
    uint64_t period = hz ? hz / kHeartbeatsPerSecond : kFallbackPeriodTicks;
    hvg::Event("hello")
        .s("name", info->name)
        .u("id", info->guest_id)
        .u("mem_mib", info->memory_bytes >> 20)
        .u("restart", info->restart_count)
        .u("cpus", info->cpu_count)
        .u("tsc_hz", hz)
        .u("period_ticks", period)
        .emit();

    uint64_t next = hvg::rdtsc() + period;
    for (uint64_t n = 1;; ++n) {
        while (hvg::rdtsc() < next) {
            // Give the CPU back until the next timer tick; should yield fail,
            // spin politely instead.
            if (!hvg::hc::yield().ok()) hvg::pause();
        }
        hvg::Event("heartbeat").u("n", n).emit();
        next += period;
        // After a long stop (the guest was not scheduled), restart the cadence
        // instead of printing a burst of late heartbeats.
        uint64_t now = hvg::rdtsc();
        if (now > next) next = now + period;
    }
}
