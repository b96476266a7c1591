#include "guests/runtime/net/icmp.hpp"

#include "guests/runtime/net/checksum.hpp"
#include "guests/runtime/net/wire.hpp"

namespace hvg::net {

bool parse_icmp_echo(const uint8_t* p, size_t len, IcmpEcho* out) {
    if (len < kIcmpEchoHeaderLen) return false;
    if (checksum(p, len) != 0) return false;
    if ((p[0] != kIcmpEchoRequest && p[0] != kIcmpEchoReply) || p[1] != 0) return false;
    out->type = p[0];
    out->id = load_be16(p + 4);
    out->seq = load_be16(p + 6);
    out->data = p + kIcmpEchoHeaderLen;
    out->data_len = len - kIcmpEchoHeaderLen;
    return true;
}

size_t write_icmp_echo(uint8_t* p, size_t cap, uint8_t type, uint16_t id, uint16_t seq, const uint8_t* data,
                       size_t data_len) {
    if (cap < kIcmpEchoHeaderLen || data_len > cap - kIcmpEchoHeaderLen) return 0;
    // memmove semantics: a reply built in place over the request's data.
    if (data && data != p + kIcmpEchoHeaderLen) __builtin_memmove(p + kIcmpEchoHeaderLen, data, data_len);
    p[0] = type;
    p[1] = 0;
    store_be16(p + 2, 0);
    store_be16(p + 4, id);
    store_be16(p + 6, seq);
    size_t len = kIcmpEchoHeaderLen + data_len;
    store_be16(p + 2, checksum(p, len));
    return len;
}

}  // namespace hvg::net
