// libFuzzer target for the split virtqueue and the virtio-net device
// (kernel/virtio): the input is a guest's initial RAM (descriptor tables,
// rings, buffers) plus a sequence of operations (kicks, frames delivered,
// raw guest writes, chains added by a small driver, resets, status writes).
// AddressSanitizer sees the guest RAM as its own allocation with poisoned
// guard zones on both sides, so any access outside it is reported where it
// happens; the guard pattern is checked too. After every operation the
// device invariants must hold:
//   - between calls the device holds no chain: used == last_avail per queue;
//   - a queue is ready only while the device runs and is not broken;
//   - a broken device shows DEVICE_NEEDS_RESET;
//   - every transmitted frame lies inside the guest's RAM, is non-empty and at
//     most net::kMaxFrameLen bytes, and its segments add up to its length;
//   - counters never go down; delivered frames are counted one for one.
//
// Input: [features][rx size][tx size][ram_len lo][ram_len hi][ram_len bytes of
// RAM image at GPA 0][operations...]. Built and run by tests/fuzz/CMakeLists.txt.

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/virtio/virtio_net.hpp"
#include "tests/unit/support/virtio_test_driver.hpp"

namespace {

namespace virtio = hv::virtio;
namespace net = hv::net;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

constexpr uint64_t kRam = 64 * 1024;
// Fixed ring slots, each big enough for a 256-entry queue, the small rings
// first so that a short RAM image already covers them; buffers above.
constexpr uint64_t kRxAvail = 0x0000, kTxAvail = 0x0240, kRxUsed = 0x0800, kTxUsed = 0x1010;
constexpr uint64_t kRxDesc = 0x2000, kTxDesc = 0x3000;
constexpr uint64_t kBufStart = 0x4000;

class Input {
  public:
    Input(const uint8_t* d, size_t n) : d_(d), n_(n) {}
    bool empty() const { return pos_ >= n_; }
    uint8_t u8() { return pos_ < n_ ? d_[pos_++] : 0; }
    uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
    size_t take(uint8_t* dst, size_t max) {
        const size_t k = (n_ - pos_ < max) ? n_ - pos_ : max;
        if (k) memcpy(dst, d_ + pos_, k);
        pos_ += k;
        return k;
    }

  private:
    const uint8_t* d_;
    size_t n_;
    size_t pos_ = 0;
};

class CheckingTx final : public virtio::TxHandler {
  public:
    CheckingTx(const uint8_t* ram, uint64_t size) : ram_(ram), size_(size) {}
    void transmit(const net::FrameView& f) override {
        check(f.len > 0 && f.len <= net::kMaxFrameLen);
        check(f.count >= 1 && f.count <= net::kMaxSegments);
        uint64_t sum = 0;
        for (uint32_t i = 0; i < f.count; ++i) {
            const net::Segment& s = f.segs[i];
            check(s.len > 0);
            check(s.data >= ram_ && s.data + s.len <= ram_ + size_);
            sum += s.len;
            volatile uint8_t sink = s.data[0] ^ s.data[s.len - 1];  // the switch reads them
            (void)sink;
        }
        check(sum == f.len);
        ++frames;
    }
    void transmit_done() override { ++batches; }
    uint64_t frames = 0;
    uint64_t batches = 0;

  private:
    const uint8_t* ram_;
    uint64_t size_;
};

class CountingTransport final : public virtio::Transport {
  public:
    void interrupt_queue(uint16_t q) override { check(q < 2); }
    void interrupt_config() override {}
};

// A minimal driver: descriptors round-robin, buffers from a wrapping arena,
// avail.idx read back from RAM so it composes with raw (hostile) writes.
struct MiniQueue {
    uint64_t desc, avail, used;
    uint16_t size;
    uint16_t next_desc = 0;
};

struct Harness {
    explicit Harness(const uint8_t* data, size_t size) : in(data, size) {}

    void put16(uint64_t gpa, uint16_t v) { memcpy(ram.at(gpa, 2), &v, 2); }
    uint16_t get16(uint64_t gpa) {
        uint16_t v;
        memcpy(&v, ram.at(gpa, 2), 2);
        return v;
    }

    uint64_t alloc(uint32_t len) {
        if (arena + len > kRam) arena = kBufStart;
        const uint64_t at = arena;
        arena += len;
        return at;
    }

    void add_chain(MiniQueue& q, bool device_writes, bool zero_header) {
        const uint8_t n = static_cast<uint8_t>(1 + in.u8() % 4);
        uint16_t head = 0;
        uint16_t prev = 0;
        for (uint8_t i = 0; i < n; ++i) {
            const uint32_t len = 1 + in.u16() % 2048;
            const uint64_t gpa = alloc(len);
            if (i == 0 && zero_header) memset(ram.at(gpa, len < 12 ? len : 12), 0, len < 12 ? len : 12);
            const uint16_t d = static_cast<uint16_t>(q.next_desc++ % q.size);
            const uint64_t p = q.desc + 16ull * d;
            memcpy(ram.at(p, 8), &gpa, 8);
            memcpy(ram.at(p + 8, 4), &len, 4);
            put16(p + 12, device_writes ? virtio::VIRTQ_DESC_F_WRITE : 0);
            put16(p + 14, 0);
            if (i == 0) {
                head = d;
            } else {
                const uint64_t pp = q.desc + 16ull * prev;
                put16(pp + 12, static_cast<uint16_t>(get16(pp + 12) | virtio::VIRTQ_DESC_F_NEXT));
                put16(pp + 14, d);
            }
            prev = d;
        }
        const uint16_t idx = get16(q.avail + 2);
        put16(q.avail + 4 + 2ull * (idx % q.size), head);
        put16(q.avail + 2, static_cast<uint16_t>(idx + 1));
    }

    void bring_up() {
        dev.write_status(virtio::ACKNOWLEDGE);
        dev.write_status(virtio::ACKNOWLEDGE | virtio::DRIVER);
        dev.write_driver_features(features);
        dev.write_status(virtio::ACKNOWLEDGE | virtio::DRIVER | virtio::FEATURES_OK);
        dev.write_queue(virtio::VirtioNet::kRxQueue, {rx.size, true, rx.desc, rx.avail, rx.used});
        dev.write_queue(virtio::VirtioNet::kTxQueue, {tx.size, true, tx.desc, tx.avail, tx.used});
        dev.write_status(virtio::ACKNOWLEDGE | virtio::DRIVER | virtio::FEATURES_OK | virtio::DRIVER_OK);
    }

    void deliver() {
        static uint8_t frame[2048];
        const uint32_t len = in.u16() % 1600;
        const uint32_t head_len = len ? in.u8() % (len + 1) : 0;
        for (uint32_t i = 0; i < len; ++i) frame[i] = static_cast<uint8_t>(i * 13 + len);
        // The rest comes from "the sender" in up to three segments, after a
        // src_offset the switch skips.
        const uint32_t skip = in.u8() % 8;
        const uint32_t rest = len - head_len;
        const uint32_t cut1 = rest ? in.u8() % (rest + 1) : 0;
        const uint32_t cut2 = cut1 + (rest - cut1 ? in.u8() % (rest - cut1 + 1) : 0);
        static uint8_t sender[2048 + 8];
        memset(sender, 0xAB, skip);
        memcpy(sender + skip, frame + head_len, rest);
        net::Segment segs[3];
        uint32_t count = 0;
        const uint32_t bounds[4] = {0, skip + cut1, skip + cut2, skip + rest};
        for (int i = 0; i < 3; ++i) {
            if (bounds[i + 1] > bounds[i]) segs[count++] = {sender + bounds[i], bounds[i + 1] - bounds[i]};
        }
        const net::OutFrame f{frame, head_len, net::FrameView{segs, count, skip + rest}, skip};
        check(f.len() == len);
        const uint64_t before = dev.counters().rx_frames;
        const net::DeliverResult r = dev.deliver(f);
        const uint64_t after = dev.counters().rx_frames;
        check(after == before + (r == net::DeliverResult::delivered ? 1 : 0));
        if (len > net::kMaxFrameLen) check(r != net::DeliverResult::delivered);
    }

    void check_invariants() {
        const bool running = (dev.status() & virtio::DRIVER_OK) && !(dev.status() & virtio::DEVICE_NEEDS_RESET) &&
                             !(dev.status() & virtio::FAILED);
        if (dev.broken_reason() != virtio::BrokenReason::none) check(dev.status() & virtio::DEVICE_NEEDS_RESET);
        for (uint16_t q = 0; q < 2; ++q) {
            const virtio::VirtioNetQueueState s = dev.queue_state(q);
            if (!s.ready) continue;
            check(running);
            check(s.last_avail == s.used);
        }
        const virtio::VirtioNetCounters c = dev.counters();
        check(c.tx_frames >= last.tx_frames && c.rx_frames >= last.rx_frames);
        check(c.tx_bytes >= last.tx_bytes && c.rx_bytes >= last.rx_bytes);
        check(c.tx_malformed >= last.tx_malformed && c.rx_no_buffer >= last.rx_no_buffer);
        check(c.tx_frames == tx_handler.frames);
        check(c.tx_bytes <= c.tx_frames * net::kMaxFrameLen && c.rx_bytes <= c.rx_frames * net::kMaxFrameLen);
        last = c;
    }

    Input in;
    hv::test::FakeGuestRam ram{kRam};
    CheckingTx tx_handler{ram.ram(), kRam};
    CountingTransport transport;
    virtio::VirtioNet dev{{0x52, 0x54, 0, 0, 0, 1}, &tx_handler};
    MiniQueue rx{kRxDesc, kRxAvail, kRxUsed, 0};
    MiniQueue tx{kTxDesc, kTxAvail, kTxUsed, 0};
    uint64_t features = virtio::VIRTIO_F_VERSION_1;
    uint64_t arena = kBufStart;
    virtio::VirtioNetCounters last{};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Harness h(data, size);
    const uint8_t feat = h.in.u8();
    if (feat & 1) h.features |= virtio::VIRTIO_F_RING_EVENT_IDX;
    if (feat & 2) h.features |= virtio::VIRTIO_NET_F_MRG_RXBUF;
    h.rx.size = static_cast<uint16_t>(1u << (h.in.u8() % 9));  // 1 .. 256
    h.tx.size = static_cast<uint16_t>(1u << (h.in.u8() % 9));
    const uint16_t ram_len = h.in.u16();
    h.in.take(h.ram.ram(), ram_len);  // at most 64 KiB - 1: inside kRam
    h.dev.attach(h.ram.memory(), &h.transport);
    h.bring_up();
    h.check_invariants();

    for (int ops = 0; ops < 512 && !h.in.empty(); ++ops) {
        switch (h.in.u8() % 14) {
            case 0: h.dev.queue_notify(virtio::VirtioNet::kTxQueue); break;
            case 1: (void)h.dev.poll_tx(); break;
            case 2: h.deliver(); break;
            case 3: h.dev.flush(); break;
            case 4:  // reset and initialize again with fresh rings, as a recovering driver would
                h.dev.write_status(0);
                for (const MiniQueue* q : {&h.rx, &h.tx}) {
                    h.put16(q->avail, 0);
                    h.put16(q->avail + 2, 0);
                }
                h.bring_up();
                break;
            case 5: {  // the guest writes anything anywhere in its RAM
                const uint16_t gpa = h.in.u16();
                uint8_t bytes[16];
                const size_t n = h.in.take(bytes, 1 + h.in.u8() % 16);
                if (gpa + n <= kRam) memcpy(h.ram.at(gpa, n), bytes, n);
                break;
            }
            case 6: h.add_chain(h.tx, false, true); break;
            case 7: h.add_chain(h.rx, true, false); break;
            case 8: h.add_chain(h.tx, h.in.u8() & 1, false); break;  // maybe the wrong direction
            case 9: {                                                // suppression fields of either queue
                MiniQueue& q = (h.in.u8() & 1) ? h.tx : h.rx;
                if (h.in.u8() & 1) {
                    h.put16(q.avail, h.in.u16() & 1);  // flags
                } else {
                    h.put16(q.avail + 4 + 2ull * q.size, h.in.u16());  // used_event
                }
                break;
            }
            case 10: h.dev.queue_notify(virtio::VirtioNet::kRxQueue); break;
            case 11: h.dev.write_status(h.in.u8()); break;
            case 12: {
                const uint32_t off = h.in.u8() % 16, width = 1u << (h.in.u8() % 3);
                if (off + width <= h.dev.config_size()) {
                    (void)h.dev.read_config(off, width);
                    h.dev.write_config(off, width, h.in.u16());
                }
                break;
            }
            case 13: h.dev.write_queue(h.in.u8() % 3, {h.in.u16(), true, h.in.u16(), h.in.u16(), h.in.u16()}); break;
        }
        h.check_invariants();
    }
    check(h.ram.guards_intact());
    return 0;
}
