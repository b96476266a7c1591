#pragma once
// A virtio 1.x network driver (virtio 1.2 §5.1) on the modern virtio-pci
// transport: PCI vendor 0x1AF4, device 0x1041. One receive queue (0) and one
// transmit queue (1), split rings in guest RAM, one buffer per descriptor:
// each RX buffer (2 KiB) and TX buffer holds the 12-byte virtio_net_hdr
// followed by the frame. EVENT_IDX and MRG_RXBUF are used when the device
// offers them and not needed otherwise. Completion is found by polling, or
// with MSI-X interrupts through the guest's x2APIC (Options::interrupts).
//
// One instance per guest (its rings and buffers are static storage).

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/addr.hpp"
#include "guests/runtime/split_queue.hpp"
#include "guests/runtime/virtio_pci.hpp"

namespace hvg {

// §5.1.3 feature bits (device-specific) and §6 reserved ones.
inline constexpr uint64_t VIRTIO_NET_F_MTU = 1ull << 3;
inline constexpr uint64_t VIRTIO_NET_F_MAC = 1ull << 5;
inline constexpr uint64_t VIRTIO_NET_F_MRG_RXBUF = 1ull << 15;
inline constexpr uint64_t VIRTIO_NET_F_STATUS = 1ull << 16;
inline constexpr uint64_t VIRTIO_F_RING_EVENT_IDX = 1ull << 29;
inline constexpr uint64_t VIRTIO_F_VERSION_1 = 1ull << 32;
inline constexpr uint64_t VIRTIO_F_ACCESS_PLATFORM = 1ull << 33;
inline constexpr uint64_t VIRTIO_F_ORDER_PLATFORM = 1ull << 36;

// §5.1.4 struct virtio_net_config (the fields this driver reads).
inline constexpr uint32_t kVirtioNetCfgMac = 0;     // u8[6], valid with VIRTIO_NET_F_MAC
inline constexpr uint32_t kVirtioNetCfgStatus = 6;  // le16, valid with VIRTIO_NET_F_STATUS
inline constexpr uint32_t kVirtioNetCfgMtu = 10;    // le16, valid with VIRTIO_NET_F_MTU
inline constexpr uint16_t VIRTIO_NET_S_LINK_UP = 1;

// §5.1.6 struct virtio_net_hdr. With VERSION_1 it is always 12 bytes:
// num_buffers is present whether or not MRG_RXBUF is negotiated.
struct VirtioNetHdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};
static_assert(sizeof(VirtioNetHdr) == 12);
static_assert(offsetof(VirtioNetHdr, num_buffers) == 10);
inline constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;

inline constexpr uint16_t kVirtioNetDeviceId = kVirtioPciDeviceBase + 1;  // §5.1.1: network card = 1
inline constexpr uint16_t kVirtioNetRxQueue = 0;
inline constexpr uint16_t kVirtioNetTxQueue = 1;

struct VirtioNetCounters {
    uint64_t tx;  // frames handed to the device
    uint64_t tx_bytes;
    uint64_t tx_full;   // send() found no free TX buffer
    uint64_t tx_kicks;  // notifications written (VM exits under a hypervisor)
    uint64_t rx;        // frames delivered to the caller
    uint64_t rx_bytes;
    uint64_t rx_dropped;  // used RX buffers that held no valid frame (length, num_buffers)
    uint64_t rx_kicks;
    uint64_t interrupts;  // MSI-X interrupts taken, all vectors
    uint64_t rx_interrupts;
    uint64_t tx_interrupts;
    uint64_t config_interrupts;
    uint64_t bad_used;  // used elements naming a buffer the device did not own
};

class VirtioNet {
  public:
    static constexpr uint16_t kMaxQueueSize = SplitQueue::kMaxSize;  // 256
    static constexpr uint32_t kBufferSize = 2048;
    static constexpr uint32_t kHdrLen = sizeof(VirtioNetHdr);
    // The largest untagged frame send() takes: the 1500-byte MTU (or the
    // device's smaller one) plus the Ethernet header; a tagged one may be 4
    // bytes longer.
    static constexpr uint32_t kMaxFrame = 1514;

    struct Options {
        bool interrupts = false;  // MSI-X; polling when false
        uint16_t max_queue_size = kMaxQueueSize;
        uint64_t features_mask = ~0ull;  // features the caller allows (tests)
    };

    enum class Error : uint8_t {
        ok,
        no_device,  // no 1af4:1041 function with that index on bus 0
        transport,  // VirtioPci::probe failed (see transport_error())
        reset_timeout,
        no_version_1,      // a legacy-only device (§3.1.1: FAILED is set)
        features_not_ok,   // FEATURES_OK did not stick (§3.1.1 step 6)
        no_queues,         // fewer than 2 queues, or queue size 0
        bad_queue,         // notify address outside the notify structure
        msix_unavailable,  // interrupts asked for, no usable MSI-X / x2APIC
        msix_rejected,     // the device answered NO_VECTOR (§4.1.5.1.2)
        needs_reset,       // DEVICE_NEEDS_RESET right after DRIVER_OK
        already_initialised,
    };
    static const char* error_name(Error e);

    // Probes the `index`-th virtio-net PCI function and brings it up
    // (§3.1.1). On failure with interrupts requested and MSI-X unusable, the
    // caller may retry with polling.
    Error init(size_t index, const Options& opt);
    VirtioPci::Error transport_error() const { return transport_error_; }

    const net::MacAddr& mac() const { return mac_; }
    bool mac_from_device() const { return (features_ & VIRTIO_NET_F_MAC) != 0; }
    uint64_t features() const { return features_; }
    uint64_t offered_features() const { return offered_; }
    uint16_t mtu() const { return mtu_; }
    uint16_t rx_queue_size() const { return rx_.size(); }
    uint16_t tx_queue_size() const { return tx_.size(); }
    bool interrupts() const { return interrupts_; }
    const pci::Function& function() const { return pci_.function(); }
    // Link state from the config space (§5.1.4); always up without STATUS.
    bool link_up() const;

    // Copies the frame (14..kMaxFrame bytes, 4 more with an 802.1Q tag) into a free TX buffer behind a
    // zeroed header and offers it; notifies the device if it asks (EVENT_IDX).
    // False when every TX buffer is still owned by the device (tx_full), the
    // length is bad, or the device needs a reset.
    // `more`: another frame follows at once, so the device is not notified
    // yet (the next send without `more`, or flush_tx(), publishes the whole
    // batch and notifies once if the device asked for it, §2.7.13).
    bool send(const void* frame, size_t len, bool more = false);
    void flush_tx();
    // Frees TX buffers the device has used. send() calls it too.
    void reclaim_tx();
    // TX buffers the device has not given back yet.
    uint16_t tx_in_flight() const { return tx_.in_flight(); }

    // Delivers up to `budget` received frames to fn(ctx, frame, len) (the
    // frame without the virtio header, valid only during the call), then
    // re-offers their buffers. Returns the number delivered.
    using RxFn = void (*)(void* ctx, const uint8_t* frame, size_t len);
    size_t poll(RxFn fn, void* ctx, size_t budget = 64);
    // One frame copied to buf (truncated to cap); 0 when none is waiting.
    size_t receive(uint8_t* buf, size_t cap);
    bool rx_pending() const { return rx_.has_used(); }

    // Interrupt mode: asks for an RX interrupt at the next used buffer.
    // Returns true when frames are already waiting (do not halt then).
    bool arm_rx_interrupt();

    uint8_t device_status() const { return pci_.status(); }
    // DEVICE_NEEDS_RESET (§2.1.2) seen in the status register (one MMIO
    // read: a VM exit); once seen the driver stops using the device.
    bool needs_reset();
    // What the driver already knows without asking the device: a status
    // read saw DEVICE_NEEDS_RESET, or a ring index was impossible.
    bool broken() const { return broken_ || rx_.device_broken() || tx_.device_broken(); }
    const VirtioNetCounters& counters() const { return counters_; }

    // For the hostile test guest only: the TX ring and a raw notification.
    SplitQueue& raw_tx_queue() { return tx_; }
    void raw_notify_tx() { VirtioPci::notify(tx_notify_, kVirtioNetTxQueue); }

  private:
    Error setup_queue(uint16_t q, SplitQueue& sq, void* desc, void* avail, void* used, uint16_t vector);
    Error setup_msix();
    void read_config();
    void post_rx(uint16_t id);
    void kick_rx();
    static void on_interrupt(void* ctx, uint8_t vector);

    VirtioPci pci_;
    VirtioPci::Error transport_error_ = VirtioPci::Error::ok;
    bool initialised_ = false;
    bool broken_ = false;
    bool interrupts_ = false;
    uint64_t offered_ = 0;
    uint64_t features_ = 0;
    net::MacAddr mac_ = {};
    uint16_t mtu_ = 1500;
    uint16_t max_queue_size_ = kMaxQueueSize;
    SplitQueue rx_;
    SplitQueue tx_;
    uint64_t rx_notify_ = 0;
    uint64_t tx_notify_ = 0;
    uint16_t tx_free_[kMaxQueueSize] = {};
    uint16_t tx_free_count_ = 0;
    uint16_t entry_rx_ = 1;  // MSI-X table entries of the queues
    uint16_t entry_tx_ = 2;
    uint8_t vec_config_ = 0;  // IDT vectors, 0 = none
    uint8_t vec_rx_ = 0;
    uint8_t vec_tx_ = 0;
    VirtioNetCounters counters_ = {};
};

}  // namespace hvg
