// The virtio-net device model (kernel/virtio/virtio_net.cpp) driven like a
// Linux guest would drive it: transmit chains in every layout §2.7.4 allows,
// receive into single and mergeable buffers (§5.1.6.3/§5.1.6.4), EVENT_IDX
// and NO_INTERRUPT suppression, hostile rings (each breaks the device with
// the right reason and writes nothing outside the guest's RAM), reset and
// re-initialization, and a deliver() racing a reset on another thread.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "kernel/virtio/virtio_net.hpp"
#include "tests/unit/support/virtio_test_driver.hpp"

using hv::net::DeliverResult;
using hv::net::FrameView;
using hv::net::OutFrame;
using hv::net::Segment;
using hv::test::BufferArena;
using hv::test::DriverBuf;
using hv::test::FakeGuestRam;
using hv::test::TestQueue;
using hv::virtio::BrokenReason;
using hv::virtio::VirtioNet;
namespace virtio = hv::virtio;

namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint64_t kRam = 4 << 20;
constexpr uint8_t kMac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr uint64_t kBase = virtio::VIRTIO_F_VERSION_1;
constexpr uint64_t kEventIdx = virtio::VIRTIO_F_RING_EVENT_IDX;
constexpr uint64_t kMrg = virtio::VIRTIO_NET_F_MRG_RXBUF;

Bytes frame(uint32_t len, uint8_t seed = 1) {
    Bytes f(len);
    for (uint32_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(seed * 31 + i * 7);
    return f;
}

Bytes net_hdr(uint8_t flags = 0, uint8_t gso_type = 0) {
    Bytes h(virtio::kNetHdrLen, 0);
    h[0] = flags;
    h[1] = gso_type;
    return h;
}

Bytes concat(const Bytes& a, const Bytes& b) {
    Bytes r = a;
    r.insert(r.end(), b.begin(), b.end());
    return r;
}

Bytes slice(const Bytes& b, size_t from, size_t to) {
    return Bytes(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(to));
}

class RecordingTx final : public virtio::TxHandler {
  public:
    void transmit(const FrameView& f) override {
        Bytes b;
        uint64_t sum = 0;
        for (uint32_t i = 0; i < f.count; ++i) {
            b.insert(b.end(), f.segs[i].data, f.segs[i].data + f.segs[i].len);
            sum += f.segs[i].len;
            EXPECT_GT(f.segs[i].len, 0u);
        }
        EXPECT_EQ(sum, f.len);
        frames.push_back(b);
        seg_counts.push_back(f.count);
        if (on_transmit) on_transmit();
    }
    void transmit_done() override { ++batches; }

    std::vector<Bytes> frames;
    std::vector<uint32_t> seg_counts;
    int batches = 0;
    std::function<void()> on_transmit;
};

class FakeTransport final : public virtio::Transport {
  public:
    void interrupt_queue(uint16_t q) override { ++queue_irqs[q]; }
    void interrupt_config() override { ++config_irqs; }
    int queue_irqs[2] = {0, 0};
    int config_irqs = 0;
};

struct Net {
    explicit Net(uint64_t features = kBase, uint16_t qsize = 256) : qsize_(qsize) {
        dev.attach(ram.memory(), &transport);
        bring_up(features);
    }
    ~Net() { EXPECT_TRUE(ram.guards_intact()); }

    void bring_up(uint64_t features) {
        // A driver (re)creates and zeroes its rings before enabling them.
        rxq = std::make_unique<TestQueue>(ram, 0x1000, qsize_);
        txq = std::make_unique<TestQueue>(ram, 0x10000, qsize_);
        event_idx = (features & kEventIdx) != 0;
        dev.write_status(virtio::ACKNOWLEDGE);
        dev.write_status(virtio::ACKNOWLEDGE | virtio::DRIVER);
        dev.write_driver_features(features);
        dev.write_status(virtio::ACKNOWLEDGE | virtio::DRIVER | virtio::FEATURES_OK);
        dev.write_queue(VirtioNet::kRxQueue, rxq->config());
        dev.write_queue(VirtioNet::kTxQueue, txq->config());
        dev.write_status(virtio::ACKNOWLEDGE | virtio::DRIVER | virtio::FEATURES_OK | virtio::DRIVER_OK);
    }

    bool broken() const { return (dev.status() & virtio::DEVICE_NEEDS_RESET) != 0; }

    // Queues one transmit chain whose descriptors hold `pieces`; returns the head.
    uint16_t queue_tx(const std::vector<Bytes>& pieces) {
        std::vector<DriverBuf> bufs;
        for (const Bytes& p : pieces) {
            const uint64_t gpa = arena.alloc(static_cast<uint32_t>(p.size()));
            ram.write(gpa, p.data(), p.size());
            bufs.push_back({gpa, static_cast<uint32_t>(p.size()), false});
        }
        return txq->add(bufs, false);
    }
    // Publishes what was queued and kicks if Linux would.
    void kick_tx() {
        if (txq->publish(event_idx)) dev.queue_notify(VirtioNet::kTxQueue);
    }
    uint16_t send(const std::vector<Bytes>& pieces) {
        const uint16_t head = queue_tx(pieces);
        kick_tx();
        return head;
    }

    // Receive chains: one per entry of `chains`, each a list of descriptor sizes.
    std::vector<uint16_t> give_rx(const std::vector<std::vector<uint32_t>>& chains) {
        std::vector<uint16_t> heads;
        for (const auto& c : chains) {
            std::vector<DriverBuf> bufs;
            for (uint32_t len : c) bufs.push_back({arena.alloc(len), len, true});
            heads.push_back(rxq->add(bufs, false));
            rx_bufs[heads.back()] = bufs;
        }
        rxq->publish(event_idx);
        return heads;
    }
    std::vector<uint16_t> give_rx_buffers(int n, uint32_t len) {
        return give_rx(std::vector<std::vector<uint32_t>>(static_cast<size_t>(n), {len}));
    }
    // The bytes the device wrote into chain `head` (its first `len` bytes).
    Bytes rx_bytes(uint16_t head, uint32_t len) {
        Bytes out;
        for (const DriverBuf& b : rx_bufs[head]) {
            const uint32_t n = std::min(len, b.len);
            out.insert(out.end(), ram.at(b.gpa), ram.at(b.gpa) + n);
            len -= n;
        }
        return out;
    }

    DeliverResult deliver(const Bytes& f) {
        return dev.deliver(OutFrame{f.data(), static_cast<uint32_t>(f.size()), FrameView{nullptr, 0, 0}, 0});
    }

    FakeGuestRam ram{kRam};
    BufferArena arena{0x100000, kRam};
    RecordingTx tx;
    FakeTransport transport;
    VirtioNet dev{kMac, &tx};
    std::unique_ptr<TestQueue> rxq;
    std::unique_ptr<TestQueue> txq;
    std::map<uint16_t, std::vector<DriverBuf>> rx_bufs;
    bool event_idx = false;
    uint16_t qsize_;
};

uint16_t num_buffers(const Bytes& hdr) {
    return static_cast<uint16_t>(hdr[10] | (hdr[11] << 8));
}

}  // namespace

// ---- Identity, features and configuration space (§5.1.1-§5.1.4) ----

TEST(VirtioNet, IdentityAndOfferedFeatures) {
    Net n;
    EXPECT_EQ(n.dev.device_id(), 1);
    EXPECT_EQ(n.dev.queue_count(), 2);
    EXPECT_EQ(n.dev.queue_max_size(0), 256);
    EXPECT_EQ(n.dev.queue_max_size(1), 256);
    struct Bit {
        int bit;
        bool offered;
    } const bits[] = {
        {0, false},   // CSUM
        {1, false},   // GUEST_CSUM
        {3, true},    // MTU
        {5, true},    // MAC
        {7, false},   // GUEST_TSO4
        {11, false},  // HOST_TSO4
        {15, true},   // MRG_RXBUF
        {16, true},   // STATUS
        {17, false},  // CTRL_VQ
        {22, false},  // MQ
        {28, false},  // INDIRECT_DESC
        {29, true},   // RING_EVENT_IDX
        {32, true},   // VERSION_1
        {33, false},  // ACCESS_PLATFORM
        {34, false},  // RING_PACKED
    };
    for (const Bit& b : bits) EXPECT_EQ((n.dev.offered_features() >> b.bit) & 1, b.offered ? 1u : 0u) << b.bit;
}

TEST(VirtioNet, ConfigSpaceIsTheSpecLayoutAndReadOnly) {
    Net n;
    EXPECT_EQ(n.dev.config_size(), 12u);
    struct Read {
        uint32_t off, width, want;
    } const reads[] = {
        {0, 1, 0x52},
        {5, 1, 0x56},
        {0, 4, 0x12005452},
        {4, 2, 0x5634},
        {6, 2, 1},      // status: VIRTIO_NET_S_LINK_UP
        {8, 2, 1},      // max_virtqueue_pairs
        {10, 2, 1500},  // mtu
        {8, 4, 1500u << 16 | 1},
    };
    for (const Read& r : reads) EXPECT_EQ(n.dev.read_config(r.off, r.width), r.want) << r.off << "/" << r.width;
    n.dev.write_config(0, 4, 0xFFFFFFFF);
    n.dev.write_config(10, 2, 9000);
    EXPECT_EQ(n.dev.read_config(0, 4), 0x12005452u);
    EXPECT_EQ(n.dev.read_config(10, 2), 1500u);
    EXPECT_EQ(n.dev.counters().config_writes_ignored, 2u);
    EXPECT_EQ(n.dev.read_config(12, 1), 0u);  // out of range even if the transport forgot to check
}

// ---- Transmit (§5.1.6.2) ----

TEST(VirtioNet, TransmitsHeaderAndFrameInOneDescriptor) {
    Net n;
    const Bytes f = frame(60);
    const uint16_t head = n.send({concat(net_hdr(), f)});
    ASSERT_EQ(n.tx.frames.size(), 1u);
    EXPECT_EQ(n.tx.frames[0], f);
    EXPECT_EQ(n.tx.seg_counts[0], 1u);
    EXPECT_EQ(n.tx.batches, 1);
    auto used = n.txq->take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, head);
    EXPECT_EQ(used[0].len, 0u);
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kTxQueue], 1);
    const auto c = n.dev.counters();
    EXPECT_EQ(c.tx_frames, 1u);
    EXPECT_EQ(c.tx_bytes, 60u);
    EXPECT_EQ(c.notifications_received, 1u);
    EXPECT_EQ(c.interrupts_sent, 1u);
}

TEST(VirtioNet, TransmitsEveryDescriptorLayout) {
    const Bytes f = frame(1514, 3);
    const Bytes h = net_hdr();
    struct Case {
        const char* what;
        std::vector<Bytes> pieces;
        uint32_t segs;
    } const cases[] = {
        {"header alone, frame in one", {h, f}, 1},
        {"header alone, frame in three", {h, slice(f, 0, 14), slice(f, 14, 1000), slice(f, 1000, 1514)}, 3},
        {"header split across two descriptors",
         {slice(h, 0, 5), concat(slice(h, 5, 12), slice(f, 0, 30)), slice(f, 30, 1514)},
         2},
        {"header byte by byte", {slice(h, 0, 1), slice(h, 1, 2), slice(h, 2, 11), concat(slice(h, 11, 12), f)}, 1},
    };
    for (const Case& c : cases) {
        Net n;
        n.send(c.pieces);
        ASSERT_EQ(n.tx.frames.size(), 1u) << c.what;
        EXPECT_EQ(n.tx.frames[0], f) << c.what;
        EXPECT_EQ(n.tx.seg_counts[0], c.segs) << c.what;
    }
}

TEST(VirtioNet, OneBatchPerKick) {
    Net n;
    for (uint8_t i = 0; i < 3; ++i) n.queue_tx({concat(net_hdr(), frame(64, i))});
    n.kick_tx();
    ASSERT_EQ(n.tx.frames.size(), 3u);
    for (uint8_t i = 0; i < 3; ++i) EXPECT_EQ(n.tx.frames[i], frame(64, i));
    EXPECT_EQ(n.tx.batches, 1);
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kTxQueue], 1);
    EXPECT_EQ(n.txq->take_used().size(), 3u);
}

TEST(VirtioNet, MalformedTransmitFramesAreDroppedNotFatal) {
    struct Case {
        const char* what;
        std::vector<Bytes> pieces;
    } const cases[] = {
        {"NEEDS_CSUM without VIRTIO_NET_F_CSUM", {concat(net_hdr(virtio::VIRTIO_NET_HDR_F_NEEDS_CSUM), frame(60))}},
        {"DATA_VALID (driver MUST NOT set)", {concat(net_hdr(virtio::VIRTIO_NET_HDR_F_DATA_VALID), frame(60))}},
        {"RSC_INFO (driver MUST NOT set)", {concat(net_hdr(virtio::VIRTIO_NET_HDR_F_RSC_INFO), frame(60))}},
        {"GSO TCPv4 without TSO", {concat(net_hdr(0, 1), frame(60))}},
        {"GSO ECN bit", {concat(net_hdr(0, 0x80), frame(60))}},
        {"header only", {net_hdr()}},
        {"shorter than the header", {slice(net_hdr(), 0, 8)}},
        {"1519 bytes: over MTU + Ethernet + VLAN tag", {net_hdr(), frame(1519)}},
    };
    for (const Case& c : cases) {
        Net n;
        n.send(c.pieces);
        EXPECT_TRUE(n.tx.frames.empty()) << c.what;
        EXPECT_EQ(n.dev.counters().tx_malformed, 1u) << c.what;
        EXPECT_EQ(n.txq->take_used().size(), 1u) << c.what;  // the buffer still comes back
        EXPECT_FALSE(n.broken()) << c.what;
        // The next frame goes through.
        n.send({concat(net_hdr(), frame(60))});
        EXPECT_EQ(n.tx.frames.size(), 1u) << c.what;
    }
}

TEST(VirtioNet, UnknownHeaderFlagBitsAreIgnored) {
    // §5.1.6.2.2: "The device MUST ignore flag bits that it does not recognize."
    Net n;
    n.send({concat(net_hdr(0x80), frame(1518))});
    ASSERT_EQ(n.tx.frames.size(), 1u);
    EXPECT_EQ(n.tx.frames[0].size(), 1518u);
    EXPECT_EQ(n.dev.counters().tx_malformed, 0u);
}

TEST(VirtioNet, TransmitReenablesKicksWithoutEventIdx) {
    Net n;
    n.send({concat(net_hdr(), frame(60))});
    EXPECT_EQ(n.txq->used_flags(), 0);  // kicks wanted again after the batch
    // The receive queue never wants kicks: new buffers need no action.
    EXPECT_EQ(n.rxq->used_flags(), virtio::VIRTQ_USED_F_NO_NOTIFY);
    n.dev.queue_notify(VirtioNet::kRxQueue);
    EXPECT_EQ(n.dev.counters().notifications_received, 2u);
}

TEST(VirtioNet, TransmitWithEventIdxWritesAvailEventAndHonoursUsedEvent) {
    Net n(kBase | kEventIdx);
    n.txq->set_used_event(1);  // interrupt when used entry 1 is written
    n.send({concat(net_hdr(), frame(60))});
    EXPECT_EQ(n.txq->avail_event(), 1);  // kick me for the next buffer
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kTxQueue], 0);
    n.send({concat(net_hdr(), frame(60))});
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kTxQueue], 1);
    EXPECT_EQ(n.txq->avail_event(), 2);
    EXPECT_EQ(n.tx.frames.size(), 2u);
    EXPECT_EQ(n.dev.counters().notifications_received, 2u);
}

TEST(VirtioNet, TransmitHonoursNoInterruptWithoutEventIdx) {
    Net n;
    n.txq->set_avail_flags(virtio::VIRTQ_AVAIL_F_NO_INTERRUPT);
    n.send({concat(net_hdr(), frame(60))});
    EXPECT_EQ(n.tx.frames.size(), 1u);
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kTxQueue], 0);
}

TEST(VirtioNet, PollTxWorksWithoutAKick) {
    Net n(kBase | kEventIdx);
    n.queue_tx({concat(net_hdr(), frame(60))});
    n.txq->publish(true);
    EXPECT_FALSE(n.dev.poll_tx());
    EXPECT_EQ(n.tx.frames.size(), 1u);
    EXPECT_EQ(n.dev.counters().notifications_received, 0u);
}

// A guest on another CPU that keeps adding frames cannot keep the device in
// one call forever: each call does at most two queue-sized batches, and says
// there is more. (The "guest" here re-offers the same chain each time a frame
// goes out, so it never runs out of descriptors.)
TEST(VirtioNet, TransmitWorkPerCallIsBounded) {
    Net n(kBase | kEventIdx, 64);
    const uint16_t head = n.queue_tx({concat(net_hdr(), frame(60))});
    int added = 0;
    n.tx.on_transmit = [&] {
        if (added < 1000) {
            n.txq->put_avail(head);
            n.txq->publish(true);
            ++added;
        }
    };
    n.kick_tx();
    EXPECT_EQ(n.tx.frames.size(), 2u * 64u);
    EXPECT_EQ(n.tx.batches, 1);
    int polls = 0;
    while (n.dev.poll_tx()) ASSERT_LT(++polls, 100);
    EXPECT_EQ(polls, (1001 - 128) / 128);
    EXPECT_EQ(n.tx.frames.size(), 1001u);
    EXPECT_EQ(n.txq->used_idx(), 1001);
    EXPECT_FALSE(n.broken());
}

// ---- Receive (§5.1.6.3, §5.1.6.4) ----

TEST(VirtioNet, ReceivesIntoOneChain) {
    Net n;
    const auto heads = n.give_rx_buffers(4, 2048);
    const Bytes f = frame(100);
    EXPECT_EQ(n.deliver(f), DeliverResult::delivered);
    auto used = n.rxq->take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, heads[0]);
    EXPECT_EQ(used[0].len, 112u);
    const Bytes got = n.rx_bytes(heads[0], 112);
    Bytes want_hdr = net_hdr();
    want_hdr[10] = 1;  // num_buffers is 1 without MRG_RXBUF (§5.1.6.4.1)
    EXPECT_EQ(slice(got, 0, 12), want_hdr);
    EXPECT_EQ(slice(got, 12, 112), f);
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 0);  // not per frame...
    n.dev.flush();
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 1);  // ...per batch
    n.dev.flush();
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 1);  // nothing new
    const auto c = n.dev.counters();
    EXPECT_EQ(c.rx_frames, 1u);
    EXPECT_EQ(c.rx_bytes, 100u);
}

TEST(VirtioNet, ReceivesTheSwitchHeadThenTheSendersSegments) {
    Net n;
    const auto heads = n.give_rx_buffers(1, 2048);
    const Bytes f = frame(300, 9);
    // The switch's private copy of the first 18 bytes (say, with a VLAN tag
    // inserted) and the rest straight from the sender's two segments.
    const Bytes head = slice(f, 0, 18);
    const Bytes sender = concat(frame(10, 4), slice(f, 18, 300));  // 10 bytes the switch skips
    const Segment segs[] = {{sender.data(), 100}, {sender.data() + 100, static_cast<uint32_t>(sender.size() - 100)}};
    const OutFrame out{head.data(), 18, FrameView{segs, 2, static_cast<uint32_t>(sender.size())}, 10};
    ASSERT_EQ(out.len(), 300u);
    EXPECT_EQ(n.dev.deliver(out), DeliverResult::delivered);
    EXPECT_EQ(slice(n.rx_bytes(heads[0], 312), 12, 312), f);
}

TEST(VirtioNet, ReceivesAcrossTheDescriptorsOfOneChain) {
    Net n;
    // Linux without mergeable buffers ("big packets"): header, then pages.
    const auto heads = n.give_rx({{12, 100, 4096}});
    const Bytes f = frame(1500);
    EXPECT_EQ(n.deliver(f), DeliverResult::delivered);
    auto used = n.rxq->take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].len, 1512u);
    EXPECT_EQ(slice(n.rx_bytes(heads[0], 1512), 12, 1512), f);
}

TEST(VirtioNet, MergeableBuffersSpreadAFrameAndCountThem) {
    Net n(kBase | kMrg);
    const auto heads = n.give_rx_buffers(8, 512);
    const Bytes f = frame(1500, 5);
    EXPECT_EQ(n.deliver(f), DeliverResult::delivered);
    auto used = n.rxq->take_used();
    ASSERT_EQ(used.size(), 3u);  // 12 + 1500 = 512 + 512 + 488
    EXPECT_EQ(used[0].id, heads[0]);
    EXPECT_EQ(used[1].id, heads[1]);
    EXPECT_EQ(used[2].id, heads[2]);
    EXPECT_EQ(used[0].len, 512u);
    EXPECT_EQ(used[1].len, 512u);
    EXPECT_EQ(used[2].len, 488u);
    const Bytes b0 = n.rx_bytes(heads[0], 512);
    EXPECT_EQ(num_buffers(b0), 3);
    Bytes got = slice(b0, 12, 512);
    got = concat(got, n.rx_bytes(heads[1], 512));  // no header in the others
    got = concat(got, n.rx_bytes(heads[2], 488));
    EXPECT_EQ(got, f);

    // A small frame takes one buffer and says so.
    EXPECT_EQ(n.deliver(frame(60)), DeliverResult::delivered);
    used = n.rxq->take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(num_buffers(n.rx_bytes(heads[3], 12)), 1);
}

TEST(VirtioNet, MergeableHeaderMaySpanDescriptors) {
    Net n(kBase | kMrg);
    const auto heads = n.give_rx({{10, 64}, {64}});  // num_buffers lands in the 2nd descriptor
    const Bytes f = frame(100);
    EXPECT_EQ(n.deliver(f), DeliverResult::delivered);
    EXPECT_EQ(n.rxq->take_used().size(), 2u);
    const Bytes got = n.rx_bytes(heads[0], 74);
    EXPECT_EQ(num_buffers(got), 2);
    EXPECT_EQ(concat(slice(got, 12, 74), n.rx_bytes(heads[1], 38)), f);
}

TEST(VirtioNet, NotEnoughMergeableBuffersConsumesNothing) {
    Net n(kBase | kMrg);
    const auto heads = n.give_rx_buffers(2, 512);
    EXPECT_EQ(n.deliver(frame(1500)), DeliverResult::no_buffer);
    EXPECT_EQ(n.rxq->used_idx(), 0);
    EXPECT_EQ(n.dev.counters().rx_no_buffer, 1u);
    n.dev.flush();
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 0);
    // One more buffer and the same frame fits, starting with the first buffer.
    const auto more = n.give_rx_buffers(1, 512);
    const Bytes f = frame(1500, 2);
    EXPECT_EQ(n.deliver(f), DeliverResult::delivered);
    auto used = n.rxq->take_used();
    ASSERT_EQ(used.size(), 3u);
    EXPECT_EQ(used[0].id, heads[0]);
    EXPECT_EQ(used[1].id, heads[1]);
    EXPECT_EQ(used[2].id, more[0]);
    EXPECT_EQ(num_buffers(n.rx_bytes(heads[0], 12)), 3);
}

TEST(VirtioNet, WithoutMergeableBuffersATooSmallChainIsNotConsumed) {
    Net n;
    const auto heads = n.give_rx_buffers(1, 100);
    EXPECT_EQ(n.deliver(frame(200)), DeliverResult::no_buffer);
    EXPECT_EQ(n.rxq->used_idx(), 0);
    EXPECT_EQ(n.deliver(frame(88)), DeliverResult::delivered);  // 12 + 88 fits exactly
    auto used = n.rxq->take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, heads[0]);
    EXPECT_EQ(used[0].len, 100u);
    EXPECT_EQ(n.dev.counters().rx_no_buffer, 1u);
}

TEST(VirtioNet, NoReceiveBuffersMeansNoBuffer) {
    Net n;
    EXPECT_EQ(n.deliver(frame(60)), DeliverResult::no_buffer);
    EXPECT_EQ(n.dev.counters().rx_no_buffer, 1u);
    EXPECT_FALSE(n.broken());
}

TEST(VirtioNet, OversizedFramesAreRefused) {
    Net n(kBase | kMrg);
    n.give_rx_buffers(8, 4096);
    EXPECT_EQ(n.deliver(frame(1519)), DeliverResult::no_buffer);
    EXPECT_EQ(n.dev.counters().rx_oversize, 1u);
    EXPECT_EQ(n.rxq->used_idx(), 0);
    EXPECT_EQ(n.deliver(frame(1518)), DeliverResult::delivered);
}

TEST(VirtioNet, ReceiveInterruptsFollowUsedEvent) {
    Net n(kBase | kEventIdx);
    n.give_rx_buffers(8, 2048);
    n.rxq->set_used_event(2);
    EXPECT_EQ(n.deliver(frame(60)), DeliverResult::delivered);
    n.dev.flush();
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 0);  // entry 0 only
    EXPECT_EQ(n.deliver(frame(60)), DeliverResult::delivered);
    EXPECT_EQ(n.deliver(frame(60)), DeliverResult::delivered);
    n.dev.flush();
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 1);  // entries 1, 2: crossed
    EXPECT_EQ(n.deliver(frame(60)), DeliverResult::delivered);
    n.dev.flush();
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 1);
    EXPECT_EQ(n.dev.counters().interrupts_sent, 1u);
}

TEST(VirtioNet, ReceiveHonoursNoInterruptWithoutEventIdx) {
    Net n;
    n.give_rx_buffers(2, 2048);
    n.rxq->set_avail_flags(virtio::VIRTQ_AVAIL_F_NO_INTERRUPT);
    EXPECT_EQ(n.deliver(frame(60)), DeliverResult::delivered);
    n.dev.flush();
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 0);
    n.rxq->set_avail_flags(0);
    EXPECT_EQ(n.deliver(frame(60)), DeliverResult::delivered);
    n.dev.flush();
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 1);
}

TEST(VirtioNet, DeliverToADeviceThatIsNotRunningIsDown) {
    Net n;
    n.give_rx_buffers(2, 2048);
    n.dev.write_status(0);
    EXPECT_EQ(n.deliver(frame(60)), DeliverResult::down);
    n.dev.flush();
    EXPECT_EQ(n.transport.queue_irqs[VirtioNet::kRxQueue], 0);
}

// ---- Hostile rings: broken with the right reason, nothing written outside RAM ----

namespace {

struct Hostile {
    const char* what;
    // Builds the bad chain in q; `dir_flag` is the WRITE flag the queue's
    // direction requires, `buf` a valid buffer.
    void (*build)(TestQueue& q, uint16_t dir_flag, uint64_t buf);
    BrokenReason want;
};

void expose(TestQueue& q, uint16_t head) {
    q.put_avail(head);
    q.publish();
}

constexpr uint16_t kNext = virtio::VIRTQ_DESC_F_NEXT;

const Hostile kHostile[] = {
    {"loop",
     [](TestQueue& q, uint16_t w, uint64_t b) {
         q.set_desc(0, b, 1600, w | kNext, 1);
         q.set_desc(1, b, 1600, w | kNext, 0);
         expose(q, 0);
     },
     BrokenReason::chain_too_long},
    {"65 descriptors",
     [](TestQueue& q, uint16_t w, uint64_t b) {
         for (uint16_t i = 0; i < 65; ++i) q.set_desc(i, b, 32, w | (i < 64 ? kNext : 0), i + 1);
         expose(q, 0);
     },
     BrokenReason::chain_too_long},
    {"address outside RAM",
     [](TestQueue& q, uint16_t w, uint64_t) {
         q.set_desc(0, kRam + 4096, 2048, w, 0);
         expose(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"last byte past RAM",
     [](TestQueue& q, uint16_t w, uint64_t) {
         q.set_desc(0, kRam - 2047, 2048, w, 0);
         expose(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"address + len overflows 2^64",
     [](TestQueue& q, uint16_t w, uint64_t) {
         q.set_desc(0, ~0ull - 100, 2048, w, 0);
         expose(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"len 0",
     [](TestQueue& q, uint16_t w, uint64_t b) {
         q.set_desc(0, b, 0, w, 0);
         expose(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"wrong WRITE direction in the 2nd descriptor",
     [](TestQueue& q, uint16_t w, uint64_t b) {
         q.set_desc(0, b, 12, w | kNext, 1);
         q.set_desc(1, b + 64, 2000, w ^ virtio::VIRTQ_DESC_F_WRITE, 0);
         expose(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"head index out of range", [](TestQueue& q, uint16_t, uint64_t) { expose(q, 256); }, BrokenReason::bad_descriptor},
    {"next index out of range",
     [](TestQueue& q, uint16_t w, uint64_t b) {
         q.set_desc(0, b, 12, w | kNext, 300);
         expose(q, 0);
     },
     BrokenReason::bad_descriptor},
    {"avail.idx jumps past the queue size", [](TestQueue& q, uint16_t, uint64_t) { q.set_avail_idx(257); },
     BrokenReason::bad_avail_index},
    {"INDIRECT",
     [](TestQueue& q, uint16_t w, uint64_t b) {
         q.set_desc(0, b, 64, w | virtio::VIRTQ_DESC_F_INDIRECT, 0);
         expose(q, 0);
     },
     BrokenReason::bad_descriptor},
};

void expect_broken(Net& n, const Hostile& h, BrokenReason want) {
    EXPECT_TRUE(n.broken()) << h.what;
    EXPECT_EQ(n.dev.broken_reason(), want) << h.what;
    EXPECT_EQ(n.dev.broken_count(want), 1u) << h.what;
    EXPECT_EQ(n.transport.config_irqs, 1) << h.what;
    EXPECT_TRUE(n.ram.guards_intact()) << h.what;
}

}  // namespace

TEST(VirtioNet, HostileTransmitChainsBreakTheDevice) {
    for (const Hostile& h : kHostile) {
        Net n;
        const uint64_t buf = n.arena.alloc(4096);
        // Fill the buffer with a valid-looking header so only the ring is wrong.
        n.ram.write(buf, net_hdr().data(), virtio::kNetHdrLen);
        h.build(*n.txq, 0, buf);
        n.dev.queue_notify(VirtioNet::kTxQueue);
        expect_broken(n, h, h.want);
        EXPECT_TRUE(n.tx.frames.empty()) << h.what;
        EXPECT_EQ(n.txq->used_idx(), 0) << h.what;
        // Broken stays broken: more kicks and frames do nothing.
        n.dev.queue_notify(VirtioNet::kTxQueue);
        EXPECT_FALSE(n.dev.poll_tx()) << h.what;
        EXPECT_EQ(n.deliver(frame(60)), DeliverResult::down) << h.what;
        EXPECT_EQ(n.dev.broken_count(h.want), 1u) << h.what;
    }
}

TEST(VirtioNet, HostileReceiveChainsBreakTheDevice) {
    for (const Hostile& h : kHostile) {
        Net n(kBase | kMrg);
        const uint64_t buf = n.arena.alloc(4096);
        h.build(*n.rxq, virtio::VIRTQ_DESC_F_WRITE, buf);
        EXPECT_EQ(n.deliver(frame(1500)), DeliverResult::down) << h.what;
        expect_broken(n, h, h.want);
        EXPECT_EQ(n.rxq->used_idx(), 0) << h.what;
        EXPECT_EQ(n.deliver(frame(60)), DeliverResult::down) << h.what;
    }
}

// A mergeable frame that meets a bad chain after good ones: nothing of it is
// handed to the guest.
TEST(VirtioNet, HostileChainInTheMiddleOfAMergeableFrame) {
    Net n(kBase | kMrg);
    n.give_rx_buffers(2, 512);
    const uint64_t buf = n.arena.alloc(64);
    n.rxq->set_desc(255, buf, 64, 0, 0);  // device-readable in a receive queue
    n.rxq->put_avail(255);
    n.rxq->publish();
    EXPECT_EQ(n.deliver(frame(1500)), DeliverResult::down);
    EXPECT_EQ(n.dev.broken_reason(), BrokenReason::bad_descriptor);
    EXPECT_EQ(n.rxq->used_idx(), 0);
}

// ---- Reset ----

TEST(VirtioNet, ResetAfterBrokenThenReinitWorks) {
    Net n(kBase | kMrg | kEventIdx);
    n.txq->set_avail_idx(1000);
    n.dev.queue_notify(VirtioNet::kTxQueue);
    ASSERT_TRUE(n.broken());
    ASSERT_EQ(n.dev.broken_reason(), BrokenReason::bad_avail_index);

    n.dev.write_status(0);
    EXPECT_EQ(n.dev.status(), 0);
    n.bring_up(kBase | kMrg | kEventIdx);
    EXPECT_FALSE(n.broken());
    n.send({concat(net_hdr(), frame(100))});
    EXPECT_EQ(n.tx.frames.size(), 1u);
    const auto heads = n.give_rx_buffers(4, 1536);
    EXPECT_EQ(n.deliver(frame(1514)), DeliverResult::delivered);
    auto used = n.rxq->take_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, heads[0]);
    EXPECT_EQ(n.dev.broken_count(BrokenReason::bad_avail_index), 1u);
}

TEST(VirtioNet, RenegotiationWithFewerFeaturesChangesBehaviour) {
    Net n(kBase | kMrg);
    n.dev.write_status(0);
    n.bring_up(kBase);  // no MRG_RXBUF now
    n.give_rx_buffers(4, 512);
    EXPECT_EQ(n.deliver(frame(1500)), DeliverResult::no_buffer);  // one chain must hold it
    EXPECT_EQ(n.deliver(frame(400)), DeliverResult::delivered);
}

// stop() waits out a deliver() running on another CPU; after the reset
// returns, nothing is written into the guest any more.
TEST(VirtioNet, DeliverRacingResetIsSafe) {
    for (int round = 0; round < 8; ++round) {
        Net n(kBase | kMrg | kEventIdx);
        n.give_rx_buffers(256, 256);
        std::atomic<bool> go{true};
        std::atomic<int> delivered{0};
        std::thread sender([&] {
            const Bytes f = frame(600, static_cast<uint8_t>(round));
            while (go.load()) {
                if (n.deliver(f) == DeliverResult::delivered) delivered.fetch_add(1);
                n.dev.flush();
                std::this_thread::yield();
            }
        });
        while (delivered.load() < 3 * round) std::this_thread::yield();
        n.dev.write_status(0);
        // From here on no deliver() may touch the rings or buffers.
        const std::vector<uint8_t> snapshot(n.ram.at(0, kRam), n.ram.at(0, kRam) + kRam);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        go.store(false);
        sender.join();
        EXPECT_EQ(n.deliver(frame(60)), DeliverResult::down);
        EXPECT_TRUE(std::equal(snapshot.begin(), snapshot.end(), n.ram.at(0, kRam))) << round;
        EXPECT_EQ(n.dev.counters().rx_frames, static_cast<uint64_t>(delivered.load()));
        EXPECT_EQ(n.rxq->used_idx(), static_cast<uint16_t>(3 * delivered.load()));  // 612 bytes: 3 buffers each
    }
}

