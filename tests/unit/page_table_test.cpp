#include "kernel/mm/page_table.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <vector>

#include "tests/unit/support/fake_table_memory.hpp"

namespace {

using hv::Errc;
using hv::mm::CacheMode;
using hv::mm::MapAttrs;
using hv::mm::PageSize;

// Entry bits spelled out independently of X86Format (SDM Vol. 3A Tables 4-15..4-20),
// so the tests check the encoding rather than the encoder against itself.
constexpr uint64_t kP = 1ull << 0;
constexpr uint64_t kRw = 1ull << 1;
constexpr uint64_t kUs = 1ull << 2;
constexpr uint64_t kPwt = 1ull << 3;
constexpr uint64_t kPcd = 1ull << 4;
constexpr uint64_t kPs = 1ull << 7;
constexpr uint64_t kG = 1ull << 8;
constexpr uint64_t kNx = 1ull << 63;
constexpr uint64_t kAddr = 0x000F'FFFF'FFFF'F000ull;

constexpr uint64_t k4K = 0x1000;
constexpr uint64_t k2M = 0x20'0000;
constexpr uint64_t k1G = 0x4000'0000;

using FakeMemory = hv::test::FakeTableMemory;

// Same memory, but the page table performs every entry store through write_entry,
// so the tests see the exact order of stores and the value each one replaced.
class RecordingMemory : public FakeMemory {
  public:
    struct Store {
        uint64_t table;
        unsigned index;
        uint64_t old_value;
        uint64_t value;
    };

    using FakeMemory::FakeMemory;

    void write_entry(uint64_t table_phys, unsigned index, uint64_t value) {
        uint64_t* e = table(table_phys) + index;
        stores.push_back(Store{table_phys, index, *e, value});
        *e = value;
    }

    std::vector<Store> stores;
};

static_assert(hv::mm::PageTableMemory<FakeMemory>);
static_assert(!hv::mm::WritesEntries<FakeMemory>);
static_assert(hv::mm::WritesEntries<RecordingMemory>);

using PageTable = hv::mm::PageTable<hv::mm::X86Format, FakeMemory>;
using RecordingPageTable = hv::mm::PageTable<hv::mm::X86Format, RecordingMemory>;

// Raw walk with the constants above: the entry at `level` (4 = PML4E .. 1 = PTE)
// for `virt`, or 0 when a table above it is missing or a large page ends the walk.
uint64_t raw_entry(FakeMemory& mem, uint64_t root, uint64_t virt, int level) {
    uint64_t table = root;
    for (int l = 4;; --l) {
        const uint64_t e = mem.table(table)[(virt >> (12 + 9 * (l - 1))) & 511];
        if (l == level) return e;
        if ((e & kP) == 0 || (l <= 3 && (e & kPs) != 0)) return 0;
        table = e & kAddr;
    }
}

constexpr MapAttrs kText{.write = false, .exec = true, .user = false, .global = true, .cache = CacheMode::write_back};
constexpr MapAttrs kRodata{.write = false, .exec = false, .user = false, .global = true, .cache = CacheMode::write_back};
constexpr MapAttrs kData{.write = true, .exec = false, .user = false, .global = true, .cache = CacheMode::write_back};
constexpr MapAttrs kMmio{.write = true, .exec = false, .user = false, .global = false, .cache = CacheMode::uncacheable};

void expect_translation(const PageTable& pt, uint64_t virt, uint64_t phys, PageSize page) {
    const auto t = pt.translate(virt);
    ASSERT_TRUE(t.ok()) << std::hex << "virt 0x" << virt << ": " << t.error().detail;
    EXPECT_EQ(t->phys, phys) << std::hex << "virt 0x" << virt;
    EXPECT_EQ(t->page, page) << std::hex << "virt 0x" << virt;
}

void expect_unmapped(const PageTable& pt, uint64_t virt) {
    const auto t = pt.translate(virt);
    ASSERT_FALSE(t.ok()) << std::hex << "virt 0x" << virt << " maps to 0x" << t->phys;
    EXPECT_EQ(t.error().code, Errc::not_found);
    EXPECT_EQ(t.error().value, virt);
}

TEST(PageTable, ConstructorAllocatesZeroedRoot) {
    FakeMemory mem(4);
    PageTable pt(mem);
    ASSERT_TRUE(pt.ok());
    EXPECT_EQ(pt.root(), FakeMemory::kBase);
    EXPECT_EQ(pt.tables_used(), 1u);
    EXPECT_EQ(mem.allocations(), 1u);
    expect_unmapped(pt, 0);
}

TEST(PageTable, RootAllocationFailureIsReported) {
    FakeMemory mem(0);
    PageTable pt(mem);
    EXPECT_FALSE(pt.ok());
    EXPECT_EQ(pt.root(), 0u);
    EXPECT_EQ(pt.tables_used(), 0u);
    const auto r = pt.map(0, 0, k4K, kData);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
    const auto t = pt.translate(0);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, Errc::not_found);
}

TEST(PageTable, IdentityMapOneMiBUses4KPages) {
    FakeMemory mem(8);
    PageTable pt(mem);
    ASSERT_TRUE(pt.map(0, 0, 0x10'0000, kData).ok());
    EXPECT_EQ(pt.tables_used(), 4u);  // PML4, PDPT, PD, PT
    EXPECT_EQ(mem.allocations(), 4u);
    expect_translation(pt, 0, 0, PageSize::size_4k);
    expect_translation(pt, 0x5123, 0x5123, PageSize::size_4k);
    expect_translation(pt, 0xF'FFFF, 0xF'FFFF, PageSize::size_4k);
    expect_unmapped(pt, 0x10'0000);
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x5000, 1), 0x5000 | kP | kRw | kG | kNx);
    EXPECT_EQ(raw_entry(mem, pt.root(), 0xFF000, 1), 0xFF000 | kP | kRw | kG | kNx);
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x10'0000, 1), 0u);
}

TEST(PageTable, Uses1GiBPageWhenAligned) {
    FakeMemory mem(8);
    PageTable pt(mem);
    ASSERT_TRUE(pt.map(k1G, 2 * k1G, k1G, MapAttrs{}).ok());
    EXPECT_EQ(pt.tables_used(), 2u);  // PML4, PDPT
    EXPECT_EQ(raw_entry(mem, pt.root(), k1G, 3), 0x8000'0000ull | kP | kPs | kNx);
    expect_translation(pt, k1G, 2 * k1G, PageSize::size_1g);
    expect_translation(pt, k1G + 0x1234'5678, 2 * k1G + 0x1234'5678, PageSize::size_1g);
    expect_translation(pt, 2 * k1G - 1, 3 * k1G - 1, PageSize::size_1g);
    expect_unmapped(pt, k1G - k4K);
    expect_unmapped(pt, 2 * k1G);
}

TEST(PageTable, Uses2MiBPagesWhenAligned) {
    FakeMemory mem(8);
    PageTable pt(mem);
    ASSERT_TRUE(pt.map(0x40'0000, 0x1'0060'0000, 2 * k2M, kData).ok());
    EXPECT_EQ(pt.tables_used(), 3u);  // PML4, PDPT, PD
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x40'0000, 2), 0x1'0060'0000ull | kP | kRw | kPs | kG | kNx);
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x60'0000, 2), 0x1'0080'0000ull | kP | kRw | kPs | kG | kNx);
    expect_translation(pt, 0x40'0000, 0x1'0060'0000, PageSize::size_2m);
    expect_translation(pt, 0x7F'FFFF, 0x1'009F'FFFF, PageSize::size_2m);
    expect_unmapped(pt, 0x80'0000);
    expect_unmapped(pt, 0x3F'F000);
}

TEST(PageTable, UnalignedHeadAndTailSplitIntoSmallerPages) {
    FakeMemory mem(16);
    PageTable pt(mem);
    // 4K head, 2M up to the 1G boundary, one 1G page, 2M, then two 4K pages.
    const uint64_t virt = 0x3FDF'F000;
    const uint64_t offset = 0x1'0000'0000;  // keeps virt and phys congruent mod 1 GiB
    const uint64_t size = k4K + k2M + k1G + k2M + 2 * k4K;
    ASSERT_TRUE(pt.map(virt, virt + offset, size, kData).ok());

    expect_unmapped(pt, 0x3FDF'E000);
    expect_translation(pt, 0x3FDF'F000, 0x1'3FDF'F000, PageSize::size_4k);
    expect_translation(pt, 0x3FDF'FFFF, 0x1'3FDF'FFFF, PageSize::size_4k);
    expect_translation(pt, 0x3FE0'0000, 0x1'3FE0'0000, PageSize::size_2m);
    expect_translation(pt, 0x3FFF'FFFF, 0x1'3FFF'FFFF, PageSize::size_2m);
    expect_translation(pt, 0x4000'0000, 0x1'4000'0000, PageSize::size_1g);
    expect_translation(pt, 0x7FFF'FFFF, 0x1'7FFF'FFFF, PageSize::size_1g);
    expect_translation(pt, 0x8000'0000, 0x1'8000'0000, PageSize::size_2m);
    expect_translation(pt, 0x801F'FFFF, 0x1'801F'FFFF, PageSize::size_2m);
    expect_translation(pt, 0x8020'0000, 0x1'8020'0000, PageSize::size_4k);
    expect_translation(pt, 0x8020'1FFF, 0x1'8020'1FFF, PageSize::size_4k);
    expect_unmapped(pt, 0x8020'2000);
    // PML4, PDPT, PD for 0-1G, PT for the head, PD for 2G-3G, PT for the tail.
    EXPECT_EQ(pt.tables_used(), 6u);
}

TEST(PageTable, MisalignedPhysicalAddressForces4KPages) {
    FakeMemory mem(8);
    PageTable pt(mem);
    // virt is 2 MiB aligned but phys only 4 KiB aligned: no large page can map it.
    ASSERT_TRUE(pt.map(k2M, k2M + k4K, k2M, kData).ok());
    expect_translation(pt, k2M, k2M + k4K, PageSize::size_4k);
    expect_translation(pt, 2 * k2M - 1, 2 * k2M + k4K - 1, PageSize::size_4k);
    EXPECT_EQ(pt.tables_used(), 4u);
}

TEST(PageTable, MaxPageLimitRespected) {
    FakeMemory mem(8);
    PageTable pt(mem);
    ASSERT_TRUE(pt.map(0, 0, 2 * k2M, kData, PageSize::size_4k).ok());
    expect_translation(pt, 0, 0, PageSize::size_4k);
    expect_translation(pt, k2M + 0x1234, k2M + 0x1234, PageSize::size_4k);
    EXPECT_EQ(pt.tables_used(), 5u);  // PML4, PDPT, PD, two PTs

    ASSERT_TRUE(pt.map(k1G, k1G, k1G, kData, PageSize::size_2m).ok());
    expect_translation(pt, k1G, k1G, PageSize::size_2m);
    expect_translation(pt, 2 * k1G - 1, 2 * k1G - 1, PageSize::size_2m);
    EXPECT_EQ(raw_entry(mem, pt.root(), k1G, 3) & (kP | kPs), kP);  // a table, not a 1G page
    EXPECT_EQ(raw_entry(mem, pt.root(), k1G, 2), k1G | kP | kRw | kPs | kG | kNx);
    EXPECT_EQ(pt.tables_used(), 6u);
}

TEST(PageTable, WxAttributesProduceExactEntryBits) {
    FakeMemory mem(8);
    PageTable pt(mem);
    const MapAttrs user_rwx{.write = true, .exec = true, .user = true, .global = false, .cache = CacheMode::write_back};
    ASSERT_TRUE(pt.map(0x10'0000, 0x10'0000, k4K, kText).ok());
    ASSERT_TRUE(pt.map(0x10'1000, 0x10'1000, k4K, kRodata).ok());
    ASSERT_TRUE(pt.map(0x10'2000, 0x10'2000, k4K, kData).ok());
    ASSERT_TRUE(pt.map(0x10'3000, 0x10'3000, k4K, user_rwx).ok());

    EXPECT_EQ(raw_entry(mem, pt.root(), 0x10'0000, 1), 0x0000'0000'0010'0101ull);  // P|G
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x10'1000, 1), 0x8000'0000'0010'1101ull);  // P|G|NX
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x10'2000, 1), 0x8000'0000'0010'2103ull);  // P|RW|G|NX
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x10'3000, 1), 0x0000'0000'0010'3007ull);  // P|RW|US

    struct Expect {
        uint64_t virt;
        MapAttrs attrs;
    };
    for (const Expect& e : {Expect{0x10'0000, kText}, Expect{0x10'1000, kRodata}, Expect{0x10'2000, kData},
                            Expect{0x10'3000, user_rwx}}) {
        const auto t = pt.translate(e.virt + 0x10);
        ASSERT_TRUE(t.ok());
        EXPECT_EQ(t->phys, e.virt + 0x10);
        EXPECT_EQ(t->attrs.write, e.attrs.write) << std::hex << e.virt;
        EXPECT_EQ(t->attrs.exec, e.attrs.exec) << std::hex << e.virt;
        EXPECT_EQ(t->attrs.user, e.attrs.user) << std::hex << e.virt;
        EXPECT_EQ(t->attrs.global, e.attrs.global) << std::hex << e.virt;
        EXPECT_EQ(t->attrs.cache, CacheMode::write_back);
    }
}

TEST(PageTable, IntermediateEntriesArePermissive) {
    FakeMemory mem(8);
    PageTable pt(mem);
    ASSERT_TRUE(pt.map(0x10'1000, 0x10'1000, k4K, kRodata).ok());
    // P|RW and nothing else: no NX (it would forbid exec below), no US for kernel pages.
    for (int level = 4; level >= 2; --level) {
        const uint64_t e = raw_entry(mem, pt.root(), 0x10'1000, level);
        EXPECT_EQ(e & ~kAddr, kP | kRw) << "level " << level;
        EXPECT_TRUE(mem.owns(e & kAddr)) << "level " << level;
    }
}

TEST(PageTable, UserMappingWidensExistingTablesOnly) {
    RecordingMemory mem(8);
    RecordingPageTable pt(mem);
    ASSERT_TRUE(pt.map(0x10'0000, 0x10'0000, k4K, kData).ok());
    mem.stores.clear();
    const MapAttrs user{.write = true, .exec = false, .user = true, .global = false, .cache = CacheMode::write_back};
    ASSERT_TRUE(pt.map(0x10'1000, 0x10'1000, k4K, user).ok());
    EXPECT_EQ(pt.tables_used(), 4u);  // reused the existing PDPT/PD/PT
    for (int level = 4; level >= 2; --level)
        EXPECT_EQ(raw_entry(mem, pt.root(), 0x10'1000, level) & ~kAddr, kP | kRw | kUs) << "level " << level;
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x10'1000, 1), 0x8000'0000'0010'1007ull);
    // The kernel page next to it stays supervisor-only: its leaf has no US.
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x10'0000, 1), 0x8000'0000'0010'0103ull);
    // One leaf store, then three widening stores (PD, PDPT, PML4 order, bottom up)
    // that each only add US to the entry they replace.
    ASSERT_EQ(mem.stores.size(), 4u);
    EXPECT_EQ(mem.stores[0].old_value, 0u);
    for (size_t i = 1; i < 4; ++i) EXPECT_EQ(mem.stores[i].value, mem.stores[i].old_value | kUs) << i;
    EXPECT_EQ(mem.stores[3].table, pt.root());
}

TEST(PageTable, UncacheableAndWriteCombiningSetPcdAndPwt) {
    FakeMemory mem(8);
    PageTable pt(mem);
    MapAttrs wc = kMmio;
    wc.cache = CacheMode::write_combining;
    ASSERT_TRUE(pt.map(0xFEE0'0000, 0xFEE0'0000, k4K, kMmio).ok());
    ASSERT_TRUE(pt.map(0xFD00'0000, 0xFD00'0000, k2M, wc).ok());
    ASSERT_TRUE(pt.map(0xFEC0'0000, 0xFEC0'0000, k4K, kData).ok());
    EXPECT_EQ(raw_entry(mem, pt.root(), 0xFEE0'0000, 1), 0x8000'0000'FEE0'001Bull);  // P|RW|PWT|PCD|NX
    EXPECT_EQ(raw_entry(mem, pt.root(), 0xFD00'0000, 2), 0x8000'0000'FD00'009Bull);  // ... |PS
    EXPECT_EQ(raw_entry(mem, pt.root(), 0xFEC0'0000, 1) & (kPcd | kPwt), 0u);
    EXPECT_EQ(pt.translate(0xFEE0'0300)->attrs.cache, CacheMode::uncacheable);
    EXPECT_EQ(pt.translate(0xFD00'1000)->attrs.cache, CacheMode::uncacheable);
    EXPECT_EQ(pt.translate(0xFEC0'0000)->attrs.cache, CacheMode::write_back);
}

TEST(PageTable, OverlapRejectedWithoutChanges) {
    FakeMemory mem(16);
    PageTable pt(mem);
    ASSERT_TRUE(pt.map(0x20'0000, 0x20'0000, k2M, kData).ok());     // one 2M page
    ASSERT_TRUE(pt.map(0x60'0000, 0x60'0000, k4K, kData).ok());     // 4K in a new PT
    const uint64_t tables = pt.tables_used();
    const size_t allocations = mem.allocations();

    struct Case {
        uint64_t virt;
        uint64_t size;
        PageSize max_page;
        uint64_t reported;
    };
    const Case cases[] = {
        {0x20'0000, k2M, PageSize::size_1g, 0x20'0000},          // same range
        {0x20'1000, k4K, PageSize::size_1g, 0x20'1000},          // 4K inside the 2M page
        {0x20'0000, k2M, PageSize::size_4k, 0x20'0000},          // 4K pages over the 2M page
        {0x10'0000, 0x20'0000, PageSize::size_1g, 0x20'0000},    // free head, overlapping tail
        {0x60'0000, k2M, PageSize::size_1g, 0x60'0000},          // 2M page over a PT in use
        {0x5F'F000, 2 * k4K, PageSize::size_1g, 0x60'0000},      // straddles into the 4K page
        {0, k1G, PageSize::size_1g, 0},                          // 1G page over the PD in use
    };
    for (const Case& c : cases) {
        const auto r = pt.map(c.virt, 0x1'0000'0000 + c.virt, c.size, kData, c.max_page);
        ASSERT_FALSE(r.ok()) << std::hex << c.virt;
        EXPECT_EQ(r.error().code, Errc::overlap) << std::hex << c.virt;
        EXPECT_EQ(r.error().value, c.reported) << std::hex << c.virt;
    }
    EXPECT_EQ(pt.tables_used(), tables);
    EXPECT_EQ(mem.allocations(), allocations);
    expect_unmapped(pt, 0x10'0000);
    expect_unmapped(pt, 0x5F'F000);
    expect_translation(pt, 0x20'1000, 0x20'1000, PageSize::size_2m);
    expect_translation(pt, 0x60'0000, 0x60'0000, PageSize::size_4k);
    // Adjacent ranges are not overlaps.
    EXPECT_TRUE(pt.map(0x40'0000, 0x40'0000, k2M, kData).ok());
    EXPECT_TRUE(pt.map(0x60'1000, 0x60'1000, k4K, kData).ok());
}

TEST(PageTable, InvalidArgumentsRejected) {
    FakeMemory mem(8);
    PageTable pt(mem);
    struct Case {
        uint64_t virt;
        uint64_t phys;
        uint64_t size;
        PageSize max_page;
    };
    const Case cases[] = {
        {0, 0, 0, PageSize::size_1g},                                      // size 0
        {0x1001, 0, k4K, PageSize::size_1g},                               // unaligned virt
        {0, 0x1001, k4K, PageSize::size_1g},                               // unaligned phys
        {0, 0, 0x1800, PageSize::size_1g},                                 // unaligned size
        {0x0000'8000'0000'0000ull, 0, k4K, PageSize::size_1g},             // non-canonical
        {0xFFFF'7FFF'FFFF'F000ull, 0, k4K, PageSize::size_1g},             // non-canonical
        {0x0000'7FFF'FFFF'F000ull, 0, 2 * k4K, PageSize::size_1g},         // runs into the hole
        {0xFFFF'FFFF'FFFF'F000ull, 0, 2 * k4K, PageSize::size_1g},         // wraps past 2^64
        {0, 1ull << 52, k4K, PageSize::size_1g},                           // phys beyond 52 bits
        {0, (1ull << 52) - k4K, 2 * k4K, PageSize::size_1g},               // phys range crosses 2^52
        {0, 0xFFFF'FFFF'FFFF'F000ull, 2 * k4K, PageSize::size_1g},         // phys wraps
        {0, 0, k4K, static_cast<PageSize>(0x3000)},                        // not a page size
    };
    for (const Case& c : cases) {
        const auto r = pt.map(c.virt, c.phys, c.size, kData, c.max_page);
        ASSERT_FALSE(r.ok()) << std::hex << c.virt << " " << c.phys << " " << c.size;
        EXPECT_EQ(r.error().code, Errc::invalid_argument) << std::hex << c.virt << " " << c.phys;
    }
    EXPECT_EQ(pt.tables_used(), 1u);
    EXPECT_EQ(mem.allocations(), 1u);
}

TEST(PageTable, MapsEdgesOfAddressSpaces) {
    FakeMemory mem(16);
    PageTable pt(mem);
    // Last page of the upper half (the range ends exactly at 2^64).
    ASSERT_TRUE(pt.map(0xFFFF'FFFF'FFFF'F000ull, 0x5000, k4K, kData).ok());
    expect_translation(pt, 0xFFFF'FFFF'FFFF'FFFFull, 0x5FFF, PageSize::size_4k);
    // The start of a -2 GiB kernel window, as one 1 GiB page.
    ASSERT_TRUE(pt.map(0xFFFF'FFFF'8000'0000ull, k1G, k1G, kData).ok());
    expect_translation(pt, 0xFFFF'FFFF'8000'0005ull, 0x4000'0005, PageSize::size_1g);
    // Last page below the hole, and the highest 52-bit physical page.
    ASSERT_TRUE(pt.map(0x0000'7FFF'FFFF'F000ull, (1ull << 52) - k4K, k4K, kData).ok());
    expect_translation(pt, 0x0000'7FFF'FFFF'F123ull, (1ull << 52) - k4K + 0x123, PageSize::size_4k);
    expect_unmapped(pt, 0xFFFF'FFFF'FFFF'E000ull);
}

TEST(PageTable, TranslateRejectsNonCanonicalAddress) {
    FakeMemory mem(4);
    PageTable pt(mem);
    const auto t = pt.translate(0x0000'8000'0000'0000ull);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, Errc::invalid_argument);
    EXPECT_EQ(t.error().value, 0x0000'8000'0000'0000ull);
}

TEST(PageTable, AllocationFailureLeavesNoPartialMapping) {
    FakeMemory mem(6);
    PageTable pt(mem);
    ASSERT_TRUE(pt.map(0, 0, k4K, kData).ok());
    EXPECT_EQ(mem.allocations(), 4u);

    // Needs a PDPT, a PD and a PT; only two pages are left.
    const uint64_t far = 0x80'0000'0000ull;  // next PML4 slot
    const auto r = pt.map(far, 0, k4K, kData);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
    EXPECT_EQ(r.error().value, 1u);  // one table short
    EXPECT_EQ(mem.allocations(), 6u);
    EXPECT_EQ(pt.tables_used(), 4u);
    EXPECT_EQ(raw_entry(mem, pt.root(), far, 4), 0u);
    expect_unmapped(pt, far);
    expect_translation(pt, 0, 0, PageSize::size_4k);

    // Pages in the next two 2 MiB regions each need one new PT: the two pages the
    // failed call allocated are reused, with the spare-list link in entry 0 cleared.
    ASSERT_TRUE(pt.map(0x20'1000, 0x20'1000, k4K, kData).ok());
    ASSERT_TRUE(pt.map(0x40'1000, 0x40'1000, k4K, kData).ok());
    EXPECT_EQ(mem.allocations(), 6u);
    EXPECT_EQ(pt.tables_used(), 6u);
    expect_translation(pt, 0x20'1000, 0x20'1000, PageSize::size_4k);
    expect_translation(pt, 0x40'1000, 0x40'1000, PageSize::size_4k);
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x20'0000, 1), 0u);
    EXPECT_EQ(raw_entry(mem, pt.root(), 0x40'0000, 1), 0u);

    const auto full = pt.map(0x60'1000, 0x60'1000, k4K, kData);
    ASSERT_FALSE(full.ok());
    EXPECT_EQ(full.error().code, Errc::no_memory);
    expect_unmapped(pt, 0x60'1000);
}

TEST(PageTable, NoMemoryDetectedBeforeAnyStore) {
    RecordingMemory mem(4);
    RecordingPageTable pt(mem);
    // 1 MiB head of 4K pages, a 2M page, a 4K tail: needs a PDPT, a PD and two
    // PTs, but only three pages are left after the root.
    const auto r = pt.map(0x10'0000, 0x10'0000, 0x10'0000 + k2M + k4K, kData);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
    EXPECT_EQ(r.error().value, 1u);  // one table short
    EXPECT_TRUE(mem.stores.empty());
    EXPECT_EQ(pt.tables_used(), 1u);
}

TEST(PageTable, NewTablesAreFilledBeforeTheyAreLinked) {
    RecordingMemory mem(16);
    RecordingPageTable pt(mem);
    const uint64_t virt = 0x3FDF'F000;
    const uint64_t size = k4K + k2M + k1G + k2M + 2 * k4K;
    ASSERT_TRUE(pt.map(virt, virt + 0x1'0000'0000, size, kData).ok());

    // 1 + 1 + 1 + 1 + 2 leaves, 5 links (PDPT, 2 PDs, 2 PTs).
    ASSERT_EQ(mem.stores.size(), 11u);
    std::map<uint64_t, size_t> linked_at;  // table -> index of the store linking it
    for (size_t i = 0; i < mem.stores.size(); ++i) {
        const auto& s = mem.stores[i];
        EXPECT_EQ(s.old_value, 0u) << "store " << i << " overwrote a live entry";
        if ((s.value & kPs) == 0 && mem.owns(s.value & kAddr)) {
            EXPECT_EQ(linked_at.count(s.value & kAddr), 0u) << "table linked twice";
            linked_at[s.value & kAddr] = i;
        }
    }
    EXPECT_EQ(linked_at.size(), 5u);
    for (size_t i = 0; i < mem.stores.size(); ++i) {
        const uint64_t table = mem.stores[i].table;
        if (table == pt.root()) continue;
        ASSERT_EQ(linked_at.count(table), 1u);
        EXPECT_LT(i, linked_at[table]) << "store " << i << " into a table after it was linked";
    }
    EXPECT_EQ(mem.stores.back().table, pt.root());  // the PML4 link is the last store

    // A second map into the live tables only fills empty entries.
    mem.stores.clear();
    ASSERT_TRUE(pt.map(0x3FDF'E000, 0x1'3FDF'E000, k4K, kData).ok());
    ASSERT_EQ(mem.stores.size(), 1u);
    EXPECT_EQ(mem.stores[0].old_value, 0u);
    EXPECT_EQ(mem.stores[0].value, 0x8000'0001'3FDF'E103ull);
}

TEST(PageTable, KernelLikeLayout) {
    FakeMemory mem(32);
    PageTable pt(mem);
    constexpr uint64_t kDirect = 0xFFFF'8880'0000'0000ull;  // 512 GiB aligned
    MapAttrs framebuffer = kMmio;
    framebuffer.cache = CacheMode::write_combining;
    MapAttrs direct = kData;
    direct.global = false;

    // Identity-mapped image with W^X.
    ASSERT_TRUE(pt.map(0x10'0000, 0x10'0000, 0x8'0000, kText).ok());
    ASSERT_TRUE(pt.map(0x18'0000, 0x18'0000, 0x2'0000, kRodata).ok());
    ASSERT_TRUE(pt.map(0x1A'0000, 0x1A'0000, 0x6'0000, kData).ok());
    // Direct map of the RAM ranges of a typical PC memory map.
    ASSERT_TRUE(pt.map(kDirect, 0, 0x9'F000, direct).ok());
    ASSERT_TRUE(pt.map(kDirect + 0x10'0000, 0x10'0000, 0xBFFE'0000 - 0x10'0000, direct).ok());
    // Device MMIO, identity-mapped and uncached.
    ASSERT_TRUE(pt.map(0xFEC0'0000, 0xFEC0'0000, k4K, kMmio).ok());  // I/O APIC
    ASSERT_TRUE(pt.map(0xFEE0'0000, 0xFEE0'0000, k4K, kMmio).ok());  // local APIC
    ASSERT_TRUE(pt.map(0xFD00'0000, 0xFD00'0000, 0x100'0000, framebuffer).ok());

    // Identity: PDPT, PD 0-1G, PT for the image, PD 3-4G, two MMIO PTs.
    // Direct map: PDPT, PD 0-1G, PT 0-2M, PD 2-3G, PT for the last 2M.
    EXPECT_EQ(pt.tables_used(), 12u);
    EXPECT_EQ(mem.allocations(), 12u);

    struct Expect {
        uint64_t virt;
        uint64_t phys;
        PageSize page;
        bool write;
        bool exec;
        CacheMode cache;
    };
    const Expect expects[] = {
        {0x10'0000, 0x10'0000, PageSize::size_4k, false, true, CacheMode::write_back},
        {0x17'FFFF, 0x17'FFFF, PageSize::size_4k, false, true, CacheMode::write_back},
        {0x18'0000, 0x18'0000, PageSize::size_4k, false, false, CacheMode::write_back},
        {0x1A'0010, 0x1A'0010, PageSize::size_4k, true, false, CacheMode::write_back},
        {0x1F'FFFF, 0x1F'FFFF, PageSize::size_4k, true, false, CacheMode::write_back},
        {kDirect + 0x9'E000, 0x9'E000, PageSize::size_4k, true, false, CacheMode::write_back},
        {kDirect + 0x10'0000, 0x10'0000, PageSize::size_4k, true, false, CacheMode::write_back},
        {kDirect + 0x20'0000, 0x20'0000, PageSize::size_2m, true, false, CacheMode::write_back},
        {kDirect + 0x3FFF'FFFF, 0x3FFF'FFFF, PageSize::size_2m, true, false, CacheMode::write_back},
        {kDirect + 0x5000'0000, 0x5000'0000, PageSize::size_1g, true, false, CacheMode::write_back},
        {kDirect + 0xBFDF'FFFF, 0xBFDF'FFFF, PageSize::size_2m, true, false, CacheMode::write_back},
        {kDirect + 0xBFE0'0000, 0xBFE0'0000, PageSize::size_4k, true, false, CacheMode::write_back},
        {kDirect + 0xBFFD'FFFF, 0xBFFD'FFFF, PageSize::size_4k, true, false, CacheMode::write_back},
        {0xFEC0'0010, 0xFEC0'0010, PageSize::size_4k, true, false, CacheMode::uncacheable},
        {0xFEE0'00B0, 0xFEE0'00B0, PageSize::size_4k, true, false, CacheMode::uncacheable},
        {0xFD00'0000, 0xFD00'0000, PageSize::size_2m, true, false, CacheMode::uncacheable},
        {0xFDFF'FFFF, 0xFDFF'FFFF, PageSize::size_2m, true, false, CacheMode::uncacheable},
    };
    for (const Expect& e : expects) {
        const auto t = pt.translate(e.virt);
        ASSERT_TRUE(t.ok()) << std::hex << e.virt;
        EXPECT_EQ(t->phys, e.phys) << std::hex << e.virt;
        EXPECT_EQ(t->page, e.page) << std::hex << e.virt;
        EXPECT_EQ(t->attrs.write, e.write) << std::hex << e.virt;
        EXPECT_EQ(t->attrs.exec, e.exec) << std::hex << e.virt;
        EXPECT_EQ(t->attrs.cache, e.cache) << std::hex << e.virt;
        EXPECT_FALSE(t->attrs.write && t->attrs.exec) << std::hex << e.virt;  // W^X
    }
    const uint64_t unmapped[] = {0x0,          0xF'F000,    0x20'0000,   kDirect + 0x9'F000, kDirect + 0xBFFE'0000,
                                 kDirect + 0xC000'0000, 0xFEC0'1000, 0xFE00'0000};
    for (uint64_t virt : unmapped)
        expect_unmapped(pt, virt);
}

}  // namespace
