#pragma once
// The virtio-pci modern transport, driver side (virtio 1.2 §4.1). The
// configuration structures are found only through the vendor-specific
// capabilities (§4.1.4), the way Linux's virtio_pci_modern_probe does: no
// offset inside a BAR is assumed. Registers are reached through uncached
// identity mappings of the BAR ranges and accessed at their natural width.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/pci.hpp"

namespace hvg {

// §4.1.4 struct virtio_pci_cap.
struct VirtioPciCap {
    uint8_t cap_vndr;  // PCI_CAP_ID_VNDR (0x09)
    uint8_t cap_next;
    uint8_t cap_len;
    uint8_t cfg_type;
    uint8_t bar;
    uint8_t id;
    uint8_t padding[2];
    uint32_t offset;  // le32, within the BAR
    uint32_t length;  // le32
};
static_assert(sizeof(VirtioPciCap) == 16);
static_assert(offsetof(VirtioPciCap, cfg_type) == 3);
static_assert(offsetof(VirtioPciCap, bar) == 4);
static_assert(offsetof(VirtioPciCap, offset) == 8);
static_assert(offsetof(VirtioPciCap, length) == 12);
inline constexpr uint8_t kVirtioPciNotifyCapLen = 20;  // + le32 notify_off_multiplier (§4.1.4.4)
inline constexpr uint8_t kVirtioPciNotifyMultiplierOffset = 16;

// §4.1.4 cfg_type values.
inline constexpr uint8_t VIRTIO_PCI_CAP_COMMON_CFG = 1;
inline constexpr uint8_t VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
inline constexpr uint8_t VIRTIO_PCI_CAP_ISR_CFG = 3;
inline constexpr uint8_t VIRTIO_PCI_CAP_DEVICE_CFG = 4;
inline constexpr uint8_t VIRTIO_PCI_CAP_PCI_CFG = 5;

// §4.1.4.3 struct virtio_pci_common_cfg (1.2 adds queue_notify_data and
// queue_reset at 56 and 58; this driver uses neither and needs 56 bytes).
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
    uint64_t queue_desc;
    uint64_t queue_driver;
    uint64_t queue_device;
    uint16_t queue_notify_data;
    uint16_t queue_reset;
};
static_assert(offsetof(VirtioPciCommonCfg, device_feature) == 4);
static_assert(offsetof(VirtioPciCommonCfg, driver_feature_select) == 8);
static_assert(offsetof(VirtioPciCommonCfg, driver_feature) == 12);
static_assert(offsetof(VirtioPciCommonCfg, config_msix_vector) == 16);
static_assert(offsetof(VirtioPciCommonCfg, num_queues) == 18);
static_assert(offsetof(VirtioPciCommonCfg, device_status) == 20);
static_assert(offsetof(VirtioPciCommonCfg, config_generation) == 21);
static_assert(offsetof(VirtioPciCommonCfg, queue_select) == 22);
static_assert(offsetof(VirtioPciCommonCfg, queue_size) == 24);
static_assert(offsetof(VirtioPciCommonCfg, queue_msix_vector) == 26);
static_assert(offsetof(VirtioPciCommonCfg, queue_enable) == 28);
static_assert(offsetof(VirtioPciCommonCfg, queue_notify_off) == 30);
static_assert(offsetof(VirtioPciCommonCfg, queue_desc) == 32);
static_assert(offsetof(VirtioPciCommonCfg, queue_driver) == 40);
static_assert(offsetof(VirtioPciCommonCfg, queue_device) == 48);
static_assert(offsetof(VirtioPciCommonCfg, queue_notify_data) == 56);
static_assert(sizeof(VirtioPciCommonCfg) == 64);  // 60 bytes of fields, padded to 8
inline constexpr uint32_t kVirtioCommonCfgMinLen = 56;

// §2.1 device status bits.
inline constexpr uint8_t VIRTIO_STATUS_ACKNOWLEDGE = 1;
inline constexpr uint8_t VIRTIO_STATUS_DRIVER = 2;
inline constexpr uint8_t VIRTIO_STATUS_DRIVER_OK = 4;
inline constexpr uint8_t VIRTIO_STATUS_FEATURES_OK = 8;
inline constexpr uint8_t VIRTIO_STATUS_DEVICE_NEEDS_RESET = 64;
inline constexpr uint8_t VIRTIO_STATUS_FAILED = 128;

// §4.1.5.1.2: "no vector" for config_msix_vector / queue_msix_vector.
inline constexpr uint16_t VIRTIO_MSI_NO_VECTOR = 0xFFFF;

inline constexpr uint16_t kVirtioPciVendor = 0x1AF4;
inline constexpr uint16_t kVirtioPciDeviceBase = 0x1040;  // + device type (§4.1.2)

class VirtioPci {
  public:
    enum class Error : uint8_t {
        ok,
        no_common_cfg,  // missing, or its BAR/length is unusable
        no_notify_cfg,
        no_isr_cfg,
        no_device_cfg,
        bad_bar,        // a BAR a structure lives in does not decode
        map_failed,     // the BAR range could not be mapped uncached
        reset_timeout,  // device_status did not read 0 after a reset
    };
    static const char* error_name(Error e);

    // Finds and maps the COMMON, NOTIFY, ISR and DEVICE structures of `f`
    // and enables memory decoding and bus mastering. Does not touch the
    // device status.
    Error probe(const pci::Function& f);
    const pci::Function& function() const { return fn_; }

    // Common configuration (§4.1.4.3).
    uint8_t status() const;
    void set_status(uint8_t s);
    void add_status(uint8_t bits) { set_status(static_cast<uint8_t>(status() | bits)); }
    // Writes 0 and waits (bounded by `max_polls` reads) until it reads back 0
    // (§4.1.4.3.2).
    Error reset(uint32_t max_polls);
    uint64_t device_features() const;
    void set_driver_features(uint64_t f);
    uint16_t num_queues() const;
    uint8_t config_generation() const;
    // Returns the vector read back (VIRTIO_MSI_NO_VECTOR on failure, §4.1.5.1.2).
    uint16_t set_config_vector(uint16_t v);

    void select_queue(uint16_t q);  // the queue_* calls below act on it
    uint16_t queue_size() const;
    void set_queue_size(uint16_t n);
    void set_queue_rings(uint64_t desc, uint64_t driver, uint64_t device);
    uint16_t set_queue_vector(uint16_t v);
    void enable_queue();
    // The selected queue's notification address (§4.1.4.4), checked to lie
    // inside the notify structure; false if it does not.
    bool queue_notify_address(uint64_t* addr) const;
    static void notify(uint64_t addr, uint16_t queue);

    // Device-specific configuration (§4.1.4.6); false past its length.
    bool device_read8(uint32_t off, uint8_t* v) const;
    bool device_read16(uint32_t off, uint16_t* v) const;
    bool device_read32(uint32_t off, uint32_t* v) const;
    uint32_t device_cfg_len() const { return device_len_; }

    // The ISR status byte (§4.1.4.5); reading clears it. Unused with MSI-X.
    uint8_t read_isr() const;

    // Maps `len` bytes at `offset` of BAR `bar` uncached; returns the address
    // or 0 (bad BAR, outside it, mapping failed). Used for the MSI-X table.
    uint64_t map_bar_range(uint8_t bar, uint64_t offset, uint64_t len);

  private:
    struct Found {
        bool present;
        uint8_t cap;  // offset in configuration space
        uint8_t bar;
        uint32_t offset;
        uint32_t length;
    };
    Error map_structure(const Found& s, uint32_t min_len, Error missing, uint64_t* addr);
    bool decode(uint8_t bar);

    pci::Function fn_ = {};
    pci::Bar bars_[6] = {};
    pci::BarError bar_state_[6] = {};
    bool bar_decoded_[6] = {};
    uint64_t common_ = 0;
    uint64_t notify_ = 0;
    uint32_t notify_len_ = 0;
    uint32_t notify_multiplier_ = 0;
    uint64_t isr_ = 0;
    uint64_t device_ = 0;
    uint32_t device_len_ = 0;
};

}  // namespace hvg
