// ping: for each peer in turn, resolves it by ARP (or takes the MAC given
// with it), then sends ICMP echo requests one at a time and times each reply
// with the TSC. Answers ARP and ICMP itself meanwhile. Each peer is reached
// through the interface on its /24 (VlanMux::route), so a guest with VLAN
// interfaces (vlan=, vif=) pings on several VLANs in one run.
//
//   args: ip=A.B.C.D peer=A.B.C.D[@MAC][,...up to 4] [count=10] [interval_ms=10]
//         [size=56 (ICMP data bytes, 0..1472)] [timeout_ms=1000 (per request)]
//         [vlan=N] [vif=VID:A.B.C.D,...] [nic=N] [mode=irq|poll]
//   guest.net.up ...
//   guest.ping.start peer=10.0.0.1 peer_mac=.. vlan=0 count=10 size=56
//   guest.ping.reply peer=.. seq=N rtt_us=N          (one per reply)
//   guest.ping.timeout peer=.. seq=N sent=yes|no     (one per lost request)
//   guest.ping.done peer=.. vlan=0 sent=N received=N lost=N late=N rtt_min_us=N rtt_avg_us=N rtt_max_us=N
// then guest.ping.counters. Exit code 0 when every request to every peer was
// answered, 1 otherwise (also when a peer never answers ARP), 2 when the NIC
// did not come up.

#include "guests/runtime/args.hpp"
#include "guests/runtime/console.hpp"
#include "guests/runtime/net/frames.hpp"
#include "guests/runtime/netif.hpp"
#include "guests/runtime/runtime.hpp"

namespace {

constinit hvg::NetIf g_net;

const char* const kKnown[] = {"ip",  "peer", "count", "interval_ms", "size",      "timeout_ms", "vlan",
                              "vif", "nic",  "mode",  "event_idx",   "mrg_rxbuf", nullptr};

constexpr uint16_t kIdentifier = 0x4856;  // "HV"
constexpr size_t kMaxData = hvg::net::kEthMtu - 20 - 8;
constexpr size_t kMaxPeers = 4;

struct Waiting {
    hvg::net::Ipv4Addr peer;
    uint16_t seq;
    bool replied;
    uint64_t at;    // TSC of the reply
    uint64_t late;  // replies to earlier requests
};

void on_rx(void* ctx, const hvg::net::RxInfo& info, const uint8_t*, size_t) {
    auto* w = static_cast<Waiting*>(ctx);
    if (info.kind != hvg::net::RxKind::icmp_echo_reply || !(info.src_ip == w->peer) || info.echo.id != kIdentifier)
        return;
    if (info.echo.seq == w->seq && !w->replied) {
        w->replied = true;
        w->at = hvg::NetIf::now();
    } else {
        ++w->late;
    }
}

uint8_t g_data[kMaxData];

struct Settings {
    uint64_t count;
    uint64_t interval_ms;
    uint64_t size;
    uint64_t timeout_ms;
};

// Pings one peer `count` times; returns how many replies came back.
uint64_t ping_peer(const hvg::Args::Peer& p, const Settings& s) {
    const size_t iface = g_net.mux().route(p.ip);
    const uint64_t vlan = g_net.mux().vid(iface);
    Waiting w{p.ip, 0, false, 0, 0};
    char peer_text[hvg::net::kIpv4TextLen];
    hvg::net::format_ipv4(p.ip, peer_text);

    hvg::net::MacAddr peer_mac = p.mac;
    if (!p.has_mac && !g_net.resolve(p.ip, s.timeout_ms * 3, &peer_mac, &on_rx, &w)) {
        hvg::Event("ping.error").s("what", "arp_timeout").s("peer", peer_text).emit();
        hvg::Event("ping.done")
            .s("peer", peer_text)
            .u("vlan", vlan)
            .u("sent", 0)
            .u("received", 0)
            .u("lost", s.count)
            .emit();
        return 0;
    }
    char mac_text[hvg::net::kMacTextLen];
    hvg::net::format_mac(peer_mac, mac_text);
    hvg::Event("ping.start")
        .s("peer", peer_text)
        .s("peer_mac", mac_text)
        .u("vlan", vlan)
        .u("count", s.count)
        .u("size", s.size)
        .emit();

    hvg::net::Stack& stack = g_net.stack(iface);
    uint64_t sent = 0, received = 0, rtt_min = ~0ull, rtt_max = 0, rtt_sum = 0;
    uint64_t next_send = hvg::NetIf::now();
    for (uint64_t k = 1; k <= s.count; ++k) {
        while (hvg::NetIf::now() < next_send) {
            g_net.poll(&on_rx, &w);
            g_net.idle(next_send);
        }
        w.seq = static_cast<uint16_t>(k);
        w.replied = false;
        uint64_t t0 = hvg::NetIf::now();
        next_send = t0 + g_net.ms(s.interval_ms);
        // A full TX ring is retried until the request's own timeout.
        uint64_t deadline = t0 + g_net.ms(s.timeout_ms);
        bool out = false;
        while (!(out = stack.send_icmp_echo(peer_mac, p.ip, kIdentifier, w.seq, g_data, s.size)) &&
               hvg::NetIf::now() < deadline)
            g_net.poll(&on_rx, &w);
        if (out) ++sent;
        while (out && !w.replied && hvg::NetIf::now() < deadline) {
            g_net.poll(&on_rx, &w);
            if (!w.replied) g_net.idle(deadline);
        }
        if (g_net.check_needs_reset()) break;
        if (!w.replied) {
            hvg::Event("ping.timeout").s("peer", peer_text).u("seq", k).b("sent", out).emit();
            continue;
        }
        ++received;
        uint64_t rtt = g_net.ticks_to_us(w.at - t0);
        rtt_sum += rtt;
        if (rtt < rtt_min) rtt_min = rtt;
        if (rtt > rtt_max) rtt_max = rtt;
        hvg::Event("ping.reply").s("peer", peer_text).u("seq", k).u("rtt_us", rtt).emit();
    }
    hvg::Event("ping.done")
        .s("peer", peer_text)
        .u("vlan", vlan)
        .u("sent", sent)
        .u("received", received)
        .u("lost", s.count - received)
        .u("late", w.late)
        .u("rtt_min_us", received ? rtt_min : 0)
        .u("rtt_avg_us", received ? rtt_sum / received : 0)
        .u("rtt_max_us", rtt_max)
        .emit();
    return received;
}

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    hvg::Args args(info->args);
    args.check_known(kKnown);
    hvg::Args::Peer peers[kMaxPeers] = {};
    size_t n_peers = args.peers("peer", true, peers, kMaxPeers);
    Settings s;
    s.count = args.u64("count", 10, 1, 65535);
    s.interval_ms = args.u64("interval_ms", 10, 0, 60'000);
    s.size = args.u64("size", 56, 0, kMaxData);
    s.timeout_ms = args.u64("timeout_ms", 1000, 1, 60'000);
    if (!hvg::report_args(args)) return 1;
    if (!g_net.up(args)) return hvg::report_args(args) ? 2 : 1;

    for (size_t k = 0; k < s.size; ++k) g_data[k] = static_cast<uint8_t>(k);
    bool all = true;
    for (size_t i = 0; i < n_peers && !g_net.check_needs_reset(); ++i)
        if (ping_peer(peers[i], s) != s.count) all = false;
    g_net.print_counters("ping.counters");
    return all && !g_net.nic().needs_reset() ? 0 : 1;
}
