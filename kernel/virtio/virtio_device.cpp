#include "kernel/virtio/virtio_device.hpp"

namespace hv::virtio {

const char* broken_reason_name(BrokenReason r) {
    switch (r) {
        case BrokenReason::none: return "none";
        case BrokenReason::bad_queue_config: return "bad_queue_config";
        case BrokenReason::bad_descriptor: return "bad_descriptor";
        case BrokenReason::chain_too_long: return "chain_too_long";
        case BrokenReason::bad_avail_index: return "bad_avail_index";
        case BrokenReason::bad_frame: return "bad_frame";
        case BrokenReason::count: break;
    }
    return "unknown";
}

void Device::attach(const guest::GuestMemory& mem, Transport* t) {
    mem_ = mem;
    transport_ = t;
}

namespace {

// §2.7.1 (split virtqueue alignment): descriptor table 16, available ring 2,
// used ring 4 bytes; sizes from §2.7: 16 * n, 6 + 2 * n, 6 + 8 * n (the
// trailing u16 is used_event / avail_event, present whether or not
// EVENT_IDX is negotiated).
bool queue_valid(const QueueConfig& q, uint16_t max_size, const guest::GuestMemory& mem) {
    if (q.size == 0 || q.size > max_size || (q.size & (q.size - 1)) != 0) return false;
    if (q.desc % 16 != 0 || q.driver % 2 != 0 || q.device % 4 != 0) return false;
    const uint64_t n = q.size;
    return mem.at(q.desc, 16 * n) != nullptr && mem.at(q.driver, 6 + 2 * n) != nullptr &&
           mem.at(q.device, 6 + 8 * n) != nullptr;
}

}  // namespace

void Device::halt() {
    if (!running_) return;
    running_ = false;
    stop();
}

void Device::reset() {
    halt();
    status_ = 0;
    driver_features_ = 0;
    for (auto& q : queues_) q = QueueConfig{};
    broken_ = BrokenReason::none;
}

void Device::write_status(uint8_t s) {
    bool notify;
    {
        LockGuard g(ctl_lock_);
        notify = write_status_locked(s);
    }
    if (notify && transport_) transport_->interrupt_config();
}

bool Device::write_status_locked(uint8_t s) {
    if (s == 0) {  // §2.1.2: writing 0 resets the device
        reset();
        return false;
    }
    // §3.1.1: the driver only ever adds bits; clearing one without a reset is
    // a driver bug we refuse (and count) rather than guess at.
    if ((s & status_) != status_) {
        ++ignored_writes_;
        return false;
    }
    const uint8_t added = s & static_cast<uint8_t>(~status_);
    // §2.1: DEVICE_NEEDS_RESET is the device's to set, and bits 4 and 5 mean
    // nothing. A driver setting one would make a running device look broken
    // (and a later mark_broken() skip stopping it): refuse the write.
    constexpr uint8_t kDriverBits = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | FAILED;
    if (added & static_cast<uint8_t>(~kDriverBits)) {
        ++ignored_writes_;
        return false;
    }
    if (added & FAILED) {  // the driver gave up: stop using the queues
        halt();
        status_ = s;
        return false;
    }
    if (added & FEATURES_OK) {
        // §2.2.2: the device may refuse the subset by leaving FEATURES_OK clear.
        if ((driver_features_ & ~offered_features()) != 0 || !(driver_features_ & VIRTIO_F_VERSION_1) ||
            !accept_features(driver_features_)) {
            s &= static_cast<uint8_t>(~FEATURES_OK);
        }
    }
    if (added & DRIVER_OK) {
        if (!(s & FEATURES_OK) || (status_ & DEVICE_NEEDS_RESET)) {
            ++ignored_writes_;
            return false;
        }
        status_ = s;
        for (uint16_t i = 0; i < queue_count(); ++i) {
            if (queues_[i].enabled && !queue_valid(queues_[i], queue_max_size(i), mem_)) {
                return mark_broken_locked(BrokenReason::bad_queue_config);
            }
        }
        running_ = true;
        start();
        return false;
    }
    status_ = s;
    return false;
}

void Device::write_driver_features(uint64_t features) {
    LockGuard g(ctl_lock_);
    if (status_ & FEATURES_OK) {  // §3.1.1: features are fixed once FEATURES_OK is set
        ++ignored_writes_;
        return;
    }
    driver_features_ = features;
}

QueueConfig Device::queue(uint16_t q) const {
    if (q >= queue_count() || q >= kMaxQueues) return QueueConfig{};
    return queues_[q];
}

void Device::write_queue(uint16_t q, const QueueConfig& cfg) {
    LockGuard g(ctl_lock_);
    if (q >= queue_count() || q >= kMaxQueues || (status_ & DRIVER_OK) || queues_[q].enabled) {
        ++ignored_writes_;
        return;
    }
    queues_[q] = cfg;
}

void Device::mark_broken(BrokenReason reason) {
    bool notify;
    {
        LockGuard g(ctl_lock_);
        notify = mark_broken_locked(reason);
    }
    if (notify && transport_) transport_->interrupt_config();
}

void Device::mark_broken_if_running(BrokenReason reason) {
    bool notify = false;
    {
        LockGuard g(ctl_lock_);
        // A data path on another CPU reports an error only after dropping its
        // queue lock; a reset may have slipped in between. That reset already
        // stopped the queue: breaking the fresh device would only stall the
        // driver's re-initialization, so the late report is just counted.
        if (running_) {
            notify = mark_broken_locked(reason);
        } else {
            ++broken_counts_[static_cast<size_t>(reason)];
        }
    }
    if (notify && transport_) transport_->interrupt_config();
}

bool Device::mark_broken_locked(BrokenReason reason) {
    ++broken_counts_[static_cast<size_t>(reason)];
    if (status_ & DEVICE_NEEDS_RESET) return false;
    halt();
    broken_ = reason;
    status_ |= DEVICE_NEEDS_RESET;
    return true;
}

}  // namespace hv::virtio
