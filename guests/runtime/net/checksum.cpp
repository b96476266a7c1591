#include "guests/runtime/net/checksum.hpp"

namespace hvg::net {

uint32_t checksum_add(uint32_t sum, const uint8_t* p, size_t len) {
    // A 64-bit accumulator cannot overflow for any frame (< 2^48 words), and is
    // folded back to 32 bits at the end so callers may chain calls.
    uint64_t acc = sum;
    size_t k = 0;
    for (; k + 1 < len; k += 2) acc += static_cast<uint32_t>(p[k] << 8 | p[k + 1]);
    if (k < len) acc += static_cast<uint32_t>(p[k] << 8);
    while (acc >> 32) acc = (acc & 0xFFFF'FFFFu) + (acc >> 32);
    return static_cast<uint32_t>(acc);
}

uint16_t checksum_finish(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

uint32_t pseudo_header_sum(Ipv4Addr src, Ipv4Addr dst, uint8_t protocol, uint16_t length) {
    uint32_t sum = (src.value >> 16) + (src.value & 0xFFFF);
    sum += (dst.value >> 16) + (dst.value & 0xFFFF);
    sum += protocol;
    sum += length;
    return sum;
}

}  // namespace hvg::net
