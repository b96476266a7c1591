// The switch adapters of the DPDK harness (switch_adapter.hpp) against fake
// TX ports: the bytes dpdk_switch puts in its TX bursts are exactly the frames
// the switch decided to send, to the right ports, flushed once per burst, and
// a port without buffers costs a counted drop. Needs no DPDK.

#include "tests/bench/switch_adapter.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace hv::bench {
namespace {

using Bytes = std::vector<uint8_t>;

class FakeTxPort final : public TxPort {
  public:
    uint8_t* reserve(uint32_t len) override {
        if (no_buffers) return nullptr;
        ++reserves;
        pending.emplace_back(len, 0xEE);
        return pending.back().data();
    }
    // As the harness: only the frame being forwarded may be passed, whole.
    bool pass(const uint8_t* frame, uint32_t len) override {
        if (frame != current || len != current_len) {
            ++bad_passes;
            return false;
        }
        if (no_buffers) return false;
        ++passes;
        pending.emplace_back(frame, frame + len);
        return true;
    }
    void flush() override {
        ++flushes;
        for (auto& f : pending) sent.push_back(f);
        pending.clear();
    }

    bool no_buffers = false;
    const uint8_t* current = nullptr;  // the frame the adapter is forwarding now
    uint32_t current_len = 0;
    int flushes = 0;
    int reserves = 0;
    int passes = 0;
    int bad_passes = 0;
    std::vector<Bytes> pending;
    std::vector<Bytes> sent;
};

Bytes frame(uint8_t dst_last, uint8_t src_last, size_t len, bool broadcast_dst = false) {
    Bytes b(len);
    for (size_t i = 0; i < len; ++i) b[i] = static_cast<uint8_t>(i * 13 + 1);
    const uint8_t dst[6] = {0x02, 0, 0, 0, 0, dst_last};
    const uint8_t src[6] = {0x02, 0, 0, 0, 0, src_last};
    for (int i = 0; i < 6; ++i) {
        b[i] = broadcast_dst ? 0xFF : dst[i];
        b[6 + i] = src[i];
    }
    b[12] = 0x08;  // IPv4 ethertype: untagged
    b[13] = 0x00;
    return b;
}

struct Rig {
    explicit Rig(std::unique_ptr<SwitchAdapter> a, int n = 3) : adapter(std::move(a)), ports(n) {
        for (auto& p : ports) ptrs.push_back(&p);
    }
    bool attach() { return adapter->attach(ptrs.data(), static_cast<int>(ptrs.size()), 1'000'000'000); }
    void burst(int in, const std::vector<Bytes>& frames, uint64_t now = 1000) {
        adapter->begin_burst(in, now);
        for (const auto& f : frames) {
            for (auto& p : ports) {
                p.current = f.data();
                p.current_len = static_cast<uint32_t>(f.size());
            }
            adapter->forward(in, f.data(), static_cast<uint32_t>(f.size()));
        }
        adapter->end_burst(in);
    }

    std::unique_ptr<SwitchAdapter> adapter;
    std::vector<FakeTxPort> ports;
    std::vector<TxPort*> ptrs;
};

// What BENCH-PEERS.md's generator does: 0a on port 0 talks to 0b on port 1.
// The first frame is flooded (0b is unknown), the answer is learned unicast,
// and from then on each direction goes to one port only, byte for byte.
void check_learning_bridge(std::unique_ptr<SwitchAdapter> adapter) {
    ASSERT_NE(adapter, nullptr);
    Rig rig(std::move(adapter));
    ASSERT_TRUE(rig.attach());

    const Bytes a_to_b = frame(0x0b, 0x0a, 64);
    rig.burst(0, {a_to_b});
    EXPECT_TRUE(rig.ports[0].sent.empty());
    ASSERT_EQ(rig.ports[1].sent.size(), 1u);
    ASSERT_EQ(rig.ports[2].sent.size(), 1u);  // flooded: 0b unknown
    EXPECT_EQ(rig.ports[1].sent[0], a_to_b);
    EXPECT_EQ(rig.ports[2].sent[0], a_to_b);

    const Bytes b_to_a = frame(0x0a, 0x0b, 1500);
    rig.burst(1, {b_to_a, b_to_a});
    ASSERT_EQ(rig.ports[0].sent.size(), 2u);  // 0a was learned on port 0
    EXPECT_EQ(rig.ports[0].sent[1], b_to_a);
    EXPECT_EQ(rig.ports[2].sent.size(), 1u);  // nothing more flooded

    const int flushes_before = rig.ports[1].flushes;
    rig.burst(0, {a_to_b, a_to_b, a_to_b});
    EXPECT_EQ(rig.ports[1].sent.size(), 4u);  // 0b was learned on port 1
    EXPECT_EQ(rig.ports[2].sent.size(), 1u);
    EXPECT_GE(rig.ports[1].flushes, flushes_before + 1);
    for (const auto& p : rig.ports) {
        EXPECT_TRUE(p.pending.empty()) << "end_burst must flush";
        EXPECT_EQ(p.bad_passes, 0);
    }

    const AdapterStats s = rig.adapter->stats();
    EXPECT_EQ(s.forwarded, 2u + 2u + 3u);  // flood to 2 ports, then 2 and 3 unicast
    EXPECT_EQ(s.dropped, 0u);

    // A broadcast goes everywhere but back.
    rig.burst(2, {frame(0, 0x0c, 60, true)});
    EXPECT_EQ(rig.ports[0].sent.size(), 3u);
    EXPECT_EQ(rig.ports[1].sent.size(), 5u);
    EXPECT_EQ(rig.ports[2].sent.size(), 1u);
}

// A receiver without buffers drops (counted) and does not disturb the others.
void check_no_buffer(std::unique_ptr<SwitchAdapter> adapter) {
    ASSERT_NE(adapter, nullptr);
    Rig rig(std::move(adapter));
    ASSERT_TRUE(rig.attach());
    rig.ports[1].no_buffers = true;
    rig.burst(0, {frame(0x0b, 0x0a, 64)});  // flooded to 1 (no buffer) and 2
    EXPECT_TRUE(rig.ports[1].sent.empty());
    EXPECT_EQ(rig.ports[2].sent.size(), 1u);
    EXPECT_EQ(rig.adapter->stats().dropped, 1u);
}

TEST(SwitchAdapter, ReferenceBridgeLearnsAndFloods) {
    check_learning_bridge(make_reference_adapter());
}
TEST(SwitchAdapter, ReferenceBridgeCountsNoBuffer) {
    check_no_buffer(make_reference_adapter());
}

TEST(SwitchAdapter, ReferenceBridgeDropsRunts) {
    Rig rig(make_reference_adapter());
    ASSERT_TRUE(rig.attach());
    const Bytes runt(13, 0x02);
    rig.burst(0, {runt});
    for (const auto& p : rig.ports) EXPECT_TRUE(p.sent.empty());
    EXPECT_EQ(rig.adapter->stats().dropped, 1u);
}

#if HV_BENCH_HAVE_SWITCH
TEST(SwitchAdapter, HvSwitchLearnsAndFloods) {
    check_learning_bridge(make_hv_adapter());
}
TEST(SwitchAdapter, HvSwitchCountsNoBuffer) {
    check_no_buffer(make_hv_adapter());
}

TEST(SwitchAdapter, HvCopySwitchLearnsAndFloods) {
    check_learning_bridge(make_hv_adapter(true));
}
TEST(SwitchAdapter, HvCopySwitchCountsNoBuffer) {
    check_no_buffer(make_hv_adapter(true));
}

// "hv" queues the received frame itself when the switch sent it unchanged;
// "hv-copy" writes every frame into a TX buffer of its own.
TEST(SwitchAdapter, HvSwitchPassesUnchangedFramesAndCopyModeCopies) {
    for (bool copy_all : {false, true}) {
        Rig rig(make_hv_adapter(copy_all));
        ASSERT_TRUE(rig.attach());
        EXPECT_STREQ(rig.adapter->name(), copy_all ? "hv-copy" : "hv");
        rig.burst(0, {frame(0x0b, 0x0a, 64)});    // flooded to ports 1 and 2
        rig.burst(1, {frame(0x0a, 0x0b, 1500)});  // unicast to port 0
        for (int p = 0; p < 3; ++p) {
            const int sent = static_cast<int>(rig.ports[p].sent.size());
            EXPECT_EQ(sent, 1) << "port " << p;
            EXPECT_EQ(rig.ports[p].passes, copy_all ? 0 : sent) << "port " << p;
            EXPECT_EQ(rig.ports[p].reserves, copy_all ? sent : 0) << "port " << p;
            EXPECT_EQ(rig.ports[p].bad_passes, 0);
        }
    }
}

// A frame the switch edits (here a priority tag removed on the access port's
// egress, 802.1Q-2018 §6.9) cannot be passed: it is written, edited, once.
TEST(SwitchAdapter, HvSwitchCopiesFramesItEdits) {
    Rig rig(make_hv_adapter());
    ASSERT_TRUE(rig.attach());
    Bytes plain = frame(0x0b, 0x0a, 100);
    Bytes prio(plain.begin(), plain.begin() + 12);
    const uint8_t tag[4] = {0x81, 0x00, 0xA0, 0x00};  // PCP 5, VID 0
    prio.insert(prio.end(), tag, tag + 4);
    prio.insert(prio.end(), plain.begin() + 12, plain.end());
    rig.burst(0, {prio});
    ASSERT_EQ(rig.ports[1].sent.size(), 1u);
    EXPECT_EQ(rig.ports[1].sent[0], plain);
    EXPECT_EQ(rig.ports[1].passes, 0);
    EXPECT_EQ(rig.ports[1].reserves, 1);
}

TEST(SwitchAdapter, HvSwitchDropsMalformedFrames) {
    Rig rig(make_hv_adapter());
    ASSERT_TRUE(rig.attach());
    Bytes group_source = frame(0x0b, 0x0a, 64);
    group_source[6] |= 1;  // a multicast source MAC (IEEE 802 §8.2): malformed
    rig.burst(0, {Bytes(13, 0x02), group_source, Bytes(1519, 0x02)});
    for (const auto& p : rig.ports) EXPECT_TRUE(p.sent.empty());
    EXPECT_EQ(rig.adapter->stats().dropped, 3u);
}
#else
TEST(SwitchAdapter, HvSwitchAbsentWithoutCore) {
    EXPECT_EQ(make_hv_adapter(), nullptr);
}
#endif

}  // namespace
}  // namespace hv::bench
