#include "guests/runtime/net/stack.hpp"

#include "guests/runtime/net/frames.hpp"
#include "guests/runtime/net/ipv4.hpp"

namespace hvg::net {

const char* rx_kind_name(RxKind k) {
    switch (k) {
        case RxKind::malformed: return "malformed";
        case RxKind::not_for_us: return "not_for_us";
        case RxKind::arp_request: return "arp_request";
        case RxKind::arp_reply: return "arp_reply";
        case RxKind::icmp_echo_request: return "icmp_echo_request";
        case RxKind::icmp_echo_reply: return "icmp_echo_reply";
        case RxKind::udp: return "udp";
        case RxKind::other: return "other";
        case RxKind::other_vlan: return "other_vlan";
    }
    return "?";
}

RxInfo Stack::handle(const uint8_t* frame, size_t len, uint64_t now) {
    RxInfo info = {};
    info.kind = RxKind::malformed;
    ++counters_.rx_frames;
    if (!parse_eth(frame, len, &info.eth)) {
        ++counters_.rx_malformed;
        return info;
    }
    if (!(info.eth.dst == mac_) && !info.eth.dst.is_broadcast()) {
        info.kind = RxKind::not_for_us;
        ++counters_.rx_not_for_us;
        return info;
    }
    const uint8_t* payload = frame + kEthHeaderLen;
    size_t payload_len = len - kEthHeaderLen;
    if (info.eth.type == static_cast<uint16_t>(EtherType::arp)) {
        handle_arp(payload, payload_len, now, &info);
    } else if (info.eth.type == static_cast<uint16_t>(EtherType::ipv4)) {
        handle_ipv4(payload, payload_len, &info);
    } else {
        info.kind = RxKind::other;
    }
    if (info.kind == RxKind::malformed) ++counters_.rx_malformed;
    if (info.kind == RxKind::not_for_us) ++counters_.rx_not_for_us;
    if (info.kind == RxKind::other) ++counters_.rx_other;
    return info;
}

void Stack::handle_arp(const uint8_t* p, size_t len, uint64_t now, RxInfo* info) {
    ArpPacket a;
    if (!parse_arp(p, len, &a)) return;  // malformed
    info->src_ip = a.spa;
    // RFC 826 "Packet Reception": refresh a known sender; learn it if the
    // packet is for us. Anything else is not our business.
    MacAddr known;
    bool for_us = a.tpa == ip_;
    if (for_us || arp_.lookup(a.spa, &known)) arp_.insert(a.spa, a.sha, now);
    if (!for_us) {
        info->kind = RxKind::not_for_us;
        return;
    }
    if (a.op == kArpOpReply) {
        info->kind = RxKind::arp_reply;
        return;
    }
    info->kind = RxKind::arp_request;
    ArpPacket reply{kArpOpReply, mac_, ip_, a.sha, a.spa};
    size_t n = build_arp_frame(tx_, sizeof tx_, mac_, a.sha, reply);
    info->answered = transmit(n);
    if (info->answered) ++counters_.arp_answered;
}

void Stack::handle_ipv4(const uint8_t* p, size_t len, RxInfo* info) {
    Ipv4Packet ip;
    if (parse_ipv4(p, len, &ip) != Ipv4Error::ok) return;  // malformed
    info->src_ip = ip.h.src;
    if (!(ip.h.dst == ip_)) {
        info->kind = RxKind::not_for_us;
        return;
    }
    Ipv4Endpoints reply_to{mac_, info->eth.src, ip_, ip.h.src, 0};
    if (ip.h.protocol == kIpProtoIcmp) {
        if (!parse_icmp_echo(ip.payload, ip.payload_len, &info->echo)) {
            // Other ICMP types are legal, just not ours to handle; a bad
            // checksum or truncated echo is malformed.
            info->kind = ip.payload_len >= kIcmpEchoHeaderLen && ip.payload[0] != kIcmpEchoRequest &&
                                 ip.payload[0] != kIcmpEchoReply
                             ? RxKind::other
                             : RxKind::malformed;
            return;
        }
        if (info->echo.type == kIcmpEchoReply) {
            info->kind = RxKind::icmp_echo_reply;
            return;
        }
        info->kind = RxKind::icmp_echo_request;
        reply_to.ip_id = next_ip_id();
        size_t n = build_icmp_echo_frame(tx_, sizeof tx_, reply_to, kIcmpEchoReply, info->echo.id, info->echo.seq,
                                         info->echo.data, info->echo.data_len);
        info->answered = transmit(n);
        if (info->answered) ++counters_.icmp_answered;
        return;
    }
    if (ip.h.protocol == kIpProtoUdp) {
        if (parse_udp(ip.h.src, ip.h.dst, ip.payload, ip.payload_len, &info->udp) != UdpError::ok) return;
        info->kind = RxKind::udp;
        if (udp_echo_ && info->udp.dst_port == kUdpPortEcho) {
            reply_to.ip_id = next_ip_id();
            size_t n = build_udp_frame(tx_, sizeof tx_, reply_to, kUdpPortEcho, info->udp.src_port, info->udp.data,
                                       info->udp.data_len);
            info->answered = transmit(n);
            if (info->answered) ++counters_.udp_echoed;
        }
        return;
    }
    info->kind = RxKind::other;
}

bool Stack::send_arp_request(Ipv4Addr target) {
    ArpPacket req{kArpOpRequest, mac_, ip_, MacAddr{}, target};
    return transmit(build_arp_frame(tx_, sizeof tx_, mac_, MacAddr::broadcast(), req));
}

bool Stack::send_icmp_echo(const MacAddr& dst_mac, Ipv4Addr dst, uint16_t id, uint16_t seq, const uint8_t* data,
                           size_t data_len) {
    Ipv4Endpoints ep{mac_, dst_mac, ip_, dst, next_ip_id()};
    return transmit(build_icmp_echo_frame(tx_, sizeof tx_, ep, kIcmpEchoRequest, id, seq, data, data_len));
}

bool Stack::send_udp(const MacAddr& dst_mac, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port, const uint8_t* data,
                     size_t data_len) {
    Ipv4Endpoints ep{mac_, dst_mac, ip_, dst, next_ip_id()};
    return transmit(build_udp_frame(tx_, sizeof tx_, ep, src_port, dst_port, data, data_len));
}

bool Stack::transmit(size_t len) {
    if (len == 0 || !send_ || !send_(ctx_, tx_, len)) {
        ++counters_.tx_failed;
        return false;
    }
    ++counters_.tx_frames;
    return true;
}

}  // namespace hvg::net
