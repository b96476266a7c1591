// The guest driver's split virtqueue (guests/runtime/split_queue.cpp) against a
// fake device written from virtio 1.2 §2.7: descriptor and ring layout,
// notification suppression both ways with and without VIRTIO_F_EVENT_IDX
// (including 16-bit index wrap-around), and a device that returns garbage.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "guests/runtime/split_queue.hpp"

using hvg::SplitQueue;
using hvg::VirtqDesc;

namespace {

// The device side of one split ring, straight from §2.7.
struct FakeDevice {
    static constexpr uint16_t kMax = SplitQueue::kMaxSize;
    alignas(16) VirtqDesc desc[kMax];
    alignas(2) uint8_t avail[hvg::virtq_avail_bytes(kMax)];
    alignas(4) uint8_t used[hvg::virtq_used_bytes(kMax)];
    uint16_t size = 0;
    bool event_idx = false;
    uint16_t last_avail = 0;  // device's position in the available ring
    uint16_t used_idx = 0;
    uint64_t interrupts = 0;

    uint16_t rd16(const uint8_t* base, size_t off) const {
        uint16_t v;
        std::memcpy(&v, base + off, 2);
        return v;
    }
    void wr16(uint8_t* base, size_t off, uint16_t v) { std::memcpy(base + off, &v, 2); }
    void wr32(uint8_t* base, size_t off, uint32_t v) { std::memcpy(base + off, &v, 4); }

    uint16_t avail_idx() const { return rd16(avail, 2); }
    uint16_t avail_flags() const { return rd16(avail, 0); }
    uint16_t avail_ring(uint16_t k) const { return rd16(avail, 4 + 2u * (k & (size - 1))); }
    uint16_t used_event() const { return rd16(avail, 4 + 2u * size); }
    void set_avail_event(uint16_t v) { wr16(used, 4 + 8u * size, v); }
    void set_used_flags(uint16_t v) { wr16(used, 0, v); }

    // Takes every available buffer and returns it used (len = `len`), then
    // decides on a used buffer notification as §2.7.10 says.
    size_t consume_all(uint32_t len) {
        size_t n = 0;
        uint16_t old = used_idx;
        while (last_avail != avail_idx()) {
            uint16_t head = avail_ring(last_avail++);
            put_used(head, len);
            ++n;
        }
        if (n) signal(old);
        return n;
    }
    void put_used(uint32_t id, uint32_t len) {
        size_t e = 4 + 8u * (used_idx & (size - 1));
        wr32(used, e, id);
        wr32(used, e + 4, len);
        ++used_idx;
        wr16(used, 2, used_idx);
    }
    void signal(uint16_t old) {
        bool fire = event_idx ? hvg::vring_need_event(used_event(), used_idx, old)
                              : !(avail_flags() & hvg::VIRTQ_AVAIL_F_NO_INTERRUPT);
        if (fire) ++interrupts;
    }
};

struct Fixture {
    FakeDevice dev;
    SplitQueue q;
    explicit Fixture(uint16_t size, bool event_idx) {
        dev.size = size;
        dev.event_idx = event_idx;
        EXPECT_TRUE(q.init(size, event_idx, dev.desc, dev.avail, dev.used));
    }
};

}  // namespace

TEST(GuestSplitQueue, NeedEventMatchesTheSpecFormula) {
    // §2.7.10: notify when new_idx passed event_idx since old_idx.
    EXPECT_TRUE(hvg::vring_need_event(0, 1, 0));
    EXPECT_FALSE(hvg::vring_need_event(1, 1, 0));
    EXPECT_TRUE(hvg::vring_need_event(5, 10, 3));
    EXPECT_FALSE(hvg::vring_need_event(10, 10, 3));
    EXPECT_FALSE(hvg::vring_need_event(2, 10, 3));
    EXPECT_TRUE(hvg::vring_need_event(0xFFFF, 2, 0xFFFE));  // across the 16-bit wrap
    EXPECT_FALSE(hvg::vring_need_event(2, 2, 0xFFFE));
}

TEST(GuestSplitQueue, InitChecksSizeAndAlignment) {
    FakeDevice d;
    SplitQueue q;
    EXPECT_FALSE(q.init(0, false, d.desc, d.avail, d.used));
    EXPECT_FALSE(q.init(6, false, d.desc, d.avail, d.used));
    EXPECT_FALSE(q.init(512, false, d.desc, d.avail, d.used));
    EXPECT_FALSE(q.init(8, false, reinterpret_cast<uint8_t*>(d.desc) + 8, d.avail, d.used));
    EXPECT_FALSE(q.init(8, false, d.desc, d.avail + 1, d.used));
    EXPECT_FALSE(q.init(8, false, d.desc, d.avail, d.used + 2));
    EXPECT_TRUE(q.init(256, false, d.desc, d.avail, d.used));
    EXPECT_TRUE(q.init(1, false, d.desc, d.avail, d.used));
}

TEST(GuestSplitQueue, AddWritesDescriptorAndRingPublishExposesIndex) {
    Fixture f(8, false);
    ASSERT_TRUE(f.q.add(3, 0x123456, 2048, true));
    ASSERT_TRUE(f.q.add(5, 0xABC000, 60, false));
    EXPECT_FALSE(f.q.add(3, 0, 1, true));  // already offered
    EXPECT_FALSE(f.q.add(8, 0, 1, true));  // out of range
    EXPECT_EQ(f.dev.avail_idx(), 0);       // not yet published
    EXPECT_EQ(f.dev.desc[3].addr, 0x123456u);
    EXPECT_EQ(f.dev.desc[3].len, 2048u);
    EXPECT_EQ(f.dev.desc[3].flags, hvg::VIRTQ_DESC_F_WRITE);
    EXPECT_EQ(f.dev.desc[5].flags, 0);
    EXPECT_TRUE(f.q.publish());  // no NO_NOTIFY: the device wants to hear
    EXPECT_EQ(f.dev.avail_idx(), 2);
    EXPECT_EQ(f.dev.avail_ring(0), 3);
    EXPECT_EQ(f.dev.avail_ring(1), 5);
    EXPECT_FALSE(f.q.publish());  // nothing new
    EXPECT_EQ(f.q.in_flight(), 2);
}

TEST(GuestSplitQueue, NoNotifyFlagSuppressesKicksWithoutEventIdx) {
    Fixture f(8, false);
    f.dev.set_used_flags(hvg::VIRTQ_USED_F_NO_NOTIFY);
    f.q.add(0, 0x1000, 64, false);
    EXPECT_FALSE(f.q.publish());
    f.dev.set_used_flags(0);
    f.q.add(1, 0x1000, 64, false);
    EXPECT_TRUE(f.q.publish());
}

TEST(GuestSplitQueue, AvailEventDecidesKicksWithEventIdx) {
    Fixture f(8, true);
    // The device wants to hear when avail.idx moves past 2.
    f.dev.set_avail_event(2);
    f.q.add(0, 0x1000, 64, false);
    EXPECT_FALSE(f.q.publish());  // 0 -> 1: entry 2 not yet written
    f.q.add(1, 0x1000, 64, false);
    EXPECT_FALSE(f.q.publish());  // 1 -> 2
    f.q.add(2, 0x1000, 64, false);
    f.q.add(3, 0x1000, 64, false);
    EXPECT_TRUE(f.q.publish());  // 2 -> 4 crosses entry 2
    f.q.add(4, 0x1000, 64, false);
    EXPECT_FALSE(f.q.publish());  // already told; event not moved
}

TEST(GuestSplitQueue, UsedBuffersComeBackAndGarbageIsSkipped) {
    Fixture f(8, false);
    for (uint16_t id = 0; id < 4; ++id) f.q.add(id, 0x1000u * id, 100, true);
    f.q.publish();
    f.dev.last_avail = 4;
    f.dev.put_used(2, 60);
    f.dev.put_used(9, 60);  // no such descriptor
    f.dev.put_used(2, 60);  // returned twice
    f.dev.put_used(0, 1500);
    uint16_t id;
    uint32_t len;
    ASSERT_TRUE(f.q.next_used(&id, &len));
    EXPECT_EQ(id, 2);
    EXPECT_EQ(len, 60u);
    ASSERT_TRUE(f.q.next_used(&id, &len));
    EXPECT_EQ(id, 0);
    EXPECT_EQ(len, 1500u);
    EXPECT_FALSE(f.q.next_used(&id, &len));
    EXPECT_EQ(f.q.bad_used(), 2u);
    EXPECT_EQ(f.q.in_flight(), 2);
    EXPECT_TRUE(f.q.add(2, 0x2000, 100, true));  // id 2 is ours again
}

TEST(GuestSplitQueue, UsedIndexTooFarAheadMarksTheDeviceBroken) {
    Fixture f(8, false);
    f.q.add(0, 0x1000, 100, true);
    f.q.publish();
    f.dev.wr16(f.dev.used, 2, 9);  // 9 used of a ring of 8
    uint16_t id;
    uint32_t len;
    EXPECT_FALSE(f.q.next_used(&id, &len));
    EXPECT_TRUE(f.q.device_broken());
    EXPECT_FALSE(f.q.has_used());
}

TEST(GuestSplitQueue, EnableReportsPendingWorkAndSetsUsedEvent) {
    Fixture f(8, true);
    // Notifications start disabled: used_event sits just behind last_used.
    EXPECT_EQ(f.dev.used_event(), 0xFFFF);
    f.q.add(0, 0x1000, 100, true);
    f.q.publish();
    EXPECT_FALSE(f.q.enable_notifications());
    EXPECT_EQ(f.dev.used_event(), 0);
    EXPECT_EQ(f.dev.avail_flags(), 0);  // MUST be 0 with EVENT_IDX (§2.7.10.1)
    f.dev.consume_all(64);
    EXPECT_EQ(f.dev.interrupts, 1u);
    EXPECT_TRUE(f.q.enable_notifications());  // already used: process, do not wait

    Fixture g(8, false);
    EXPECT_EQ(g.dev.avail_flags(), hvg::VIRTQ_AVAIL_F_NO_INTERRUPT);
    EXPECT_FALSE(g.q.enable_notifications());
    EXPECT_EQ(g.dev.avail_flags(), 0);
    g.q.disable_notifications();
    EXPECT_EQ(g.dev.avail_flags(), hvg::VIRTQ_AVAIL_F_NO_INTERRUPT);
}

// 70,000 buffers through a ring of 8 (past the 16-bit index wrap), the way
// the RX path uses it: consume, re-offer, publish. Polling never takes an
// interrupt; arming before each wait takes exactly one per batch.
TEST(GuestSplitQueue, WrapAroundWithAndWithoutInterrupts) {
    for (bool event_idx : {false, true}) {
        for (bool armed : {false, true}) {
            Fixture f(8, event_idx);
            for (uint16_t id = 0; id < 8; ++id) f.q.add(id, 0x10000u + id * 2048u, 2048, true);
            f.q.publish();
            uint64_t received = 0, batches = 0;
            while (received < 70000) {
                if (armed) {
                    EXPECT_FALSE(f.q.enable_notifications());
                }
                ASSERT_EQ(f.dev.consume_all(100), 8u);
                ++batches;
                f.q.disable_notifications();
                uint16_t id;
                uint32_t len;
                std::vector<uint16_t> got;
                while (f.q.next_used(&id, &len)) got.push_back(id);
                ASSERT_EQ(got.size(), 8u);
                received += got.size();
                for (uint16_t g : got) ASSERT_TRUE(f.q.add(g, 0x10000u + g * 2048u, 2048, true));
                f.q.disable_notifications();  // refresh the "never" used_event
                f.q.publish();
            }
            EXPECT_EQ(f.q.bad_used(), 0u);
            EXPECT_FALSE(f.q.device_broken());
            EXPECT_EQ(f.dev.interrupts, armed ? batches : 0u) << "event_idx=" << event_idx;
        }
    }
}
