// Adapter (b): our switch core (kernel/net/), the same source the hypervisor
// runs, in the harness's seat. Each DPDK port is a switch port whose
// PortDriver hands the OutFrame to the port's TX burst. Where the switch sent
// the frame unchanged (its private header copy equals the frame's first bytes,
// no tag edit), the received mbuf itself is queued with pass() and memif TX
// makes the one copy into the receiver's ring, as a guest port's deliver()
// makes it into the guest's RX buffers (switch_adapter.hpp, cost model).
// Otherwise, and always for "hv-copy", copy_out() writes the frame into an
// mbuf from reserve(). flush() sends the burst, as a guest port's flush()
// would notify the guest once per sender batch.
//
// Built only when kernel/net/switch.hpp exists (tests/bench/CMakeLists.txt).

#include <stdio.h>

#include "kernel/lib/bytes.hpp"
#include "kernel/net/frame.hpp"
#include "kernel/net/switch.hpp"
#include "kernel/net/tx_batch.hpp"
#include "switch_adapter.hpp"

namespace hv::bench {
namespace {

// The frame goes out exactly as it came in: one contiguous received buffer,
// and a head that is the switch's copy of that buffer's first bytes, unedited.
// The head is compared in the pieces the switch wrote it in (8, 8 and 2
// bytes, or 8, 4 and 2): a load spanning two of those stores would stall on
// store-to-load forwarding. Any other head length is taken as changed.
bool unchanged(const net::OutFrame& f) {
    if (f.src.count != 1 || f.head_len != f.src_offset || f.src.segs[0].len != f.src.len) return false;
    const uint8_t* a = f.head;
    const uint8_t* b = f.src.segs[0].data;
    if (f.head_len == net::kHeadMax)
        return ((load_u64(a) ^ load_u64(b)) | (load_u64(a + 8) ^ load_u64(b + 8)) |
                (load_u16(a + 16) ^ load_u16(b + 16))) == 0;
    if (f.head_len == net::kEthHeaderLen)
        return ((load_u64(a) ^ load_u64(b)) | (load_u32(a + 8) ^ load_u32(b + 8)) |
                (load_u16(a + 12) ^ load_u16(b + 12))) == 0;
    return false;
}

class MemifPortDriver final : public net::PortDriver {
  public:
    void bind(TxPort* tx, bool copy_all) {
        tx_ = tx;
        copy_all_ = copy_all;
    }

    net::DeliverResult deliver(const net::OutFrame& f) override {
        if (!copy_all_ && unchanged(f)) {
            return tx_->pass(f.src.segs[0].data, f.src.len) ? net::DeliverResult::delivered
                                                            : net::DeliverResult::no_buffer;
        }
        const uint32_t len = f.len();
        uint8_t* dst = tx_->reserve(len);
        if (dst == nullptr) return net::DeliverResult::no_buffer;
        net::copy_out(f, 0, dst, len);
        return net::DeliverResult::delivered;
    }

    void flush() override { tx_->flush(); }

  private:
    TxPort* tx_ = nullptr;
    bool copy_all_ = false;
};

class HvSwitchAdapter final : public SwitchAdapter {
  public:
    explicit HvSwitchAdapter(bool copy_all) : copy_all_(copy_all) {}

    const char* name() const override { return copy_all_ ? "hv-copy" : "hv"; }

    bool attach(TxPort* const* ports, int count, uint64_t tsc_hz) override {
        if (count < 2 || count > static_cast<int>(net::kMaxPorts) || tsc_hz == 0) return false;
        // ns = tsc * 2^32 / (tsc_hz * 2^-32 * 1e9): one multiply per burst.
        ns_per_tsc_q32_ = (static_cast<unsigned __int128>(1000000000) << 32) / tsc_hz;
        for (int i = 0; i < count; ++i) {
            drivers_[i].bind(ports[i], copy_all_);
            net::PortConfig cfg;  // access port on VLAN 1, learning, no limits: what OVS NORMAL does here
            snprintf(cfg.name, sizeof(cfg.name), "memif%d", i);
            auto id = sw_.add_port(cfg, &drivers_[i]);
            if (!id) {
                fprintf(stderr, "hv adapter: add_port(memif%d): %s\n", i, id.error().detail);
                return false;
            }
        }
        count_ = count;
        return true;
    }

    void begin_burst(int, uint64_t now) override {
        now_ns_ = static_cast<uint64_t>((static_cast<unsigned __int128>(now) * ns_per_tsc_q32_) >> 32);
    }

    void forward(int in_port, const uint8_t* frame, uint32_t len) override {
        const net::Segment seg{frame, len};
        batch_.forward(static_cast<net::PortId>(in_port), net::FrameView{&seg, 1, len}, now_ns_);
    }

    // One TX notification's worth of frames: one flush() per receiver.
    void end_burst(int) override { batch_.finish(); }

    AdapterStats stats() const override {
        AdapterStats s;
        for (int p = 0; p < count_; ++p) {
            auto c = sw_.counters(static_cast<net::PortId>(p));
            if (!c) continue;
            s.forwarded += c->tx_packets;
            s.flooded += c->floods;
            for (uint64_t d : c->drops) s.dropped += d;
        }
        return s;
    }

  private:
    net::Switch sw_;
    net::TxBatch batch_{sw_};
    MemifPortDriver drivers_[net::kMaxPorts];
    bool copy_all_;
    int count_ = 0;
    unsigned __int128 ns_per_tsc_q32_ = 0;
    uint64_t now_ns_ = 0;
};

}  // namespace

std::unique_ptr<SwitchAdapter> make_hv_adapter(bool copy_all) {
    return std::make_unique<HvSwitchAdapter>(copy_all);
}

}  // namespace hv::bench
