#pragma once
// The guest side of the virtio tests: a fake guest RAM with guard zones and a
// small split-virtqueue driver that lays out and fills rings the way Linux's
// virtio_ring does (descriptor table, available ring right after it, used
// ring 4-aligned; a free list of descriptors; EVENT_IDX kick decisions).
// Host-only (std::vector); shared by the unit tests and the virtqueue fuzzer,
// so it does not depend on GoogleTest.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernel/guest/guest_memory.hpp"
#include "kernel/virtio/virtqueue.hpp"

// Under AddressSanitizer the guard zones are also poisoned, so the first
// stray access (a read too) is reported where it happens.
#if defined(__SANITIZE_ADDRESS__)
#define HV_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HV_TEST_ASAN 1
#endif
#endif
#if defined(HV_TEST_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace hv::test {

// Guest RAM [0, size) inside a larger allocation: the guard zones on both
// sides are filled with a pattern that must survive every test (a device
// write outside the guest's RAM would land there, where ASan cannot see it).
class FakeGuestRam {
  public:
    static constexpr size_t kGuard = 4096;
    static constexpr uint8_t kGuardByte = 0xE7;

    explicit FakeGuestRam(uint64_t bytes) : buf_(bytes + 2 * kGuard, 0), size_(bytes) {
        std::memset(buf_.data(), kGuardByte, kGuard);
        std::memset(buf_.data() + kGuard + size_, kGuardByte, kGuard);
        poison(true);
    }
    ~FakeGuestRam() { poison(false); }
    FakeGuestRam(const FakeGuestRam&) = delete;
    FakeGuestRam& operator=(const FakeGuestRam&) = delete;

    guest::GuestMemory memory() { return guest::GuestMemory(ram(), size_); }
    uint8_t* ram() { return buf_.data() + kGuard; }
    uint64_t size() const { return size_; }

    // Test-side access (the "guest" writing its own memory). Aborts on a test bug.
    uint8_t* at(uint64_t gpa, uint64_t len = 1) {
        if (gpa > size_ || len > size_ - gpa) std::abort();
        return ram() + gpa;
    }
    void write(uint64_t gpa, const void* src, size_t len) { std::memcpy(at(gpa, len), src, len); }
    template <typename T>
    void put(uint64_t gpa, T v) {
        std::memcpy(at(gpa, sizeof v), &v, sizeof v);
    }
    template <typename T>
    T get(uint64_t gpa) {
        T v;
        std::memcpy(&v, at(gpa, sizeof v), sizeof v);
        return v;
    }

    bool guards_intact() {
        poison(false);
        bool ok = true;
        for (size_t i = 0; i < kGuard; ++i) {
            if (buf_[i] != kGuardByte || buf_[kGuard + size_ + i] != kGuardByte) ok = false;
        }
        poison(true);
        return ok;
    }

  private:
    void poison(bool on) {
#if defined(HV_TEST_ASAN)
        if (on) {
            ASAN_POISON_MEMORY_REGION(buf_.data(), kGuard);
            ASAN_POISON_MEMORY_REGION(buf_.data() + kGuard + size_, kGuard);
        } else {
            ASAN_UNPOISON_MEMORY_REGION(buf_.data(), buf_.size());
        }
#else
        (void)on;
#endif
    }

    std::vector<uint8_t> buf_;
    uint64_t size_;
};

struct DriverBuf {
    uint64_t gpa;
    uint32_t len;
    bool device_writable;
};

// The driver side of one split virtqueue.
class TestQueue {
  public:
    TestQueue(FakeGuestRam& ram, uint64_t base_gpa, uint16_t size)
        : ram_(ram),
          size_(size),
          desc_(base_gpa),
          avail_(desc_ + 16ull * size),
          used_((avail_ + virtio::avail_ring_bytes(size) + 3) & ~3ull),
          chains_(size) {
        for (uint16_t i = size; i > 0; --i) free_.push_back(static_cast<uint16_t>(i - 1));
        std::memset(ram_.at(desc_, end_gpa() - desc_), 0, end_gpa() - desc_);
    }

    virtio::QueueConfig config() const { return virtio::QueueConfig{size_, true, desc_, avail_, used_}; }
    uint64_t end_gpa() const { return used_ + virtio::used_ring_bytes(size_); }
    uint16_t size() const { return size_; }
    uint64_t desc_gpa() const { return desc_; }
    uint64_t avail_gpa() const { return avail_; }
    uint64_t used_gpa() const { return used_; }
    size_t free_descriptors() const { return free_.size(); }

    // Adds one chain (descriptors from the free list, like virtqueue_add) and,
    // with publish, exposes it by bumping avail.idx. Returns the head, or
    // 0xFFFF if there are not enough free descriptors.
    uint16_t add(const std::vector<DriverBuf>& bufs, bool publish_now = true) {
        if (bufs.empty() || bufs.size() > free_.size()) return 0xFFFF;
        std::vector<uint16_t> ids;
        for (size_t i = 0; i < bufs.size(); ++i) {
            ids.push_back(free_.back());
            free_.pop_back();
        }
        for (size_t i = 0; i < bufs.size(); ++i) {
            uint16_t flags = bufs[i].device_writable ? virtio::VIRTQ_DESC_F_WRITE : 0;
            uint16_t next = 0;
            if (i + 1 < bufs.size()) {
                flags |= virtio::VIRTQ_DESC_F_NEXT;
                next = ids[i + 1];
            }
            set_desc(ids[i], bufs[i].gpa, bufs[i].len, flags, next);
        }
        chains_[ids[0]] = ids;
        put_avail(ids[0]);
        if (publish_now) publish();
        return ids[0];
    }

    // Raw access, for hostile rings.
    void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        const uint64_t d = desc_ + 16ull * i;
        ram_.put<uint64_t>(d, addr);
        ram_.put<uint32_t>(d + 8, len);
        ram_.put<uint16_t>(d + 12, flags);
        ram_.put<uint16_t>(d + 14, next);
    }
    void put_avail(uint16_t head) {
        ram_.put<uint16_t>(avail_ + 4 + 2ull * (shadow_avail_ % size_), head);
        ++shadow_avail_;
    }
    // Exposes everything put_avail()ed: returns whether Linux would kick
    // (virtqueue_kick_prepare: used flags or avail_event).
    bool publish(bool event_idx = false) {
        const uint16_t old_idx = avail_idx();
        set_avail_idx(shadow_avail_);
        if (event_idx) return virtio::vring_need_event(avail_event(), shadow_avail_, old_idx);
        return (used_flags() & virtio::VIRTQ_USED_F_NO_NOTIFY) == 0;
    }
    void set_avail_idx(uint16_t v) { ram_.put<uint16_t>(avail_ + 2, v); }
    uint16_t avail_idx() { return ram_.get<uint16_t>(avail_ + 2); }
    void set_avail_flags(uint16_t f) { ram_.put<uint16_t>(avail_, f); }
    void set_used_event(uint16_t v) { ram_.put<uint16_t>(avail_ + 4 + 2ull * size_, v); }

    uint16_t used_flags() { return ram_.get<uint16_t>(used_); }
    uint16_t used_idx() { return ram_.get<uint16_t>(used_ + 2); }
    uint16_t avail_event() { return ram_.get<uint16_t>(used_ + 4 + 8ull * size_); }
    virtio::VirtqUsedElem used_elem(uint16_t i) {
        virtio::VirtqUsedElem e;
        e.id = ram_.get<uint32_t>(used_ + 4 + 8ull * (i % size_));
        e.len = ram_.get<uint32_t>(used_ + 8 + 8ull * (i % size_));
        return e;
    }

    // New used elements since the last call; their descriptors go back on the
    // free list (virtqueue_get_buf).
    std::vector<virtio::VirtqUsedElem> take_used() {
        std::vector<virtio::VirtqUsedElem> out;
        const uint16_t idx = used_idx();
        while (last_used_ != idx) {
            const virtio::VirtqUsedElem e = used_elem(last_used_++);
            out.push_back(e);
            if (e.id < size_) {
                for (uint16_t d : chains_[e.id]) free_.push_back(d);
                chains_[e.id].clear();
            }
        }
        return out;
    }

  private:
    FakeGuestRam& ram_;
    uint16_t size_;
    uint64_t desc_;
    uint64_t avail_;
    uint64_t used_;
    uint16_t shadow_avail_ = 0;
    uint16_t last_used_ = 0;
    std::vector<uint16_t> free_;
    std::vector<std::vector<uint16_t>> chains_;
};

// Bump allocator for buffers in the fake RAM.
class BufferArena {
  public:
    BufferArena(uint64_t start, uint64_t end) : next_(start), end_(end) {}
    uint64_t alloc(uint32_t len) {
        const uint64_t at = (next_ + 15) & ~15ull;
        if (at + len > end_) std::abort();
        next_ = at + len;
        return at;
    }

  private:
    uint64_t next_;
    uint64_t end_;
};

}  // namespace hv::test
