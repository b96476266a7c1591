#pragma once
// ACPI table discovery and MADT decoding (ACPI 6.5 chapter 5.2), as pure logic over
// a PhysReader so the same code runs in the hypervisor and in host unit tests.
//
// Firmware data is treated as hostile: every length is bounds-checked against what
// the reader can view before a byte is read, every loop advances by a validated
// non-zero step, and every array is fixed-capacity with overflow counted, not written.

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/phys_reader.hpp"
#include "kernel/lib/result.hpp"

namespace hv::acpi {

// Root System Description Pointer (ACPI 6.5 §5.2.5.3).
struct Rsdp {
    uint64_t phys;      // where it was found (or the origin of a copy; may be 0)
    uint8_t revision;   // 0 = ACPI 1.0 (20-byte RSDP); >= 2 = extended (XSDT present)
    uint32_t rsdt;
    uint64_t xsdt;      // 0 when revision < 2
    char oem_id[7];     // 6 bytes + NUL
};

// Validates an RSDP in physical memory: signature "RSD PTR ", checksum of the first
// 20 bytes, and for revision >= 2 the length field and the extended checksum.
Result<Rsdp> parse_rsdp(const PhysReader& mem, uint64_t phys);
// Same validation over a copy (multiboot2 ACPI old/new tags carry one); `origin` is
// recorded as Rsdp::phys.
Result<Rsdp> parse_rsdp_copy(const uint8_t* bytes, size_t len, uint64_t origin);
// Legacy BIOS search (§5.2.5.1): first 1 KiB of the EBDA, then 0xE0000-0xFFFFF, on
// 16-byte boundaries. Errc::not_found carries the number of candidates that had the
// signature but failed validation.
Result<uint64_t> find_rsdp_bios(const PhysReader& mem);

// One validated table: header readable, length >= 36, checksum over `length` is zero.
struct TableRef {
    char signature[5];
    uint64_t phys;
    uint32_t length;
    uint8_t revision;
};

constexpr size_t kMaxTables = 64;
// Root entries examined at most; anything past this counts as dropped. Bounds the
// work a corrupt RSDT/XSDT length can cause (each entry costs a checksum pass).
constexpr size_t kMaxRootEntries = 256;

struct Directory {
    TableRef tables[kMaxTables];
    size_t count;
    size_t rejected;               // entries whose table failed check_table
    Error first_reject;            // the first such failure ...
    char first_reject_sig[5];      // ... its signature ("????" when unreadable)
    uint64_t first_reject_phys;    // ... and its address
    size_t duplicates;             // entries pointing at an address already loaded
    size_t dropped;                // entries not examined: directory full or past kMaxRootEntries
    uint32_t root_trailing_bytes;  // RSDT/XSDT payload bytes that do not form a whole entry
    bool used_xsdt;
    uint64_t root_phys;

    // First table with this 4-character signature, or nullptr.
    const TableRef* find(const char* sig4) const;
};

// Loads the table directory from the XSDT (revision >= 2 and xsdt != 0) or the RSDT.
// A bad RSDT/XSDT is a hard error; a bad referenced table is only counted in
// `rejected` so one broken table does not hide the others.
Result<Directory> load_directory(const PhysReader& mem, const Rsdp& rsdp);
// Validates the header and checksum of one table (§5.2.6).
Result<TableRef> check_table(const PhysReader& mem, uint64_t phys);

constexpr size_t kMaxCpus = 256;
constexpr size_t kMaxIoApics = 16;
constexpr size_t kMaxOverrides = 32;
constexpr size_t kMaxNmis = 32;
constexpr uint32_t kAllProcessors = 0xFFFFFFFF;  // MadtNmi::acpi_uid meaning "all"

struct MadtCpu {
    uint32_t apic_id;
    uint32_t acpi_uid;
    bool enabled;
    bool online_capable;  // disabled now but may be brought online (MADT revision >= 5)
    bool x2apic_entry;    // came from a type 9 (Processor Local x2APIC) entry
};

struct MadtIoApic {
    uint8_t id;
    uint32_t address;
    uint32_t gsi_base;
};

struct MadtOverride {
    uint8_t bus;
    uint8_t source_irq;
    uint32_t gsi;
    uint16_t flags;  // MPS INTI flags: polarity bits 1:0, trigger mode bits 3:2
};

struct MadtNmi {
    uint32_t acpi_uid;  // kAllProcessors = all
    uint16_t flags;     // MPS INTI flags
    uint8_t lint;       // LINT0 or LINT1
};

struct Madt {
    uint64_t lapic_address;  // header field, or the type 5 override when present
    uint32_t flags;
    bool pcat_compat;  // dual 8259s present and must be masked (flags bit 0)
    MadtCpu cpus[kMaxCpus];
    size_t cpu_count;
    MadtIoApic ioapics[kMaxIoApics];
    size_t ioapic_count;
    MadtOverride overrides[kMaxOverrides];
    size_t override_count;
    MadtNmi nmis[kMaxNmis];
    size_t nmi_count;
    size_t skipped_entries;  // entry types we do not decode, skipped by their length
    size_t dropped_entries;  // decoded entries beyond capacity (caller must report)

    // CPUs that are enabled or online-capable.
    size_t usable_cpu_count() const;
};

// Parses the MADT ("APIC", §5.2.12), re-validating header and checksum itself.
Result<Madt> parse_madt(const PhysReader& mem, const TableRef& table);
// Same, writing into caller storage (the kernel keeps one Madt in static storage and
// should not put several KiB on its stack). `out` is cleared first; on error it holds
// whatever was decoded before the failure and must not be used.
Result<void> parse_madt_into(const PhysReader& mem, const TableRef& table, Madt& out);

}  // namespace hv::acpi
