#pragma once
// The hypervisor's own address space and physical memory.
//
// Virtual layout (all kernel, 4-level paging):
//   0x0000000000200000  the image, identity mapped, W^X per section
//   trampoline page     identity mapped RX (< 1 MiB, AP start-up only)
//   kDirectMapBase      all physical memory 0..max(4 GiB, top of RAM), RW+NX
//   kMmioBase           device registers, uncached, RW+NX
//   kStackBase          per-CPU stacks, each below an unmapped guard page
// Page 0 is never mapped, so null dereferences fault.

#include <stddef.h>
#include <stdint.h>

#include "kernel/boot/multiboot.hpp"
#include "kernel/lib/phys_reader.hpp"
#include "kernel/lib/result.hpp"
#include "kernel/mm/memory_map.hpp"

namespace hv::mm {

constexpr uint64_t kDirectMapBase = 0xFFFF'8000'0000'0000ull;
constexpr uint64_t kMmioBase = 0xFFFF'FE00'0000'0000ull;
constexpr uint64_t kStackBase = 0xFFFF'FF00'0000'0000ull;
constexpr uint64_t kStackSlot = 64 * 1024;  // per stack: guard page + up to 60 KiB
constexpr uint64_t kBootDirectMapLimit = 4ull << 30;  // what boot/entry.asm maps

inline void* phys_to_virt(uint64_t phys) { return reinterpret_cast<void*>(kDirectMapBase + phys); }
inline uint64_t direct_virt_to_phys(const void* p) { return reinterpret_cast<uint64_t>(p) - kDirectMapBase; }

// Physical memory the firmware map calls usable but that must never be handed
// out: the image, loader data, modules, ACPI tables, page 0.
class Reservations {
  public:
    static constexpr size_t kCapacity = 96;
    void add(uint64_t base, uint64_t end, const char* what);
    size_t count() const { return count_; }
    const Range* ranges() const { return ranges_; }
    const char* what(size_t i) const { return what_[i]; }
    bool overflowed() const { return overflowed_; }

  private:
    Range ranges_[kCapacity] = {};
    const char* what_[kCapacity] = {};
    size_t count_ = 0;
    bool overflowed_ = false;
};

struct MemoryStats {
    uint64_t usable_bytes;      // RAM the firmware reports usable
    uint64_t managed_bytes;     // of that, handed to the frame allocator
    uint64_t free_bytes;        // still free now
    uint64_t direct_map_bytes;
    uint64_t page_table_pages;
    size_t map_overlaps;
    size_t map_invalid;
};

// Reads physical memory through the direct map, up to what is mapped.
class DirectMapReader final : public PhysReader {
  public:
    const uint8_t* view(uint64_t phys, uint64_t len) const override;
};
const DirectMapReader& phys_reader();

// Builds the normalised memory map, the frame allocator and the kernel page
// tables, then switches CR3 to them. `trampoline_phys` receives a page below
// 1 MiB for AP start-up (0 if none was free), mapped identity RX.
Result<void> init(const boot::BootInfo& boot, const Reservations& reserved, bool gib_pages,
                  uint64_t* trampoline_phys);

const MemoryMap& memory_map();
MemoryStats stats();
uint64_t kernel_cr3();

Result<uint64_t> alloc_frames(uint64_t count, uint64_t align = 4096, uint64_t limit = 0);
// Maps a fresh zeroed stack of `bytes` (multiple of 4 KiB) with a guard page
// below it; returns the top (initial RSP) and the lowest mapped address.
Result<uint64_t> map_stack(uint64_t bytes, uint64_t* bottom);
// Maps device registers uncached.
Result<volatile void*> map_mmio(uint64_t phys, uint64_t bytes);

// Page-table memory policy for structures built at run time (guest EPTs):
// zeroed frames from the allocator, reached through the direct map.
struct FrameTableMemory {
    uint64_t alloc_table();
    uint64_t* table(uint64_t phys) { return static_cast<uint64_t*>(phys_to_virt(phys)); }
};
FrameTableMemory& frame_table_memory();

}  // namespace hv::mm
