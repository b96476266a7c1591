#include "guests/runtime/netif.hpp"

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"
#include "guests/runtime/interrupt.hpp"
#include "guests/runtime/runtime.hpp"
#include "guests/runtime/x2apic.hpp"
#include "guests/runtime/x86.hpp"

namespace hvg {

namespace {

constexpr uint64_t kFallbackTscHz = 1'000'000'000;  // only when the hypervisor gives none
constexpr uint64_t kLinkWaitMs = 1000;
constexpr uint64_t kArpRetryMs = 100;
constexpr uint64_t kStatusCheckMs = 100;
constexpr uint64_t kSpinUs = 200;

const char* const kModes[] = {"irq", "poll", nullptr};
const char* const kYesNo[] = {"yes", "no", nullptr};

}  // namespace

bool report_args(const Args& args) {
    if (args.ok()) return true;
    ArgValue k = args.error_key();
    Event ev("args_error");
    ev.s("key", k.p, k.len).s("what", args.error_what());
    if (args.error_has_range()) ev.u("min", args.error_min()).u("max", args.error_max());
    ev.emit();
    return false;
}

uint64_t NetIf::now() {
    return rdtsc();
}

uint64_t NetIf::ticks_to_us(uint64_t ticks) const {
    // Split so that neither product overflows for any realistic TSC rate.
    return ticks / tsc_hz_ * 1'000'000 + ticks % tsc_hz_ * 1'000'000 / tsc_hz_;
}

bool NetIf::send_frame(void* ctx, const uint8_t* frame, size_t len) {
    return static_cast<NetIf*>(ctx)->nic_.send(frame, len);
}

void NetIf::on_frame(void* ctx, const uint8_t* frame, size_t len) {
    auto* self = static_cast<NetIf*>(ctx);
    net::VlanMux::Rx rx = self->mux_.handle(frame, len, now());
    if (self->hook_) self->hook_(self->hook_ctx_, rx.info, frame, len);
}

bool NetIf::up(Args& args) {
    net::VlanIf ifs[net::VlanMux::kMaxIfs] = {};
    args.ipv4("ip", true, &ifs[0].ip);
    ifs[0].vid = static_cast<uint16_t>(args.u64("vlan", 0, net::kVidMin, net::kVidMax));
    size_t n = 1 + args.vlan_ifs("vif", ifs + 1, net::VlanMux::kMaxIfs - 1);
    if (args.ok()) {
        net::VlanMux::Error e = net::VlanMux::check(ifs, n);
        if (e != net::VlanMux::Error::ok) args.reject("vif", net::VlanMux::error_name(e));
    }
    size_t index = args.u64("nic", 0, 0, 31);
    bool want_irq = args.choice("mode", kModes, 0) == 0;
    uint64_t refuse = 0;
    if (args.choice("event_idx", kYesNo, 0) == 1) refuse |= VIRTIO_F_RING_EVENT_IDX;
    if (args.choice("mrg_rxbuf", kYesNo, 0) == 1) refuse |= VIRTIO_NET_F_MRG_RXBUF;
    if (!args.ok()) return false;
    return up(ifs, n, index, want_irq, refuse);
}

bool NetIf::up(const net::VlanIf* ifs, size_t n, size_t index, bool want_irq, uint64_t refuse) {
    HypercallResult hz = hc::tsc_hz();
    tsc_hz_ = hz.ok() && hz.value ? hz.value : boot_info().tsc_hz;
    if (tsc_hz_ < 1'000'000) tsc_hz_ = kFallbackTscHz;

    VirtioNet::Options opt;
    opt.interrupts = want_irq;
    opt.features_mask = ~refuse;
    VirtioNet::Error e = nic_.init(index, opt);
    const char* fallback = nullptr;
    if (want_irq && (e == VirtioNet::Error::msix_unavailable || e == VirtioNet::Error::msix_rejected)) {
        // No usable MSI-X or x2APIC: a fresh init (it resets the device) in polling mode.
        fallback = VirtioNet::error_name(e);
        nic_ = VirtioNet{};
        opt.interrupts = false;
        e = nic_.init(index, opt);
    }
    if (e != VirtioNet::Error::ok) {
        Event ev("net.error");
        ev.s("what", VirtioNet::error_name(e));
        if (e == VirtioNet::Error::transport) ev.s("transport", VirtioPci::error_name(nic_.transport_error()));
        ev.x("status", nic_.device_status()).emit();
        return false;
    }
    if (!mux_.init(nic_.mac(), ifs, n, &send_frame, this)) {
        Event("net.error")
            .s("what", "interfaces")
            .s("why", net::VlanMux::error_name(net::VlanMux::check(ifs, n)))
            .emit();
        return false;
    }

    x2apic::TimerMode timer = x2apic::TimerMode::none;
    if (nic_.interrupts()) timer = x2apic::timer_init(tsc_hz_);

    uint64_t link_deadline = now() + ms(kLinkWaitMs);
    while (!nic_.link_up() && now() < link_deadline) pause();

    char mac[net::kMacTextLen], ip_text[net::kIpv4TextLen];
    net::format_mac(nic_.mac(), mac);
    net::format_ipv4(ifs[0].ip, ip_text);
    const pci::Function& f = nic_.function();
    Event ev("net.up");
    ev.s("mac", mac).s("ip", ip_text).u("vlan", ifs[0].vid).s("mode", nic_.interrupts() ? "irq" : "poll");
    if (fallback) ev.s("fallback", fallback);
    ev.b("link", nic_.link_up())
        .b("mac_from_device", nic_.mac_from_device())
        .u("mtu", nic_.mtu())
        .u("rxq", nic_.rx_queue_size())
        .u("txq", nic_.tx_queue_size())
        .b("event_idx", (nic_.features() & VIRTIO_F_RING_EVENT_IDX) != 0)
        .b("mrg_rxbuf", (nic_.features() & VIRTIO_NET_F_MRG_RXBUF) != 0)
        .s("timer", x2apic::timer_mode_name(timer))
        .f("pci", "%02x:%02x.%x", f.addr.bus, f.addr.device, f.addr.function)
        .x("features", nic_.features())
        .u("tsc_hz", tsc_hz_)
        .emit();
    for (size_t i = 1; i < n; ++i) {
        net::format_ipv4(ifs[i].ip, ip_text);
        Event("net.vif").u("index", i).u("vlan", ifs[i].vid).s("ip", ip_text).emit();
    }
    return true;
}

size_t NetIf::poll(RxHook hook, void* ctx, size_t budget) {
    hook_ = hook;
    hook_ctx_ = ctx;
    size_t n = nic_.poll(&on_frame, this, budget);
    hook_ = nullptr;
    hook_ctx_ = nullptr;
    return n;
}

void NetIf::idle(uint64_t deadline) {
    if (!nic_.interrupts()) {
        pause();
        return;
    }
    // Interrupts stay off outside this window, so handlers never race the
    // main loop. Arm first, then check: a frame that arrived before arming is
    // reported by arm_rx_interrupt() itself (§2.7.10 race).
    irq_disable();
    if (nic_.arm_rx_interrupt()) return;
    // A short wait is spun: halting costs a VM exit and a timer wake-up
    // whose latency can exceed the gap (trafgen at a fixed rate).
    uint64_t t = now();
    if (t >= deadline || deadline - t < us(kSpinUs)) {
        pause();
        return;
    }
    if (x2apic::timer_arm(deadline)) {
        wait_for_interrupt();
    } else {
        irq_window();  // no timer: never sleep without a wake-up source
        pause();
    }
}

bool NetIf::resolve(net::Ipv4Addr ip, uint64_t timeout_ms, net::MacAddr* out, RxHook hook, void* ctx) {
    net::Stack& st = mux_.stack(mux_.route(ip));
    uint64_t end = now() + ms(timeout_ms);
    while (now() < end) {
        if (st.resolve(ip, out)) return true;
        st.send_arp_request(ip);
        uint64_t retry = now() + ms(kArpRetryMs);
        if (retry > end) retry = end;
        while (now() < retry) {
            poll(hook, ctx);
            if (st.resolve(ip, out)) return true;
            idle(retry);
        }
    }
    return st.resolve(ip, out);
}

bool NetIf::drain_tx(uint64_t timeout_ms) {
    uint64_t end = now() + ms(timeout_ms);
    for (;;) {
        nic_.reclaim_tx();
        if (nic_.tx_in_flight() == 0) return true;
        if (now() >= end || nic_.broken()) return false;
        poll();
        pause();
    }
}

void NetIf::print_counters(const char* event) {
    const VirtioNetCounters& c = nic_.counters();
    net::StackCounters s = {};
    bool vlans = mux_.count() > 1 || mux_.vid(0) != 0;
    for (size_t i = 0; i < mux_.count(); ++i) {
        const net::StackCounters& one = mux_.stack(i).counters();
        s.rx_frames += one.rx_frames;
        s.rx_malformed += one.rx_malformed;
        s.rx_not_for_us += one.rx_not_for_us;
        s.arp_answered += one.arp_answered;
        s.icmp_answered += one.icmp_answered;
        s.udp_echoed += one.udp_echoed;
        s.tx_frames += one.tx_frames;
        s.tx_failed += one.tx_failed;
    }
    const net::VlanMuxCounters& m = mux_.counters();
    Event(event)
        .u("tx", c.tx)
        .u("tx_bytes", c.tx_bytes)
        .u("tx_full", c.tx_full)
        .u("tx_kicks", c.tx_kicks)
        .u("rx", c.rx)
        .u("rx_bytes", c.rx_bytes)
        .u("rx_dropped", c.rx_dropped)
        .u("rx_kicks", c.rx_kicks)
        .u("interrupts", c.interrupts)
        .u("rx_interrupts", c.rx_interrupts)
        .u("tx_interrupts", c.tx_interrupts)
        .u("config_interrupts", c.config_interrupts)
        .u("timer_interrupts", x2apic::timer_interrupts())
        .u("all_interrupts", irq_total())
        .u("bad_used", c.bad_used)
        .u("arp_answered", s.arp_answered)
        .u("icmp_answered", s.icmp_answered)
        .u("udp_echoed", s.udp_echoed)
        .u("rx_malformed", s.rx_malformed + m.rx_malformed)
        .u("rx_not_for_us", s.rx_not_for_us)
        .u("stack_tx_failed", s.tx_failed)
        .emit();
    if (!vlans) return;
    // Lines of their own: the hypervisor splits console lines past 320 characters.
    Event("net.vlans")
        .u("interfaces", mux_.count())
        .u("rx_vlan_dropped", m.rx_vlan_dropped)
        .u("tx_too_long", m.tx_too_long)
        .emit();
    for (size_t i = 0; i < mux_.count(); ++i) {
        const net::Stack& st = mux_.stack(i);
        const net::StackCounters& one = st.counters();
        char ip_text[net::kIpv4TextLen];
        net::format_ipv4(st.ip(), ip_text);
        Event("net.if")
            .u("index", i)
            .u("vlan", mux_.vid(i))
            .s("ip", ip_text)
            .u("rx", one.rx_frames)
            .u("tx", one.tx_frames)
            .u("tx_failed", one.tx_failed)
            .u("rx_malformed", one.rx_malformed)
            .u("rx_not_for_us", one.rx_not_for_us)
            .u("arp_answered", one.arp_answered)
            .u("icmp_answered", one.icmp_answered)
            .emit();
    }
}

bool NetIf::check_needs_reset() {
    if (reset_reported_) return true;
    uint64_t t = now();
    uint64_t config_irqs = nic_.counters().config_interrupts;
    bool ask = config_irqs != config_irqs_seen_ || t - status_checked_at_ >= ms(kStatusCheckMs);
    if (!nic_.broken() && !ask) return false;
    config_irqs_seen_ = config_irqs;
    status_checked_at_ = t;
    if (!nic_.needs_reset()) return false;
    if (!reset_reported_) {
        reset_reported_ = true;
        uint8_t status = nic_.device_status();
        Event("net.needs_reset")
            .x("status", status)
            .b("status_bit", (status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) != 0)
            .b("ring_broken", nic_.broken())
            .emit();
    }
    return true;
}

}  // namespace hvg
