#pragma once
// Ingress rate limit: a token bucket in integer arithmetic only (the kernel
// has no FPU state to spare and no 128-bit division). Tokens are kept in
// nano-bytes (bytes x 10^9) so that refilling at R bytes/s for t ns adds
// exactly t * R with no rounding loss however often it is refilled.
// Written only by the CPU that forwards the port's frames: no lock.

#include <stdint.h>

namespace hv::net {

class TokenBucket {
  public:
    static constexpr uint64_t kNanoPerSec = 1'000'000'000;
    // Depth limit: burst * 10^9 must fit in 64 bits.
    static constexpr uint64_t kMaxBurstBytes = UINT64_MAX / kNanoPerSec;

    // rate 0 = unlimited. The bucket starts full at now_ns.
    void configure(uint64_t rate_bytes_per_sec, uint64_t burst_bytes, uint64_t now_ns);
    bool unlimited() const { return rate_ == 0; }

    // Refills up to now_ns, then takes `bytes` if that many tokens are there.
    // false: over the limit, nothing taken. Time going backwards adds nothing.
    bool take(uint64_t bytes, uint64_t now_ns);

    uint64_t tokens_bytes() const { return tokens_ / kNanoPerSec; }

  private:
    uint64_t rate_ = 0;      // bytes per second
    uint64_t capacity_ = 0;  // nano-bytes
    uint64_t tokens_ = 0;    // nano-bytes, <= capacity_
    uint64_t last_ns_ = 0;
};

}  // namespace hv::net
