#pragma once
// FrameAllocator: 4 KiB physical frames from a bitmap (1 bit per frame, set =
// used). Pure logic over caller-provided storage, so the kernel places the bitmap
// in RAM it found free and the unit tests put it on the heap. Not thread-safe:
// the kernel wraps it in a spinlock.

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/result.hpp"
#include "kernel/mm/memory_map.hpp"

namespace hv::mm {

constexpr uint64_t kFrameSize = 4096;

class FrameAllocator {
  public:
    // uint64_t words of bitmap needed for `frame_count` frames.
    static constexpr size_t bitmap_words(uint64_t frame_count) {
        return static_cast<size_t>(frame_count / 64 + (frame_count % 64 != 0 ? 1 : 0));
    }

    // Covers frames [base_phys, base_phys + frame_count * 4096); all start USED.
    // base_phys is rounded down to a frame; `bitmap` must hold bitmap_words() words.
    void init(uint64_t* bitmap, uint64_t base_phys, uint64_t frame_count);

    // Marks [r.base, r.end) free, clipped to coverage and page-aligned inward.
    // Init-time: frames already free are not counted twice.
    void add_free(Range r);
    // Marks [r.base, r.end) used, page-aligned outward; frames that were free
    // leave the managed total. Init-time, before those frames are allocated.
    void reserve(Range r);

    // A run of `count` frames starting at an address aligned to `align` (a power
    // of two >= 4096), entirely below `limit` when limit != 0 (e.g. the AP
    // trampoline must sit below 1 MiB). Errc::invalid_argument for bad arguments,
    // Errc::no_memory when no such run is free.
    Result<uint64_t> allocate(uint64_t count = 1, uint64_t align = kFrameSize, uint64_t limit = 0);
    // Errc::invalid_argument (and nothing freed) when any frame is outside
    // coverage or not currently allocated: catches double frees.
    Result<void> free(uint64_t phys, uint64_t count = 1);

    uint64_t total_frames() const { return total_; }  // frames added free (managed RAM)
    uint64_t free_frames() const { return free_; }

  private:
    static constexpr uint64_t kNone = ~uint64_t{0};

    // Sets or clears bits [first, first + n); returns how many bits changed.
    uint64_t mark(uint64_t first, uint64_t n, bool used);
    // First frame index in [from, to) that is free / used, or kNone.
    uint64_t find_free(uint64_t from, uint64_t to) const;
    uint64_t find_used(uint64_t from, uint64_t to) const;
    // Frame indices [*first, *end) of r within coverage; false when empty.
    bool clip(uint64_t base, uint64_t end, uint64_t* first, uint64_t* last) const;

    uint64_t* bitmap_ = nullptr;
    uint64_t base_frame_ = 0;
    uint64_t frame_count_ = 0;
    uint64_t total_ = 0;
    uint64_t free_ = 0;
    // Invariant: no free frame in bitmap words below hint_, so single-frame
    // allocations do not rescan the full prefix of a 24 GiB bitmap each time.
    uint64_t hint_ = 0;
};

}  // namespace hv::mm
