#pragma once
// The virtio network device (virtio 1.2 §5.1), transport-independent: the
// device core (virtio_device.hpp) handles status, features and queue
// configuration, this class moves frames between the guest's virtqueues and
// the switch. Pure: no hardware, no kernel globals.
//
// One queue pair: receiveq1 (0) and transmitq1 (1). Offered features:
// VERSION_1, MAC, STATUS, MTU (1500), MRG_RXBUF and RING_EVENT_IDX; no
// checksum or segmentation offloads, no control queue, no indirect
// descriptors, so every frame is a plain Ethernet frame of at most 1518 bytes.
//
// Concurrency: the transmit path runs on the guest's own vCPUs (queue_notify,
// poll_tx) under the TX lock; deliver()/flush() run on the sending guest's
// CPU under the RX lock. Lock order: device core -> RX or TX; TX -> another
// device's RX (transmit() reaches the switch). No lock is held while the
// transport is asked to interrupt, nor while mark_broken() runs.

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/spinlock.hpp"
#include "kernel/net/frame.hpp"
#include "kernel/virtio/virtio_device.hpp"
#include "kernel/virtio/virtqueue.hpp"

namespace hv::virtio {

// §5.1.3 feature bits.
inline constexpr uint64_t VIRTIO_NET_F_MTU = 1ull << 3;
inline constexpr uint64_t VIRTIO_NET_F_MAC = 1ull << 5;
inline constexpr uint64_t VIRTIO_NET_F_MRG_RXBUF = 1ull << 15;
inline constexpr uint64_t VIRTIO_NET_F_STATUS = 1ull << 16;

// §5.1.4 status field.
inline constexpr uint16_t VIRTIO_NET_S_LINK_UP = 1;

// §5.1.6 header flags and GSO types.
inline constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
inline constexpr uint8_t VIRTIO_NET_HDR_F_DATA_VALID = 2;
inline constexpr uint8_t VIRTIO_NET_HDR_F_RSC_INFO = 4;
inline constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;

// §5.1.4 struct virtio_net_config (the fields up to mtu; the rest exist only
// with features we do not offer).
struct VirtioNetConfig {
    uint8_t mac[6];
    uint16_t status;
    uint16_t max_virtqueue_pairs;
    uint16_t mtu;
};
static_assert(sizeof(VirtioNetConfig) == 12);
static_assert(offsetof(VirtioNetConfig, status) == 6 && offsetof(VirtioNetConfig, max_virtqueue_pairs) == 8 &&
              offsetof(VirtioNetConfig, mtu) == 10);

// §5.1.6 struct virtio_net_hdr. With VIRTIO_F_VERSION_1 num_buffers is
// always present (12 bytes), whether or not MRG_RXBUF is negotiated; the
// hash fields exist only with HASH_REPORT, which we do not offer.
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
static_assert(offsetof(VirtioNetHdr, gso_type) == 1 && offsetof(VirtioNetHdr, hdr_len) == 2 &&
              offsetof(VirtioNetHdr, gso_size) == 4 && offsetof(VirtioNetHdr, csum_start) == 6 &&
              offsetof(VirtioNetHdr, csum_offset) == 8 && offsetof(VirtioNetHdr, num_buffers) == 10);
inline constexpr uint32_t kNetHdrLen = sizeof(VirtioNetHdr);

// Where transmitted frames go. The kernel glue implements it with the switch.
class TxHandler {
  public:
    // One frame from the guest (header stripped; segments inside its RAM).
    virtual void transmit(const net::FrameView& frame) = 0;
    // End of a transmit batch (after one or more transmit() calls).
    virtual void transmit_done() = 0;

  protected:
    ~TxHandler() = default;
};

// A snapshot of the device's counters.
struct VirtioNetCounters {
    uint64_t tx_frames;
    uint64_t tx_bytes;  // Ethernet bytes, without the virtio-net header
    uint64_t rx_frames;
    uint64_t rx_bytes;
    uint64_t tx_malformed;  // bad header, empty, or longer than net::kMaxFrameLen: dropped
    uint64_t rx_no_buffer;  // no (or too small) receive buffers: dropped
    uint64_t rx_oversize;   // a frame longer than net::kMaxFrameLen was offered: refused
    uint64_t notifications_received;
    uint64_t interrupts_sent;
    uint64_t config_writes_ignored;
};

// Where one queue stands (for the console and for invariant checks).
struct VirtioNetQueueState {
    bool ready;  // bound and usable
    uint16_t size;
    uint16_t last_avail;  // next available-ring slot the device will read
    uint16_t used;        // used.idx as published to the driver
};

class VirtioNet final : public Device, public net::PortDriver {
  public:
    static constexpr uint16_t kDeviceId = 1;  // §5.1.1
    static constexpr uint16_t kRxQueue = 0;   // receiveq1 (§5.1.2)
    static constexpr uint16_t kTxQueue = 1;   // transmitq1
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint16_t kMtu = 1500;
    static constexpr uint64_t kFeatures = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX | VIRTIO_NET_F_MAC |
                                          VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MTU | VIRTIO_NET_F_MRG_RXBUF;

    VirtioNet(const uint8_t (&mac)[6], TxHandler* tx);

    // ---- Device hooks ----
    uint16_t device_id() const override { return kDeviceId; }
    uint64_t offered_features() const override { return kFeatures; }
    uint16_t queue_count() const override { return 2; }
    uint16_t queue_max_size(uint16_t) const override { return kQueueSize; }
    uint32_t config_size() const override { return sizeof(VirtioNetConfig); }
    uint32_t read_config(uint32_t off, uint32_t width) override;
    void write_config(uint32_t off, uint32_t width, uint32_t value) override;
    bool accept_features(uint64_t features) override;
    void start() override;
    void stop() override;
    void queue_notify(uint16_t q) override;

    // ---- net::PortDriver ----
    net::DeliverResult deliver(const net::OutFrame& f) override;
    void flush() override;

    // Processes the transmit queue without a notification. Each call handles
    // a bounded amount (kTxRounds batches of at most the queue size); true
    // means more is waiting and the caller should call again soon (the
    // guest will not kick for buffers it already added).
    bool poll_tx();

    VirtioNetCounters counters() const;
    // Taken under the queue's lock. Between calls into the device every chain
    // it took has been returned: last_avail == used while ready.
    VirtioNetQueueState queue_state(uint16_t q);

  private:
    static constexpr int kTxRounds = 2;

    bool process_tx(bool notified);
    void transmit_chain(const Chain& c);
    net::DeliverResult receive_locked(const net::OutFrame& f, BrokenReason& broken);
    void send_interrupt(uint16_t q);

    VirtioNetConfig config_{};
    TxHandler* tx_handler_;

    // Receive side: everything below is guarded by rx_lock_.
    Spinlock rx_lock_;
    SplitQueue rx_;
    Chain rx_chain_;  // scratch for one popped chain (kept off the 16 KiB stack)
    bool rx_ready_ = false;
    bool mrg_rxbuf_ = false;
    uint64_t rx_frames_ = 0;
    uint64_t rx_bytes_ = 0;
    uint64_t rx_no_buffer_ = 0;
    uint64_t rx_oversize_ = 0;
    uint64_t rx_notifications_ = 0;
    uint64_t rx_interrupts_ = 0;

    // Transmit side: guarded by tx_lock_.
    Spinlock tx_lock_;
    SplitQueue tx_;
    bool tx_ready_ = false;
    Chain tx_chain_;
    net::Segment tx_segs_[kMaxChainBuffers];
    uint64_t tx_frames_ = 0;
    uint64_t tx_bytes_ = 0;
    uint64_t tx_malformed_ = 0;
    uint64_t tx_notifications_ = 0;
    uint64_t tx_interrupts_ = 0;

    uint64_t config_writes_ignored_ = 0;  // atomic increments
};

}  // namespace hv::virtio
