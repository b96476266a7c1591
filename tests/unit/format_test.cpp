#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "kernel/lib/cmdline.hpp"
#include "kernel/lib/format.hpp"

using hv::Cmdline;
using hv::Line;

TEST(Format, IntegersHexAndPadding) {
    char buf[64];
    hv::format(buf, sizeof buf, "%d|%u|%x|%X|%5d|%-4u|%08llx", -42, 7u, 0xabcu, 0xabcu, 12, 3u, 0x1234ull);
    EXPECT_STREQ(buf, "-42|7|abc|ABC|   12|3   |00001234");
}

TEST(Format, StringsPointersAndPercent) {
    char buf[64];
    hv::format(buf, sizeof buf, "%s %c %% %p %s", "hi", 'x', reinterpret_cast<void*>(0x10), static_cast<const char*>(nullptr));
    EXPECT_STREQ(buf, "hi x % 0x10 (null)");
}

TEST(Format, TruncatesWithoutOverflow) {
    char buf[6];
    size_t n = hv::format(buf, sizeof buf, "%s", "abcdefgh");
    EXPECT_EQ(n, 5u);
    EXPECT_STREQ(buf, "abcde");
}

TEST(Format, MinimumInt64) {
    char buf[32];
    hv::format(buf, sizeof buf, "%lld", static_cast<long long>(INT64_MIN));
    EXPECT_STREQ(buf, "-9223372036854775808");
}

TEST(Line, EventWithTypedFields) {
    Line l("summary");
    l.u("cpus", 4).x("addr", 0xfee00000).b("vmx", true).s("status", "ok").i("delta", -3);
    EXPECT_STREQ(l.c_str(), "hv.summary cpus=4 addr=0xfee00000 vmx=yes status=ok delta=-3");
}

TEST(Line, QuotesAndEscapesStrings) {
    Line l("log");
    l.s("msg", "a \"b\" c\\d").s("empty", "").s("ctl", "x\ny");
    EXPECT_STREQ(l.c_str(), R"(hv.log msg="a \"b\" c\\d" empty="" ctl="x\x0ay")");
}

TEST(Line, TruncatesLongLines) {
    Line l("x");
    std::string big(1000, 'a');
    l.s("v", big.c_str());
    EXPECT_TRUE(l.truncated());
    EXPECT_EQ(l.size(), Line::kCapacity);
}

TEST(Cmdline, KeysValuesFlagsAndLists) {
    Cmdline c("hv.test_exit=1  hv.dump=acpi,mbi quiet hv.x=no hv.x=yes");
    char v[16];
    EXPECT_TRUE(c.has("quiet"));
    EXPECT_TRUE(c.flag("quiet"));
    EXPECT_TRUE(c.flag("hv.test_exit"));
    EXPECT_TRUE(c.flag("hv.x"));  // last occurrence wins
    EXPECT_FALSE(c.has("hv.dum"));
    EXPECT_TRUE(c.get("hv.dump", v, sizeof v));
    EXPECT_STREQ(v, "acpi,mbi");
    EXPECT_TRUE(c.list_contains("hv.dump", "mbi"));
    EXPECT_FALSE(c.list_contains("hv.dump", "acp"));
    EXPECT_FALSE(c.get("missing", v, sizeof v));
}

TEST(Cmdline, ValueCutToCapacity) {
    Cmdline c("k=0123456789");
    char v[5];
    ASSERT_TRUE(c.get("k", v, sizeof v));
    EXPECT_STREQ(v, "0123");
}

TEST(Cmdline, EmptyAndNull) {
    Cmdline a(nullptr), b("   ");
    int n = 0;
    a.for_each([&](const hv::CmdlineToken&) { return ++n, true; });
    b.for_each([&](const hv::CmdlineToken&) { return ++n, true; });
    EXPECT_EQ(n, 0);
}

#include "tests/unit/support/dump_reader.hpp"

TEST(DumpReader, QuotedMetaValuesAreUnescaped) {
    char path[] = "/tmp/hv-dump-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    std::string text = "hv.dump.meta loader=\"GRUB 2.06 \\\"x\\\"\\x41\" magic=0x36d76289\n";
    ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
    auto r = hv::test::DumpReader::load(path);
    unlink(path);
    EXPECT_EQ(r.meta("loader").value_or(""), "GRUB 2.06 \"x\"A");
    EXPECT_EQ(r.meta_number("magic").value_or(0), 0x36d76289u);
}

TEST(ParseDecimal, DigitsBoundsAndRejects) {
    uint64_t v = 7;
    EXPECT_TRUE(hv::parse_decimal("2000", 4, 1000000, &v));
    EXPECT_EQ(v, 2000u);
    EXPECT_TRUE(hv::parse_decimal("1000000", 7, 1000000, &v));
    EXPECT_EQ(v, 1000000u);
    v = 7;
    EXPECT_FALSE(hv::parse_decimal("1000001", 7, 1000000, &v));
    EXPECT_FALSE(hv::parse_decimal("", 0, 10, &v));
    EXPECT_FALSE(hv::parse_decimal("12a", 3, 1000, &v));
    EXPECT_FALSE(hv::parse_decimal("-1", 2, 1000, &v));
    EXPECT_FALSE(hv::parse_decimal("99999999999999999999999", 23, UINT64_MAX, &v));
    EXPECT_EQ(v, 7u) << "untouched on failure";
    EXPECT_TRUE(hv::parse_decimal("18446744073709551615", 20, UINT64_MAX, &v));
    EXPECT_EQ(v, UINT64_MAX);
    EXPECT_TRUE(hv::parse_decimal("12,34", 2, 100, &v)) << "only len characters are read";
    EXPECT_EQ(v, 12u);
}
