#include "kernel/net/token_bucket.hpp"

namespace hv::net {

void TokenBucket::configure(uint64_t rate_bytes_per_sec, uint64_t burst_bytes, uint64_t now_ns) {
    rate_ = rate_bytes_per_sec;
    if (burst_bytes > kMaxBurstBytes) burst_bytes = kMaxBurstBytes;
    capacity_ = burst_bytes * kNanoPerSec;
    tokens_ = capacity_;
    last_ns_ = now_ns;
}

bool TokenBucket::take(uint64_t bytes, uint64_t now_ns) {
    if (rate_ == 0) return true;
    if (now_ns > last_ns_) {
        // elapsed * rate overflows only after a long idle time: the bucket is full then.
        uint64_t add, sum;
        if (__builtin_mul_overflow(now_ns - last_ns_, rate_, &add) || __builtin_add_overflow(tokens_, add, &sum) ||
            sum > capacity_)
            tokens_ = capacity_;
        else
            tokens_ = sum;
        last_ns_ = now_ns;
    }
    uint64_t need;
    if (__builtin_mul_overflow(bytes, kNanoPerSec, &need) || need > tokens_) return false;
    tokens_ -= need;
    return true;
}

}  // namespace hv::net
