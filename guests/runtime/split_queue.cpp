#include "guests/runtime/split_queue.hpp"

namespace hvg {

namespace {

// Ring field offsets (§2.7.6 available ring, §2.7.8 used ring).
constexpr size_t kAvailFlags = 0;
constexpr size_t kAvailIdx = 2;
constexpr size_t kAvailRing = 4;
constexpr size_t kUsedFlags = 0;
constexpr size_t kUsedIdx = 2;
constexpr size_t kUsedRing = 4;
constexpr size_t kUsedElemSize = 8;

inline uint16_t ld16(const uint8_t* p) {
    return *reinterpret_cast<const volatile uint16_t*>(p);
}
inline uint32_t ld32(const uint8_t* p) {
    return *reinterpret_cast<const volatile uint32_t*>(p);
}
inline void st16(uint8_t* p, uint16_t v) {
    *reinterpret_cast<volatile uint16_t*>(p) = v;
}

// x86 keeps stores in order and loads in order (SDM Vol. 3A §8.2.2), so the
// write and read barriers of §2.7.13 only have to stop the compiler. A store
// followed by a load of another location can still be reordered by the CPU:
// that case (publish idx, then read the other side's event index) needs a
// full fence. A locked add to the stack is the cheap full fence Linux uses.
inline void compiler_barrier() {
    asm volatile("" ::: "memory");
}
inline void full_barrier() {
    asm volatile("lock orq $0, (%%rsp)" ::: "memory", "cc");
}

}  // namespace

bool SplitQueue::init(uint16_t size, bool event_idx, void* desc, void* avail, void* used) {
    if (size == 0 || size > kMaxSize || (size & (size - 1)) != 0) return false;
    if (!desc || !avail || !used) return false;
    if (reinterpret_cast<uintptr_t>(desc) % kVirtqDescAlign || reinterpret_cast<uintptr_t>(avail) % kVirtqAvailAlign ||
        reinterpret_cast<uintptr_t>(used) % kVirtqUsedAlign)
        return false;
    desc_ = static_cast<VirtqDesc*>(desc);
    avail_ = static_cast<uint8_t*>(avail);
    used_ = static_cast<uint8_t*>(used);
    size_ = size;
    event_idx_ = event_idx;
    __builtin_memset(desc, 0, virtq_desc_bytes(size));
    __builtin_memset(avail, 0, virtq_avail_bytes(size));
    __builtin_memset(used, 0, virtq_used_bytes(size));
    avail_idx_ = published_idx_ = last_used_ = 0;
    in_flight_count_ = 0;
    bad_used_ = 0;
    device_broken_ = false;
    for (bool& f : in_flight_) f = false;
    disable_notifications();
    return true;
}

bool SplitQueue::add(uint16_t id, uint64_t addr, uint32_t len, bool device_writes) {
    if (id >= size_ || in_flight_[id]) return false;
    VirtqDesc& d = desc_[id];
    d.addr = addr;
    d.len = len;
    d.flags = device_writes ? VIRTQ_DESC_F_WRITE : 0;
    d.next = 0;
    // §2.7.13.2: the head of the chain goes into the next free ring slot.
    st16(avail_ + kAvailRing + 2u * (avail_idx_ & (size_ - 1)), id);
    ++avail_idx_;
    in_flight_[id] = true;
    ++in_flight_count_;
    return true;
}

bool SplitQueue::publish() {
    uint16_t old_idx = published_idx_, new_idx = avail_idx_;
    if (old_idx == new_idx) return false;
    // §2.7.13.3: descriptors and ring entries before the index that exposes them.
    compiler_barrier();
    st16(avail_ + kAvailIdx, new_idx);
    published_idx_ = new_idx;
    // §2.7.13.3.1 (and Linux's virtqueue_kick_prepare): the index store must
    // be visible before the device's suppression state is read.
    full_barrier();
    if (event_idx_) return vring_need_event(ld16(used_ + kUsedRing + kUsedElemSize * size_), new_idx, old_idx);
    return (ld16(used_ + kUsedFlags) & VIRTQ_USED_F_NO_NOTIFY) == 0;
}

bool SplitQueue::has_used() const {
    return !device_broken_ && ld16(used_ + kUsedIdx) != last_used_;
}

bool SplitQueue::next_used(uint16_t* id, uint32_t* len) {
    // Bounded: each turn consumes one element, at most `size` of them.
    for (uint32_t turn = 0; turn <= size_; ++turn) {
        if (device_broken_) return false;
        uint16_t used_idx = ld16(used_ + kUsedIdx);
        if (used_idx == last_used_) return false;
        // The device can never have used more buffers than were offered.
        if (static_cast<uint16_t>(used_idx - last_used_) > size_) {
            device_broken_ = true;
            return false;
        }
        // §2.7.13 read barrier: the element after the index that covers it.
        compiler_barrier();
        const uint8_t* e = used_ + kUsedRing + kUsedElemSize * (last_used_ & (size_ - 1));
        uint32_t used_id = ld32(e);
        uint32_t used_len = ld32(e + 4);
        ++last_used_;
        if (used_id >= size_ || !in_flight_[used_id]) {
            ++bad_used_;
            continue;
        }
        in_flight_[used_id] = false;
        --in_flight_count_;
        *id = static_cast<uint16_t>(used_id);
        *len = used_len;
        return true;
    }
    return false;
}

void SplitQueue::store_used_event(uint16_t v) {
    st16(avail_ + kAvailRing + 2u * size_, v);
}

bool SplitQueue::enable_notifications() {
    notifications_on_ = true;
    if (event_idx_) {
        // §2.7.10: interrupt when used.idx moves past last_used_, i.e. at the
        // very next used buffer. flags stays 0 (MUST with EVENT_IDX).
        store_used_event(last_used_);
    } else {
        st16(avail_ + kAvailFlags, 0);
    }
    // The device may have used a buffer before it saw the request: look again
    // after a full fence, or that buffer would never be signalled.
    full_barrier();
    return ld16(used_ + kUsedIdx) != last_used_;
}

void SplitQueue::disable_notifications() {
    notifications_on_ = false;
    if (event_idx_) {
        // The index farthest behind the device: it is crossed only after
        // 65535 more used buffers, and callers refresh it as they consume.
        store_used_event(static_cast<uint16_t>(last_used_ - 1));
    } else {
        st16(avail_ + kAvailFlags, VIRTQ_AVAIL_F_NO_INTERRUPT);
    }
}

}  // namespace hvg
