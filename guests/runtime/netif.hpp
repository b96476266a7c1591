#pragma once
// What every network test guest does: read the common args, bring the
// virtio-net device up, run the IPv4 stack (net/stack.hpp) over it, keep TSC
// time, sleep until a frame or a deadline, and print counter lines.
//
// Common args (docs/guest-net.md): ip=A.B.C.D (required), vlan=N (1..4094:
// that interface sends frames tagged N and takes only those; default
// untagged), vif=VID:A.B.C.D,... (up to three more interfaces on the same
// NIC, one per VLAN, VID 0 for untagged), nic=N (which virtio-net function,
// default 0), mode=irq|poll (default irq; irq falls back to poll when MSI-X or
// the x2APIC is missing, and says so), event_idx=no and mrg_rxbuf=no (do not
// negotiate those features even if offered).
//
// Lines: guest.net.up, guest.net.vif (one per extra interface),
// guest.net.error, guest.net.needs_reset, and the counter line the guest
// names (print_counters), followed by guest.net.vlans and guest.net.if lines
// when there are VLANs.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/args.hpp"
#include "guests/runtime/net/stack.hpp"
#include "guests/runtime/net/vlan_mux.hpp"
#include "guests/runtime/virtio_net.hpp"

namespace hvg {

class NetIf {
  public:
    // Called for every received frame after the stack has handled it.
    using RxHook = void (*)(void* ctx, const net::RxInfo& info, const uint8_t* frame, size_t len);

    // Parses ip=, vlan=, vif=, nic=, mode=, event_idx=, mrg_rxbuf= from
    // `args` (errors stay in args) and brings the link up: guest.net.up, or
    // guest.net.error and false.
    bool up(Args& args);
    // The same with the values already parsed; `refuse` holds feature bits
    // not to negotiate even when offered (to exercise the device without
    // them). ifs[0] is the first interface; VlanMux::check() must accept them.
    bool up(const net::VlanIf* ifs, size_t n, size_t nic_index, bool interrupts, uint64_t refuse = 0);
    bool up(net::Ipv4Addr ip, size_t nic_index, bool interrupts, uint64_t refuse = 0) {
        net::VlanIf one{0, ip};
        return up(&one, 1, nic_index, interrupts, refuse);
    }

    // The first interface (ip=, vlan=); stack(i) and vid(i) for each of mux().count().
    net::Stack& stack() { return mux_.stack(0); }
    net::Stack& stack(size_t i) { return mux_.stack(i); }
    net::VlanMux& mux() { return mux_; }
    VirtioNet& nic() { return nic_; }
    net::Ipv4Addr ip() const { return mux_.stack(0).ip(); }
    const net::MacAddr& mac() const { return nic_.mac(); }

    // TSC time. tsc_hz() comes from the tsc_hz hypercall (BootInfo otherwise).
    static uint64_t now();
    uint64_t tsc_hz() const { return tsc_hz_; }
    uint64_t ms(uint64_t n) const { return n * (tsc_hz_ / 1000); }
    uint64_t us(uint64_t n) const { return n * (tsc_hz_ / 1'000'000 ? tsc_hz_ / 1'000'000 : 1); }
    uint64_t ticks_to_us(uint64_t ticks) const;

    // Runs received frames through the stack (answers go out at once), then
    // through `hook`. Returns the number of frames.
    size_t poll(RxHook hook = nullptr, void* ctx = nullptr, size_t budget = 64);
    // Waits until a frame may be waiting or `deadline` (TSC) has passed:
    // interrupt mode arms the RX interrupt and the APIC timer and halts;
    // polling mode returns at once (the caller's loop spins).
    void idle(uint64_t deadline);

    // Resolves `ip` by ARP on the interface that reaches it (VlanMux::route):
    // a request every 100 ms until the answer, at most timeout_ms. Frames
    // arriving meanwhile go through the stacks and `hook`.
    bool resolve(net::Ipv4Addr ip, uint64_t timeout_ms, net::MacAddr* out, RxHook hook = nullptr, void* ctx = nullptr);

    // Waits (bounded) until the device has taken every frame sent so far:
    // a guest that exits right after sending would otherwise stop before the
    // device has read its last frames. False on timeout.
    bool drain_tx(uint64_t timeout_ms);

    // guest.<event> with the driver's counters and the stacks' summed; with
    // VLANs, then guest.net.vlans and one guest.net.if line per interface.
    void print_counters(const char* event);
    // Prints guest.net.needs_reset once when the device asks for a reset.
    // Reading the status costs a VM exit, so the device is asked only after
    // a configuration interrupt or every 100 ms; a broken ring is noticed at once.
    bool check_needs_reset();

  private:
    static bool send_frame(void* ctx, const uint8_t* frame, size_t len);
    static void on_frame(void* ctx, const uint8_t* frame, size_t len);

    VirtioNet nic_;
    net::VlanMux mux_;
    uint64_t tsc_hz_ = 0;
    bool reset_reported_ = false;
    uint64_t status_checked_at_ = 0;
    uint64_t config_irqs_seen_ = 0;
    RxHook hook_ = nullptr;
    void* hook_ctx_ = nullptr;
};

// Prints `guest.args_error key=.. what=..` when args has a problem; returns ok().
bool report_args(const Args& args);

}  // namespace hvg
