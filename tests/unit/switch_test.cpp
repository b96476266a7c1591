// The L2 switch core against fake ports that record what they receive, with
// fake time: learning, ageing, moves, flooding, 802.1Q access/trunk/native
// rules byte for byte, VLAN isolation, anti-spoofing, protected ports, the
// token bucket, receivers without buffers, malformed and segmented frames,
// batching, mirroring to pcap (read back by tshark), and two senders on two
// threads delivering into one receiver.
#include "kernel/net/switch.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kernel/net/tx_batch.hpp"
#include "tests/unit/support/pcap_reader.hpp"
#include "tests/unit/support/tshark.hpp"

using namespace hv::net;

namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kSec = 1'000'000'000;

MacAddr mac(uint8_t last) {
    return MacAddr{{0x02, 0, 0, 0, 0, last}};
}
const MacAddr kBroadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
const MacAddr kMulticast{{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}};

void put16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

// An untagged frame of `len` bytes; the payload is a counting pattern.
Bytes frame(MacAddr dst, MacAddr src, size_t len = 64, uint16_t ethertype = 0x0800) {
    Bytes b(dst.b, dst.b + 6);
    b.insert(b.end(), src.b, src.b + 6);
    put16(b, ethertype);
    while (b.size() < len) b.push_back(static_cast<uint8_t>(b.size() * 7));
    b.resize(len);
    return b;
}

// The same frame with an 802.1Q tag inserted after the source MAC.
Bytes with_tag(const Bytes& untagged, uint16_t tci) {
    Bytes b(untagged.begin(), untagged.begin() + 12);
    put16(b, 0x8100);
    put16(b, tci);
    b.insert(b.end(), untagged.begin() + 12, untagged.end());
    return b;
}

class FakePort final : public PortDriver {
  public:
    DeliverResult deliver(const OutFrame& f) override {
        std::lock_guard<std::mutex> g(mu);
        if (result != DeliverResult::delivered) {
            ++refused;
            return result;
        }
        ++delivered;
        if (keep) {
            Bytes b(f.len());
            EXPECT_EQ(copy_out(f, 0, b.data(), f.len()), f.len());
            frames.push_back(std::move(b));
        }
        if (on_deliver) on_deliver();
        return DeliverResult::delivered;
    }
    void flush() override {
        std::lock_guard<std::mutex> g(mu);
        ++flushes;
    }
    void clear() {
        frames.clear();
        delivered = refused = flushes = 0;
    }

    std::mutex mu;
    std::vector<Bytes> frames;
    DeliverResult result = DeliverResult::delivered;
    bool keep = true;
    size_t delivered = 0, refused = 0, flushes = 0;
    std::function<void()> on_deliver;
};

PortConfig access(uint16_t vlan) {
    PortConfig c;
    std::snprintf(c.name, sizeof c.name, "guest.eth-access%u", vlan);
    c.vlan_mode = VlanMode::access;
    c.access_vlan = vlan;
    return c;
}

PortConfig trunk(std::initializer_list<uint16_t> allowed, uint16_t native = 0) {
    PortConfig c;
    std::snprintf(c.name, sizeof c.name, "guest.eth-trunk");
    c.vlan_mode = VlanMode::trunk;
    for (uint16_t v : allowed) c.allowed.add(v);
    c.native_vlan = native;
    return c;
}

PortConfig with_static(PortConfig c, MacAddr m) {
    c.has_static_mac = true;
    c.static_mac = m;
    return c;
}

// A switch and its fake ports.
struct Net {
    std::unique_ptr<Switch> sw = std::make_unique<Switch>();
    std::vector<std::unique_ptr<FakePort>> ports;

    PortId add(const PortConfig& cfg) {
        ports.push_back(std::make_unique<FakePort>());
        auto r = sw->add_port(cfg, ports.back().get());
        EXPECT_TRUE(r.ok()) << r.error().detail;
        EXPECT_EQ(*r, ports.size() - 1);
        return *r;
    }
    FakePort& port(PortId p) { return *ports[p]; }
    // Sends b from port `in`, cut into segments at the given offsets.
    void send(PortId in, const Bytes& b, uint64_t now = 0, std::vector<size_t> cuts = {}) {
        std::vector<Segment> segs;
        size_t start = 0;
        cuts.push_back(b.size());
        for (size_t c : cuts) {
            segs.push_back(Segment{b.data() + start, static_cast<uint32_t>(c - start)});
            start = c;
        }
        FrameView v{segs.data(), static_cast<uint32_t>(segs.size()), static_cast<uint32_t>(b.size())};
        sw->forward(in, v, now);
    }
    // Which ports received something since the last clear, as "0,2".
    std::string receivers() {
        std::string s;
        for (size_t i = 0; i < ports.size(); ++i)
            if (!ports[i]->frames.empty()) s += (s.empty() ? "" : ",") + std::to_string(i);
        return s;
    }
    void clear() {
        for (auto& p : ports) p->clear();
    }
    PortCounters counters(PortId p) { return *sw->counters(p); }
};

}  // namespace

// The switch lives in .bss in the hypervisor: it must be constant-initialized
// (the linker script refuses static constructors).
constinit Switch g_constinit_switch;

TEST(Switch, IsConstantInitializedAndUsable) {
    FakePort p;
    auto id = g_constinit_switch.add_port(access(1), &p);
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(g_constinit_switch.port_count(), 1u);
    EXPECT_TRUE(g_constinit_switch.port_up(*id));
}

TEST(Switch, LearnsSourcesThenForwardsUnicastToOnePort) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1)), c = n.add(access(1));
    // A -> B: B unknown, flooded to everyone but A.
    n.send(a, frame(mac(0xB), mac(0xA), 100));
    EXPECT_EQ(n.receivers(), "1,2");
    n.clear();
    // B -> A: A was learned from the first frame: only A.
    n.send(b, frame(mac(0xA), mac(0xB), 80));
    EXPECT_EQ(n.receivers(), "0");
    n.clear();
    // A -> B: B learned now.
    n.send(a, frame(mac(0xB), mac(0xA), 60));
    EXPECT_EQ(n.receivers(), "1");
    EXPECT_EQ(n.port(b).frames[0], frame(mac(0xB), mac(0xA), 60));

    auto ca = n.counters(a), cb = n.counters(b), cc = n.counters(c);
    EXPECT_EQ(ca.rx_packets, 2u);
    EXPECT_EQ(ca.rx_bytes, 160u);
    EXPECT_EQ(ca.tx_packets, 1u);
    EXPECT_EQ(ca.tx_bytes, 80u);
    EXPECT_EQ(ca.floods, 1u);
    EXPECT_EQ(cb.rx_packets, 1u);
    EXPECT_EQ(cb.tx_packets, 2u);
    EXPECT_EQ(cb.tx_bytes, 160u);
    EXPECT_EQ(cc.tx_packets, 1u);
    EXPECT_EQ(cc.rx_packets, 0u);
    auto st = n.sw->stats(0);
    EXPECT_EQ(st.floods, 1u);
    EXPECT_EQ(st.fdb_learned, 2u);
    EXPECT_EQ(st.fdb_entries, 2u);
}

TEST(Switch, FrameToOwnPortIsFilteredNotSentBack) {
    Net n;
    PortId a = n.add(access(1));
    n.add(access(1));
    n.send(a, frame(kBroadcast, mac(0xA)));  // learn A on port 0
    n.clear();
    n.send(a, frame(mac(0xA), mac(0xC)));  // a station behind port 0 talks to A
    EXPECT_EQ(n.receivers(), "");
    EXPECT_EQ(n.port(a).delivered, 0u);
}

TEST(Switch, AgedEntryFloodsAgain) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1));
    n.add(access(1));
    EXPECT_EQ(n.sw->ageing_ns(), 300 * kSec);
    n.send(b, frame(kBroadcast, mac(0xB)), 0);  // B learned at t = 0
    n.clear();
    n.send(a, frame(mac(0xB), mac(0xA)), 299 * kSec);
    EXPECT_EQ(n.receivers(), "1");
    n.clear();
    // A's frames do not keep B alive: 301 s after B was last seen it floods.
    n.send(a, frame(mac(0xB), mac(0xA)), 301 * kSec);
    EXPECT_EQ(n.receivers(), "1,2");
    // The sweep then removes B (A, seen at 299 s, stays).
    EXPECT_EQ(n.sw->age(301 * kSec), 1u);
    EXPECT_EQ(n.sw->stats(301 * kSec).fdb_entries, 1u);
}

TEST(Switch, ShortAgeingTimeIsHonoured) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1));
    n.add(access(1));
    n.sw->set_ageing_ns(10 * kSec);
    n.send(b, frame(kBroadcast, mac(0xB)), 100 * kSec);
    n.send(b, frame(kBroadcast, mac(0xB)), 105 * kSec);  // refreshes B
    n.clear();
    n.send(a, frame(mac(0xB), mac(0xA)), 114 * kSec);
    EXPECT_EQ(n.receivers(), "1");
    n.clear();
    n.send(a, frame(mac(0xB), mac(0xA)), 116 * kSec);
    EXPECT_EQ(n.receivers(), "1,2");
}

TEST(Switch, StationMovingToAnotherPortIsFollowed) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1)), c = n.add(access(1));
    n.send(b, frame(kBroadcast, mac(0xB)), 0);
    n.send(c, frame(kBroadcast, mac(0xB)), kSec);  // B's MAC now behind port 2
    n.clear();
    n.send(a, frame(mac(0xB), mac(0xA)), 2 * kSec);
    EXPECT_EQ(n.receivers(), "2");
    EXPECT_EQ(n.sw->stats(2 * kSec).fdb_moved, 1u);
    int seen = 0;
    n.sw->for_each_fdb(2 * kSec, [&](const FdbEntry& e) {
        if (e.mac == mac(0xB)) {
            ++seen;
            EXPECT_EQ(e.port, c);
            EXPECT_EQ(e.vlan, 1);
            EXPECT_FALSE(e.is_static);
        }
    });
    EXPECT_EQ(seen, 1);
}

// A port reuses its last decision for the next frame of the same flow
// (Switch::FlowMemo). Every frame below after the first of its flow is such a
// repeat: each must still see every change of the MAC table.
TEST(Switch, RepeatedFlowFollowsMovesFlushesAndPortsGoingDown) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1)), c = n.add(access(1));
    n.send(b, frame(kBroadcast, mac(0xB)), 0);
    n.send(a, frame(mac(0xB), mac(0xA)), 0);  // A learned
    for (uint64_t t = 1; t <= 3; ++t) {
        n.clear();
        n.send(a, frame(mac(0xB), mac(0xA)), t * kSec);
        EXPECT_EQ(n.receivers(), "1") << "t=" << t;
    }
    n.send(c, frame(kBroadcast, mac(0xB)), 4 * kSec);  // B moves behind c
    n.clear();
    n.send(a, frame(mac(0xB), mac(0xA)), 5 * kSec);
    EXPECT_EQ(n.receivers(), "2");
    n.send(a, frame(mac(0xB), mac(0xA)), 5 * kSec);
    ASSERT_TRUE(n.sw->flush_fdb(c).ok());  // B forgotten: unknown again
    n.clear();
    n.send(a, frame(mac(0xB), mac(0xA)), 6 * kSec);
    EXPECT_EQ(n.receivers(), "1,2");
    n.send(b, frame(kBroadcast, mac(0xB)), 7 * kSec);
    n.send(a, frame(mac(0xB), mac(0xA)), 7 * kSec);
    n.send(a, frame(mac(0xB), mac(0xA)), 7 * kSec);
    ASSERT_TRUE(n.sw->set_port_up(b, false).ok());
    n.clear();
    n.send(a, frame(mac(0xB), mac(0xA)), 8 * kSec);
    EXPECT_EQ(n.receivers(), "2");  // B's entry went with its port: flooded to the one left
    EXPECT_EQ(n.counters(a).drops[static_cast<size_t>(DropReason::port_down)], 0u);
}

TEST(Switch, RepeatedFlowFloodsOnceTheDestinationAges) {
    Net n;
    // A static source never needs a refresh: only B's age bounds the reuse.
    PortId a = n.add(with_static(access(1), mac(0xA))), b = n.add(access(1));
    n.add(access(1));
    n.sw->set_ageing_ns(10 * kSec);
    n.send(b, frame(kBroadcast, mac(0xB)), 100 * kSec);  // B last seen at 100 s
    n.send(a, frame(kBroadcast, mac(0xA)), 100 * kSec);
    // (Exactly 110 s is left out: timestamps are kept in 65.5 us units.)
    for (uint64_t t = 101; t <= 113; ++t) {
        if (t == 110) continue;
        n.clear();
        n.send(a, frame(mac(0xB), mac(0xA)), t * kSec);
        EXPECT_EQ(n.receivers(), t < 110 ? "1" : "1,2") << "t=" << t;
    }
}

// A flow that only repeats must still refresh its source's entry, or the
// station would age out while it talks.
TEST(Switch, LongRepeatedFlowKeepsItsSourceLearned) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1)), c = n.add(access(1));
    n.sw->set_ageing_ns(64 * kSec);
    n.send(b, frame(kBroadcast, mac(0xB)), 0);
    for (uint64_t ms = 0; ms <= 200'000; ms += 250) n.send(a, frame(mac(0xB), mac(0xA)), ms * 1'000'000);
    n.clear();
    n.send(c, frame(mac(0xA), mac(0xC)), 200 * kSec);
    EXPECT_EQ(n.receivers(), "0");  // A is still known (B aged out long ago)
    EXPECT_EQ(n.sw->stats(200 * kSec).fdb_learned, 3u);
}

// The memo's key covers the tag: the same addresses on another VLAN are
// another flow.
TEST(Switch, RepeatedFlowOnATrunkKeepsVlansApart) {
    Net n;
    PortId t = n.add(trunk({10, 20})), v10 = n.add(access(10)), v20 = n.add(access(20));
    (void)t;
    (void)v10;
    (void)v20;
    const Bytes base = frame(mac(0x99), mac(0xA), 80);
    for (int round = 0; round < 3; ++round) {
        for (uint16_t vid : {10, 20, 10}) {
            for (int i = 0; i < 3; ++i) {
                n.clear();
                n.send(t, with_tag(base, vid), kSec);
                EXPECT_EQ(n.receivers(), vid == 10 ? "1" : "2") << "round " << round << " vid " << vid;
            }
        }
    }
    n.clear();
    n.send(t, with_tag(base, 30), kSec);  // not allowed on the trunk
    EXPECT_EQ(n.receivers(), "");
    EXPECT_EQ(n.counters(t).drops[static_cast<size_t>(DropReason::vlan_filtered)], 1u);
}

TEST(Switch, FloodsBroadcastMulticastAndUnknownUnicastNeverToSender) {
    for (MacAddr dst : {kBroadcast, kMulticast, mac(0x77)}) {
        Net n;
        n.add(access(1));
        PortId b = n.add(access(1));
        n.add(access(1));
        n.add(access(2));  // another VLAN: never
        n.send(b, frame(dst, mac(0xB)));
        EXPECT_EQ(n.receivers(), "0,2");
        EXPECT_EQ(n.port(0).frames[0], frame(dst, mac(0xB)));
        EXPECT_EQ(n.counters(b).floods, 1u);
    }
}

TEST(Switch, GroupDestinationsAreNeverLearnedAsUnicast) {
    // Even after a multicast frame, a frame to that group keeps flooding.
    Net n;
    PortId a = n.add(access(1));
    n.add(access(1));
    n.add(access(1));
    n.send(a, frame(kMulticast, mac(0xA)));
    n.clear();
    n.send(1, frame(kMulticast, mac(0xB)));
    EXPECT_EQ(n.receivers(), "0,2");
}

// IEEE 802.1Q-2018 §6.9 / §9: one row per ingress/egress port type pair, with
// the exact bytes the receiver must see (or none, and why).
TEST(Switch, VlanRulesTagInsertStripAndFilterExactly) {
    const Bytes plain = frame(kBroadcast, mac(0xA), 64);
    const Bytes qinq_inner = with_tag(frame(kBroadcast, mac(0xA), 60), 0x0014);  // inner tag VID 20
    struct Case {
        const char* what;
        PortConfig in, out;
        Bytes sent;
        Bytes expected;  // empty: nothing delivered
        int drop;        // DropReason counted at ingress, or -1
    };
    const int none = -1, filtered = static_cast<int>(DropReason::vlan_filtered);
    const Case cases[] = {
        {"access->access", access(10), access(10), plain, plain, none},
        {"access->trunk tags", access(10), trunk({10, 20}), plain, with_tag(plain, 10), none},
        {"access->trunk native untagged", access(10), trunk({10}, 10), plain, plain, none},
        {"trunk->access strips, PCP dropped", trunk({10, 20}), access(10), with_tag(plain, 0xA00A), plain, none},
        {"trunk->trunk keeps tag and PCP", trunk({10, 20}), trunk({10, 20}), with_tag(plain, 0xA00A),
         with_tag(plain, 0xA00A), none},
        {"trunk native untagged->access", trunk({10, 20}, 20), access(20), plain, plain, none},
        {"trunk native untagged->trunk tags", trunk({10, 20}, 20), trunk({20}), plain, with_tag(plain, 20), none},
        {"trunk tagged native VID->access", trunk({10, 20}, 20), access(20), with_tag(plain, 20), plain, none},
        {"trunk->trunk native out untagged", trunk({10, 20}), trunk({10, 20}, 10), with_tag(plain, 10), plain, none},
        {"access priority tag stripped", access(10), access(10), with_tag(plain, 0x6000), plain, none},
        {"access priority tag: PCP+DEI kept on trunk", access(10), trunk({10}), with_tag(plain, 0x7000),
         with_tag(plain, 0x700A), none},
        {"trunk native priority tag", trunk({10}, 10), access(10), with_tag(plain, 0x2000), plain, none},
        {"access drops tagged", access(10), access(10), with_tag(plain, 10), {}, filtered},
        {"trunk without native drops untagged", trunk({10}), trunk({10}), plain, {}, filtered},
        {"trunk drops VID not allowed", trunk({10}), trunk({10, 30}), with_tag(plain, 30), {}, filtered},
        {"trunk drops VID 4095", trunk({10}), trunk({10}), with_tag(plain, 4095), {}, filtered},
        {"trunk without native drops priority tag", trunk({10}), trunk({10}), with_tag(plain, 0x2000), {}, filtered},
        {"other VLAN not delivered", trunk({10, 20}), access(10), with_tag(plain, 20), {}, none},
        {"double tag behind priority tag", access(10), access(10), with_tag(qinq_inner, 0), {}, filtered},
        {"double tag on trunk", trunk({10, 20}), trunk({10, 20}, 10), with_tag(qinq_inner, 10), {}, filtered},
        {"S-tag from access port", access(10), trunk({10}), frame(kBroadcast, mac(0xA), 64, 0x88A8), {}, filtered},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        Net n;
        PortId in = n.add(c.in);
        PortId out = n.add(c.out);
        n.send(in, c.sent);
        if (c.expected.empty()) {
            EXPECT_TRUE(n.port(out).frames.empty());
        } else {
            ASSERT_EQ(n.port(out).frames.size(), 1u);
            EXPECT_EQ(n.port(out).frames[0], c.expected);
            EXPECT_EQ(n.counters(out).tx_bytes, c.expected.size());
        }
        auto ci = n.counters(in);
        for (size_t r = 0; r < kDropReasonCount; ++r)
            EXPECT_EQ(ci.drops[r], static_cast<int>(r) == c.drop ? 1u : 0u) << drop_reason_name(DropReason(r));
    }
}

TEST(Switch, UnicastOnTrunkIsTaggedAndMaximalFramesFitAfterTagging) {
    Net n;
    PortId a = n.add(access(10)), t = n.add(trunk({10, 20}));
    n.send(t, with_tag(frame(kBroadcast, mac(0x7), 1514), 10));  // learn 0x7 on the trunk, VLAN 10
    ASSERT_EQ(n.port(a).frames.size(), 1u);
    EXPECT_EQ(n.port(a).frames[0].size(), 1514u);
    n.send(a, frame(mac(0x7), mac(0xA), 1514));
    ASSERT_EQ(n.port(t).frames.size(), 1u);
    EXPECT_EQ(n.port(t).frames[0], with_tag(frame(mac(0x7), mac(0xA), 1514), 10));
    EXPECT_EQ(n.counters(t).tx_bytes, 1518u);
}

TEST(Switch, NoTrafficLeaksBetweenVlans) {
    Net n;
    PortId a10 = n.add(access(10)), b10 = n.add(access(10));
    PortId a20 = n.add(access(20)), b20 = n.add(access(20));
    PortId t10 = n.add(trunk({10}));
    // Learn every station on its own VLAN.
    n.send(a10, frame(kBroadcast, mac(0x1)));
    n.send(b10, frame(kBroadcast, mac(0x2)));
    n.send(a20, frame(kBroadcast, mac(0x3)));
    n.send(b20, frame(kBroadcast, mac(0x4)));
    EXPECT_TRUE(n.port(a20).frames.size() == 1 && n.port(b20).frames.size() == 1);
    n.clear();
    // VLAN 20 sends to VLAN 10's MACs: unknown on VLAN 20, flooded there only.
    n.send(a20, frame(mac(0x1), mac(0x3)));
    n.send(a20, frame(mac(0x2), mac(0x3)));
    n.send(b20, frame(kBroadcast, mac(0x4)));
    EXPECT_EQ(n.receivers(), "2,3");
    EXPECT_TRUE(n.port(a10).frames.empty() && n.port(b10).frames.empty() && n.port(t10).frames.empty());
    // And the VLAN 10 trunk cannot inject into VLAN 20.
    n.clear();
    n.send(t10, with_tag(frame(mac(0x3), mac(0x9)), 20));
    EXPECT_EQ(n.receivers(), "");
    EXPECT_EQ(n.counters(t10).drop(DropReason::vlan_filtered), 1u);
}

TEST(Switch, StaticMacDropsSpoofedSourcesAndNeverMoves) {
    Net n;
    PortId s = n.add(with_static(access(1), mac(0x50)));
    PortId x = n.add(access(1));
    PortId y = n.add(access(1));
    // The static entry exists before the port ever sent: no flood.
    n.send(y, frame(mac(0x50), mac(0x0E)));
    EXPECT_EQ(n.receivers(), "0");
    n.clear();
    // The port itself with another source: spoofed.
    n.send(s, frame(kBroadcast, mac(0x51)));
    n.send(s, frame(kBroadcast, mac(0x51)));
    EXPECT_EQ(n.counters(s).drop(DropReason::spoofed), 2u);
    EXPECT_EQ(n.receivers(), "");
    // Another port using the static MAC: dropped as spoofed, not learned.
    n.send(x, frame(kBroadcast, mac(0x50)));
    EXPECT_EQ(n.counters(x).drop(DropReason::spoofed), 1u);
    EXPECT_EQ(n.receivers(), "");
    n.send(y, frame(mac(0x50), mac(0x0E)));
    EXPECT_EQ(n.receivers(), "0");
    // Its own frames pass.
    n.clear();
    n.send(s, frame(kBroadcast, mac(0x50)));
    EXPECT_EQ(n.receivers(), "1,2");
    int statics = 0;
    n.sw->for_each_fdb(0, [&](const FdbEntry& e) {
        if (e.mac == mac(0x50)) {
            ++statics;
            EXPECT_TRUE(e.is_static);
            EXPECT_EQ(e.port, s);
        }
    });
    EXPECT_EQ(statics, 1);
    // Flushing and taking the port down keep the static entry.
    ASSERT_TRUE(n.sw->flush_fdb(s).ok());
    ASSERT_TRUE(n.sw->set_port_up(s, false).ok());
    ASSERT_TRUE(n.sw->set_port_up(s, true).ok());
    n.clear();
    n.send(y, frame(mac(0x50), mac(0x0E)));
    EXPECT_EQ(n.receivers(), "0");
}

TEST(Switch, TrunkStaticMacIsProtectedOnVlansItHasNotUsedYet) {
    Net n;
    PortId t = n.add(with_static(trunk({10, 20}), mac(0x60)));
    PortId x = n.add(access(20));
    n.add(access(20));
    // X claims T's MAC on VLAN 20 before T ever sent there.
    n.send(x, frame(kBroadcast, mac(0x60)));
    EXPECT_EQ(n.counters(x).drop(DropReason::spoofed), 1u);
    EXPECT_EQ(n.sw->fdb().lookup(20, mac(0x60).to_u64(), 0), kNoPort);
    // T sends on VLAN 20: learned as a static entry of T.
    n.send(t, with_tag(frame(kBroadcast, mac(0x60)), 20));
    EXPECT_EQ(n.receivers(), "1,2");
    n.send(x, frame(kBroadcast, mac(0x60)), 1000 * kSec);
    EXPECT_EQ(n.counters(x).drop(DropReason::spoofed), 2u);
    EXPECT_EQ(n.sw->fdb().lookup(20, mac(0x60).to_u64(), 1000 * kSec), t);
}

TEST(Switch, PortAddedLaterTakesItsStaticMacBackFromASpoofer) {
    // X used the MAC before its owner's port existed (a guest started later):
    // adding the owner forgets X's entries on every VLAN and drops X's frames.
    Net n;
    PortId x = n.add(trunk({10, 20}));
    PortId y = n.add(trunk({10, 20}));
    n.send(x, with_tag(frame(kBroadcast, mac(0x60)), 10));
    n.send(x, with_tag(frame(kBroadcast, mac(0x60)), 20));
    EXPECT_EQ(n.sw->fdb().lookup(20, mac(0x60).to_u64(), 0), x);
    PortId t = n.add(with_static(trunk({10, 20}), mac(0x60)));
    EXPECT_EQ(n.sw->fdb().lookup(10, mac(0x60).to_u64(), 0), kNoPort);
    EXPECT_EQ(n.sw->fdb().lookup(20, mac(0x60).to_u64(), 0), kNoPort);
    n.clear();
    n.send(x, with_tag(frame(kBroadcast, mac(0x60)), 20));
    EXPECT_EQ(n.counters(x).drop(DropReason::spoofed), 1u);
    n.send(y, with_tag(frame(mac(0x60), mac(0x61)), 20));
    EXPECT_EQ(n.receivers(), "0,2");  // unknown again: flooded, and the owner gets it
    EXPECT_EQ(n.port(t).frames.size(), 1u);
}

TEST(Switch, HeaderIsCopiedOnceSoRewritesDuringDeliveryChangeNothing) {
    // The first receiver rewrites the sender's buffer (as a hostile guest on
    // another CPU could): later receivers still get the header that was checked.
    Net n;
    PortId s = n.add(with_static(access(1), mac(0x50)));
    PortId r1 = n.add(access(1)), r2 = n.add(access(1));
    n.add(access(2));
    Bytes sent = frame(kBroadcast, mac(0x50), 64);
    const Bytes original = sent;
    n.port(r1).on_deliver = [&] {
        for (size_t i = 0; i < 18; ++i) sent[i] = 0xEE;  // other src, other dst, a tag
    };
    n.send(s, sent);
    ASSERT_EQ(n.port(r2).frames.size(), 1u);
    EXPECT_EQ(Bytes(n.port(r2).frames[0].begin(), n.port(r2).frames[0].begin() + 18),
              Bytes(original.begin(), original.begin() + 18));
    EXPECT_EQ(n.receivers(), "1,2");
}

TEST(Switch, ProtectedPortsOnlyTalkToUnprotectedOnes) {
    Net n;
    PortConfig pc = access(1);
    pc.protected_port = true;
    PortId p1 = n.add(pc), p2 = n.add(pc), u = n.add(access(1));
    n.send(p1, frame(kBroadcast, mac(0x1)));
    EXPECT_EQ(n.receivers(), "2");
    n.clear();
    n.send(p2, frame(kMulticast, mac(0x2)));
    EXPECT_EQ(n.receivers(), "2");
    n.clear();
    // Both learned now: unicast between them is dropped and counted.
    n.send(p1, frame(mac(0x2), mac(0x1)));
    EXPECT_EQ(n.receivers(), "");
    EXPECT_EQ(n.counters(p1).drop(DropReason::protected_port), 1u);
    // Unknown unicast from a protected port floods to unprotected ports only.
    n.send(p1, frame(mac(0x99), mac(0x1)));
    EXPECT_EQ(n.receivers(), "2");
    n.clear();
    // The unprotected port reaches both.
    n.send(u, frame(kBroadcast, mac(0x3)));
    EXPECT_EQ(n.receivers(), "0,1");
    n.clear();
    n.send(u, frame(mac(0x1), mac(0x3)));
    EXPECT_EQ(n.receivers(), "0");
}

TEST(TokenBucket, BurstThenRateThenRefillExactly) {
    TokenBucket b;
    b.configure(1000, 2000, 0);  // 1000 B/s, 2000 B deep, starts full
    int passed = 0;
    while (b.take(100, 0)) ++passed;
    EXPECT_EQ(passed, 20);
    EXPECT_FALSE(b.take(1, 0));
    EXPECT_TRUE(b.take(1, 1'000'000));  // 1 ms = 1 byte
    EXPECT_FALSE(b.take(1, 1'000'000));
    EXPECT_FALSE(b.take(1, 1'999'999));  // 0.999999 bytes so far: fractions are kept...
    EXPECT_TRUE(b.take(1, 2'000'000));   // ...and add up
    // Time going backwards adds nothing and takes nothing away.
    EXPECT_FALSE(b.take(1, 1'000'000));
    // A very long idle time fills it to the brim and no further (no overflow).
    EXPECT_TRUE(b.take(2000, UINT64_MAX));
    EXPECT_FALSE(b.take(1, UINT64_MAX));
}

TEST(TokenBucket, HugeRatesDoNotOverflow) {
    TokenBucket b;
    b.configure(UINT64_MAX, TokenBucket::kMaxBurstBytes, 0);
    EXPECT_TRUE(b.take(1518, 0));
    EXPECT_TRUE(b.take(TokenBucket::kMaxBurstBytes - 1518, 0));
    EXPECT_FALSE(b.take(1, 0));
    EXPECT_TRUE(b.take(1518, 1));  // 1 ns at UINT64_MAX B/s refills everything
    TokenBucket u;
    u.configure(0, 0, 0);
    EXPECT_TRUE(u.unlimited());
    for (int i = 0; i < 1000; ++i) EXPECT_TRUE(u.take(1518, 0));
}

TEST(Switch, RateLimitDropsOverLimitFramesAndCountsExactly) {
    Net n;
    PortConfig rl = access(1);
    rl.rate_bytes_per_sec = 10'000;  // 10 kB/s
    rl.burst_bytes = 2000;
    PortId a = n.add(rl);
    PortId b = n.add(access(1));
    const uint64_t t0 = 50 * kSec;
    for (int i = 0; i < 25; ++i) n.send(a, frame(kBroadcast, mac(0xA), 100), t0);
    EXPECT_EQ(n.port(b).frames.size(), 20u);  // the burst
    EXPECT_EQ(n.counters(a).drop(DropReason::rate_limited), 5u);
    // 35 ms later: 350 bytes of tokens: 3 more frames.
    for (int i = 0; i < 5; ++i) n.send(a, frame(kBroadcast, mac(0xA), 100), t0 + 35'000'000);
    EXPECT_EQ(n.port(b).frames.size(), 23u);
    EXPECT_EQ(n.counters(a).drop(DropReason::rate_limited), 7u);
    // Long idle: back to one full burst, not more.
    for (int i = 0; i < 30; ++i) n.send(a, frame(kBroadcast, mac(0xA), 100), t0 + 100 * kSec);
    EXPECT_EQ(n.port(b).frames.size(), 43u);
    EXPECT_EQ(n.counters(a).drop(DropReason::rate_limited), 17u);
    // Every frame offered counts as received; the limiter only drops.
    EXPECT_EQ(n.counters(a).rx_packets, 60u);
    EXPECT_EQ(n.counters(b).rx_packets, 0u);
    EXPECT_EQ(n.counters(b).drop(DropReason::rate_limited), 0u);
}

TEST(Switch, ReceiverWithoutBuffersCountsThereAndOthersStillGetTheFrame) {
    Net n;
    PortId a = n.add(access(1)), full = n.add(access(1)), c = n.add(access(1)), down = n.add(access(1));
    n.port(full).result = DeliverResult::no_buffer;
    n.port(down).result = DeliverResult::down;
    n.send(a, frame(kBroadcast, mac(0xA)));
    n.send(a, frame(kBroadcast, mac(0xA)));
    EXPECT_EQ(n.port(c).frames.size(), 2u);
    EXPECT_EQ(n.counters(full).drop(DropReason::no_buffer), 2u);
    EXPECT_EQ(n.counters(down).drop(DropReason::no_buffer), 2u);
    EXPECT_EQ(n.counters(full).tx_packets, 0u);
    EXPECT_EQ(n.counters(c).tx_packets, 2u);
    EXPECT_EQ(n.counters(a).drop(DropReason::no_buffer), 0u);
    // flush() only on receivers that got something.
    EXPECT_EQ(n.port(full).flushes, 0u);
    EXPECT_EQ(n.port(c).flushes, 2u);
}

TEST(Switch, PortDownReceivesNothingSendsNothingAndForgetsItsMacs) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1)), c = n.add(access(1));
    n.send(b, frame(kBroadcast, mac(0xB)));
    n.clear();
    ASSERT_TRUE(n.sw->set_port_up(b, false).ok());
    EXPECT_FALSE(n.sw->port_up(b));
    EXPECT_EQ(n.sw->fdb().lookup(1, mac(0xB).to_u64(), 0), kNoPort);
    n.send(a, frame(kBroadcast, mac(0xA)));
    n.send(a, frame(mac(0xB), mac(0xA)));
    EXPECT_EQ(n.receivers(), "2");
    n.send(b, frame(kBroadcast, mac(0xB)));
    EXPECT_EQ(n.counters(b).drop(DropReason::port_down), 1u);
    EXPECT_EQ(n.port(c).frames.size(), 2u);
    ASSERT_TRUE(n.sw->set_port_up(b, true).ok());
    n.clear();
    n.send(a, frame(kBroadcast, mac(0xA)));
    EXPECT_EQ(n.receivers(), "1,2");
    EXPECT_FALSE(n.sw->set_port_up(7, true).ok());
    EXPECT_FALSE(n.sw->flush_fdb(7).ok());
}

TEST(Switch, UnicastToStaticMacOfDownPortCountsNoBuffer) {
    Net n;
    PortId s = n.add(with_static(access(1), mac(0x50)));
    PortId a = n.add(access(1));
    ASSERT_TRUE(n.sw->set_port_up(s, false).ok());
    n.send(a, frame(mac(0x50), mac(0xA)));
    EXPECT_EQ(n.port(s).delivered + n.port(s).refused, 0u);
    EXPECT_EQ(n.counters(s).drop(DropReason::no_buffer), 1u);
}

TEST(Switch, MalformedFramesAreDroppedAndCounted) {
    struct Case {
        const char* what;
        Bytes bytes;
        uint32_t view_len;  // the length the view claims
        uint32_t segments;  // cut into this many pieces (0: one)
    };
    Bytes ok = frame(kBroadcast, mac(0xA), 64);
    Bytes group_src = frame(kBroadcast, kMulticast, 64);
    Bytes bcast_src = frame(mac(0xA), kBroadcast, 64);
    Bytes ok_tagged = with_tag(ok, 1);
    const Case cases[] = {
        {"13 bytes", Bytes(ok.begin(), ok.begin() + 13), 13, 0},
        {"empty", Bytes(), 0, 0},
        {"1515 untagged", frame(kBroadcast, mac(0xA), 1515), 1515, 0},
        {"1519 tagged", with_tag(frame(kBroadcast, mac(0xA), 1515), 1), 1519, 0},
        {"tagged but 17 bytes", Bytes(ok_tagged.begin(), ok_tagged.begin() + 17), 17, 0},
        {"65 segments", ok, 64, 65},
        {"view longer than its segments", ok, 65, 0},
        {"view shorter than its segments", ok, 63, 0},
        {"multicast source", group_src, 64, 0},
        {"broadcast source", bcast_src, 64, 0},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        Net n;
        PortId a = n.add(access(1));
        n.add(access(1));
        std::vector<Segment> segs;
        if (c.segments == 0) {
            segs.push_back(Segment{c.bytes.data(), static_cast<uint32_t>(c.bytes.size())});
        } else {
            // One byte per segment, the rest in the last.
            for (uint32_t i = 0; i + 1 < c.segments; ++i) segs.push_back(Segment{c.bytes.data() + i, 1});
            segs.push_back(
                Segment{c.bytes.data() + c.segments - 1, static_cast<uint32_t>(c.bytes.size() - (c.segments - 1))});
        }
        FrameView v{segs.data(), static_cast<uint32_t>(segs.size()), c.view_len};
        n.sw->forward(a, v, 0);
        EXPECT_EQ(n.receivers(), "");
        EXPECT_EQ(n.counters(a).drop(DropReason::malformed), 1u);
        EXPECT_EQ(n.counters(a).rx_packets, 1u);
        EXPECT_EQ(n.sw->stats(0).fdb_entries, 0u);  // nothing learned from it
    }
}

TEST(Switch, SixtyFourSegmentsAndAnyHeaderSplitAreFine) {
    // Every split of the first 19 bytes into two segments, tagged or not, and
    // a frame in 64 one-byte-ish pieces: the receivers see exact bytes.
    const Bytes plain = frame(kBroadcast, mac(0xA), 70);
    const Bytes tagged = with_tag(plain, 0x300A);
    for (size_t cut = 1; cut <= 19; ++cut) {
        SCOPED_TRACE(cut);
        Net n;
        PortId a = n.add(access(10)), t = n.add(trunk({10})), b = n.add(access(10));
        n.send(a, plain, 0, {cut});
        ASSERT_EQ(n.port(t).frames.size(), 1u);
        EXPECT_EQ(n.port(t).frames[0], with_tag(plain, 10));
        EXPECT_EQ(n.port(b).frames[0], plain);
        n.clear();
        n.send(t, tagged, 0, {cut, cut + 1, cut + 3});
        ASSERT_EQ(n.port(a).frames.size(), 1u);
        EXPECT_EQ(n.port(a).frames[0], plain);
    }
    Net n;
    PortId a = n.add(access(10)), t = n.add(trunk({10}));
    std::vector<size_t> cuts;
    for (size_t i = 1; i < kMaxSegments; ++i) cuts.push_back(i);
    n.send(a, plain, 0, cuts);
    ASSERT_EQ(n.port(t).frames.size(), 1u);
    EXPECT_EQ(n.port(t).frames[0], with_tag(plain, 10));
}

TEST(Switch, CopyOutServesAnyWindowOfTheEditedFrame) {
    // Receivers with several RX buffers copy in pieces: every window must match.
    Net n;
    PortId a = n.add(access(5));
    struct Capture final : PortDriver {
        Bytes whole;
        DeliverResult deliver(const OutFrame& f) override {
            whole.assign(f.len(), 0);
            for (uint32_t off = 0; off < f.len(); off += 7) copy_out(f, off, whole.data() + off, 7);
            uint8_t past[4];
            EXPECT_EQ(copy_out(f, f.len(), past, 4), 0u);
            EXPECT_EQ(copy_out(f, f.len() - 2, past, 4), 2u);
            return DeliverResult::delivered;
        }
        void flush() override {}
    } cap;
    ASSERT_TRUE(n.sw->add_port(trunk({5}), &cap).ok());
    Bytes plain = frame(kBroadcast, mac(0xA), 100);
    n.send(a, plain, 0, {3, 13, 50});
    EXPECT_EQ(cap.whole, with_tag(plain, 5));
}

TEST(Switch, BatchFlushesEachReceiverOnceAndAddsCountersAtFinish) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1)), c = n.add(access(1));
    n.send(b, frame(kBroadcast, mac(0xB)));
    n.send(c, frame(kBroadcast, mac(0xC)));
    n.clear();
    uint64_t tx_b = n.counters(b).tx_packets, tx_bytes_c = n.counters(c).tx_bytes;
    Bytes to_b = frame(mac(0xB), mac(0xA), 100), to_c = frame(mac(0xC), mac(0xA), 200);
    Segment sb{to_b.data(), 100}, sc{to_c.data(), 200};
    {
        TxBatch batch(*n.sw);
        for (int i = 0; i < 5; ++i) batch.forward(a, FrameView{&sb, 1, 100}, 0);
        for (int i = 0; i < 3; ++i) batch.forward(a, FrameView{&sc, 1, 200}, 0);
        EXPECT_EQ(n.port(b).frames.size(), 5u);
        EXPECT_EQ(n.port(b).flushes, 0u);
        EXPECT_EQ(n.counters(b).tx_packets, tx_b);  // not yet: added once per batch
        batch.finish();
        EXPECT_EQ(n.port(b).flushes, 1u);
        EXPECT_EQ(n.port(c).flushes, 1u);
        EXPECT_EQ(n.counters(b).tx_packets, tx_b + 5);
        EXPECT_EQ(n.counters(c).tx_bytes, tx_bytes_c + 600);
        // Reused after finish; the destructor finishes the rest.
        batch.forward(a, FrameView{&sb, 1, 100}, 0);
    }
    EXPECT_EQ(n.port(b).flushes, 2u);
    EXPECT_EQ(n.port(c).flushes, 1u);
    EXPECT_EQ(n.counters(b).tx_packets, tx_b + 6);
    EXPECT_EQ(n.port(a).flushes, 0u);
}

// Egress counters are kept per sender (single writer, no locked add); a batch
// that changes sender finishes the first sender's part before the second's.
TEST(Switch, BatchWithTwoSendersAccountsEachAndReceiverSumsThem) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1)), r = n.add(access(1));
    n.send(r, frame(kBroadcast, mac(0x10)));
    n.clear();
    Bytes fa = frame(mac(0x10), mac(0xA), 100), fb = frame(mac(0x10), mac(0xB), 300);
    Segment sa{fa.data(), 100}, sb{fb.data(), 300};
    {
        TxBatch batch(*n.sw);
        batch.forward(a, FrameView{&sa, 1, 100}, 0);
        batch.forward(a, FrameView{&sa, 1, 100}, 0);
        EXPECT_EQ(n.port(r).flushes, 0u);
        batch.forward(b, FrameView{&sb, 1, 300}, 0);  // a's part is finished first
        EXPECT_EQ(n.port(r).flushes, 1u);
        EXPECT_EQ(n.counters(r).tx_packets, 2u);
        EXPECT_EQ(n.counters(r).tx_bytes, 200u);
    }
    EXPECT_EQ(n.port(r).flushes, 2u);
    EXPECT_EQ(n.counters(r).tx_packets, 3u);
    EXPECT_EQ(n.counters(r).tx_bytes, 500u);
    // The broadcast that taught r went to a and b: one each.
    EXPECT_EQ(n.counters(a).tx_packets, 1u);
    EXPECT_EQ(n.counters(b).tx_packets, 1u);
}

TEST(Switch, AddPortValidatesItsConfiguration) {
    PortConfig unnamed = access(1);
    unnamed.name[0] = '\0';
    PortConfig unterminated = access(1);
    std::memset(unterminated.name, 'x', sizeof unterminated.name);
    PortConfig zero_mac = with_static(access(1), MacAddr{});
    PortConfig small_burst = access(1);
    small_burst.rate_bytes_per_sec = 1000;
    small_burst.burst_bytes = 1517;
    PortConfig bad_mirror = access(1);
    bad_mirror.mirror[2] = static_cast<MirrorDir>(4);
    PortConfig bad_mode = access(1);
    bad_mode.vlan_mode = static_cast<VlanMode>(2);
    struct Case {
        const char* what;
        PortConfig cfg;
    } cases[] = {
        {"access VLAN 0", access(0)},
        {"access VLAN 4095", access(4095)},
        {"trunk allows 0", trunk({0, 5})},
        {"trunk allows 4095", trunk({4095})},
        {"trunk allows nothing", trunk({})},
        {"native not allowed", trunk({5}, 6)},
        {"unnamed", unnamed},
        {"name not terminated", unterminated},
        {"multicast static MAC", with_static(access(1), kMulticast)},
        {"zero static MAC", zero_mac},
        {"static MAC of another port", with_static(access(2), mac(0x50))},
        {"burst below one frame", small_burst},
        {"mirror direction", bad_mirror},
        {"VLAN mode", bad_mode},
    };
    Net n;
    n.add(with_static(access(1), mac(0x50)));
    FakePort p;
    for (const Case& c : cases) {
        auto r = n.sw->add_port(c.cfg, &p);
        EXPECT_FALSE(r.ok()) << c.what;
        if (!r.ok()) {
            EXPECT_EQ(r.error().code, hv::Errc::invalid_argument) << c.what;
        }
    }
    EXPECT_FALSE(n.sw->add_port(access(1), nullptr).ok());
    EXPECT_EQ(n.sw->port_count(), 1u);
    // Capacity: kMaxPorts in all.
    for (size_t i = 1; i < kMaxPorts; ++i) n.add(access(1));
    auto r = n.sw->add_port(access(1), &p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, hv::Errc::no_memory);
    // Ports are introspectable.
    ASSERT_NE(n.sw->port_config(0), nullptr);
    EXPECT_STREQ(n.sw->port_config(0)->name, "guest.eth-access1");
    EXPECT_EQ(n.sw->port_config(kMaxPorts), nullptr);
    EXPECT_FALSE(n.sw->counters(kMaxPorts).ok());
    EXPECT_FALSE(n.sw->set_hash_seed(1).ok());  // too late: ports exist
}

PortConfig limited(PortConfig c, uint32_t max_macs) {
    c.max_macs = max_macs;
    return c;
}

// 02:00:00:00:NN:NN, stations a guest invents.
MacAddr invented(uint16_t i) {
    return MacAddr{{0x02, 0, 0, 0, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)}};
}

TEST(SwitchMacLimit, NewSourcesBeyondTheLimitAreDroppedAndCountedOthersUnaffected) {
    Net n;
    PortId a = n.add(limited(access(1), 3));
    PortId b = n.add(with_static(access(1), mac(0xB)));
    PortId c = n.add(access(1));
    for (uint16_t i = 0; i < 10; ++i) n.send(a, frame(kBroadcast, invented(i)));
    // The first 3 went out and were learned; the other 7 reached no one.
    EXPECT_EQ(n.port(b).frames.size(), 3u);
    EXPECT_EQ(n.port(c).frames.size(), 3u);
    auto ca = n.counters(a);
    EXPECT_EQ(ca.rx_packets, 10u);
    EXPECT_EQ(ca.drop(DropReason::mac_limit), 7u);
    EXPECT_EQ(ca.floods, 3u);
    EXPECT_EQ(n.sw->learned_macs(a, 0), 3u);
    EXPECT_EQ(n.sw->fdb().lookup(1, invented(3).to_u64(), 0), kNoPort);
    n.clear();
    // The learned ones still talk, and are reached by unicast.
    n.send(a, frame(mac(0xB), invented(2)));
    EXPECT_EQ(n.receivers(), "1");
    n.send(b, frame(invented(1), mac(0xB)));
    EXPECT_EQ(n.receivers(), "0,1");
    // Other ports learn as before: c (no limit) brings in 50 stations.
    for (uint16_t i = 100; i < 150; ++i) n.send(c, frame(kBroadcast, invented(i)));
    EXPECT_EQ(n.counters(c).drop(DropReason::mac_limit), 0u);
    EXPECT_EQ(n.sw->learned_macs(c, 0), 50u);
    EXPECT_EQ(n.counters(b).drop(DropReason::mac_limit), 0u);
    EXPECT_EQ(n.sw->stats(0).fdb_entries, 3u + 1u + 50u);  // b's static MAC counts in the table, not in a limit
}

TEST(SwitchMacLimit, FlushPortDownAndAgeingGiveTheBudgetBack) {
    Net n;
    PortId a = n.add(limited(access(1), 2));
    n.add(access(1));
    n.sw->set_ageing_ns(10 * kSec);
    auto sends = [&](uint16_t first, uint16_t count, uint64_t now) {
        uint64_t before = n.counters(a).drop(DropReason::mac_limit);
        for (uint16_t i = first; i < first + count; ++i) n.send(a, frame(kBroadcast, invented(i)), now);
        return count - (n.counters(a).drop(DropReason::mac_limit) - before);  // how many passed
    };
    EXPECT_EQ(sends(0, 4, 0), 2u);
    ASSERT_TRUE(n.sw->flush_fdb(a).ok());
    EXPECT_EQ(sends(10, 4, 0), 2u);
    ASSERT_TRUE(n.sw->set_port_up(a, false).ok());
    ASSERT_TRUE(n.sw->set_port_up(a, true).ok());
    EXPECT_EQ(sends(20, 4, kSec), 2u);
    EXPECT_EQ(sends(30, 4, 5 * kSec), 0u);
    // 11 s after they were learned, the two from 1 s have aged out (nobody swept them).
    EXPECT_EQ(sends(40, 4, 12 * kSec), 2u);
    EXPECT_EQ(n.sw->learned_macs(a, 12 * kSec), 2u);
}

TEST(SwitchMacLimit, AStationMovesOnlyToAPortWithRoom) {
    Net n;
    PortId a = n.add(limited(access(1), 1));
    PortId b = n.add(access(1));
    PortId c = n.add(access(1));
    n.send(a, frame(kBroadcast, invented(1)), 0);
    n.send(b, frame(kBroadcast, invented(2)), 0);
    // invented(2) moving to a, which holds its 1: refused, it stays behind b.
    n.send(a, frame(kBroadcast, invented(2)), kSec);
    EXPECT_EQ(n.counters(a).drop(DropReason::mac_limit), 1u);
    EXPECT_EQ(n.sw->fdb().lookup(1, invented(2).to_u64(), kSec), b);
    // invented(1) moves away from a to c: a has room again, for invented(2).
    n.send(c, frame(kBroadcast, invented(1)), 2 * kSec);
    EXPECT_EQ(n.sw->learned_macs(a, 2 * kSec), 0u);
    n.send(a, frame(kBroadcast, invented(2)), 3 * kSec);
    EXPECT_EQ(n.counters(a).drop(DropReason::mac_limit), 1u);
    EXPECT_EQ(n.sw->fdb().lookup(1, invented(2).to_u64(), 3 * kSec), a);
}

TEST(SwitchMacLimit, AStaticMacPortIsNeverLimitedByItsOwnMac) {
    // A trunk with a static MAC gets one static entry per VLAN it sends on;
    // none of them counts against max_macs = 1.
    Net n;
    PortId t = n.add(limited(with_static(trunk({1, 2, 3, 4}), mac(0x70)), 1));
    n.add(trunk({1, 2, 3, 4}));
    for (uint16_t v = 1; v <= 4; ++v) n.send(t, with_tag(frame(kBroadcast, mac(0x70)), v));
    EXPECT_EQ(n.counters(t).drop(DropReason::mac_limit), 0u);
    EXPECT_EQ(n.port(1).frames.size(), 4u);
    EXPECT_EQ(n.sw->learned_macs(t, 0), 0u);
}

TEST(SwitchFdbSize, StorageFromOutsideSetsTheCapacityOnlyBeforePorts) {
    Net n;
    std::vector<uint64_t> mem(Fdb::storage_bytes(256) / 8 + 8);
    auto* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t{63});
    EXPECT_FALSE(n.sw->set_fdb_storage(aligned, Fdb::storage_bytes(256), 200).ok());
    ASSERT_TRUE(n.sw->set_fdb_storage(aligned, Fdb::storage_bytes(256), 256).ok());
    EXPECT_EQ(n.sw->stats(0).fdb_capacity, 256u);
    PortId a = n.add(access(1));
    n.add(access(1));
    EXPECT_FALSE(n.sw->set_fdb_storage(aligned, Fdb::storage_bytes(256), 256).ok());
    // The table really is that small: 1024 stations fill it exactly.
    for (uint16_t i = 0; i < 1024; ++i) n.send(a, frame(kBroadcast, invented(i)));
    auto st = n.sw->stats(0);
    EXPECT_EQ(st.fdb_entries, 256u);
    EXPECT_EQ(st.fdb_full, 1024u - 256u);
    EXPECT_EQ(Switch().stats(0).fdb_capacity, 4096u);
}

TEST(Switch, EnumNamesAreDistinct) {
    std::set<std::string> names;
    for (size_t r = 0; r < kDropReasonCount; ++r) names.insert(drop_reason_name(static_cast<DropReason>(r)));
    EXPECT_EQ(names.size(), kDropReasonCount);
    EXPECT_EQ(names.count("unknown"), 0u);
    EXPECT_STREQ(drop_reason_name(DropReason::no_buffer), "no_buffer");
    EXPECT_STREQ(drop_reason_name(DropReason::vlan_filtered), "vlan_filtered");
    EXPECT_STREQ(vlan_mode_name(VlanMode::trunk), "trunk");
    EXPECT_STREQ(mirror_dir_name(MirrorDir::both), "both");
    EXPECT_STREQ(learn_result_name(LearnResult::static_conflict), "static_conflict");
    EXPECT_STREQ(drop_reason_name(DropReason::mac_limit), "mac_limit");
    EXPECT_STREQ(learn_result_name(LearnResult::limit), "limit");
    EXPECT_STREQ(source_state_name(SourceState::other_static), "other_static");
    EXPECT_STREQ(deliver_result_name(DeliverResult::no_buffer), "no_buffer");
}

TEST(Switch, MirrorSessionsCaptureIngressAsSentAndEgressAsDelivered) {
    Net n;
    PortConfig a_cfg = access(10);
    a_cfg.mirror[0] = MirrorDir::ingress;
    PortId a = n.add(a_cfg);
    PortId t = n.add(trunk({10}));
    PortId b = n.add(access(10));
    ASSERT_TRUE(n.sw->set_port_mirror(t, 1, MirrorDir::egress).ok());
    ASSERT_TRUE(n.sw->set_port_mirror(b, 1, MirrorDir::both).ok());
    std::vector<uint8_t> buf0(4096), buf1(8192);
    ASSERT_TRUE(n.sw->start_mirror(0, buf0.data(), buf0.size()).ok());
    ASSERT_TRUE(n.sw->start_mirror(1, buf1.data(), buf1.size(), 64).ok());

    Bytes f1 = frame(kBroadcast, mac(0xA), 100);
    n.send(a, f1, 1 * kSec + 5000);
    n.send(b, frame(mac(0xA), mac(0xB), 60), 2 * kSec);  // b ingress (session 1), a egress (not mirrored)

    auto file0 = *n.sw->mirror_file(0);
    auto p0 = hv::test::parse_pcap(file0.data, file0.len);
    ASSERT_TRUE(p0.ok);
    ASSERT_EQ(p0.records.size(), 1u);
    EXPECT_EQ(p0.records[0].data, f1);
    EXPECT_EQ(p0.records[0].ts_sec, 1u);
    EXPECT_EQ(p0.records[0].ts_usec, 5u);

    auto file1 = *n.sw->mirror_file(1);
    auto p1 = hv::test::parse_pcap(file1.data, file1.len);
    ASSERT_TRUE(p1.ok);
    EXPECT_EQ(p1.snaplen, 64u);
    ASSERT_EQ(p1.records.size(), 3u);  // f1 to t (tagged), f1 to b, then b's own frame
    EXPECT_EQ(p1.records[0].orig_len, 104u);
    Bytes f1_tagged = with_tag(f1, 10);
    EXPECT_EQ(p1.records[0].data, Bytes(f1_tagged.begin(), f1_tagged.begin() + 64));
    EXPECT_EQ(p1.records[1].orig_len, 100u);
    EXPECT_EQ(p1.records[2].data, frame(mac(0xA), mac(0xB), 60));
    auto st = *n.sw->mirror_stats(1);
    EXPECT_TRUE(st.capturing);
    EXPECT_EQ(st.records, 3u);
    EXPECT_EQ(st.truncated, 2u);
    EXPECT_EQ(st.file_bytes, file1.len);

    // tshark reads the switch's file, egress tag included.
    std::string path = hv::test::write_temp_file("mirror1.pcap", file1.data, file1.len);
    auto lines = hv::test::tshark_fields(path, {"frame.len", "eth.src", "eth.dst", "vlan.id"});
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "104\t02:00:00:00:00:0a\tff:ff:ff:ff:ff:ff\t10");
    EXPECT_EQ(lines[1], "100\t02:00:00:00:00:0a\tff:ff:ff:ff:ff:ff\t");
    EXPECT_EQ(lines[2], "60\t02:00:00:00:00:0b\t02:00:00:00:00:0a\t");

    // Stopped: no more records; reset: an empty file.
    ASSERT_TRUE(n.sw->stop_mirror(1).ok());
    n.send(a, f1, 3 * kSec);
    EXPECT_EQ(n.sw->mirror_stats(1)->records, 3u);
    EXPECT_EQ(n.sw->mirror_stats(0)->records, 2u);
    ASSERT_TRUE(n.sw->reset_mirror(0).ok());
    EXPECT_EQ(n.sw->mirror_file(0)->len, 24u);
    EXPECT_FALSE(n.sw->start_mirror(kMaxMirrors, buf0.data(), buf0.size()).ok());
    EXPECT_FALSE(n.sw->set_port_mirror(a, kMaxMirrors, MirrorDir::both).ok());
}

TEST(Switch, FullMirrorBufferDropsCopiesButNeverFrames) {
    Net n;
    PortConfig a_cfg = access(1);
    a_cfg.mirror[3] = MirrorDir::both;
    PortId a = n.add(a_cfg);
    PortId b = n.add(access(1));
    std::vector<uint8_t> buf(24 + 2 * (16 + 64));
    ASSERT_TRUE(n.sw->start_mirror(3, buf.data(), buf.size()).ok());
    for (int i = 0; i < 5; ++i) n.send(a, frame(kBroadcast, mac(0xA), 64));
    EXPECT_EQ(n.port(b).frames.size(), 5u);
    auto st = *n.sw->mirror_stats(3);
    EXPECT_EQ(st.records, 2u);
    EXPECT_EQ(st.dropped, 3u);
}

TEST(Switch, TwoSendersOnTwoThreadsIntoOneReceiver) {
    Net n;
    PortId a = n.add(access(1)), b = n.add(access(1)), r = n.add(access(1));
    n.send(r, frame(kBroadcast, mac(0x10)));  // learn the receiver
    n.clear();
    n.port(r).keep = false;
    constexpr int kFrames = 200000, kBatch = 32;  // long enough for the threads to overlap
    auto sender = [&](PortId in, uint8_t src, size_t len) {
        Bytes f = frame(mac(0x10), mac(src), len);
        Segment s{f.data(), static_cast<uint32_t>(f.size())};
        FrameView v{&s, 1, static_cast<uint32_t>(f.size())};
        for (int i = 0; i < kFrames; i += kBatch) {
            TxBatch batch(*n.sw);
            for (int j = 0; j < kBatch && i + j < kFrames; ++j) batch.forward(in, v, static_cast<uint64_t>(i) * 1000);
        }
    };
    std::thread t1(sender, a, 0x1, 64), t2(sender, b, 0x2, 1500);
    t1.join();
    t2.join();
    EXPECT_EQ(n.port(r).delivered, 2u * kFrames);
    auto cr = n.counters(r);
    EXPECT_EQ(cr.tx_packets, 2u * kFrames);
    EXPECT_EQ(cr.tx_bytes, uint64_t(kFrames) * (64 + 1500));
    EXPECT_EQ(n.port(r).flushes, 2u * ((kFrames + kBatch - 1) / kBatch));
    EXPECT_EQ(n.counters(a).rx_packets, uint64_t(kFrames));
    EXPECT_EQ(n.counters(b).rx_packets, uint64_t(kFrames));
    EXPECT_EQ(n.port(a).delivered + n.port(b).delivered, 0u);
}

TEST(VlanSet, AddRemoveRangeAndCount) {
    VlanSet s;
    EXPECT_TRUE(s.empty());
    s.add_range(100, 199);
    s.add(4094);
    s.add(4096);  // out of range: ignored
    EXPECT_EQ(s.count(), 101u);
    EXPECT_TRUE(s.contains(100) && s.contains(199) && s.contains(4094));
    EXPECT_FALSE(s.contains(99) || s.contains(200) || s.contains(4096));
    s.remove(150);
    EXPECT_FALSE(s.contains(150));
    EXPECT_EQ(s.count(), 100u);
    s.clear();
    EXPECT_TRUE(s.empty());
}
