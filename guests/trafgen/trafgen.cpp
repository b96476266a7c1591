// trafgen: sends UDP datagrams to the peer's discard port (9) as fast as
// possible or at a fixed rate, for a duration or a number of frames, and
// reports what it achieved. One frame is built once and sent again and again
// (same IPv4 id and payload), so the figure measures the data path, not the
// frame builder.
//
//   args: ip=A.B.C.D peer=A.B.C.D [peer_mac=aa:bb:cc:dd:ee:ff (skip ARP)]
//         [size=64 (frame bytes without FCS, 64..1514)] [pps=0 (0 = as fast as possible)]
//         [duration_ms=N | count=N (default count=1000)] [vlan=N] [vif=VID:A.B.C.D,...]
//         [nic=N] [mode=irq|poll]
//   (from the interface on peer's /24, tagged when that interface is on a VLAN)
//   guest.net.up ...
//   guest.trafgen.start peer=.. peer_mac=.. size=64 pps=0 count=1000 duration_ms=0
//   guest.trafgen.done sent=N tx_full=N elapsed_us=N pps=N bytes=N tx_kicks=N
// Exit code 0 when count frames were sent (or the duration ran out), 1 on
// an argument or ARP failure, 2 when the NIC did not come up, 3 when the
// device asked for a reset.

#include "guests/runtime/args.hpp"
#include "guests/runtime/console.hpp"
#include "guests/runtime/net/frames.hpp"
#include "guests/runtime/net/udp.hpp"
#include "guests/runtime/netif.hpp"
#include "guests/runtime/runtime.hpp"

namespace {

constinit hvg::NetIf g_net;

const char* const kKnown[] = {"ip",    "vlan", "vif",  "peer",      "peer_mac",  "size",     "pps",   "duration_ms",
                              "count", "nic",  "mode", "event_idx", "mrg_rxbuf", "src_port", "burst", nullptr};

constexpr size_t kHeaders = hvg::net::kUdpDataOffset;  // Ethernet + IPv4 + UDP
constexpr uint64_t kRxEvery = 64;                      // frames between two looks at the RX ring

uint8_t g_frame[hvg::net::kEthMaxTaggedFrameLen];
uint8_t g_payload[hvg::net::kEthMaxFrameLen];

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    hvg::Args args(info->args);
    args.check_known(kKnown);
    hvg::net::Ipv4Addr peer{};
    args.ipv4("peer", true, &peer);
    hvg::net::MacAddr peer_mac{};
    bool have_mac = args.mac("peer_mac", false, &peer_mac);
    uint64_t size = args.u64("size", 64, 64, hvg::net::kEthMaxFrameLen);
    uint64_t pps = args.u64("pps", 0, 0, 100'000'000);
    uint64_t duration_ms = args.u64("duration_ms", 0, 0, 86'400'000);
    uint64_t count = args.u64("count", duration_ms ? 0 : 1000, 0, ~0ull >> 1);
    uint64_t src_port = args.u64("src_port", 9, 1, 65535);
    // Frames queued per notification when sending as fast as possible (the
    // driver side of batching, like Linux's xmit_more); 1 = notify per frame.
    uint64_t burst = args.u64("burst", 32, 1, 256);
    if (!hvg::report_args(args)) return 1;
    if (!g_net.up(args)) return hvg::report_args(args) ? 2 : 1;

    char peer_text[hvg::net::kIpv4TextLen];
    hvg::net::format_ipv4(peer, peer_text);
    if (!have_mac && !g_net.resolve(peer, 3000, &peer_mac)) {
        hvg::Event("trafgen.error").s("what", "arp_timeout").s("peer", peer_text).emit();
        return 1;
    }
    for (size_t k = 0; k < sizeof g_payload; ++k) g_payload[k] = static_cast<uint8_t>(k * 31 + 7);
    const size_t iface = g_net.mux().route(peer);
    hvg::net::Stack& stack = g_net.stack(iface);
    hvg::net::Ipv4Endpoints ep{g_net.mac(), peer_mac, stack.ip(), peer, stack.next_ip_id()};
    size_t len = hvg::net::build_udp_frame(g_frame, sizeof g_frame, ep, static_cast<uint16_t>(src_port),
                                           hvg::net::kUdpPortDiscard, g_payload, size - kHeaders);
    len = g_net.mux().encap(iface, g_frame, sizeof g_frame, len);
    char mac_text[hvg::net::kMacTextLen];
    hvg::net::format_mac(peer_mac, mac_text);
    hvg::Event("trafgen.start")
        .s("peer", peer_text)
        .s("peer_mac", mac_text)
        .u("size", len)
        .u("pps", pps)
        .u("count", count)
        .u("duration_ms", duration_ms)
        .emit();

    const uint64_t hz = g_net.tsc_hz();
    const uint64_t start = hvg::NetIf::now();
    const uint64_t end = duration_ms ? start + g_net.ms(duration_ms) : ~0ull;
    uint64_t sent = 0, failed = 0;
    uint64_t now = start;
    while ((count == 0 || sent < count) && now < end) {
        if (pps) {
            // Frame k leaves at start + k / pps seconds (split to avoid overflow).
            uint64_t due = start + sent / pps * hz + sent % pps * hz / pps;
            if (now < due) {
                g_net.poll();
                g_net.idle(due < end ? due : end);
                now = hvg::NetIf::now();
                continue;
            }
        }
        bool more = !pps && (sent + 1) % burst != 0 && (count == 0 || sent + 1 < count);
        if (g_net.nic().send(g_frame, len, more)) {
            ++sent;
        } else {
            ++failed;
            if (g_net.check_needs_reset()) break;
        }
        if ((sent + failed) % kRxEvery == 0) g_net.poll();
        now = hvg::NetIf::now();
    }
    g_net.nic().flush_tx();  // a batch cut short by the deadline
    uint64_t elapsed_us = g_net.ticks_to_us(hvg::NetIf::now() - start);
    // Let the device take what is still in the ring before the guest ends.
    g_net.drain_tx(1000);
    const hvg::VirtioNetCounters& c = g_net.nic().counters();
    hvg::Event("trafgen.done")
        .u("sent", sent)
        .u("tx_full", c.tx_full)
        .u("elapsed_us", elapsed_us)
        .u("pps", elapsed_us ? sent * 1'000'000 / elapsed_us : 0)
        .u("bytes", sent * len)
        .u("tx_kicks", c.tx_kicks)
        .emit();
    g_net.print_counters("trafgen.counters");
    if (g_net.nic().needs_reset()) return 3;
    return 0;
}
