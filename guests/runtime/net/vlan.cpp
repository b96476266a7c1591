#include "guests/runtime/net/vlan.hpp"

#include "guests/runtime/net/wire.hpp"

namespace hvg::net {

bool is_tag_ethertype(uint16_t type) {
    return type == static_cast<uint16_t>(EtherType::vlan) || type == 0x88A8 || type == 0x9100;
}

bool parse_vlan(const uint8_t* frame, size_t len, VlanView* out) {
    if (len < kEthHeaderLen) return false;
    uint16_t type = load_be16(frame + 12);
    if (type != static_cast<uint16_t>(EtherType::vlan)) {
        *out = VlanView{false, 0, type};
        return true;
    }
    if (len < kEthHeaderLen + kVlanTagLen) return false;
    *out = VlanView{true, static_cast<uint16_t>(load_be16(frame + 14) & kVidMask), load_be16(frame + 16)};
    return true;
}

size_t strip_tag(const uint8_t* frame, size_t len, uint8_t* out, size_t cap) {
    VlanView v;
    if (!parse_vlan(frame, len, &v) || !v.tagged || len - kVlanTagLen > cap) return 0;
    __builtin_memmove(out, frame, 12);
    __builtin_memmove(out + 12, frame + 16, len - 16);
    return len - kVlanTagLen;
}

size_t add_tag(const uint8_t* frame, size_t len, uint16_t vid, uint8_t* out, size_t cap) {
    if (len < kEthHeaderLen || len > cap || cap - len < kVlanTagLen) return 0;
    // Type and payload first: when out == frame they move up over bytes not yet read.
    __builtin_memmove(out + 16, frame + 12, len - 12);
    __builtin_memmove(out, frame, 12);
    store_be16(out + 12, static_cast<uint16_t>(EtherType::vlan));
    store_be16(out + 14, vid & kVidMask);
    return len + kVlanTagLen;
}

}  // namespace hvg::net
