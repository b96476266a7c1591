// netbad: a hostile network guest, for tests that show the hypervisor
// contains it.
//
// mode=spoof: sends `count` UDP frames (to port 9 of peer, or broadcast) with
//   a source MAC that is not its own (spoof_mac=, default its own MAC with the
//   last byte flipped), then `count` with its own MAC. A sink behind an
//   anti-spoofing switch port should count only the second batch.
//     guest.netbad.spoof sent_spoofed=N sent_own=N spoof_mac=.. own_mac=..
// mode=macflood: sends `count` UDP frames (to port 9 of peer, or broadcast),
//   each from another invented source MAC 02:ee:00:NN:NN:NN (N = 1, 2, ...),
//   as a guest filling the switch's MAC table would, then keeps its NIC
//   serviced for hold_ms, so its port stays up (a stopped guest's MACs are
//   flushed) while the test reads the switch's counters.
//     guest.netbad.macflood sent=N first_mac=.. last_mac=.. drained=yes|no
// mode=badring: after a normal init, corrupts its own TX ring one way (bad=):
//   oob   a descriptor whose buffer lies outside the guest's RAM
//   loop  two descriptors chained to each other (NEXT both ways)
//   jump  avail.idx moved 1000 entries ahead (more than the queue holds)
//   then notifies the device, waits wait_ms and reads the device status:
//     guest.netbad.corrupt bad=oob ...
//     guest.netbad.status needs_reset=yes|no status=0x.. config_interrupts=N
// mode=vlan: for each tag stack in tags= (a list; each stack is one or two
//   VIDs 0..4095 joined by '.', outermost first: 40 is one tag, 10.20 a
//   double tag), sends `count` UDP frames to port 9 of broadcast (or
//   peer_mac) carrying those 0x8100 tags, from its own MAC. A switch must
//   drop a VLAN the port does not carry and any tag behind the tag.
//     guest.netbad.tagged tags=10.20 sent=N      (one per stack)
//     guest.netbad.vlan sent=N drained=yes|no
//
//   args: ip=A.B.C.D mode=spoof|badring|vlan|macflood [peer=A.B.C.D] [peer_mac=..] [spoof_mac=..]
//         [count=10] [bad=oob|loop|jump] [wait_ms=200] [tags=VID[.VID],...] [hold_ms=0] [nic=N]
//         [irq=yes|no (default yes)]
// Exit code 0 when the run completed (whatever the device did), 1 on bad
// arguments, 2 when the NIC did not come up.

#include "guests/runtime/args.hpp"
#include "guests/runtime/console.hpp"
#include "guests/runtime/net/frames.hpp"
#include "guests/runtime/net/udp.hpp"
#include "guests/runtime/netif.hpp"
#include "guests/runtime/runtime.hpp"

namespace {

constinit hvg::NetIf g_net;

const char* const kKnown[] = {"ip",      "mode", "peer",    "peer_mac", "spoof_mac", "count", "bad",
                              "wait_ms", "tags", "hold_ms", "nic",      "irq",       nullptr};
const char* const kModes[] = {"spoof", "badring", "vlan", "macflood", nullptr};
const char* const kBad[] = {"oob", "loop", "jump", nullptr};

constexpr size_t kMaxTags = 2;
constexpr size_t kMaxStacks = 4;
uint8_t g_frame[hvg::net::kEthMaxFrameLen + kMaxTags * hvg::net::kVlanTagLen];

struct TagStack {
    uint16_t vid[kMaxTags];  // outermost first
    size_t n;
};

// Sends `n` copies of a UDP frame with source MAC `src`, carrying `tags`
// (none when null); returns how many the driver took (a full ring is waited
// out for a bounded time).
uint64_t send_batch(const hvg::net::MacAddr& src, const hvg::net::MacAddr& dst, hvg::net::Ipv4Addr dst_ip, uint64_t n,
                    const TagStack* tags = nullptr) {
    static const uint8_t kPayload[] = "netbad";
    uint64_t sent = 0;
    for (uint64_t k = 0; k < n; ++k) {
        hvg::net::Ipv4Endpoints ep{src, dst, g_net.ip(), dst_ip, g_net.stack().next_ip_id()};
        size_t len = hvg::net::build_udp_frame(g_frame, sizeof g_frame, ep, hvg::net::kUdpPortDiscard,
                                               hvg::net::kUdpPortDiscard, kPayload, sizeof kPayload);
        // Each tag goes right after the source MAC: the innermost first.
        for (size_t t = tags ? tags->n : 0; t-- > 0;)
            len = hvg::net::add_tag(g_frame, len, tags->vid[t], g_frame, sizeof g_frame);
        uint64_t give_up = hvg::NetIf::now() + g_net.ms(100);
        while (!g_net.nic().send(g_frame, len) && hvg::NetIf::now() < give_up) g_net.poll();
        if (hvg::NetIf::now() < give_up) ++sent;
    }
    return sent;
}

// Where the frames go: peer= (resolved by ARP unless peer_mac= is given),
// or broadcast. False after printing why not.
bool destination(hvg::Args& args, hvg::net::Ipv4Addr* peer, hvg::net::MacAddr* dst) {
    *peer = hvg::net::Ipv4Addr{0xFFFF'FFFF};
    *dst = hvg::net::MacAddr::broadcast();
    bool have_peer = args.ipv4("peer", false, peer);
    bool have_mac = args.mac("peer_mac", false, dst);
    if (!hvg::report_args(args)) return false;
    // 10 s: the peer may still be booting, and where no hypervisor gives the
    // TSC rate (the QEMU driver test) the runtime assumes 1 GHz, so on a
    // 2 GHz host this is 5 s of real time.
    if (have_peer && !have_mac && !g_net.resolve(*peer, 10000, dst)) {
        hvg::Event("netbad.error").s("what", "arp_timeout").emit();
        return false;
    }
    return true;
}

int run_spoof(hvg::Args& args) {
    hvg::net::MacAddr spoof = g_net.mac();
    spoof.b[5] ^= 0xFF;
    args.mac("spoof_mac", false, &spoof);
    uint64_t count = args.u64("count", 10, 1, 1'000'000);
    hvg::net::Ipv4Addr peer;
    hvg::net::MacAddr dst;
    if (!destination(args, &peer, &dst)) return 1;
    uint64_t spoofed = send_batch(spoof, dst, peer, count);
    uint64_t own = send_batch(g_net.mac(), dst, peer, count);
    bool drained = g_net.drain_tx(1000);
    char spoof_text[hvg::net::kMacTextLen], own_text[hvg::net::kMacTextLen];
    hvg::net::format_mac(spoof, spoof_text);
    hvg::net::format_mac(g_net.mac(), own_text);
    hvg::Event("netbad.spoof")
        .u("sent_spoofed", spoofed)
        .u("sent_own", own)
        .s("spoof_mac", spoof_text)
        .s("own_mac", own_text)
        .b("drained", drained)
        .emit();
    return 0;
}

// tags=: a list of tag stacks, each VID[.VID] (0..4095: a hostile guest may
// send the reserved values too). Returns how many; 0 after an args error.
size_t parse_tags(hvg::Args& args, TagStack* out) {
    hvg::ArgValue items[kMaxStacks];
    size_t n = args.list("tags", items, kMaxStacks);
    if (n == 0 && args.ok()) args.reject("tags", "missing");
    for (size_t i = 0; i < n; ++i) {
        out[i].n = 0;
        const char* p = items[i].p;
        const char* end = p + items[i].len;
        while (p <= end) {
            const char* q = p;
            while (q < end && *q != '.') ++q;
            uint64_t vid = 0;
            if (out[i].n == kMaxTags || !hvg::parse_u64(p, static_cast<size_t>(q - p), &vid) ||
                vid > hvg::net::kVidMask) {
                args.reject("tags", "bad_value");
                return 0;
            }
            out[i].vid[out[i].n++] = static_cast<uint16_t>(vid);
            p = q + 1;
        }
    }
    return n;
}

int run_vlan(hvg::Args& args) {
    TagStack stacks[kMaxStacks];
    size_t n = parse_tags(args, stacks);
    uint64_t count = args.u64("count", 10, 1, 1'000'000);
    hvg::net::Ipv4Addr peer;
    hvg::net::MacAddr dst;
    if (!destination(args, &peer, &dst)) return 1;
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        uint64_t sent = send_batch(g_net.mac(), dst, peer, count, &stacks[i]);
        total += sent;
        hvg::Event ev("netbad.tagged");
        if (stacks[i].n == 1)
            ev.u("tags", stacks[i].vid[0]);
        else
            ev.f("tags", "%u.%u", static_cast<unsigned>(stacks[i].vid[0]), static_cast<unsigned>(stacks[i].vid[1]));
        ev.u("sent", sent).emit();
    }
    bool drained = g_net.drain_tx(1000);
    hvg::Event("netbad.vlan").u("sent", total).b("drained", drained).emit();
    return 0;
}

int run_macflood(hvg::Args& args) {
    uint64_t count = args.u64("count", 10, 1, 0xFF'FFFF);
    uint64_t hold_ms = args.u64("hold_ms", 0, 0, 3'600'000);
    hvg::net::Ipv4Addr peer;
    hvg::net::MacAddr dst;
    if (!destination(args, &peer, &dst)) return 1;
    auto invented = [](uint64_t n) {
        return hvg::net::MacAddr{
            {0x02, 0xEE, 0x00, static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)}};
    };
    uint64_t sent = 0;
    for (uint64_t n = 1; n <= count; ++n) sent += send_batch(invented(n), dst, peer, 1);
    bool drained = g_net.drain_tx(1000);
    char first[hvg::net::kMacTextLen], last[hvg::net::kMacTextLen];
    hvg::net::format_mac(invented(1), first);
    hvg::net::format_mac(invented(count), last);
    hvg::Event("netbad.macflood")
        .u("sent", sent)
        .s("first_mac", first)
        .s("last_mac", last)
        .b("drained", drained)
        .emit();
    uint64_t end = hvg::NetIf::now() + g_net.ms(hold_ms);
    while (hvg::NetIf::now() < end) {
        g_net.poll();
        g_net.idle(end);
    }
    return 0;
}

// A TX descriptor id the driver does not own right now, or -1.
int free_tx_id(hvg::SplitQueue& q, int not_this) {
    for (uint16_t id = 0; id < q.size(); ++id)
        if (!q.is_in_flight(id) && id != not_this) return id;
    return -1;
}

int run_badring(hvg::Args& args, const hv::abi::BootInfo& info) {
    size_t bad = args.choice("bad", kBad, 0);
    uint64_t wait_ms = args.u64("wait_ms", 200, 1, 60'000);
    if (!hvg::report_args(args)) return 1;

    hvg::VirtioNet& nic = g_net.nic();
    hvg::SplitQueue& q = nic.raw_tx_queue();
    nic.reclaim_tx();
    int a = free_tx_id(q, -1), b = free_tx_id(q, a);
    if (a < 0 || b < 0) {
        hvg::Event("netbad.error").s("what", "no_free_descriptor").emit();
        return 1;
    }
    // A valid buffer to point the loop at: our own frame buffer, in RAM.
    uint64_t inside = reinterpret_cast<uint64_t>(g_frame);
    hvg::Event ev("netbad.corrupt");
    ev.s("bad", kBad[bad]);
    switch (bad) {
        case 0: {  // a buffer 1 GiB past the end of RAM
            uint64_t outside = info.memory_bytes + (1ull << 30);
            q.add(static_cast<uint16_t>(a), outside, 128, false);
            ev.x("addr", outside).u("desc", static_cast<uint64_t>(a));
            break;
        }
        case 1: {  // a -> b -> a -> ...
            q.add(static_cast<uint16_t>(a), inside, 64, false);
            hvg::VirtqDesc* d = q.raw_desc();
            d[a].flags = hvg::VIRTQ_DESC_F_NEXT;
            d[a].next = static_cast<uint16_t>(b);
            d[b].addr = inside;
            d[b].len = 64;
            d[b].flags = hvg::VIRTQ_DESC_F_NEXT;
            d[b].next = static_cast<uint16_t>(a);
            ev.u("desc", static_cast<uint64_t>(a)).u("next", static_cast<uint64_t>(b));
            break;
        }
        default: {  // avail.idx far ahead of what was ever offered
            uint16_t idx = *q.raw_avail_idx();
            *q.raw_avail_idx() = static_cast<uint16_t>(idx + 1000);
            ev.u("avail_idx_was", idx).u("avail_idx", static_cast<uint16_t>(idx + 1000));
            break;
        }
    }
    ev.emit();
    if (bad != 2) q.publish();
    nic.raw_notify_tx();

    // The status is read once a millisecond (each read is a VM exit).
    uint64_t end = hvg::NetIf::now() + g_net.ms(wait_ms);
    uint8_t status = nic.device_status();
    while (hvg::NetIf::now() < end && !(status & hvg::VIRTIO_STATUS_DEVICE_NEEDS_RESET)) {
        uint64_t next = hvg::NetIf::now() + g_net.ms(1);
        if (next > end) next = end;
        while (hvg::NetIf::now() < next) {
            g_net.poll();
            g_net.idle(next);
        }
        status = nic.device_status();
    }
    hvg::Event("netbad.status")
        .b("needs_reset", (status & hvg::VIRTIO_STATUS_DEVICE_NEEDS_RESET) != 0)
        .x("status", status)
        .u("config_interrupts", nic.counters().config_interrupts)
        .emit();
    return 0;
}

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    hvg::Args args(info->args);
    args.check_known(kKnown);
    size_t mode = args.choice("mode", kModes, 0);
    // The other guests' mode= picks irq|poll; here mode= is the attack, so
    // the interrupt choice comes from irq=yes|no instead.
    static const char* const kYesNo[] = {"yes", "no", nullptr};
    bool irq = args.choice("irq", kYesNo, 0) == 0;
    hvg::net::Ipv4Addr ip{};
    args.ipv4("ip", true, &ip);
    uint64_t nic = args.u64("nic", 0, 0, 31);
    if (!hvg::report_args(args)) return 1;
    if (!g_net.up(ip, nic, irq)) return 2;
    switch (mode) {
        case 0: return run_spoof(args);
        case 1: return run_badring(args, *info);
        case 2: return run_vlan(args);
        default: return run_macflood(args);
    }
}
