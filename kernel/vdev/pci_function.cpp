#include "kernel/vdev/pci_function.hpp"

namespace hv::vdev {

namespace {
void put_le(uint8_t* p, unsigned width, uint32_t v) {
    for (unsigned i = 0; i < width; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_le(const uint8_t* p, unsigned width) {
    uint32_t v = 0;
    for (unsigned i = 0; i < width; ++i) v |= uint32_t{p[i]} << (8 * i);
    return v;
}
bool fits(uint16_t off, unsigned width) {
    return (width == 1 || width == 2 || width == 4) && uint32_t{off} + width <= pci::CONFIG_SPACE_SIZE;
}
}  // namespace

PciFunction::PciFunction(const PciIdentity& id) {
    init_config(pci::VENDOR_ID, 2, id.vendor_id);
    init_config(pci::DEVICE_ID, 2, id.device_id);
    // §6.2.2: memory space, bus master and interrupt disable are the only
    // command bits we implement (no I/O BARs, no parity or SERR reporting);
    // the rest are hardwired to 0, which §6.2.2 allows. Reset value 0: a
    // driver enables decoding itself (Linux's pci_enable_device does).
    init_config(pci::COMMAND, 2, 0, pci::COMMAND_MEMORY | pci::COMMAND_MASTER | pci::COMMAND_INTX_DISABLE);
    // Status: no error bits are ever set, so nothing is RW1C; CAP_LIST is set
    // by add_capability().
    init_config(pci::REVISION_ID, 1, id.revision_id);
    init_config(pci::CLASS_PROG, 1, id.class_code & 0xff);
    init_config(pci::CLASS_DEVICE, 2, (id.class_code >> 8) & 0xffff);
    init_config(pci::CACHE_LINE_SIZE, 1, 0, 0xff);
    // Latency timer, BIST, CardBus CIS, expansion ROM (no ROM), Min_Gnt and
    // Max_Lat are hardwired to 0. Header type 0x00: type-0 header,
    // single-function, so a scan stops after function 0.
    init_config(pci::SUBSYSTEM_VENDOR_ID, 2, id.subsystem_vendor_id);
    init_config(pci::SUBSYSTEM_ID, 2, id.subsystem_id);
    // §6.2.4: no INTx pin (pin 0; MSI-X only). Interrupt line is RW scratch
    // for software; 0xff means "unknown / not connected" on x86.
    init_config(pci::INTERRUPT_LINE, 1, 0xff, 0xff);
}

uint32_t PciFunction::raw_config(uint16_t off, unsigned width) const {
    if (!fits(off, width)) return 0;
    return get_le(config_ + off, width);
}

void PciFunction::set_raw_config(uint16_t off, unsigned width, uint32_t value) {
    if (!fits(off, width)) return;
    put_le(config_ + off, width, value);
}

void PciFunction::init_config(uint16_t off, unsigned width, uint32_t value, uint32_t writable) {
    if (!fits(off, width)) return;
    put_le(config_ + off, width, value);
    put_le(power_on_ + off, width, value);
    put_le(wmask_ + off, width, writable);
}

uint32_t PciFunction::config_read(uint16_t off, unsigned width) {
    if (!fits(off, width)) return 0xffffffffu;
    before_config_read(off, width);
    return get_le(config_ + off, width);
}

void PciFunction::config_write(uint16_t off, unsigned width, uint32_t value) {
    if (!fits(off, width)) return;
    for (unsigned i = 0; i < width; ++i) {
        const uint8_t b = static_cast<uint8_t>(value >> (8 * i));
        const uint8_t m = wmask_[off + i];
        config_[off + i] = static_cast<uint8_t>((config_[off + i] & ~m) | (b & m));
    }
    after_config_write(off, width);
}

bool PciFunction::declare_bar(unsigned bar, BarType type, uint64_t size) {
    if (type != BarType::mem32 && type != BarType::mem64) return false;
    if (bar >= pci::NUM_BARS || (type == BarType::mem64 && bar + 1 >= pci::NUM_BARS)) return false;
    if (size < 16 || (size & (size - 1)) != 0 || (type == BarType::mem32 && size > (uint64_t{1} << 31))) return false;
    if (bar_type_[bar] != BarType::none || (type == BarType::mem64 && bar_type_[bar + 1] != BarType::none))
        return false;
    const uint16_t reg = static_cast<uint16_t>(pci::BASE_ADDRESS_0 + 4 * bar);
    const uint64_t addr_mask = ~(size - 1);
    bar_type_[bar] = type;
    bar_size_[bar] = size;
    // §6.2.5.1: the low 4 bits are read-only type bits; address bits below
    // the size are hardwired to 0, which is what BAR sizing reads back.
    init_config(reg, 4, type == BarType::mem64 ? pci::BAR_MEM_TYPE_64 : 0,
                static_cast<uint32_t>(addr_mask) & ~pci::BAR_MEM_FLAGS);
    if (type == BarType::mem64) {
        bar_type_[bar + 1] = BarType::mem64_upper;
        init_config(static_cast<uint16_t>(reg + 4), 4, 0, static_cast<uint32_t>(addr_mask >> 32));
    }
    return true;
}

uint64_t PciFunction::bar_address(unsigned bar) const {
    const BarType t = bar_type(bar);
    if (t != BarType::mem32 && t != BarType::mem64) return 0;
    const uint16_t reg = static_cast<uint16_t>(pci::BASE_ADDRESS_0 + 4 * bar);
    uint64_t a = raw_config(reg, 4) & ~pci::BAR_MEM_FLAGS;
    if (t == BarType::mem64) a |= uint64_t{raw_config(static_cast<uint16_t>(reg + 4), 4)} << 32;
    return a;
}

void PciFunction::assign_bar(unsigned bar, uint64_t address) {
    const BarType t = bar_type(bar);
    if (t != BarType::mem32 && t != BarType::mem64) return;
    const uint16_t reg = static_cast<uint16_t>(pci::BASE_ADDRESS_0 + 4 * bar);
    const uint64_t a = address & ~(bar_size_[bar] - 1);
    const uint32_t flags = raw_config(reg, 4) & pci::BAR_MEM_FLAGS;
    put_le(config_ + reg, 4, static_cast<uint32_t>(a) | flags);
    put_le(power_on_ + reg, 4, static_cast<uint32_t>(a) | flags);
    if (t == BarType::mem64) {
        put_le(config_ + reg + 4, 4, static_cast<uint32_t>(a >> 32));
        put_le(power_on_ + reg + 4, 4, static_cast<uint32_t>(a >> 32));
    }
}

uint8_t PciFunction::add_capability(uint8_t cap_id, uint8_t length) {
    // §6.7: capabilities are DWORD aligned, in 0x40..0xff, linked through the
    // byte after the ID; the list starts at the Capabilities Pointer and
    // Status bit 4 says it exists.
    const uint16_t off = static_cast<uint16_t>((cap_end_ + 3u) & ~3u);
    if (length < 2 || off + length > pci::CONFIG_SPACE_SIZE) return 0;
    init_config(off, 1, cap_id);
    init_config(static_cast<uint16_t>(off + 1), 1, 0);
    if (last_cap_ == 0) {
        init_config(pci::CAPABILITY_LIST, 1, off);
        init_config(pci::STATUS, 2, raw_config(pci::STATUS, 2) | pci::STATUS_CAP_LIST);
    } else {
        init_config(static_cast<uint16_t>(last_cap_ + 1), 1, off);
    }
    last_cap_ = static_cast<uint8_t>(off);
    cap_end_ = static_cast<uint16_t>(off + length);
    return static_cast<uint8_t>(off);
}

void PciFunction::reset() {
    __builtin_memcpy(config_, power_on_, sizeof config_);
    reset_function();
}

}  // namespace hv::vdev
