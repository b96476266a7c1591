// The guests' IPv4 stack (guests/runtime/net) on arbitrary frames, behind a
// VLAN mux with an interface on VLAN 10 and an untagged one: the first byte
// picks the receiver's configuration (UDP echo on or off), the rest is the
// frame. Every answer must itself parse on a peer with the same VLANs, on the
// VLAN it came from. The same bytes are also parsed as an args string
// (guests/runtime/args.cpp).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guests/runtime/args.hpp"
#include "guests/runtime/net/stack.hpp"
#include "guests/runtime/net/vlan_mux.hpp"

using namespace hvg::net;

namespace {

struct Out {
    uint8_t frames[4][kEthMaxTaggedFrameLen];
    size_t lens[4];
    size_t n;
};

bool capture(void* ctx, const uint8_t* f, size_t len) {
    auto* o = static_cast<Out*>(ctx);
    if (len > kEthMaxTaggedFrameLen || len < kEthMinFrameLen) abort();  // the stack only builds valid sizes
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
    VlanMux st;
    const VlanIf ifs[] = {{10, Ipv4Addr::from(10, 0, 0, 2)}, {0, Ipv4Addr::from(10, 0, 1, 2)}};
    st.init(mac, ifs, 2, &capture, &out);
    st.stack(0).set_udp_echo(data[0] & 1);
    st.stack(1).set_udp_echo(data[0] & 1);
    // A private heap copy of exactly the frame, so ASan sees any overread.
    uint8_t* frame = static_cast<uint8_t*>(malloc(size - 1 ? size - 1 : 1));
    memcpy(frame, data + 1, size - 1);
    VlanMux::Rx rx = st.handle(frame, size - 1, 0);
    free(frame);
    if (out.n && rx.iface == VlanMux::kNone) abort();  // answered a frame from a VLAN it is not on

    VlanMux peer;
    const VlanIf peer_ifs[] = {{10, Ipv4Addr::from(10, 0, 0, 1)}, {0, Ipv4Addr::from(10, 0, 1, 1)}};
    peer.init(MacAddr{{0x02, 0, 0, 0, 0, 0x01}}, peer_ifs, 2, &discard, nullptr);
    for (size_t k = 0; k < out.n; ++k) {
        VlanMux::Rx r = peer.handle(out.frames[k], out.lens[k], 0);
        // An answer must be well formed and on the VLAN of the frame it answers.
        if (r.info.kind == RxKind::malformed || r.iface != rx.iface) abort();
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
    VlanIf vifs[3];
    args.vlan_ifs("vif", vifs, 3);
    hvg::Args::Peer peers[4];
    args.peers("peer", false, peers, 4);
    static const char* const kKnown[] = {"ip", "peer_mac", "count", "vif", "peer", nullptr};
    args.check_known(kKnown);
    return 0;
}
