// dpdk_switch: puts a switch (tests/bench/switch_adapter.hpp) in the seat that
// testpmd io-forwarding and Open vSwitch take in ../shared/BENCH-PEERS.md, so
// that `tools/hv bench net` measures all three with the same generator, cores
// and traffic.
//
//   dpdk_switch EAL-OPTIONS -- [--adapter ref|hv|hv-copy] [--rxq N] [--txq N] [--mbufs N]
//   dpdk_switch --list-adapters
//
// The EAL options are testpmd's (-l 0,1 --main-lcore 0 --no-pci --vdev=net_memif...):
// the first worker lcore forwards, the main lcore reads commands on stdin:
//   stats  prints  dpdk_switch.stats rx=.. tx=.. busy_cycles=.. ...  (cumulative)
//   quit   (or end of input, SIGINT, SIGTERM) stops, prints the final stats, exits.
// Like testpmd, RX queue q of a port is served together with TX queue q of
// every egress port, so queue counts must match the generator's (2).

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <memory>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>

#include "switch_adapter.hpp"

namespace hv::bench {

namespace {

constexpr int kMaxPorts = 16;
constexpr int kMaxQueues = 8;
constexpr uint16_t kBurst = 32;       // testpmd's default packets per burst
constexpr unsigned kMbufCache = 250;  // testpmd's DEF_MBUF_CACHE

volatile sig_atomic_t g_signalled = 0;

void on_signal(int) {
    g_signalled = 1;
}

// Counters the forwarding lcore writes (single writer) and the main lcore reads.
struct FwdCounters {
    std::atomic<uint64_t> rx{0};
    std::atomic<uint64_t> bursts{0};  // RX bursts that brought packets (rx / bursts: the mean burst)
    std::atomic<uint64_t> tx{0};
    std::atomic<uint64_t> busy_cycles{0};  // from rx_burst to the last flush, bursts with packets only
    std::atomic<uint64_t> drop_tx{0};      // the egress ring was full
    std::atomic<uint64_t> drop_nobuf{0};   // no mbuf for an egress copy, or the frame did not fit one

    static void add(std::atomic<uint64_t>& c, uint64_t n) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
};

// Free TX mbufs shared by every TxPort of the one forwarding lcore. After a
// burst has been forwarded (every frame already copied into its own TX mbuf),
// the burst's RX mbufs are reset and kept here as the next TX mbufs, instead
// of a mempool put of the RX burst and a mempool get for the TX frames: the
// harness then does the mempool work testpmd io does, and still copies every
// delivered frame once, into an mbuf other than the one it arrived in.
class MbufStash {
  public:
    static constexpr uint16_t kCapacity = 2 * kBurst;

    void init(rte_mempool* pool) { pool_ = pool; }

    // One TX mbuf, or nullptr when the pool is empty.
    rte_mbuf* get() {
        if (__builtin_expect(n_ == 0, 0) && !refill()) return nullptr;
        return mbufs_[--n_];
    }

    // Takes the n RX mbufs of a finished burst (nullptr: passed on to a TX
    // burst, not ours any more): keeps what fits, frees the rest.
    void recycle(rte_mbuf** rx, uint16_t n) {
        uint16_t i = 0;
        for (; i < n && n_ < kCapacity; ++i) {
            rte_mbuf* m = rx[i];
            if (m == nullptr) continue;
            // Only a plain single-segment mbuf of our pool is reusable as is.
            if (m->nb_segs != 1 || m->pool != pool_) {
                rte_pktmbuf_free(m);
                continue;
            }
            // Drops our reference; nullptr if someone else still holds one.
            m = rte_pktmbuf_prefree_seg(m);
            if (m == nullptr) continue;
            // memif RX took it from the pool reset (rte_pktmbuf_alloc) and
            // only set lengths and port; prefree_seg left next and nb_segs
            // clean. Put back what a TX user may have moved.
            m->data_off = RTE_PKTMBUF_HEADROOM;
            m->ol_flags = 0;
            mbufs_[n_++] = m;
        }
        if (i < n) rte_pktmbuf_free_bulk(rx + i, n - i);
    }

    void release() {
        if (n_ != 0) rte_pktmbuf_free_bulk(mbufs_, n_);
        n_ = 0;
    }

  private:
    [[gnu::noinline]] bool refill() {
        // In bulk: one mempool cache access per kBurst frames.
        if (rte_pktmbuf_alloc_bulk(pool_, mbufs_, kBurst) != 0) return false;
        n_ = kBurst;
        return true;
    }

    rte_mempool* pool_ = nullptr;
    rte_mbuf* mbufs_[kCapacity] = {};
    uint16_t n_ = 0;
};

// The received frame the adapter is forwarding now (TxPort::pass).
struct CurrentFrame {
    rte_mbuf* mbuf = nullptr;  // nullptr: none that can be passed
    bool given = false;        // a TX burst holds the forward loop's reference
};

class MbufTxPort final : public TxPort {
  public:
    void init(uint16_t port_id, MbufStash* stash, uint32_t max_len, FwdCounters* counters, CurrentFrame* current) {
        port_id_ = port_id;
        current_ = current;
        stash_ = stash;
        counters_ = counters;
        max_len_ = max_len;
    }
    void set_queue(uint16_t q) { queue_ = q; }

    uint8_t* reserve(uint32_t len) override {
        if (__builtin_expect(len > max_len_, 0)) return no_buffer();
        if (__builtin_expect(pending_n_ == kBurst, 0)) flush();
        rte_mbuf* m = stash_->get();
        if (__builtin_expect(m == nullptr, 0)) return no_buffer();
        m->data_len = static_cast<uint16_t>(len);
        m->pkt_len = len;
        pending_[pending_n_++] = m;
        return rte_pktmbuf_mtod(m, uint8_t*);
    }

    // The RX mbuf being forwarded goes out itself: memif TX copies it into the
    // peer's ring and frees it, as testpmd io's TX does. The first pass hands
    // the harness's reference over (the forward loop then does not recycle
    // that mbuf); a flood's further passes each add a reference.
    bool pass(const uint8_t* frame, uint32_t len) override {
        rte_mbuf* m = current_->mbuf;
        if (__builtin_expect(m == nullptr || frame != rte_pktmbuf_mtod(m, const uint8_t*) || len != m->data_len, 0)) {
            no_buffer();  // not the frame being forwarded: nothing to queue
            return false;
        }
        if (__builtin_expect(pending_n_ == kBurst, 0)) flush();
        if (__builtin_expect(current_->given, 0))
            rte_mbuf_refcnt_update(m, 1);
        else
            current_->given = true;
        pending_[pending_n_++] = m;
        return true;
    }

    // Out of line: reserve() stays a leaf with no register saves.
    [[gnu::noinline]] void flush() override {
        if (pending_n_ == 0) return;
        const uint16_t sent = rte_eth_tx_burst(port_id_, queue_, pending_, pending_n_);
        if (sent < pending_n_) {
            rte_pktmbuf_free_bulk(pending_ + sent, pending_n_ - sent);
            FwdCounters::add(counters_->drop_tx, pending_n_ - sent);
        }
        FwdCounters::add(counters_->tx, sent);
        pending_n_ = 0;
    }

  private:
    [[gnu::noinline, gnu::cold]] uint8_t* no_buffer() {
        FwdCounters::add(counters_->drop_nobuf, 1);
        return nullptr;
    }

    uint16_t port_id_ = 0;
    uint16_t queue_ = 0;
    uint16_t pending_n_ = 0;
    uint32_t max_len_ = 0;
    CurrentFrame* current_ = nullptr;
    MbufStash* stash_ = nullptr;
    FwdCounters* counters_ = nullptr;
    rte_mbuf* pending_[kBurst] = {};
};

struct Harness {
    int ports = 0;
    uint16_t rxq = 2;
    uint16_t txq = 2;
    MbufTxPort tx[kMaxPorts];
    MbufStash stash;
    CurrentFrame current;
    SwitchAdapter* adapter = nullptr;
    FwdCounters counters;
    std::atomic<bool> quit{false};
};

int forward_loop(void* arg) {
    Harness& h = *static_cast<Harness*>(arg);
    rte_mbuf* rx[kBurst];
    while (!h.quit.load(std::memory_order_relaxed)) {
        for (int p = 0; p < h.ports; ++p) {
            for (uint16_t q = 0; q < h.rxq; ++q) {
                // Busy cycles only, as testpmd (--record-core-cycles) and
                // OVS's pmd-stats-show count them: empty polls are idle time.
                const uint64_t t0 = rte_rdtsc();
                const uint16_t n = rte_eth_rx_burst(static_cast<uint16_t>(p), q, rx, kBurst);
                if (n == 0) continue;
                const uint16_t tq = static_cast<uint16_t>(q % h.txq);
                for (int e = 0; e < h.ports; ++e) h.tx[e].set_queue(tq);
                h.adapter->begin_burst(p, t0);
                for (uint16_t i = 0; i < n; ++i) {
                    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void*));
                    rte_mbuf* m = rx[i];
                    // memif RX fills chained mbufs only for frames larger than
                    // one mbuf, which this harness never sends: the first
                    // segment is the whole frame (a chain is never passed).
                    h.current = CurrentFrame{m->nb_segs == 1 ? m : nullptr, false};
                    h.adapter->forward(p, rte_pktmbuf_mtod(m, const uint8_t*), m->data_len);
                    if (h.current.given) rx[i] = nullptr;  // gone with a TX burst
                }
                h.current = CurrentFrame{};
                h.adapter->end_burst(p);
                // The adapter flushes what it sent; this only catches leftovers
                // so that nothing waits across a queue switch.
                for (int e = 0; e < h.ports; ++e) h.tx[e].flush();
                h.stash.recycle(rx, n);
                FwdCounters::add(h.counters.rx, n);
                FwdCounters::add(h.counters.bursts, 1);
                FwdCounters::add(h.counters.busy_cycles, rte_rdtsc() - t0);
            }
        }
    }
    return 0;
}

void print_stats(const Harness& h, const char* event) {
    const uint64_t rx = h.counters.rx.load(std::memory_order_relaxed);
    const uint64_t busy = h.counters.busy_cycles.load(std::memory_order_relaxed);
    // Integer cycles per packet with two decimals, so no floating point is needed.
    const uint64_t cpp100 = rx ? busy * 100 / rx : 0;
    printf(
        "%s adapter=%s rx=%lu bursts=%lu tx=%lu busy_cycles=%lu cycles_per_packet=%lu.%02lu drop_tx=%lu drop_nobuf=%lu "
        "tsc_hz=%lu\n",
        event, h.adapter->name(), rx, h.counters.bursts.load(std::memory_order_relaxed),
        h.counters.tx.load(std::memory_order_relaxed), busy, cpp100 / 100, cpp100 % 100,
        h.counters.drop_tx.load(std::memory_order_relaxed), h.counters.drop_nobuf.load(std::memory_order_relaxed),
        rte_get_tsc_hz());
    fflush(stdout);
}

[[noreturn]] void usage_exit(const char* msg) {
    fprintf(stderr,
            "dpdk_switch: %s\nusage: dpdk_switch EAL-OPTIONS -- [--adapter ref|hv|hv-copy] [--rxq N] [--txq N] "
            "[--mbufs N]\n",
            msg);
    exit(2);
}

long parse_count(const char* s, long lo, long hi) {
    char* end = nullptr;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) usage_exit("bad number");
    return v;
}

bool setup_port(uint16_t port, uint16_t rxq, uint16_t txq, rte_mempool* pool) {
    rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    int rc = rte_eth_dev_configure(port, rxq, txq, &conf);
    if (rc != 0) {
        fprintf(stderr, "dpdk_switch: port %u: configure failed (%d)\n", port, rc);
        return false;
    }
    const int socket = rte_eth_dev_socket_id(port);
    const unsigned sock = socket < 0 ? 0 : static_cast<unsigned>(socket);
    // 0 descriptors: the driver's default, as testpmd (memif sizes its rings from devargs).
    for (uint16_t q = 0; q < rxq; ++q) {
        rc = rte_eth_rx_queue_setup(port, q, 0, sock, nullptr, pool);
        if (rc != 0) {
            fprintf(stderr, "dpdk_switch: port %u: rx queue %u setup failed (%d)\n", port, q, rc);
            return false;
        }
    }
    for (uint16_t q = 0; q < txq; ++q) {
        rc = rte_eth_tx_queue_setup(port, q, 0, sock, nullptr);
        if (rc != 0) {
            fprintf(stderr, "dpdk_switch: port %u: tx queue %u setup failed (%d)\n", port, q, rc);
            return false;
        }
    }
    rc = rte_eth_dev_start(port);
    if (rc != 0) {
        fprintf(stderr, "dpdk_switch: port %u: start failed (%d)\n", port, rc);
        return false;
    }
    return true;
}

int run(int argc, char** argv) {
    if (argc == 2 && strcmp(argv[1], "--list-adapters") == 0) {
        // Before EAL init: needs no hugepages, for tools/bench_net.py to see what this build has.
        printf("ref%s\n", make_hv_adapter() ? " hv hv-copy" : "");
        return 0;
    }
    const int eal_args = rte_eal_init(argc, argv);
    if (eal_args < 0) {
        fprintf(stderr, "dpdk_switch: EAL init failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    argc -= eal_args;
    argv += eal_args;

    const char* adapter_name = "ref";
    Harness* hp = new Harness();  // large (mbuf arrays per port); outlives the lcore
    Harness& h = *hp;
    long mbufs = 32768;
    for (int i = 1; i < argc; ++i) {
        const bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--adapter") == 0 && has_value) {
            adapter_name = argv[++i];
        } else if (strcmp(argv[i], "--rxq") == 0 && has_value) {
            h.rxq = static_cast<uint16_t>(parse_count(argv[++i], 1, kMaxQueues));
        } else if (strcmp(argv[i], "--txq") == 0 && has_value) {
            h.txq = static_cast<uint16_t>(parse_count(argv[++i], 1, kMaxQueues));
        } else if (strcmp(argv[i], "--mbufs") == 0 && has_value) {
            mbufs = parse_count(argv[++i], 1024, 1 << 22);
        } else {
            usage_exit("unknown option");
        }
    }

    std::unique_ptr<SwitchAdapter> adapter;
    if (strcmp(adapter_name, "ref") == 0) {
        adapter = make_reference_adapter();
    } else if (strcmp(adapter_name, "hv") == 0 || strcmp(adapter_name, "hv-copy") == 0) {
        adapter = make_hv_adapter(strcmp(adapter_name, "hv-copy") == 0);
        if (!adapter) {
            fprintf(stderr,
                    "dpdk_switch: this build has no switch core (kernel/net/switch.hpp): adapter hv unavailable\n");
            return 3;
        }
    } else {
        usage_exit("unknown adapter");
    }
    h.adapter = adapter.get();

    const unsigned fwd_lcore = rte_get_next_lcore(-1, 1, 0);
    if (fwd_lcore >= RTE_MAX_LCORE) {
        fprintf(stderr, "dpdk_switch: needs a worker lcore besides the main one (-l 0,1 --main-lcore 0)\n");
        return 2;
    }
    const unsigned count = rte_eth_dev_count_avail();
    if (count < 2 || count > kMaxPorts) {
        fprintf(stderr, "dpdk_switch: needs 2..%d ports, found %u (--vdev=net_memif...)\n", kMaxPorts, count);
        return 2;
    }
    h.ports = static_cast<int>(count);

    rte_mempool* pool = rte_pktmbuf_pool_create("dpdk_switch", static_cast<unsigned>(mbufs), kMbufCache, 0,
                                                RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
    if (pool == nullptr) {
        fprintf(stderr, "dpdk_switch: mbuf pool: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    h.stash.init(pool);
    const uint32_t max_len = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
    for (int p = 0; p < h.ports; ++p) {
        if (!rte_eth_dev_is_valid_port(static_cast<uint16_t>(p))) {
            fprintf(stderr, "dpdk_switch: ports are not numbered 0..%d\n", h.ports - 1);
            return 2;
        }
        if (!setup_port(static_cast<uint16_t>(p), h.rxq, h.txq, pool)) return 1;
        h.tx[p].init(static_cast<uint16_t>(p), &h.stash, max_len, &h.counters, &h.current);
    }
    TxPort* ports[kMaxPorts];
    for (int p = 0; p < h.ports; ++p) ports[p] = &h.tx[p];
    if (!adapter->attach(ports, h.ports, rte_get_tsc_hz())) {
        fprintf(stderr, "dpdk_switch: adapter %s refused %d ports\n", adapter->name(), h.ports);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;  // no SA_RESTART: a signal ends the blocking fgets below
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    rte_eal_remote_launch(forward_loop, &h, fwd_lcore);
    printf("dpdk_switch.ready adapter=%s ports=%d rxq=%u txq=%u fwd_lcore=%u\n", adapter->name(), h.ports, h.rxq, h.txq,
           fwd_lcore);
    fflush(stdout);

    char line[128];
    while (!g_signalled && fgets(line, sizeof(line), stdin) != nullptr) {
        if (strncmp(line, "stats", 5) == 0) {
            print_stats(h, "dpdk_switch.stats");
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        }
    }
    h.quit.store(true, std::memory_order_relaxed);
    rte_eal_mp_wait_lcore();
    print_stats(h, "dpdk_switch.final");
    const AdapterStats s = adapter->stats();
    printf("dpdk_switch.adapter adapter=%s forwarded=%lu flooded=%lu dropped=%lu\n", adapter->name(), s.forwarded,
           s.flooded, s.dropped);
    fflush(stdout);

    for (int p = 0; p < h.ports; ++p) {
        rte_eth_dev_stop(static_cast<uint16_t>(p));
        rte_eth_dev_close(static_cast<uint16_t>(p));
    }
    h.stash.release();
    adapter.reset();
    rte_mempool_free(pool);
    delete hp;
    rte_eal_cleanup();
    return 0;
}

}  // namespace
}  // namespace hv::bench

int main(int argc, char** argv) {
    return hv::bench::run(argc, argv);
}
