#include "guests/runtime/net/vlan_mux.hpp"

namespace hvg::net {

const char* VlanMux::error_name(Error e) {
    switch (e) {
        case Error::ok: return "ok";
        case Error::too_many: return "too_many";
        case Error::bad_vid: return "bad_vid";
        case Error::duplicate_vlan: return "duplicate_vlan";
        case Error::duplicate_ip: return "duplicate_ip";
    }
    return "?";
}

VlanMux::Error VlanMux::check(const VlanIf* ifs, size_t n) {
    if (n == 0 || n > kMaxIfs) return Error::too_many;
    for (size_t i = 0; i < n; ++i) {
        if (ifs[i].vid > kVidMax) return Error::bad_vid;
        for (size_t j = 0; j < i; ++j) {
            if (ifs[j].vid == ifs[i].vid) return Error::duplicate_vlan;
            if (ifs[j].ip == ifs[i].ip) return Error::duplicate_ip;
        }
    }
    return Error::ok;
}

bool VlanMux::init(const MacAddr& mac, const VlanIf* ifs, size_t n, SendFn send, void* ctx) {
    if (check(ifs, n) != Error::ok) return false;
    send_ = send;
    ctx_ = ctx;
    count_ = n;
    for (size_t i = 0; i < n; ++i) {
        ifs_[i].mux = this;
        ifs_[i].vid = ifs[i].vid;
        ifs_[i].stack.init(mac, ifs[i].ip, &send_from, &ifs_[i]);
    }
    return true;
}

size_t VlanMux::route(Ipv4Addr ip) const {
    for (size_t i = 0; i < count_; ++i)
        if (ifs_[i].stack.ip().value >> 8 == ip.value >> 8) return i;
    return 0;
}

size_t VlanMux::find(uint16_t vid) const {
    for (size_t i = 0; i < count_; ++i)
        if (ifs_[i].vid == vid) return i;
    return kNone;
}

VlanMux::Rx VlanMux::handle(const uint8_t* frame, size_t len, uint64_t now) {
    Rx r = {};
    r.iface = kNone;
    VlanView v;
    if (!parse_vlan(frame, len, &v)) {
        r.info.kind = RxKind::malformed;
        ++counters_.rx_malformed;
        return r;
    }
    size_t i = find(v.vid);
    if (i == kNone || is_tag_ethertype(v.inner_type)) {
        r.info.kind = RxKind::other_vlan;
        ++counters_.rx_vlan_dropped;
        return r;
    }
    if (v.tagged) {
        len = strip_tag(frame, len, rx_, sizeof rx_);
        if (len == 0) {
            r.info.kind = RxKind::malformed;
            ++counters_.rx_malformed;
            return r;
        }
        frame = rx_;
    }
    r.iface = i;
    r.info = ifs_[i].stack.handle(frame, len, now);
    return r;
}

size_t VlanMux::encap(size_t i, uint8_t* buf, size_t cap, size_t len) const {
    if (ifs_[i].vid == 0) return len;
    return add_tag(buf, len, ifs_[i].vid, buf, cap);
}

bool VlanMux::send_from(void* ctx, const uint8_t* frame, size_t len) {
    const Iface& f = *static_cast<const Iface*>(ctx);
    VlanMux& m = *f.mux;
    if (f.vid == 0) return m.send_(m.ctx_, frame, len);
    size_t n = add_tag(frame, len, f.vid, m.tx_, sizeof m.tx_);
    if (n == 0) {
        ++m.counters_.tx_too_long;
        return false;
    }
    return m.send_(m.ctx_, m.tx_, n);
}

}  // namespace hvg::net
