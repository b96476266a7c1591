// netecho: an IPv4 host that answers. Replies to ARP requests for its
// address and to ICMP echo requests, and echoes UDP datagrams sent to port 7
// (RFC 862). Prints its counters every report_ms and once more on exit.
//
//   args: ip=A.B.C.D [duration_ms=N (0 = forever)] [report_ms=N (default 1000, 0 = never)]
//         [vlan=N] [vif=VID:A.B.C.D,...] [nic=N] [mode=irq|poll]
//   (each VLAN interface answers for its own address)
//   guest.net.up mac=02:.. ip=10.0.0.2 mode=irq ...
//   guest.netecho.stats rx=.. tx=.. arp_answered=.. icmp_answered=.. udp_echoed=.. ...
//   guest.netecho.done <the same counters>      (exit 0, after duration_ms)

#include "guests/runtime/args.hpp"
#include "guests/runtime/console.hpp"
#include "guests/runtime/netif.hpp"
#include "guests/runtime/runtime.hpp"

namespace {

constinit hvg::NetIf g_net;

const char* const kKnown[] = {"ip",        "vlan",      "vif",         "nic",       "mode",
                              "event_idx", "mrg_rxbuf", "duration_ms", "report_ms", nullptr};

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    hvg::Args args(info->args);
    args.check_known(kKnown);
    uint64_t duration_ms = args.u64("duration_ms", 0, 0, 86'400'000);
    uint64_t report_ms = args.u64("report_ms", 1000, 0, 3'600'000);
    if (!hvg::report_args(args)) return 1;
    if (!g_net.up(args)) return hvg::report_args(args) ? 2 : 1;
    for (size_t i = 0; i < g_net.mux().count(); ++i) g_net.stack(i).set_udp_echo(true);

    uint64_t start = hvg::NetIf::now();
    uint64_t end = duration_ms ? start + g_net.ms(duration_ms) : ~0ull;
    uint64_t next_report = report_ms ? start + g_net.ms(report_ms) : ~0ull;
    for (;;) {
        g_net.poll();
        uint64_t now = hvg::NetIf::now();
        if (now >= end) break;
        if (now >= next_report) {
            g_net.print_counters("netecho.stats");
            next_report += g_net.ms(report_ms);
            if (next_report < now) next_report = now + g_net.ms(report_ms);
        }
        if (g_net.check_needs_reset()) break;
        g_net.idle(next_report < end ? next_report : end);
    }
    g_net.print_counters("netecho.done");
    return g_net.nic().needs_reset() ? 3 : 0;
}
