// Adapter (b): our switch core (kernel/net/), the same source the hypervisor
// runs, in the harness's seat. Each DPDK port is a switch port whose
// PortDriver writes the OutFrame into an mbuf of the port's TX burst: the one
// copy of the data path (frame.hpp), done by copy_out() as a guest port's
// deliver() does it into the guest's RX buffers. flush() sends the burst, as a
// guest port's flush() would notify the guest once per sender batch.
//
// Built only when kernel/net/switch.hpp exists (tests/bench/CMakeLists.txt).

#include <stdio.h>

#include "kernel/net/frame.hpp"
#include "kernel/net/switch.hpp"
#include "kernel/net/tx_batch.hpp"
#include "switch_adapter.hpp"

namespace hv::bench {
namespace {

class MemifPortDriver final : public net::PortDriver {
  public:
    void bind(TxPort* tx) { tx_ = tx; }

    net::DeliverResult deliver(const net::OutFrame& f) override {
        const uint32_t len = f.len();
        uint8_t* dst = tx_->reserve(len);
        if (dst == nullptr) return net::DeliverResult::no_buffer;
        net::copy_out(f, 0, dst, len);
        return net::DeliverResult::delivered;
    }

    void flush() override { tx_->flush(); }

  private:
    TxPort* tx_ = nullptr;
};

class HvSwitchAdapter final : public SwitchAdapter {
  public:
    const char* name() const override { return "hv"; }

    bool attach(TxPort* const* ports, int count, uint64_t tsc_hz) override {
        if (count < 2 || count > static_cast<int>(net::kMaxPorts) || tsc_hz == 0) return false;
        // ns = tsc * 2^32 / (tsc_hz * 2^-32 * 1e9): one multiply per burst.
        ns_per_tsc_q32_ = (static_cast<unsigned __int128>(1000000000) << 32) / tsc_hz;
        for (int i = 0; i < count; ++i) {
            drivers_[i].bind(ports[i]);
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
    int count_ = 0;
    unsigned __int128 ns_per_tsc_q32_ = 0;
    uint64_t now_ns_ = 0;
};

}  // namespace

std::unique_ptr<SwitchAdapter> make_hv_adapter() {
    return std::make_unique<HvSwitchAdapter>();
}

}  // namespace hv::bench
