#include "kernel/net/fdb.hpp"

namespace hv::net {

const char* learn_result_name(LearnResult r) {
    switch (r) {
        case LearnResult::refreshed: return "refreshed";
        case LearnResult::learned: return "learned";
        case LearnResult::moved: return "moved";
        case LearnResult::static_conflict: return "static_conflict";
        case LearnResult::full: return "full";
        case LearnResult::limit: return "limit";
    }
    return "unknown";
}

const char* source_state_name(SourceState s) {
    switch (s) {
        case SourceState::known: return "known";
        case SourceState::unknown: return "unknown";
        case SourceState::other_port: return "other_port";
        case SourceState::other_static: return "other_static";
    }
    return "invalid";
}

Result<void> Fdb::set_storage(void* mem, size_t bytes, size_t entries) {
    if (!valid_capacity(entries))
        return make_error(Errc::invalid_argument, "MAC table size is not a power of two from 256 to 65536", entries);
    if (mem == nullptr || reinterpret_cast<uintptr_t>(mem) % kStorageAlign != 0)
        return make_error(Errc::invalid_argument, "MAC table storage is not 64-byte aligned",
                          reinterpret_cast<uintptr_t>(mem));
    if (bytes < storage_bytes(entries)) return make_error(Errc::invalid_argument, "MAC table storage too small", bytes);
    LockGuard g(lock_);
    if (learned_total() != 0) return make_error(Errc::invalid_argument, "MAC table storage changed after learning");
    size_t n = entries / kWays;
    Bucket* b = static_cast<Bucket*>(mem);
    for (size_t i = 0; i < n; ++i) new (&b[i]) Bucket{};
    buckets_ = b;
    bucket_count_ = n;
    bucket_shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(n));
    return ok_result();
}

void Fdb::set_port_limit(PortId port, uint32_t max) {
    if (port >= kMaxPorts) return;
    LockGuard g(lock_);
    __atomic_store_n(&limit_[port], max, __ATOMIC_RELAXED);
    __atomic_store_n(&reclaim_at_u_[port], 0, __ATOMIC_RELAXED);
}

size_t Fdb::port_count(PortId port, uint64_t now_ns) const {
    size_t n = 0;
    for_each(now_ns, [&](const FdbEntry& e) { n += e.port == port && !e.is_static; });
    return n;
}

void Fdb::set_ageing_ns(uint64_t ns) {
    if (ns < kMinAgeingNs) ns = kMinAgeingNs;
    uint64_t u = units(ns);
    __atomic_store_n(&ageing_ns_, ns, __ATOMIC_RELAXED);
    __atomic_store_n(&ageing_u_, u, __ATOMIC_RELAXED);
    // Refreshing a timestamp costs a write to a line other CPUs read: do it at
    // most 64 times per ageing period. An entry thus ages out between 63/64 of
    // the ageing time and the ageing time after its last frame.
    // A writer for generation(): answers reused under the old time are dropped.
    write_begin();
    __atomic_store_n(&refresh_u_, u / 64, __ATOMIC_RELAXED);
    // reclaim()'s notes of when entries expire assumed the old ageing time
    // (under the lock, as reclaim() writes them: see there).
    for (uint64_t& at : reclaim_at_u_) __atomic_store_n(&at, 0, __ATOMIC_RELAXED);
    write_end();
}

int Fdb::find(const Bucket& bk, uint64_t key) const {
    for (size_t w = 0; w < kWays; ++w)
        if (__atomic_load_n(&bk.keys[w], __ATOMIC_RELAXED) == key) return static_cast<int>(w);
    return -1;
}

void Fdb::write_begin() {
    lock_.lock();
    __atomic_store_n(&seq_, seq_ + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

void Fdb::write_end() {
    __atomic_store_n(&seq_, seq_ + 1, __ATOMIC_RELEASE);
    lock_.unlock();
}

PortId Fdb::lookup(uint16_t vlan, uint64_t mac, uint64_t now_ns) const {
    uint64_t key = make_key(vlan, mac);
    const Bucket& bk = buckets_[bucket_of(key)];
    uint64_t now_u = units(now_ns);
    return read_consistent([&]() -> PortId {
        int w = find(bk, key);
        if (w < 0) return kNoPort;
        uint64_t v = __atomic_load_n(&bk.values[w], __ATOMIC_RELAXED);
        return expired(v, now_u) ? kNoPort : value_port(v);
    });
}

PortId Fdb::forward_lookup(uint16_t vlan, uint64_t src, uint64_t dst, bool want_dst, PortId in, uint64_t now_ns,
                           SourceState* src_state, uint64_t* reuse_until_ns) {
    if (reuse_until_ns != nullptr) *reuse_until_ns = 0;
    const uint32_t gen = generation();
    uint64_t skey = make_key(vlan, src), dkey = make_key(vlan, dst);
    // The buckets' addresses once, outside the retry loop (its fences would reload buckets_).
    Bucket& sb = buckets_[bucket_of(skey)];
    const Bucket& db = buckets_[bucket_of(dkey)];
    uint64_t now_u = units(now_ns);
    struct Seen {
        int sw;
        uint64_t sv;
        PortId dport;
        uint64_t dv;  // the destination's value (0: none or expired)
    };
    Seen s = read_consistent([&]() -> Seen {
        Seen r{find(sb, skey), 0, kNoPort, 0};
        if (r.sw >= 0) r.sv = __atomic_load_n(&sb.values[r.sw], __ATOMIC_RELAXED);
        if (want_dst) {
            int dw = find(db, dkey);
            if (dw >= 0) {
                uint64_t dv = __atomic_load_n(&db.values[dw], __ATOMIC_RELAXED);
                if (!expired(dv, now_u)) {
                    r.dport = value_port(dv);
                    r.dv = dv;
                }
            }
        }
        return r;
    });

    if (s.sw < 0 || expired(s.sv, now_u)) {
        *src_state = SourceState::unknown;
    } else if (value_port(s.sv) != in) {
        *src_state = value_static(s.sv) ? SourceState::other_static : SourceState::other_port;
    } else {
        *src_state = SourceState::known;
        const uint64_t refresh_u = __atomic_load_n(&refresh_u_, __ATOMIC_RELAXED);
        // Until when this answer holds: the source needs no refresh and the
        // destination (if known) has not expired. An unknown destination can
        // only become known by a write. Static entries neither age nor refresh.
        uint64_t until_u = ~0ull >> kTimeShift;
        bool reusable = true;
        if (!value_static(s.sv)) {
            uint64_t seen = value_time(s.sv);
            if (age_units(s.sv, now_u) > refresh_u) {
                // Only this word changes; if a writer replaced it meanwhile the
                // CAS fails and the writer's value stands.
                uint64_t expected = s.sv;
                reusable = __atomic_compare_exchange_n(&sb.values[s.sw], &expected, make_value(in, false, now_u), false,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED);
                seen = now_u;
            }
            until_u = seen + refresh_u + 1;
        }
        if (s.dv != 0 && !value_static(s.dv)) {
            const uint64_t d_until = value_time(s.dv) + __atomic_load_n(&ageing_u_, __ATOMIC_RELAXED) + 1;
            if (d_until < until_u) until_u = d_until;
        }
        // The table must not have changed while it was read (a writer inside
        // makes gen odd, one that came and went changes it).
        if (reuse_until_ns != nullptr && reusable && (gen & 1) == 0 && generation() == gen && until_u > now_u)
            *reuse_until_ns = until_u << kTimeShift;
    }
    return s.dport;
}

bool Fdb::at_limit(PortId port, uint64_t now_u, bool* sweep_due) const {
    if (port >= kMaxPorts) return false;
    uint32_t max = __atomic_load_n(&limit_[port], __ATOMIC_RELAXED);
    if (max == 0 || used_[port] < max) return false;
    // used_ counts expired entries that are still in the table too; before
    // reclaim_at_u_ none of the port's entries can have expired.
    if (sweep_due && now_u >= __atomic_load_n(&reclaim_at_u_[port], __ATOMIC_RELAXED)) *sweep_due = true;
    return true;
}

LearnResult Fdb::try_learn(uint64_t key, PortId port, uint64_t now_u, bool make_static, bool* sweep_due) {
    Bucket& bk = buckets_[bucket_of(key)];
    LearnResult result;
    write_begin();
    int w = find(bk, key);
    if (w >= 0) {
        uint64_t v = __atomic_load_n(&bk.values[w], __ATOMIC_RELAXED);  // readers CAS it
        bool live = !expired(v, now_u);
        PortId old = value_port(v);
        if (value_static(v) && old != port) {
            result = LearnResult::static_conflict;
        } else {
            // The entry's place in the limits: it leaves its old port's count
            // (if dynamic) and joins the new port's (if still dynamic).
            bool was_dynamic = !value_static(v);
            bool stays_dynamic = was_dynamic && !make_static;
            if (stays_dynamic && old != port && at_limit(port, now_u, sweep_due)) {
                result = LearnResult::limit;
            } else {
                result = (live && old == port) ? LearnResult::refreshed
                         : live                ? LearnResult::moved
                                               : LearnResult::learned;
                __atomic_store_n(&bk.values[w], make_value(port, !stays_dynamic, now_u), __ATOMIC_RELAXED);
                if (was_dynamic) release(old);
                if (stays_dynamic) charge(port);
            }
        }
    } else if (!make_static && at_limit(port, now_u, sweep_due)) {
        result = LearnResult::limit;
    } else {
        int free_way = -1;
        for (size_t i = 0; i < kWays && free_way < 0; ++i)
            if (bk.keys[i] == 0 || expired(__atomic_load_n(&bk.values[i], __ATOMIC_RELAXED), now_u))
                free_way = static_cast<int>(i);
        if (free_way < 0) {
            result = LearnResult::full;
        } else {
            // An expired way is dynamic (static entries never expire): its port gets the place back.
            if (bk.keys[free_way] != 0) release(value_port(__atomic_load_n(&bk.values[free_way], __ATOMIC_RELAXED)));
            __atomic_store_n(&bk.values[free_way], make_value(port, make_static, now_u), __ATOMIC_RELAXED);
            __atomic_store_n(&bk.keys[free_way], key, __ATOMIC_RELAXED);
            if (!make_static) charge(port);
            result = LearnResult::learned;
        }
    }
    switch (result) {
        case LearnResult::learned: learned_++; break;
        case LearnResult::moved: moved_++; break;
        case LearnResult::full: full_++; break;
        case LearnResult::limit:  // counted by learn(), once per call
        case LearnResult::refreshed:
        case LearnResult::static_conflict: break;
    }
    write_end();
    return result;
}

LearnResult Fdb::learn(uint16_t vlan, uint64_t mac, PortId port, uint64_t now_ns, bool make_static) {
    uint64_t key = make_key(vlan, mac);
    uint64_t now_u = units(now_ns);
    bool sweep_due = false;
    LearnResult r = try_learn(key, port, now_u, make_static, &sweep_due);
    if (r == LearnResult::limit && sweep_due) {
        // Some of the port's entries may have aged out: remove them (outside
        // the lock, bucket by bucket) and try once more.
        reclaim(port, now_u);
        r = try_learn(key, port, now_u, make_static, nullptr);
    }
    if (r == LearnResult::limit) __atomic_fetch_add(&limited_, 1, __ATOMIC_RELAXED);
    return r;
}

void Fdb::reclaim(PortId port, uint64_t now_u) {
    uint64_t ageing_u = __atomic_load_n(&ageing_u_, __ATOMIC_RELAXED);
    // The first time unit at which a remaining entry of the port is expired
    // (age > ageing_u). Timestamps only move forward, and entries learned
    // meanwhile are younger, so nothing of the port expires before it.
    uint64_t next = ~0ull;
    remove_if([&](uint64_t, uint64_t v) {
        if (value_port(v) != port || value_static(v)) return false;
        if (age_units(v, now_u) > ageing_u) return true;
        uint64_t at = value_time(v) + ageing_u + 1;
        if (at < next) next = at;
        return false;
    });
    LockGuard g(lock_);
    // None seen (all learned while we looked): look again from the next unit.
    if (next == ~0ull) next = now_u + 1;
    // A new ageing time meanwhile invalidates what was computed with the old one.
    if (__atomic_load_n(&ageing_u_, __ATOMIC_RELAXED) != ageing_u) next = 0;
    __atomic_store_n(&reclaim_at_u_[port], next, __ATOMIC_RELAXED);
}

template <typename Dead>
size_t Fdb::remove_if(Dead&& dead) {
    size_t removed = 0;
    for (size_t b = 0; b < bucket_count_; ++b) {
        Bucket& bk = buckets_[b];
        // Look first without the lock, so that a sweep locks (and makes
        // readers retry) only for the buckets it changes, one at a time.
        bool any = false;
        for (size_t w = 0; w < kWays && !any; ++w) {
            uint64_t k = __atomic_load_n(&bk.keys[w], __ATOMIC_RELAXED);
            any = k != 0 && dead(k, __atomic_load_n(&bk.values[w], __ATOMIC_RELAXED));
        }
        if (!any) continue;
        write_begin();
        for (size_t w = 0; w < kWays; ++w)
            if (uint64_t v = __atomic_load_n(&bk.values[w], __ATOMIC_RELAXED); bk.keys[w] != 0 && dead(bk.keys[w], v)) {
                if (!value_static(v)) release(value_port(v));
                __atomic_store_n(&bk.keys[w], 0, __ATOMIC_RELAXED);
                __atomic_store_n(&bk.values[w], 0, __ATOMIC_RELAXED);
                ++removed;
            }
        write_end();
    }
    return removed;
}

size_t Fdb::flush_port(PortId port) {
    return remove_if([&](uint64_t, uint64_t v) { return value_port(v) == port && !value_static(v); });
}

size_t Fdb::forget_mac(uint64_t mac) {
    return remove_if([&](uint64_t k, uint64_t v) { return (k & kMacMask) == mac && !value_static(v); });
}

size_t Fdb::age(uint64_t now_ns) {
    uint64_t now_u = units(now_ns);
    return remove_if([&](uint64_t, uint64_t v) { return expired(v, now_u); });
}

bool Fdb::decode(uint64_t key, uint64_t value, uint64_t now_ns, FdbEntry* e) const {
    uint64_t now_u = units(now_ns);
    if (key == 0 || expired(value, now_u)) return false;
    e->vlan = static_cast<uint16_t>(key >> 48);
    e->mac = MacAddr::from_u64(key & kMacMask);
    e->port = value_port(value);
    e->is_static = value_static(value);
    e->age_ns = e->is_static ? 0 : age_units(value, now_u) << kTimeShift;
    return true;
}

size_t Fdb::count(uint64_t now_ns) const {
    size_t n = 0;
    for_each(now_ns, [&](const FdbEntry&) { ++n; });
    return n;
}

}  // namespace hv::net
