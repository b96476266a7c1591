#pragma once
// PhysReader: read-only access to physical memory for parsers of structures that
// firmware and the boot loader leave in memory (multiboot info, ACPI tables).
// The hypervisor implements it over its direct map; unit tests implement it over
// memory dumps captured from real boots (tests/data), so the parsers are tested
// against exactly the bytes the emulators produced.

#include <stddef.h>
#include <stdint.h>

namespace hv {

class PhysReader {
  public:
    // Pointer to `len` readable bytes at physical address `phys`, or nullptr when
    // any part of the range is not accessible (outside RAM/dumps, or wraps 2^64).
    virtual const uint8_t* view(uint64_t phys, uint64_t len) const = 0;

  protected:
    ~PhysReader() = default;
};

}  // namespace hv
