#pragma once
// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's
// complement sum of 16-bit big-endian words. IPv4 headers (RFC 791), ICMP
// (RFC 792) and UDP (RFC 768) use it.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/addr.hpp"

namespace hvg::net {

// Adds `len` bytes to a running 32-bit sum. Only the last chunk of a sum may
// have an odd length (it is padded with a zero byte, RFC 1071 §4.1).
uint32_t checksum_add(uint32_t sum, const uint8_t* p, size_t len);
// Folds the carries and complements: the value to store in the header. A
// buffer whose stored checksum is correct folds to 0.
uint16_t checksum_finish(uint32_t sum);
inline uint16_t checksum(const uint8_t* p, size_t len) {
    return checksum_finish(checksum_add(0, p, len));
}

// The UDP pseudo-header (RFC 768): source, destination, zero, protocol, length.
uint32_t pseudo_header_sum(Ipv4Addr src, Ipv4Addr dst, uint8_t protocol, uint16_t length);

}  // namespace hvg::net
