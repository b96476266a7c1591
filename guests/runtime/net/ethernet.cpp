#include "guests/runtime/net/ethernet.hpp"

#include "guests/runtime/net/wire.hpp"

namespace hvg::net {

bool parse_eth(const uint8_t* frame, size_t len, EthHeader* out) {
    if (len < kEthHeaderLen) return false;
    for (int k = 0; k < 6; ++k) {
        out->dst.b[k] = frame[k];
        out->src.b[k] = frame[6 + k];
    }
    out->type = load_be16(frame + 12);
    return true;
}

size_t write_eth(uint8_t* buf, size_t cap, const EthHeader& h) {
    if (cap < kEthHeaderLen) return 0;
    for (int k = 0; k < 6; ++k) {
        buf[k] = h.dst.b[k];
        buf[6 + k] = h.src.b[k];
    }
    store_be16(buf + 12, h.type);
    return kEthHeaderLen;
}

size_t pad_frame(uint8_t* buf, size_t cap, size_t len) {
    if (len >= kEthMinFrameLen || cap < kEthMinFrameLen) return len;
    for (size_t k = len; k < kEthMinFrameLen; ++k) buf[k] = 0;
    return kEthMinFrameLen;
}

}  // namespace hvg::net
