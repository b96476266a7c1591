#include "kernel/net/switch.hpp"

#include "kernel/net/tx_batch.hpp"

namespace hv::net {

namespace {

// Ethertypes that announce a further VLAN tag. A frame that still carries one
// after the switch removed or assigned its own tag is a double-tagging
// attempt: once the outer tag is stripped (on an access port or a trunk's
// native VLAN) the inner tag would put the frame into another VLAN on the
// next switch (the classic VLAN hopping attack). Q-in-Q is not supported.
bool is_tag_ethertype(uint16_t t) {
    return t == kEthertypeVlan || t == kEthertypeQinQ || t == kEthertypeQinQOld;
}

}  // namespace

// The switch's private copy of a frame's first bytes and the heads receivers
// get. IEEE 802.1Q-2018 §9.3: the tag (TPID 0x8100, TCI = PCP:3 DEI:1 VID:12)
// sits between the source MAC and the original EtherType.
struct Switch::Heads {
    FrameView frame;        // the sender's view, copied field by field (see forward_one)
    uint8_t hdr[kHeadMax];  // bytes [0, n) of the frame as it arrived
    uint32_t n;
    bool tagged_in;   // hdr carries a tag (n == 18)
    uint8_t pcp_dei;  // priority bits of the arriving tag, kept when re-tagging
    uint16_t vlan;
    bool have_tagged = false;
    uint8_t untagged_buf[kEthHeaderLen];
    uint8_t tagged_buf[kHeadMax + kVlanTagLen];
    OutFrame untagged;
    OutFrame tagged;

    void build_untagged() {
        if (!tagged_in) {
            untagged = OutFrame{hdr, n, frame, n};
            return;
        }
        __builtin_memcpy(untagged_buf, hdr, 12);
        __builtin_memcpy(untagged_buf + 12, hdr + 16, 2);
        untagged = OutFrame{untagged_buf, kEthHeaderLen, frame, kHeadMax};
    }
    const OutFrame& get_tagged() {
        if (have_tagged) return tagged;
        __builtin_memcpy(tagged_buf, hdr, 12);
        tagged_buf[12] = kEthertypeVlan >> 8;
        tagged_buf[13] = kEthertypeVlan & 0xFF;
        tagged_buf[14] = static_cast<uint8_t>(pcp_dei | vlan >> 8);
        tagged_buf[15] = static_cast<uint8_t>(vlan);
        if (tagged_in) {
            __builtin_memcpy(tagged_buf + 16, hdr + 16, 2);
            tagged = OutFrame{tagged_buf, kHeadMax, frame, kHeadMax};
        } else {
            __builtin_memcpy(tagged_buf + 16, hdr + 12, n - 12);
            tagged = OutFrame{tagged_buf, n + kVlanTagLen, frame, n};
        }
        have_tagged = true;
        return tagged;
    }
};

Result<void> Switch::validate(const PortConfig& cfg, PortDriver* driver) const {
    if (driver == nullptr) return make_error(Errc::invalid_argument, "port without a driver");
    size_t name_len = 0;
    while (name_len < kPortNameLen && cfg.name[name_len] != '\0') ++name_len;
    if (name_len == 0 || name_len == kPortNameLen)
        return make_error(Errc::invalid_argument, "port name empty or not terminated", name_len);
    switch (cfg.vlan_mode) {
        case VlanMode::access:
            if (!vid_valid(cfg.access_vlan))
                return make_error(Errc::invalid_argument, "access VLAN not in 1..4094", cfg.access_vlan);
            break;
        case VlanMode::trunk:
            if (cfg.allowed.contains(0) || cfg.allowed.contains(4095))
                return make_error(Errc::invalid_argument, "trunk allows VLAN 0 or 4095");
            if (cfg.allowed.empty()) return make_error(Errc::invalid_argument, "trunk allows no VLAN");
            if (cfg.native_vlan != 0 && !cfg.allowed.contains(cfg.native_vlan))
                return make_error(Errc::invalid_argument, "native VLAN not allowed on the trunk", cfg.native_vlan);
            break;
        default: return make_error(Errc::invalid_argument, "VLAN mode", static_cast<uint64_t>(cfg.vlan_mode));
    }
    if (cfg.has_static_mac) {
        if (cfg.static_mac.is_group() || cfg.static_mac.is_zero())
            return make_error(Errc::invalid_argument, "static MAC is not a unicast address", cfg.static_mac.to_u64());
        if (static_owner(cfg.static_mac.to_u64()) != kNoPort)
            return make_error(Errc::invalid_argument, "static MAC already used by another port",
                              cfg.static_mac.to_u64());
    }
    // burst_bytes is 32 bits: always within TokenBucket::kMaxBurstBytes.
    if (cfg.rate_bytes_per_sec != 0 && cfg.burst_bytes < kMaxFrameLen)
        return make_error(Errc::invalid_argument, "burst smaller than a maximal frame", cfg.burst_bytes);
    for (MirrorDir d : cfg.mirror)
        if (static_cast<uint8_t>(d) > static_cast<uint8_t>(MirrorDir::both))
            return make_error(Errc::invalid_argument, "mirror direction", static_cast<uint64_t>(d));
    return ok_result();
}

Result<PortId> Switch::add_port(const PortConfig& cfg, PortDriver* driver) {
    LockGuard g(admin_lock_);
    TRY(validate(cfg, driver));
    uint32_t id = port_count_;
    if (id >= kMaxPorts) return make_error(Errc::no_memory, "switch ports exhausted", kMaxPorts);
    const bool trunk = cfg.vlan_mode == VlanMode::trunk;
    fdb_.set_port_limit(static_cast<PortId>(id), cfg.max_macs);
    if (cfg.has_static_mac) fdb_.forget_mac(cfg.static_mac.to_u64());
    if (cfg.has_static_mac && !trunk) {
        // The permanent entry; a trunk's are made as it first sends on each VLAN.
        LearnResult r = fdb_.learn(cfg.access_vlan, cfg.static_mac.to_u64(), static_cast<PortId>(id), 0, true);
        if (r == LearnResult::full) return make_error(Errc::no_memory, "MAC table bucket full for a static MAC");
    }

    Port& p = ports_[id];
    p.cfg = cfg;
    p.hot.driver = driver;
    p.hot.static_mac = cfg.has_static_mac ? cfg.static_mac.to_u64() : 0;
    p.hot.has_static = cfg.has_static_mac;
    p.hot.trunk = trunk;
    p.hot.protected_port = cfg.protected_port;
    p.hot.rate_limited = cfg.rate_bytes_per_sec != 0;
    p.hot.untagged_vlan = trunk ? cfg.native_vlan : cfg.access_vlan;
    p.hot.native_vlan = trunk ? cfg.native_vlan : cfg.access_vlan;
    uint8_t in = 0, out = 0;
    for (size_t s = 0; s < kMaxMirrors; ++s) {
        if (static_cast<uint8_t>(cfg.mirror[s]) & static_cast<uint8_t>(MirrorDir::ingress)) in |= 1u << s;
        if (static_cast<uint8_t>(cfg.mirror[s]) & static_cast<uint8_t>(MirrorDir::egress)) out |= 1u << s;
    }
    p.hot.mirror_in = in;
    p.hot.mirror_out = out;
    p.bucket.configure(cfg.rate_bytes_per_sec, cfg.burst_bytes, 0);  // starts full

    const uint32_t bit = 1u << id;
    if (trunk) {
        for (uint16_t v = kVidMin; v <= kVidMax; ++v)
            if (cfg.allowed.contains(v)) __atomic_fetch_or(&vlan_members_[v], bit, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_or(&vlan_members_[cfg.access_vlan], bit, __ATOMIC_RELAXED);
    }
    if (cfg.protected_port) __atomic_fetch_or(&protected_mask_, bit, __ATOMIC_RELAXED);
    // Publication: the data path reads port_count_ (ingress) and up_mask_
    // (egress) with acquire before it touches the port's record.
    __atomic_store_n(&port_count_, id + 1, __ATOMIC_RELEASE);
    __atomic_fetch_or(&up_mask_, bit, __ATOMIC_RELEASE);
    return static_cast<PortId>(id);
}

Result<void> Switch::set_port_up(PortId port, bool up) {
    LockGuard g(admin_lock_);
    if (port >= port_count_) return make_error(Errc::not_found, "no such switch port", port);
    const uint32_t bit = 1u << port;
    if (up) {
        __atomic_fetch_or(&up_mask_, bit, __ATOMIC_RELEASE);
    } else {
        __atomic_fetch_and(&up_mask_, ~bit, __ATOMIC_RELEASE);
        fdb_.flush_port(port);
    }
    return ok_result();
}

Result<void> Switch::flush_fdb(PortId port) {
    if (port >= port_count()) return make_error(Errc::not_found, "no such switch port", port);
    fdb_.flush_port(port);
    return ok_result();
}

Result<void> Switch::set_port_mirror(PortId port, uint8_t session, MirrorDir dir) {
    LockGuard g(admin_lock_);
    if (port >= port_count_) return make_error(Errc::not_found, "no such switch port", port);
    if (session >= kMaxMirrors) return make_error(Errc::invalid_argument, "mirror session", session);
    if (static_cast<uint8_t>(dir) > static_cast<uint8_t>(MirrorDir::both))
        return make_error(Errc::invalid_argument, "mirror direction", static_cast<uint64_t>(dir));
    Port& p = ports_[port];
    const uint8_t bit = static_cast<uint8_t>(1u << session);
    const uint8_t d = static_cast<uint8_t>(dir);
    uint8_t in = static_cast<uint8_t>((p.hot.mirror_in & ~bit) | ((d & 1) ? bit : 0));
    uint8_t out = static_cast<uint8_t>((p.hot.mirror_out & ~bit) | ((d & 2) ? bit : 0));
    __atomic_store_n(&p.hot.mirror_in, in, __ATOMIC_RELAXED);
    __atomic_store_n(&p.hot.mirror_out, out, __ATOMIC_RELAXED);
    p.cfg.mirror[session] = dir;
    return ok_result();
}

Result<void> Switch::set_hash_seed(uint64_t seed) {
    LockGuard g(admin_lock_);
    if (port_count_ != 0) return make_error(Errc::invalid_argument, "hash seed after ports were added");
    fdb_.set_hash_seed(seed);
    return ok_result();
}

Result<void> Switch::set_fdb_storage(void* mem, size_t bytes, size_t entries) {
    LockGuard g(admin_lock_);
    if (port_count_ != 0) return make_error(Errc::invalid_argument, "MAC table storage after ports were added");
    return fdb_.set_storage(mem, bytes, entries);
}

PortId Switch::static_owner(uint64_t mac) const {
    size_t n = port_count();
    for (size_t i = 0; i < n; ++i)
        if (ports_[i].hot.has_static && ports_[i].hot.static_mac == mac) return static_cast<PortId>(i);
    return kNoPort;
}

void Switch::forward(PortId in, const FrameView& frame, uint64_t now_ns) {
    TxBatch batch(*this);
    batch.forward(in, frame, now_ns);
}

void Switch::forward_one(TxBatch& batch, PortId in, const FrameView& frame, uint64_t now_ns) {
    if (in >= __atomic_load_n(&port_count_, __ATOMIC_ACQUIRE)) return;
    Port& ip = ports_[in];
    const PortHot& hot = ip.hot;
    IngressCounters& ic = ip.in;
    bump(ic.rx_packets);
    bump(ic.rx_bytes, frame.len);
    const uint32_t in_bit = 1u << in;
    const uint32_t up = __atomic_load_n(&up_mask_, __ATOMIC_ACQUIRE);
    if (!(up & in_bit)) return drop(ic, DropReason::port_down);

    // The view must describe exactly `len` bytes in at most kMaxSegments pieces.
    if (frame.count > kMaxSegments || frame.len < kMinFrameLen || frame.len > kMaxFrameLen)
        return drop(ic, DropReason::malformed);
    uint64_t total = 0;
    for (uint32_t i = 0; i < frame.count; ++i) total += frame.segs[i].len;
    if (total != frame.len) return drop(ic, DropReason::malformed);

    // The one read of the header out of the sender's memory, into registers
    // and the private copy; from here on only those are used. (Deciding from
    // the registers also spares reloading bytes just stored, which stalls
    // store-to-load forwarding.) Byte i of the frame is bits 8i.. of w0/w1/w2.
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
    Heads h;
    // Store forwarding: callers build the view with one store per field, and
    // copying it as a struct loads count and len with one 8-byte load that
    // spans two such stores and stalls (perf showed it as the costliest spot
    // of this function). So: read field by field, store count and len as one
    // 8-byte word, which later whole or partial loads forward from.
    static_assert(offsetof(FrameView, len) == offsetof(FrameView, count) + 4);
    h.frame.segs = __atomic_load_n(&frame.segs, __ATOMIC_RELAXED);
    const uint64_t count_len = static_cast<uint64_t>(__atomic_load_n(&frame.len, __ATOMIC_RELAXED)) << 32 |
                               __atomic_load_n(&frame.count, __ATOMIC_RELAXED);
    __builtin_memcpy(&h.frame.count, &count_len, 8);
    uint64_t w0, w1;
    uint16_t w2;
    if (frame.segs[0].len >= kHeadMax) {
        const uint8_t* p = frame.segs[0].data;
        __builtin_memcpy(&w0, p, 8);
        __builtin_memcpy(&w1, p + 8, 8);
        __builtin_memcpy(&w2, p + 16, 2);
        h.n = kHeadMax;
    } else {
        uint8_t gathered[kHeadMax] = {};
        h.n = copy_view(frame, 0, gathered, kHeadMax);
        __builtin_memcpy(&w0, gathered, 8);
        __builtin_memcpy(&w1, gathered + 8, 8);
        __builtin_memcpy(&w2, gathered + 16, 2);
    }
    __builtin_memcpy(h.hdr, &w0, 8);
    __builtin_memcpy(h.hdr + 8, &w1, 8);
    __builtin_memcpy(h.hdr + 16, &w2, 2);

    const uint16_t ethertype = __builtin_bswap16(static_cast<uint16_t>(w1 >> 32));
    h.tagged_in = ethertype == kEthertypeVlan;
    if (h.tagged_in ? frame.len < kHeadMax : frame.len > kMaxUntaggedLen) return drop(ic, DropReason::malformed);
    const uint16_t tci = h.tagged_in ? __builtin_bswap16(static_cast<uint16_t>(w1 >> 48)) : 0;
    h.pcp_dei = static_cast<uint8_t>(tci >> 8 & 0xF0);

    // The same flow as the port's last frame, and nothing changed since: the
    // same decision (the checks below depend only on these bytes, the port's
    // fixed configuration and the MAC table). h.n == kHeadMax: the key's
    // bytes 16..17 are real frame bytes for a tagged frame.
    const uint64_t k1 = h.tagged_in ? w1 : w1 & 0xFFFF'FFFF'FFFFull;
    const uint16_t k2 = h.tagged_in ? w2 : 0;
    FlowMemo& memo = ip.memo;
    const uint32_t gen = fdb_.generation();
    uint16_t vlan;
    PortId dport;
    if (memo.k0 == w0 && memo.k1 == k1 && memo.k2 == k2 && memo.fdb_gen == gen && (gen & 1) == 0 &&
        now_ns < memo.until_ns && h.n == kHeadMax) {
        vlan = memo.vlan;
        dport = memo.dport;
    } else {
        if (w0 >> 48 & 1) return drop(ic, DropReason::malformed);  // group bit in the source (IEEE 802 §8.2)

        const uint64_t dst = w0 & 0xFFFF'FFFF'FFFFull;  // as load_mac48()
        const uint64_t src = w0 >> 48 | (w1 & 0xFFFF'FFFFull) << 16;
        if (hot.has_static && src != hot.static_mac) return drop(ic, DropReason::spoofed);

        // Ingress VLAN classification (802.1Q-2018 §6.9: VID 0 = priority-tagged, i.e. untagged).
        const uint16_t vid = tci & kVidMask;
        if (vid == kVidNone)
            vlan = hot.untagged_vlan;
        else if (hot.trunk && vid_valid(vid) && (__atomic_load_n(&vlan_members_[vid], __ATOMIC_RELAXED) & in_bit))
            vlan = vid;
        else
            vlan = 0;
        if (vlan == 0) return drop(ic, DropReason::vlan_filtered);
        if (is_tag_ethertype(h.tagged_in ? __builtin_bswap16(w2) : ethertype))
            return drop(ic, DropReason::vlan_filtered);

        const bool dst_group = (w0 & 1) != 0;
        SourceState ss;
        uint64_t reuse_until_ns;
        dport = fdb_.forward_lookup(vlan, src, dst, !dst_group, in, now_ns, &ss, &reuse_until_ns);
        if (ss == SourceState::other_static) return drop(ic, DropReason::spoofed);
        if (ss != SourceState::known) {
            // Rare: a new station, a move, or one aged out. Another port's static
            // MAC is never learned here, on any VLAN.
            PortId owner = static_owner(src);
            if (owner != kNoPort && owner != in) return drop(ic, DropReason::spoofed);
            LearnResult r = fdb_.learn(vlan, src, in, now_ns, owner == in);
            if (r == LearnResult::static_conflict) return drop(ic, DropReason::spoofed);
            // Port security's "restrict": the port may not bring in another station.
            if (r == LearnResult::limit) return drop(ic, DropReason::mac_limit);
            if (r == LearnResult::full) bump(ic.fdb_full);
        } else if (reuse_until_ns != 0 && h.n == kHeadMax) {
            memo = FlowMemo{w0, k1, k2, vlan, dport, gen, reuse_until_ns};
        }
    }
    h.vlan = vlan;

    // Per frame: its length against the port's rate.
    if (hot.rate_limited && !ip.bucket.take(frame.len, now_ns)) return drop(ic, DropReason::rate_limited);

    if (uint8_t sessions = __atomic_load_n(&hot.mirror_in, __ATOMIC_RELAXED)) {
        OutFrame as_sent{h.hdr, h.n, frame, h.n};
        capture(sessions, as_sent, now_ns);
    }
    h.build_untagged();

    const uint32_t members = __atomic_load_n(&vlan_members_[vlan], __ATOMIC_RELAXED);
    const uint32_t protected_mask = __atomic_load_n(&protected_mask_, __ATOMIC_RELAXED);
    if (dport < kMaxPorts && (members & (1u << dport))) {
        if (dport == in) return;  // the destination is behind the sender's own port: filter
        const uint32_t dbit = 1u << dport;
        if (hot.protected_port && (protected_mask & dbit)) return drop(ic, DropReason::protected_port);
        if (!(up & dbit)) return batch.account(dport, DeliverResult::down, 0);
        return deliver_to(batch, dport, vlan, h, now_ns);
    }

    // Broadcast, multicast or unknown unicast: every other port of the VLAN that is up.
    bump(ic.floods);
    uint32_t targets = members & up & ~in_bit;
    if (hot.protected_port) targets &= ~protected_mask;
    while (targets) {
        PortId p = static_cast<PortId>(__builtin_ctz(targets));
        targets &= targets - 1;
        deliver_to(batch, p, vlan, h, now_ns);
    }
}

void Switch::deliver_to(TxBatch& batch, PortId port, uint16_t vlan, Heads& h, uint64_t now_ns) {
    const PortHot& hot = ports_[port].hot;
    const OutFrame& f = (hot.trunk && vlan != hot.native_vlan) ? h.get_tagged() : h.untagged;
    DeliverResult r = hot.driver->deliver(f);
    batch.account(port, r, f.len());
    if (r != DeliverResult::delivered) return;
    if (uint8_t sessions = __atomic_load_n(&hot.mirror_out, __ATOMIC_RELAXED)) capture(sessions, f, now_ns);
}

void Switch::capture(uint8_t sessions, const OutFrame& f, uint64_t now_ns) {
    for (size_t s = 0; s < kMaxMirrors; ++s)
        if (sessions & (1u << s)) mirrors_[s].capture(f, now_ns);
}

Result<void> Switch::start_mirror(uint8_t session, uint8_t* buf, size_t cap, uint32_t snaplen) {
    if (session >= kMaxMirrors) return make_error(Errc::invalid_argument, "mirror session", session);
    return mirrors_[session].start(buf, cap, snaplen);
}

Result<void> Switch::stop_mirror(uint8_t session) {
    if (session >= kMaxMirrors) return make_error(Errc::invalid_argument, "mirror session", session);
    mirrors_[session].stop();
    return ok_result();
}

Result<void> Switch::reset_mirror(uint8_t session) {
    if (session >= kMaxMirrors) return make_error(Errc::invalid_argument, "mirror session", session);
    mirrors_[session].reset();
    return ok_result();
}

Result<MirrorStats> Switch::mirror_stats(uint8_t session) const {
    if (session >= kMaxMirrors) return make_error(Errc::invalid_argument, "mirror session", session);
    return mirrors_[session].stats();
}

Result<PcapWriter::Bytes> Switch::mirror_file(uint8_t session) const {
    if (session >= kMaxMirrors) return make_error(Errc::invalid_argument, "mirror session", session);
    return mirrors_[session].file();
}

const PortConfig* Switch::port_config(PortId port) const {
    return port < port_count() ? &ports_[port].cfg : nullptr;
}

bool Switch::port_up(PortId port) const {
    return port < port_count() && (__atomic_load_n(&up_mask_, __ATOMIC_ACQUIRE) & (1u << port)) != 0;
}

Result<PortCounters> Switch::counters(PortId port) const {
    if (port >= port_count()) return make_error(Errc::not_found, "no such switch port", port);
    const Port& p = ports_[port];
    PortCounters c;
    c.rx_packets = __atomic_load_n(&p.in.rx_packets, __ATOMIC_RELAXED);
    c.rx_bytes = __atomic_load_n(&p.in.rx_bytes, __ATOMIC_RELAXED);
    c.floods = __atomic_load_n(&p.in.floods, __ATOMIC_RELAXED);
    c.fdb_full = __atomic_load_n(&p.in.fdb_full, __ATOMIC_RELAXED);
    for (size_t r = 0; r < kDropReasonCount; ++r) c.drops[r] = __atomic_load_n(&p.in.drops[r], __ATOMIC_RELAXED);
    const size_t senders = port_count();
    for (size_t s = 0; s < senders; ++s) {
        const EgressCounters& e = ports_[s].sent_to[port];
        c.tx_packets += __atomic_load_n(&e.tx_packets, __ATOMIC_RELAXED);
        c.tx_bytes += __atomic_load_n(&e.tx_bytes, __ATOMIC_RELAXED);
        c.drops[static_cast<size_t>(DropReason::no_buffer)] += __atomic_load_n(&e.no_buffer, __ATOMIC_RELAXED);
    }
    return c;
}

SwitchStats Switch::stats(uint64_t now_ns) const {
    SwitchStats s;
    s.ports = port_count();
    for (size_t i = 0; i < s.ports; ++i) {
        s.floods += __atomic_load_n(&ports_[i].in.floods, __ATOMIC_RELAXED);
        s.fdb_full += __atomic_load_n(&ports_[i].in.fdb_full, __ATOMIC_RELAXED);
    }
    s.fdb_learned = fdb_.learned_total();
    s.fdb_moved = fdb_.moved_total();
    s.fdb_entries = fdb_.count(now_ns);
    s.fdb_capacity = fdb_.capacity();
    return s;
}

}  // namespace hv::net
