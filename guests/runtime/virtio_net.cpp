#include "guests/runtime/virtio_net.hpp"

#include "guests/runtime/interrupt.hpp"
#include "guests/runtime/net/vlan.hpp"
#include "guests/runtime/net/wire.hpp"
#include "guests/runtime/runtime.hpp"
#include "guests/runtime/x2apic.hpp"
#include "kernel/lib/bytes.hpp"

namespace hvg {

namespace {

constexpr uint16_t kN = VirtioNet::kMaxQueueSize;
// Reads of device_status after a reset before giving up (§4.1.4.3.2 asks the
// driver to wait for 0; a device emulation answers at once).
constexpr uint32_t kResetPolls = 1'000'000;
// §2.5.1: re-read device configuration while config_generation changes; a
// device that changes it forever gets the last read.
constexpr int kConfigGenerationTries = 8;
constexpr uint16_t kMinMtu = 68;  // RFC 791: every IPv4 link carries 68 bytes

// Rings and buffers, page aligned (§2.7 needs 16/2/4). In .bss: zeroed by the
// runtime before C++ runs, and identity mapped, so an address is its GPA.
struct Storage {
    alignas(4096) VirtqDesc rx_desc[kN];
    alignas(4096) VirtqDesc tx_desc[kN];
    alignas(4096) uint8_t rx_avail[virtq_avail_bytes(kN)];
    alignas(4096) uint8_t tx_avail[virtq_avail_bytes(kN)];
    alignas(4096) uint8_t rx_used[virtq_used_bytes(kN)];
    alignas(4096) uint8_t tx_used[virtq_used_bytes(kN)];
    alignas(4096) uint8_t rx_buf[kN][VirtioNet::kBufferSize];
    alignas(4096) uint8_t tx_buf[kN][VirtioNet::kBufferSize];
};
constinit Storage g_storage = {};

uint64_t gpa_of(const void* p) {
    return reinterpret_cast<uint64_t>(p);
}

uint16_t round_down_pow2(uint16_t n) {
    uint16_t p = 1;
    while (p <= n / 2) p = static_cast<uint16_t>(p * 2);
    return p;
}

// MSI-X table entries this driver uses when the table has room (§4.1.5.1.2
// lets any event use any entry).
constexpr uint16_t kEntryConfig = 0;
constexpr uint16_t kEntryRx = 1;
constexpr uint16_t kEntryTx = 2;

}  // namespace

const char* VirtioNet::error_name(Error e) {
    switch (e) {
        case Error::ok: return "ok";
        case Error::no_device: return "no_device";
        case Error::transport: return "transport";
        case Error::reset_timeout: return "reset_timeout";
        case Error::no_version_1: return "no_version_1";
        case Error::features_not_ok: return "features_not_ok";
        case Error::no_queues: return "no_queues";
        case Error::bad_queue: return "bad_queue";
        case Error::msix_unavailable: return "msix_unavailable";
        case Error::msix_rejected: return "msix_rejected";
        case Error::needs_reset: return "needs_reset";
        case Error::already_initialised: return "already_initialised";
    }
    return "?";
}

void VirtioNet::on_interrupt(void* ctx, uint8_t vector) {
    auto* self = static_cast<VirtioNet*>(ctx);
    ++self->counters_.interrupts;
    if (vector == self->vec_rx_) ++self->counters_.rx_interrupts;
    if (vector == self->vec_tx_) ++self->counters_.tx_interrupts;
    if (vector == self->vec_config_) ++self->counters_.config_interrupts;
}

// MSI-X (PCI 3.0 §6.8.2) aimed at this vCPU's x2APIC. Entry 0 signals
// configuration changes, 1 RX and 2 TX; a smaller table shares entries.
// The function stays masked while its table is written (as Linux does).
VirtioNet::Error VirtioNet::setup_msix() {
    if (x2apic::init() != x2apic::InitError::ok) return Error::msix_unavailable;
    pci::MsixCap cap;
    const pci::Address addr = pci_.function().addr;
    if (!pci::find_msix(addr, &cap)) return Error::msix_unavailable;
    uint16_t entries = cap.table_size < 3 ? cap.table_size : 3;
    uint64_t table =
        pci_.map_bar_range(cap.table_bar, cap.table_offset, uint64_t{cap.table_size} * pci::kMsixEntrySize);
    if (table == 0) return Error::msix_unavailable;
    uint8_t vectors[3] = {};
    for (uint16_t e = 0; e < entries; ++e) {
        vectors[e] = alloc_irq_vector(&on_interrupt, this);
        if (vectors[e] == 0) return Error::msix_unavailable;
    }
    // §4.1.5.1.2: never map an event to an entry beyond the table.
    entry_rx_ = entries > kEntryRx ? kEntryRx : kEntryConfig;
    entry_tx_ = entries > kEntryTx ? kEntryTx : entry_rx_;
    vec_config_ = vectors[kEntryConfig];
    vec_rx_ = vectors[entry_rx_];
    vec_tx_ = vectors[entry_tx_];
    pci::msix_control(addr, cap, true, true);
    for (uint16_t e = 0; e < entries; ++e)
        pci::msix_set_entry(table, e, x2apic::msi_address(x2apic::id()), x2apic::msi_data(vectors[e]));
    pci::msix_control(addr, cap, true, false);
    return Error::ok;
}

void VirtioNet::read_config() {
    if (!(features_ & VIRTIO_NET_F_MAC)) {
        // §5.1.5: without VIRTIO_NET_F_MAC the driver picks its own address:
        // locally administered unicast 02:68:76 ("hv") + the guest id.
        uint32_t id = boot_info().guest_id;
        mac_ = net::MacAddr{{0x02, 0x68, 0x76, static_cast<uint8_t>(id >> 16), static_cast<uint8_t>(id >> 8),
                             static_cast<uint8_t>(id)}};
        return;
    }
    for (int tries = 0; tries < kConfigGenerationTries; ++tries) {
        uint8_t before = pci_.config_generation();
        for (uint32_t k = 0; k < 6; ++k) pci_.device_read8(kVirtioNetCfgMac + k, &mac_.b[k]);
        if (pci_.config_generation() == before) break;
    }
}

bool VirtioNet::link_up() const {
    if (!(features_ & VIRTIO_NET_F_STATUS)) return true;  // §5.1.4: assume up without STATUS
    uint16_t status = 0;
    return pci_.device_read16(kVirtioNetCfgStatus, &status) && (status & VIRTIO_NET_S_LINK_UP);
}

// §4.1.5.1.3 virtqueue configuration.
VirtioNet::Error VirtioNet::setup_queue(uint16_t q, SplitQueue& sq, void* desc, void* avail, void* used,
                                        uint16_t vector) {
    pci_.select_queue(q);
    uint16_t max = pci_.queue_size();
    if (max == 0) return Error::no_queues;  // "not available"
    uint16_t n = max < max_queue_size_ ? max : max_queue_size_;
    // Split rings are a power of two (§2.7); the driver may pick a smaller size.
    n = round_down_pow2(n);
    if (!sq.init(n, (features_ & VIRTIO_F_RING_EVENT_IDX) != 0, desc, avail, used)) return Error::no_queues;
    pci_.set_queue_size(n);
    pci_.set_queue_rings(gpa_of(desc), gpa_of(avail), gpa_of(used));
    if (interrupts_ && pci_.set_queue_vector(vector) != vector) return Error::msix_rejected;
    uint64_t notify = 0;
    if (!pci_.queue_notify_address(&notify)) return Error::bad_queue;
    (q == kVirtioNetRxQueue ? rx_notify_ : tx_notify_) = notify;
    pci_.enable_queue();
    return Error::ok;
}

VirtioNet::Error VirtioNet::init(size_t index, const Options& opt) {
    if (initialised_) return Error::already_initialised;
    pci::Function f;
    if (!pci::find_function(kVirtioPciVendor, kVirtioNetDeviceId, index, &f)) return Error::no_device;
    transport_error_ = pci_.probe(f);
    if (transport_error_ != VirtioPci::Error::ok) return Error::transport;

    // §3.1.1 steps 1-3: reset, ACKNOWLEDGE, DRIVER.
    if (pci_.reset(kResetPolls) != VirtioPci::Error::ok) return Error::reset_timeout;
    pci_.add_status(VIRTIO_STATUS_ACKNOWLEDGE);
    pci_.add_status(VIRTIO_STATUS_DRIVER);

    // Step 4: the feature subset. The device configuration may be read (not
    // written) here: a device MTU our 2 KiB buffers cannot take is refused
    // rather than negotiated (§5.1.6.3.1: with MTU, buffers must hold it).
    offered_ = pci_.device_features();
    if (!(offered_ & VIRTIO_F_VERSION_1)) {
        pci_.add_status(VIRTIO_STATUS_FAILED);
        return Error::no_version_1;
    }
    // ACCESS_PLATFORM and ORDER_PLATFORM are accepted when offered (§6.1
    // "SHOULD accept"): with no IOMMU the platform's addresses are the
    // guest-physical ones this driver uses anyway, and its barriers are the
    // platform's (x86 ordering plus a locked fence, split_queue.cpp).
    uint64_t wanted = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MTU |
                      VIRTIO_NET_F_MRG_RXBUF | VIRTIO_F_RING_EVENT_IDX | VIRTIO_F_ACCESS_PLATFORM |
                      VIRTIO_F_ORDER_PLATFORM;
    features_ = (offered_ & wanted & opt.features_mask) | VIRTIO_F_VERSION_1;
    mtu_ = kMaxFrame - 14;
    if (features_ & VIRTIO_NET_F_MTU) {
        uint16_t m = 0;
        if (pci_.device_read16(kVirtioNetCfgMtu, &m) && m >= kMinMtu && m <= kMaxFrame - 14)
            mtu_ = m;
        else
            features_ &= ~VIRTIO_NET_F_MTU;
    }
    pci_.set_driver_features(features_);

    // Steps 5-6: FEATURES_OK, and check that it stuck.
    pci_.add_status(VIRTIO_STATUS_FEATURES_OK);
    if (!(pci_.status() & VIRTIO_STATUS_FEATURES_OK)) {
        pci_.add_status(VIRTIO_STATUS_FAILED);
        return Error::features_not_ok;
    }

    // Step 7: device-specific setup.
    if (pci_.num_queues() < 2) {
        pci_.add_status(VIRTIO_STATUS_FAILED);
        return Error::no_queues;
    }
    interrupts_ = false;
    max_queue_size_ =
        opt.max_queue_size == 0 || opt.max_queue_size > kMaxQueueSize ? kMaxQueueSize : opt.max_queue_size;
    if (opt.interrupts) {
        Error e = setup_msix();
        if (e != Error::ok) {
            pci_.add_status(VIRTIO_STATUS_FAILED);
            return e;
        }
        interrupts_ = true;
        if (pci_.set_config_vector(kEntryConfig) != kEntryConfig) {
            pci_.add_status(VIRTIO_STATUS_FAILED);
            return Error::msix_rejected;
        }
    }
    read_config();
    Error e = setup_queue(kVirtioNetRxQueue, rx_, g_storage.rx_desc, g_storage.rx_avail, g_storage.rx_used, entry_rx_);
    if (e == Error::ok)
        e = setup_queue(kVirtioNetTxQueue, tx_, g_storage.tx_desc, g_storage.tx_avail, g_storage.tx_used, entry_tx_);
    if (e != Error::ok) {
        pci_.add_status(VIRTIO_STATUS_FAILED);
        return e;
    }
    // Population of the receive queue is part of step 7; the device sees the
    // buffers once DRIVER_OK is set and it is notified.
    for (uint16_t id = 0; id < rx_.size(); ++id) post_rx(id);
    rx_.publish();
    tx_free_count_ = 0;
    for (uint16_t id = tx_.size(); id > 0; --id) tx_free_[tx_free_count_++] = static_cast<uint16_t>(id - 1);
    // RX interrupts are asked for by arm_rx_interrupt() before the guest
    // halts; TX completions are reclaimed on send and never interrupt.
    rx_.disable_notifications();
    tx_.disable_notifications();

    // Step 8: DRIVER_OK; the device is live.
    pci_.add_status(VIRTIO_STATUS_DRIVER_OK);
    initialised_ = true;
    if (needs_reset()) return Error::needs_reset;
    // The first notification may only follow DRIVER_OK (§3.1.1).
    VirtioPci::notify(rx_notify_, kVirtioNetRxQueue);
    ++counters_.rx_kicks;
    return Error::ok;
}

bool VirtioNet::needs_reset() {
    if (!broken_ && initialised_ && (pci_.status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) broken_ = true;
    if (rx_.device_broken() || tx_.device_broken()) broken_ = true;
    return broken_;
}

void VirtioNet::post_rx(uint16_t id) {
    rx_.add(id, gpa_of(g_storage.rx_buf[id]), kBufferSize, true);
}

void VirtioNet::kick_rx() {
    if (rx_.publish()) {
        VirtioPci::notify(rx_notify_, kVirtioNetRxQueue);
        ++counters_.rx_kicks;
    }
}

void VirtioNet::reclaim_tx() {
    uint16_t id = 0;
    uint32_t len = 0;
    bool any = false;
    while (tx_.next_used(&id, &len)) {
        tx_free_[tx_free_count_++] = id;
        any = true;
    }
    // Refresh the "never" used_event as last_used moves (split_queue.cpp).
    if (any) tx_.disable_notifications();
    counters_.bad_used = rx_.bad_used() + tx_.bad_used();
}

void VirtioNet::flush_tx() {
    if (!initialised_ || broken_) return;
    if (tx_.publish()) {
        VirtioPci::notify(tx_notify_, kVirtioNetTxQueue);
        ++counters_.tx_kicks;
    }
}

bool VirtioNet::send(const void* frame, size_t len, bool more) {
    if (!initialised_ || broken_ || len < 14) return false;
    // The MTU counts the payload only: an 802.1Q tag may come on top (as on Linux).
    const auto* bytes = static_cast<const uint8_t*>(frame);
    size_t tag = net::load_be16(bytes + 12) == static_cast<uint16_t>(net::EtherType::vlan) ? net::kVlanTagLen : 0;
    if (len > static_cast<size_t>(mtu_) + 14 + tag) return false;
    if (tx_free_count_ == 0) {
        flush_tx();  // frames held back by `more` must reach the device before it can return buffers
        reclaim_tx();
    }
    if (tx_free_count_ == 0) {
        ++counters_.tx_full;
        if (tx_.device_broken()) broken_ = true;
        return false;
    }
    uint16_t id = tx_free_[--tx_free_count_];
    uint8_t* buf = g_storage.tx_buf[id];
    // §5.1.6.2: no checksum or segmentation offload was negotiated, so flags
    // = 0 and gso_type = GSO_NONE; num_buffers is 0 on transmit.
    __builtin_memset(buf, 0, kHdrLen);
    __builtin_memcpy(buf + kHdrLen, frame, len);
    tx_.add(id, gpa_of(buf), static_cast<uint32_t>(kHdrLen + len), false);
    if (!more) flush_tx();
    ++counters_.tx;
    counters_.tx_bytes += len;
    return true;
}

size_t VirtioNet::poll(RxFn fn, void* ctx, size_t budget) {
    if (!initialised_ || broken_) return 0;
    // NAPI-style: no RX interrupts while we are consuming anyway; the guest
    // re-arms with arm_rx_interrupt() before it halts.
    rx_.disable_notifications();
    size_t delivered = 0;
    uint16_t id = 0;
    uint32_t len = 0;
    while (delivered < budget && rx_.next_used(&id, &len)) {
        const uint8_t* buf = g_storage.rx_buf[id];
        // The device wrote `len` bytes: header + frame, inside our buffer.
        bool ok = len > kHdrLen && len <= kBufferSize;
        if (ok && (features_ & VIRTIO_NET_F_MRG_RXBUF)) {
            // §5.1.6.4: with MRG_RXBUF a packet may span num_buffers buffers.
            // Every frame fits one 2 KiB buffer, so a longer packet is dropped,
            // but its other buffers are still consumed and offered again.
            uint16_t nb = hv::load_u16(buf + offsetof(VirtioNetHdr, num_buffers));
            if (nb != 1) {
                ok = false;
                for (uint16_t k = 1; k < nb; ++k) {
                    uint16_t extra = 0;
                    uint32_t extra_len = 0;
                    if (!rx_.next_used(&extra, &extra_len)) break;
                    post_rx(extra);
                }
            }
        }
        if (ok) {
            fn(ctx, buf + kHdrLen, len - kHdrLen);
            ++counters_.rx;
            counters_.rx_bytes += len - kHdrLen;
            ++delivered;
        } else {
            ++counters_.rx_dropped;
        }
        post_rx(id);
    }
    kick_rx();
    if (rx_.device_broken()) broken_ = true;
    counters_.bad_used = rx_.bad_used() + tx_.bad_used();
    return delivered;
}

size_t VirtioNet::receive(uint8_t* buf, size_t cap) {
    struct Copy {
        uint8_t* buf;
        size_t cap;
        size_t len;
    } c{buf, cap, 0};
    poll(
        [](void* ctx, const uint8_t* frame, size_t len) {
            auto* cp = static_cast<Copy*>(ctx);
            cp->len = len < cp->cap ? len : cp->cap;
            __builtin_memcpy(cp->buf, frame, cp->len);
        },
        &c, 1);
    return c.len;
}

bool VirtioNet::arm_rx_interrupt() {
    if (!initialised_ || broken_) return false;
    return rx_.enable_notifications();
}

}  // namespace hvg
