#pragma once
// Several logical interfaces on one NIC, one per VLAN (802.1Q sub-interfaces,
// like Linux's eth0.10): each has its own IPv4 stack and address, and sends
// either untagged frames or frames tagged with its VID, all from the NIC's
// MAC. A received frame goes to the interface of its VID, untagged and
// priority-tagged (VID 0) ones to the untagged interface, without the tag.
// A frame for a VLAN that no interface has, and a frame with a second tag
// (or an S-tag) behind the first, is dropped and counted: a host never takes
// a frame from a VLAN it is not on. Pure: the driver is behind SendFn.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/stack.hpp"
#include "guests/runtime/net/vlan.hpp"

namespace hvg::net {

struct VlanMuxCounters {
    uint64_t rx_vlan_dropped;  // a VLAN no interface has, or a tag behind the tag
    uint64_t rx_malformed;     // shorter than its header (with its tag), or too long to untag
    uint64_t tx_too_long;      // a frame that no longer fit with its tag
};

class VlanMux {
  public:
    static constexpr size_t kMaxIfs = 4;
    static constexpr size_t kNone = kMaxIfs;
    using SendFn = Stack::SendFn;

    enum class Error : uint8_t { ok, too_many, bad_vid, duplicate_vlan, duplicate_ip };
    static const char* error_name(Error e);
    // Whether these interfaces can live on one NIC: at most kMaxIfs, VIDs in
    // 0..4094, no VLAN (untagged included) or address twice.
    static Error check(const VlanIf* ifs, size_t n);

    constexpr VlanMux() = default;
    // Replaces every interface by `ifs` (check() first; false if it fails).
    // Frames leave through `send`, with the NIC's MAC as their source.
    bool init(const MacAddr& mac, const VlanIf* ifs, size_t n, SendFn send, void* ctx);

    size_t count() const { return count_; }
    Stack& stack(size_t i) { return ifs_[i].stack; }
    const Stack& stack(size_t i) const { return ifs_[i].stack; }
    uint16_t vid(size_t i) const { return ifs_[i].vid; }
    // The interface whose address shares its first three bytes with `ip`
    // (a /24), or interface 0 when none does: the stacks have no routes.
    size_t route(Ipv4Addr ip) const;

    struct Rx {
        RxInfo info;   // what the interface's stack made of it; RxKind::other_vlan if dropped here
        size_t iface;  // kNone if dropped here
    };
    // Classifies one received frame by its tag and hands it, untagged, to
    // that interface's stack (which answers it if a host must).
    Rx handle(const uint8_t* frame, size_t len, uint64_t now);

    // Tags, in place, a frame built outside the stacks (trafgen's prebuilt
    // one) for interface i; returns its new length (unchanged when the
    // interface is untagged), 0 if it does not fit in cap.
    size_t encap(size_t i, uint8_t* buf, size_t cap, size_t len) const;

    const VlanMuxCounters& counters() const { return counters_; }

  private:
    struct Iface {
        VlanMux* mux = nullptr;
        uint16_t vid = 0;
        Stack stack;
    };
    static bool send_from(void* ctx, const uint8_t* frame, size_t len);
    size_t find(uint16_t vid) const;

    Iface ifs_[kMaxIfs] = {};
    size_t count_ = 0;
    SendFn send_ = nullptr;
    void* ctx_ = nullptr;
    VlanMuxCounters counters_ = {};
    uint8_t rx_[kEthMaxFrameLen] = {};        // a received frame without its tag
    uint8_t tx_[kEthMaxTaggedFrameLen] = {};  // a frame on its way out, with its tag
};

}  // namespace hvg::net
