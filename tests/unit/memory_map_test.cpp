// MemoryMap normalisation of firmware maps and the free-range computation the
// frame allocator is seeded from.

#include "kernel/mm/memory_map.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace hv::mm {

// Found by ADL for readable failure messages.
void PrintTo(const Range& r, std::ostream* os) { *os << std::hex << "[0x" << r.base << ",0x" << r.end << ")"; }

namespace {

using boot::MemRegion;
using boot::MemType;

constexpr MemType U = MemType::usable;
constexpr MemType R = MemType::reserved;
constexpr MemType A = MemType::acpi_reclaimable;
constexpr MemType N = MemType::acpi_nvs;
constexpr MemType B = MemType::bad;

struct Seg {
    uint64_t base, end;
    MemType type;
    bool operator==(const Seg&) const = default;
};

void PrintTo(const Seg& s, std::ostream* os) {
    *os << std::hex << "[0x" << s.base << ",0x" << s.end << ") type " << std::dec << static_cast<uint32_t>(s.type);
}

std::vector<Seg> segs(const MemoryMap& m) {
    std::vector<Seg> v;
    for (size_t i = 0; i < m.count(); ++i) v.push_back({m[i].base, m[i].base + m[i].length, m[i].type});
    return v;
}

// MemoryMap is ~6 KiB: keep it off the test stack.
std::unique_ptr<MemoryMap> build(const std::vector<MemRegion>& in) {
    auto m = std::make_unique<MemoryMap>();
    auto r = m->build(in.data(), in.size());
    EXPECT_TRUE(r.ok()) << r.error().detail;
    return m;
}

std::vector<Range> free_of(const MemoryMap& m, const std::vector<Range>& reserved, uint64_t align = 4096) {
    Range out[32];
    auto r = m.free_ranges(reserved.data(), reserved.size(), out, 32, align);
    EXPECT_TRUE(r.ok()) << r.error().detail;
    if (!r.ok()) return {};
    return std::vector<Range>(out, out + *r);
}


TEST(MemoryMap, EmptyInputGivesEmptyMap) {
    auto m = build({});
    EXPECT_EQ(m->count(), 0u);
    EXPECT_EQ(m->total_usable(), 0u);
    EXPECT_EQ(m->highest_end(), 0u);
    EXPECT_EQ(m->highest_usable_end(), 0u);
}

TEST(MemoryMap, UnsortedInputIsSorted) {
    auto m = build({{0x100000, 0x7ef0000, U}, {0xfffc0000, 0x40000, R}, {0, 0x9fc00, U}, {0x9fc00, 0x400, R}});
    EXPECT_EQ(segs(*m), (std::vector<Seg>{{0, 0x9fc00, U},
                                          {0x9fc00, 0xa0000, R},
                                          {0x100000, 0x7ff0000, U},
                                          {0xfffc0000, 0x100000000, R}}));
    EXPECT_EQ(m->overlaps(), 0u);
    EXPECT_EQ(m->invalid(), 0u);
}

TEST(MemoryMap, ReservedHoleInsideUsableSplitsIt) {
    auto m = build({{0, 0x100000, U}, {0x80000, 0x10000, R}});
    EXPECT_EQ(segs(*m), (std::vector<Seg>{{0, 0x80000, U}, {0x80000, 0x90000, R}, {0x90000, 0x100000, U}}));
    EXPECT_EQ(m->overlaps(), 1u);
}

TEST(MemoryMap, PartialOverlapRestrictiveTypeWins) {
    auto m = build({{0x4000, 0x4000, A}, {0x1000, 0x4000, U}});
    EXPECT_EQ(segs(*m), (std::vector<Seg>{{0x1000, 0x4000, U}, {0x4000, 0x8000, A}}));
    EXPECT_EQ(m->overlaps(), 1u);
}

TEST(MemoryMap, RestrictivenessOrder) {
    struct Case {
        MemType weak, strong;
    };
    const MemType unknown = static_cast<MemType>(99);
    for (Case c : {Case{U, A}, Case{A, N}, Case{N, R}, Case{R, B}, Case{N, unknown}, Case{unknown, B}}) {
        for (bool strong_first : {false, true}) {
            std::vector<MemRegion> in{{0x1000, 0x3000, c.weak}, {0x2000, 0x1000, c.strong}};
            if (strong_first) std::swap(in[0], in[1]);
            auto m = build(in);
            MemType shown = c.strong == unknown ? R : c.strong;
            MemType weak = c.weak == unknown ? R : c.weak;
            EXPECT_EQ(segs(*m), (std::vector<Seg>{{0x1000, 0x2000, weak}, {0x2000, 0x3000, shown}, {0x3000, 0x4000, weak}}))
                << static_cast<uint32_t>(c.weak) << " vs " << static_cast<uint32_t>(c.strong);
            EXPECT_EQ(m->overlaps(), 1u);
        }
    }
}

TEST(MemoryMap, DuplicateEntriesCollapseAndCountAsOverlap) {
    auto m = build({{0x100000, 0x100000, U}, {0x100000, 0x100000, U}, {0x100000, 0x100000, U}});
    EXPECT_EQ(segs(*m), (std::vector<Seg>{{0x100000, 0x200000, U}}));
    EXPECT_EQ(m->overlaps(), 3u);  // pairs (0,1) (0,2) (1,2)
}

TEST(MemoryMap, AdjacentSameTypeMergedButNotAcrossGapsOrTypes) {
    auto m = build({{0x0, 0x1000, U},
                    {0x1000, 0x1000, U},
                    {0x2000, 0x1000, R},
                    {0x3000, 0x1000, R},
                    {0x4000, 0x1000, U},
                    {0x6000, 0x1000, U}});
    EXPECT_EQ(segs(*m), (std::vector<Seg>{{0, 0x2000, U}, {0x2000, 0x4000, R}, {0x4000, 0x5000, U}, {0x6000, 0x7000, U}}));
    EXPECT_EQ(m->overlaps(), 0u);
}

TEST(MemoryMap, OverlapResolutionMergesWithNeighbours) {
    // The usable part after the reserved one merges with the next usable entry.
    auto m = build({{0x0, 0x4000, U}, {0x0, 0x1000, R}, {0x4000, 0x1000, U}});
    EXPECT_EQ(segs(*m), (std::vector<Seg>{{0, 0x1000, R}, {0x1000, 0x5000, U}}));
}

TEST(MemoryMap, ZeroLengthEntriesIgnored) {
    auto m = build({{0x5000, 0, B}, {0x1000, 0x8000, U}, {0x0, 0, R}});
    EXPECT_EQ(segs(*m), (std::vector<Seg>{{0x1000, 0x9000, U}}));
    EXPECT_EQ(m->overlaps(), 0u);
    EXPECT_EQ(m->invalid(), 0u);
}

TEST(MemoryMap, WrappingEntryIsClippedAndCounted) {
    auto m = build({{0x1000, 0x1000, U}, {0xfffffffffffff000, 0x2000, U}});
    ASSERT_EQ(m->count(), 2u);
    EXPECT_EQ(m->invalid(), 1u);
    EXPECT_EQ((*m)[1].base, 0xfffffffffffff000u);
    EXPECT_EQ((*m)[1].base + (*m)[1].length, ~uint64_t{0});
    EXPECT_EQ(m->highest_end(), ~uint64_t{0});
    // The clipped range keeps only whole pages after alignment.
    Range out[4];
    auto r = m->free_ranges(nullptr, 0, out, 4);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(*r, 1u);
    EXPECT_EQ(out[0], (Range{0x1000, 0x2000}));
}

TEST(MemoryMap, TotalsAndHighestAddresses) {
    auto m = build({{0, 0x9fc00, U}, {0x100000, 0x7ef0000, U}, {0x7ff0000, 0x10000, A}, {0xfffc0000, 0x40000, R}});
    EXPECT_EQ(m->total_usable(), 0x9fc00u + 0x7ef0000u);
    EXPECT_EQ(m->highest_usable_end(), 0x7ff0000u);
    EXPECT_EQ(m->highest_end(), 0x100000000u);
}

TEST(MemoryMap, TooManySegmentsIsNoMemory) {
    std::vector<MemRegion> in;
    for (uint64_t i = 0; i < kMaxRanges + 1; ++i) in.push_back({i * 0x2000, 0x1000, U});
    auto m = std::make_unique<MemoryMap>();
    auto r = m->build(in.data(), in.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
}

TEST(MemoryMap, EveryMultibootRegionFitsWhenNoneMerge) {
    // Adjacent entries of alternating type, given in reverse order.
    std::vector<MemRegion> in;
    for (uint64_t i = boot::kMaxRegions; i-- > 0;) in.push_back({i * 0x1000, 0x1000, i % 2 ? R : U});
    auto m = build(in);
    ASSERT_EQ(m->count(), boot::kMaxRegions);
    for (size_t i = 0; i < m->count(); ++i) {
        EXPECT_EQ((*m)[i].base, i * 0x1000);
        EXPECT_EQ((*m)[i].type, i % 2 ? R : U);
    }
    EXPECT_EQ(m->total_usable(), boot::kMaxRegions / 2 * 0x1000);
}

TEST(MemoryMap, NullRegionsWithCountIsInvalidArgument) {
    MemoryMap m;
    auto r = m.build(nullptr, 3);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

TEST(MemoryMap, RebuildReplacesPreviousContents) {
    auto m = build({{0, 0x1000, U}, {0, 0x1000, R}});
    EXPECT_EQ(m->overlaps(), 1u);
    ASSERT_TRUE(m->build(nullptr, 0).ok());
    EXPECT_EQ(m->count(), 0u);
    EXPECT_EQ(m->overlaps(), 0u);
}

TEST(MemoryMapFreeRanges, NoReservationsGivesUsableRegionsOnly) {
    auto m = build({{0, 0x9f000, U}, {0x9f000, 0x1000, R}, {0x100000, 0x100000, U}, {0x200000, 0x1000, N}});
    EXPECT_EQ(free_of(*m, {}), (std::vector<Range>{{0, 0x9f000}, {0x100000, 0x200000}}));
}

TEST(MemoryMapFreeRanges, ReservationInTheMiddleSplits) {
    auto m = build({{0x100000, 0x100000, U}});
    EXPECT_EQ(free_of(*m, {{0x150000, 0x160000}}), (std::vector<Range>{{0x100000, 0x150000}, {0x160000, 0x200000}}));
}

TEST(MemoryMapFreeRanges, ReservationsAtBothEdges) {
    auto m = build({{0x100000, 0x100000, U}});
    EXPECT_EQ(free_of(*m, {{0x1f0000, 0x200000}, {0x100000, 0x110000}}), (std::vector<Range>{{0x110000, 0x1f0000}}));
}

TEST(MemoryMapFreeRanges, ReservationsOverhangingEdges) {
    auto m = build({{0x100000, 0x100000, U}});
    EXPECT_EQ(free_of(*m, {{0x0, 0x120000}, {0x1e0000, 0x300000}}), (std::vector<Range>{{0x120000, 0x1e0000}}));
}

TEST(MemoryMapFreeRanges, ReservationCoveringWholeRegion) {
    auto m = build({{0x0, 0x9f000, U}, {0x100000, 0x100000, U}});
    EXPECT_EQ(free_of(*m, {{0x100000, 0x200000}}), (std::vector<Range>{{0, 0x9f000}}));
    EXPECT_EQ(free_of(*m, {{0x0, 0x1000000}}), std::vector<Range>{});
}

TEST(MemoryMapFreeRanges, ReservationSpanningTwoRegions) {
    auto m = build({{0x0, 0x9f000, U}, {0x9f000, 0x61000, R}, {0x100000, 0x100000, U}});
    EXPECT_EQ(free_of(*m, {{0x90000, 0x110000}}), (std::vector<Range>{{0, 0x90000}, {0x110000, 0x200000}}));
}

TEST(MemoryMapFreeRanges, OverlappingAndUnsortedReservationsChain) {
    auto m = build({{0x100000, 0x100000, U}});
    EXPECT_EQ(free_of(*m, {{0x130000, 0x140000}, {0x100000, 0x120000}, {0x118000, 0x131000}, {0x180000, 0x180000}}),
              (std::vector<Range>{{0x140000, 0x200000}}));
}

TEST(MemoryMapFreeRanges, PiecesShrinkInwardToAlignment) {
    auto m = build({{0x1234, 0x9876 - 0x1234, U}, {0x100000, 0x100000, U}});
    EXPECT_EQ(free_of(*m, {{0x150800, 0x150900}}),
              (std::vector<Range>{{0x2000, 0x9000}, {0x100000, 0x150000}, {0x151000, 0x200000}}));
    // 2 MiB alignment leaves nothing of a region that holds no aligned 2 MiB.
    EXPECT_EQ(free_of(*m, {}, 0x200000), std::vector<Range>{});
    auto big = build({{0x100000, 0x500000, U}});
    EXPECT_EQ(free_of(*big, {}, 0x200000), (std::vector<Range>{{0x200000, 0x600000}}));
}

TEST(MemoryMapFreeRanges, SubPageFragmentsDisappear) {
    auto m = build({{0x1000, 0x800, U}, {0x3100, 0x1000, U}});
    EXPECT_EQ(free_of(*m, {}), std::vector<Range>{});
}

TEST(MemoryMapFreeRanges, OutputCapacityTooSmallIsNoMemory) {
    auto m = build({{0x0, 0x9f000, U}, {0x100000, 0x100000, U}});
    Range out[1];
    auto r = m->free_ranges(nullptr, 0, out, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
    EXPECT_EQ(r.error().value, 1u);
}

TEST(MemoryMapFreeRanges, BadArgumentsAreRejected) {
    auto m = build({{0x100000, 0x100000, U}});
    Range out[4];
    auto r1 = m->free_ranges(nullptr, 0, out, 4, 3000);
    ASSERT_FALSE(r1.ok());
    EXPECT_EQ(r1.error().code, Errc::invalid_argument);
    auto r0 = m->free_ranges(nullptr, 0, out, 4, 0);
    ASSERT_FALSE(r0.ok());
    EXPECT_EQ(r0.error().code, Errc::invalid_argument);
    Range backwards{0x150000, 0x140000};
    auto r2 = m->free_ranges(&backwards, 1, out, 4);
    ASSERT_FALSE(r2.ok());
    EXPECT_EQ(r2.error().code, Errc::invalid_argument);
    // Zero-length reservations are fine and change nothing.
    Range empty{0x150000, 0x150000};
    auto r3 = m->free_ranges(&empty, 1, out, 4);
    ASSERT_TRUE(r3.ok());
    ASSERT_EQ(*r3, 1u);
    EXPECT_EQ(out[0], (Range{0x100000, 0x200000}));
}

}  // namespace
}  // namespace hv::mm
