#pragma once
// The hypervisor's view of one guest's RAM. Pure: virtqueue processing and the
// image loader use it in the hypervisor and in host tests alike.

#include <stdint.h>

namespace hv::guest {

// GPA -> host pointer for one contiguous RAM block, bounds-checked: every guest
// memory access in the hypervisor goes through this (STYLE.md §12).
class GuestMemory {
  public:
    GuestMemory() = default;
    GuestMemory(uint8_t* base, uint64_t bytes) : base_(base), bytes_(bytes) {}
    // nullptr unless [gpa, gpa + len) lies inside RAM (len may be 0).
    uint8_t* at(uint64_t gpa, uint64_t len) const {
        uint64_t end;
        if (__builtin_add_overflow(gpa, len, &end) || end > bytes_) return nullptr;
        return base_ + gpa;
    }
    uint64_t size() const { return bytes_; }

  private:
    uint8_t* base_ = nullptr;
    uint64_t bytes_ = 0;
};

}  // namespace hv::guest
