// The guest image validator on well-formed and hostile ELF files.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernel/guest/elf_loader.hpp"
#include "tests/unit/support/dump_reader.hpp"

using hv::Errc;
using hv::guest::parse_elf;
using hv::test::put_u16;
using hv::test::put_u32;
using hv::test::put_u64;

namespace {

constexpr uint64_t kMiB = 1 << 20;

struct Seg {
    uint32_t type, flags;
    uint64_t offset, gpa, filesz, memsz;
};

std::vector<uint8_t> make_elf(const std::vector<Seg>& segs, uint64_t entry, size_t file_size = 0x3000) {
    std::vector<uint8_t> b(file_size, 0);
    b[0] = 0x7F; b[1] = 'E'; b[2] = 'L'; b[3] = 'F';
    b[4] = 2; b[5] = 1; b[6] = 1;
    put_u16(b, 16, 2);
    put_u16(b, 18, 62);
    put_u32(b, 20, 1);
    put_u64(b, 24, entry);
    put_u64(b, 32, 64);
    put_u16(b, 52, 64);
    put_u16(b, 54, 56);
    put_u16(b, 56, static_cast<uint16_t>(segs.size()));
    for (size_t i = 0; i < segs.size(); ++i) {
        size_t o = 64 + i * 56;
        put_u32(b, o, segs[i].type);
        put_u32(b, o + 4, segs[i].flags);
        put_u64(b, o + 8, segs[i].offset);
        put_u64(b, o + 16, segs[i].gpa);
        put_u64(b, o + 24, segs[i].gpa);
        put_u64(b, o + 32, segs[i].filesz);
        put_u64(b, o + 40, segs[i].memsz);
    }
    b.resize(file_size);
    return b;
}

const std::vector<Seg> kGood = {{1, 5, 0x1000, 0x100000, 0x1000, 0x1000}, {1, 6, 0x2000, 0x101000, 0x800, 0x3000}};

}  // namespace

TEST(ElfLoader, ValidImageSegmentsAndBounds) {
    auto b = make_elf(kGood, 0x100010);
    auto r = parse_elf(b.data(), b.size(), kMiB, 16 * kMiB);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->entry, 0x100010u);
    ASSERT_EQ(r->count, 2u);
    EXPECT_TRUE(r->segments[0].exec);
    EXPECT_FALSE(r->segments[0].write);
    EXPECT_TRUE(r->segments[1].write);
    EXPECT_EQ(r->segments[1].mem_size, 0x3000u);
    EXPECT_EQ(r->lowest_gpa, 0x100000u);
    EXPECT_EQ(r->end_gpa, 0x104000u);
}

TEST(ElfLoader, RejectsNonElfAndWrongKinds) {
    std::vector<uint8_t> junk(128, 0x41);
    EXPECT_EQ(parse_elf(junk.data(), junk.size(), kMiB, 16 * kMiB).error().code, Errc::bad_signature);
    EXPECT_EQ(parse_elf(junk.data(), 10, kMiB, 16 * kMiB).error().code, Errc::truncated);
    auto b = make_elf(kGood, 0x100010);
    b[4] = 1;  // ELF32
    EXPECT_EQ(parse_elf(b.data(), b.size(), kMiB, 16 * kMiB).error().code, Errc::unsupported);
    b = make_elf(kGood, 0x100010);
    put_u16(b, 18, 3);  // i386
    EXPECT_STREQ(parse_elf(b.data(), b.size(), kMiB, 16 * kMiB).error().detail, "guest image is not for x86-64");
    b = make_elf(kGood, 0x100010);
    put_u16(b, 16, 3);  // ET_DYN
    EXPECT_EQ(parse_elf(b.data(), b.size(), kMiB, 16 * kMiB).error().code, Errc::unsupported);
}

TEST(ElfLoader, RejectsHeadersPastTheEnd) {
    auto b = make_elf(kGood, 0x100010);
    put_u64(b, 32, ~0ull - 8);  // phoff that wraps
    EXPECT_EQ(parse_elf(b.data(), b.size(), kMiB, 16 * kMiB).error().code, Errc::truncated);
    b = make_elf(kGood, 0x100010);
    put_u16(b, 56, 0);
    EXPECT_EQ(parse_elf(b.data(), b.size(), kMiB, 16 * kMiB).error().code, Errc::malformed);
    put_u16(b, 56, 2);
    put_u16(b, 54, 32);
    EXPECT_EQ(parse_elf(b.data(), b.size(), kMiB, 16 * kMiB).error().code, Errc::malformed);
}

TEST(ElfLoader, RejectsSegmentsOutsideFileOrRam) {
    auto past_file = make_elf({{1, 5, 0x2800, 0x100000, 0x1000, 0x1000}}, 0x100000);
    EXPECT_EQ(parse_elf(past_file.data(), past_file.size(), kMiB, 16 * kMiB).error().code, Errc::truncated);
    auto below = make_elf({{1, 5, 0x1000, 0x8000, 0x100, 0x100}}, 0x8000);
    EXPECT_EQ(parse_elf(below.data(), below.size(), kMiB, 16 * kMiB).error().code, Errc::invalid_argument);
    auto above = make_elf({{1, 5, 0x1000, 15 * kMiB, 0x100, 2 * kMiB}}, 15 * kMiB);
    EXPECT_STREQ(parse_elf(above.data(), above.size(), kMiB, 16 * kMiB).error().detail,
                 "ELF segment does not fit in the guest's RAM");
    auto wrap = make_elf({{1, 5, 0x1000, ~0ull - 0x10, 0x100, 0x100}}, 0x100000);
    EXPECT_EQ(parse_elf(wrap.data(), wrap.size(), kMiB, 16 * kMiB).error().code, Errc::invalid_argument);
    auto filesz = make_elf({{1, 5, 0x1000, 0x100000, 0x2000, 0x1000}}, 0x100000);
    EXPECT_EQ(parse_elf(filesz.data(), filesz.size(), kMiB, 16 * kMiB).error().code, Errc::malformed);
}

TEST(ElfLoader, RejectsOverlapBadEntryAndNoSegments) {
    auto overlap = make_elf({{1, 5, 0x1000, 0x100000, 0x1000, 0x2000}, {1, 6, 0x2000, 0x101000, 0x100, 0x100}}, 0x100000);
    EXPECT_EQ(parse_elf(overlap.data(), overlap.size(), kMiB, 16 * kMiB).error().code, Errc::overlap);
    auto entry_data = make_elf(kGood, 0x101100);  // inside the RW, non-executable segment
    EXPECT_STREQ(parse_elf(entry_data.data(), entry_data.size(), kMiB, 16 * kMiB).error().detail,
                 "ELF entry point is not in an executable segment");
    auto none = make_elf({{4, 4, 0x1000, 0x100000, 0x10, 0x10}}, 0x100000);  // only PT_NOTE
    EXPECT_EQ(parse_elf(none.data(), none.size(), kMiB, 16 * kMiB).error().code, Errc::malformed);
}

TEST(ElfLoader, TooManySegmentsIsRefusedNotOverflowed) {
    std::vector<Seg> many;
    for (uint64_t i = 0; i < 9; ++i) many.push_back({1, 5, 0x1000, 0x100000 + i * 0x1000, 0x10, 0x10});
    auto b = make_elf(many, 0x100000);
    EXPECT_EQ(parse_elf(b.data(), b.size(), kMiB, 16 * kMiB).error().code, Errc::unsupported);
}
