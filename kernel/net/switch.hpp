#pragma once
// The hypervisor's L2 switch core (issue #4): MAC learning and ageing,
// flooding, 802.1Q access/trunk ports with a native VLAN, anti-spoofing,
// protected ports, ingress rate limits, per-port counters and mirror sessions
// captured as pcap files. Pure: ports are PortDriver objects, time is passed
// in, all storage is inside the object (a global in the hypervisor).
//
// Data path (see frame.hpp): a sender's CPU runs TxBatch::forward() for each
// frame of a notification. The switch copies the first 18 bytes of the frame
// (Ethernet header and an optional 802.1Q tag) out of the sender's memory
// ONCE, decides everything on that copy, and gives each receiver an OutFrame
// whose head is that copy edited for the receiver's port (tag inserted,
// stripped or rewritten) and whose tail is the rest of the sender's frame.
// The receiver's deliver() does the one copy of the payload.
//
// Concurrency: forward() runs on several CPUs at once, at most one CPU per
// ingress port at a time. The MAC table is lock-free for lookups (fdb.hpp);
// ingress state (rate limiter, rx and drop counters) is written only by the
// ingress port's CPU, and so are egress counters (kept per sender and
// receiver, added once per batch);
// receivers serialize inside their own deliver(); a mirror session takes its
// own lock. Administrative calls (add_port, set_port_up, ...) may run on any
// CPU concurrently with forwarding.

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/result.hpp"
#include "kernel/lib/spinlock.hpp"
#include "kernel/net/fdb.hpp"
#include "kernel/net/frame.hpp"
#include "kernel/net/mirror_session.hpp"
#include "kernel/net/port_config.hpp"
#include "kernel/net/port_counters.hpp"
#include "kernel/net/token_bucket.hpp"

namespace hv::net {

class TxBatch;

inline constexpr uint16_t kEthertypeVlan = 0x8100;                       // 802.1Q C-tag TPID
inline constexpr uint16_t kEthertypeQinQ = 0x88A8;                       // 802.1ad S-tag TPID
inline constexpr uint16_t kEthertypeQinQOld = 0x9100;                    // pre-802.1ad double tagging
inline constexpr uint32_t kMaxUntaggedLen = kMaxFrameLen - kVlanTagLen;  // 1514
inline constexpr uint32_t kHeadMax = kEthHeaderLen + kVlanTagLen;        // bytes the switch copies: 18

// Per switch, summed over ports or taken from the MAC table.
struct SwitchStats {
    size_t ports = 0;
    uint64_t floods = 0;       // frames flooded (broadcast, multicast, unknown unicast)
    uint64_t fdb_full = 0;     // sources not learned because their bucket was full
    uint64_t fdb_learned = 0;  // new MAC table entries
    uint64_t fdb_moved = 0;    // entries that moved to another port
    size_t fdb_entries = 0;    // live entries now
    size_t fdb_capacity = 0;   // entries the table holds
};

class Switch {
  public:
    // Validates cfg (VLAN IDs 1..4094, native VLAN among the allowed ones, a
    // unicast static MAC not used by another port, burst >= kMaxFrameLen when
    // rate limited) and adds the port, administratively up, with its max_macs. Ports are never
    // removed; the id is the index of the port (0, 1, ...).
    Result<PortId> add_port(const PortConfig& cfg, PortDriver* driver);
    // A port that is down receives nothing and its frames are dropped
    // (port_down); taking it down flushes its learned MACs (its guest stopped
    // or restarts: its stations may come back elsewhere). Static entries stay.
    Result<void> set_port_up(PortId port, bool up);
    // Forgets the port's learned MACs (static entries stay).
    Result<void> flush_fdb(PortId port);
    // Changes which direction of the port the mirror session captures.
    Result<void> set_port_mirror(PortId port, uint8_t session, MirrorDir dir);

    void set_ageing_ns(uint64_t ns) { fdb_.set_ageing_ns(ns); }
    uint64_t ageing_ns() const { return fdb_.ageing_ns(); }
    // A secret for the MAC table hash; only before the first add_port().
    Result<void> set_hash_seed(uint64_t seed);
    // A MAC table of `entries` (Fdb::valid_capacity) in mem instead of the
    // built-in 4096 entries (Fdb::set_storage); only before the first add_port().
    Result<void> set_fdb_storage(void* mem, size_t bytes, size_t entries);
    // Removes aged-out MAC table entries (they already count as absent); returns how many.
    size_t age(uint64_t now_ns) { return fdb_.age(now_ns); }

    // One frame as a batch of its own. A sender with several frames uses TxBatch.
    void forward(PortId in, const FrameView& frame, uint64_t now_ns);

    // Mirror sessions 0..kMaxMirrors-1: capture into buf[0, cap) as a pcap
    // file; the buffer must stay valid until stop_mirror() returns.
    Result<void> start_mirror(uint8_t session, uint8_t* buf, size_t cap,
                              uint32_t snaplen = PcapWriter::kDefaultSnaplen);
    Result<void> stop_mirror(uint8_t session);
    Result<void> reset_mirror(uint8_t session);
    Result<MirrorStats> mirror_stats(uint8_t session) const;
    Result<PcapWriter::Bytes> mirror_file(uint8_t session) const;

    // ---- Introspection for the console ----
    size_t port_count() const { return __atomic_load_n(&port_count_, __ATOMIC_ACQUIRE); }
    const PortConfig* port_config(PortId port) const;  // nullptr when no such port
    bool port_up(PortId port) const;
    Result<PortCounters> counters(PortId port) const;
    SwitchStats stats(uint64_t now_ns) const;
    // The port's live learned MACs (what its max_macs limits); walks the table.
    size_t learned_macs(PortId port, uint64_t now_ns) const { return fdb_.port_count(port, now_ns); }
    // fn(const FdbEntry&) for each live MAC table entry.
    template <typename Fn>
    void for_each_fdb(uint64_t now_ns, Fn&& fn) const {
        fdb_.for_each(now_ns, fn);
    }
    const Fdb& fdb() const { return fdb_; }

  private:
    friend class TxBatch;

    // What the data path reads of a port, together in one cache line.
    struct PortHot {
        PortDriver* driver = nullptr;
        uint64_t static_mac = 0;  // 48-bit form (load_mac48)
        bool has_static = false;
        bool trunk = false;
        bool protected_port = false;
        bool rate_limited = false;
        uint16_t untagged_vlan = 0;  // VLAN of untagged and priority-tagged ingress frames; 0 = dropped
        uint16_t native_vlan = 0;    // trunk egress: this VLAN leaves untagged
        uint8_t mirror_in = 0;       // bit i: session i captures this port's ingress
        uint8_t mirror_out = 0;      // bit i: session i captures this port's egress
    };
    // Written only by the CPU forwarding this port's frames.
    struct IngressCounters {
        uint64_t rx_packets = 0;
        uint64_t rx_bytes = 0;
        uint64_t floods = 0;
        uint64_t fdb_full = 0;
        uint64_t drops[kDropReasonCount] = {};  // no_buffer unused here: it is an egress counter
    };
    // What one sender gave one receiver. Each sender keeps a row of these, one
    // per receiver, written only by the CPU forwarding the sender's frames
    // (TxBatch::finish()): no locked instruction on the data path, where one
    // would wait for every store of the batch's copies to drain. A receiver's
    // counts are its column, summed by counters().
    struct EgressCounters {
        uint64_t tx_packets = 0;
        uint64_t tx_bytes = 0;
        uint64_t no_buffer = 0;
    };
    // The last ingress decision of a port, reused for the next frame with the
    // same addresses and tags while the MAC table is unchanged
    // (Fdb::generation()) and its answer still holds in time: a stream of
    // frames of one flow then reads the table once, not once per frame.
    // Written and read only by the CPU forwarding the port's frames. Only what
    // follows from the header bytes of the key and the port's own fixed
    // configuration is kept; egress state (up, VLAN members, protected) is
    // read for every frame.
    struct FlowMemo {
        uint64_t k0 = 0;  // frame bytes 0..7
        uint64_t k1 = 0;  // bytes 8..15 (untagged: only 8..13)
        uint16_t k2 = 0;  // bytes 16..17 (tagged frames: the inner EtherType)
        uint16_t vlan = 0;
        PortId dport = kNoPort;
        uint32_t fdb_gen = 1;  // odd: never matches, the memo is empty
        uint64_t until_ns = 0;
    };
    struct alignas(64) Port {
        PortHot hot;
        TokenBucket bucket;
        // The memo and the rx counters, which every frame touches, share the
        // first line; the drop counters follow (a drop reason more must not
        // push the memo across a line).
        alignas(64) FlowMemo memo;
        IngressCounters in;
        alignas(64) EgressCounters sent_to[kMaxPorts];
        alignas(64) PortConfig cfg;
    };

    // The private header copy and the heads derived from it for one frame.
    struct Heads;

    void forward_one(TxBatch& batch, PortId in, const FrameView& frame, uint64_t now_ns);
    [[gnu::always_inline]] inline void deliver_to(TxBatch& batch, PortId port, uint16_t vlan, Heads& heads,
                                                  uint64_t now_ns);
    void capture(uint8_t sessions, const OutFrame& f, uint64_t now_ns);
    PortId static_owner(uint64_t mac) const;
    Result<void> validate(const PortConfig& cfg, PortDriver* driver) const;
    static void bump(uint64_t& counter, uint64_t n = 1) {
        __atomic_store_n(&counter, __atomic_load_n(&counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
    }
    static void drop(IngressCounters& c, DropReason r) { bump(c.drops[static_cast<size_t>(r)]); }

    Port ports_[kMaxPorts] = {};
    uint32_t port_count_ = 0;
    uint32_t up_mask_ = 0;         // bit p: port p is up (release on set, acquire in the data path)
    uint32_t protected_mask_ = 0;  // bit p: port p is protected
    // Bit p of vlan_members_[v]: port p carries VLAN v (access VLAN, or allowed on a trunk).
    uint32_t vlan_members_[kVidCount] = {};
    Fdb fdb_;
    MirrorSession mirrors_[kMaxMirrors];
    Spinlock admin_lock_;  // serializes the administrative calls
};

}  // namespace hv::net
