// Bitmap frame allocator: counts, double-free detection, aligned and limited
// contiguous runs, and that single-frame allocation stays fast on a big machine.

#include "kernel/mm/frame_allocator.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <vector>

namespace hv::mm {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kGiB = 1024 * kMiB;

static_assert(FrameAllocator::bitmap_words(0) == 0);
static_assert(FrameAllocator::bitmap_words(1) == 1);
static_assert(FrameAllocator::bitmap_words(64) == 1);
static_assert(FrameAllocator::bitmap_words(65) == 2);
static_assert(FrameAllocator::bitmap_words(24 * kGiB / kFrameSize) == 98304);

// An allocator with heap bitmap storage.
struct Fixture {
    Fixture(uint64_t base, uint64_t frames) : bitmap(FrameAllocator::bitmap_words(frames)) {
        fa.init(bitmap.data(), base, frames);
    }
    std::vector<uint64_t> bitmap;
    FrameAllocator fa;
};

uint64_t must_allocate(FrameAllocator& fa, uint64_t count = 1, uint64_t align = kFrameSize, uint64_t limit = 0) {
    auto r = fa.allocate(count, align, limit);
    EXPECT_TRUE(r.ok()) << r.error().detail << " " << r.error().value;
    return r.ok() ? *r : ~uint64_t{0};
}

TEST(FrameAllocator, EverythingStartsUsed) {
    Fixture f(0, 1024);
    EXPECT_EQ(f.fa.total_frames(), 0u);
    EXPECT_EQ(f.fa.free_frames(), 0u);
    auto r = f.fa.allocate();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
}

TEST(FrameAllocator, AllocateFreeRoundTripAndCounts) {
    Fixture f(0, 1024);
    f.fa.add_free({0x100000, 0x200000});
    EXPECT_EQ(f.fa.total_frames(), 256u);
    EXPECT_EQ(f.fa.free_frames(), 256u);

    uint64_t a = must_allocate(f.fa);
    uint64_t b = must_allocate(f.fa);
    EXPECT_EQ(a, 0x100000u);
    EXPECT_EQ(b, 0x101000u);
    EXPECT_EQ(f.fa.free_frames(), 254u);
    EXPECT_EQ(f.fa.total_frames(), 256u);

    ASSERT_TRUE(f.fa.free(a).ok());
    EXPECT_EQ(f.fa.free_frames(), 255u);
    // The lowest free frame is handed out again (the hint moved back).
    EXPECT_EQ(must_allocate(f.fa), a);
    ASSERT_TRUE(f.fa.free(a).ok());
    ASSERT_TRUE(f.fa.free(b).ok());
    EXPECT_EQ(f.fa.free_frames(), 256u);
}

TEST(FrameAllocator, DoubleFreeIsRejected) {
    Fixture f(0, 64);
    f.fa.add_free({0, 64 * kFrameSize});
    uint64_t a = must_allocate(f.fa);
    ASSERT_TRUE(f.fa.free(a).ok());
    auto r = f.fa.free(a);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_EQ(r.error().value, a);
    EXPECT_EQ(f.fa.free_frames(), 64u);
}

TEST(FrameAllocator, PartlyFreeRunIsRejectedWithoutChangingAnything) {
    Fixture f(0, 64);
    f.fa.add_free({0, 64 * kFrameSize});
    uint64_t run = must_allocate(f.fa, 4);
    ASSERT_TRUE(f.fa.free(run + 2 * kFrameSize).ok());
    uint64_t before = f.fa.free_frames();
    auto r = f.fa.free(run, 4);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_EQ(r.error().value, run + 2 * kFrameSize);
    EXPECT_EQ(f.fa.free_frames(), before);
    // Frames 0, 1 and 3 of the run are still allocated.
    ASSERT_TRUE(f.fa.free(run, 2).ok());
    ASSERT_TRUE(f.fa.free(run + 3 * kFrameSize).ok());
    EXPECT_EQ(f.fa.free_frames(), 64u);
}

TEST(FrameAllocator, FreeOutsideCoverageOrMisalignedIsRejected) {
    Fixture f(0x100000, 16);
    f.fa.add_free({0x100000, 0x110000});
    for (auto [phys, count] : std::vector<std::pair<uint64_t, uint64_t>>{
             {0xff000, 1}, {0x110000, 1}, {0x10f000, 2}, {0x100800, 1}, {0x100000, 0}, {~uint64_t{0} & ~0xfffull, 1}}) {
        auto r = f.fa.free(phys, count);
        ASSERT_FALSE(r.ok()) << std::hex << phys << " " << count;
        EXPECT_EQ(r.error().code, Errc::invalid_argument);
    }
    EXPECT_EQ(f.fa.free_frames(), 16u);
}

TEST(FrameAllocator, ExhaustionReturnsNoMemory) {
    Fixture f(0, 64);
    f.fa.add_free({0x10000, 0x14000});  // 4 frames
    auto too_big = f.fa.allocate(5);
    ASSERT_FALSE(too_big.ok());
    EXPECT_EQ(too_big.error().code, Errc::no_memory);
    std::set<uint64_t> got;
    for (int i = 0; i < 4; ++i) got.insert(must_allocate(f.fa));
    EXPECT_EQ(got, (std::set<uint64_t>{0x10000, 0x11000, 0x12000, 0x13000}));
    auto r = f.fa.allocate();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
    EXPECT_EQ(f.fa.free_frames(), 0u);
}

TEST(FrameAllocator, FragmentedMemoryHasNoContiguousRun) {
    Fixture f(0, 64);
    f.fa.add_free({0, 64 * kFrameSize});
    for (uint64_t i = 1; i < 64; i += 2) f.fa.reserve({i * kFrameSize, i * kFrameSize + 1});
    EXPECT_EQ(f.fa.free_frames(), 32u);
    auto r = f.fa.allocate(2);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
}

TEST(FrameAllocator, TwoMiBAlignedRunOf512Frames) {
    Fixture f(0, 64 * kMiB / kFrameSize);
    f.fa.add_free({0x1000, 64 * kMiB});
    uint64_t total = f.fa.free_frames();

    uint64_t a = must_allocate(f.fa, 512, 2 * kMiB);
    EXPECT_EQ(a, 2 * kMiB);  // 0 is not free, so the first aligned run is at 2 MiB
    EXPECT_EQ(f.fa.free_frames(), total - 512);

    // A used frame inside the next 2 MiB pushes the run one step further.
    f.fa.reserve({4 * kMiB + 0x5000, 4 * kMiB + 0x6000});
    uint64_t b = must_allocate(f.fa, 512, 2 * kMiB);
    EXPECT_EQ(b, 6 * kMiB);

    // The frames below 2 MiB are still there for single allocations.
    EXPECT_EQ(must_allocate(f.fa), 0x1000u);
    ASSERT_TRUE(f.fa.free(a, 512).ok());
    EXPECT_EQ(must_allocate(f.fa, 512, 2 * kMiB), a);
}

TEST(FrameAllocator, AlignmentIsOnPhysicalAddressNotIndex) {
    // Coverage starting at an odd frame: index 0 is 0x101000, not 2 MiB aligned.
    Fixture f(0x101000, 1024);
    f.fa.add_free({0x101000, 0x101000 + 1024 * kFrameSize});
    EXPECT_EQ(must_allocate(f.fa, 1, 64 * 1024), 0x110000u);
    EXPECT_EQ(must_allocate(f.fa, 512, 2 * kMiB), 0x200000u);
    // 0x400000 + 512 frames would run past coverage (ends at 0x501000).
    auto r = f.fa.allocate(512, 2 * kMiB);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
}

TEST(FrameAllocator, LimitKeepsRunBelowOneMiB) {
    Fixture f(0, 16 * kMiB / kFrameSize);
    f.fa.add_free({0x1000, 0x9f000});
    f.fa.add_free({0x100000, 16 * kMiB});
    // Take the low frames first so a limit-less allocation would go above 1 MiB.
    std::vector<uint64_t> low;
    for (int i = 0; i < 0x9e; ++i) low.push_back(must_allocate(f.fa));
    EXPECT_EQ(low.back(), 0x9e000u);
    auto none = f.fa.allocate(1, kFrameSize, kMiB);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code, Errc::no_memory);
    EXPECT_EQ(must_allocate(f.fa), 0x100000u);

    ASSERT_TRUE(f.fa.free(0x8000).ok());
    ASSERT_TRUE(f.fa.free(0x9e000).ok());
    uint64_t t = must_allocate(f.fa, 1, kFrameSize, kMiB);
    EXPECT_EQ(t, 0x8000u);
    EXPECT_EQ(must_allocate(f.fa, 1, kFrameSize, kMiB), 0x9e000u);
}

TEST(FrameAllocator, LimitAppliesToTheEndOfTheRun) {
    Fixture f(0, 512);
    f.fa.add_free({0x90000, 0x9f000});  // 15 frames ending at 0x9f000
    auto r = f.fa.allocate(15, kFrameSize, 0x9e000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::no_memory);
    EXPECT_EQ(must_allocate(f.fa, 15, kFrameSize, 0x9f000), 0x90000u);
    // A limit at or below the coverage base can never be satisfied.
    Fixture g(0x100000, 16);
    g.fa.add_free({0x100000, 0x110000});
    auto below = g.fa.allocate(1, kFrameSize, 0x100000);
    ASSERT_FALSE(below.ok());
    EXPECT_EQ(below.error().code, Errc::no_memory);
}

TEST(FrameAllocator, ReserveInsideFreeRegionIsAlignedOutward) {
    Fixture f(0, 16);
    f.fa.add_free({0, 0x10000});
    f.fa.reserve({0x3800, 0x4800});  // touches frames 3 and 4
    EXPECT_EQ(f.fa.free_frames(), 14u);
    EXPECT_EQ(f.fa.total_frames(), 14u);
    std::set<uint64_t> got;
    while (true) {
        auto r = f.fa.allocate();
        if (!r.ok()) break;
        got.insert(*r);
    }
    EXPECT_EQ(got.size(), 14u);
    EXPECT_EQ(got.count(0x3000), 0u);
    EXPECT_EQ(got.count(0x4000), 0u);
    // Reserving beyond coverage or an empty range is harmless.
    f.fa.reserve({0x20000, 0x30000});
    f.fa.reserve({0x5000, 0x5000});
    f.fa.reserve({0xfffffffffffff800, ~uint64_t{0}});
    EXPECT_EQ(f.fa.total_frames(), 14u);
}

TEST(FrameAllocator, AddFreeOfUnalignedRangeIsAlignedInward) {
    Fixture f(0, 16);
    f.fa.add_free({0x1800, 0x5800});  // whole frames 0x2000, 0x3000, 0x4000
    EXPECT_EQ(f.fa.free_frames(), 3u);
    EXPECT_EQ(must_allocate(f.fa), 0x2000u);
    EXPECT_EQ(must_allocate(f.fa), 0x3000u);
    EXPECT_EQ(must_allocate(f.fa), 0x4000u);
    EXPECT_FALSE(f.fa.allocate().ok());
    // Less than one whole frame adds nothing.
    f.fa.add_free({0x6001, 0x6fff});
    f.fa.add_free({0x8800, 0x9800});
    EXPECT_EQ(f.fa.free_frames(), 0u);
}

TEST(FrameAllocator, AddFreeIsClippedToCoverageAndNotCountedTwice) {
    Fixture f(0x100000, 16);
    f.fa.add_free({0, 0x200000});
    EXPECT_EQ(f.fa.total_frames(), 16u);
    f.fa.add_free({0x100000, 0x108000});
    EXPECT_EQ(f.fa.total_frames(), 16u);
    EXPECT_EQ(f.fa.free_frames(), 16u);
    f.fa.add_free({0xfffffffffffff000, ~uint64_t{0}});
    f.fa.add_free({0x300000, 0x200000});  // backwards: ignored
    EXPECT_EQ(f.fa.total_frames(), 16u);
    std::set<uint64_t> got;
    for (int i = 0; i < 16; ++i) got.insert(must_allocate(f.fa));
    EXPECT_EQ(*got.begin(), 0x100000u);
    EXPECT_EQ(*got.rbegin(), 0x10f000u);
    EXPECT_FALSE(f.fa.allocate().ok());
}

TEST(FrameAllocator, FramesPastTheLastWordAreNeverHandedOut) {
    Fixture f(0, 70);  // two bitmap words, 58 bits of padding
    f.fa.add_free({0, 1 * kGiB});
    EXPECT_EQ(f.fa.total_frames(), 70u);
    uint64_t last = 0;
    for (int i = 0; i < 70; ++i) last = must_allocate(f.fa);
    EXPECT_EQ(last, 69 * kFrameSize);
    EXPECT_FALSE(f.fa.allocate().ok());
    EXPECT_FALSE(f.fa.allocate(1, 8192).ok());
}

TEST(FrameAllocator, InvalidArgumentsAreRejected) {
    Fixture f(0, 64);
    f.fa.add_free({0, 64 * kFrameSize});
    for (auto [count, align] : std::vector<std::pair<uint64_t, uint64_t>>{{0, 4096}, {1, 0}, {1, 2048}, {1, 0x3000}}) {
        auto r = f.fa.allocate(count, align);
        ASSERT_FALSE(r.ok()) << count << " " << align;
        EXPECT_EQ(r.error().code, Errc::invalid_argument);
    }
    EXPECT_EQ(f.fa.free_frames(), 64u);
}

TEST(FrameAllocator, HundredThousandSingleFramesOn24GiBAreFast) {
    constexpr uint64_t kFrames = 24 * kGiB / kFrameSize;
    Fixture f(0, kFrames);
    f.fa.add_free({kMiB, 24 * kGiB});
    EXPECT_EQ(f.fa.total_frames(), kFrames - 256);

    // Fill the low half of memory first, so a search without a hint would have
    // to walk ~49k full words on every allocation (quadratic: minutes).
    auto low = f.fa.allocate(kFrames / 2 - 256, kFrameSize);
    ASSERT_TRUE(low.ok());
    EXPECT_EQ(*low, kMiB);

    auto start = std::chrono::steady_clock::now();
    std::vector<uint64_t> frames;
    frames.reserve(100000);
    for (int i = 0; i < 100000; ++i) {
        auto r = f.fa.allocate();
        ASSERT_TRUE(r.ok()) << i;
        frames.push_back(*r);
    }
    for (size_t i = 1; i < frames.size(); ++i) ASSERT_EQ(frames[i], frames[i - 1] + kFrameSize);
    EXPECT_EQ(frames.front(), 12 * kGiB);
    for (uint64_t p : frames) ASSERT_TRUE(f.fa.free(p).ok());
    EXPECT_EQ(f.fa.free_frames(), kFrames / 2);
    auto elapsed = std::chrono::steady_clock::now() - start;
    // Linear work takes milliseconds even under ASan; the bound only catches a
    // quadratic search, with headroom for a loaded CI machine.
    EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 1000);
    EXPECT_EQ(must_allocate(f.fa), 12 * kGiB);
}

}  // namespace
}  // namespace hv::mm
