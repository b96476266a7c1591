// Multiboot 1 and 2 boot information parsers over synthetic structures built
// byte by byte, including the hostile shapes a broken loader could hand us.

#include "kernel/boot/multiboot.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/support/dump_reader.hpp"

namespace hv::boot {
namespace {

using test::DumpReader;
using test::put_u32;
using test::put_u64;

std::vector<uint8_t> cstr(const std::string& s) {
    std::vector<uint8_t> b(s.begin(), s.end());
    b.push_back(0);
    return b;
}

struct Entry {
    uint64_t base;
    uint64_t length;
    uint32_t type;
};

// BootInfo is ~7 KiB: keep it off the test stack.
std::unique_ptr<BootInfo> make_info() { return std::make_unique<BootInfo>(); }

// ---------------------------------------------------------------------------
// Multiboot 1 builder: the 116-byte info structure plus the things it points to.
// ---------------------------------------------------------------------------
class Mb1Builder {
  public:
    static constexpr uint64_t kInfo = 0x9000;

    void mem(uint32_t lower, uint32_t upper) {
        flags_ |= 1u << 0;
        put_u32(info_, 4, lower);
        put_u32(info_, 8, upper);
    }
    void cmdline(uint64_t addr, const std::string& s) { cmdline_raw(addr, cstr(s)); }
    void cmdline_raw(uint64_t addr, const std::vector<uint8_t>& bytes) {
        flags_ |= 1u << 2;
        put_u32(info_, 16, static_cast<uint32_t>(addr));
        mem_.add(addr, bytes);
    }
    void loader_name(uint64_t addr, const std::string& s) {
        flags_ |= 1u << 9;
        put_u32(info_, 64, static_cast<uint32_t>(addr));
        mem_.add(addr, cstr(s));
    }
    struct Mod {
        uint32_t start, end;
        std::string cmdline;
    };
    // Module list at `list`, strings packed from `strings`.
    void modules(uint64_t list, uint64_t strings, const std::vector<Mod>& mods) {
        flags_ |= 1u << 3;
        put_u32(info_, 20, static_cast<uint32_t>(mods.size()));
        put_u32(info_, 24, static_cast<uint32_t>(list));
        std::vector<uint8_t> l(16 * mods.size());
        for (size_t i = 0; i < mods.size(); ++i) {
            put_u32(l, 16 * i, mods[i].start);
            put_u32(l, 16 * i + 4, mods[i].end);
            put_u32(l, 16 * i + 8, static_cast<uint32_t>(strings));
            mem_.add(strings, cstr(mods[i].cmdline));
            strings += mods[i].cmdline.size() + 1;
        }
        if (!l.empty()) mem_.add(list, l);
    }
    // Entries with the standard size field 20; `sizes` overrides per entry.
    void mmap(uint64_t addr, const std::vector<Entry>& entries, std::vector<uint32_t> sizes = {}) {
        std::vector<uint8_t> b;
        size_t off = 0;
        for (size_t i = 0; i < entries.size(); ++i) {
            uint32_t size = i < sizes.size() ? sizes[i] : 20;
            put_u32(b, off, size);
            put_u64(b, off + 4, entries[i].base);
            put_u64(b, off + 12, entries[i].length);
            put_u32(b, off + 20, entries[i].type);
            off += size + 4;
            if (b.size() < off) b.resize(off);
        }
        mmap_raw(addr, b);
    }
    void mmap_raw(uint64_t addr, const std::vector<uint8_t>& b, uint32_t length_override = 0) {
        flags_ |= 1u << 6;
        put_u32(info_, 44, length_override ? length_override : static_cast<uint32_t>(b.size()));
        put_u32(info_, 48, static_cast<uint32_t>(addr));
        if (!b.empty()) mem_.add(addr, b);
    }

    DumpReader& build() {
        put_u32(info_, 0, flags_);
        mem_.add(kInfo, info_);
        return mem_;
    }

  private:
    DumpReader mem_;
    std::vector<uint8_t> info_ = std::vector<uint8_t>(116, 0);
    uint32_t flags_ = 0;
};

TEST(Multiboot1, FullInfoWithMmapModulesCmdlineAndLoaderName) {
    Mb1Builder b;
    b.mem(639, 130048);
    b.cmdline(0x10000, "hv.log=debug hv.dump=acpi");
    b.loader_name(0x10100, "GRUB 2.06");
    b.modules(0x11000, 0x11100, {{0x200000, 0x201234, "guest0.cfg"}, {0x300000, 0x300000, ""}});
    // Second entry has size 24: a loader appending a field; we must step over it.
    b.mmap(0x12000,
           {{0x0, 0x9fc00, 1}, {0x9fc00, 0x400, 2}, {0x100000, 0x7ee0000, 1}, {0xfec00000, 0x1000, 3}},
           {20, 24, 20, 20});
    auto info = make_info();
    auto r = parse_boot_info(b.build(), kMultiboot1Magic, Mb1Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;

    EXPECT_EQ(info->protocol, 1);
    EXPECT_EQ(info->info_phys, Mb1Builder::kInfo);
    EXPECT_EQ(info->info_size, 116u);
    EXPECT_STREQ(info->cmdline, "hv.log=debug hv.dump=acpi");
    EXPECT_FALSE(info->cmdline_truncated);
    EXPECT_STREQ(info->loader_name, "GRUB 2.06");
    EXPECT_TRUE(info->has_basic_meminfo);
    EXPECT_EQ(info->mem_lower_kib, 639u);
    EXPECT_EQ(info->mem_upper_kib, 130048u);

    ASSERT_EQ(info->module_count, 2u);
    EXPECT_EQ(info->modules_dropped, 0u);
    EXPECT_EQ(info->modules[0].start, 0x200000u);
    EXPECT_EQ(info->modules[0].end, 0x201234u);
    EXPECT_STREQ(info->modules[0].cmdline, "guest0.cfg");
    EXPECT_EQ(info->modules[1].start, 0x300000u);
    EXPECT_STREQ(info->modules[1].cmdline, "");

    ASSERT_EQ(info->region_count, 4u);
    EXPECT_EQ(info->regions_dropped, 0u);
    EXPECT_EQ(info->regions[0].base, 0u);
    EXPECT_EQ(info->regions[0].length, 0x9fc00u);
    EXPECT_EQ(info->regions[0].type, MemType::usable);
    EXPECT_EQ(info->regions[1].base, 0x9fc00u);
    EXPECT_EQ(info->regions[1].type, MemType::reserved);
    EXPECT_EQ(info->regions[2].base, 0x100000u);
    EXPECT_EQ(info->regions[2].length, 0x7ee0000u);
    EXPECT_EQ(info->regions[3].type, MemType::acpi_reclaimable);
    EXPECT_EQ(info->rsdp_copy_len, 0u);

    // cmdline, loader name, module list, two module strings, mmap buffer.
    ASSERT_EQ(info->loader_data_count, 6u);
    EXPECT_EQ(info->loader_data[0].base, 0x10000u);
    EXPECT_EQ(info->loader_data[0].end, 0x10000u + 26);
    EXPECT_EQ(info->loader_data[1].base, 0x10100u);
    EXPECT_EQ(info->loader_data[1].end, 0x10100u + 10);
    EXPECT_EQ(info->loader_data[2].base, 0x11000u);
    EXPECT_EQ(info->loader_data[2].end, 0x11020u);
    EXPECT_EQ(info->loader_data[3].base, 0x11100u);
    EXPECT_EQ(info->loader_data[3].end, 0x11100u + 11);
    EXPECT_EQ(info->loader_data[4].base, 0x11100u + 11);
    EXPECT_EQ(info->loader_data[4].end, 0x11100u + 12);
    EXPECT_EQ(info->loader_data[5].base, 0x12000u);
    EXPECT_EQ(info->loader_data[5].end, 0x12000u + 4 * 24 + 4);
}

TEST(Multiboot1, WithoutMmapSynthesizesFromMemLowerUpper) {
    Mb1Builder b;
    b.mem(640, 31744);  // 31 MiB above 1 MiB
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    ASSERT_EQ(info->region_count, 2u);
    EXPECT_EQ(info->regions[0].base, 0u);
    EXPECT_EQ(info->regions[0].length, 640u * 1024);
    EXPECT_EQ(info->regions[0].type, MemType::usable);
    EXPECT_EQ(info->regions[1].base, 0x100000u);
    EXPECT_EQ(info->regions[1].length, 31744u * 1024);
    EXPECT_EQ(info->regions[1].type, MemType::usable);
    EXPECT_EQ(info->loader_data_count, 0u);
}

TEST(Multiboot1, EmptyMmapFallsBackToMemLowerUpper) {
    Mb1Builder b;
    b.mem(0, 1024);
    b.mmap_raw(0x12000, {});
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    ASSERT_EQ(info->region_count, 1u);
    EXPECT_EQ(info->regions[0].base, 0x100000u);
    EXPECT_EQ(info->regions[0].length, 0x100000u);
}

TEST(Multiboot1, NoMemoryInformationIsNotFound) {
    Mb1Builder b;
    b.cmdline(0x10000, "x");
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::not_found);
}

TEST(Multiboot1, MmapEntrySizeBelow20IsMalformed) {
    Mb1Builder b;
    b.mem(640, 1024);
    b.mmap(0x12000, {{0, 0x9fc00, 1}, {0x100000, 0x100000, 1}}, {20, 16});
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, 24u);  // offset of the bad entry
    EXPECT_NE(std::string(r.error().detail).find("size below 20"), std::string::npos);
}

TEST(Multiboot1, MmapEntrySizeZeroDoesNotLoop) {
    Mb1Builder b;
    b.mmap(0x12000, {{0, 0x9fc00, 1}}, {0});
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
}

TEST(Multiboot1, MmapEntryRunningPastLengthIsTruncated) {
    Mb1Builder b;
    std::vector<uint8_t> buf(48, 0);
    put_u32(buf, 0, 20);
    put_u32(buf, 24, 20);
    b.mmap_raw(0x12000, buf, 40);  // second entry needs 24 bytes, only 16 remain
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::truncated);
    EXPECT_EQ(r.error().value, 24u);
}

TEST(Multiboot1, MmapNotReadableIsUnmapped) {
    Mb1Builder b;
    std::vector<uint8_t> buf(24, 0);
    put_u32(buf, 0, 20);
    b.mmap_raw(0x12000, buf, 48);  // length claims more than exists
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unmapped);
    EXPECT_EQ(r.error().value, 0x12000u);
}

TEST(Multiboot1, UnknownMemoryTypesBecomeReserved) {
    Mb1Builder b;
    b.mmap(0x12000, {{0, 0x1000, 0}, {0x1000, 0x1000, 7}, {0x2000, 0x1000, 5}, {0x3000, 0x1000, 4}});
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    ASSERT_EQ(info->region_count, 4u);
    EXPECT_EQ(info->regions[0].type, MemType::reserved);
    EXPECT_EQ(info->regions[1].type, MemType::reserved);
    EXPECT_EQ(info->regions[2].type, MemType::bad);
    EXPECT_EQ(info->regions[3].type, MemType::acpi_nvs);
}

TEST(Multiboot1, MoreRegionsThanCapacityAreCountedAsDropped) {
    Mb1Builder b;
    std::vector<Entry> entries;
    for (uint64_t i = 0; i < kMaxRegions + 5; ++i) entries.push_back({i * 0x1000, 0x1000, 1});
    b.mmap(0x20000, entries);
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(info->region_count, kMaxRegions);
    EXPECT_EQ(info->regions_dropped, 5u);
    EXPECT_EQ(info->regions[kMaxRegions - 1].base, (kMaxRegions - 1) * 0x1000);
}

TEST(Multiboot1, MoreModulesThanCapacityAreCountedAsDropped) {
    Mb1Builder b;
    b.mem(640, 1024);
    std::vector<Mb1Builder::Mod> mods;
    for (uint32_t i = 0; i < kMaxModules + 3; ++i) mods.push_back({0x400000 + i * 0x1000, 0x400800 + i * 0x1000, "m"});
    b.modules(0x11000, 0x13000, mods);
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(info->module_count, kMaxModules);
    EXPECT_EQ(info->modules_dropped, 3u);
    EXPECT_EQ(info->modules[kMaxModules - 1].start, 0x400000u + (kMaxModules - 1) * 0x1000);
    // Module list + one string per kept module, within capacity.
    EXPECT_EQ(info->loader_data_count, 1 + kMaxModules);
}

TEST(Multiboot1, ModuleEndBelowStartIsMalformed) {
    Mb1Builder b;
    b.mem(640, 1024);
    b.modules(0x11000, 0x11100, {{0x200000, 0x100000, "bad"}});
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, 0u);  // module index
}

TEST(Multiboot1, ModuleListNotReadableIsUnmapped) {
    Mb1Builder b;
    b.mem(640, 1024);
    b.modules(0x11000, 0x11100, {{0x200000, 0x201000, "a"}});
    DumpReader& mem = b.build();
    // Claim more modules than the list holds: the list view must fail as a whole.
    uint8_t* count = mem.mutable_view(Mb1Builder::kInfo + 20, 4);
    ASSERT_NE(count, nullptr);
    count[0] = 50;
    auto info = make_info();
    auto r = parse_multiboot1(mem, Mb1Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unmapped);
    EXPECT_EQ(r.error().value, 0x11000u);
}

TEST(Multiboot1, ModuleCmdlineTruncatedTo127Characters) {
    Mb1Builder b;
    b.mem(640, 1024);
    std::string long_cmd(200, 'x');
    b.modules(0x11000, 0x11100, {{0x200000, 0x201000, long_cmd}});
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(std::strlen(info->modules[0].cmdline), 127u);
    EXPECT_EQ(std::string(info->modules[0].cmdline), std::string(127, 'x'));
    // The whole string is still reserved, not just what fitted.
    EXPECT_EQ(info->loader_data[1].end - info->loader_data[1].base, 201u);
}

TEST(Multiboot1, LongCmdlineIsTruncatedAndFlagged) {
    Mb1Builder b;
    b.mem(640, 1024);
    b.cmdline(0x10000, std::string(300, 'a'));
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_TRUE(info->cmdline_truncated);
    EXPECT_EQ(std::strlen(info->cmdline), 255u);
}

TEST(Multiboot1, CmdlineOfExactlyBufferSizeMinusOneIsNotTruncated) {
    Mb1Builder b;
    b.mem(640, 1024);
    b.cmdline(0x10000, std::string(255, 'a'));
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_FALSE(info->cmdline_truncated);
    EXPECT_EQ(std::strlen(info->cmdline), 255u);
}

TEST(Multiboot1, UnterminatedCmdlineIsMalformed) {
    Mb1Builder b;
    b.mem(640, 1024);
    b.cmdline_raw(0x10000, std::vector<uint8_t>(8192, 'a'));
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, 0x10000u);
}

TEST(Multiboot1, CmdlineRunningIntoUnreadableMemoryIsUnmapped) {
    Mb1Builder b;
    b.mem(640, 1024);
    b.cmdline_raw(0x10000, std::vector<uint8_t>(16, 'a'));  // no NUL, then nothing
    auto info = make_info();
    auto r = parse_multiboot1(b.build(), Mb1Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unmapped);
    EXPECT_EQ(r.error().value, 0x10000u);
}

TEST(Multiboot1, InfoPointerNotReadableIsUnmapped) {
    Mb1Builder b;
    b.mem(640, 1024);
    auto info = make_info();
    auto r = parse_boot_info(b.build(), kMultiboot1Magic, 0x7000000, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unmapped);
    EXPECT_EQ(r.error().value, 0x7000000u);
}

TEST(Multiboot1, ShortInfoStructureIsAcceptedWhenFlagsAskForLittle) {
    // Only flags + mem_lower/upper exist: a loader may allocate just that much.
    DumpReader mem;
    std::vector<uint8_t> info_bytes(12, 0);
    put_u32(info_bytes, 0, 1);
    put_u32(info_bytes, 4, 640);
    put_u32(info_bytes, 8, 1024);
    mem.add(0x9000, info_bytes);
    auto info = make_info();
    auto r = parse_multiboot1(mem, 0x9000, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(info->region_count, 2u);

    // But if flags announce the mmap, its fields must be readable.
    put_u32(info_bytes, 0, 1 | (1u << 6));
    mem.add(0x9000, info_bytes);
    auto r2 = parse_multiboot1(mem, 0x9000, *info);
    ASSERT_FALSE(r2.ok());
    EXPECT_EQ(r2.error().code, Errc::unmapped);
}

// ---------------------------------------------------------------------------
// Multiboot2 builder: fixed part, then 8-byte aligned tags.
// ---------------------------------------------------------------------------
class Mb2Builder {
  public:
    static constexpr uint64_t kInfo = 0x10000;

    // Appends a tag; `size_override` lets tests lie about the size.
    size_t tag(uint32_t type, const std::vector<uint8_t>& payload, int64_t size_override = -1) {
        b_.resize((b_.size() + 7) & ~size_t{7}, 0);
        size_t off = b_.size();
        put_u32(b_, off, type);
        put_u32(b_, off + 4, size_override >= 0 ? static_cast<uint32_t>(size_override)
                                                : static_cast<uint32_t>(8 + payload.size()));
        b_.insert(b_.end(), payload.begin(), payload.end());
        return off;
    }
    void string_tag(uint32_t type, const std::string& s) { tag(type, cstr(s)); }
    void module(uint32_t start, uint32_t end, const std::string& s) {
        std::vector<uint8_t> p(8);
        put_u32(p, 0, start);
        put_u32(p, 4, end);
        auto str = cstr(s);
        p.insert(p.end(), str.begin(), str.end());
        tag(3, p);
    }
    void meminfo(uint32_t lower, uint32_t upper) {
        std::vector<uint8_t> p(8);
        put_u32(p, 0, lower);
        put_u32(p, 4, upper);
        tag(4, p);
    }
    void mmap(const std::vector<Entry>& entries, uint32_t entry_size = 24) {
        std::vector<uint8_t> p(8 + entries.size() * entry_size, 0);
        put_u32(p, 0, entry_size);
        put_u32(p, 4, 0);
        for (size_t i = 0; i < entries.size(); ++i) {
            put_u64(p, 8 + i * entry_size, entries[i].base);
            put_u64(p, 8 + i * entry_size + 8, entries[i].length);
            put_u32(p, 8 + i * entry_size + 16, entries[i].type);
        }
        tag(6, p);
    }
    void end() { tag(0, {}); }

    std::vector<uint8_t>& bytes() {
        b_.resize((b_.size() + 7) & ~size_t{7}, 0);
        if (total_override_ == 0) put_u32(b_, 0, static_cast<uint32_t>(b_.size()));
        return b_;
    }
    void total_size(uint32_t v) {
        total_override_ = v;
        put_u32(b_, 0, v);
    }
    DumpReader reader() {
        DumpReader mem;
        mem.add(kInfo, bytes());
        return mem;
    }

  private:
    std::vector<uint8_t> b_ = std::vector<uint8_t>(8, 0);
    uint32_t total_override_ = 0;
};

std::vector<uint8_t> rsdp_bytes(char tag, size_t len) {
    std::vector<uint8_t> p(len, 0);
    std::memcpy(p.data(), "RSD PTR ", 8);
    p[8] = static_cast<uint8_t>(tag);
    return p;
}

TEST(Multiboot2, AllTags) {
    Mb2Builder b;
    b.string_tag(1, "hv.log=info");
    b.string_tag(2, "GRUB 2.12");
    b.module(0x400000, 0x402000, "guest1.elf root=/dev/vda");
    b.module(0x500000, 0x500800, "");
    b.meminfo(639, 523200);
    b.tag(8, std::vector<uint8_t>(24, 0xff));  // framebuffer: skipped
    b.tag(14, rsdp_bytes('o', 20));
    b.mmap({{0, 0x9fc00, 1}, {0x9fc00, 0x400, 2}, {0x100000, 0x1ff00000, 1}, {0x7fe0000, 0x20000, 4}});
    b.tag(15, rsdp_bytes('n', 36));
    b.tag(0x1234, {1, 2, 3});  // unknown tag with unaligned size: skipped
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_boot_info(mem, kMultiboot2Magic, Mb2Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail << " " << r.error().value;

    EXPECT_EQ(info->protocol, 2);
    EXPECT_EQ(info->info_phys, Mb2Builder::kInfo);
    EXPECT_EQ(info->info_size, b.bytes().size());
    EXPECT_STREQ(info->cmdline, "hv.log=info");
    EXPECT_STREQ(info->loader_name, "GRUB 2.12");
    ASSERT_EQ(info->module_count, 2u);
    EXPECT_EQ(info->modules[0].start, 0x400000u);
    EXPECT_EQ(info->modules[0].end, 0x402000u);
    EXPECT_STREQ(info->modules[0].cmdline, "guest1.elf root=/dev/vda");
    EXPECT_STREQ(info->modules[1].cmdline, "");
    EXPECT_TRUE(info->has_basic_meminfo);
    EXPECT_EQ(info->mem_lower_kib, 639u);
    EXPECT_EQ(info->mem_upper_kib, 523200u);
    ASSERT_EQ(info->region_count, 4u);
    EXPECT_EQ(info->regions[2].base, 0x100000u);
    EXPECT_EQ(info->regions[2].length, 0x1ff00000u);
    EXPECT_EQ(info->regions[2].type, MemType::usable);
    EXPECT_EQ(info->regions[3].type, MemType::acpi_nvs);
    ASSERT_EQ(info->rsdp_copy_len, 36u);
    EXPECT_EQ(info->rsdp_copy[8], 'n');
    EXPECT_EQ(info->loader_data_count, 0u);
}

TEST(Multiboot2, NewRsdpPreferredWhateverTheOrder) {
    for (bool new_first : {true, false}) {
        Mb2Builder b;
        b.meminfo(640, 1024);
        if (new_first) b.tag(15, rsdp_bytes('n', 36));
        b.tag(14, rsdp_bytes('o', 20));
        if (!new_first) b.tag(15, rsdp_bytes('n', 36));
        b.end();
        auto mem = b.reader();
        auto info = make_info();
        auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
        ASSERT_TRUE(r.ok()) << r.error().detail;
        EXPECT_EQ(info->rsdp_copy_len, 36u) << new_first;
        EXPECT_EQ(info->rsdp_copy[8], 'n') << new_first;
    }
}

TEST(Multiboot2, OldRsdpAloneIsCopied) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    b.tag(14, rsdp_bytes('o', 20));
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    ASSERT_TRUE(parse_multiboot2(mem, Mb2Builder::kInfo, *info).ok());
    EXPECT_EQ(info->rsdp_copy_len, 20u);
    EXPECT_EQ(std::memcmp(info->rsdp_copy, "RSD PTR o", 9), 0);
}

TEST(Multiboot2, WithoutMmapUsesBasicMeminfo) {
    Mb2Builder b;
    b.meminfo(640, 2048);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    ASSERT_EQ(info->region_count, 2u);
    EXPECT_EQ(info->regions[1].base, 0x100000u);
    EXPECT_EQ(info->regions[1].length, 2048u * 1024);
}

TEST(Multiboot2, NoMemoryInformationIsNotFound) {
    Mb2Builder b;
    b.string_tag(1, "x");
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::not_found);
}

TEST(Multiboot2, MissingEndTagIsMalformed) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, 24u);  // where the end tag should have been
    EXPECT_NE(std::string(r.error().detail).find("end tag"), std::string::npos);
}

TEST(Multiboot2, EndTagWithWrongSizeIsMalformed) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    b.tag(0, std::vector<uint8_t>(8, 0));  // size 16
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, 24u);
}

TEST(Multiboot2, TagSizeZeroIsMalformedNotAnInfiniteLoop) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    size_t off = b.tag(21, std::vector<uint8_t>(8, 0), 0);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, off);
}

TEST(Multiboot2, TagRunningPastTotalSizeIsTruncated) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    size_t off = b.tag(1, cstr("abc"), 4096);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::truncated);
    EXPECT_EQ(r.error().value, off);
}

TEST(Multiboot2, TotalSizeNotMultipleOf8EndsCleanly) {
    // A final tag whose padding would run past an odd total_size must not make
    // the offset overtake total_size and underflow.
    Mb2Builder b;
    b.meminfo(640, 1024);
    b.tag(1, cstr("abcd"));  // size 13 at offset 24 -> next tag at 40
    auto& bytes = b.bytes();
    b.total_size(37);
    DumpReader mem;
    mem.add(Mb2Builder::kInfo, bytes);
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_NE(std::string(r.error().detail).find("end tag"), std::string::npos);
}

TEST(Multiboot2, TotalSizeTooSmall) {
    Mb2Builder b;
    b.end();
    b.bytes();
    b.total_size(8);
    DumpReader mem;
    mem.add(Mb2Builder::kInfo, b.bytes());
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, 8u);
}

TEST(Multiboot2, TotalSizeTooLarge) {
    Mb2Builder b;
    b.end();
    b.bytes();
    b.total_size(0x80000000u);
    DumpReader mem;
    mem.add(Mb2Builder::kInfo, b.bytes());
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, 0x80000000u);
}

TEST(Multiboot2, TotalSizeBeyondReadableMemoryIsUnmapped) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    b.end();
    b.bytes();
    b.total_size(4096);
    DumpReader mem;
    mem.add(Mb2Builder::kInfo, b.bytes());
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unmapped);
}

TEST(Multiboot2, InfoPointerNotReadableIsUnmapped) {
    DumpReader mem;
    auto info = make_info();
    auto r = parse_boot_info(mem, kMultiboot2Magic, 0x10000, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unmapped);
    EXPECT_EQ(r.error().value, 0x10000u);
}

TEST(Multiboot2, MisalignedInfoIsMalformed) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    b.end();
    DumpReader mem;
    mem.add(0x10004, b.bytes());
    auto info = make_info();
    auto r = parse_multiboot2(mem, 0x10004, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
}

TEST(Multiboot2, UnterminatedCmdlineIsMalformed) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    size_t off = b.tag(1, {'a', 'b', 'c'});
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, off);
    EXPECT_NE(std::string(r.error().detail).find("cmdline"), std::string::npos);
}

TEST(Multiboot2, UnterminatedLoaderNameIsMalformed) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    b.tag(2, {'G', 'R', 'U', 'B'});
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_NE(std::string(r.error().detail).find("loader name"), std::string::npos);
}

TEST(Multiboot2, UnterminatedModuleStringIsMalformed) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    std::vector<uint8_t> p(8);
    put_u32(p, 0, 0x400000);
    put_u32(p, 4, 0x401000);
    p.push_back('x');
    b.tag(3, p);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_NE(std::string(r.error().detail).find("module"), std::string::npos);
}

TEST(Multiboot2, ModuleTagWithoutStringIsMalformed) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    std::vector<uint8_t> p(8);
    put_u32(p, 0, 0x400000);
    put_u32(p, 4, 0x401000);
    b.tag(3, p);  // size 16: no room even for the NUL
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
}

TEST(Multiboot2, LongModuleStringTruncatedTo127) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    b.module(0x400000, 0x401000, std::string(300, 'm'));
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    ASSERT_TRUE(parse_multiboot2(mem, Mb2Builder::kInfo, *info).ok());
    EXPECT_EQ(std::string(info->modules[0].cmdline), std::string(127, 'm'));
}

TEST(Multiboot2, MmapEntrySizeTooSmallIsMalformed) {
    Mb2Builder b;
    b.mmap({{0, 0x9fc00, 1}}, 16);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, 16u);
}

TEST(Multiboot2, MmapEntrySizeZeroIsMalformed) {
    Mb2Builder b;
    std::vector<uint8_t> p(8 + 24, 0);  // entry_size 0
    b.tag(6, p);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
}

TEST(Multiboot2, MmapEntrySizeNotMultipleOf8IsMalformed) {
    Mb2Builder b;
    b.mmap({{0, 0x9fc00, 1}}, 28);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::malformed);
    EXPECT_EQ(r.error().value, 28u);
}

TEST(Multiboot2, LargerMmapEntriesAreSteppedOver) {
    Mb2Builder b;
    b.mmap({{0, 0x9fc00, 1}, {0x100000, 0x100000, 1}}, 32);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    ASSERT_EQ(info->region_count, 2u);
    EXPECT_EQ(info->regions[1].base, 0x100000u);
    EXPECT_EQ(info->regions[1].length, 0x100000u);
}

TEST(Multiboot2, MoreRegionsThanCapacityAreCountedAsDropped) {
    Mb2Builder b;
    std::vector<Entry> entries;
    for (uint64_t i = 0; i < kMaxRegions + 7; ++i) entries.push_back({i * 0x2000, 0x1000, 1});
    b.mmap(entries);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_multiboot2(mem, Mb2Builder::kInfo, *info);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(info->region_count, kMaxRegions);
    EXPECT_EQ(info->regions_dropped, 7u);
}

TEST(Multiboot2, MoreModulesThanCapacityAreCountedAsDropped) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    for (uint32_t i = 0; i < kMaxModules + 2; ++i) b.module(0x400000 + i * 0x1000, 0x401000 + i * 0x1000, "m");
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    ASSERT_TRUE(parse_multiboot2(mem, Mb2Builder::kInfo, *info).ok());
    EXPECT_EQ(info->module_count, kMaxModules);
    EXPECT_EQ(info->modules_dropped, 2u);
}

TEST(BootInfo, WrongMagicIsBadSignature) {
    Mb2Builder b;
    b.meminfo(640, 1024);
    b.end();
    auto mem = b.reader();
    auto info = make_info();
    auto r = parse_boot_info(mem, 0x1BADB002, Mb2Builder::kInfo, *info);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::bad_signature);
    EXPECT_EQ(r.error().value, 0x1BADB002u);
}

TEST(BootInfo, ReparseClearsPreviousResult) {
    Mb1Builder b1;
    b1.mem(640, 1024);
    b1.cmdline(0x20000, "first");
    auto info = make_info();
    ASSERT_TRUE(parse_boot_info(b1.build(), kMultiboot1Magic, Mb1Builder::kInfo, *info).ok());
    EXPECT_EQ(info->loader_data_count, 1u);

    Mb2Builder b2;
    b2.meminfo(640, 1024);
    b2.end();
    auto mem = b2.reader();
    ASSERT_TRUE(parse_boot_info(mem, kMultiboot2Magic, Mb2Builder::kInfo, *info).ok());
    EXPECT_EQ(info->protocol, 2);
    EXPECT_STREQ(info->cmdline, "");
    EXPECT_EQ(info->loader_data_count, 0u);
    EXPECT_EQ(info->region_count, 2u);
}

}  // namespace
}  // namespace hv::boot
