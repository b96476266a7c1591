#include "guests/runtime/virtio_pci.hpp"

#include "guests/runtime/mmio.hpp"
#include "guests/runtime/paging.hpp"

namespace hvg {

namespace {

// Offset of a common configuration field (§4.1.4.3), from the checked struct.
#define HVG_COMMON(field) static_cast<uint32_t>(offsetof(VirtioPciCommonCfg, field))

struct ProbeState {
    // First instance of each cfg_type 1..4 (§4.1.4: "The driver SHOULD use the
    // first instance of each virtio structure type they can support").
    bool present[5];
    uint8_t cap[5];
    uint8_t bar[5];
    uint32_t offset[5];
    uint32_t length[5];
};

bool visit_cap(void* ctx, pci::Address a, uint8_t off, uint8_t id) {
    if (id != pci::kCapIdVendor) return false;
    auto* st = static_cast<ProbeState*>(ctx);
    uint8_t cap_len = pci::read8(a, static_cast<uint16_t>(off + offsetof(VirtioPciCap, cap_len)));
    uint8_t type = pci::read8(a, static_cast<uint16_t>(off + offsetof(VirtioPciCap, cfg_type)));
    uint8_t bar = pci::read8(a, static_cast<uint16_t>(off + offsetof(VirtioPciCap, bar)));
    // §4.1.4: ignore reserved types and BARs, and structures too short to hold
    // the fields (the notify capability carries one more dword).
    if (type < VIRTIO_PCI_CAP_COMMON_CFG || type > VIRTIO_PCI_CAP_DEVICE_CFG) return false;
    if (bar > 5 || cap_len < sizeof(VirtioPciCap)) return false;
    if (type == VIRTIO_PCI_CAP_NOTIFY_CFG && cap_len < kVirtioPciNotifyCapLen) return false;
    if (st->present[type]) return false;
    st->present[type] = true;
    st->cap[type] = off;
    st->bar[type] = bar;
    st->offset[type] = pci::read32(a, static_cast<uint16_t>(off + offsetof(VirtioPciCap, offset)));
    st->length[type] = pci::read32(a, static_cast<uint16_t>(off + offsetof(VirtioPciCap, length)));
    return false;  // walk the whole list
}

}  // namespace

const char* VirtioPci::error_name(Error e) {
    switch (e) {
        case Error::ok: return "ok";
        case Error::no_common_cfg: return "no_common_cfg";
        case Error::no_notify_cfg: return "no_notify_cfg";
        case Error::no_isr_cfg: return "no_isr_cfg";
        case Error::no_device_cfg: return "no_device_cfg";
        case Error::bad_bar: return "bad_bar";
        case Error::map_failed: return "map_failed";
        case Error::reset_timeout: return "reset_timeout";
    }
    return "?";
}

// Each BAR is sized once; probe() sizes every BAR it will need before it
// turns decoding on, so a live device never has a BAR holding all ones.
bool VirtioPci::decode(uint8_t bar) {
    if (bar > 5) return false;
    if (!bar_decoded_[bar]) {
        bar_state_[bar] = pci::decode_bar(fn_.addr, bar, &bars_[bar]);
        bar_decoded_[bar] = true;
    }
    return bar_state_[bar] == pci::BarError::ok;
}

uint64_t VirtioPci::map_bar_range(uint8_t bar, uint64_t offset, uint64_t len) {
    if (!decode(bar)) return 0;
    const pci::Bar& b = bars_[bar];
    if (len == 0 || offset > b.size || len > b.size - offset) return 0;
    uint64_t addr = b.base + offset;
    if (map_mmio(addr, len) != MapResult::mapped) return 0;
    return addr;
}

VirtioPci::Error VirtioPci::map_structure(const Found& s, uint32_t min_len, Error missing, uint64_t* addr) {
    if (!s.present || s.length < min_len) return missing;
    *addr = map_bar_range(s.bar, s.offset, s.length);
    if (*addr == 0)
        return bar_decoded_[s.bar] && bar_state_[s.bar] != pci::BarError::ok ? Error::bad_bar : Error::map_failed;
    return Error::ok;
}

VirtioPci::Error VirtioPci::probe(const pci::Function& f) {
    fn_ = f;
    ProbeState st = {};
    pci::walk_capabilities(f.addr, &visit_cap, &st);
    auto found = [&st](uint8_t type) {
        return Found{st.present[type], st.cap[type], st.bar[type], st.offset[type], st.length[type]};
    };
    // BAR sizing (in map_bar_range) turns decoding off and back to what it
    // was; enable it for good only after every BAR is decoded.
    Error e = map_structure(found(VIRTIO_PCI_CAP_COMMON_CFG), kVirtioCommonCfgMinLen, Error::no_common_cfg, &common_);
    if (e != Error::ok) return e;
    e = map_structure(found(VIRTIO_PCI_CAP_NOTIFY_CFG), 2, Error::no_notify_cfg, &notify_);
    if (e != Error::ok) return e;
    notify_len_ = st.length[VIRTIO_PCI_CAP_NOTIFY_CFG];
    notify_multiplier_ = pci::read32(
        f.addr, static_cast<uint16_t>(st.cap[VIRTIO_PCI_CAP_NOTIFY_CFG] + kVirtioPciNotifyMultiplierOffset));
    e = map_structure(found(VIRTIO_PCI_CAP_ISR_CFG), 1, Error::no_isr_cfg, &isr_);
    if (e != Error::ok) return e;
    e = map_structure(found(VIRTIO_PCI_CAP_DEVICE_CFG), 1, Error::no_device_cfg, &device_);
    if (e != Error::ok) return e;
    device_len_ = st.length[VIRTIO_PCI_CAP_DEVICE_CFG];
    pci::MsixCap msix;
    if (pci::find_msix(f.addr, &msix)) decode(msix.table_bar);
    pci::enable_device(f.addr, true);
    return Error::ok;
}

uint8_t VirtioPci::status() const {
    return mmio_read8(common_ + HVG_COMMON(device_status));
}
void VirtioPci::set_status(uint8_t s) {
    mmio_write8(common_ + HVG_COMMON(device_status), s);
}

VirtioPci::Error VirtioPci::reset(uint32_t max_polls) {
    set_status(0);
    for (uint32_t k = 0; k < max_polls; ++k) {
        if (status() == 0) return Error::ok;
        pause();
    }
    return Error::reset_timeout;
}

// §4.1.4.3: 32 feature bits at a time through the select registers.
uint64_t VirtioPci::device_features() const {
    mmio_write32(common_ + HVG_COMMON(device_feature_select), 0);
    uint64_t lo = mmio_read32(common_ + HVG_COMMON(device_feature));
    mmio_write32(common_ + HVG_COMMON(device_feature_select), 1);
    uint64_t hi = mmio_read32(common_ + HVG_COMMON(device_feature));
    return hi << 32 | lo;
}

void VirtioPci::set_driver_features(uint64_t f) {
    mmio_write32(common_ + HVG_COMMON(driver_feature_select), 0);
    mmio_write32(common_ + HVG_COMMON(driver_feature), static_cast<uint32_t>(f));
    mmio_write32(common_ + HVG_COMMON(driver_feature_select), 1);
    mmio_write32(common_ + HVG_COMMON(driver_feature), static_cast<uint32_t>(f >> 32));
}

uint16_t VirtioPci::num_queues() const {
    return mmio_read16(common_ + HVG_COMMON(num_queues));
}
uint8_t VirtioPci::config_generation() const {
    return mmio_read8(common_ + HVG_COMMON(config_generation));
}

uint16_t VirtioPci::set_config_vector(uint16_t v) {
    mmio_write16(common_ + HVG_COMMON(config_msix_vector), v);
    return mmio_read16(common_ + HVG_COMMON(config_msix_vector));
}

void VirtioPci::select_queue(uint16_t q) {
    mmio_write16(common_ + HVG_COMMON(queue_select), q);
}
uint16_t VirtioPci::queue_size() const {
    return mmio_read16(common_ + HVG_COMMON(queue_size));
}
void VirtioPci::set_queue_size(uint16_t n) {
    mmio_write16(common_ + HVG_COMMON(queue_size), n);
}
void VirtioPci::set_queue_rings(uint64_t desc, uint64_t driver, uint64_t device) {
    mmio_write64_split(common_ + HVG_COMMON(queue_desc), desc);
    mmio_write64_split(common_ + HVG_COMMON(queue_driver), driver);
    mmio_write64_split(common_ + HVG_COMMON(queue_device), device);
}
uint16_t VirtioPci::set_queue_vector(uint16_t v) {
    mmio_write16(common_ + HVG_COMMON(queue_msix_vector), v);
    return mmio_read16(common_ + HVG_COMMON(queue_msix_vector));
}
void VirtioPci::enable_queue() {
    mmio_write16(common_ + HVG_COMMON(queue_enable), 1);
}

bool VirtioPci::queue_notify_address(uint64_t* addr) const {
    // §4.1.4.4: cap.offset + queue_notify_off * notify_off_multiplier, within
    // the notify structure (a 16-bit write without NOTIFICATION_DATA).
    uint64_t off = static_cast<uint64_t>(mmio_read16(common_ + HVG_COMMON(queue_notify_off))) * notify_multiplier_;
    if (off > notify_len_ || notify_len_ - off < 2) return false;
    *addr = notify_ + off;
    return true;
}

void VirtioPci::notify(uint64_t addr, uint16_t queue) {
    mmio_write16(addr, queue);
}

bool VirtioPci::device_read8(uint32_t off, uint8_t* v) const {
    if (off >= device_len_) return false;
    *v = mmio_read8(device_ + off);
    return true;
}
bool VirtioPci::device_read16(uint32_t off, uint16_t* v) const {
    if (device_len_ < 2 || off > device_len_ - 2) return false;
    *v = mmio_read16(device_ + off);
    return true;
}
bool VirtioPci::device_read32(uint32_t off, uint32_t* v) const {
    if (device_len_ < 4 || off > device_len_ - 4) return false;
    *v = mmio_read32(device_ + off);
    return true;
}

uint8_t VirtioPci::read_isr() const {
    return mmio_read8(isr_);
}

}  // namespace hvg
