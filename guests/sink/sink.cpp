// sink: counts UDP datagrams addressed to its discard port (9) and reports
// the rate every second of TSC time. Answers ARP and ICMP echo meanwhile.
//
//   args: ip=A.B.C.D [duration_ms=N] [count=N] [port=9] [vlan=N] [vif=VID:A.B.C.D,...] [nic=N] [mode=irq|poll]
//   guest.net.up ...
//   guest.sink.rate pps=N bytes=N            (each second: frames and frame bytes in it)
//   guest.sink.total packets=N bytes=N elapsed_us=N   (when duration_ms or count is reached; exit 0)
// Without duration_ms and count it runs forever. bytes are Ethernet frame
// bytes (no virtio header, no FCS).

#include "guests/runtime/args.hpp"
#include "guests/runtime/console.hpp"
#include "guests/runtime/netif.hpp"
#include "guests/runtime/runtime.hpp"

namespace {

constinit hvg::NetIf g_net;

const char* const kKnown[] = {"ip",  "vlan", "vif",       "duration_ms", "count", "port",
                              "nic", "mode", "event_idx", "mrg_rxbuf",   nullptr};

struct Tally {
    uint16_t port;
    uint64_t packets;
    uint64_t bytes;
    uint64_t first_at;  // TSC of the first counted frame
};

void on_rx(void* ctx, const hvg::net::RxInfo& info, const uint8_t*, size_t len) {
    auto* t = static_cast<Tally*>(ctx);
    if (info.kind != hvg::net::RxKind::udp || info.udp.dst_port != t->port) return;
    if (t->packets == 0) t->first_at = hvg::NetIf::now();
    ++t->packets;
    t->bytes += len;
}

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    hvg::Args args(info->args);
    args.check_known(kKnown);
    uint64_t duration_ms = args.u64("duration_ms", 0, 0, 86'400'000);
    uint64_t count = args.u64("count", 0, 0, ~0ull >> 1);
    uint64_t port = args.u64("port", hvg::net::kUdpPortDiscard, 1, 65535);
    if (!hvg::report_args(args)) return 1;
    if (!g_net.up(args)) return hvg::report_args(args) ? 2 : 1;

    Tally t{static_cast<uint16_t>(port), 0, 0, 0};
    const uint64_t second = g_net.ms(1000);
    const uint64_t start = hvg::NetIf::now();
    const uint64_t end = duration_ms ? start + g_net.ms(duration_ms) : ~0ull;
    uint64_t next_rate = start + second;
    uint64_t last_packets = 0, last_bytes = 0;
    for (;;) {
        g_net.poll(&on_rx, &t, 256);
        uint64_t now = hvg::NetIf::now();
        if (now >= next_rate) {
            hvg::Event("sink.rate").u("pps", t.packets - last_packets).u("bytes", t.bytes - last_bytes).emit();
            last_packets = t.packets;
            last_bytes = t.bytes;
            next_rate += second;
            if (next_rate <= now) next_rate = now + second;
        }
        if (now >= end || (count && t.packets >= count)) break;
        if (g_net.check_needs_reset()) break;
        g_net.idle(next_rate < end ? next_rate : end);
    }
    hvg::Event("sink.total")
        .u("packets", t.packets)
        .u("bytes", t.bytes)
        .u("elapsed_us", g_net.ticks_to_us(hvg::NetIf::now() - start))
        .emit();
    g_net.print_counters("sink.counters");
    return g_net.nic().needs_reset() ? 3 : 0;
}
