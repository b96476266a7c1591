// The device side of the split virtqueue (kernel/virtio/virtqueue.cpp) against
// a fake guest RAM and a driver that lays out rings like Linux: popping chains,
// used publication, both directions of notification suppression, and every
// kind of hostile chain (each must end as the right BrokenReason, with nothing
// written outside the guest's RAM).
#include <gtest/gtest.h>

#include <vector>

#include "kernel/virtio/virtqueue.hpp"
#include "tests/unit/support/virtio_test_driver.hpp"

using hv::test::BufferArena;
using hv::test::DriverBuf;
using hv::test::FakeGuestRam;
using hv::test::TestQueue;
using hv::virtio::BrokenReason;
using hv::virtio::Chain;
using hv::virtio::PopStatus;
using hv::virtio::QueueDirection;
using hv::virtio::SplitQueue;
using hv::virtio::vring_need_event;

namespace {

constexpr uint64_t kRam = 1 << 20;

struct Fixture {
    explicit Fixture(uint16_t size = 16, QueueDirection dir = QueueDirection::device_reads, bool event_idx = false)
        : ram(kRam), drv(ram, 0x1000, size), arena(0x40000, kRam) {
        EXPECT_TRUE(q.bind(ram.memory(), drv.config(), dir, event_idx));
    }
    FakeGuestRam ram;
    TestQueue drv;
    BufferArena arena;
    SplitQueue q;
    Chain c{};
};

}  // namespace

// §2.7.7 / §2.7.10: the event index lies in [old, new) modulo 2^16.
TEST(VringNeedEvent, SpecTable) {
    struct Case {
        uint16_t event, new_idx, old_idx;
        bool want;
    } const cases[] = {
        {0, 1, 0, true},          // used_event 0: notify after the first buffer (§2.7.7.2 note)
        {0, 2, 1, false},         // ...and not again until 65536
        {5, 8, 3, true},          // crossed inside the batch
        {2, 8, 3, false},         // already behind
        {8, 8, 3, false},         // not reached yet
        {7, 8, 3, true},          // last one of the batch
        {65535, 2, 65530, true},  // wraps
        {1, 2, 65530, true},     {2, 2, 65530, false}, {3, 3, 3, false},  // nothing new
    };
    for (const Case& c : cases) {
        EXPECT_EQ(vring_need_event(c.event, c.new_idx, c.old_idx), c.want)
            << "event=" << c.event << " new=" << c.new_idx << " old=" << c.old_idx;
    }
}

TEST(SplitQueue, BindChecksTheRingsAgain) {
    FakeGuestRam ram(kRam);
    TestQueue drv(ram, 0x1000, 16);
    SplitQueue q;
    struct Case {
        const char* what;
        hv::virtio::QueueConfig cfg;
    } const cases[] = {
        {"size 0", {0, true, 0x1000, 0x2000, 0x3000}},
        {"size 24", {24, true, 0x1000, 0x2000, 0x3000}},
        {"desc misaligned", {16, true, 0x1008, 0x2000, 0x3000}},
        {"avail misaligned", {16, true, 0x1000, 0x2001, 0x3000}},
        {"used misaligned", {16, true, 0x1000, 0x2000, 0x3002}},
        {"desc past RAM", {16, true, kRam - 0x80, 0x2000, 0x3000}},
        {"used straddles end", {16, true, 0x1000, 0x2000, kRam - 0x40}},
        {"avail wraps 2^64", {16, true, 0x1000, ~0ull - 1, 0x3000}},
    };
    for (const Case& c : cases) {
        EXPECT_FALSE(q.bind(ram.memory(), c.cfg, QueueDirection::device_reads, false)) << c.what;
        EXPECT_FALSE(q.bound()) << c.what;
    }
    EXPECT_TRUE(q.bind(ram.memory(), drv.config(), QueueDirection::device_reads, false));
    EXPECT_EQ(q.size(), 16);
}

TEST(SplitQueue, EmptyRingPopsNothing) {
    Fixture f;
    EXPECT_EQ(f.q.pop(f.c), PopStatus::empty);
    EXPECT_EQ(f.q.error(), BrokenReason::none);
}

TEST(SplitQueue, PopsSingleAndMultiDescriptorChainsInOrder) {
    Fixture f;
    const uint64_t a = f.arena.alloc(100), b = f.arena.alloc(12), c = f.arena.alloc(1514);
    const uint16_t h1 = f.drv.add({{a, 100, false}});
    const uint16_t h2 = f.drv.add({{b, 12, false}, {c, 1514, false}});

    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    EXPECT_EQ(f.c.head, h1);
    ASSERT_EQ(f.c.count, 1);
    EXPECT_EQ(f.c.buffers[0].data, f.ram.at(a));
    EXPECT_EQ(f.c.buffers[0].len, 100u);
    EXPECT_EQ(f.c.bytes, 100u);

    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    EXPECT_EQ(f.c.head, h2);
    ASSERT_EQ(f.c.count, 2);
    EXPECT_EQ(f.c.buffers[0].data, f.ram.at(b));
    EXPECT_EQ(f.c.buffers[1].data, f.ram.at(c));
    EXPECT_EQ(f.c.bytes, 1526u);
    EXPECT_EQ(f.q.pop(f.c), PopStatus::empty);
    EXPECT_EQ(f.q.last_avail(), 2);
}

TEST(SplitQueue, UsedEntriesAreInvisibleUntilPublished) {
    Fixture f;
    const uint64_t a = f.arena.alloc(64);
    const uint16_t h = f.drv.add({{a, 64, false}});
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    f.q.push(f.c.head, 0);
    EXPECT_EQ(f.drv.used_idx(), 0);  // staged only
    EXPECT_EQ(f.drv.used_elem(0).id, h);
    f.q.publish();
    EXPECT_EQ(f.drv.used_idx(), 1);
    auto used = f.drv.take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, h);
    EXPECT_EQ(used[0].len, 0u);
}

TEST(SplitQueue, UnpushAndDiscardGiveEverythingBack) {
    Fixture f(16, QueueDirection::device_writes);
    const uint64_t a = f.arena.alloc(64), b = f.arena.alloc(64);
    const uint16_t h1 = f.drv.add({{a, 64, true}});
    f.drv.add({{b, 64, true}});
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    f.q.push(f.c.head, 64);
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    f.q.push(f.c.head, 64);
    f.q.unpush(2);
    f.q.discard(2);
    f.q.publish();
    EXPECT_EQ(f.drv.used_idx(), 0);
    EXPECT_EQ(f.q.last_avail(), 0);
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);  // the same chain again
    EXPECT_EQ(f.c.head, h1);
}

TEST(SplitQueue, WrapsAroundTheRingAndIndex) {
    Fixture f(4);
    const uint64_t a = f.arena.alloc(32);
    for (int i = 0; i < 70000; ++i) {  // past 2^16 on both indices
        ASSERT_NE(f.drv.add({{a, 32, false}}), 0xFFFF);
        ASSERT_EQ(f.q.pop(f.c), PopStatus::chain) << i;
        f.q.push(f.c.head, 0);
        f.q.publish();
        ASSERT_EQ(f.drv.take_used().size(), 1u);
    }
    EXPECT_EQ(f.q.last_avail(), static_cast<uint16_t>(70000));
    EXPECT_EQ(f.drv.used_idx(), static_cast<uint16_t>(70000));
}

// The index is read once per batch: a value changed under us after the read
// does not count until the batch it announced is consumed, and is then checked.
TEST(SplitQueue, AvailIndexIsReadOncePerBatch) {
    Fixture f;
    const uint64_t a = f.arena.alloc(32);
    f.drv.add({{a, 32, false}}, false);
    f.drv.add({{a, 32, false}}, false);
    f.drv.publish();
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    f.drv.set_avail_idx(1000);                  // hostile jump after our read
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);  // still the announced batch
    EXPECT_EQ(f.q.pop(f.c), PopStatus::broken);
    EXPECT_EQ(f.q.error(), BrokenReason::bad_avail_index);
}

TEST(SplitQueue, AvailIndexMayMoveByExactlyTheQueueSize) {
    Fixture f(8);
    const uint64_t a = f.arena.alloc(32);
    for (int i = 0; i < 8; ++i) f.drv.add({{a, 32, false}}, false);
    f.drv.publish();
    for (int i = 0; i < 8; ++i) ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    EXPECT_EQ(f.q.pop(f.c), PopStatus::empty);
}

// ---- Hostile chains: each one, the reason, and the guard bytes ----

namespace {

struct HostileCase {
    const char* what;
    QueueDirection dir;
    uint16_t size;
    void (*build)(TestQueue& q, uint64_t buf);
    BrokenReason want;
};

void put_head(TestQueue& q, uint16_t head) {
    q.put_avail(head);
    q.publish();
}

const HostileCase kHostile[] = {
    {"loop of two", QueueDirection::device_reads, 16,
     [](TestQueue& q, uint64_t b) {
         q.set_desc(0, b, 16, hv::virtio::VIRTQ_DESC_F_NEXT, 1);
         q.set_desc(1, b, 16, hv::virtio::VIRTQ_DESC_F_NEXT, 0);
         put_head(q, 0);
     },
     BrokenReason::chain_too_long},
    {"self loop", QueueDirection::device_writes, 256,
     [](TestQueue& q, uint64_t b) {
         q.set_desc(7, b, 16, hv::virtio::VIRTQ_DESC_F_NEXT | hv::virtio::VIRTQ_DESC_F_WRITE, 7);
         put_head(q, 7);
     },
     BrokenReason::chain_too_long},
    {"65 descriptors (over the device limit)", QueueDirection::device_reads, 256,
     [](TestQueue& q, uint64_t b) {
         for (uint16_t i = 0; i < 65; ++i) q.set_desc(i, b, 16, i < 64 ? hv::virtio::VIRTQ_DESC_F_NEXT : 0, i + 1);
         put_head(q, 0);
     },
     BrokenReason::chain_too_long},
    {"9 descriptors in a queue of 8", QueueDirection::device_reads, 8,
     [](TestQueue& q, uint64_t b) {
         // Only 8 descriptors exist, so a 9th must revisit one: a loop.
         for (uint16_t i = 0; i < 8; ++i) q.set_desc(i, b, 16, hv::virtio::VIRTQ_DESC_F_NEXT, (i + 1) % 8);
         put_head(q, 0);
     },
     BrokenReason::chain_too_long},
    {"address outside RAM", QueueDirection::device_reads, 16,
     [](TestQueue& q, uint64_t) {
         q.set_desc(0, kRam, 16, 0, 0);
         put_head(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"buffer straddles the end of RAM", QueueDirection::device_writes, 16,
     [](TestQueue& q, uint64_t) {
         q.set_desc(0, kRam - 8, 16, hv::virtio::VIRTQ_DESC_F_WRITE, 0);
         put_head(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"address + len wraps 2^64", QueueDirection::device_writes, 16,
     [](TestQueue& q, uint64_t) {
         q.set_desc(0, ~0ull - 7, 16, hv::virtio::VIRTQ_DESC_F_WRITE, 0);
         put_head(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"len 0", QueueDirection::device_reads, 16,
     [](TestQueue& q, uint64_t b) {
         q.set_desc(0, b, 0, 0, 0);
         put_head(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"WRITE on a device-readable queue", QueueDirection::device_reads, 16,
     [](TestQueue& q, uint64_t b) {
         q.set_desc(0, b, 12, hv::virtio::VIRTQ_DESC_F_NEXT, 1);
         q.set_desc(1, b, 64, hv::virtio::VIRTQ_DESC_F_WRITE, 0);
         put_head(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"no WRITE on a device-writable queue", QueueDirection::device_writes, 16,
     [](TestQueue& q, uint64_t b) {
         q.set_desc(0, b, 64, 0, 0);
         put_head(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"head index out of range", QueueDirection::device_reads, 16, [](TestQueue& q, uint64_t) { put_head(q, 16); },
     BrokenReason::bad_descriptor},
    {"next index out of range", QueueDirection::device_reads, 16,
     [](TestQueue& q, uint64_t b) {
         q.set_desc(0, b, 16, hv::virtio::VIRTQ_DESC_F_NEXT, 0xFFFF);
         put_head(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"INDIRECT (not offered)", QueueDirection::device_reads, 16,
     [](TestQueue& q, uint64_t b) {
         q.set_desc(0, b, 32, hv::virtio::VIRTQ_DESC_F_INDIRECT, 0);
         put_head(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"avail.idx jumps by size + 1", QueueDirection::device_reads, 16,
     [](TestQueue& q, uint64_t) { q.set_avail_idx(17); }, BrokenReason::bad_avail_index},
    {"avail.idx goes backwards", QueueDirection::device_reads, 16,
     [](TestQueue& q, uint64_t) { q.set_avail_idx(0xFFFF); }, BrokenReason::bad_avail_index},
};

}  // namespace

TEST(SplitQueue, HostileChainsEndAsTheRightReason) {
    for (const HostileCase& hc : kHostile) {
        Fixture f(hc.size, hc.dir);
        const uint64_t buf = f.arena.alloc(4096);
        hc.build(f.drv, buf);
        EXPECT_EQ(f.q.pop(f.c), PopStatus::broken) << hc.what;
        EXPECT_EQ(f.q.error(), hc.want) << hc.what;
        // Sticky: nothing more comes out of a broken queue.
        EXPECT_EQ(f.q.pop(f.c), PopStatus::broken) << hc.what;
        EXPECT_FALSE(f.q.enable_notifications()) << hc.what;
        EXPECT_TRUE(f.ram.guards_intact()) << hc.what;
        EXPECT_EQ(f.q.last_avail(), 0) << hc.what;
    }
}

TEST(SplitQueue, LongestAcceptedChainIsTheDeviceLimit) {
    Fixture f(256);
    const uint64_t b = f.arena.alloc(64);
    for (uint16_t i = 0; i < 64; ++i) f.drv.set_desc(i, b, 1, i < 63 ? hv::virtio::VIRTQ_DESC_F_NEXT : 0, i + 1);
    f.drv.put_avail(0);
    f.drv.publish();
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    EXPECT_EQ(f.c.count, 64);
    EXPECT_EQ(f.c.bytes, 64u);
}

TEST(SplitQueue, RebindClearsTheError) {
    Fixture f;
    f.drv.set_avail_idx(100);
    ASSERT_EQ(f.q.pop(f.c), PopStatus::broken);
    f.drv.set_avail_idx(0);
    ASSERT_TRUE(f.q.bind(f.ram.memory(), f.drv.config(), QueueDirection::device_reads, false));
    EXPECT_EQ(f.q.error(), BrokenReason::none);
    EXPECT_EQ(f.q.pop(f.c), PopStatus::empty);
}

// ---- Used buffer notifications (§2.7.7) ----

TEST(SplitQueue, WithoutEventIdxTheNoInterruptFlagDecides) {
    Fixture f;
    const uint64_t a = f.arena.alloc(32);
    f.drv.add({{a, 32, false}});
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    EXPECT_FALSE(f.q.should_interrupt());  // nothing published yet
    f.q.push(f.c.head, 0);
    f.q.publish();
    EXPECT_TRUE(f.q.should_interrupt());
    EXPECT_FALSE(f.q.should_interrupt());  // already signalled

    f.drv.set_avail_flags(hv::virtio::VIRTQ_AVAIL_F_NO_INTERRUPT);
    f.drv.take_used();
    f.drv.add({{a, 32, false}});
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    f.q.push(f.c.head, 0);
    f.q.publish();
    EXPECT_FALSE(f.q.should_interrupt());
}

TEST(SplitQueue, WithEventIdxInterruptsOnlyWhenUsedEventIsCrossed) {
    Fixture f(16, QueueDirection::device_reads, true);
    const uint64_t a = f.arena.alloc(32);
    // The flag is ignored under EVENT_IDX (§2.7.7.2).
    f.drv.set_avail_flags(hv::virtio::VIRTQ_AVAIL_F_NO_INTERRUPT);
    f.drv.set_used_event(2);  // "tell me when entry 2 is used"
    auto use_one = [&] {
        f.drv.add({{a, 32, false}});
        ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
        f.q.push(f.c.head, 0);
        f.q.publish();
        f.drv.take_used();
    };
    use_one();  // used.idx 0 -> 1
    EXPECT_FALSE(f.q.should_interrupt());
    use_one();  // 1 -> 2
    EXPECT_FALSE(f.q.should_interrupt());
    use_one();  // 2 -> 3: entry 2 written
    EXPECT_TRUE(f.q.should_interrupt());
    use_one();
    EXPECT_FALSE(f.q.should_interrupt());
    // Several entries in one batch that include the event.
    f.drv.set_used_event(5);
    use_one();  // 4 -> 5
    use_one();  // 5 -> 6
    EXPECT_TRUE(f.q.should_interrupt());
}

// ---- Available buffer notifications (§2.7.10) ----

TEST(SplitQueue, WithoutEventIdxTheDeviceTogglesNoNotify) {
    Fixture f;
    f.q.disable_notifications();
    EXPECT_EQ(f.drv.used_flags(), hv::virtio::VIRTQ_USED_F_NO_NOTIFY);
    const uint64_t a = f.arena.alloc(32);
    f.drv.add({{a, 32, false}}, false);
    EXPECT_FALSE(f.drv.publish());            // Linux would not kick
    EXPECT_TRUE(f.q.enable_notifications());  // the race: it arrived while disabled
    EXPECT_EQ(f.drv.used_flags(), 0);
    ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    EXPECT_FALSE(f.q.enable_notifications());
    f.drv.add({{a, 32, false}}, false);
    EXPECT_TRUE(f.drv.publish());  // now it kicks
}

TEST(SplitQueue, WithEventIdxTheDeviceWritesAvailEvent) {
    Fixture f(16, QueueDirection::device_reads, true);
    const uint64_t a = f.arena.alloc(32);
    f.q.disable_notifications();
    EXPECT_EQ(f.drv.used_flags(), 0);  // §2.7.10.2: flags stay 0 under EVENT_IDX
    for (int i = 0; i < 3; ++i) f.drv.add({{a, 32, false}}, false);
    EXPECT_TRUE(f.drv.publish(true));  // avail_event 0 is crossed once
    for (int i = 0; i < 3; ++i) ASSERT_EQ(f.q.pop(f.c), PopStatus::chain);
    EXPECT_FALSE(f.q.enable_notifications());
    EXPECT_EQ(f.drv.avail_event(), 3);
    f.drv.add({{a, 32, false}}, false);
    EXPECT_TRUE(f.drv.publish(true));  // entry 3 crosses avail_event 3
    f.drv.add({{a, 32, false}}, false);
    EXPECT_FALSE(f.drv.publish(true));        // entry 4 does not: no exit per packet
    EXPECT_TRUE(f.q.enable_notifications());  // both are waiting
    EXPECT_EQ(f.drv.avail_event(), 3);
}

TEST(SplitQueue, BindResetsTheUsedRing) {
    FakeGuestRam ram(kRam);
    TestQueue drv(ram, 0x1000, 16);
    ram.put<uint16_t>(drv.used_gpa(), 0xFFFF);      // flags
    ram.put<uint16_t>(drv.used_gpa() + 2, 0x1234);  // idx
    SplitQueue q;
    ASSERT_TRUE(q.bind(ram.memory(), drv.config(), QueueDirection::device_reads, true));
    EXPECT_EQ(drv.used_flags(), 0);
    EXPECT_EQ(drv.used_idx(), 0);
    EXPECT_EQ(drv.avail_event(), 0);
}
