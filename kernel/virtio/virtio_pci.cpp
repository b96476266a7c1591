#include "kernel/virtio/virtio_pci.hpp"

namespace hv::virtio {

using vdev::MsiWrite;
using vdev::MsixTable;

namespace {

using Cfg = VirtioPciCommonCfg;

// §4.1.2 does not fix the class code; these follow what drivers and tools
// expect for each device type (lspci names them; nothing binds by class).
uint32_t class_code_for(uint16_t device_id) {
    switch (device_id) {
        case 1: return 0x020000;   // network controller, Ethernet
        case 2: return 0x010000;   // mass storage, SCSI (as QEMU's virtio-blk)
        case 3: return 0x078000;   // simple communication controller, other
        default: return 0xff0000;  // "device does not fit any defined class"
    }
}

template <typename T>
T min_of(T a, T b) {
    return a < b ? a : b;
}

// The registers of the common configuration (§4.1.4.3) with their widths.
// §4.1.3.1: the driver accesses each field with its own width; a 64-bit field
// as two 32-bit halves (or, here, one aligned 8-byte access).
struct CommonField {
    uint16_t off;
    uint8_t size;
};
constexpr CommonField kCommonFields[] = {
    {offsetof(Cfg, device_feature_select), 4}, {offsetof(Cfg, device_feature), 4},
    {offsetof(Cfg, driver_feature_select), 4}, {offsetof(Cfg, driver_feature), 4},
    {offsetof(Cfg, config_msix_vector), 2},    {offsetof(Cfg, num_queues), 2},
    {offsetof(Cfg, device_status), 1},         {offsetof(Cfg, config_generation), 1},
    {offsetof(Cfg, queue_select), 2},          {offsetof(Cfg, queue_size), 2},
    {offsetof(Cfg, queue_msix_vector), 2},     {offsetof(Cfg, queue_enable), 2},
    {offsetof(Cfg, queue_notify_off), 2},      {offsetof(Cfg, queue_desc_lo), 8},
    {offsetof(Cfg, queue_driver_lo), 8},       {offsetof(Cfg, queue_device_lo), 8},
    {offsetof(Cfg, queue_notify_data), 2},     {offsetof(Cfg, queue_reset), 2},
};

// Which part of a 64-bit field an access covers.
enum Part : unsigned { kLow = 0, kHigh = 1, kWhole = 2 };

bool classify(uint32_t off, unsigned width, uint32_t* field, Part* part) {
    for (const CommonField& f : kCommonFields) {
        if (f.size == 8) {
            if (width == 8 && off == f.off)
                *part = kWhole;
            else if (width == 4 && off == f.off)
                *part = kLow;
            else if (width == 4 && off == f.off + 4u)
                *part = kHigh;
            else
                continue;
        } else {
            if (off != f.off || width != f.size) continue;
            *part = kWhole;
        }
        *field = f.off;
        return true;
    }
    return false;
}

uint64_t read_part(uint64_t v, Part p) {
    if (p == kLow) return v & 0xffffffffu;
    if (p == kHigh) return v >> 32;
    return v;
}

uint64_t merge_part(uint64_t old, Part p, uint64_t v) {
    if (p == kLow) return (old & ~uint64_t{0xffffffffu}) | (v & 0xffffffffu);
    if (p == kHigh) return (old & 0xffffffffu) | (v << 32);
    return v;
}

bool valid_queue_size(uint16_t size, uint16_t max) {
    return size != 0 && size <= max && (size & (size - 1)) == 0;
}

}  // namespace

VirtioPci::VirtioPci(Device& dev, vdev::MsiSink* sink)
    : PciFunction(vdev::PciIdentity{kVirtioPciVendor, static_cast<uint16_t>(kVirtioPciDeviceBase + dev.device_id()),
                                    1,  // §4.1.2.1: non-transitional devices have revision >= 1
                                    class_code_for(dev.device_id()), kVirtioPciVendor, dev.device_id()}),
      dev_(dev),
      sink_(sink),
      queues_(min_of<uint16_t>(dev.queue_count(), kMaxQueues)),
      config_size_(min_of<uint32_t>(dev.config_size(), kRegionSize)),
      msix_(static_cast<uint16_t>(queues_ + 1)) {  // one vector per queue, one for config changes
    for (auto& v : queue_vector_) v = VIRTIO_MSI_NO_VECTOR;
    declare_bar(kBar, vdev::BarType::mem32, kBarSize);

    auto add_cap = [this](VirtioPciCapType type, uint8_t cap_len, uint32_t offset, uint32_t length) {
        const uint8_t c = add_capability(vdev::pci::CAP_ID_VNDR, cap_len);
        init_config(c + offsetof(VirtioPciCap, cap_len), 1, cap_len);
        init_config(c + offsetof(VirtioPciCap, cfg_type), 1, type);
        init_config(c + offsetof(VirtioPciCap, bar), 1, kBar);
        init_config(c + offsetof(VirtioPciCap, offset), 4, offset);
        init_config(c + offsetof(VirtioPciCap, length), 4, length);
        caps_[type] = c;
        return c;
    };
    // §4.1.4.3: the whole 1.2 structure, queue_notify_data and queue_reset
    // included. Linux refuses a capability shorter than its struct
    // virtio_pci_common_cfg (0x38) and, since RING_RESET support, may map the
    // two 1.2 fields behind it.
    add_cap(VIRTIO_PCI_CAP_COMMON_CFG, sizeof(VirtioPciCap), kCommonOffset, sizeof(VirtioPciCommonCfg));
    // §4.1.4.4: queue q is notified at offset q * notify_off_multiplier. A
    // multiplier of 4 gives each queue its own address, so the address alone
    // names the queue. Linux requires at least 2 bytes mapped.
    const uint8_t n = add_cap(VIRTIO_PCI_CAP_NOTIFY_CFG, sizeof(VirtioPciNotifyCap), kNotifyOffset,
                              queues_ == 0 ? kNotifyOffMultiplier : uint32_t{queues_} * kNotifyOffMultiplier);
    init_config(n + offsetof(VirtioPciNotifyCap, notify_off_multiplier), 4, kNotifyOffMultiplier);
    add_cap(VIRTIO_PCI_CAP_ISR_CFG, sizeof(VirtioPciCap), kIsrOffset, 1);
    // §4.1.4.6: only present when there is a device configuration; Linux
    // rejects a zero-length one.
    if (config_size_ != 0) add_cap(VIRTIO_PCI_CAP_DEVICE_CFG, sizeof(VirtioPciCap), kDeviceOffset, config_size_);
    // §4.1.4.9: bar, offset, length and the data window are driver-writable.
    const uint8_t w = add_cap(VIRTIO_PCI_CAP_PCI_CFG, sizeof(VirtioPciCfgCap), 0, 0);
    init_config(w + offsetof(VirtioPciCap, bar), 1, 0, 0xff);
    init_config(w + offsetof(VirtioPciCap, offset), 4, 0, 0xffffffffu);
    init_config(w + offsetof(VirtioPciCap, length), 4, 0, 0xffffffffu);
    init_config(w + offsetof(VirtioPciCfgCap, pci_cfg_data), 4, 0, 0xffffffffu);

    // PCI 3.0 §6.8.2: table and PBA in BAR 0 (BIR 0), each on its own page.
    msix_cap_ = add_capability(vdev::PCI_CAP_ID_MSIX, sizeof(vdev::MsixCapability));
    init_config(msix_cap_ + offsetof(vdev::MsixCapability, message_control), 2, msix_.size() - 1u,
                vdev::MSIX_CONTROL_ENABLE | vdev::MSIX_CONTROL_FUNCTION_MASK);
    init_config(msix_cap_ + offsetof(vdev::MsixCapability, table_offset_bir), 4, kMsixTableOffset | kBar);
    init_config(msix_cap_ + offsetof(vdev::MsixCapability, pba_offset_bir), 4, kMsixPbaOffset | kBar);
}

uint8_t VirtioPci::cap_offset(VirtioPciCapType type) const {
    return type <= VIRTIO_PCI_CAP_PCI_CFG ? caps_[type] : 0;
}

// ---- Interrupts ----

void VirtioPci::deliver(const MsiWrite* msgs, size_t n) {
    if (sink_ == nullptr) return;
    for (size_t i = 0; i < n; ++i) {
        sink_->send_msi(msgs[i].address, msgs[i].data);
        __atomic_fetch_add(&msi_sent_, 1, __ATOMIC_RELAXED);
    }
}

void VirtioPci::signal(uint16_t q, uint8_t isr_bit) {
    MsiWrite msg{};
    MsixTable::Signal s;
    {
        LockGuard g(irq_lock_);
        // §4.1.4.5: the ISR bit is set whatever the interrupt mechanism; a
        // driver without MSI-X polls it (we have no INTx line to raise).
        isr_ |= isr_bit;
        const uint16_t vector = isr_bit == VIRTIO_PCI_ISR_CONFIG ? config_vector_ : queue_vector_[q];
        s = msix_.signal(vector, &msg);
    }
    if (s == MsixTable::Signal::sent) deliver(&msg, 1);
}

void VirtioPci::interrupt_queue(uint16_t q) {
    if (q >= queues_) return;
    signal(q, VIRTIO_PCI_ISR_QUEUE);
}

void VirtioPci::interrupt_config() {
    signal(0, VIRTIO_PCI_ISR_CONFIG);
}

void VirtioPci::update_msix_state() {
    const uint16_t control =
        static_cast<uint16_t>(raw_config(msix_cap_ + offsetof(vdev::MsixCapability, message_control), 2));
    const bool master = (command() & vdev::pci::COMMAND_MASTER) != 0;
    MsiWrite due[kMaxQueues + 1];
    size_t n;
    {
        LockGuard g(irq_lock_);
        n = msix_.set_state((control & vdev::MSIX_CONTROL_ENABLE) != 0,
                            (control & vdev::MSIX_CONTROL_FUNCTION_MASK) != 0, master, due);
    }
    deliver(due, n);
}

// ---- Configuration space side effects (bus lock held) ----

bool VirtioPci::pci_cfg_window(uint32_t* at, uint32_t* len) {
    // §4.1.4.9: cap.bar, cap.offset and cap.length as the driver last wrote
    // them; the offset must be aligned to the length, which is 1, 2 or 4.
    const uint16_t c = caps_[VIRTIO_PCI_CAP_PCI_CFG];
    const uint32_t bar = raw_config(c + offsetof(VirtioPciCap, bar), 1);
    *at = raw_config(c + offsetof(VirtioPciCap, offset), 4);
    *len = raw_config(c + offsetof(VirtioPciCap, length), 4);
    if (bar == kBar && (*len == 1 || *len == 2 || *len == 4) && *at % *len == 0 && *at < kBarSize) return true;
    ignore();
    return false;
}

void VirtioPci::before_config_read(uint16_t off, unsigned width) {
    const uint16_t data = caps_[VIRTIO_PCI_CAP_PCI_CFG] + offsetof(VirtioPciCfgCap, pci_cfg_data);
    uint32_t at, len;
    if (!vdev::ranges_overlap(off, width, data, 4) || !pci_cfg_window(&at, &len)) return;
    // §4.1.4.9: a read of pci_cfg_data first reads cap.length bytes at
    // cap.offset in cap.bar into pci_cfg_data.
    set_raw_config(data, len, static_cast<uint32_t>(region_read(at, len)));
}

void VirtioPci::after_config_write(uint16_t off, unsigned width) {
    if (vdev::ranges_overlap(off, width, vdev::pci::COMMAND, 2) ||
        vdev::ranges_overlap(off, width, msix_cap_ + offsetof(vdev::MsixCapability, message_control), 2)) {
        update_msix_state();
    }
    const uint16_t data = caps_[VIRTIO_PCI_CAP_PCI_CFG] + offsetof(VirtioPciCfgCap, pci_cfg_data);
    uint32_t at, len;
    if (!vdev::ranges_overlap(off, width, data, 4) || !pci_cfg_window(&at, &len)) return;
    // §4.1.4.9: a write of pci_cfg_data writes its first cap.length bytes to
    // cap.offset in cap.bar. Not gated by memory-space enable: the window is
    // for drivers that cannot map the BAR.
    region_write(at, len, raw_config(data, len));
}

void VirtioPci::reset_function() {
    // The configuration image (MSI-X control, the PCI_CFG window, command)
    // was restored by PciFunction::reset(); now the state behind it.
    {
        LockGuard g(control_lock_);
        dev_.write_status(0);
        reset_transport();
    }
    LockGuard g(irq_lock_);
    msix_.reset();
}

void VirtioPci::reset_transport() {
    device_feature_select_ = 0;
    driver_feature_select_ = 0;
    queue_select_ = 0;
    LockGuard g(irq_lock_);
    isr_ = 0;
    config_vector_ = VIRTIO_MSI_NO_VECTOR;
    for (auto& v : queue_vector_) v = VIRTIO_MSI_NO_VECTOR;
    msix_.clear_pending();
}

// ---- BAR 0 ----

uint64_t VirtioPci::bar_read(unsigned bar, uint64_t off, unsigned width) {
    if (bar != kBar || off >= kBarSize || !vdev::valid_access_width(width)) {
        ignore();
        return 0;
    }
    return region_read(static_cast<uint32_t>(off), width);
}

void VirtioPci::bar_write(unsigned bar, uint64_t off, unsigned width, uint64_t value) {
    if (bar != kBar || off >= kBarSize || !vdev::valid_access_width(width)) {
        ignore();
        return;
    }
    region_write(static_cast<uint32_t>(off), width, value);
}

uint64_t VirtioPci::region_read(uint32_t off, unsigned width) {
    const uint32_t region = off & ~(kRegionSize - 1);
    const uint32_t r = off - region;
    if (r + width > kRegionSize) {  // would run into the next structure
        ignore();
        return 0;
    }
    uint64_t v = 0;
    switch (region) {
        case kCommonOffset: return common_read(r, width);
        case kIsrOffset:
            // §4.1.4.5: one byte, cleared by the read.
            if (r == 0 && width == 1) {
                LockGuard g(irq_lock_);
                v = isr_;
                isr_ = 0;
                return v;
            }
            break;
        case kDeviceOffset:
            // §4.1.3.1: 8-bit fields by bytes, 16-bit aligned, 32/64-bit by aligned dwords.
            if ((width == 1 || width == 2 || width == 4) && r % width == 0 && r + width <= config_size_) {
                LockGuard g(control_lock_);
                return dev_.read_config(r, width);
            }
            break;
        case kMsixTableOffset: {
            LockGuard g(irq_lock_);
            if (msix_.read_table(r, width, &v)) return v;
            break;
        }
        case kMsixPbaOffset: {
            LockGuard g(irq_lock_);
            if (msix_.read_pba(r, width, &v)) return v;
            break;
        }
        default: break;  // notifications are write-only; the rest is unused
    }
    ignore();
    return 0;
}

void VirtioPci::region_write(uint32_t off, unsigned width, uint64_t value) {
    const uint32_t region = off & ~(kRegionSize - 1);
    const uint32_t r = off - region;
    if (r + width > kRegionSize) {
        ignore();
        return;
    }
    switch (region) {
        case kCommonOffset: common_write(r, width, value); return;
        case kDeviceOffset:
            if ((width == 1 || width == 2 || width == 4) && r % width == 0 && r + width <= config_size_) {
                LockGuard g(control_lock_);
                dev_.write_config(r, width, static_cast<uint32_t>(value));
                return;
            }
            break;
        case kNotifyOffset:
            // §4.1.5.2: a 16-bit write of the queue index (32-bit with
            // NOTIFICATION_DATA, accepted too) at the queue's own address,
            // which alone names the queue. The data path takes no transport
            // lock: notifications on different queues run in parallel.
            if ((width == 2 || width == 4) && r % kNotifyOffMultiplier == 0 && r / kNotifyOffMultiplier < queues_) {
                dev_.queue_notify(static_cast<uint16_t>(r / kNotifyOffMultiplier));
                return;
            }
            break;
        case kMsixTableOffset: {
            MsiWrite due{};
            MsixTable::Write w;
            {
                LockGuard g(irq_lock_);
                w = msix_.write_table(r, width, value, &due);
            }
            if (w == MsixTable::Write::send) deliver(&due, 1);
            if (w != MsixTable::Write::bad_access) return;
            break;
        }
        default: break;  // ISR status and the PBA are read-only
    }
    ignore();
}

// ---- Common configuration (§4.1.4.3) ----

uint64_t VirtioPci::common_read(uint32_t off, unsigned width) {
    uint32_t field;
    Part part;
    if (!classify(off, width, &field, &part)) {
        ignore();
        return 0;
    }
    LockGuard g(control_lock_);
    const uint16_t q = queue_select_;
    const bool qv = q < queues_;  // §4.1.4.3.1: an unavailable queue reads queue_size 0
    const QueueConfig cfg = qv ? dev_.queue(q) : QueueConfig{};
    switch (field) {
        case offsetof(Cfg, device_feature_select): return device_feature_select_;
        case offsetof(Cfg, device_feature):
            return device_feature_select_ < 2 ? read_part(dev_.offered_features(), Part(device_feature_select_)) : 0;
        case offsetof(Cfg, driver_feature_select): return driver_feature_select_;
        case offsetof(Cfg, driver_feature):
            return driver_feature_select_ < 2 ? read_part(dev_.driver_features(), Part(driver_feature_select_)) : 0;
        case offsetof(Cfg, config_msix_vector): {
            LockGuard i(irq_lock_);
            return config_vector_;
        }
        case offsetof(Cfg, num_queues): return queues_;
        case offsetof(Cfg, device_status): return dev_.status();
        case offsetof(Cfg, config_generation): return dev_.config_generation();
        case offsetof(Cfg, queue_select): return q;
        case offsetof(Cfg, queue_size):
            // §4.1.4.3: reads the maximum until the driver writes a smaller size.
            if (!qv) return 0;
            return cfg.size != 0 ? cfg.size : dev_.queue_max_size(q);
        case offsetof(Cfg, queue_msix_vector): {
            if (!qv) return VIRTIO_MSI_NO_VECTOR;
            LockGuard i(irq_lock_);
            return queue_vector_[q];
        }
        case offsetof(Cfg, queue_enable): return qv && cfg.enabled ? 1 : 0;
        case offsetof(Cfg, queue_notify_off): return qv ? q : 0;  // x notify_off_multiplier
        case offsetof(Cfg, queue_desc_lo): return read_part(cfg.desc, part);
        case offsetof(Cfg, queue_driver_lo): return read_part(cfg.driver, part);
        case offsetof(Cfg, queue_device_lo): return read_part(cfg.device, part);
        default: return 0;  // queue_notify_data, queue_reset: features not offered
    }
}

void VirtioPci::common_write(uint32_t off, unsigned width, uint64_t value) {
    uint32_t field;
    Part part;
    if (!classify(off, width, &field, &part)) {
        ignore();
        return;
    }
    LockGuard g(control_lock_);
    const uint16_t q = queue_select_;
    const bool qv = q < queues_;
    const auto v16 = static_cast<uint16_t>(value);
    switch (field) {
        case offsetof(Cfg, device_feature_select): device_feature_select_ = static_cast<uint32_t>(value); return;
        case offsetof(Cfg, driver_feature_select): driver_feature_select_ = static_cast<uint32_t>(value); return;
        case offsetof(Cfg, driver_feature):
            if (driver_feature_select_ >= 2) break;
            dev_.write_driver_features(merge_part(dev_.driver_features(), Part(driver_feature_select_), value));
            return;
        case offsetof(Cfg, config_msix_vector): {
            // §4.1.5.1.2: a vector the device cannot map reads back NO_VECTOR.
            LockGuard i(irq_lock_);
            config_vector_ = v16 < msix_.size() ? v16 : VIRTIO_MSI_NO_VECTOR;
            return;
        }
        case offsetof(Cfg, device_status):
            dev_.write_status(static_cast<uint8_t>(value));
            // §4.1.4.3.2: writing 0 resets the device; the transport's own
            // state goes with it. The device has stopped, so no interrupt
            // can race with the reset of the vectors and pending bits.
            if (static_cast<uint8_t>(value) == 0) reset_transport();
            return;
        case offsetof(Cfg, queue_select): queue_select_ = v16; return;
        case offsetof(Cfg, queue_msix_vector): {
            if (!qv) break;
            LockGuard i(irq_lock_);
            queue_vector_[q] = v16 < msix_.size() ? v16 : VIRTIO_MSI_NO_VECTOR;
            return;
        }
        case offsetof(Cfg, queue_size):
        case offsetof(Cfg, queue_enable):
        case offsetof(Cfg, queue_desc_lo):
        case offsetof(Cfg, queue_driver_lo):
        case offsetof(Cfg, queue_device_lo): {
            if (!qv) break;
            QueueConfig cfg = dev_.queue(q);
            if (field == offsetof(Cfg, queue_size))
                cfg.size = v16;
            else if (field == offsetof(Cfg, queue_desc_lo))
                cfg.desc = merge_part(cfg.desc, part, value);
            else if (field == offsetof(Cfg, queue_driver_lo))
                cfg.driver = merge_part(cfg.driver, part, value);
            else if (field == offsetof(Cfg, queue_device_lo))
                cfg.device = merge_part(cfg.device, part, value);
            else {
                // §4.1.4.3.2: the driver enables with 1 and never writes 0
                // (that would be a queue reset, not offered).
                if (v16 != 1 || cfg.enabled) break;
                // An unwritten size is the maximum the driver read.
                const uint16_t max = dev_.queue_max_size(q);
                if (cfg.size == 0) cfg.size = max;
                if (!valid_queue_size(cfg.size, max)) {  // §2.7: a power of 2, at most the maximum
                    dev_.mark_broken(BrokenReason::bad_queue_config);
                    return;
                }
                cfg.enabled = true;
            }
            dev_.write_queue(q, cfg);  // refused (and counted) once enabled or DRIVER_OK
            return;
        }
        default:
            break;  // device_feature, num_queues, config_generation, queue_notify_off: read-only;
                    // queue_notify_data, queue_reset: features not offered
    }
    ignore();
}

}  // namespace hv::virtio
