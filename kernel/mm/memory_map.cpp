#include "kernel/mm/memory_map.hpp"

#include "kernel/lib/bytes.hpp"

namespace hv::mm {

namespace {

using boot::MemRegion;
using boot::MemType;

constexpr uint64_t kMaxAddr = ~uint64_t{0};

// Higher rank = more restrictive. Firmware maps do overlap in practice (e.g. a
// reserved MMIO hole inside a usable range); treating the overlap as the safer
// type means we never hand out memory something else may own.
int rank(MemType t) {
    switch (t) {
        case MemType::usable: return 0;
        case MemType::acpi_reclaimable: return 1;
        case MemType::acpi_nvs: return 2;
        case MemType::reserved: return 3;
        case MemType::bad: return 4;
    }
    return 3;  // a value outside the enum (unknown firmware type): reserved
}

MemType type_of_rank(int r) {
    switch (r) {
        case 0: return MemType::usable;
        case 1: return MemType::acpi_reclaimable;
        case 2: return MemType::acpi_nvs;
        case 4: return MemType::bad;
        default: return MemType::reserved;
    }
}

// [base, end) of an input entry, clipped at 2^64 - 1 when base + length wraps.
struct Span {
    uint64_t base;
    uint64_t end;
    bool wrapped;
};

Span span_of(const MemRegion& r) {
    uint64_t end;
    if (add_overflows(r.base, r.length, &end)) return {r.base, kMaxAddr, true};
    return {r.base, end, false};
}

}  // namespace

Result<void> MemoryMap::build(const MemRegion* regions, size_t count) {
    count_ = 0;
    overlaps_ = 0;
    invalid_ = 0;
    if (count != 0 && regions == nullptr)
        return make_error(Errc::invalid_argument, "memory map build given null regions", count);

    bool any = false;
    uint64_t x = kMaxAddr;
    for (size_t i = 0; i < count; ++i) {
        Span a = span_of(regions[i]);
        if (a.wrapped) ++invalid_;
        if (a.base >= a.end) continue;  // zero length (or clipped to nothing)
        any = true;
        if (a.base < x) x = a.base;
        for (size_t j = i + 1; j < count; ++j) {
            Span b = span_of(regions[j]);
            if (b.base < b.end && a.base < b.end && b.base < a.end) ++overlaps_;
        }
    }
    if (!any) return ok_result();

    // Sweep over the boundaries: at each point x, the type is the most
    // restrictive of the entries covering x, and it holds until the nearest
    // entry start or end above x. Each step passes one boundary, so there are at
    // most 2 * count steps of O(count): fine for the <= 128 firmware entries.
    for (;;) {
        int best = -1;
        bool have_next = false;
        uint64_t next = kMaxAddr;
        for (size_t i = 0; i < count; ++i) {
            Span s = span_of(regions[i]);
            if (s.base >= s.end || s.end <= x) continue;
            uint64_t candidate;
            if (s.base <= x) {
                int r = rank(regions[i].type);
                if (r > best) best = r;
                candidate = s.end;
            } else {
                candidate = s.base;
            }
            if (!have_next || candidate < next) next = candidate;
            have_next = true;
        }
        if (!have_next) break;
        if (best >= 0) {
            MemType t = type_of_rank(best);
            MemRegion* prev = count_ != 0 ? &regions_[count_ - 1] : nullptr;
            if (prev != nullptr && prev->type == t && prev->base + prev->length == x) {
                prev->length += next - x;
            } else {
                if (count_ == kMaxRanges)
                    return make_error(Errc::no_memory, "memory map has more entries than kMaxRanges", count);
                regions_[count_++] = MemRegion{x, next - x, t};
            }
        }
        x = next;
    }
    return ok_result();
}

uint64_t MemoryMap::total_usable() const {
    uint64_t sum = 0;
    for (size_t i = 0; i < count_; ++i)
        if (regions_[i].type == MemType::usable) sum += regions_[i].length;
    return sum;
}

uint64_t MemoryMap::highest_usable_end() const {
    for (size_t i = count_; i-- > 0;)
        if (regions_[i].type == MemType::usable) return regions_[i].base + regions_[i].length;
    return 0;
}

uint64_t MemoryMap::highest_end() const {
    if (count_ == 0) return 0;
    return regions_[count_ - 1].base + regions_[count_ - 1].length;
}

Result<size_t> MemoryMap::free_ranges(const Range* reserved, size_t reserved_count, Range* out, size_t out_cap,
                                      uint64_t align) const {
    if (align == 0 || (align & (align - 1)) != 0)
        return make_error(Errc::invalid_argument, "free_ranges align not a power of two", align);
    if (reserved_count != 0 && reserved == nullptr)
        return make_error(Errc::invalid_argument, "free_ranges given null reserved ranges", reserved_count);
    for (size_t k = 0; k < reserved_count; ++k)
        if (reserved[k].end < reserved[k].base)
            return make_error(Errc::invalid_argument, "free_ranges reserved range end below base", k);

    size_t n = 0;
    for (size_t i = 0; i < count_; ++i) {
        if (regions_[i].type != MemType::usable) continue;
        uint64_t cur = regions_[i].base;
        uint64_t end = regions_[i].base + regions_[i].length;
        while (cur < end) {
            // Skip past every reservation covering cur (they may overlap and chain).
            bool moved = true;
            while (moved && cur < end) {
                moved = false;
                for (size_t k = 0; k < reserved_count; ++k) {
                    if (reserved[k].base <= cur && cur < reserved[k].end) {
                        cur = reserved[k].end;
                        moved = true;
                    }
                }
            }
            if (cur >= end) break;
            // The free piece runs to the next reservation start or the region end.
            uint64_t piece_end = end;
            for (size_t k = 0; k < reserved_count; ++k)
                if (reserved[k].base > cur && reserved[k].base < piece_end && reserved[k].end > reserved[k].base)
                    piece_end = reserved[k].base;

            uint64_t lo;
            if (!add_overflows(cur, align - 1, &lo)) {
                lo = align_down(lo, align);
                uint64_t hi = align_down(piece_end, align);
                if (lo < hi) {
                    if (n == out_cap)
                        return make_error(Errc::no_memory, "free_ranges output capacity too small", out_cap);
                    out[n++] = Range{lo, hi};
                }
            }
            cur = piece_end;
        }
    }
    return n;
}

}  // namespace hv::mm
