#include "guests/runtime/net/frames.hpp"

#include "guests/runtime/net/ethernet.hpp"
#include "guests/runtime/net/icmp.hpp"
#include "guests/runtime/net/ipv4.hpp"
#include "guests/runtime/net/udp.hpp"

namespace hvg::net {

size_t build_arp_frame(uint8_t* buf, size_t cap, const MacAddr& src, const MacAddr& dst, const ArpPacket& arp) {
    if (cap < kEthHeaderLen + kArpLen) return 0;
    write_eth(buf, cap, EthHeader{dst, src, static_cast<uint16_t>(EtherType::arp)});
    write_arp(buf + kEthHeaderLen, cap - kEthHeaderLen, arp);
    return pad_frame(buf, cap, kEthHeaderLen + kArpLen);
}

size_t build_icmp_echo_frame(uint8_t* buf, size_t cap, const Ipv4Endpoints& ep, uint8_t type, uint16_t id, uint16_t seq,
                             const uint8_t* data, size_t data_len) {
    constexpr size_t kHeaders = kEthHeaderLen + kIpv4MinHeaderLen;
    if (cap < kHeaders) return 0;
    // Innermost first: the data may already lie in buf at its final offset
    // (a reply built in place); the headers are then written around it.
    size_t icmp = write_icmp_echo(buf + kHeaders, cap - kHeaders, type, id, seq, data, data_len);
    if (icmp == 0) return 0;
    if (write_ipv4(buf + kEthHeaderLen, cap - kEthHeaderLen, ep.src_ip, ep.dst_ip, kIpProtoIcmp, ep.ip_id, icmp) == 0)
        return 0;
    write_eth(buf, cap, EthHeader{ep.dst_mac, ep.src_mac, static_cast<uint16_t>(EtherType::ipv4)});
    return pad_frame(buf, cap, kHeaders + icmp);
}

size_t build_udp_frame(uint8_t* buf, size_t cap, const Ipv4Endpoints& ep, uint16_t src_port, uint16_t dst_port,
                       const uint8_t* data, size_t data_len) {
    constexpr size_t kHeaders = kEthHeaderLen + kIpv4MinHeaderLen;
    if (cap < kHeaders) return 0;
    size_t udp = write_udp(buf + kHeaders, cap - kHeaders, ep.src_ip, ep.dst_ip, src_port, dst_port, data, data_len);
    if (udp == 0) return 0;
    if (write_ipv4(buf + kEthHeaderLen, cap - kEthHeaderLen, ep.src_ip, ep.dst_ip, kIpProtoUdp, ep.ip_id, udp) == 0)
        return 0;
    write_eth(buf, cap, EthHeader{ep.dst_mac, ep.src_mac, static_cast<uint16_t>(EtherType::ipv4)});
    return pad_frame(buf, cap, kHeaders + udp);
}

}  // namespace hvg::net
