#include "guests/runtime/net/arp.hpp"

#include "guests/runtime/net/ethernet.hpp"
#include "guests/runtime/net/wire.hpp"

namespace hvg::net {

// RFC 826 packet layout: hrd(2) pro(2) hln(1) pln(1) op(2) sha(6) spa(4) tha(6) tpa(4).
bool parse_arp(const uint8_t* p, size_t len, ArpPacket* out) {
    if (len < kArpLen) return false;
    if (load_be16(p) != kArpHtypeEthernet || load_be16(p + 2) != static_cast<uint16_t>(EtherType::ipv4) || p[4] != 6 ||
        p[5] != 4)
        return false;
    uint16_t op = load_be16(p + 6);
    if (op != kArpOpRequest && op != kArpOpReply) return false;
    out->op = op;
    for (int k = 0; k < 6; ++k) {
        out->sha.b[k] = p[8 + k];
        out->tha.b[k] = p[18 + k];
    }
    out->spa.value = load_be32(p + 14);
    out->tpa.value = load_be32(p + 24);
    return true;
}

size_t write_arp(uint8_t* p, size_t cap, const ArpPacket& a) {
    if (cap < kArpLen) return 0;
    store_be16(p, kArpHtypeEthernet);
    store_be16(p + 2, static_cast<uint16_t>(EtherType::ipv4));
    p[4] = 6;
    p[5] = 4;
    store_be16(p + 6, a.op);
    for (int k = 0; k < 6; ++k) {
        p[8 + k] = a.sha.b[k];
        p[18 + k] = a.tha.b[k];
    }
    store_be32(p + 14, a.spa.value);
    store_be32(p + 24, a.tpa.value);
    return kArpLen;
}

bool ArpCache::insert(Ipv4Addr ip, const MacAddr& mac, uint64_t now) {
    if (ip.value == 0 || mac.is_zero() || mac.is_multicast()) return false;
    for (size_t k = 0; k < used_; ++k) {
        if (entries_[k].ip == ip) {
            entries_[k].mac = mac;
            entries_[k].stamp = now;
            return true;
        }
    }
    size_t slot = used_;
    if (used_ < kEntries) {
        ++used_;
    } else {
        slot = 0;
        for (size_t k = 1; k < kEntries; ++k)
            if (entries_[k].stamp < entries_[slot].stamp) slot = k;
    }
    entries_[slot] = Entry{ip, mac, now};
    return true;
}

bool ArpCache::lookup(Ipv4Addr ip, MacAddr* out) const {
    for (size_t k = 0; k < used_; ++k) {
        if (entries_[k].ip == ip) {
            *out = entries_[k].mac;
            return true;
        }
    }
    return false;
}

}  // namespace hvg::net
