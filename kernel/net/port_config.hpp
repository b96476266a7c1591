#pragma once
// What the configuration says about one switch port (issue #4). Validated by
// Switch::add_port(); the switch keeps its own copy.

#include <stddef.h>
#include <stdint.h>

#include "kernel/net/mac_addr.hpp"
#include "kernel/net/vlan_set.hpp"

namespace hv::net {

inline constexpr size_t kMaxPorts = 32;     // ports per switch (a 32-bit mask in the data path)
inline constexpr size_t kMaxMirrors = 4;    // mirror sessions per switch
inline constexpr size_t kPortNameLen = 48;  // including the NUL

// 802.1Q port types (IEEE 802.1Q-2018 §12.10.1.1: access = one untagged VLAN;
// trunk = tagged member of several VLANs, optionally one untagged "native").
enum class VlanMode : uint8_t {
    access,
    trunk,
};
const char* vlan_mode_name(VlanMode m);

// Which of a port's frames a mirror session captures.
enum class MirrorDir : uint8_t {
    none = 0,
    ingress = 1,  // frames the switch accepted from the port (as the port sent them)
    egress = 2,   // frames the switch delivered to the port (with the egress tag edit)
    both = 3,
};
const char* mirror_dir_name(MirrorDir d);

struct PortConfig {
    // For logs and the console, e.g. "web.eth0"; NUL-terminated, not empty.
    char name[kPortNameLen] = {};

    // Anti-spoofing: when set, frames whose source MAC is not static_mac are
    // dropped (counted as spoofed), and static_mac is a permanent FDB entry of
    // this port that learning never moves.
    bool has_static_mac = false;
    MacAddr static_mac{};

    VlanMode vlan_mode = VlanMode::access;
    // access: the port's one VLAN, 1..4094; untagged on the wire.
    uint16_t access_vlan = 1;
    // trunk: the VLANs the port carries (1..4094 only), tagged on the wire...
    VlanSet allowed{};
    // ...except native_vlan (0 = none: untagged frames are dropped), which
    // must be in `allowed` and travels untagged in both directions.
    uint16_t native_vlan = 0;

    // Protected ports never exchange frames with other protected ports
    // (private-VLAN-edge behaviour); they talk to unprotected ports only.
    bool protected_port = false;

    // Ingress token bucket: 0 = unlimited. Otherwise burst_bytes (at least one
    // maximal frame, kMaxFrameLen) is the bucket depth.
    uint64_t rate_bytes_per_sec = 0;
    uint32_t burst_bytes = 0;

    // The most MACs the switch learns from this port (one entry per VLAN and
    // MAC; a static MAC does not count); 0 = no limit. Frames from a new
    // source MAC beyond it are dropped (mac_limit), as port security does.
    uint32_t max_macs = 0;

    // Per mirror session: which direction of this port it captures.
    MirrorDir mirror[kMaxMirrors] = {};
};

}  // namespace hv::net
