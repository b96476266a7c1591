#pragma once
// Whole Ethernet frames for the protocols the guests speak: header by header
// through ethernet/arp/ipv4/icmp/udp, padded to the Ethernet minimum. Each
// returns the frame length, or 0 when `cap` is too small (nothing useful is
// left in buf then).

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/addr.hpp"
#include "guests/runtime/net/arp.hpp"

namespace hvg::net {

size_t build_arp_frame(uint8_t* buf, size_t cap, const MacAddr& src, const MacAddr& dst, const ArpPacket& arp);

struct Ipv4Endpoints {
    MacAddr src_mac;
    MacAddr dst_mac;
    Ipv4Addr src_ip;
    Ipv4Addr dst_ip;
    uint16_t ip_id;
};

// `data` may lie inside buf at the payload position (replies built in place).
size_t build_icmp_echo_frame(uint8_t* buf, size_t cap, const Ipv4Endpoints& ep, uint8_t type, uint16_t id, uint16_t seq,
                             const uint8_t* data, size_t data_len);
size_t build_udp_frame(uint8_t* buf, size_t cap, const Ipv4Endpoints& ep, uint16_t src_port, uint16_t dst_port,
                       const uint8_t* data, size_t data_len);

// Offsets of the payloads inside frames built above (no VLAN tag, no IP options).
inline constexpr size_t kIcmpDataOffset = 14 + 20 + 8;
inline constexpr size_t kUdpDataOffset = 14 + 20 + 8;

}  // namespace hvg::net
