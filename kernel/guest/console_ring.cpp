#include "kernel/guest/console_ring.hpp"

namespace hv::guest {

void ConsoleRing::push_line() {
    uint32_t head = head_;
    uint32_t tail = __atomic_load_n(&tail_, __ATOMIC_ACQUIRE);
    if (head - tail >= kLines) {
        __atomic_fetch_add(&dropped_, 1, __ATOMIC_RELAXED);
    } else {
        Line& l = lines_[head % kLines];
        for (uint16_t i = 0; i < partial_len_; ++i) l.text[i] = partial_[i];
        l.len = partial_len_;
        __atomic_store_n(&head_, head + 1, __ATOMIC_RELEASE);
    }
    partial_len_ = 0;
}

void ConsoleRing::put_char(char c) {
    if (c == '\r') return;
    if (c == '\n') {
        push_line();
        return;
    }
    partial_[partial_len_++] = c;
    if (partial_len_ == kLineMax) push_line();
}

void ConsoleRing::flush_partial() {
    if (partial_len_) push_line();
}

bool ConsoleRing::pop(char (&out)[kLineMax + 1]) {
    uint32_t tail = tail_;
    uint32_t head = __atomic_load_n(&head_, __ATOMIC_ACQUIRE);
    if (tail == head) return false;
    const Line& l = lines_[tail % kLines];
    uint16_t n = l.len > kLineMax ? kLineMax : l.len;
    for (uint16_t i = 0; i < n; ++i) out[i] = l.text[i];
    out[n] = '\0';
    __atomic_store_n(&tail_, tail + 1, __ATOMIC_RELEASE);
    return true;
}

void ConsoleRing::reset() {
    head_ = tail_ = 0;
    partial_len_ = 0;
}

}  // namespace hv::guest
