// The per-guest console ring: lines, splitting, bounded queue, drop counting,
// and a producer and a consumer on two threads.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "kernel/guest/console_ring.hpp"

using hv::guest::ConsoleRing;

namespace {
void write(ConsoleRing& r, const std::string& s) {
    for (char c : s) r.put_char(c);
}
}  // namespace

TEST(ConsoleRing, LinesComeOutInOrderWithoutCr) {
    ConsoleRing r;
    write(r, "hello\r\nworld\n");
    char out[ConsoleRing::kLineMax + 1];
    ASSERT_TRUE(r.pop(out));
    EXPECT_STREQ(out, "hello");
    ASSERT_TRUE(r.pop(out));
    EXPECT_STREQ(out, "world");
    EXPECT_FALSE(r.pop(out));
}

TEST(ConsoleRing, LongLinesAreSplitAndPartialFlushed) {
    ConsoleRing r;
    write(r, std::string(ConsoleRing::kLineMax + 5, 'x'));
    char out[ConsoleRing::kLineMax + 1];
    ASSERT_TRUE(r.pop(out));
    EXPECT_EQ(std::string(out).size(), ConsoleRing::kLineMax);
    EXPECT_FALSE(r.pop(out));  // 5 chars still partial
    r.flush_partial();
    ASSERT_TRUE(r.pop(out));
    EXPECT_STREQ(out, "xxxxx");
}

TEST(ConsoleRing, FloodDropsAndCountsWithoutBlocking) {
    ConsoleRing r;
    for (int i = 0; i < 1000; ++i) write(r, "line " + std::to_string(i) + "\n");
    EXPECT_EQ(r.dropped_lines(), 1000u - ConsoleRing::kLines);
    char out[ConsoleRing::kLineMax + 1];
    ASSERT_TRUE(r.pop(out));
    EXPECT_STREQ(out, "line 0");  // oldest kept, newest dropped
    r.reset();
    EXPECT_FALSE(r.pop(out));
}

TEST(ConsoleRing, ConcurrentProducerAndConsumerLoseNothingWhenDrained) {
    ConsoleRing r;
    constexpr int kCount = 20000;
    int received = 0, expected_next = 0;
    bool in_order = true;
    std::thread consumer([&] {
        char out[ConsoleRing::kLineMax + 1];
        while (received + static_cast<int>(r.dropped_lines()) < kCount) {
            if (r.pop(out)) {
                int v = std::stoi(out);
                if (v < expected_next) in_order = false;
                expected_next = v + 1;
                ++received;
            }
        }
    });
    for (int i = 0; i < kCount; ++i) write(r, std::to_string(i) + "\n");
    consumer.join();
    EXPECT_TRUE(in_order);
    EXPECT_EQ(received + static_cast<int>(r.dropped_lines()), kCount);
}

TEST(ConsoleRing, FullUntilTheConsumerTakesALine) {
    ConsoleRing r;
    for (size_t i = 0; i < ConsoleRing::kLines; ++i) {
        EXPECT_FALSE(r.full());
        write(r, "x\n");
    }
    EXPECT_TRUE(r.full());
    EXPECT_EQ(r.dropped_lines(), 0u);
    char out[ConsoleRing::kLineMax + 1];
    ASSERT_TRUE(r.pop(out));
    EXPECT_FALSE(r.full());
}
