// The 64-bit start state written into guest RAM (docs/guest-abi.md): identity
// page tables, boot info, image segments, and refusal of RAM that cannot hold it.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernel/abi/guest_abi.hpp"
#include "kernel/guest/guest.hpp"

using hv::guest::ElfImage;
using hv::guest::GuestMemory;
using hv::guest::load_guest_image;

namespace {
constexpr uint64_t kMiB = 1ull << 20;

uint64_t u64(const std::vector<uint8_t>& ram, uint64_t gpa) {
    uint64_t v;
    std::memcpy(&v, ram.data() + gpa, 8);
    return v;
}

ElfImage one_segment(uint64_t gpa, uint64_t off, uint64_t filesz, uint64_t memsz) {
    ElfImage e{};
    e.entry = gpa;
    e.segments[0] = {off, filesz, gpa, memsz, false, true};
    e.count = 1;
    e.lowest_gpa = gpa;
    e.end_gpa = gpa + memsz;
    return e;
}
}  // namespace

TEST(GuestImage, IdentityMapBootInfoAndSegments) {
    std::vector<uint8_t> ram(8 * kMiB, 0xCC);
    std::fill(ram.begin(), ram.end(), 0);
    std::vector<uint8_t> image(0x3000, 0);
    for (size_t i = 0; i < 0x100; ++i) image[0x1000 + i] = static_cast<uint8_t>(i);
    hv::abi::BootInfo info{};
    info.version = hv::abi::kBootInfoVersion;
    info.memory_bytes = ram.size();
    std::strcpy(info.name, "web");
    GuestMemory mem(ram.data(), ram.size());
    auto r = load_guest_image(mem, one_segment(hv::abi::kImageBase, 0x1000, 0x100, 0x2000), image.data(), image.size(),
                              info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    // PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = i * 2 MiB | P | RW | PS for all 4 entries of 8 MiB.
    EXPECT_EQ(u64(ram, hv::abi::kPml4Gpa), hv::abi::kPdptGpa | 3);
    EXPECT_EQ(u64(ram, hv::abi::kPdptGpa), hv::abi::kPdGpa | 3);
    for (uint64_t i = 0; i < 4; ++i) EXPECT_EQ(u64(ram, hv::abi::kPdGpa + i * 8), i * 2 * kMiB | 0x83) << i;
    EXPECT_EQ(u64(ram, hv::abi::kPdGpa + 4 * 8), 0u) << "nothing mapped past RAM";
    hv::abi::BootInfo copy;
    std::memcpy(&copy, ram.data() + hv::abi::kBootInfoGpa, sizeof copy);
    EXPECT_STREQ(copy.name, "web");
    EXPECT_EQ(copy.memory_bytes, 8 * kMiB);
    EXPECT_EQ(ram[hv::abi::kImageBase + 0x42], 0x42);
    EXPECT_EQ(ram[hv::abi::kImageBase + 0x100], 0) << "bss part stays zero";
}

TEST(GuestImage, TwoGibGuestGetsTwoPageDirectories) {
    // Sparse check with a fake 2 GiB GuestMemory would need 2 GiB; use the
    // smallest RAM spanning two PDs instead: 1 GiB + 2 MiB.
    std::vector<uint8_t> ram((1ull << 30) + 2 * kMiB, 0);
    std::vector<uint8_t> image(0x2000, 0x90);
    hv::abi::BootInfo info{};
    GuestMemory mem(ram.data(), ram.size());
    ASSERT_TRUE(load_guest_image(mem, one_segment(hv::abi::kImageBase, 0x1000, 0x10, 0x10), image.data(), image.size(), info).ok());
    EXPECT_EQ(u64(ram, hv::abi::kPdptGpa + 8), (hv::abi::kPdGpa + 0x1000) | 3);
    EXPECT_EQ(u64(ram, hv::abi::kPdGpa + 0x1000), (1ull << 30) | 0x83);
    EXPECT_EQ(u64(ram, hv::abi::kPdGpa + 0x1000 + 8), 0u);
}

TEST(GuestImage, RefusesRamThatCannotHoldTheLayout) {
    std::vector<uint8_t> ram(kMiB, 0);
    std::vector<uint8_t> image(0x2000, 0);
    hv::abi::BootInfo info{};
    GuestMemory small(ram.data(), ram.size());
    auto r = load_guest_image(small, one_segment(hv::abi::kImageBase, 0x1000, 0x10, 0x10), image.data(), image.size(), info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, hv::Errc::invalid_argument);
    std::vector<uint8_t> odd(3 * kMiB, 0);
    GuestMemory unaligned(odd.data(), odd.size());
    EXPECT_FALSE(load_guest_image(unaligned, one_segment(hv::abi::kImageBase, 0x1000, 0x10, 0x10), image.data(), image.size(), info).ok());
}

TEST(GuestImage, SegmentOutsideRamOrImageIsRefused) {
    std::vector<uint8_t> ram(4 * kMiB, 0);
    std::vector<uint8_t> image(0x2000, 0);
    hv::abi::BootInfo info{};
    GuestMemory mem(ram.data(), ram.size());
    EXPECT_FALSE(load_guest_image(mem, one_segment(4 * kMiB - 0x10, 0x1000, 0x10, 0x20), image.data(), image.size(), info).ok());
    EXPECT_FALSE(load_guest_image(mem, one_segment(hv::abi::kImageBase, 0x1F00, 0x200, 0x200), image.data(), image.size(), info).ok());
}

TEST(GuestMemoryView, BoundsAndOverflow) {
    std::vector<uint8_t> ram(4096);
    GuestMemory mem(ram.data(), ram.size());
    EXPECT_EQ(mem.at(0, 4096), ram.data());
    EXPECT_EQ(mem.at(4095, 1), ram.data() + 4095);
    EXPECT_EQ(mem.at(4095, 2), nullptr);
    EXPECT_EQ(mem.at(4096, 0), ram.data() + 4096);
    EXPECT_EQ(mem.at(~0ull, 2), nullptr);
    EXPECT_EQ(mem.at(1, ~0ull), nullptr);
}
