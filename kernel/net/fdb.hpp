#pragma once
// The switch's MAC table (filtering database, IEEE 802.1Q-2018 §8.8): which
// port a (VLAN, MAC) was last seen on. No heap: buckets of 8 ways, chosen by
// a multiplicative hash of the key; a full bucket refuses to learn (the frame
// floods, as for any unknown destination) and is counted. The table has 4096
// entries in the object itself, or any power of two from 256 to 65536 in
// storage given once at boot (set_storage(), [switch] fdb_size).
//
// Per-port limit: a port may hold at most its limit of learned entries (one
// per VLAN and MAC); beyond it, learn() refuses (LearnResult::limit), so one
// guest inventing source MACs cannot fill the table for everyone. Static
// entries do not count. An entry that ages out, is flushed or moves away gives
// its place back to its port. Because ageing is lazy, a port at its limit
// sweeps out its own expired entries before it is refused, at most once per
// expiry: it knows when its oldest entry can expire next.
//
// Concurrency: lookups run on every forwarding CPU at once and take no lock:
// a sequence counter (seqlock) tells them when a writer changed the table
// under them, and they retry (after a few tries they take the lock, so a
// stream of writers cannot starve a reader). Writers (learning a new MAC, a
// move, flushes, ageing sweeps) serialize on a spinlock and are rare: a known
// source on its known port only refreshes its timestamp, with one
// compare-and-swap of its own word, and only once per 1/64 of the ageing time.
//
// Ageing is lazy: an entry older than the ageing time is treated as absent by
// every lookup and its slot is reused by learning; age() sweeps them out for
// the console. Static entries (a port's static MAC) never age and never move.

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/result.hpp"
#include "kernel/lib/spinlock.hpp"
#include "kernel/net/frame.hpp"
#include "kernel/net/mac_addr.hpp"
#include "kernel/net/port_config.hpp"

namespace hv::net {

enum class LearnResult : uint8_t {
    refreshed,        // already there on this port
    learned,          // new entry
    moved,            // was on another port (a station moved)
    static_conflict,  // a static entry of another port: not moved
    full,             // no free or expired way in its bucket: not learned
    limit,            // the port already holds its limit of learned entries: not learned
};
const char* learn_result_name(LearnResult r);

// How the data path's source lookup found the sender's MAC.
enum class SourceState : uint8_t {
    known,         // on the ingress port (timestamp refreshed if due): nothing to learn
    unknown,       // absent or aged out: learn
    other_port,    // a dynamic entry on another port: learn (a move)
    other_static,  // another port's static MAC: a spoof, never learned
};
const char* source_state_name(SourceState s);

// One entry, for the console.
struct FdbEntry {
    uint16_t vlan;
    MacAddr mac;
    PortId port;
    bool is_static;
    uint64_t age_ns;  // since last seen (0 for static entries)
};

class Fdb {
    struct Bucket;

  public:
    static constexpr size_t kWays = 8;
    static constexpr size_t kDefaultCapacity = 4096;  // entries in the object itself
    static constexpr size_t kMinCapacity = 256;
    static constexpr size_t kMaxCapacity = 65536;  // 1 MiB of buckets
    static constexpr size_t kStorageAlign = 64;

    constexpr Fdb() = default;
    // buckets_ may point into the object itself.
    Fdb(const Fdb&) = delete;
    Fdb& operator=(const Fdb&) = delete;
    static constexpr uint64_t kDefaultAgeingNs = 300ull * 1'000'000'000;  // 802.1Q-2018 §8.8.3 default
    // Timestamps are kept in units of 2^16 ns (65.5 us): 48 bits of them last 584 years.
    static constexpr unsigned kTimeShift = 16;
    static constexpr uint64_t kMinAgeingNs = 1ull << kTimeShift;

    // Clamped to at least kMinAgeingNs. Affects existing entries too.
    void set_ageing_ns(uint64_t ns);
    uint64_t ageing_ns() const { return __atomic_load_n(&ageing_ns_, __ATOMIC_RELAXED); }
    // Mixes a secret into the hash so that a guest cannot aim its MACs at one
    // bucket. Only while the table is empty (at boot).
    void set_hash_seed(uint64_t seed) { seed_ = seed; }

    // A capacity set_storage() accepts: a power of two from kMinCapacity to
    // kMaxCapacity (the bucket is picked by the hash's top bits).
    static constexpr bool valid_capacity(size_t entries) {
        return entries >= kMinCapacity && entries <= kMaxCapacity && (entries & (entries - 1)) == 0;
    }
    // Bytes of storage a table of `entries` needs.
    static constexpr size_t storage_bytes(size_t entries) { return entries / kWays * sizeof(Bucket); }
    // Moves the table to mem (at least storage_bytes(entries) bytes, aligned
    // to kStorageAlign), which it clears and uses from now on. Only at boot,
    // before anything was learned and with no reader running; mem must stay
    // valid as long as the table is used.
    Result<void> set_storage(void* mem, size_t bytes, size_t entries);
    size_t capacity() const { return bucket_count_ * kWays; }

    // The most learned (dynamic) entries port may hold; 0 = no limit (the
    // default). Ports from kMaxPorts up are never limited.
    void set_port_limit(PortId port, uint32_t max);
    uint32_t port_limit(PortId port) const {
        return port < kMaxPorts ? __atomic_load_n(&limit_[port], __ATOMIC_RELAXED) : 0;
    }
    // The port's live learned entries (static ones not counted); walks the table.
    size_t port_count(PortId port, uint64_t now_ns) const;

    // The port for (vlan, mac), or kNoPort when absent or aged out.
    PortId lookup(uint16_t vlan, uint64_t mac, uint64_t now_ns) const;

    // The data path's one table read per frame: the source (to know whether
    // to learn) and, when want_dst, the destination (kNoPort when unknown),
    // under one sequence check. Refreshes the source's timestamp when due.
    //
    // *reuse_until_ns: when the source is known, a time before which the same
    // lookup gives the same answer and needs no refresh, provided generation()
    // has not changed (no entry was added, moved or removed since); 0 when the
    // answer must not be reused. The switch keeps it per ingress port
    // (Switch::FlowMemo) so a stream of frames of one flow reads the table once.
    PortId forward_lookup(uint16_t vlan, uint64_t src, uint64_t dst, bool want_dst, PortId in, uint64_t now_ns,
                          SourceState* src_state, uint64_t* reuse_until_ns = nullptr);

    // Changes with every write to the table (and every change of the ageing
    // time); even while no writer is inside. A 32-bit counter: an answer is
    // reused at most 1/64 of the ageing time, far too short for it to wrap.
    uint32_t generation() const { return __atomic_load_n(&seq_, __ATOMIC_ACQUIRE); }

    // Takes the lock. make_static: a permanent entry (the port's static MAC),
    // which the port's limit does not apply to.
    LearnResult learn(uint16_t vlan, uint64_t mac, PortId port, uint64_t now_ns, bool make_static = false);

    // Removes the port's dynamic entries (its guest stopped or moved away);
    // static ones stay. Returns how many were removed.
    size_t flush_port(PortId port);
    // Removes the dynamic entries of mac on every VLAN (it just became a
    // port's static MAC: whoever used it before must not keep it). Returns how many.
    size_t forget_mac(uint64_t mac);
    // Removes every aged-out dynamic entry; returns how many.
    size_t age(uint64_t now_ns);

    // Calls fn(const FdbEntry&) for each live entry, bucket by bucket; each
    // bucket is copied consistently and fn runs outside the lock.
    template <typename Fn>
    void for_each(uint64_t now_ns, Fn&& fn) const {
        for (size_t b = 0; b < bucket_count_; ++b) {
            Bucket copy;
            read_consistent([&] {
                for (size_t w = 0; w < kWays; ++w) {
                    copy.keys[w] = __atomic_load_n(&buckets_[b].keys[w], __ATOMIC_RELAXED);
                    copy.values[w] = __atomic_load_n(&buckets_[b].values[w], __ATOMIC_RELAXED);
                }
                return 0;
            });
            for (size_t w = 0; w < kWays; ++w) {
                FdbEntry e;
                if (decode(copy.keys[w], copy.values[w], now_ns, &e)) fn(e);
            }
        }
    }
    size_t count(uint64_t now_ns) const;

    // Totals since boot (written under the lock).
    uint64_t learned_total() const { return __atomic_load_n(&learned_, __ATOMIC_RELAXED); }
    uint64_t moved_total() const { return __atomic_load_n(&moved_, __ATOMIC_RELAXED); }
    uint64_t full_total() const { return __atomic_load_n(&full_, __ATOMIC_RELAXED); }
    uint64_t limited_total() const { return __atomic_load_n(&limited_, __ATOMIC_RELAXED); }

  private:
    // keys: vlan << 48 | mac (never 0, since a valid VLAN is never 0); 0 = empty.
    // values: port in bits 0..11, static in bit 12, last seen (>> kTimeShift) in bits 16..63.
    struct alignas(64) Bucket {
        uint64_t keys[kWays];
        uint64_t values[kWays];
    };
    static_assert(sizeof(Bucket) == 128 && alignof(Bucket) == kStorageAlign);
    static constexpr uint64_t kMacMask = 0xFFFF'FFFF'FFFFull;
    static constexpr uint64_t kPortMask = 0xFFF;
    static constexpr uint64_t kStaticBit = 1ull << 12;
    static constexpr unsigned kValueTimeShift = 16;

    static uint64_t make_key(uint16_t vlan, uint64_t mac) { return static_cast<uint64_t>(vlan) << 48 | mac; }
    static uint64_t make_value(PortId port, bool is_static, uint64_t now_u) {
        return (port & kPortMask) | (is_static ? kStaticBit : 0) | now_u << kValueTimeShift;
    }
    static uint64_t value_time(uint64_t v) { return v >> kValueTimeShift; }
    static PortId value_port(uint64_t v) { return static_cast<PortId>(v & kPortMask); }
    static bool value_static(uint64_t v) { return (v & kStaticBit) != 0; }
    static uint64_t units(uint64_t ns) { return ns >> kTimeShift; }

    // The top bits of the product pick the bucket (bucket_count_ is a power of two).
    size_t bucket_of(uint64_t key) const {
        return static_cast<size_t>(((key ^ seed_) * 0x9E3779B97F4A7C15ull) >> bucket_shift_);
    }
    // Age of a value in time units (0 if the clock of this CPU is behind).
    static uint64_t age_units(uint64_t v, uint64_t now_u) {
        uint64_t seen = value_time(v);
        return now_u > seen ? now_u - seen : 0;
    }
    bool expired(uint64_t v, uint64_t now_u) const {
        return !value_static(v) && age_units(v, now_u) > __atomic_load_n(&ageing_u_, __ATOMIC_RELAXED);
    }
    bool decode(uint64_t key, uint64_t value, uint64_t now_ns, FdbEntry* e) const;

    // Runs f (which reads with relaxed atomic loads) until it saw no writer.
    template <typename F>
    auto read_consistent(F&& f) const {
        for (int i = 0; i < kOptimisticReads; ++i) {
            uint32_t s1 = __atomic_load_n(&seq_, __ATOMIC_ACQUIRE);
            if (s1 & 1) {
                __builtin_ia32_pause();
                continue;
            }
            auto r = f();
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&seq_, __ATOMIC_RELAXED) == s1) return r;
        }
        LockGuard g(lock_);
        return f();
    }
    void write_begin();
    void write_end();
    // Clears every entry for which dead(key, value) holds, bucket by bucket.
    template <typename Dead>
    size_t remove_if(Dead&& dead);
    // Way of key in bucket b, or -1. Relaxed loads: inside read_consistent or under the lock.
    int find(const Bucket& bk, uint64_t key) const;
    // One attempt of learn(). When the port is at its limit and one of its
    // entries may have expired since its last sweep, sets *sweep_due (if given).
    LearnResult try_learn(uint64_t key, PortId port, uint64_t now_u, bool make_static, bool* sweep_due);
    // Under the lock: does a new learned entry of port exceed its limit?
    bool at_limit(PortId port, uint64_t now_u, bool* sweep_due) const;
    // Under the lock: a dynamic entry of port appears in or leaves the table.
    void charge(PortId port) {
        if (port < kMaxPorts) __atomic_store_n(&used_[port], used_[port] + 1, __ATOMIC_RELAXED);
    }
    void release(PortId port) {
        if (port < kMaxPorts) __atomic_store_n(&used_[port], used_[port] - 1, __ATOMIC_RELAXED);
    }
    // Removes the port's expired entries and notes when the next one can expire.
    void reclaim(PortId port, uint64_t now_u);

    static constexpr int kOptimisticReads = 4;

    static constexpr size_t kDefaultBuckets = kDefaultCapacity / kWays;
    Bucket default_buckets_[kDefaultBuckets] = {};
    // What every lookup reads besides its buckets, in one cache line.
    alignas(64) uint32_t seq_ = 0;  // odd while a writer is inside
    mutable Spinlock lock_;
    Bucket* buckets_ = default_buckets_;  // default_buckets_ or set_storage()'s; fixed once ports exist
    unsigned bucket_shift_ = 64 - __builtin_ctzll(kDefaultBuckets);
    uint64_t seed_ = 0;
    uint64_t ageing_ns_ = kDefaultAgeingNs;  // as set; the data path uses ageing_u_
    uint64_t ageing_u_ = kDefaultAgeingNs >> kTimeShift;
    uint64_t refresh_u_ = (kDefaultAgeingNs >> kTimeShift) / 64;
    uint64_t learned_ = 0;
    uint64_t moved_ = 0;
    uint64_t full_ = 0;
    uint64_t limited_ = 0;
    size_t bucket_count_ = kDefaultBuckets;
    // Per port: the limit (0 = none), its dynamic entries in the table (live
    // or expired but not yet removed; changed under the lock), and the time
    // unit from which one of them may have expired (reclaim() sets it).
    uint32_t limit_[kMaxPorts] = {};
    uint32_t used_[kMaxPorts] = {};
    uint64_t reclaim_at_u_[kMaxPorts] = {};
};

}  // namespace hv::net
