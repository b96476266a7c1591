#pragma once
// The device side of a split virtqueue (virtio 1.2 §2.7). Pure: no hardware,
// no kernel globals, guest memory only through GuestMemory.
//
// The guest (driver) runs on other CPUs and can rewrite its rings at any time,
// so every value read from them is read once into a local and checked there
// (STYLE.md §12). A rule broken by the driver puts the queue into a sticky
// error state naming the BrokenReason; the device then marks itself broken
// (Device::mark_broken) and touches the queue no more until it is rebound.
//
// Not thread-safe: the device serializes each queue with its own lock.

#include <stddef.h>
#include <stdint.h>

#include "kernel/guest/guest_memory.hpp"
#include "kernel/virtio/virtio_device.hpp"

namespace hv::virtio {

// §2.7.5 descriptor flags.
inline constexpr uint16_t VIRTQ_DESC_F_NEXT = 1;
inline constexpr uint16_t VIRTQ_DESC_F_WRITE = 2;
inline constexpr uint16_t VIRTQ_DESC_F_INDIRECT = 4;
// §2.7.6: the driver asks for no used-buffer notifications (without EVENT_IDX).
inline constexpr uint16_t VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
// §2.7.8: the device asks for no available-buffer notifications (without EVENT_IDX).
inline constexpr uint16_t VIRTQ_USED_F_NO_NOTIFY = 1;

// §2.7.5 struct virtq_desc, as it lies in guest memory (little-endian).
struct VirtqDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);
static_assert(offsetof(VirtqDesc, addr) == 0 && offsetof(VirtqDesc, len) == 8);
static_assert(offsetof(VirtqDesc, flags) == 12 && offsetof(VirtqDesc, next) == 14);

// §2.7.8 struct virtq_used_elem.
struct VirtqUsedElem {
    uint32_t id;
    uint32_t len;
};
static_assert(sizeof(VirtqUsedElem) == 8 && offsetof(VirtqUsedElem, len) == 4);

// §2.7.6 / §2.7.8 ring layouts: flags (u16), idx (u16), ring[size], then the
// EVENT_IDX word (used_event in the available ring, avail_event in the used ring).
inline constexpr uint64_t kRingFlagsOff = 0;
inline constexpr uint64_t kRingIdxOff = 2;
inline constexpr uint64_t kRingEntriesOff = 4;
inline constexpr uint64_t kAvailEntrySize = 2;
inline constexpr uint64_t kUsedEntrySize = sizeof(VirtqUsedElem);
constexpr uint64_t avail_ring_bytes(uint16_t size) {
    return kRingEntriesOff + kAvailEntrySize * size + 2;
}
constexpr uint64_t used_ring_bytes(uint16_t size) {
    return kRingEntriesOff + kUsedEntrySize * size + 2;
}

// §2.7.7 / §2.7.10 (Linux's vring_need_event): true when the index `event_idx` the
// other side asked to be told about lies in [old_idx, new_idx), modulo 2^16.
constexpr bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
    return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

// Longest chain the device accepts. Linux never builds longer ones without
// INDIRECT (which we do not offer): MAX_SKB_FRAGS + 2 for TX, 1 or
// MAX_SKB_FRAGS + 2 for RX.
inline constexpr uint16_t kMaxChainBuffers = 64;

// One descriptor's buffer, already checked to lie inside guest RAM.
struct ChainBuffer {
    uint8_t* data;
    uint32_t len;
};

// A descriptor chain popped from the available ring.
struct Chain {
    uint16_t head;   // descriptor index to return in the used element
    uint16_t count;  // buffers[0, count)
    uint64_t bytes;  // sum of the buffer lengths
    ChainBuffer buffers[kMaxChainBuffers];
};

// Which way data flows through a queue: every descriptor of every chain must
// say so with its WRITE flag (§2.7.5: WRITE = device-writable).
enum class QueueDirection : uint8_t {
    device_reads,   // driver -> device, e.g. transmitq: no WRITE flag
    device_writes,  // device -> driver, e.g. receiveq: WRITE flag on every descriptor
};

enum class PopStatus : uint8_t {
    chain,   // out holds the next chain
    empty,   // nothing available
    broken,  // the driver broke a rule: error() says which
};

class SplitQueue {
  public:
    // Binds to rings the device core validated at DRIVER_OK; checked again
    // here (power-of-two size, alignment, rings inside RAM). false: not bound.
    bool bind(const guest::GuestMemory& mem, const QueueConfig& cfg, QueueDirection dir, bool event_idx);
    void unbind();
    bool bound() const { return size_ != 0; }
    uint16_t size() const { return size_; }
    bool event_idx() const { return event_idx_; }

    // Next available chain. avail.idx is read once and cached until the
    // chains it announced are used up (one read per batch).
    [[nodiscard]] PopStatus pop(Chain& out);
    // Why pop() returned broken; sticky until bind().
    BrokenReason error() const { return error_; }
    // Gives back the last n popped chains that were not pushed (used when a
    // receive frame does not fit: the buffers stay available).
    void discard(uint16_t n);

    // Stages a used element (invisible to the driver until publish()).
    void push(uint16_t head, uint32_t len);
    // Drops the last n staged, unpublished elements.
    void unpush(uint16_t n);
    // Makes every staged element visible: release store of used.idx (§2.7.8).
    void publish();

    // Used buffer notification (§2.7.7) for everything published
    // since the previous call: true if the driver wants an interrupt.
    bool should_interrupt();
    // Available buffer notifications (§2.7.10): stop them while the
    // device is polling the ring anyway...
    void disable_notifications();
    // ...and ask for them again. Returns true if buffers arrived meanwhile
    // (the driver may have checked before we asked): the caller must process
    // them, as no notification will come for them.
    [[nodiscard]] bool enable_notifications();

    uint16_t last_avail() const { return last_avail_; }
    uint16_t used_idx() const { return used_idx_; }         // staged, shadow
    uint16_t published_used() const { return published_; }  // visible to the driver

  private:
    PopStatus fail(BrokenReason r);
    uint16_t load_avail_idx() const;

    guest::GuestMemory mem_;
    uint8_t* desc_ = nullptr;
    uint8_t* avail_ = nullptr;
    uint8_t* used_ = nullptr;
    uint16_t size_ = 0;
    QueueDirection dir_ = QueueDirection::device_reads;
    bool event_idx_ = false;
    BrokenReason error_ = BrokenReason::none;
    uint16_t last_avail_ = 0;    // next available-ring slot to consume
    uint16_t avail_shadow_ = 0;  // avail.idx as read last
    uint16_t used_idx_ = 0;      // next used-ring slot to fill
    uint16_t published_ = 0;     // used.idx as last stored
    uint16_t signalled_ = 0;     // used.idx at the last should_interrupt()
};

}  // namespace hv::virtio
