#pragma once
// PCI from inside a guest: configuration mechanism #1 (I/O ports 0xCF8/0xCFC,
// PCI Local Bus Spec 3.0 §3.2.2.3.2), a scan of bus 0, BAR decoding (sizing
// only; the hypervisor assigns every BAR inside kBarWindowBase..kBarWindowEnd
// and the guest never moves one), the capability list and MSI-X (PCI 3.0
// §6.7, §6.8.2).

#include <stddef.h>
#include <stdint.h>

namespace hvg::pci {

inline constexpr uint16_t kConfigAddressPort = 0xCF8;
inline constexpr uint16_t kConfigDataPort = 0xCFC;

// Where the hypervisor places BARs (guest-physical). A BAR outside is refused.
#if HVG_QEMU_HARNESS
// tests/guestnet on plain QEMU: the firmware (SeaBIOS) places BARs anywhere
// above the guest's RAM.
inline constexpr uint64_t kBarWindowBase = 0x8000'0000;
inline constexpr uint64_t kBarWindowEnd = 1ull << 40;
#else
inline constexpr uint64_t kBarWindowBase = 0xE000'0000;
inline constexpr uint64_t kBarWindowEnd = 0xF000'0000;
#endif

// Type 0 configuration header offsets (PCI 3.0 §6.1).
inline constexpr uint16_t kVendorId = 0x00;
inline constexpr uint16_t kDeviceId = 0x02;
inline constexpr uint16_t kCommand = 0x04;
inline constexpr uint16_t kStatus = 0x06;
inline constexpr uint16_t kRevisionId = 0x08;
inline constexpr uint16_t kClassCode = 0x09;  // prog-if 0x09, subclass 0x0A, class 0x0B
inline constexpr uint16_t kHeaderType = 0x0E;
inline constexpr uint16_t kBar0 = 0x10;
inline constexpr uint16_t kCapabilitiesPtr = 0x34;

inline constexpr uint16_t kCommandIo = 1u << 0;
inline constexpr uint16_t kCommandMemory = 1u << 1;
inline constexpr uint16_t kCommandBusMaster = 1u << 2;
inline constexpr uint16_t kCommandIntxDisable = 1u << 10;
inline constexpr uint16_t kStatusCapList = 1u << 4;
inline constexpr uint8_t kHeaderMultiFunction = 0x80;

inline constexpr uint8_t kCapIdMsix = 0x11;
inline constexpr uint8_t kCapIdVendor = 0x09;

struct Address {
    uint8_t bus;
    uint8_t device;    // 0..31
    uint8_t function;  // 0..7
};

uint32_t read32(Address a, uint16_t off);
uint16_t read16(Address a, uint16_t off);
uint8_t read8(Address a, uint16_t off);
void write32(Address a, uint16_t off, uint32_t v);
void write16(Address a, uint16_t off, uint16_t v);
void write8(Address a, uint16_t off, uint8_t v);

struct Function {
    Address addr;
    uint16_t vendor_id;
    uint16_t device_id;
    uint8_t header_type;  // without the multi-function bit
    uint8_t class_code;
    uint8_t subclass;
    uint8_t prog_if;
    uint8_t revision;
};

// Every function present on bus 0, in device/function order; at most `cap`
// are stored. Returns how many were found (may exceed cap).
size_t scan_bus0(Function* out, size_t cap);
// The `index`-th (0-based) function on bus 0 with these IDs.
bool find_function(uint16_t vendor_id, uint16_t device_id, size_t index, Function* out);

struct Bar {
    uint64_t base;
    uint64_t size;
    bool is_io;
    bool is_64bit;
    bool prefetchable;
};

enum class BarError : uint8_t {
    ok,
    bad_index,       // > 5, or the upper half of a 64-bit BAR
    unimplemented,   // reads as zero and sizes to zero
    io_bar,          // an I/O BAR: not used by this runtime
    reserved_type,   // memory type 01b/11b (PCI 3.0 §6.2.5.1)
    outside_window,  // not inside [kBarWindowBase, kBarWindowEnd)
};
const char* bar_error_name(BarError e);

// Decodes and sizes BAR `index` of a type 0 function. Sizing writes all ones
// and restores the original value with memory and I/O decoding turned off
// meanwhile (PCI 3.0 §6.2.5.1), so the assignment is never changed.
BarError decode_bar(Address a, uint8_t index, Bar* out);

// Calls fn(ctx, offset, id) for each capability, in list order; stops when fn
// returns true. The walk is bounded (48 entries, offsets >= 0x40, dword
// aligned), so a looping list ends. Returns the offset fn stopped at, or 0.
using CapVisitor = bool (*)(void* ctx, Address a, uint8_t offset, uint8_t id);
uint8_t walk_capabilities(Address a, CapVisitor fn, void* ctx);
// The first capability with this ID, or 0.
uint8_t find_capability(Address a, uint8_t id);

// Enables memory decoding and bus mastering (DMA: the device reads the
// rings); optionally disables INTx (MSI-X or polling only).
void enable_device(Address a, bool disable_intx);

// MSI-X (PCI 3.0 §6.8.2).
struct MsixCap {
    uint8_t offset;         // of the capability in configuration space
    uint16_t table_size;    // entries (field + 1)
    uint8_t table_bar;      // BIR
    uint32_t table_offset;  // within that BAR, 8-byte aligned
    uint8_t pba_bar;
    uint32_t pba_offset;
};
bool find_msix(Address a, MsixCap* out);
// Message Control bit 15 (MSI-X Enable) and bit 14 (Function Mask).
void msix_control(Address a, const MsixCap& cap, bool enable, bool function_mask);

// One MSI-X table entry (PCI 3.0 Figure 6-11): 16 bytes, at table + 16 * n.
inline constexpr uint32_t kMsixEntrySize = 16;
inline constexpr uint32_t kMsixEntryAddrLo = 0;
inline constexpr uint32_t kMsixEntryAddrHi = 4;
inline constexpr uint32_t kMsixEntryData = 8;
inline constexpr uint32_t kMsixEntryControl = 12;
inline constexpr uint32_t kMsixEntryMasked = 1;
// Programs entry `n` of a table mapped at `table` (uncached) and unmasks it.
void msix_set_entry(uint64_t table, uint16_t n, uint64_t address, uint32_t data);
void msix_mask_entry(uint64_t table, uint16_t n, bool masked);

}  // namespace hvg::pci
