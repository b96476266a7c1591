#pragma once
// ICMP echo request and reply (RFC 792, "Echo or Echo Reply Message").

#include <stddef.h>
#include <stdint.h>

namespace hvg::net {

inline constexpr size_t kIcmpEchoHeaderLen = 8;  // type, code, checksum, identifier, sequence
inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpEchoRequest = 8;

struct IcmpEcho {
    uint8_t type;  // kIcmpEchoRequest or kIcmpEchoReply
    uint16_t id;
    uint16_t seq;
    const uint8_t* data;  // inside the parsed buffer
    size_t data_len;
};

// False unless the message is at least 8 bytes, its checksum (over all `len`
// bytes) is right, and it is an echo request or reply with code 0.
bool parse_icmp_echo(const uint8_t* p, size_t len, IcmpEcho* out);
// Writes an echo message with `data_len` bytes of data and its checksum;
// returns its length, or 0 if cap is too small. `data` may alias p + 8.
size_t write_icmp_echo(uint8_t* p, size_t cap, uint8_t type, uint16_t id, uint16_t seq, const uint8_t* data,
                       size_t data_len);

}  // namespace hvg::net
