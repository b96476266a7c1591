// The guests' IPv4 stack (guests/runtime/net) on arbitrary frames: the first
// byte picks the receiver's configuration (UDP echo on or off), the rest is
// the frame. Every answer the stack sends must itself parse on a peer stack.
// The same bytes are also parsed as an args string (guests/runtime/args.cpp).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guests/runtime/args.hpp"
#include "guests/runtime/net/stack.hpp"

using namespace hvg::net;

namespace {

struct Out {
    uint8_t frames[4][kEthMaxFrameLen];
    size_t lens[4];
    size_t n;
};

bool capture(void* ctx, const uint8_t* f, size_t len) {
    auto* o = static_cast<Out*>(ctx);
    if (len > kEthMaxFrameLen || len < kEthMinFrameLen) abort();  // the stack only builds valid sizes
    if (o->n == 4) return false;
    memcpy(o->frames[o->n], f, len);
    o->lens[o->n++] = len;
    return true;
}

bool discard(void*, const uint8_t*, size_t) {
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    static Out out;
    out.n = 0;
    const MacAddr mac{{0x02, 0, 0, 0, 0, 0x02}};
    Stack st(mac, Ipv4Addr::from(10, 0, 0, 2), &capture, &out);
    st.set_udp_echo(data[0] & 1);
    // A private heap copy of exactly the frame, so ASan sees any overread.
    uint8_t* frame = static_cast<uint8_t*>(malloc(size - 1 ? size - 1 : 1));
    memcpy(frame, data + 1, size - 1);
    st.handle(frame, size - 1, 0);
    free(frame);

    Stack peer(MacAddr{{0x02, 0, 0, 0, 0, 0x01}}, Ipv4Addr::from(10, 0, 0, 1), &discard, nullptr);
    for (size_t k = 0; k < out.n; ++k) {
        RxInfo r = peer.handle(out.frames[k], out.lens[k], 0);
        if (r.kind == RxKind::malformed) abort();  // an answer the stack built must be well formed
    }

    char text[129];
    size_t n = size < 128 ? size : 128;
    memcpy(text, data, n);
    text[n] = '\0';
    hvg::Args args(text);
    Ipv4Addr ip{};
    MacAddr m{};
    args.ipv4("ip", false, &ip);
    args.mac("peer_mac", false, &m);
    args.u64("count", 1, 0, 100);
    static const char* const kKnown[] = {"ip", "peer_mac", "count", nullptr};
    args.check_known(kKnown);
    return 0;
}
