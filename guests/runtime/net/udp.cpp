#include "guests/runtime/net/udp.hpp"

#include "guests/runtime/net/checksum.hpp"
#include "guests/runtime/net/ipv4.hpp"
#include "guests/runtime/net/wire.hpp"

namespace hvg::net {

UdpError parse_udp(Ipv4Addr src, Ipv4Addr dst, const uint8_t* p, size_t len, UdpDatagram* out) {
    if (len < kUdpHeaderLen) return UdpError::too_short;
    uint16_t udp_len = load_be16(p + 4);
    if (udp_len < kUdpHeaderLen || udp_len > len) return UdpError::bad_length;
    uint16_t stored = load_be16(p + 6);
    // RFC 768: an all-zero checksum means the sender computed none.
    if (stored != 0) {
        uint32_t sum = pseudo_header_sum(src, dst, kIpProtoUdp, udp_len);
        if (checksum_finish(checksum_add(sum, p, udp_len)) != 0) return UdpError::bad_checksum;
    }
    out->src_port = load_be16(p);
    out->dst_port = load_be16(p + 2);
    out->data = p + kUdpHeaderLen;
    out->data_len = udp_len - kUdpHeaderLen;
    out->had_checksum = stored != 0;
    return UdpError::ok;
}

size_t write_udp(uint8_t* p, size_t cap, Ipv4Addr src, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port,
                 const uint8_t* data, size_t data_len) {
    if (cap < kUdpHeaderLen || data_len > cap - kUdpHeaderLen || data_len > 0xFFFF - kUdpHeaderLen) return 0;
    if (data && data != p + kUdpHeaderLen) __builtin_memmove(p + kUdpHeaderLen, data, data_len);
    uint16_t len = static_cast<uint16_t>(kUdpHeaderLen + data_len);
    store_be16(p, src_port);
    store_be16(p + 2, dst_port);
    store_be16(p + 4, len);
    store_be16(p + 6, 0);
    uint16_t sum = checksum_finish(checksum_add(pseudo_header_sum(src, dst, kIpProtoUdp, len), p, len));
    // RFC 768: a computed checksum of zero is sent as all ones.
    store_be16(p + 6, sum == 0 ? 0xFFFF : sum);
    return len;
}

}  // namespace hvg::net
