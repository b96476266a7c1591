#pragma once
// UDP (RFC 768) over IPv4, with the pseudo-header checksum.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/addr.hpp"

namespace hvg::net {

inline constexpr size_t kUdpHeaderLen = 8;
inline constexpr uint16_t kUdpPortEcho = 7;     // RFC 862
inline constexpr uint16_t kUdpPortDiscard = 9;  // RFC 863

struct UdpDatagram {
    uint16_t src_port;
    uint16_t dst_port;
    const uint8_t* data;  // inside the parsed buffer
    size_t data_len;
    bool had_checksum;  // false when the sender sent 0 (no checksum, allowed over IPv4)
};

enum class UdpError : uint8_t {
    ok,
    too_short,   // fewer than 8 bytes
    bad_length,  // the UDP length field < 8 or > the IP payload
    bad_checksum,
};

// `len` is the IP payload length; the UDP length field may be shorter (the
// rest is ignored) but never longer.
UdpError parse_udp(Ipv4Addr src, Ipv4Addr dst, const uint8_t* p, size_t len, UdpDatagram* out);
// Writes header + data (data may alias p + 8) with the checksum; returns the
// datagram length, or 0 if cap is too small or the length exceeds 65535.
size_t write_udp(uint8_t* p, size_t cap, Ipv4Addr src, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port,
                 const uint8_t* data, size_t data_len);

}  // namespace hvg::net
