// Fuzzes the switch core: arbitrary port configurations, frames, segmentations,
// port up/down, flushes and time steps go through TxBatch::forward(). Fake
// receivers check every delivered frame against a small independent model of
// 802.1Q classification and egress editing:
//   - never back to the sender, never to a down port, never between two
//     protected ports, only to members of the frame's VLAN;
//   - nothing at all from a frame the model drops (malformed, spoofed, VLAN);
//   - the exact bytes: the sender's frame with its tag removed, then re-tagged
//     (VID of the VLAN, priority bits kept) iff the receiver is a trunk and
//     the VLAN is not its native one; 14..1518 bytes, 1514 when untagged;
//   - a broadcast reaches exactly the expected set of ports;
//   - the rx counter of the sender counts every frame; the mirror file parses;
//   - per-port MAC limits (a 256-entry table from outside storage): a frame
//     is dropped as mac_limit exactly when its source is new on the port (not
//     live there, not the port's static MAC) and the port already holds its
//     limit of live learned entries, and no port ever holds more.
// Input: [nports] [4 bytes per port] then operations until the input ends.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memory>
#include <vector>

#include "kernel/net/switch.hpp"
#include "kernel/net/tx_batch.hpp"

using namespace hv::net;

namespace {

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "switch_fuzz: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

struct Input {
    const uint8_t* p;
    size_t n;
    bool empty() const { return n == 0; }
    uint8_t byte() {
        if (n == 0) return 0;
        --n;
        return *p++;
    }
    uint16_t u16() { return static_cast<uint16_t>(byte() | byte() << 8); }
};

constexpr uint16_t kVlans = 4;  // VLANs 1..4 (5 is never allowed anywhere)

MacAddr station(uint8_t i) {
    return MacAddr{{0x02, 0, 0, 0, 0x5E, static_cast<uint8_t>(i)}};
}

struct ModelPort {
    PortConfig cfg;
    bool up = true;
};

// What the model expects of the frame being forwarded.
struct Expect {
    PortId in = kNoPort;
    bool accepted = false;  // by the model (the switch may still rate-limit)
    uint16_t vlan = 0;
    uint8_t pcp_dei = 0;
    std::vector<uint8_t> untagged;  // the frame with its tag removed
    bool group_dst = false;
    uint32_t seen_mask = 0;  // receivers deliver() was called on
};

struct Fuzz;

class Receiver final : public PortDriver {
  public:
    Fuzz* fz = nullptr;
    PortId id = 0;
    uint8_t behaviour = 0;  // 0: accepts; 1: no buffers; 2: down; 3: alternates
    uint32_t calls = 0;
    DeliverResult deliver(const OutFrame& f) override;
    void flush() override {}
};

struct Fuzz {
    std::unique_ptr<Switch> sw = std::make_unique<Switch>();
    ModelPort model[kMaxPorts];
    Receiver rx[kMaxPorts];
    size_t nports = 0;
    Expect cur;
    std::vector<uint8_t> mirror_buf = std::vector<uint8_t>(16384);
    struct alignas(64) Line {
        uint8_t b[64];
    };
    std::vector<Line> fdb_mem = std::vector<Line>(Fdb::storage_bytes(Fdb::kMinCapacity) / sizeof(Line));

    bool member(PortId p, uint16_t vlan) const {
        const PortConfig& c = model[p].cfg;
        return c.vlan_mode == VlanMode::access ? c.access_vlan == vlan : c.allowed.contains(vlan);
    }
    PortId static_owner(const uint8_t* src) const {
        for (size_t i = 0; i < nports; ++i)
            if (model[i].cfg.has_static_mac && memcmp(model[i].cfg.static_mac.b, src, 6) == 0)
                return static_cast<PortId>(i);
        return kNoPort;
    }

    // Independent statement of the ingress rules (issue #4, 802.1Q §6.9).
    void classify(PortId in, const std::vector<uint8_t>& f, uint32_t nsegs, bool view_ok) {
        cur = Expect{};
        cur.in = in;
        const ModelPort& mp = model[in];
        if (!mp.up || !view_ok || nsegs > kMaxSegments || f.size() < 14 || f.size() > 1518) return;
        bool tagged = f[12] == 0x81 && f[13] == 0x00;
        if (tagged ? f.size() < 18 : f.size() > 1514) return;
        if (f[6] & 1) return;
        if (mp.cfg.has_static_mac && memcmp(mp.cfg.static_mac.b, &f[6], 6) != 0) return;
        uint16_t vid = tagged ? static_cast<uint16_t>((f[14] << 8 | f[15]) & 0xFFF) : 0;
        uint16_t vlan = 0;
        if (vid == 0) {
            vlan = mp.cfg.vlan_mode == VlanMode::access ? mp.cfg.access_vlan : mp.cfg.native_vlan;
        } else if (mp.cfg.vlan_mode == VlanMode::trunk && mp.cfg.allowed.contains(vid)) {
            vlan = vid;
        }
        if (vlan == 0) return;
        size_t et = tagged ? 16 : 12;
        uint16_t inner = static_cast<uint16_t>(f[et] << 8 | f[et + 1]);
        if (inner == 0x8100 || inner == 0x88A8 || inner == 0x9100) return;
        PortId owner = static_owner(&f[6]);
        if (owner != kNoPort && owner != in) return;
        cur.accepted = true;
        cur.vlan = vlan;
        cur.pcp_dei = tagged ? (f[14] & 0xF0) : 0;
        cur.untagged.assign(f.begin(), f.begin() + 12);
        cur.untagged.insert(cur.untagged.end(), f.begin() + (tagged ? 16 : 12), f.end());
        cur.group_dst = (f[0] & 1) != 0;
    }

    void check_delivery(PortId to, const OutFrame& f) {
        CHECK(cur.in != kNoPort);
        CHECK(cur.accepted);
        CHECK(to != cur.in);
        CHECK(to < nports);
        CHECK(model[to].up);
        CHECK(member(to, cur.vlan));
        CHECK(!(model[to].cfg.protected_port && model[cur.in].cfg.protected_port));
        CHECK(!(cur.seen_mask & (1u << to)));  // once per receiver
        cur.seen_mask |= 1u << to;

        const PortConfig& rc = model[to].cfg;
        bool tag_out = rc.vlan_mode == VlanMode::trunk && cur.vlan != rc.native_vlan;
        std::vector<uint8_t> expected(cur.untagged.begin(), cur.untagged.begin() + 12);
        if (tag_out) {
            expected.push_back(0x81);
            expected.push_back(0x00);
            expected.push_back(static_cast<uint8_t>(cur.pcp_dei | cur.vlan >> 8));
            expected.push_back(static_cast<uint8_t>(cur.vlan));
        }
        expected.insert(expected.end(), cur.untagged.begin() + 12, cur.untagged.end());
        uint32_t len = f.len();
        CHECK(len == expected.size());
        CHECK(len >= kMinFrameLen && len <= kMaxFrameLen);
        CHECK(tag_out || len <= kMaxUntaggedLen);
        std::vector<uint8_t> got(len + 8, 0xCC);
        // In two pieces, as a receiver with two RX buffers would.
        uint32_t half = len / 2;
        CHECK(copy_out(f, 0, got.data(), half) == half);
        CHECK(copy_out(f, half, got.data() + half, len + 8) == len - half);
        CHECK(memcmp(got.data(), expected.data(), len) == 0);
        CHECK(got[len] == 0xCC);
        if (model[cur.in].cfg.has_static_mac) CHECK(memcmp(&got[6], model[cur.in].cfg.static_mac.b, 6) == 0);
    }

    // For a flooded frame: the exact set of ports deliver() must be called on.
    uint32_t flood_set() const {
        uint32_t m = 0;
        for (size_t p = 0; p < nports; ++p) {
            if (p == cur.in || !model[p].up || !member(static_cast<PortId>(p), cur.vlan)) continue;
            if (model[p].cfg.protected_port && model[cur.in].cfg.protected_port) continue;
            m |= 1u << p;
        }
        return m;
    }
};

DeliverResult Receiver::deliver(const OutFrame& f) {
    fz->check_delivery(id, f);
    ++calls;
    switch (behaviour & 3) {
        case 0: return DeliverResult::delivered;
        case 1: return DeliverResult::no_buffer;
        case 2: return DeliverResult::down;
        default: return (calls & 1) ? DeliverResult::delivered : DeliverResult::no_buffer;
    }
}

void setup_ports(Fuzz& fz, Input& in) {
    size_t want = 2 + in.byte() % 7;
    for (size_t i = 0; i < want; ++i) {
        uint8_t c0 = in.byte(), c1 = in.byte(), c2 = in.byte(), c3 = in.byte();
        PortConfig cfg;
        snprintf(cfg.name, sizeof cfg.name, "fuzz.eth%zu", i);
        if (c0 & 1) {
            cfg.vlan_mode = VlanMode::trunk;
            for (uint16_t v = 1; v <= kVlans; ++v)
                if (c1 & (1u << (v - 1))) cfg.allowed.add(v);
            if (cfg.allowed.empty()) cfg.allowed.add(1 + c1 % kVlans);
            uint16_t native = c2 % (kVlans + 1);
            cfg.native_vlan = cfg.allowed.contains(native) ? native : 0;
        } else {
            cfg.vlan_mode = VlanMode::access;
            cfg.access_vlan = 1 + c1 % kVlans;
        }
        cfg.protected_port = (c0 & 2) != 0;
        if (c0 & 4) {
            cfg.has_static_mac = true;
            cfg.static_mac = station(static_cast<uint8_t>(i));  // distinct per port
        }
        if (c0 & 8) {
            cfg.rate_bytes_per_sec = 1000 + 1000ull * (c2 >> 4);
            cfg.burst_bytes = 1518 + 200u * (c3 >> 4);
        }
        cfg.mirror[0] = static_cast<MirrorDir>(c0 >> 4 & 3);
        cfg.max_macs = c3 >> 2 & 7;  // 0 (no limit) to 7
        if (c3 & 0x20) cfg.max_macs = 0;
        fz.rx[i].fz = &fz;
        fz.rx[i].id = static_cast<PortId>(i);
        fz.rx[i].behaviour = c3 & 3;
        auto r = fz.sw->add_port(cfg, &fz.rx[i]);
        CHECK(r.ok());
        CHECK(*r == i);
        fz.model[i].cfg = cfg;
        fz.nports = i + 1;
    }
}

// Builds a frame from a few choice bytes (so that most frames are plausible)
// or, with the raw flag, takes its first 18 bytes straight from the input.
std::vector<uint8_t> make_frame(Input& in) {
    uint8_t kind = in.byte();
    uint16_t len = static_cast<uint16_t>(in.u16() % 1600);
    std::vector<uint8_t> f;
    if (kind & 0x80) {
        for (int i = 0; i < 18; ++i) f.push_back(in.byte());
    } else {
        uint8_t d = in.byte(), s = in.byte(), t = in.byte();
        MacAddr dst = d % 8 == 0   ? MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
                      : d % 8 == 1 ? MacAddr{{0x01, 0x00, 0x5e, 0, 0, 1}}
                                   : station(d % 12);
        MacAddr src = s % 16 == 15 ? MacAddr{{0x01, 0x80, 0xc2, 0, 0, 0}} : station(s % 12);
        f.insert(f.end(), dst.b, dst.b + 6);
        f.insert(f.end(), src.b, src.b + 6);
        if (t & 1) {
            uint16_t vid = (t >> 1 & 7) == 7 ? 4095 : (t >> 1 & 7);  // 0..6 and 4095
            uint16_t tci = static_cast<uint16_t>((t & 0xF0) << 8 | vid);
            f.insert(f.end(), {0x81, 0x00, static_cast<uint8_t>(tci >> 8), static_cast<uint8_t>(tci)});
        }
        static const uint16_t kTypes[] = {0x0800, 0x0806, 0x86DD, 0x8100, 0x88A8, 0x9100, 0x0000, 0xFFFF};
        uint16_t et = kTypes[kind & 7];
        f.push_back(static_cast<uint8_t>(et >> 8));
        f.push_back(static_cast<uint8_t>(et));
    }
    f.resize(len, 0);
    for (size_t i = 18; i < f.size(); ++i) f[i] = static_cast<uint8_t>(i ^ kind);
    return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in{data, size};
    Fuzz fz;
    if (!fz.sw->set_fdb_storage(fz.fdb_mem.data(), fz.fdb_mem.size() * sizeof(Fuzz::Line), Fdb::kMinCapacity).ok())
        abort();
    setup_ports(fz, in);
    fz.sw->set_ageing_ns(1'000'000'000);  // 1 s, so time steps age entries out
    if (!fz.sw->start_mirror(0, fz.mirror_buf.data(), fz.mirror_buf.size(), 128).ok()) abort();
    uint64_t now = 0;
    uint64_t rx_expected[kMaxPorts] = {};

    for (int ops = 0; !in.empty() && ops < 512; ++ops) {
        uint8_t op = in.byte();
        now += static_cast<uint64_t>(in.byte()) * 4'000'000;  // up to ~1 s per step
        PortId port = static_cast<PortId>(in.byte() % fz.nports);
        switch (op % 8) {
            case 6:
                fz.model[port].up = !fz.model[port].up;
                CHECK(fz.sw->set_port_up(port, fz.model[port].up).ok());
                continue;
            case 7:
                if (op & 0x80)
                    CHECK(fz.sw->flush_fdb(port).ok());
                else
                    (void)fz.sw->age(now);
                continue;
            default: break;
        }
        // A batch of 1..4 frames from `port`.
        TxBatch batch(*fz.sw);
        int frames = 1 + (op >> 3 & 3);
        for (int k = 0; k < frames; ++k) {
            std::vector<uint8_t> f = make_frame(in);
            // Segmentation: up to 6 cuts, or 70 pieces; sometimes a lying length.
            uint8_t seg = in.byte();
            std::vector<Segment> segs;
            std::vector<size_t> cuts;
            if ((seg & 0x3F) == 0x3F) {
                for (size_t i = 1; i < 70 && i < f.size(); ++i) cuts.push_back(i);
            } else {
                for (int i = 0; i < (seg & 7) && !f.empty(); ++i) {
                    size_t c = in.byte() % (f.size() + 1);
                    if (cuts.empty() || c >= cuts.back()) cuts.push_back(c);
                }
            }
            size_t start = 0;
            for (size_t c : cuts) {
                segs.push_back(Segment{f.data() + start, static_cast<uint32_t>(c - start)});
                start = c;
            }
            segs.push_back(Segment{f.data() + start, static_cast<uint32_t>(f.size() - start)});
            uint32_t view_len = static_cast<uint32_t>(f.size());
            if (seg & 0x40) view_len += (seg & 0x80) ? 1 : static_cast<uint32_t>(-1);
            FrameView v{segs.data(), static_cast<uint32_t>(segs.size()), view_len};

            fz.classify(port, f, v.count, view_len == f.size());
            bool limited = fz.model[port].cfg.rate_bytes_per_sec != 0;
            // Would learning this source take one of the port's places, and are they all taken?
            const uint32_t max_macs = fz.model[port].cfg.max_macs;
            bool over_limit = fz.cur.accepted && max_macs != 0 && fz.static_owner(&f[6]) != port &&
                              fz.sw->fdb().lookup(fz.cur.vlan, load_mac48(&f[6]), now) != port &&
                              fz.sw->learned_macs(port, now) >= max_macs;
            auto before = fz.sw->counters(port);
            CHECK(before.ok());
            if (over_limit) fz.cur.accepted = false;  // whatever else happens, nobody gets it
            batch.forward(port, v, now);
            ++rx_expected[port];
            auto after = fz.sw->counters(port);
            CHECK(after.ok());
            uint64_t mac_limited = after->drop(DropReason::mac_limit) - before->drop(DropReason::mac_limit);
            bool rate_dropped = after->drop(DropReason::rate_limited) != before->drop(DropReason::rate_limited);
            CHECK(mac_limited == (over_limit && !rate_dropped ? 1u : 0u));
            if (fz.cur.accepted && fz.cur.group_dst && !limited) CHECK(fz.cur.seen_mask == fz.flood_set());
            fz.cur = Expect{};
        }
        batch.finish();
        auto c = fz.sw->counters(port);
        CHECK(c.ok());
        CHECK(c->rx_packets == rx_expected[port]);
        for (size_t p = 0; p < fz.nports; ++p)
            if (uint32_t max = fz.model[p].cfg.max_macs) CHECK(fz.sw->learned_macs(static_cast<PortId>(p), now) <= max);
    }

    // Every port's rx counts and the mirror file's structure.
    for (size_t p = 0; p < fz.nports; ++p) CHECK(fz.sw->counters(static_cast<PortId>(p))->rx_packets == rx_expected[p]);
    auto file = fz.sw->mirror_file(0);
    CHECK(file.ok());
    size_t off = 24, records = 0;
    while (off < file->len) {
        CHECK(file->len - off >= 16);
        uint32_t incl;
        memcpy(&incl, file->data + off + 8, 4);
        CHECK(incl <= 128);
        off += 16 + incl;
        ++records;
    }
    CHECK(off == file->len);
    CHECK(records == fz.sw->mirror_stats(0)->records);
    return 0;
}
