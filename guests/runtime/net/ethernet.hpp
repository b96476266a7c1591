#pragma once
// Ethernet II framing (IEEE 802.3 with an EtherType, RFC 894), without the FCS:
// virtio-net carries frames from the destination address to the end of the
// payload.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/addr.hpp"

namespace hvg::net {

inline constexpr size_t kEthHeaderLen = 14;
// 64-byte minimum frame less the 4-byte FCS: shorter frames are padded.
inline constexpr size_t kEthMinFrameLen = 60;
inline constexpr size_t kEthMaxFrameLen = 1514;  // 1500-byte MTU, no VLAN tag
inline constexpr size_t kEthMtu = 1500;

enum class EtherType : uint16_t {
    ipv4 = 0x0800,
    arp = 0x0806,
    vlan = 0x8100,  // IEEE 802.1Q tag (vlan.hpp); the stacks only ever see untagged frames
};

struct EthHeader {
    MacAddr dst;
    MacAddr src;
    uint16_t type;  // EtherType value, host order
};

// False if the frame is shorter than the header.
bool parse_eth(const uint8_t* frame, size_t len, EthHeader* out);
// Writes the 14-byte header; returns kEthHeaderLen, or 0 if cap is too small.
size_t write_eth(uint8_t* buf, size_t cap, const EthHeader& h);
// Zero-pads a frame of `len` bytes to kEthMinFrameLen; returns the new length
// (len itself if it is long enough or cap is too small to pad).
size_t pad_frame(uint8_t* buf, size_t cap, size_t len);

}  // namespace hvg::net
