#include "guests/runtime/pci.hpp"

#include "guests/runtime/mmio.hpp"
#include "guests/runtime/x86.hpp"

namespace hvg::pci {

namespace {

constexpr uint32_t kEnable = 1u << 31;
constexpr uint32_t kBarIo = 1u << 0;
constexpr uint32_t kBarMemTypeMask = 3u << 1;
constexpr uint32_t kBarMemType64 = 2u << 1;
constexpr uint32_t kBarPrefetchable = 1u << 3;
constexpr uint32_t kBarMemMask = ~0xFu;
constexpr uint16_t kMsixControlEnable = 1u << 15;
constexpr uint16_t kMsixControlMask = 1u << 14;
constexpr uint16_t kMsixTableSizeMask = 0x7FF;
constexpr int kMaxCapabilities = 48;  // (256 - 64) / 4: a list cannot hold more

// CONFIG_ADDRESS (PCI 3.0 §3.2.2.3.2): enable, bus, device, function, dword register.
void select(Address a, uint16_t off) {
    outl(kConfigAddressPort, kEnable | static_cast<uint32_t>(a.bus) << 16 | static_cast<uint32_t>(a.device & 31) << 11 |
                                 static_cast<uint32_t>(a.function & 7) << 8 | (off & 0xFC));
}

// The hypervisor's PCI emulation serializes config accesses per guest; the
// guest itself has one vCPU doing PCI, so no lock is taken here.

}  // namespace

uint32_t read32(Address a, uint16_t off) {
    select(a, off);
    return inl(kConfigDataPort);
}
uint16_t read16(Address a, uint16_t off) {
    select(a, off);
    return inw(static_cast<uint16_t>(kConfigDataPort + (off & 2)));
}
uint8_t read8(Address a, uint16_t off) {
    select(a, off);
    return inb(static_cast<uint16_t>(kConfigDataPort + (off & 3)));
}
void write32(Address a, uint16_t off, uint32_t v) {
    select(a, off);
    outl(kConfigDataPort, v);
}
// Narrow writes through the matching byte lanes of CONFIG_DATA, so that a
// 16-bit register (Command) is written without touching its neighbour
// (Status, whose bits are write-one-to-clear).
void write16(Address a, uint16_t off, uint16_t v) {
    select(a, off);
    outw(static_cast<uint16_t>(kConfigDataPort + (off & 2)), v);
}
void write8(Address a, uint16_t off, uint8_t v) {
    select(a, off);
    outb(static_cast<uint16_t>(kConfigDataPort + (off & 3)), v);
}

size_t scan_bus0(Function* out, size_t cap) {
    size_t found = 0;
    for (uint8_t dev = 0; dev < 32; ++dev) {
        uint8_t functions = 1;
        for (uint8_t fn = 0; fn < functions; ++fn) {
            Address a{0, dev, fn};
            uint16_t vendor = read16(a, kVendorId);
            // No function there: the host bridge answers all ones.
            if (vendor == 0xFFFF) continue;
            uint8_t header = read8(a, kHeaderType);
            if (fn == 0 && (header & kHeaderMultiFunction)) functions = 8;
            if (found < cap) {
                uint32_t class_rev = read32(a, kRevisionId);
                out[found] = Function{a,
                                      vendor,
                                      read16(a, kDeviceId),
                                      static_cast<uint8_t>(header & 0x7F),
                                      static_cast<uint8_t>(class_rev >> 24),
                                      static_cast<uint8_t>(class_rev >> 16),
                                      static_cast<uint8_t>(class_rev >> 8),
                                      static_cast<uint8_t>(class_rev)};
            }
            ++found;
        }
    }
    return found;
}

bool find_function(uint16_t vendor_id, uint16_t device_id, size_t index, Function* out) {
    constexpr size_t kMax = 32 * 8;
    Function all[kMax];
    size_t n = scan_bus0(all, kMax);
    if (n > kMax) n = kMax;
    for (size_t k = 0; k < n; ++k) {
        if (all[k].vendor_id != vendor_id || all[k].device_id != device_id) continue;
        if (index-- == 0) {
            *out = all[k];
            return true;
        }
    }
    return false;
}

const char* bar_error_name(BarError e) {
    switch (e) {
        case BarError::ok: return "ok";
        case BarError::bad_index: return "bad_index";
        case BarError::unimplemented: return "unimplemented";
        case BarError::io_bar: return "io_bar";
        case BarError::reserved_type: return "reserved_type";
        case BarError::outside_window: return "outside_window";
    }
    return "?";
}

BarError decode_bar(Address a, uint8_t index, Bar* out) {
    if (index > 5) return BarError::bad_index;
    uint16_t reg = static_cast<uint16_t>(kBar0 + 4 * index);
    uint32_t lo = read32(a, reg);
    if (lo & kBarIo) return BarError::io_bar;
    uint32_t type = lo & kBarMemTypeMask;
    if (type != 0 && type != kBarMemType64) return BarError::reserved_type;
    bool is64 = type == kBarMemType64;
    if (is64 && index == 5) return BarError::bad_index;
    uint32_t hi = is64 ? read32(a, static_cast<uint16_t>(reg + 4)) : 0;

    // Size with decoding off: while the BAR holds all ones the device would
    // otherwise claim a bogus range (PCI 3.0 §6.2.5.1 implementation note).
    uint16_t cmd = read16(a, kCommand);
    write16(a, kCommand, static_cast<uint16_t>(cmd & ~(kCommandMemory | kCommandIo)));
    write32(a, reg, 0xFFFF'FFFF);
    uint32_t size_lo = read32(a, reg);
    write32(a, reg, lo);
    uint32_t size_hi = 0xFFFF'FFFF;
    if (is64) {
        write32(a, static_cast<uint16_t>(reg + 4), 0xFFFF'FFFF);
        size_hi = read32(a, static_cast<uint16_t>(reg + 4));
        write32(a, static_cast<uint16_t>(reg + 4), hi);
    }
    write16(a, kCommand, cmd);

    uint64_t mask = (static_cast<uint64_t>(size_hi) << 32) | (size_lo & kBarMemMask);
    uint64_t size = ~mask + 1;
    if ((size_lo & kBarMemMask) == 0 && (!is64 || size_hi == 0)) return BarError::unimplemented;
    uint64_t base = (static_cast<uint64_t>(hi) << 32) | (lo & kBarMemMask);
    out->base = base;
    out->size = size;
    out->is_io = false;
    out->is_64bit = is64;
    out->prefetchable = (lo & kBarPrefetchable) != 0;
    if (size == 0 || base < kBarWindowBase || base >= kBarWindowEnd || size > kBarWindowEnd - base)
        return BarError::outside_window;
    return BarError::ok;
}

uint8_t walk_capabilities(Address a, CapVisitor fn, void* ctx) {
    if (!(read16(a, kStatus) & kStatusCapList)) return 0;
    uint8_t off = read8(a, kCapabilitiesPtr) & 0xFC;
    for (int k = 0; k < kMaxCapabilities && off >= 0x40; ++k) {
        uint8_t id = read8(a, off);
        if (fn(ctx, a, off, id)) return off;
        off = read8(a, static_cast<uint16_t>(off + 1)) & 0xFC;
    }
    return 0;
}

uint8_t find_capability(Address a, uint8_t id) {
    return walk_capabilities(
        a, [](void* ctx, Address, uint8_t, uint8_t cap_id) { return cap_id == *static_cast<uint8_t*>(ctx); }, &id);
}

void enable_device(Address a, bool disable_intx) {
    uint16_t cmd = read16(a, kCommand);
    cmd |= kCommandMemory | kCommandBusMaster;
    if (disable_intx) cmd |= kCommandIntxDisable;
    write16(a, kCommand, cmd);
}

// MSI-X capability (PCI 3.0 §6.8.2): ID(1) next(1) Message Control(2)
// Table Offset/BIR(4) PBA Offset/BIR(4).
bool find_msix(Address a, MsixCap* out) {
    uint8_t off = find_capability(a, kCapIdMsix);
    if (off == 0) return false;
    uint16_t control = read16(a, static_cast<uint16_t>(off + 2));
    uint32_t table = read32(a, static_cast<uint16_t>(off + 4));
    uint32_t pba = read32(a, static_cast<uint16_t>(off + 8));
    out->offset = off;
    out->table_size = static_cast<uint16_t>((control & kMsixTableSizeMask) + 1);
    out->table_bar = static_cast<uint8_t>(table & 7);
    out->table_offset = table & ~7u;
    out->pba_bar = static_cast<uint8_t>(pba & 7);
    out->pba_offset = pba & ~7u;
    return true;
}

void msix_control(Address a, const MsixCap& cap, bool enable, bool function_mask) {
    uint16_t off = static_cast<uint16_t>(cap.offset + 2);
    uint16_t control = read16(a, off);
    control = static_cast<uint16_t>(control & ~(kMsixControlEnable | kMsixControlMask));
    if (enable) control |= kMsixControlEnable;
    if (function_mask) control |= kMsixControlMask;
    write16(a, off, control);
}

// Entries are written with 32-bit accesses (PCI 3.0 §6.8.2: the table must
// accept DWORD accesses); the entry stays masked until its message is complete.
void msix_set_entry(uint64_t table, uint16_t n, uint64_t address, uint32_t data) {
    uint64_t e = table + static_cast<uint64_t>(n) * kMsixEntrySize;
    mmio_write32(e + kMsixEntryControl, kMsixEntryMasked);
    mmio_write32(e + kMsixEntryAddrLo, static_cast<uint32_t>(address));
    mmio_write32(e + kMsixEntryAddrHi, static_cast<uint32_t>(address >> 32));
    mmio_write32(e + kMsixEntryData, data);
    mmio_write32(e + kMsixEntryControl, 0);
}

void msix_mask_entry(uint64_t table, uint16_t n, bool masked) {
    uint64_t e = table + static_cast<uint64_t>(n) * kMsixEntrySize;
    mmio_write32(e + kMsixEntryControl, masked ? kMsixEntryMasked : 0);
}

}  // namespace hvg::pci
