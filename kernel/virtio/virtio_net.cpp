#include "kernel/virtio/virtio_net.hpp"

namespace hv::virtio {

namespace {

// Counters have one writer at a time (the lock of their side) and are read
// from any CPU: single-copy atomic loads and stores, no locked instructions.
void bump(uint64_t& c, uint64_t n = 1) {
    __atomic_store_n(&c, __atomic_load_n(&c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
uint64_t read(const uint64_t& c) {
    return __atomic_load_n(&c, __ATOMIC_RELAXED);
}

uint32_t min_u32(uint32_t a, uint32_t b) {
    return a < b ? a : b;
}

}  // namespace

VirtioNet::VirtioNet(const uint8_t (&mac)[6], TxHandler* tx) : tx_handler_(tx) {
    __builtin_memcpy(config_.mac, mac, sizeof config_.mac);
    // The link is always up: the switch port exists as long as the device does.
    config_.status = VIRTIO_NET_S_LINK_UP;
    config_.max_virtqueue_pairs = 1;
    config_.mtu = kMtu;
}

uint32_t VirtioNet::read_config(uint32_t off, uint32_t width) {
    // The transport checked the bounds; check again rather than read past the struct.
    if (width > 4 || off > sizeof config_ || width > sizeof config_ - off) return 0;
    uint8_t bytes[sizeof config_];
    __builtin_memcpy(bytes, &config_, sizeof bytes);  // little-endian like the wire (§4.1.3.1)
    uint32_t v = 0;
    for (uint32_t i = 0; i < width; ++i) v |= static_cast<uint32_t>(bytes[off + i]) << (8 * i);
    return v;
}

void VirtioNet::write_config(uint32_t, uint32_t, uint32_t) {
    // §5.1.4: every field we expose is read-only for the driver (the MAC can
    // only be set through the control queue, which we do not offer).
    __atomic_fetch_add(&config_writes_ignored_, 1, __ATOMIC_RELAXED);
}

bool VirtioNet::accept_features(uint64_t) {
    // Every subset of what we offer works: without MRG_RXBUF a frame needs one
    // big enough chain, without EVENT_IDX the ring flags suppress notifications.
    return true;
}

void VirtioNet::start() {
    const bool event_idx = negotiated(VIRTIO_F_RING_EVENT_IDX);
    {
        LockGuard g(rx_lock_);
        const QueueConfig q = queue(kRxQueue);
        mrg_rxbuf_ = negotiated(VIRTIO_NET_F_MRG_RXBUF);
        rx_ready_ = q.enabled && rx_.bind(memory(), q, QueueDirection::device_writes, event_idx);
        // New receive buffers need no action from us (we look for them when a
        // frame arrives), so ask the driver not to kick for them.
        if (rx_ready_) rx_.disable_notifications();
    }
    {
        LockGuard g(tx_lock_);
        const QueueConfig q = queue(kTxQueue);
        tx_ready_ = q.enabled && tx_.bind(memory(), q, QueueDirection::device_reads, event_idx);
        // Kick us for the first buffer. Nothing can be pending yet: the driver
        // may not notify before DRIVER_OK (§3.1.1), and we run inside it.
        if (tx_ready_) (void)tx_.enable_notifications();
    }
}

void VirtioNet::stop() {
    // Taking each lock waits out any CPU inside deliver() or the transmit
    // path; once released, they see the queues down.
    {
        LockGuard g(rx_lock_);
        rx_ready_ = false;
        rx_.unbind();
    }
    {
        LockGuard g(tx_lock_);
        tx_ready_ = false;
        tx_.unbind();
    }
}

void VirtioNet::queue_notify(uint16_t q) {
    if (q == kTxQueue) {
        (void)process_tx(true);
    } else if (q == kRxQueue) {
        LockGuard g(rx_lock_);
        bump(rx_notifications_);
    }
}

bool VirtioNet::poll_tx() {
    return process_tx(false);
}

void VirtioNet::send_interrupt(uint16_t q) {
    Transport* t = transport();
    if (t != nullptr) t->interrupt_queue(q);
}

bool VirtioNet::process_tx(bool notified) {
    BrokenReason broken = BrokenReason::none;
    bool sent = false;
    bool more = false;
    bool irq = false;
    {
        LockGuard g(tx_lock_);
        if (notified) bump(tx_notifications_);
        if (!tx_ready_) return false;
        // §2.7.10: no kicks while we drain the ring; re-enabled (with the
        // re-check) at the end of each round.
        tx_.disable_notifications();
        for (int round = 0; round < kTxRounds; ++round) {
            for (uint32_t budget = tx_.size(); budget > 0; --budget) {
                const PopStatus s = tx_.pop(tx_chain_);
                if (s == PopStatus::empty) break;
                if (s == PopStatus::broken) {
                    broken = tx_.error();
                    break;
                }
                const uint64_t frames_before = tx_frames_;
                transmit_chain(tx_chain_);
                sent |= tx_frames_ != frames_before;
                // §5.1.6.2: transmit buffers are only read; used length 0.
                tx_.push(tx_chain_.head, 0);
            }
            tx_.publish();
            if (broken != BrokenReason::none) {
                tx_ready_ = false;
                break;
            }
            more = tx_.enable_notifications();
            if (!more) break;
            if (round + 1 < kTxRounds) tx_.disable_notifications();
        }
        if (broken == BrokenReason::none) {
            irq = tx_.should_interrupt();
            if (irq) bump(tx_interrupts_);
        }
    }
    if (irq) send_interrupt(kTxQueue);
    if (sent && tx_handler_ != nullptr) tx_handler_->transmit_done();
    if (broken != BrokenReason::none) mark_broken_if_running(broken);
    return more;
}

void VirtioNet::transmit_chain(const Chain& c) {
    // §5.1.6.2: a 12-byte header, then the frame; §2.7.4: the split between
    // descriptors is arbitrary (header alone, shared with the frame, or
    // itself split). Copy the header out once, check the copy.
    if (c.bytes <= kNetHdrLen || c.bytes - kNetHdrLen > net::kMaxFrameLen) {
        bump(tx_malformed_);  // no frame, or longer than MTU 1500 + Ethernet + VLAN tag allows
        return;
    }
    uint8_t hdr[kNetHdrLen];
    uint32_t have = 0;
    uint32_t nsegs = 0;
    for (uint16_t i = 0; i < c.count; ++i) {
        const ChainBuffer& b = c.buffers[i];
        uint32_t skip = 0;
        if (have < kNetHdrLen) {
            skip = min_u32(b.len, kNetHdrLen - have);
            __builtin_memcpy(hdr + have, b.data, skip);
            have += skip;
        }
        if (b.len > skip) tx_segs_[nsegs++] = net::Segment{b.data + skip, b.len - skip};
    }
    // No offloads were offered: §5.1.6.2.1 forbids NEEDS_CSUM without
    // VIRTIO_NET_F_CSUM, and DATA_VALID / RSC_INFO always; a checksum we cannot
    // finish or a GSO frame cannot be forwarded as is. Other flag bits are
    // ignored (§5.1.6.2.2: "MUST ignore flag bits that it does not recognize").
    const uint8_t flags = hdr[offsetof(VirtioNetHdr, flags)];
    const uint8_t gso_type = hdr[offsetof(VirtioNetHdr, gso_type)];
    constexpr uint8_t kRefused = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID | VIRTIO_NET_HDR_F_RSC_INFO;
    if ((flags & kRefused) != 0 || gso_type != VIRTIO_NET_HDR_GSO_NONE) {
        bump(tx_malformed_);
        return;
    }
    const uint32_t len = static_cast<uint32_t>(c.bytes - kNetHdrLen);
    bump(tx_frames_);
    bump(tx_bytes_, len);
    if (tx_handler_ != nullptr) tx_handler_->transmit(net::FrameView{tx_segs_, nsegs, len});
}

net::DeliverResult VirtioNet::deliver(const net::OutFrame& f) {
    BrokenReason broken = BrokenReason::none;
    net::DeliverResult r;
    {
        LockGuard g(rx_lock_);
        if (!rx_ready_) return net::DeliverResult::down;
        r = receive_locked(f, broken);
    }
    if (broken != BrokenReason::none) mark_broken_if_running(broken);
    return r;
}

net::DeliverResult VirtioNet::receive_locked(const net::OutFrame& f, BrokenReason& broken) {
    const uint32_t len = f.len();
    // §5.1.4.1 (MTU): the device MUST NOT pass longer frames to the driver.
    if (len > net::kMaxFrameLen) {
        bump(rx_oversize_);
        return net::DeliverResult::no_buffer;
    }
    // §5.1.6.4: header (all zero: no offloads, GSO_NONE) then the frame. With
    // MRG_RXBUF the frame may continue in further chains and num_buffers in
    // the first header counts them; without it, it is 1 (§5.1.6.4.1).
    uint8_t hdr[kNetHdrLen] = {};
    uint8_t* num_buffers[2] = {nullptr, nullptr};  // where header bytes 10 and 11 landed
    uint32_t hdr_done = 0;
    uint32_t frame_done = 0;
    uint16_t chains = 0;
    for (;;) {
        const PopStatus s = rx_.pop(rx_chain_);
        if (s != PopStatus::chain) {
            // Give back everything taken for this frame: no buffer is consumed
            // unless the whole frame fits.
            rx_.unpush(chains);
            rx_.discard(chains);
            if (s == PopStatus::broken) {
                broken = rx_.error();
                rx_ready_ = false;
                return net::DeliverResult::down;
            }
            bump(rx_no_buffer_);
            return net::DeliverResult::no_buffer;
        }
        if (!mrg_rxbuf_ && rx_chain_.bytes < uint64_t{kNetHdrLen} + len) {
            rx_.discard(1);
            bump(rx_no_buffer_);
            return net::DeliverResult::no_buffer;
        }
        ++chains;
        uint32_t written = 0;
        for (uint16_t i = 0; i < rx_chain_.count; ++i) {
            const ChainBuffer& b = rx_chain_.buffers[i];
            uint32_t pos = 0;
            if (hdr_done < kNetHdrLen) {
                const uint32_t n = min_u32(b.len, kNetHdrLen - hdr_done);
                __builtin_memcpy(b.data, hdr + hdr_done, n);
                for (uint32_t k = 0; k < n; ++k) {
                    const uint32_t at = hdr_done + k;
                    if (at >= offsetof(VirtioNetHdr, num_buffers)) {
                        num_buffers[at - offsetof(VirtioNetHdr, num_buffers)] = b.data + k;
                    }
                }
                hdr_done += n;
                pos = n;
            }
            if (pos < b.len && frame_done < len) {
                const uint32_t n = net::copy_out(f, frame_done, b.data + pos, min_u32(b.len - pos, len - frame_done));
                frame_done += n;
                pos += n;
            }
            written += pos;
            if (hdr_done == kNetHdrLen && frame_done == len) break;
        }
        rx_.push(rx_chain_.head, written);
        if (hdr_done == kNetHdrLen && frame_done == len) break;
    }
    // All chains are written; now the count is known. The header bytes sit in
    // buffers we own until publish() hands them over.
    *num_buffers[0] = static_cast<uint8_t>(chains);
    *num_buffers[1] = static_cast<uint8_t>(chains >> 8);
    rx_.publish();
    bump(rx_frames_);
    bump(rx_bytes_, len);
    return net::DeliverResult::delivered;
}

void VirtioNet::flush() {
    // One interrupt decision per sender batch, for everything delivered since
    // the last one (§2.7.7: with EVENT_IDX, only if used_event was crossed).
    bool irq;
    {
        LockGuard g(rx_lock_);
        if (!rx_ready_) return;
        irq = rx_.should_interrupt();
        if (irq) bump(rx_interrupts_);
    }
    if (irq) send_interrupt(kRxQueue);
}

VirtioNetCounters VirtioNet::counters() const {
    VirtioNetCounters c{};
    c.tx_frames = read(tx_frames_);
    c.tx_bytes = read(tx_bytes_);
    c.rx_frames = read(rx_frames_);
    c.rx_bytes = read(rx_bytes_);
    c.tx_malformed = read(tx_malformed_);
    c.rx_no_buffer = read(rx_no_buffer_);
    c.rx_oversize = read(rx_oversize_);
    c.notifications_received = read(rx_notifications_) + read(tx_notifications_);
    c.interrupts_sent = read(rx_interrupts_) + read(tx_interrupts_);
    c.config_writes_ignored = read(config_writes_ignored_);
    return c;
}

VirtioNetQueueState VirtioNet::queue_state(uint16_t q) {
    if (q != kRxQueue && q != kTxQueue) return VirtioNetQueueState{};
    const bool rx = q == kRxQueue;
    Spinlock& lock = rx ? rx_lock_ : tx_lock_;
    const SplitQueue& sq = rx ? rx_ : tx_;
    LockGuard g(lock);
    return VirtioNetQueueState{rx ? rx_ready_ : tx_ready_, sq.size(), sq.last_avail(), sq.published_used()};
}

}  // namespace hv::virtio
