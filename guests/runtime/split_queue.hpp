#pragma once
// The driver side of a split virtqueue (virtio 1.2 §2.7), one descriptor per
// buffer (no chains, no indirect descriptors). The caller owns buffer
// identity: descriptor `id` always describes the caller's buffer `id`, so a
// used element names the buffer directly. Pure apart from a fence: the host
// unit tests drive it against a fake device written from the same section.
//
// Ring memory is shared with the device, which runs on another CPU (the
// hypervisor's data path); every access to it is volatile and ordered by the
// barriers §2.7.13 asks for.

#include <stddef.h>
#include <stdint.h>

namespace hvg {

// §2.7.5 descriptor table entry.
struct VirtqDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);
static_assert(offsetof(VirtqDesc, len) == 8);
static_assert(offsetof(VirtqDesc, flags) == 12);
static_assert(offsetof(VirtqDesc, next) == 14);

inline constexpr uint16_t VIRTQ_DESC_F_NEXT = 1;
inline constexpr uint16_t VIRTQ_DESC_F_WRITE = 2;
inline constexpr uint16_t VIRTQ_DESC_F_INDIRECT = 4;
inline constexpr uint16_t VIRTQ_AVAIL_F_NO_INTERRUPT = 1;  // §2.7.6
inline constexpr uint16_t VIRTQ_USED_F_NO_NOTIFY = 1;      // §2.7.8

// Sizes and alignments of the three parts (§2.7, table "Virtqueue Part
// Alignment Size"), the event fields included (§2.7.6, §2.7.8).
inline constexpr size_t virtq_desc_bytes(uint16_t n) {
    return 16u * n;
}
inline constexpr size_t virtq_avail_bytes(uint16_t n) {
    return 6u + 2u * n;
}
inline constexpr size_t virtq_used_bytes(uint16_t n) {
    return 6u + 8u * n;
}
inline constexpr size_t kVirtqDescAlign = 16;
inline constexpr size_t kVirtqAvailAlign = 2;
inline constexpr size_t kVirtqUsedAlign = 4;

// §2.7.10 / §2.7.13.3: true when moving an index from old_idx to new_idx
// crosses event_idx, i.e. the other side asked to be told about it.
inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
    return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

class SplitQueue {
  public:
    static constexpr uint16_t kMaxSize = 256;

    // size: a power of two <= kMaxSize. The three areas must be aligned as
    // above and as large as the *_bytes() functions say; they are zeroed.
    // Notifications from the device start disabled.
    bool init(uint16_t size, bool event_idx, void* desc, void* avail, void* used);

    uint16_t size() const { return size_; }
    uint16_t in_flight() const { return in_flight_count_; }
    bool is_in_flight(uint16_t id) const { return id < size_ && in_flight_[id]; }

    // Offers buffer `id` ([addr, addr + len), written by the device when
    // device_writes) to the device. Not visible until publish(). False if id
    // is out of range or already offered.
    bool add(uint16_t id, uint64_t addr, uint32_t len, bool device_writes);
    // Makes everything added visible (avail.idx) and says whether the device
    // must be notified: §2.7.13.3 with EVENT_IDX (avail_event) or the
    // NO_NOTIFY flag without it.
    bool publish();

    // The next used buffer, if any. Elements naming an id that is not in
    // flight are counted in bad_used() and skipped; a used.idx more than
    // `size` ahead of us means the device is broken: nothing is returned and
    // device_broken() turns true.
    bool next_used(uint16_t* id, uint32_t* len);
    bool has_used() const;

    // Used buffer notifications (§2.7.10). enable() asks for one at the next
    // used buffer and returns true if buffers are already used (the caller
    // must process them rather than wait: the race §2.7.10 describes).
    bool enable_notifications();
    void disable_notifications();

    uint64_t bad_used() const { return bad_used_; }
    bool device_broken() const { return device_broken_; }
    uint16_t last_used() const { return last_used_; }
    uint16_t avail_idx() const { return avail_idx_; }

    // Raw views for the hostile test guest (guests/netbad), which corrupts its
    // own ring on purpose. Nothing else should use these.
    VirtqDesc* raw_desc() { return desc_; }
    volatile uint16_t* raw_avail_idx() { return reinterpret_cast<volatile uint16_t*>(avail_ + 2); }
    volatile uint16_t* raw_avail_ring() { return reinterpret_cast<volatile uint16_t*>(avail_ + 4); }

  private:
    void store_used_event(uint16_t v);

    VirtqDesc* desc_ = nullptr;
    uint8_t* avail_ = nullptr;
    uint8_t* used_ = nullptr;
    uint16_t size_ = 0;
    bool event_idx_ = false;
    bool notifications_on_ = false;
    bool device_broken_ = false;
    uint16_t avail_idx_ = 0;      // our shadow of avail.idx, including unpublished adds
    uint16_t published_idx_ = 0;  // avail.idx as last written
    uint16_t last_used_ = 0;      // used.idx up to which we have consumed
    uint16_t in_flight_count_ = 0;
    uint64_t bad_used_ = 0;
    bool in_flight_[kMaxSize] = {};
};

}  // namespace hvg
