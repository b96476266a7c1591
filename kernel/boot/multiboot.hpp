#pragma once
// Parsers for the boot information a Multiboot 1 (0.6.96) or Multiboot2 (1.6)
// loader leaves in memory. Everything is copied into a fixed-size BootInfo so the
// loader's structures can be forgotten (and their memory reused) once parsing is
// done. All loader data is treated as hostile: every field is read through
// PhysReader::view with bounds covering exactly what is read.

#include <stddef.h>
#include <stdint.h>

#include <type_traits>

#include "kernel/lib/phys_reader.hpp"
#include "kernel/lib/result.hpp"

namespace hv::boot {

// Value in EAX at kernel entry (Multiboot 0.6.96 §3.2, Multiboot2 1.6 §3.3).
constexpr uint32_t kMultiboot1Magic = 0x2BADB002;
constexpr uint32_t kMultiboot2Magic = 0x36D76289;

// E820 / multiboot memory types. Anything else firmware reports becomes reserved.
enum class MemType : uint32_t {
    usable = 1,
    reserved = 2,
    acpi_reclaimable = 3,
    acpi_nvs = 4,
    bad = 5,
};

struct MemRegion {
    uint64_t base;
    uint64_t length;
    MemType type;
};

// A boot module. `end` is exclusive (GRUB sets mod_end = mod_start + size).
struct Module {
    uint64_t start;
    uint64_t end;
    char cmdline[128];  // truncated to fit, always NUL-terminated
};

// [base, end) physical range.
struct PhysRange {
    uint64_t base;
    uint64_t end;
};

constexpr size_t kMaxRegions = 128;
constexpr size_t kMaxModules = 16;
// MB1: mmap buffer, cmdline, loader name, module list, one string per kept module.
constexpr size_t kMaxLoaderData = kMaxModules + 8;

struct BootInfo {
    uint8_t protocol;  // 1 or 2
    // The multiboot info structure itself (to reserve it).
    uint64_t info_phys;
    uint64_t info_size;

    char cmdline[256];
    bool cmdline_truncated;  // the loader's cmdline did not fit: warn, options were lost
    char loader_name[64];    // truncated to fit

    MemRegion regions[kMaxRegions];  // raw firmware map, unsorted; see mm::MemoryMap
    size_t region_count;
    size_t regions_dropped;  // entries beyond kMaxRegions

    Module modules[kMaxModules];
    size_t module_count;
    size_t modules_dropped;  // modules beyond kMaxModules

    // MB2 ACPI tags (type 14 old RSDP, type 15 new RSDP) carry a COPY of the RSDP,
    // because under UEFI the original may not be in the BIOS area at all.
    uint8_t rsdp_copy[64];
    size_t rsdp_copy_len;  // 0 if no tag; type 15 is preferred over 14

    // Extra physical ranges the loader's data occupies that must not be reused
    // before parsing is done. MB1 only (mmap buffer, cmdline, loader name, module
    // list, module strings): MB2 keeps everything inside [info_phys, +info_size).
    PhysRange loader_data[kMaxLoaderData];
    size_t loader_data_count;

    uint64_t mem_lower_kib;
    uint64_t mem_upper_kib;
    bool has_basic_meminfo;
};
// The parsers clear it with memset, and the kernel keeps it in .bss.
static_assert(std::is_trivially_copyable_v<BootInfo>);

// Dispatches on the magic from EAX; unknown magic -> Errc::bad_signature with
// value = magic. On error `out` holds partial data and must not be used.
Result<void> parse_boot_info(const PhysReader& mem, uint32_t magic, uint64_t info_phys, BootInfo& out);
Result<void> parse_multiboot1(const PhysReader& mem, uint64_t info_phys, BootInfo& out);
Result<void> parse_multiboot2(const PhysReader& mem, uint64_t info_phys, BootInfo& out);

}  // namespace hv::boot
