#include "vmx/ept.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "tests/unit/support/fake_table_memory.hpp"

namespace {

using hv::Errc;
using hv::mm::CacheMode;
using hv::mm::MapAttrs;
using hv::mm::PageSize;
using hv::vmx::EptFormat;
using hv::vmx::EptLeaf;
using hv::vmx::HostChunk;

// EPT entry bits spelled out independently of EptFormat (SDM Vol. 3C §29.3.2,
// "Format of an EPT ... Entry" tables), so the tests check the encoding rather
// than the encoder against itself.
constexpr uint64_t kR = 1ull << 0;
constexpr uint64_t kW = 1ull << 1;
constexpr uint64_t kX = 1ull << 2;
constexpr uint64_t kWb = 6ull << 3;  // memory type bits 5:3
constexpr uint64_t kWc = 1ull << 3;
constexpr uint64_t kIpat = 1ull << 6;
constexpr uint64_t kPs = 1ull << 7;
constexpr uint64_t kAddr = 0x000F'FFFF'FFFF'F000ull;

constexpr uint64_t k4K = 0x1000;
constexpr uint64_t k2M = 0x20'0000;
constexpr uint64_t k1G = 0x4000'0000;
constexpr uint64_t kGpaLimit = 1ull << 48;

using FakeMemory = hv::test::FakeTableMemory;

using Ept = hv::mm::PageTable<EptFormat, FakeMemory>;

// Raw walk with the constants above: the entry at `level` (4 = PML4E .. 1 = PTE)
// for `gpa`, or 0 when a table above it is missing or a large page ends the walk.
uint64_t raw_entry(FakeMemory& mem, uint64_t root, uint64_t gpa, int level) {
    uint64_t table = root;
    for (int l = 4;; --l) {
        const uint64_t e = mem.table(table)[(gpa >> (12 + 9 * (l - 1))) & 511];
        if (l == level) return e;
        if ((e & (kR | kW | kX)) == 0 || (l <= 3 && (e & kPs) != 0)) return 0;
        table = e & kAddr;
    }
}

std::vector<EptLeaf> leaves(const Ept& ept, FakeMemory& mem) {
    std::vector<EptLeaf> out;
    hv::vmx::for_each_leaf(ept, mem, [&out](const EptLeaf& l) { out.push_back(l); });
    return out;
}

void expect_translation(const Ept& ept, uint64_t gpa, uint64_t hpa, PageSize page) {
    const auto t = ept.translate(gpa);
    ASSERT_TRUE(t.ok()) << std::hex << "gpa 0x" << gpa << ": " << t.error().detail;
    EXPECT_EQ(t->phys, hpa) << std::hex << "gpa 0x" << gpa;
    EXPECT_EQ(t->page, page) << std::hex << "gpa 0x" << gpa;
    EXPECT_TRUE(t->attrs.write) << std::hex << "gpa 0x" << gpa;
    EXPECT_TRUE(t->attrs.exec) << std::hex << "gpa 0x" << gpa;
    EXPECT_EQ(t->attrs.cache, CacheMode::write_back) << std::hex << "gpa 0x" << gpa;
}

void expect_unmapped(const Ept& ept, uint64_t gpa) {
    const auto t = ept.translate(gpa);
    ASSERT_FALSE(t.ok()) << std::hex << "gpa 0x" << gpa << " maps to 0x" << t->phys;
    EXPECT_EQ(t.error().code, Errc::not_found);
    EXPECT_EQ(t.error().value, gpa);
}

// The isolation property the boot-time self-check relies on: every leaf lies
// inside the chunk its GPA belongs to, at the right offset, in GPA order without
// overlap, and the leaves cover exactly the chunks' total size.
void expect_maps_exactly(const Ept& ept, FakeMemory& mem, const std::vector<HostChunk>& chunks) {
    uint64_t total = 0;
    for (const HostChunk& c : chunks) total += c.bytes;
    uint64_t covered = 0;
    uint64_t next_gpa = 0;
    for (const EptLeaf& l : leaves(ept, mem)) {
        EXPECT_EQ(l.gpa, next_gpa) << "leaves not contiguous from GPA 0";
        next_gpa = l.gpa + l.page_bytes;
        covered += l.page_bytes;
        uint64_t chunk_gpa = 0;
        bool inside = false;
        for (const HostChunk& c : chunks) {
            if (l.gpa >= chunk_gpa && l.gpa + l.page_bytes <= chunk_gpa + c.bytes) {
                EXPECT_EQ(l.hpa, c.host_phys + (l.gpa - chunk_gpa)) << std::hex << "gpa 0x" << l.gpa;
                inside = true;
            }
            chunk_gpa += c.bytes;
        }
        EXPECT_TRUE(inside) << std::hex << "leaf gpa 0x" << l.gpa << " hpa 0x" << l.hpa << " outside the chunks";
        EXPECT_FALSE(mem.owns(l.hpa)) << "a table page is mapped into the guest";
        EXPECT_TRUE(l.attrs.write && l.attrs.exec);
        EXPECT_EQ(l.attrs.cache, CacheMode::write_back);
    }
    EXPECT_EQ(covered, total);
}

TEST(Ept, LeafEntriesHaveExactBits) {
    FakeMemory mem(8);
    Ept ept(mem);
    const HostChunk ram[] = {{0x1'4000'0000, k1G}};
    ASSERT_TRUE(ept.map(0, 0x1234'5000, k4K, hv::vmx::kGuestRamAttrs).ok());
    ASSERT_TRUE(ept.map(k2M, 0x8'0020'0000, k2M, hv::vmx::kGuestRamAttrs).ok());
    ASSERT_TRUE(ept.map(k1G, ram[0].host_phys, k1G, hv::vmx::kGuestRamAttrs).ok());

    EXPECT_EQ(raw_entry(mem, ept.root(), 0, 1), 0x1234'5037ull);      // R|W|X|WB
    EXPECT_EQ(raw_entry(mem, ept.root(), k2M, 2), 0x8'0020'00B7ull);  // R|W|X|WB|PS
    EXPECT_EQ(raw_entry(mem, ept.root(), k1G, 3), 0x1'4000'00B7ull);  // R|W|X|WB|PS
    EXPECT_EQ(raw_entry(mem, ept.root(), 0, 1), 0x1234'5000 | kR | kW | kX | kWb);
    EXPECT_EQ(raw_entry(mem, ept.root(), 0, 1) & kIpat, 0u);  // guest PAT combines with WB

    // The encoder alone, including attributes guest RAM never uses.
    const MapAttrs read_only_uc{
        .write = false, .exec = false, .user = true, .global = true, .cache = CacheMode::uncacheable};
    const MapAttrs wc{
        .write = true, .exec = false, .user = false, .global = false, .cache = CacheMode::write_combining};
    EXPECT_EQ(EptFormat::leaf(0xFEE0'0000, read_only_uc, PageSize::size_4k), 0xFEE0'0001ull);  // user/global ignored
    EXPECT_EQ(EptFormat::leaf(0xFD00'0000, wc, PageSize::size_2m), 0xFD00'0000 | kR | kW | kWc | kPs);
    // Address bits below the page size and above bit 51 never leak into the entry.
    EXPECT_EQ(EptFormat::leaf(0x4000'3000, hv::vmx::kGuestRamAttrs, PageSize::size_1g), 0x4000'00B7ull);
    EXPECT_EQ(EptFormat::leaf(0xFFF0'0000'0000'5000ull, hv::vmx::kGuestRamAttrs, PageSize::size_4k), 0x5037ull);
}

TEST(Ept, NonLeafEntriesAreRwxOnly) {
    FakeMemory mem(8);
    Ept ept(mem);
    ASSERT_TRUE(ept.map(0x10'0000, 0x10'0000, k4K, MapAttrs{}).ok());  // read-only leaf
    for (int level = 4; level >= 2; --level) {
        const uint64_t e = raw_entry(mem, ept.root(), 0x10'0000, level);
        EXPECT_EQ(e & ~kAddr, kR | kW | kX) << "level " << level;  // no memory type, no PS
        EXPECT_TRUE(mem.owns(e & kAddr)) << "level " << level;
    }
    EXPECT_EQ(raw_entry(mem, ept.root(), 0x10'0000, 1), 0x10'0000 | kR | kWb);
    EXPECT_EQ(EptFormat::table(0x1234'5000), 0x1234'5007ull);
}

TEST(Ept, PresentIsAnyOfReadWriteExecute) {
    EXPECT_FALSE(EptFormat::present(0));
    EXPECT_FALSE(EptFormat::present(0x1234'5000 | kWb | kPs));  // type and address alone
    EXPECT_TRUE(EptFormat::present(kR));
    EXPECT_TRUE(EptFormat::present(kW));
    EXPECT_TRUE(EptFormat::present(kX));
    EXPECT_TRUE(EptFormat::is_leaf(kR, 1));
    EXPECT_TRUE(EptFormat::is_leaf(kR | kPs, 2));
    EXPECT_TRUE(EptFormat::is_leaf(kR | kPs, 3));
    EXPECT_FALSE(EptFormat::is_leaf(kR | kPs, 4));
    EXPECT_FALSE(EptFormat::is_leaf(kR, 2));
}

TEST(Ept, AttrsInvertLeaf) {
    const MapAttrs rx{.write = false, .exec = true, .user = false, .global = false, .cache = CacheMode::write_back};
    const MapAttrs uc{.write = true, .exec = false, .user = false, .global = false, .cache = CacheMode::uncacheable};
    const MapAttrs wc{
        .write = true, .exec = false, .user = false, .global = false, .cache = CacheMode::write_combining};
    for (const MapAttrs& a : {hv::vmx::kGuestRamAttrs, rx, uc, wc, MapAttrs{}}) {
        const MapAttrs back = EptFormat::attrs(EptFormat::leaf(0x5000, a, PageSize::size_4k));
        EXPECT_EQ(back.write, a.write);
        EXPECT_EQ(back.exec, a.exec);
        EXPECT_EQ(back.cache, a.cache);
        EXPECT_FALSE(back.user);
        EXPECT_FALSE(back.global);
    }
    // WT (4) and WP (5), which leaf() never writes, read back as uncacheable;
    // the CPU's accessed/dirty flags (bits 8, 9) change nothing.
    EXPECT_EQ(EptFormat::attrs(kR | (4ull << 3)).cache, CacheMode::uncacheable);
    EXPECT_EQ(EptFormat::attrs(kR | (5ull << 3)).cache, CacheMode::uncacheable);
    EXPECT_EQ(EptFormat::attrs(kR | kWb | (1ull << 8) | (1ull << 9)).cache, CacheMode::write_back);
    EXPECT_EQ(EptFormat::address(0x4000'0000 | kPs | (1ull << 8) | (1ull << 9) | kR, 3), 0x4000'0000ull);
}

TEST(Ept, EptpValue) {
    EXPECT_EQ(hv::vmx::make_eptp(0x1000, false), 0x101Eull);
    EXPECT_EQ(hv::vmx::make_eptp(0x1000, true), 0x105Eull);
    EXPECT_EQ(hv::vmx::make_eptp(0xF'FFFF'FFFF'F000ull, false), 0xF'FFFF'FFFF'F01Eull);
    static_assert(hv::vmx::make_eptp(0x2'3456'7000, true) == 0x2'3456'705E);

    FakeMemory mem(1);
    Ept ept(mem);
    EXPECT_EQ(hv::vmx::make_eptp(ept.root(), false), FakeMemory::kBase | 0x1E);
}

TEST(Ept, EptpSupportedNeedsFourLevelWalkAndWriteBack) {
    hv::vmx::VmxCaps caps{};
    caps.ept = caps.ept_4level = caps.ept_wb = true;
    EXPECT_TRUE(hv::vmx::eptp_supported(caps));
    EXPECT_FALSE(hv::vmx::eptp_supported(caps, true));  // A/D asked for, not offered
    caps.ept_ad = true;
    EXPECT_TRUE(hv::vmx::eptp_supported(caps, true));

    hv::vmx::VmxCaps no_wb = caps;
    no_wb.ept_wb = false;
    EXPECT_FALSE(hv::vmx::eptp_supported(no_wb));
    hv::vmx::VmxCaps no_4level = caps;
    no_4level.ept_4level = false;
    EXPECT_FALSE(hv::vmx::eptp_supported(no_4level));
    hv::vmx::VmxCaps no_ept = caps;
    no_ept.ept = false;
    EXPECT_FALSE(hv::vmx::eptp_supported(no_ept));
}

TEST(Ept, MaxPageBytesFromCaps) {
    hv::vmx::VmxCaps caps{};
    EXPECT_EQ(hv::vmx::ept_max_page_bytes(caps), k4K);
    caps.ept_2m = true;
    EXPECT_EQ(hv::vmx::ept_max_page_bytes(caps), k2M);
    caps.ept_1g = true;
    EXPECT_EQ(hv::vmx::ept_max_page_bytes(caps), k1G);
    caps.ept_2m = false;  // 1 GiB alone cannot be used: PageTable falls back to 2 MiB
    EXPECT_EQ(hv::vmx::ept_max_page_bytes(caps), k4K);
}

TEST(Ept, OneChunkOf64MiBUses2MiBPages) {
    FakeMemory mem(8);
    Ept ept(mem);
    const std::vector<HostChunk> chunks = {{0x2'0020'0000, 64 * 0x10'0000}};
    ASSERT_TRUE(hv::vmx::map_guest_ram(ept, chunks.data(), chunks.size(), k1G).ok());
    const auto all = leaves(ept, mem);
    ASSERT_EQ(all.size(), 32u);
    for (size_t i = 0; i < all.size(); ++i) {
        EXPECT_EQ(all[i].gpa, i * k2M);
        EXPECT_EQ(all[i].hpa, 0x2'0020'0000 + i * k2M);
        EXPECT_EQ(all[i].page_bytes, k2M);
    }
    EXPECT_EQ(ept.tables_used(), 3u);  // PML4, PDPT, PD
    EXPECT_EQ(raw_entry(mem, ept.root(), 0, 2), 0x2'0020'0000 | kR | kW | kX | kWb | kPs);
    expect_translation(ept, 0x123'4567, 0x2'0020'0000 + 0x123'4567, PageSize::size_2m);
    expect_unmapped(ept, 64 * 0x10'0000);
    expect_maps_exactly(ept, mem, chunks);
}

TEST(Ept, TwoGiBChunkUses1GiBPagesOnlyWhenAllowed) {
    const std::vector<HostChunk> chunks = {{0x1'0000'0000, 2 * k1G}};
    {
        FakeMemory mem(8);
        Ept ept(mem);
        ASSERT_TRUE(hv::vmx::map_guest_ram(ept, chunks.data(), chunks.size(), k1G).ok());
        const auto all = leaves(ept, mem);
        ASSERT_EQ(all.size(), 2u);
        EXPECT_EQ(all[0].gpa, 0u);
        EXPECT_EQ(all[0].hpa, 0x1'0000'0000u);
        EXPECT_EQ(all[0].page_bytes, k1G);
        EXPECT_EQ(all[1].gpa, k1G);
        EXPECT_EQ(all[1].hpa, 0x1'4000'0000u);
        EXPECT_EQ(all[1].page_bytes, k1G);
        EXPECT_EQ(raw_entry(mem, ept.root(), k1G, 3), 0x1'4000'0000 | kR | kW | kX | kWb | kPs);
        EXPECT_EQ(ept.tables_used(), 2u);  // PML4, PDPT
        expect_maps_exactly(ept, mem, chunks);
    }
    {
        FakeMemory mem(8);
        Ept ept(mem);
        ASSERT_TRUE(hv::vmx::map_guest_ram(ept, chunks.data(), chunks.size(), k2M).ok());
        const auto all = leaves(ept, mem);
        ASSERT_EQ(all.size(), 1024u);
        for (const EptLeaf& l : all) EXPECT_EQ(l.page_bytes, k2M);
        EXPECT_EQ(all[1023].gpa, 2 * k1G - k2M);
        EXPECT_EQ(all[1023].hpa, 0x1'8000'0000u - k2M);
        EXPECT_EQ(ept.tables_used(), 4u);  // PML4, PDPT, two PDs
        expect_maps_exactly(ept, mem, chunks);
    }
    {
        FakeMemory mem(8);
        Ept ept(mem);
        const auto bad = hv::vmx::map_guest_ram(ept, chunks.data(), chunks.size(), 0x10'0000);
        ASSERT_FALSE(bad.ok());
        EXPECT_EQ(bad.error().code, Errc::invalid_argument);
        EXPECT_EQ(bad.error().value, 0x10'0000u);
    }
}

// Chunks of different alignments: 5 MiB at a 1 GiB boundary, 5 MiB congruent
// to its GPA only mod 1 MiB (then mod 2 MiB from GPA 6 MiB on), 8 KiB at a
// 4 KiB-aligned address.
const std::vector<HostChunk> kMixed = {
    {0x1'0000'0000, 0x50'0000},
    {0x2'0030'0000, 0x50'0000},
    {0x3'0000'3000, 0x2000},
};

TEST(Ept, ChunksArePlacedBackToBack) {
    FakeMemory mem(16);
    Ept ept(mem);
    ASSERT_TRUE(hv::vmx::map_guest_ram(ept, kMixed.data(), kMixed.size(), k1G).ok());
    expect_translation(ept, 0, 0x1'0000'0000, PageSize::size_2m);
    expect_translation(ept, 0x3F'FFFF, 0x1'003F'FFFF, PageSize::size_2m);
    expect_translation(ept, 0x40'0000, 0x1'0040'0000, PageSize::size_4k);
    expect_translation(ept, 0x4F'FFFF, 0x1'004F'FFFF, PageSize::size_4k);
    expect_translation(ept, 0x50'0000, 0x2'0030'0000, PageSize::size_4k);
    expect_translation(ept, 0x5F'FFFF, 0x2'003F'FFFF, PageSize::size_4k);
    expect_translation(ept, 0x60'0000, 0x2'0040'0000, PageSize::size_2m);
    expect_translation(ept, 0x9F'FFFF, 0x2'007F'FFFF, PageSize::size_2m);
    expect_translation(ept, 0xA0'0000, 0x3'0000'3000, PageSize::size_4k);
    expect_translation(ept, 0xA0'1FFF, 0x3'0000'4FFF, PageSize::size_4k);
    // 2 + 256 leaves for chunk 0, 256 + 2 for chunk 1, 2 for chunk 2.
    EXPECT_EQ(leaves(ept, mem).size(), 518u);
}

TEST(Ept, NothingMappedBeyondGuestRam) {
    FakeMemory mem(16);
    Ept ept(mem);
    ASSERT_TRUE(hv::vmx::map_guest_ram(ept, kMixed.data(), kMixed.size(), k1G).ok());
    const uint64_t beyond[] = {0xA0'2000, 0xA0'3000,   0xBF'FFFF,     0xC0'0000,
                               k1G,       0xFEE0'0000, 0x1'0000'0000, kGpaLimit - 1};
    for (uint64_t gpa : beyond) expect_unmapped(ept, gpa);
    // The host addresses of the chunks are not guest addresses either.
    expect_unmapped(ept, 0x2'0030'0000);
}

TEST(Ept, LeavesCoverExactlyTheChunks) {
    {
        FakeMemory mem(16);
        Ept ept(mem);
        ASSERT_TRUE(hv::vmx::map_guest_ram(ept, kMixed.data(), kMixed.size(), k1G).ok());
        expect_maps_exactly(ept, mem, kMixed);
    }
    {
        // Crosses 1 GiB and 512 GiB GPA boundaries: 3 GiB + 2 MiB + 4 KiB, then
        // 510 GiB at a host address congruent to its GPA mod 1 GiB, then one page.
        const std::vector<HostChunk> big = {
            {0x10'0000'0000, 3 * k1G + k2M + k4K},
            {0x40'0020'1000, 510 * k1G},
            {0xC0'0000'5000, k4K},
        };
        FakeMemory mem(16);
        Ept ept(mem);
        ASSERT_TRUE(hv::vmx::map_guest_ram(ept, big.data(), big.size(), k1G).ok());
        expect_maps_exactly(ept, mem, big);
        // Chunk 0: 3 x 1G, 2M, 4K. Chunk 1: 511 x 4K, 510 x 2M up to 4 GiB,
        // 509 x 1G up to 513 GiB, 2M, 4K. Chunk 2: 4K.
        EXPECT_EQ(leaves(ept, mem).size(), 3u + 1 + 1 + 511 + 510 + 509 + 1 + 1 + 1);
        // PML4, two PDPTs, PD + PT at 3 GiB, PD + PT at 513 GiB.
        EXPECT_EQ(ept.tables_used(), 7u);
        expect_translation(ept, 3 * k1G + k2M + k4K, 0x40'0020'1000, PageSize::size_4k);
        expect_translation(ept, 4 * k1G, 0x40'0020'1000 + (k1G - k2M - k4K), PageSize::size_1g);
        const uint64_t end = 513 * k1G + k2M + 2 * k4K;
        expect_translation(ept, end - 1, 0xC0'0000'5FFF, PageSize::size_4k);
        expect_unmapped(ept, end);
    }
}

TEST(Ept, RemappingGuestRamIsRejected) {
    FakeMemory mem(16);
    Ept ept(mem);
    ASSERT_TRUE(hv::vmx::map_guest_ram(ept, kMixed.data(), kMixed.size(), k1G).ok());
    const uint64_t tables = ept.tables_used();
    const size_t allocations = mem.allocations();
    const auto before = leaves(ept, mem);

    const auto again = hv::vmx::map_guest_ram(ept, kMixed.data(), kMixed.size(), k1G);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, Errc::overlap);
    EXPECT_EQ(again.error().value, 0u);
    // One page inside the RAM, mapped to somewhere else entirely.
    const auto inside = ept.map(0xA0'1000, 0x5'0000'0000, k4K, hv::vmx::kGuestRamAttrs);
    ASSERT_FALSE(inside.ok());
    EXPECT_EQ(inside.error().code, Errc::overlap);
    EXPECT_EQ(inside.error().value, 0xA0'1000u);

    EXPECT_EQ(ept.tables_used(), tables);
    EXPECT_EQ(mem.allocations(), allocations);
    const auto after = leaves(ept, mem);
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) {
        EXPECT_EQ(after[i].gpa, before[i].gpa);
        EXPECT_EQ(after[i].hpa, before[i].hpa);
    }
    // Right after the RAM is still free.
    EXPECT_TRUE(ept.map(0xA0'2000, 0x5'0000'0000, k4K, hv::vmx::kGuestRamAttrs).ok());
}

TEST(Ept, BadChunksRejectedBeforeAnyTable) {
    struct Case {
        std::vector<HostChunk> chunks;
        Errc code;
        uint64_t value;
    };
    const Case cases[] = {
        {{{0x1'0000'0800, 0x10'0000}}, Errc::invalid_argument, 0x1'0000'0800},                      // unaligned address
        {{{0x1'0000'0000, 0x10'0800}}, Errc::invalid_argument, 0x10'0800},                          // unaligned size
        {{{0x1'0000'0000, 0x10'0000}, {0x2'0000'0000, 0}}, Errc::invalid_argument, 1},              // empty chunk
        {{{0xF'FFFF'FFFF'F000ull, 2 * k4K}}, Errc::invalid_argument, 0xF'FFFF'FFFF'F000ull},        // beyond 2^52
        {{{0xFFFF'FFFF'FFFF'F000ull, 2 * k4K}}, Errc::invalid_argument, 0xFFFF'FFFF'FFFF'F000ull},  // wraps
        // Host chunks sharing pages, the second starting inside the first.
        {{{0x1'0000'0000, 0x20'0000}, {0x1'001F'F000, k4K}}, Errc::overlap, 0x1'001F'F000},
        // ... and the second surrounding the first.
        {{{0x1'0010'0000, k4K}, {0x1'0000'0000, 0x20'0000}}, Errc::overlap, 0x1'0000'0000},
        // Guest RAM ending past GPA 2^48 (a 2^64 wrap is impossible once each
        // chunk is below 2^52 and none overlap).
        {{{0, kGpaLimit}, {0x2'0000'0000'0000ull, k4K}}, Errc::invalid_argument, 1},
        {{{0, 1ull << 51}}, Errc::invalid_argument, 0},
    };
    for (const Case& c : cases) {
        FakeMemory mem(16);
        Ept ept(mem);
        const auto r = hv::vmx::map_guest_ram(ept, c.chunks.data(), c.chunks.size(), k1G);
        ASSERT_FALSE(r.ok()) << std::hex << c.chunks[0].host_phys;
        EXPECT_EQ(r.error().code, c.code) << r.error().detail;
        EXPECT_EQ(r.error().value, c.value) << r.error().detail;
        EXPECT_EQ(mem.allocations(), 1u);  // the root only
        EXPECT_TRUE(leaves(ept, mem).empty());
    }
    FakeMemory mem(4);
    Ept ept(mem);
    const auto none = hv::vmx::map_guest_ram(ept, kMixed.data(), 0, k1G);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code, Errc::invalid_argument);
    const auto null = hv::vmx::map_guest_ram(ept, nullptr, 1, k1G);
    ASSERT_FALSE(null.ok());
    EXPECT_EQ(null.error().code, Errc::invalid_argument);
}

TEST(Ept, CheckGuestRamReturnsTotal) {
    const auto total = hv::vmx::check_guest_ram(kMixed.data(), kMixed.size(), k2M);
    ASSERT_TRUE(total.ok());
    EXPECT_EQ(*total, 0xA0'2000u);
    // Exactly 2^48 bytes of guest RAM still fits: its last GPA is 2^48 - 1.
    const HostChunk max[] = {{0, kGpaLimit}};
    const auto full = hv::vmx::check_guest_ram(max, 1, k1G);
    ASSERT_TRUE(full.ok());
    EXPECT_EQ(*full, kGpaLimit);
}

TEST(Ept, GpaAtOrAbove2To48Rejected) {
    FakeMemory mem(16);
    Ept ept(mem);
    const auto at = ept.map(kGpaLimit, 0x1'0000'0000, k4K, hv::vmx::kGuestRamAttrs);
    ASSERT_FALSE(at.ok());
    EXPECT_EQ(at.error().code, Errc::invalid_argument);
    const auto across = ept.map(kGpaLimit - k4K, 0x1'0000'0000, 2 * k4K, hv::vmx::kGuestRamAttrs);
    ASSERT_FALSE(across.ok());
    EXPECT_EQ(across.error().code, Errc::invalid_argument);
    const auto high = ept.map(0xFFFF'8000'0000'0000ull, 0x1'0000'0000, k4K, hv::vmx::kGuestRamAttrs);
    ASSERT_FALSE(high.ok());  // a canonical linear address, but no GPA
    EXPECT_EQ(high.error().code, Errc::invalid_argument);
    EXPECT_EQ(mem.allocations(), 1u);

    const auto t = ept.translate(kGpaLimit);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, Errc::invalid_argument);

    // The last page below 2^48 is fine, and so is the non-canonical hole of
    // linear addresses (GPAs have no canonical form).
    ASSERT_TRUE(ept.map(kGpaLimit - k4K, 0x1'0000'0000, k4K, hv::vmx::kGuestRamAttrs).ok());
    ASSERT_TRUE(ept.map(0x8000'0000'0000ull - k4K, 0x1'0000'1000, 2 * k4K, hv::vmx::kGuestRamAttrs).ok());
    expect_translation(ept, kGpaLimit - 1, 0x1'0000'0FFF, PageSize::size_4k);
    expect_translation(ept, 0x8000'0000'0000ull, 0x1'0000'2000, PageSize::size_4k);
    const auto all = leaves(ept, mem);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].gpa, 0x7FFF'FFFF'F000ull);
    EXPECT_EQ(all[1].gpa, 0x8000'0000'0000ull);
    EXPECT_EQ(all[2].gpa, kGpaLimit - k4K);
}

TEST(Ept, RunningOutOfTablesIsReported) {
    FakeMemory mem(2);  // root + PDPT: no PD for the 2 MiB pages
    Ept ept(mem);
    const std::vector<HostChunk> chunks = {{0x2'0000'0000, 4 * k2M}};
    const auto r = hv::vmx::map_guest_ram(ept, chunks.data(), chunks.size(), k1G);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
    EXPECT_TRUE(leaves(ept, mem).empty());
}

TEST(Ept, ViolationReadOfNonPresentPage) {
    // Data read, nothing allowed at that GPA, linear address valid and the access
    // was to the page itself.
    const auto v = hv::vmx::decode_ept_violation(0x181);
    EXPECT_TRUE(v.read);
    EXPECT_FALSE(v.write);
    EXPECT_FALSE(v.fetch);
    EXPECT_FALSE(v.readable);
    EXPECT_FALSE(v.writable);
    EXPECT_FALSE(v.executable);
    EXPECT_TRUE(v.gla_valid);
    EXPECT_TRUE(v.linear_access);
    EXPECT_FALSE(v.nmi_unblocking);
}

TEST(Ept, ViolationWriteToReadOnlyPage) {
    const auto v = hv::vmx::decode_ept_violation(0x1AA);  // write; readable + executable
    EXPECT_FALSE(v.read);
    EXPECT_TRUE(v.write);
    EXPECT_FALSE(v.fetch);
    EXPECT_TRUE(v.readable);
    EXPECT_FALSE(v.writable);
    EXPECT_TRUE(v.executable);
    EXPECT_TRUE(v.gla_valid);
    EXPECT_TRUE(v.linear_access);
}

TEST(Ept, ViolationInstructionFetch) {
    const auto v = hv::vmx::decode_ept_violation(0x19C);  // fetch; readable + writable
    EXPECT_FALSE(v.read);
    EXPECT_FALSE(v.write);
    EXPECT_TRUE(v.fetch);
    EXPECT_TRUE(v.readable);
    EXPECT_TRUE(v.writable);
    EXPECT_FALSE(v.executable);
    EXPECT_TRUE(v.gla_valid);
    EXPECT_TRUE(v.linear_access);
}

TEST(Ept, ViolationLinearAddressBits) {
    // Bit 7 without bit 8: the CPU was writing a guest paging-structure entry
    // (A/D update) while translating a linear address.
    auto v = hv::vmx::decode_ept_violation(0x082);
    EXPECT_TRUE(v.write);
    EXPECT_TRUE(v.gla_valid);
    EXPECT_FALSE(v.linear_access);
    // No linear address at all; bit 8 means nothing then and is not reported.
    v = hv::vmx::decode_ept_violation(0x101);
    EXPECT_TRUE(v.read);
    EXPECT_FALSE(v.gla_valid);
    EXPECT_FALSE(v.linear_access);
    v = hv::vmx::decode_ept_violation(0x001);
    EXPECT_FALSE(v.gla_valid);
    EXPECT_FALSE(v.linear_access);
    // Bit 12: the faulting IRET had unblocked NMIs. Bits 6 and 9-11 (mode-based
    // execute, advanced exit information) do not disturb the decoded fields.
    v = hv::vmx::decode_ept_violation(0x1000 | 0xE40 | 0x181);
    EXPECT_TRUE(v.nmi_unblocking);
    EXPECT_TRUE(v.read);
    EXPECT_FALSE(v.write || v.fetch || v.readable || v.writable || v.executable);
    EXPECT_TRUE(v.gla_valid && v.linear_access);
}

}  // namespace
