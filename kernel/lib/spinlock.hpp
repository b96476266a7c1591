#pragma once
// Ticket spinlock: FIFO fairness, so a CPU flooding the console cannot starve
// another CPU's log line.

#include <stdint.h>

namespace hv {

class Spinlock {
  public:
    void lock() {
        uint32_t ticket = __atomic_fetch_add(&next_, 1, __ATOMIC_RELAXED);
        while (__atomic_load_n(&serving_, __ATOMIC_ACQUIRE) != ticket) __builtin_ia32_pause();
    }
    // Bounded attempt, for panic paths that must print even if the lock holder died.
    bool try_lock_for(uint64_t spins) {
        for (uint64_t i = 0; i < spins; ++i) {
            uint32_t serving = __atomic_load_n(&serving_, __ATOMIC_ACQUIRE);
            uint32_t expected = serving;
            if (__atomic_load_n(&next_, __ATOMIC_RELAXED) == serving &&
                __atomic_compare_exchange_n(&next_, &expected, serving + 1, false, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                return true;
            __builtin_ia32_pause();
        }
        return false;
    }
    void unlock() { __atomic_store_n(&serving_, serving_ + 1, __ATOMIC_RELEASE); }

  private:
    uint32_t next_ = 0;
    uint32_t serving_ = 0;
};

class LockGuard {
  public:
    explicit LockGuard(Spinlock& l) : l_(l) { l_.lock(); }
    ~LockGuard() { l_.unlock(); }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;

  private:
    Spinlock& l_;
};

}  // namespace hv
