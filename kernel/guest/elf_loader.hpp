#pragma once
// Validates a guest image (ELF64 executable, from a boot module) before any
// byte of it is copied into guest RAM. The image is hostile input: every size
// and offset is checked against the module and against the guest's RAM.
// ELF-64 Object File Format 1.5 (program headers: §"Program header").

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/result.hpp"

namespace hv::guest {

struct LoadSegment {
    uint64_t file_offset;
    uint64_t file_size;
    uint64_t gpa;       // p_paddr: where it lands in guest-physical memory
    uint64_t mem_size;  // >= file_size; the rest is zero-filled
    bool write;
    bool exec;
};

struct ElfImage {
    static constexpr size_t kMaxSegments = 8;
    uint64_t entry;
    LoadSegment segments[kMaxSegments];
    size_t count;
    uint64_t lowest_gpa;
    uint64_t end_gpa;   // highest gpa + mem_size, exclusive
};

// `min_gpa`/`ram_bytes`: every segment must lie in [min_gpa, ram_bytes).
Result<ElfImage> parse_elf(const uint8_t* data, size_t size, uint64_t min_gpa, uint64_t ram_bytes);

}  // namespace hv::guest
