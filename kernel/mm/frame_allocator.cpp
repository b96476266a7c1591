#include "kernel/mm/frame_allocator.hpp"

#include "kernel/lib/bytes.hpp"

namespace hv::mm {

namespace {

constexpr uint64_t kAllOnes = ~uint64_t{0};

// Bits [lo, hi) of a word, 0 <= lo < hi <= 64.
constexpr uint64_t bit_mask(uint64_t lo, uint64_t hi) {
    uint64_t upper = hi == 64 ? kAllOnes : (uint64_t{1} << hi) - 1;
    return upper & ~((uint64_t{1} << lo) - 1);
}

// SWAR population count: __builtin_popcountll would call libgcc's
// __popcountdi2 in the freestanding build (no POPCNT without -mpopcnt).
constexpr uint64_t popcount(uint64_t v) {
    v = v - ((v >> 1) & 0x5555555555555555ull);
    v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (v * 0x0101010101010101ull) >> 56;
}
static_assert(popcount(0) == 0 && popcount(kAllOnes) == 64 && popcount(0x8000000000000001ull) == 2);

}  // namespace

void FrameAllocator::init(uint64_t* bitmap, uint64_t base_phys, uint64_t frame_count) {
    bitmap_ = bitmap;
    base_frame_ = base_phys / kFrameSize;
    // Coverage must not run past 2^64.
    uint64_t max_frames = (kAllOnes / kFrameSize) - base_frame_;
    frame_count_ = frame_count < max_frames ? frame_count : max_frames;
    total_ = 0;
    free_ = 0;
    // Bits past frame_count_ in the last word stay set forever, so the searches
    // never return a frame outside coverage.
    size_t words = bitmap_words(frame_count_);
    for (size_t w = 0; w < words; ++w) bitmap_[w] = kAllOnes;
    hint_ = words;
}

bool FrameAllocator::clip(uint64_t base, uint64_t end, uint64_t* first, uint64_t* last) const {
    uint64_t base_frame = base / kFrameSize;
    uint64_t end_frame = end / kFrameSize;  // exclusive
    uint64_t cov_end = base_frame_ + frame_count_;
    if (base_frame < base_frame_) base_frame = base_frame_;
    if (end_frame > cov_end) end_frame = cov_end;
    if (base_frame >= end_frame) return false;
    *first = base_frame - base_frame_;
    *last = end_frame - base_frame_;
    return true;
}

uint64_t FrameAllocator::mark(uint64_t first, uint64_t n, bool used) {
    uint64_t changed = 0;
    uint64_t i = first;
    uint64_t end = first + n;
    while (i < end) {
        uint64_t w = i / 64;
        uint64_t lo = i % 64;
        uint64_t hi = (end - w * 64) < 64 ? end - w * 64 : 64;
        uint64_t m = bit_mask(lo, hi);
        uint64_t old = bitmap_[w];
        uint64_t now = used ? (old | m) : (old & ~m);
        changed += popcount(old ^ now);
        bitmap_[w] = now;
        i = w * 64 + hi;
    }
    return changed;
}

uint64_t FrameAllocator::find_free(uint64_t from, uint64_t to) const {
    uint64_t i = from;
    while (i < to) {
        uint64_t w = i / 64;
        // Free bits of this word at or after i; full words are skipped whole.
        uint64_t bits = ~bitmap_[w] & (kAllOnes << (i % 64));
        if (bits != 0) {
            uint64_t f = w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits));
            return f < to ? f : kNone;
        }
        i = (w + 1) * 64;
    }
    return kNone;
}

uint64_t FrameAllocator::find_used(uint64_t from, uint64_t to) const {
    uint64_t i = from;
    while (i < to) {
        uint64_t w = i / 64;
        uint64_t bits = bitmap_[w] & (kAllOnes << (i % 64));
        if (bits != 0) {
            uint64_t f = w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits));
            return f < to ? f : kNone;
        }
        i = (w + 1) * 64;
    }
    return kNone;
}

void FrameAllocator::add_free(Range r) {
    if (r.end <= r.base) return;
    // Inward: a partial page at either edge is not ours to hand out.
    uint64_t base;
    if (add_overflows(r.base, kFrameSize - 1, &base)) return;
    uint64_t first, last;
    if (!clip(base, r.end, &first, &last)) return;
    uint64_t n = mark(first, last - first, false);
    total_ += n;
    free_ += n;
    if (first / 64 < hint_) hint_ = first / 64;
}

void FrameAllocator::reserve(Range r) {
    if (r.end <= r.base) return;
    // Outward: a partial page at either edge is still in use by someone.
    uint64_t end;
    if (add_overflows(r.end, kFrameSize - 1, &end)) end = kAllOnes;
    uint64_t first, last;
    if (!clip(r.base, end, &first, &last)) return;
    uint64_t n = mark(first, last - first, true);
    total_ -= n;
    free_ -= n;
}

Result<uint64_t> FrameAllocator::allocate(uint64_t count, uint64_t align, uint64_t limit) {
    if (count == 0) return make_error(Errc::invalid_argument, "frame allocate count is zero", 0);
    if (align < kFrameSize || (align & (align - 1)) != 0)
        return make_error(Errc::invalid_argument, "frame allocate align not a power of two >= 4096", align);
    if (count > free_) return make_error(Errc::no_memory, "frame allocator has fewer free frames than requested", count);

    if (count == 1 && align == kFrameSize && limit == 0) {
        // Fast path: the first free bit at or after the hint word.
        uint64_t i = find_free(hint_ * 64, frame_count_);
        if (i == kNone) return make_error(Errc::no_memory, "frame allocator exhausted", count);
        hint_ = i / 64;
        mark(i, 1, true);
        --free_;
        return (base_frame_ + i) * kFrameSize;
    }

    // The run must end at or below `limit` (in frame indices: end_idx).
    uint64_t end_idx = frame_count_;
    if (limit != 0) {
        uint64_t limit_frame = limit / kFrameSize;
        if (limit_frame <= base_frame_) return make_error(Errc::no_memory, "no frames below the limit", limit);
        if (limit_frame - base_frame_ < end_idx) end_idx = limit_frame - base_frame_;
    }
    if (count > end_idx) return make_error(Errc::no_memory, "frame run longer than the covered range", count);

    // Frame index i has address (base_frame_ + i) * 4096; alignment is on that.
    uint64_t align_frames = align / kFrameSize;
    auto align_idx = [&](uint64_t i) -> uint64_t {
        uint64_t abs = base_frame_ + i;
        uint64_t up;
        if (add_overflows(abs, align_frames - 1, &up)) return kNone;
        return align_down(up, align_frames) - base_frame_;
    };
    // Each step either finds the run or moves i past a used frame, so the scan is
    // linear in the bitmap (with full words skipped 64 frames at a time).
    uint64_t i = 0;
    uint64_t last_start = end_idx - count;
    while (i <= last_start) {
        i = find_free(i, last_start + 1);
        if (i == kNone) break;
        i = align_idx(i);
        if (i == kNone || i > last_start) break;
        uint64_t used = find_used(i, i + count);
        if (used == kNone) {
            mark(i, count, true);
            free_ -= count;
            return (base_frame_ + i) * kFrameSize;
        }
        i = used + 1;
    }
    return make_error(Errc::no_memory, "no free frame run of this size, alignment and limit", count);
}

Result<void> FrameAllocator::free(uint64_t phys, uint64_t count) {
    if (count == 0) return make_error(Errc::invalid_argument, "frame free count is zero", phys);
    if (!is_aligned(phys, kFrameSize)) return make_error(Errc::invalid_argument, "frame free address not 4 KiB aligned", phys);
    uint64_t frame = phys / kFrameSize;
    if (frame < base_frame_ || frame - base_frame_ > frame_count_ || count > frame_count_ - (frame - base_frame_))
        return make_error(Errc::invalid_argument, "frame free outside allocator coverage", phys);
    uint64_t first = frame - base_frame_;
    // Check the whole run before touching it, so a bad free changes nothing.
    uint64_t not_used = find_free(first, first + count);
    if (not_used != kNone)
        return make_error(Errc::invalid_argument, "frame free of a frame that is not allocated (double free?)",
                          (base_frame_ + not_used) * kFrameSize);
    mark(first, count, false);
    free_ += count;
    if (first / 64 < hint_) hint_ = first / 64;
    return ok_result();
}

}  // namespace hv::mm
