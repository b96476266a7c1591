#pragma once
// MemoryMap: the firmware memory map (as copied by the multiboot parser) turned
// into something the frame allocator can trust: sorted, non-overlapping, adjacent
// same-type entries merged, and with overlaps resolved towards safety.

#include <stddef.h>
#include <stdint.h>

#include "kernel/boot/multiboot.hpp"
#include "kernel/lib/result.hpp"

namespace hv::mm {

// [base, end), end exclusive.
struct Range {
    uint64_t base;
    uint64_t end;
    friend constexpr bool operator==(const Range&, const Range&) = default;
};

constexpr size_t kMaxRanges = 256;

class MemoryMap {
  public:
    // Normalises `regions`. Where firmware entries overlap, the most restrictive
    // type wins (bad > reserved/unknown > acpi_nvs > acpi_reclaimable > usable)
    // and overlaps() counts the overlapping entry pairs (the kernel warns about
    // them). Zero-length entries are ignored; entries wrapping 2^64 are clipped
    // and counted in invalid(). Errc::no_memory when the result has more than
    // kMaxRanges entries.
    Result<void> build(const boot::MemRegion* regions, size_t count);

    size_t count() const { return count_; }
    const boot::MemRegion& operator[](size_t i) const { return regions_[i]; }

    uint64_t total_usable() const;  // bytes of usable RAM (before removing reservations)
    uint64_t highest_usable_end() const;
    uint64_t highest_end() const;  // of any type (for sizing a direct map)
    size_t overlaps() const { return overlaps_; }
    size_t invalid() const { return invalid_; }

    // Usable RAM minus the `reserved` ranges (kernel image, modules, boot info,
    // ACPI tables, the first page...), each piece shrunk inward to `align`
    // boundaries (a power of two). Writes to out[0..out_cap) and returns the
    // count, or Errc::no_memory if out_cap is too small.
    Result<size_t> free_ranges(const Range* reserved, size_t reserved_count, Range* out, size_t out_cap,
                               uint64_t align = 4096) const;

  private:
    boot::MemRegion regions_[kMaxRanges] = {};
    size_t count_ = 0;
    size_t overlaps_ = 0;
    size_t invalid_ = 0;
};

}  // namespace hv::mm
