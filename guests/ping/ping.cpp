// ping: resolves a peer by ARP, then sends ICMP echo requests one at a time
// and times each reply with the TSC. Answers ARP and ICMP itself meanwhile.
//
//   args: ip=A.B.C.D peer=A.B.C.D [count=10] [interval_ms=10] [size=56 (ICMP data bytes, 0..1472)]
//         [timeout_ms=1000 (per request)] [nic=N] [mode=irq|poll]
//   guest.net.up ...
//   guest.ping.start peer=10.0.0.1 peer_mac=.. count=10 size=56
//   guest.ping.reply seq=N rtt_us=N          (one per reply)
//   guest.ping.timeout seq=N                 (one per lost request)
//   guest.ping.done sent=N received=N lost=N rtt_min_us=N rtt_avg_us=N rtt_max_us=N
// Exit code 0 when every request was answered, 1 otherwise (also when the
// peer never answers ARP), 2 when the NIC did not come up.

#include "guests/runtime/args.hpp"
#include "guests/runtime/console.hpp"
#include "guests/runtime/net/frames.hpp"
#include "guests/runtime/netif.hpp"
#include "guests/runtime/runtime.hpp"

namespace {

constinit hvg::NetIf g_net;

const char* const kKnown[] = {"ip",  "peer", "count",     "interval_ms", "size", "timeout_ms",
                              "nic", "mode", "event_idx", "mrg_rxbuf",   nullptr};

constexpr uint16_t kIdentifier = 0x4856;  // "HV"
constexpr size_t kMaxData = hvg::net::kEthMtu - 20 - 8;

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

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    hvg::Args args(info->args);
    args.check_known(kKnown);
    hvg::net::Ipv4Addr peer{};
    args.ipv4("peer", true, &peer);
    uint64_t count = args.u64("count", 10, 1, 65535);
    uint64_t interval_ms = args.u64("interval_ms", 10, 0, 60'000);
    uint64_t size = args.u64("size", 56, 0, kMaxData);
    uint64_t timeout_ms = args.u64("timeout_ms", 1000, 1, 60'000);
    if (!hvg::report_args(args)) return 1;
    if (!g_net.up(args)) return hvg::report_args(args) ? 2 : 1;

    for (size_t k = 0; k < size; ++k) g_data[k] = static_cast<uint8_t>(k);
    Waiting w{peer, 0, false, 0, 0};
    char peer_text[hvg::net::kIpv4TextLen];
    hvg::net::format_ipv4(peer, peer_text);

    hvg::net::MacAddr peer_mac{};
    if (!g_net.resolve(peer, timeout_ms * 3, &peer_mac, &on_rx, &w)) {
        hvg::Event("ping.error").s("what", "arp_timeout").s("peer", peer_text).emit();
        hvg::Event("ping.done").u("sent", 0).u("received", 0).u("lost", count).emit();
        g_net.print_counters("ping.counters");
        return 1;
    }
    char mac_text[hvg::net::kMacTextLen];
    hvg::net::format_mac(peer_mac, mac_text);
    hvg::Event("ping.start").s("peer", peer_text).s("peer_mac", mac_text).u("count", count).u("size", size).emit();

    uint64_t sent = 0, received = 0, rtt_min = ~0ull, rtt_max = 0, rtt_sum = 0;
    uint64_t next_send = hvg::NetIf::now();
    for (uint64_t k = 1; k <= count; ++k) {
        while (hvg::NetIf::now() < next_send) {
            g_net.poll(&on_rx, &w);
            g_net.idle(next_send);
        }
        w.seq = static_cast<uint16_t>(k);
        w.replied = false;
        uint64_t t0 = hvg::NetIf::now();
        next_send = t0 + g_net.ms(interval_ms);
        // A full TX ring is retried until the request's own timeout.
        uint64_t deadline = t0 + g_net.ms(timeout_ms);
        bool out = false;
        while (!(out = g_net.stack().send_icmp_echo(peer_mac, peer, kIdentifier, w.seq, g_data, size)) &&
               hvg::NetIf::now() < deadline)
            g_net.poll(&on_rx, &w);
        if (out) ++sent;
        while (out && !w.replied && hvg::NetIf::now() < deadline) {
            g_net.poll(&on_rx, &w);
            if (!w.replied) g_net.idle(deadline);
        }
        if (g_net.check_needs_reset()) break;
        if (!w.replied) {
            hvg::Event("ping.timeout").u("seq", k).b("sent", out).emit();
            continue;
        }
        ++received;
        uint64_t rtt = g_net.ticks_to_us(w.at - t0);
        rtt_sum += rtt;
        if (rtt < rtt_min) rtt_min = rtt;
        if (rtt > rtt_max) rtt_max = rtt;
        hvg::Event("ping.reply").u("seq", k).u("rtt_us", rtt).emit();
    }
    hvg::Event("ping.done")
        .u("sent", sent)
        .u("received", received)
        .u("lost", count - received)
        .u("late", w.late)
        .u("rtt_min_us", received ? rtt_min : 0)
        .u("rtt_avg_us", received ? rtt_sum / received : 0)
        .u("rtt_max_us", rtt_max)
        .emit();
    g_net.print_counters("ping.counters");
    return received == count ? 0 : 1;
}
