#pragma once
// IEEE 802.1Q-2018 VLAN tags (§9.6): after the source MAC, a 2-byte TPID
// (0x8100) and a 2-byte TCI (PCP:3 DEI:1 VID:12), then the original
// EtherType. The guests tag and untag frames here, between their stacks and
// the driver (vlan_mux.hpp). Pure: compiled into the guests and into the host
// unit tests.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/ethernet.hpp"

namespace hvg::net {

inline constexpr size_t kVlanTagLen = 4;
inline constexpr size_t kEthMaxTaggedFrameLen = kEthMaxFrameLen + kVlanTagLen;  // 1518
// VID 0 means "no VLAN" (a priority tag), 4095 is reserved (§9.6 Table 9-2).
inline constexpr uint16_t kVidMin = 1;
inline constexpr uint16_t kVidMax = 4094;
inline constexpr uint16_t kVidMask = 0x0FFF;

// EtherTypes that announce a tag: the C-tag and the two S-tag values
// (802.1ad 0x88A8, and the older 0x9100 still seen in Q-in-Q gear).
bool is_tag_ethertype(uint16_t type);

// One logical interface of a NIC: its VLAN and its address.
struct VlanIf {
    uint16_t vid;  // 0: untagged
    Ipv4Addr ip;
};

struct VlanView {
    bool tagged;          // the frame carries a 0x8100 tag
    uint16_t vid;         // its VID (0 when untagged or priority-tagged)
    uint16_t inner_type;  // the EtherType after the tag (the only one when untagged)
};

// Reads the outer tag of a frame of `len` bytes. False when the frame is
// shorter than its header (14 bytes, 18 with a tag).
bool parse_vlan(const uint8_t* frame, size_t len, VlanView* out);

// Copies a frame without its outer tag (14 + the payload after the tag);
// returns the new length, or 0 if the frame is untagged, too short or does not fit.
size_t strip_tag(const uint8_t* frame, size_t len, uint8_t* out, size_t cap);
// Copies a frame with a 0x8100 tag for `vid` (PCP 0) inserted after the
// source MAC; returns len + 4, or 0 if the frame is shorter than its header or
// does not fit. `out` may be `frame` itself (the tag is then made in place).
size_t add_tag(const uint8_t* frame, size_t len, uint16_t vid, uint8_t* out, size_t cap);

}  // namespace hvg::net
