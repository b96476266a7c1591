// The harness's own reference bridge: MAC learning, flooding of broadcast,
// multicast and unknown unicast, no ageing, no VLANs. It exists to prove the
// harness end to end and to show what the harness costs with next to no
// switching logic; it is never a figure for our switch.

#include <string.h>

#include "switch_adapter.hpp"

namespace hv::bench {
namespace {

constexpr int kMaxPorts = 16;
constexpr uint32_t kTableSize = 1024;  // power of two
constexpr uint32_t kMaxProbe = 8;      // bounded lookup; a full neighbourhood forgets the oldest slot

uint64_t mac_key(const uint8_t* p) {
    uint64_t k = 0;
    memcpy(&k, p, 6);
    return k;
}

class ReferenceBridge final : public SwitchAdapter {
  public:
    const char* name() const override { return "ref"; }

    bool attach(TxPort* const* ports, int count, uint64_t) override {
        if (count < 2 || count > kMaxPorts) return false;
        for (int i = 0; i < count; ++i) ports_[i] = ports[i];
        count_ = count;
        return true;
    }

    void begin_burst(int, uint64_t) override {}

    void forward(int in_port, const uint8_t* frame, uint32_t len) override {
        if (len < 14) {
            ++stats_.dropped;
            return;
        }
        const uint64_t src = mac_key(frame + 6);
        if ((frame[6] & 1) == 0) learn(src, in_port);
        if ((frame[0] & 1) == 0) {
            const int out = lookup(mac_key(frame));
            if (out == in_port) {
                ++stats_.dropped;
                return;
            }
            if (out >= 0) {
                send(out, frame, len);
                return;
            }
        }
        ++stats_.flooded;
        for (int p = 0; p < count_; ++p) {
            if (p != in_port) send(p, frame, len);
        }
    }

    void end_burst(int) override {
        for (int p = 0; p < count_; ++p) ports_[p]->flush();
    }

    AdapterStats stats() const override { return stats_; }

  private:
    struct Entry {
        uint64_t key;  // 0: free (no station has the all-zero MAC)
        int port;
    };

    static uint32_t hash(uint64_t key) { return static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 54); }

    void learn(uint64_t key, int port) {
        const uint32_t h = hash(key);
        for (uint32_t i = 0; i < kMaxProbe; ++i) {
            Entry& e = table_[(h + i) & (kTableSize - 1)];
            if (e.key == key || e.key == 0) {
                e.key = key;
                e.port = port;
                return;
            }
        }
        table_[h & (kTableSize - 1)] = Entry{key, port};
    }

    int lookup(uint64_t key) const {
        const uint32_t h = hash(key);
        for (uint32_t i = 0; i < kMaxProbe; ++i) {
            const Entry& e = table_[(h + i) & (kTableSize - 1)];
            if (e.key == key) return e.port;
            if (e.key == 0) return -1;
        }
        return -1;
    }

    void send(int port, const uint8_t* frame, uint32_t len) {
        uint8_t* dst = ports_[port]->reserve(len);
        if (dst == nullptr) {
            ++stats_.dropped;
            return;
        }
        memcpy(dst, frame, len);
        ++stats_.forwarded;
    }

    TxPort* ports_[kMaxPorts] = {};
    int count_ = 0;
    Entry table_[kTableSize] = {};
    AdapterStats stats_;
};

}  // namespace

std::unique_ptr<SwitchAdapter> make_reference_adapter() {
    return std::make_unique<ReferenceBridge>();
}

}  // namespace hv::bench
