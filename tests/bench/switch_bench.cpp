// The switch core's forwarding cost on one host core: 64 B and 1500 B frames
// between 2, 4 and 8 access ports whose MACs are learned, in batches of 32
// per sender notification (as a virtio TX queue would hand them over).
// ForwardLearned sends one flow per port, so every frame after a port's
// first reuses its last decision (Switch::FlowMemo); ForwardTwoFlows
// alternates two source stations per port, so that no frame does: the cost of
// a full MAC table lookup.
// Receivers copy every frame into a ring of 256 2 KiB RX buffers with
// copy_out(), which is the one copy the hypervisor makes per frame, so the
// figures include it. items/s = packets/s; bytes/s counts frame bytes;
// tsc_per_pkt is the median over iterations of TSC ticks per packet (close
// to core cycles on CPUs with an invariant TSC at nominal frequency).
#include <benchmark/benchmark.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "kernel/net/switch.hpp"
#include "kernel/net/tx_batch.hpp"

using namespace hv::net;

namespace {

constexpr int kBatch = 32;

class CopyPort final : public PortDriver {
  public:
    static constexpr size_t kRing = 256, kBuf = 2048;
    DeliverResult deliver(const OutFrame& f) override {
        uint8_t* dst = ring_.data() + (next_++ % kRing) * kBuf;
        copy_out(f, 0, dst, f.len());
        return DeliverResult::delivered;
    }
    void flush() override { ++flushes_; }

  private:
    std::vector<uint8_t> ring_ = std::vector<uint8_t>(kRing * kBuf);
    size_t next_ = 0;
    size_t flushes_ = 0;
};

MacAddr station(int i) {
    return MacAddr{{0x02, 0, 0, 0, 0x10, static_cast<uint8_t>(i)}};
}

std::vector<uint8_t> frame(MacAddr dst, MacAddr src, size_t len) {
    std::vector<uint8_t> f(len, 0x5A);
    for (int i = 0; i < 6; ++i) f[i] = dst.b[i], f[6 + i] = src.b[i];
    f[12] = 0x08;
    f[13] = 0x00;
    return f;
}

enum class Mode { learned, two_flows, broadcast };

struct Bench {
    std::unique_ptr<Switch> sw = std::make_unique<Switch>();
    std::vector<std::unique_ptr<CopyPort>> ports;
    std::vector<std::vector<uint8_t>> frames;
    std::vector<Segment> segs;

    Bench(int nports, size_t len, Mode mode) {
        const bool broadcast = mode == Mode::broadcast;
        const int flows = mode == Mode::two_flows ? 2 : 1;
        for (int i = 0; i < nports; ++i) {
            PortConfig c;
            std::snprintf(c.name, sizeof c.name, "bench.eth%d", i);
            c.access_vlan = 1;
            ports.push_back(std::make_unique<CopyPort>());
            if (!sw->add_port(c, ports.back().get()).ok()) std::abort();
        }
        // Port i sends to port i+1: every MAC learned first, so no flooding.
        // Port i's second station is station(i + 64).
        for (int i = 0; i < nports; ++i) {
            for (int f = 0; f < flows; ++f) {
                auto hello = frame(MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, station(i + 64 * f), 64);
                Segment s{hello.data(), 64};
                sw->forward(static_cast<PortId>(i), FrameView{&s, 1, 64}, 0);
            }
        }
        for (int i = 0; i < nports; ++i) {
            for (int f = 0; f < flows; ++f) {
                MacAddr dst = broadcast ? MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} : station((i + 1) % nports);
                frames.push_back(frame(dst, station(i + 64 * f), len));
            }
        }
        for (auto& f : frames) segs.push_back(Segment{f.data(), static_cast<uint32_t>(f.size())});
    }
};

void run(benchmark::State& state, Mode mode) {
    const int nports = static_cast<int>(state.range(0));
    const size_t len = static_cast<size_t>(state.range(1));
    const bool broadcast = mode == Mode::broadcast;
    const int flows = mode == Mode::two_flows ? 2 : 1;
    Bench b(nports, len, mode);
    uint64_t now = 1'000'000;
    uint64_t iterations = 0;
    // TSC ticks of each iteration, for a median that a preempted iteration
    // (the machine is shared) does not distort.
    std::vector<uint64_t> ticks;
    ticks.reserve(1 << 20);
    for (auto _ : state) {
        const uint64_t t0 = __rdtsc();
        // One notification per sender: a batch of 32 frames each.
        for (int i = 0; i < nports; ++i) {
            TxBatch batch(*b.sw);
            for (int k = 0; k < kBatch; ++k) {
                const Segment& seg = b.segs[i * flows + k % flows];
                batch.forward(static_cast<PortId>(i), FrameView{&seg, 1, seg.len}, now);
            }
        }
        now += 1000;
        ++iterations;
        if (ticks.size() < ticks.capacity()) ticks.push_back(__rdtsc() - t0);
    }
    // Flooded frames are counted once per copy delivered.
    const uint64_t per_iteration = static_cast<uint64_t>(nports) * kBatch * (broadcast ? nports - 1 : 1);
    const uint64_t copies = iterations * per_iteration;
    state.SetItemsProcessed(static_cast<int64_t>(copies));
    state.SetBytesProcessed(static_cast<int64_t>(copies * len));
    if (!ticks.empty()) {
        std::nth_element(ticks.begin(), ticks.begin() + ticks.size() / 2, ticks.end());
        state.counters["tsc_per_pkt"] =
            static_cast<double>(ticks[ticks.size() / 2]) / static_cast<double>(per_iteration);
    }
    auto st = b.sw->stats(now);
    if (!broadcast && st.floods != static_cast<uint64_t>(nports * flows)) state.SkipWithError("unexpected floods");
}

void BM_ForwardLearned(benchmark::State& state) {
    run(state, Mode::learned);
}
void BM_ForwardTwoFlows(benchmark::State& state) {
    run(state, Mode::two_flows);
}
void BM_FloodBroadcast(benchmark::State& state) {
    run(state, Mode::broadcast);
}

}  // namespace

BENCHMARK(BM_ForwardLearned)->ArgsProduct({{2, 4, 8}, {64, 1500}})->ArgNames({"ports", "bytes"});
BENCHMARK(BM_ForwardTwoFlows)->ArgsProduct({{2, 8}, {64, 1500}})->ArgNames({"ports", "bytes"});
BENCHMARK(BM_FloodBroadcast)->ArgsProduct({{4}, {64}})->ArgNames({"ports", "bytes"});

BENCHMARK_MAIN();
