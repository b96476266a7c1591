#pragma once
// One function on the guest-visible PCI bus: its 256-byte type-0
// configuration space (PCI Local Bus 3.0 §6.1, §6.2) handled generically, and
// hooks for what only the device knows (its BAR registers, its capabilities'
// side effects). Pure: no hardware, no kernel globals.
//
// Configuration space is modelled as QEMU and real devices do: an image of the
// 256 bytes plus a mask of the bits software may write. BAR sizing needs no
// special case: the address bits below the BAR size are not writable, so a
// write of all-ones reads back the size mask (§6.2.5.1).

#include <stddef.h>
#include <stdint.h>

namespace hv::vdev {

// PCI 3.0 §6.1 (Figure 6-1): type-0 header register offsets.
namespace pci {
inline constexpr uint16_t VENDOR_ID = 0x00;
inline constexpr uint16_t DEVICE_ID = 0x02;
inline constexpr uint16_t COMMAND = 0x04;
inline constexpr uint16_t STATUS = 0x06;
inline constexpr uint16_t REVISION_ID = 0x08;
inline constexpr uint16_t CLASS_PROG = 0x09;  // class code: prog-if 0x09, sub-class 0x0a, base class 0x0b
inline constexpr uint16_t CLASS_DEVICE = 0x0a;
inline constexpr uint16_t CACHE_LINE_SIZE = 0x0c;
inline constexpr uint16_t LATENCY_TIMER = 0x0d;
inline constexpr uint16_t HEADER_TYPE = 0x0e;
inline constexpr uint16_t BIST = 0x0f;
inline constexpr uint16_t BASE_ADDRESS_0 = 0x10;
inline constexpr uint16_t CARDBUS_CIS = 0x28;
inline constexpr uint16_t SUBSYSTEM_VENDOR_ID = 0x2c;
inline constexpr uint16_t SUBSYSTEM_ID = 0x2e;
inline constexpr uint16_t ROM_ADDRESS = 0x30;
inline constexpr uint16_t CAPABILITY_LIST = 0x34;
inline constexpr uint16_t INTERRUPT_LINE = 0x3c;
inline constexpr uint16_t INTERRUPT_PIN = 0x3d;
inline constexpr uint16_t MIN_GNT = 0x3e;
inline constexpr uint16_t MAX_LAT = 0x3f;
inline constexpr uint16_t HEADER_END = 0x40;  // capabilities live in 0x40..0xff
inline constexpr uint16_t CONFIG_SPACE_SIZE = 256;
inline constexpr unsigned NUM_BARS = 6;

// §6.2.2 Command register.
inline constexpr uint16_t COMMAND_IO = 1u << 0;
inline constexpr uint16_t COMMAND_MEMORY = 1u << 1;
inline constexpr uint16_t COMMAND_MASTER = 1u << 2;
inline constexpr uint16_t COMMAND_INTX_DISABLE = 1u << 10;
// §6.2.3 Status register.
inline constexpr uint16_t STATUS_CAP_LIST = 1u << 4;
// §6.2.5.1 memory BAR low bits: type 00 = 32-bit, 10 = 64-bit.
inline constexpr uint32_t BAR_MEM_TYPE_64 = 0x4;
inline constexpr uint32_t BAR_MEM_PREFETCH = 0x8;
inline constexpr uint32_t BAR_MEM_FLAGS = 0xf;
// Appendix H: capability IDs.
inline constexpr uint8_t CAP_ID_VNDR = 0x09;
}  // namespace pci

// Accesses the bus passes on: 1, 2, 4 or 8 bytes.
constexpr bool valid_access_width(unsigned width) {
    return width == 1 || width == 2 || width == 4 || width == 8;
}
// The all-ones value of an access of `width` bytes (width 1/2/4/8).
constexpr uint64_t access_mask(unsigned width) {
    return width >= 8 ? ~uint64_t{0} : (uint64_t{1} << (width * 8)) - 1;
}
// [a, a + alen) and [b, b + blen) share a byte (lengths are small, no overflow).
constexpr bool ranges_overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen) {
    return a < b + blen && b < a + alen;
}

struct PciIdentity {
    uint16_t vendor_id;
    uint16_t device_id;
    uint8_t revision_id;
    uint32_t class_code;  // base class << 16 | sub-class << 8 | programming interface
    uint16_t subsystem_vendor_id;
    uint16_t subsystem_id;
};

// Only memory BARs: the bus emulates MMIO (EPT violations), not port I/O BARs.
enum class BarType : uint8_t { none, mem32, mem64, mem64_upper };

class PciFunction {
  public:
    // ---- Called by the bus (which serialises them under its lock) ----
    // off + width <= 256, width 1, 2 or 4; off need not be aligned (a word at
    // CONFIG_DATA + 1 is legal), so registers are written byte by byte.
    uint32_t config_read(uint16_t off, unsigned width);
    void config_write(uint16_t off, unsigned width, uint32_t value);

    BarType bar_type(unsigned bar) const { return bar < pci::NUM_BARS ? bar_type_[bar] : BarType::none; }
    uint64_t bar_size(unsigned bar) const { return bar < pci::NUM_BARS ? bar_size_[bar] : 0; }
    // The address the BAR decodes now (type bits cleared; both halves for mem64).
    uint64_t bar_address(unsigned bar) const;
    uint16_t command() const { return static_cast<uint16_t>(raw_config(pci::COMMAND, 2)); }
    bool memory_space_enabled() const { return (command() & pci::COMMAND_MEMORY) != 0; }

    // The hypervisor's BAR assignment (it plays the firmware's part): kept as
    // the power-on value, restored by reset(). Address must be size-aligned.
    void assign_bar(unsigned bar, uint64_t address);
    // Power-on state of the whole function (guest restart): the configuration
    // image as built and assigned, then the device's own reset_function().
    void reset();

    // An access of width 1/2/4/8 fully inside memory BAR `bar` (enabled and
    // decoding). off is relative to the BAR's base.
    virtual uint64_t bar_read(unsigned bar, uint64_t off, unsigned width) = 0;
    virtual void bar_write(unsigned bar, uint64_t off, unsigned width, uint64_t value) = 0;

  protected:
    explicit PciFunction(const PciIdentity& id);
    ~PciFunction() = default;
    PciFunction(const PciFunction&) = delete;
    PciFunction& operator=(const PciFunction&) = delete;

    // Construction-time layout. size: a power of two >= 16 (§6.2.5.1); a
    // mem64 BAR also takes bar + 1. false: bad index, size or overlap.
    bool declare_bar(unsigned bar, BarType type, uint64_t size);
    // Appends a capability of `length` bytes (4-byte aligned, §6.7) to the
    // list: writes its ID and links it. Returns its offset, 0 if no room.
    uint8_t add_capability(uint8_t cap_id, uint8_t length);
    // Sets a field of the power-on image and which of its bits software may write.
    void init_config(uint16_t off, unsigned width, uint32_t value, uint32_t writable = 0);
    // The current image, without side effects / updated by the device itself
    // (not through the write mask). off + width <= 256, width 1/2/4.
    uint32_t raw_config(uint16_t off, unsigned width) const;
    void set_raw_config(uint16_t off, unsigned width, uint32_t value);

    // Side effects. Called with the bus lock held: a hook must not call the bus.
    virtual void before_config_read(uint16_t, unsigned) {}  // e.g. the virtio PCI_CFG window
    virtual void after_config_write(uint16_t, unsigned) {}  // sees the already-updated image
    virtual void reset_function() {}

  private:
    uint8_t config_[pci::CONFIG_SPACE_SIZE] = {};
    uint8_t wmask_[pci::CONFIG_SPACE_SIZE] = {};
    uint8_t power_on_[pci::CONFIG_SPACE_SIZE] = {};
    BarType bar_type_[pci::NUM_BARS] = {};
    uint64_t bar_size_[pci::NUM_BARS] = {};
    uint8_t last_cap_ = 0;  // offset of the last capability in the list, 0: none yet
    uint16_t cap_end_ = pci::HEADER_END;
};

}  // namespace hv::vdev
