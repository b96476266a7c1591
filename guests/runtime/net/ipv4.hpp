#pragma once
// IPv4 headers (RFC 791). No fragmentation: fragments are recognised and
// refused, and every packet this code writes has DF set.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/addr.hpp"

namespace hvg::net {

inline constexpr size_t kIpv4MinHeaderLen = 20;
inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpv4DefaultTtl = 64;
inline constexpr uint16_t kIpv4FlagDf = 0x4000;  // flags/fragment-offset word
inline constexpr uint16_t kIpv4FlagMf = 0x2000;
inline constexpr uint16_t kIpv4FragOffsetMask = 0x1FFF;

struct Ipv4Header {
    uint8_t header_len;  // bytes (IHL * 4)
    uint8_t tos;
    uint16_t total_len;
    uint16_t id;
    uint16_t flags_frag;  // flags (3 bits) and fragment offset (13 bits)
    uint8_t ttl;
    uint8_t protocol;
    Ipv4Addr src;
    Ipv4Addr dst;
};

enum class Ipv4Error : uint8_t {
    ok,
    too_short,       // fewer than 20 bytes
    bad_version,     // version != 4
    bad_header_len,  // IHL < 5, or the header runs past the buffer
    bad_total_len,   // total length < header length, or > the bytes present
    bad_checksum,
    fragment,  // MF set or a non-zero offset: not reassembled, dropped
};
const char* ipv4_error_name(Ipv4Error e);

struct Ipv4Packet {
    Ipv4Header h;
    const uint8_t* payload;  // inside the parsed buffer
    size_t payload_len;      // total_len - header_len (Ethernet padding excluded)
};

// Parses the IPv4 packet at p (the bytes after the Ethernet header; `len` may
// include link-layer padding beyond total_len).
Ipv4Error parse_ipv4(const uint8_t* p, size_t len, Ipv4Packet* out);

// Writes a 20-byte header (no options, DF set) for `payload_len` bytes of
// payload, with its checksum. Returns 20, or 0 if cap < 20 or the packet would
// exceed 65535 bytes.
size_t write_ipv4(uint8_t* p, size_t cap, Ipv4Addr src, Ipv4Addr dst, uint8_t protocol, uint16_t id,
                  size_t payload_len);

}  // namespace hvg::net
