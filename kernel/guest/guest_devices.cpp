// Glue between a guest's vCPUs and its virtual devices: the PCI bus with a
// virtio-net function per port, the switch behind the ports, and MSI-X
// messages into the guest's virtual x2APICs. The devices themselves are pure
// code (kernel/vdev, kernel/virtio, kernel/net); this file owns their storage,
// wires them together and prints what they count.

#include "kernel/guest/guest_devices.hpp"

#include <new>

#include "kernel/cpu/x86.hpp"
#include "kernel/guest/guest.hpp"
#include "kernel/lib/base64.hpp"
#include "kernel/lib/format.hpp"
#include "kernel/log.hpp"
#include "kernel/mm/kernel_memory.hpp"
#include "kernel/net/switch.hpp"
#include "kernel/net/tx_batch.hpp"
#include "kernel/vdev/msi.hpp"
#include "kernel/vdev/msi_sink.hpp"
#include "kernel/vdev/pci_bus.hpp"
#include "kernel/virtio/virtio_net.hpp"
#include "kernel/virtio/virtio_pci.hpp"

namespace hv::guest {

namespace {

constinit net::Switch g_switch;
constinit uint64_t g_tsc_hz = 0;
constinit uint64_t g_ns_per_tsc_q32 = 0;  // ns per TSC tick, 32.32 fixed point
constinit const config::Config* g_config = nullptr;

// TSC to nanoseconds for the switch's clock (ageing, rate limits, pcap
// timestamps), with one multiply: no division on the data path.
uint64_t now_ns() {
    uint64_t tsc = x86::rdtsc();
    return static_cast<uint64_t>((static_cast<unsigned __int128>(tsc) * g_ns_per_tsc_q32) >> 32);
}

// MSI-X messages of the guest's devices, decoded as the x2APIC bus would
// (SDM Vol. 3A §11.11) and accepted by the target vCPUs' APICs.
class MsiRouter final : public vdev::MsiSink {
  public:
    explicit MsiRouter(Guest& g) : g_(g) {}
    void send_msi(uint64_t address, uint32_t data) override {
        auto m = vdev::decode_msi(address, data);
        if (!m) {
            __atomic_fetch_add(&bad_, 1, __ATOMIC_RELAXED);
            return;
        }
        for (uint32_t i = 0; i < g_.vcpu_count; ++i) {
            Vcpu& v = g_.vcpus[i];
            if (!vdev::msi_targets(*m, v.index)) continue;
            if (m->delivery == vdev::MsiDelivery::nmi)
                (void)send_nmi(v);
            else if (v.lapic.accept_interrupt(m->vector, m->level_triggered))
                kick(v);  // the next entry delivers it
        }
    }
    uint64_t bad() const { return __atomic_load_n(&bad_, __ATOMIC_RELAXED); }

  private:
    Guest& g_;
    uint64_t bad_ = 0;
};

// One configured port: the virtio-net device, its PCI transport and its side
// of the switch. The guest's TX processing (its own vCPU, under the device's
// TX lock) runs the switch for each frame; one batch per notification.
class PortDevice final : public virtio::TxHandler {
  public:
    PortDevice(const uint8_t (&mac)[6], vdev::MsiSink* msi) : net_(mac, this), pci_(net_, msi), batch_(g_switch) {}

    void transmit(const net::FrameView& frame) override {
        if (!in_batch_) {
            batch_now_ = now_ns();
            in_batch_ = true;
        }
        batch_.forward(port_, frame, batch_now_);
    }
    void transmit_done() override {
        batch_.finish();
        in_batch_ = false;
    }

    virtio::VirtioNet net_;
    virtio::VirtioPci pci_;
    net::TxBatch batch_;
    net::PortId port_ = net::kNoPort;
    bool in_batch_ = false;
    uint64_t batch_now_ = 0;
};

}  // namespace

struct GuestDevices {
    explicit GuestDevices(Guest& g)
        : bus(config::kPciWindowStart, config::kPciWindowEnd - config::kPciWindowStart), msi(g) {}
    vdev::PciBus bus;
    MsiRouter msi;
    PortDevice* ports[config::kMaxPortsPerGuest] = {};
    size_t port_count = 0;
    alignas(PortDevice) unsigned char port_storage[config::kMaxPortsPerGuest][sizeof(PortDevice)];
};

namespace {

alignas(GuestDevices) constinit unsigned char g_device_storage[config::kMaxGuests][sizeof(GuestDevices)];
constinit uint8_t* g_mirror_buf[config::kMaxMirrors] = {};

net::MirrorDir mirror_dir(config::MirrorDirection d) {
    // "rx" in the configuration is what the switch receives on the port: its ingress.
    switch (d) {
        case config::MirrorDirection::rx: return net::MirrorDir::ingress;
        case config::MirrorDirection::tx: return net::MirrorDir::egress;
        case config::MirrorDirection::both: break;
    }
    return net::MirrorDir::both;
}

net::PortConfig switch_port(const Guest& g, const config::PortConfig& p) {
    net::PortConfig c;
    format(c.name, sizeof c.name, "%s.%s", g.cfg.name, p.name);
    c.has_static_mac = p.anti_spoof;
    for (size_t i = 0; i < 6; ++i) c.static_mac.b[i] = p.mac[i];
    c.vlan_mode = p.vlan_mode == config::VlanMode::trunk ? net::VlanMode::trunk : net::VlanMode::access;
    c.access_vlan = p.vlan_mode == config::VlanMode::access ? p.vlan : 1;
    for (uint16_t v = 1; v < 4095; ++v)
        if (p.carries(v)) c.allowed.add(v);
    c.native_vlan = p.native_vlan;
    c.protected_port = p.is_protected;
    c.rate_bytes_per_sec = p.rate_bits_per_sec / 8;
    c.burst_bytes = static_cast<uint32_t>(p.burst_bytes);
    c.max_macs = p.max_macs;
    for (size_t m = 0; m < config::kMaxMirrors; ++m)
        if (p.mirror_mask & (1u << m)) c.mirror[m] = mirror_dir(p.mirror_direction);
    return c;
}

}  // namespace

Result<void> init_switch(const config::Config& cfg, uint64_t tsc_hz) {
    g_config = &cfg;
    g_tsc_hz = tsc_hz ? tsc_hz : 1'000'000'000ull;
    g_ns_per_tsc_q32 = (1'000'000'000ull << 32) / g_tsc_hz;
    // A secret hash seed: a guest cannot aim its made-up source MACs at one bucket.
    TRY(g_switch.set_hash_seed(x86::rdtsc() * 0x9E3779B97F4A7C15ull));
    g_switch.set_ageing_ns(static_cast<uint64_t>(cfg.switch_config.mac_ageing_s) * 1'000'000'000ull);
    // Any other size than the table built into the switch gets frames of
    // its own, once, before the first port (the parser allowed only sizes
    // the table takes).
    static_assert(config::kMinFdbSize == net::Fdb::kMinCapacity && config::kMaxFdbSize == net::Fdb::kMaxCapacity);
    static_assert(config::kDefaultFdbSize == net::Fdb::kDefaultCapacity);
    if (uint32_t entries = cfg.switch_config.fdb_size; entries != net::Fdb::kDefaultCapacity) {
        size_t bytes = net::Fdb::storage_bytes(entries);
        auto phys = mm::alloc_frames((bytes + 4095) / 4096);
        if (phys)
            TRY(g_switch.set_fdb_storage(mm::phys_to_virt(*phys), bytes, entries));
        else  // said loudly; switch.start then shows the size in use
            log::error("switch", "fdb_size %u: no memory for its %zu-byte table; the built-in %zu entries are used",
                       entries, bytes, net::Fdb::kDefaultCapacity);
    }
    for (size_t m = 0; m < cfg.mirror_count; ++m) {
        const config::MirrorConfig& mc = cfg.mirrors[m];
        if (!mc.valid) continue;
        auto phys = mm::alloc_frames(mc.buffer_bytes / 4096);
        if (!phys) {
            log::error("switch", "mirror %s: no memory for its %llu-byte buffer", mc.name,
                       static_cast<unsigned long long>(mc.buffer_bytes));
            continue;
        }
        g_mirror_buf[m] = static_cast<uint8_t*>(mm::phys_to_virt(*phys));
        TRY(g_switch.start_mirror(static_cast<uint8_t>(m), g_mirror_buf[m], mc.buffer_bytes, mc.snaplen));
        Line l("switch.mirror");
        l.s("mirror", mc.name).u("buffer", mc.buffer_bytes).u("snaplen", mc.snaplen);
        log::emit(l);
    }
    Line l("switch.start");
    l.u("mac_ageing_s", cfg.switch_config.mac_ageing_s).u("fdb_entries", g_switch.fdb().capacity())
        .u("mirrors", cfg.mirror_count);
    log::emit(l);
    return {};
}

Result<void> create_devices(Guest& g) {
    auto* d = new (g_device_storage[g.id]) GuestDevices(g);
    g.devices = d;
    for (size_t i = 0; i < g.cfg.port_count; ++i) {
        const config::PortConfig& p = g.cfg.ports[i];
        auto* port = new (d->port_storage[i]) PortDevice(p.mac, &d->msi);
        port->net_.attach(g.mem, &port->pci_);
        TRY(d->bus.attach(static_cast<unsigned>(1 + i), port->pci_));
        port->port_ = TRY(g_switch.add_port(switch_port(g, p), &port->net_));
        d->ports[d->port_count++] = port;
        vdev::PciDecodedRange r[2];
        size_t n = d->bus.decoded_ranges(r, 2);
        Line l("port.start");
        l.s("guest", g.cfg.name).s("port", p.name).u("id", port->port_).u("pci_slot", 1 + i);
        char mac[24];
        config::format_mac(p.mac, mac, sizeof mac);
        l.s("mac", mac).s("vlan_mode", config::vlan_mode_name(p.vlan_mode));
        for (size_t k = 0; k < n; ++k)
            if (r[k].slot == 1 + i) l.x("bar0", r[k].base);
        log::emit(l);
    }
    return {};
}

void devices_stopped(Guest& g) {
    GuestDevices* d = g.devices;
    if (!d) return;
    // Off the switch first, so no sender starts a new delivery; the bus reset
    // then stops each device under its locks (no delivery still inside it).
    for (size_t i = 0; i < d->port_count; ++i) (void)g_switch.set_port_up(d->ports[i]->port_, false);
    d->bus.reset();
}

void devices_starting(Guest& g) {
    GuestDevices* d = g.devices;
    if (!d) return;
    for (size_t i = 0; i < d->port_count; ++i) (void)g_switch.set_port_up(d->ports[i]->port_, true);
}

bool device_io(Guest& g, uint16_t port, uint8_t size, bool in, uint32_t* value) {
    GuestDevices* d = g.devices;
    if (!d || !vdev::PciBus::handles_port(port)) return false;
    if (in) *value = d->bus.io_read(port, size);
    else d->bus.io_write(port, size, *value);
    return true;
}

bool device_claims(const Guest& g, uint64_t gpa) { return g.devices && g.devices->bus.decodes(gpa); }

uint64_t device_mmio_read(Guest& g, uint64_t gpa, uint8_t size) {
    uint64_t v = ~0ull;
    if (g.devices) (void)g.devices->bus.mmio_read(gpa, size, &v);
    return v;
}

void device_mmio_write(Guest& g, uint64_t gpa, uint8_t size, uint64_t value) {
    if (g.devices) (void)g.devices->bus.mmio_write(gpa, size, value);
}

void report_ports(const Guest& g) {
    const GuestDevices* d = g.devices;
    if (!d) return;
    for (size_t i = 0; i < d->port_count; ++i) {
        const PortDevice& p = *d->ports[i];
        auto c = g_switch.counters(p.port_);
        if (!c) continue;
        virtio::VirtioNetCounters n = p.net_.counters();
        Line l("port.stats");
        l.s("guest", g.cfg.name).s("port", g.cfg.ports[i].name).u("rx_packets", c->rx_packets)
            .u("rx_bytes", c->rx_bytes).u("tx_packets", c->tx_packets).u("tx_bytes", c->tx_bytes);
        for (size_t r = 0; r < net::kDropReasonCount; ++r)
            l.u(net::drop_reason_name(static_cast<net::DropReason>(r)), c->drops[r]);
        l.u("floods", c->floods).u("macs", g_switch.learned_macs(p.port_, now_ns()))
            .u("guest_kicks", n.notifications_received).u("interrupts", n.interrupts_sent)
            .u("tx_malformed", n.tx_malformed).u("bad_msi", d->msi.bad()).x("status", p.net_.status());
        // Times the guest's device was marked broken, by reason (kept across
        // resets, so a guest that recovered still shows what it did).
        for (size_t r = 1; r < static_cast<size_t>(virtio::BrokenReason::count); ++r) {
            auto reason = static_cast<virtio::BrokenReason>(r);
            if (uint64_t times = p.net_.broken_count(reason)) l.u(virtio::broken_reason_name(reason), times);
        }
        log::emit(l);
    }
}

void report_switch() {
    if (!g_config) return;
    net::SwitchStats s = g_switch.stats(now_ns());
    Line l("switch.stats");
    l.u("ports", s.ports).u("floods", s.floods).u("fdb_entries", s.fdb_entries).u("fdb_capacity", s.fdb_capacity)
        .u("fdb_learned", s.fdb_learned)
        .u("fdb_moved", s.fdb_moved).u("fdb_full", s.fdb_full);
    log::emit(l);
}

// Each capture as a pcap file on the console (tools/hv_pcap.py rebuilds it).
void report_switch_captures() {
    if (!g_config) return;
    for (size_t m = 0; m < g_config->mirror_count; ++m) {
        if (!g_mirror_buf[m]) continue;
        const char* name = g_config->mirrors[m].name;
        auto st = g_switch.mirror_stats(static_cast<uint8_t>(m));
        auto file = g_switch.mirror_file(static_cast<uint8_t>(m));
        if (!st || !file) continue;
        Line b("pcap.begin");
        b.s("mirror", name).u("bytes", file->len).u("records", st->records).u("dropped", st->dropped)
            .u("truncated", st->truncated);
        log::emit(b);
        constexpr size_t kChunk = 225;  // 300 base64 characters per line
        for (size_t off = 0; off < file->len; off += kChunk) {
            size_t n = file->len - off < kChunk ? file->len - off : kChunk;
            char text[base64_length(kChunk) + 1];
            base64_encode(file->data + off, n, text, sizeof text);
            Line dl("pcap.data");
            dl.s("mirror", name).u("offset", off).s("b64", text);
            log::emit(dl);
        }
        Line e("pcap.end");
        e.s("mirror", name).u("bytes", file->len);
        log::emit(e);
    }
}

}  // namespace hv::guest
