#pragma once
// The virtio-pci modern transport (virtio 1.2 §4.1): a PCI function whose
// capabilities point the driver at structures in one memory BAR, decoded here
// into calls on the transport-neutral Device. Interrupts are MSI-X messages
// handed to an MsiSink; there is no INTx line (the bus has no interrupt
// controller to route one to), so a driver that does not enable MSI-X only
// sees the ISR status bits.
//
// BAR 0, 32-bit non-prefetchable memory, 32 KiB (§4.1.4: any BAR may hold the
// structures). 32-bit because the hypervisor assigns it inside a window below
// 4 GiB, which every driver handles (the guest runtime's too); non-prefetchable
// because ISR status is read-to-clear and the MSI-X table must not be
// prefetched. Each structure starts on its own 4 KiB page (PCI 3.0 §6.8.2:
// the MSI-X table and PBA may not share a page with other registers):
//
//   0x0000  common configuration  (virtio_pci_common_cfg, 0x3c bytes)
//   0x1000  ISR status            (1 byte)
//   0x2000  device configuration  (Device::config_size() bytes, <= 4 KiB)
//   0x3000  notifications         (queue_count() * 4: notify_off_multiplier 4)
//   0x4000  MSI-X table           ((queue_count() + 1) * 16)
//   0x5000  MSI-X PBA             (8 bytes)
//
// Pure: no hardware, no kernel globals.

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/spinlock.hpp"
#include "kernel/vdev/msi_sink.hpp"
#include "kernel/vdev/msix_table.hpp"
#include "kernel/vdev/pci_function.hpp"
#include "kernel/virtio/virtio_device.hpp"

namespace hv::virtio {

// §4.1.4: the vendor-specific capability that locates one structure.
struct VirtioPciCap {
    uint8_t cap_vndr;  // PCI_CAP_ID_VNDR
    uint8_t cap_next;
    uint8_t cap_len;
    uint8_t cfg_type;
    uint8_t bar;
    uint8_t id;
    uint8_t padding[2];
    uint32_t offset;  // within the BAR
    uint32_t length;
};
static_assert(sizeof(VirtioPciCap) == 16);
static_assert(offsetof(VirtioPciCap, cap_len) == 2);
static_assert(offsetof(VirtioPciCap, cfg_type) == 3);
static_assert(offsetof(VirtioPciCap, bar) == 4);
static_assert(offsetof(VirtioPciCap, offset) == 8);
static_assert(offsetof(VirtioPciCap, length) == 12);

// §4.1.4.4
struct VirtioPciNotifyCap {
    VirtioPciCap cap;
    uint32_t notify_off_multiplier;
};
static_assert(sizeof(VirtioPciNotifyCap) == 20);
static_assert(offsetof(VirtioPciNotifyCap, notify_off_multiplier) == 16);

// §4.1.4.9: a window from configuration space into the BARs.
struct VirtioPciCfgCap {
    VirtioPciCap cap;
    uint8_t pci_cfg_data[4];
};
static_assert(sizeof(VirtioPciCfgCap) == 20);
static_assert(offsetof(VirtioPciCfgCap, pci_cfg_data) == 16);

// §4.1.4: cfg_type values.
enum VirtioPciCapType : uint8_t {
    VIRTIO_PCI_CAP_COMMON_CFG = 1,
    VIRTIO_PCI_CAP_NOTIFY_CFG = 2,
    VIRTIO_PCI_CAP_ISR_CFG = 3,
    VIRTIO_PCI_CAP_DEVICE_CFG = 4,
    VIRTIO_PCI_CAP_PCI_CFG = 5,
};

// §4.1.4.3. The 64-bit fields are split in halves as Linux declares them, so
// the struct has no tail padding and sizeof is the register block's length.
struct VirtioPciCommonCfg {
    uint32_t device_feature_select;
    uint32_t device_feature;
    uint32_t driver_feature_select;
    uint32_t driver_feature;
    uint16_t config_msix_vector;
    uint16_t num_queues;
    uint8_t device_status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint16_t queue_size;
    uint16_t queue_msix_vector;
    uint16_t queue_enable;
    uint16_t queue_notify_off;
    uint32_t queue_desc_lo, queue_desc_hi;
    uint32_t queue_driver_lo, queue_driver_hi;
    uint32_t queue_device_lo, queue_device_hi;
    uint16_t queue_notify_data;
    uint16_t queue_reset;
};
static_assert(sizeof(VirtioPciCommonCfg) == 0x3c);
static_assert(offsetof(VirtioPciCommonCfg, config_msix_vector) == 0x10);
static_assert(offsetof(VirtioPciCommonCfg, device_status) == 0x14);
static_assert(offsetof(VirtioPciCommonCfg, queue_select) == 0x16);
static_assert(offsetof(VirtioPciCommonCfg, queue_enable) == 0x1c);
static_assert(offsetof(VirtioPciCommonCfg, queue_notify_off) == 0x1e);
static_assert(offsetof(VirtioPciCommonCfg, queue_desc_lo) == 0x20);
static_assert(offsetof(VirtioPciCommonCfg, queue_driver_lo) == 0x28);
static_assert(offsetof(VirtioPciCommonCfg, queue_device_lo) == 0x30);
static_assert(offsetof(VirtioPciCommonCfg, queue_notify_data) == 0x38);
static_assert(offsetof(VirtioPciCommonCfg, queue_reset) == 0x3a);

// §4.1.4.5 ISR status bits.
inline constexpr uint8_t VIRTIO_PCI_ISR_QUEUE = 1;
inline constexpr uint8_t VIRTIO_PCI_ISR_CONFIG = 2;
// §4.1.5.1.2: "no vector".
inline constexpr uint16_t VIRTIO_MSI_NO_VECTOR = 0xffff;
// §4.1.2: modern device IDs are 0x1040 + the virtio device ID.
inline constexpr uint16_t kVirtioPciVendor = 0x1af4;
inline constexpr uint16_t kVirtioPciDeviceBase = 0x1040;

class VirtioPci final : public vdev::PciFunction, public Transport {
  public:
    static constexpr unsigned kBar = 0;
    static constexpr uint32_t kBarSize = 0x8000;
    static constexpr uint32_t kCommonOffset = 0x0000;
    static constexpr uint32_t kIsrOffset = 0x1000;
    static constexpr uint32_t kDeviceOffset = 0x2000;
    static constexpr uint32_t kNotifyOffset = 0x3000;
    static constexpr uint32_t kMsixTableOffset = 0x4000;
    static constexpr uint32_t kMsixPbaOffset = 0x5000;
    static constexpr uint32_t kRegionSize = 0x1000;
    static constexpr uint32_t kNotifyOffMultiplier = 4;

    // The glue then attaches the device to the guest's memory and to this
    // transport (dev.attach(mem, &pci)) and the function to the bus.
    // sink may be nullptr (interrupts are then only ISR bits).
    VirtioPci(Device& dev, vdev::MsiSink* sink);

    // ---- PciFunction ----
    uint64_t bar_read(unsigned bar, uint64_t off, unsigned width) override;
    void bar_write(unsigned bar, uint64_t off, unsigned width, uint64_t value) override;

    // ---- Transport: any CPU ----
    void interrupt_queue(uint16_t q) override;
    void interrupt_config() override;

    // Where the capabilities sit in configuration space (tests, logging).
    uint8_t cap_offset(VirtioPciCapType type) const;
    uint8_t msix_cap_offset() const { return msix_cap_; }
    uint16_t msix_vectors() const { return queues_ + 1; }

    // Counters. Ignored: wrong-width, misaligned or out-of-range register
    // accesses, writes to read-only fields, bad PCI_CFG window requests.
    uint64_t ignored_accesses() const { return __atomic_load_n(&ignored_, __ATOMIC_RELAXED); }
    uint64_t msi_sent() const { return __atomic_load_n(&msi_sent_, __ATOMIC_RELAXED); }

  private:
    void before_config_read(uint16_t off, unsigned width) override;
    void after_config_write(uint16_t off, unsigned width) override;
    void reset_function() override;

    uint64_t common_read(uint32_t off, unsigned width);
    void common_write(uint32_t off, unsigned width, uint64_t value);
    uint64_t region_read(uint32_t off, unsigned width);
    void region_write(uint32_t off, unsigned width, uint64_t value);
    bool pci_cfg_window(uint32_t* at, uint32_t* len);  // false (counted): not a valid request
    void reset_transport();                            // virtio reset: selectors, vectors, ISR, PBA
    void update_msix_state();                          // Message Control or bus master changed
    void signal(uint16_t q, uint8_t isr_bit);          // q: the queue (ignored for the config interrupt)
    void deliver(const vdev::MsiWrite* msgs, size_t n);
    void ignore() { __atomic_fetch_add(&ignored_, 1, __ATOMIC_RELAXED); }

    Device& dev_;
    vdev::MsiSink* sink_;
    uint16_t queues_;       // min(dev.queue_count(), kMaxQueues)
    uint32_t config_size_;  // min(dev.config_size(), kRegionSize)
    uint8_t caps_[VIRTIO_PCI_CAP_PCI_CFG + 1] = {};
    uint8_t msix_cap_ = 0;

    // Guest register accesses to the common/device configuration, serialised
    // so the Device's control path never runs on two CPUs at once. Order:
    // bus lock -> control_lock_ -> irq_lock_; Device calls are made with
    // control_lock_ only, never with irq_lock_.
    Spinlock control_lock_;
    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint16_t queue_select_ = 0;

    // What the interrupt path reads; taken from any CPU, held only briefly and
    // never while calling out (the MsiSink is called after it is dropped).
    Spinlock irq_lock_;
    uint8_t isr_ = 0;
    uint16_t config_vector_ = VIRTIO_MSI_NO_VECTOR;
    uint16_t queue_vector_[kMaxQueues];
    vdev::MsixTable msix_;

    uint64_t ignored_ = 0;
    uint64_t msi_sent_ = 0;
};

}  // namespace hv::virtio
