#include "guests/runtime/net/ipv4.hpp"

#include "guests/runtime/net/checksum.hpp"
#include "guests/runtime/net/wire.hpp"

namespace hvg::net {

const char* ipv4_error_name(Ipv4Error e) {
    switch (e) {
        case Ipv4Error::ok: return "ok";
        case Ipv4Error::too_short: return "too_short";
        case Ipv4Error::bad_version: return "bad_version";
        case Ipv4Error::bad_header_len: return "bad_header_len";
        case Ipv4Error::bad_total_len: return "bad_total_len";
        case Ipv4Error::bad_checksum: return "bad_checksum";
        case Ipv4Error::fragment: return "fragment";
    }
    return "?";
}

// RFC 791 §3.1 header layout: version/IHL(1) TOS(1) total length(2) id(2)
// flags/fragment offset(2) TTL(1) protocol(1) checksum(2) source(4) destination(4) options.
Ipv4Error parse_ipv4(const uint8_t* p, size_t len, Ipv4Packet* out) {
    if (len < kIpv4MinHeaderLen) return Ipv4Error::too_short;
    if ((p[0] >> 4) != 4) return Ipv4Error::bad_version;
    size_t header_len = static_cast<size_t>(p[0] & 0xF) * 4;
    if (header_len < kIpv4MinHeaderLen || header_len > len) return Ipv4Error::bad_header_len;
    uint16_t total_len = load_be16(p + 2);
    if (total_len < header_len || total_len > len) return Ipv4Error::bad_total_len;
    if (checksum(p, header_len) != 0) return Ipv4Error::bad_checksum;
    uint16_t flags_frag = load_be16(p + 6);
    if ((flags_frag & kIpv4FlagMf) || (flags_frag & kIpv4FragOffsetMask)) return Ipv4Error::fragment;

    out->h.header_len = static_cast<uint8_t>(header_len);
    out->h.tos = p[1];
    out->h.total_len = total_len;
    out->h.id = load_be16(p + 4);
    out->h.flags_frag = flags_frag;
    out->h.ttl = p[8];
    out->h.protocol = p[9];
    out->h.src.value = load_be32(p + 12);
    out->h.dst.value = load_be32(p + 16);
    out->payload = p + header_len;
    out->payload_len = total_len - header_len;
    return Ipv4Error::ok;
}

size_t write_ipv4(uint8_t* p, size_t cap, Ipv4Addr src, Ipv4Addr dst, uint8_t protocol, uint16_t id,
                  size_t payload_len) {
    if (cap < kIpv4MinHeaderLen || payload_len > 0xFFFF - kIpv4MinHeaderLen) return 0;
    p[0] = 0x45;  // version 4, IHL 5
    p[1] = 0;
    store_be16(p + 2, static_cast<uint16_t>(kIpv4MinHeaderLen + payload_len));
    store_be16(p + 4, id);
    store_be16(p + 6, kIpv4FlagDf);
    p[8] = kIpv4DefaultTtl;
    p[9] = protocol;
    store_be16(p + 10, 0);
    store_be32(p + 12, src.value);
    store_be32(p + 16, dst.value);
    store_be16(p + 10, checksum(p, kIpv4MinHeaderLen));
    return kIpv4MinHeaderLen;
}

}  // namespace hvg::net
