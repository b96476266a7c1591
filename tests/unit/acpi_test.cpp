// Unit tests for the ACPI parser over synthetic firmware images: every table is
// built byte by byte here (helpers below), placed in a DumpReader at a physical
// address, and then broken in the specific ways real firmware gets it wrong.

#include "kernel/acpi/acpi.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/support/dump_reader.hpp"

namespace {

using hv::Errc;
using hv::acpi::Directory;
using hv::acpi::Madt;
using hv::acpi::Rsdp;
using hv::acpi::TableRef;
using hv::test::DumpReader;
using hv::test::fix_checksum;
using hv::test::put_u16;
using hv::test::put_u32;
using hv::test::put_u64;
using hv::test::put_u8;
using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------- builders

// RSDP (ACPI 6.5 §5.2.5.3): v1 is 20 bytes, revision >= 2 is 36 with Length at 20,
// XsdtAddress at 24 and the extended checksum at 32.
Bytes make_rsdp(uint8_t revision, uint32_t rsdt, uint64_t xsdt = 0, const char* oem = "HVTEST") {
    Bytes b(revision >= 2 ? 36 : 20, 0);
    std::memcpy(b.data(), "RSD PTR ", 8);
    std::memcpy(b.data() + 9, oem, 6);
    put_u8(b, 15, revision);
    put_u32(b, 16, rsdt);
    if (revision >= 2) {
        put_u32(b, 20, 36);
        put_u64(b, 24, xsdt);
    }
    fix_checksum(b, 20, 8);
    if (revision >= 2) fix_checksum(b, 36, 32);
    return b;
}

// Any table: the 36-byte header of §5.2.6 followed by `body`, checksum fixed.
Bytes make_table(const char* sig, const Bytes& body, uint8_t revision = 1) {
    Bytes b(36, 0);
    std::memcpy(b.data(), sig, 4);
    put_u32(b, 4, static_cast<uint32_t>(36 + body.size()));
    put_u8(b, 8, revision);
    std::memcpy(b.data() + 10, "HVTEST", 6);
    std::memcpy(b.data() + 16, "SYNTHTBL", 8);
    b.insert(b.end(), body.begin(), body.end());
    fix_checksum(b, b.size(), 9);
    return b;
}

Bytes make_rsdt(const std::vector<uint32_t>& entries) {
    Bytes body;
    for (uint32_t e : entries) put_u32(body, body.size(), e);
    return make_table("RSDT", body);
}

Bytes make_xsdt(const std::vector<uint64_t>& entries) {
    Bytes body;
    for (uint64_t e : entries) put_u64(body, body.size(), e);
    return make_table("XSDT", body);
}

// MADT entries (§5.2.12.x), appended in order.
struct MadtBuilder {
    Bytes entries;

    MadtBuilder& lapic(uint8_t uid, uint8_t apic_id, uint32_t flags) {
        size_t o = start(0, 8);
        put_u8(entries, o + 2, uid);
        put_u8(entries, o + 3, apic_id);
        put_u32(entries, o + 4, flags);
        return *this;
    }
    MadtBuilder& ioapic(uint8_t id, uint32_t address, uint32_t gsi_base) {
        size_t o = start(1, 12);
        put_u8(entries, o + 2, id);
        put_u32(entries, o + 4, address);
        put_u32(entries, o + 8, gsi_base);
        return *this;
    }
    MadtBuilder& iso(uint8_t bus, uint8_t source, uint32_t gsi, uint16_t flags) {
        size_t o = start(2, 10);
        put_u8(entries, o + 2, bus);
        put_u8(entries, o + 3, source);
        put_u32(entries, o + 4, gsi);
        put_u16(entries, o + 8, flags);
        return *this;
    }
    MadtBuilder& nmi(uint8_t uid, uint16_t flags, uint8_t lint) {
        size_t o = start(4, 6);
        put_u8(entries, o + 2, uid);
        put_u16(entries, o + 3, flags);
        put_u8(entries, o + 5, lint);
        return *this;
    }
    MadtBuilder& lapic_override(uint64_t address) {
        size_t o = start(5, 12);
        put_u64(entries, o + 4, address);
        return *this;
    }
    MadtBuilder& x2apic(uint32_t apic_id, uint32_t flags, uint32_t uid) {
        size_t o = start(9, 16);
        put_u32(entries, o + 4, apic_id);
        put_u32(entries, o + 8, flags);
        put_u32(entries, o + 12, uid);
        return *this;
    }
    MadtBuilder& x2nmi(uint16_t flags, uint32_t uid, uint8_t lint) {
        size_t o = start(0xA, 12);
        put_u16(entries, o + 2, flags);
        put_u32(entries, o + 4, uid);
        put_u8(entries, o + 8, lint);
        return *this;
    }
    // An entry with arbitrary type/length and zero payload (length is what the
    // header claims; `actual` bytes are really appended).
    MadtBuilder& raw(uint8_t type, uint8_t length, size_t actual) {
        size_t o = entries.size();
        entries.resize(o + actual, 0);
        if (actual > 0) entries[o] = type;
        if (actual > 1) entries[o + 1] = length;
        return *this;
    }

    Bytes build(uint32_t lapic_address = 0xFEE00000, uint32_t flags = 1, uint8_t revision = 5) const {
        Bytes body;
        put_u32(body, 0, lapic_address);
        put_u32(body, 4, flags);
        body.insert(body.end(), entries.begin(), entries.end());
        return make_table("APIC", body, revision);
    }

  private:
    size_t start(uint8_t type, uint8_t length) {
        size_t o = entries.size();
        entries.resize(o + length, 0);
        entries[o] = type;
        entries[o + 1] = length;
        return o;
    }
};

constexpr uint64_t kMadtAddr = 0x7FE1000;

// Madt is several KiB; keep it off the gtest stack frames.
std::unique_ptr<Madt> parse_madt_ok(const DumpReader& mem, uint64_t phys = kMadtAddr) {
    auto m = std::make_unique<Madt>();
    TableRef ref{};
    ref.phys = phys;
    auto r = hv::acpi::parse_madt_into(mem, ref, *m);
    EXPECT_TRUE(r.ok()) << r.error().detail << " value=" << r.error().value;
    return m;
}

hv::Error parse_madt_err(const DumpReader& mem, uint64_t phys = kMadtAddr) {
    TableRef ref{};
    ref.phys = phys;
    auto r = hv::acpi::parse_madt(mem, ref);
    EXPECT_FALSE(r.ok());
    return r.ok() ? hv::Error{} : r.error();
}

bool contains(const char* haystack, const char* needle) { return std::string(haystack).find(needle) != std::string::npos; }

// Legacy BIOS memory: BDA word at 0x40E with the EBDA segment, the EBDA itself
// (zeros), and the 0xE0000-0xFFFFF BIOS area (zeros).
DumpReader make_bios_image(uint16_t ebda_segment) {
    DumpReader mem;
    Bytes bda(0x100, 0);
    put_u16(bda, 0x0E, ebda_segment);
    mem.add(0x400, bda);
    if (ebda_segment != 0) mem.add(static_cast<uint64_t>(ebda_segment) << 4, Bytes(0x400, 0));
    mem.add(0xE0000, Bytes(0x20000, 0));
    return mem;
}

}  // namespace

// ---------------------------------------------------------------- RSDP

TEST(Rsdp, ParsesV1) {
    DumpReader mem;
    mem.add(0xF5000, make_rsdp(0, 0x7FE0000, 0, "BOCHS "));
    auto r = hv::acpi::parse_rsdp(mem, 0xF5000);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->phys, 0xF5000u);
    EXPECT_EQ(r->revision, 0);
    EXPECT_EQ(r->rsdt, 0x7FE0000u);
    EXPECT_EQ(r->xsdt, 0u);
    EXPECT_STREQ(r->oem_id, "BOCHS ");
}

TEST(Rsdp, ParsesV2) {
    DumpReader mem;
    mem.add(0xF5000, make_rsdp(2, 0x7FE0000, 0x1'0000'2000ull));
    auto r = hv::acpi::parse_rsdp(mem, 0xF5000);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->revision, 2);
    EXPECT_EQ(r->rsdt, 0x7FE0000u);
    EXPECT_EQ(r->xsdt, 0x1'0000'2000ull);
    EXPECT_STREQ(r->oem_id, "HVTEST");
}

TEST(Rsdp, V1IgnoresBytesPastTwentyEvenIfTheyLookLikeV2) {
    // Revision 0 has no Length/XsdtAddress: garbage after byte 20 must not be read.
    Bytes b = make_rsdp(0, 0x1000);
    b.resize(36, 0xFF);
    DumpReader mem;
    mem.add(0x9000, b);
    auto r = hv::acpi::parse_rsdp(mem, 0x9000);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->xsdt, 0u);
    EXPECT_EQ(r->rsdt, 0x1000u);
}

TEST(Rsdp, RejectsBadSignature) {
    Bytes b = make_rsdp(0, 0x1000);
    b[3] = 'X';  // "RSDXPTR "
    fix_checksum(b, 20, 8);
    DumpReader mem;
    mem.add(0x9000, b);
    auto r = hv::acpi::parse_rsdp(mem, 0x9000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::bad_signature);
    EXPECT_TRUE(contains(r.error().detail, "RSDP signature"));
}

TEST(Rsdp, RejectsBadV1Checksum) {
    Bytes b = make_rsdp(0, 0x1000);
    b[8] = static_cast<uint8_t>(b[8] + 3);
    DumpReader mem;
    mem.add(0x9000, b);
    auto r = hv::acpi::parse_rsdp(mem, 0x9000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::bad_checksum);
    EXPECT_EQ(r.error().value, 3u);  // the sum that should have been zero
    EXPECT_TRUE(contains(r.error().detail, "first 20 bytes"));
}

TEST(Rsdp, RejectsBadExtendedChecksum) {
    Bytes b = make_rsdp(2, 0x1000, 0x2000);
    b[24] = 0x40;  // XSDT address changed after checksumming; first 20 bytes still fine
    DumpReader mem;
    mem.add(0x9000, b);
    auto r = hv::acpi::parse_rsdp(mem, 0x9000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::bad_checksum);
    EXPECT_EQ(r.error().value, 0x40u);
    EXPECT_TRUE(contains(r.error().detail, "extended checksum"));
}

TEST(Rsdp, RejectsV2TruncatedByReader) {
    Bytes b = make_rsdp(2, 0x1000, 0x2000);
    b.resize(30);  // the reader can only see 30 of the 36 bytes
    DumpReader mem;
    mem.add(0x9000, b);
    auto r = hv::acpi::parse_rsdp(mem, 0x9000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::truncated);
}

TEST(Rsdp, RejectsLengthFieldPastReadableMemory) {
    Bytes b = make_rsdp(2, 0x1000, 0x2000);
    put_u32(b, 20, 100);  // claims 100 bytes; only 36 exist
    fix_checksum(b, 20, 8);
    DumpReader mem;
    mem.add(0x9000, b);
    auto r = hv::acpi::parse_rsdp(mem, 0x9000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::truncated);
    EXPECT_EQ(r.error().value, 100u);
}

TEST(Rsdp, RejectsLengthFieldTooSmallOrHuge) {
    for (uint32_t length : {0u, 20u, 35u, 0xFFFFFFFFu}) {
        Bytes b = make_rsdp(2, 0x1000, 0x2000);
        put_u32(b, 20, length);
        fix_checksum(b, 20, 8);
        fix_checksum(b, 36, 32);
        DumpReader mem;
        mem.add(0x9000, b);
        auto r = hv::acpi::parse_rsdp(mem, 0x9000);
        ASSERT_FALSE(r.ok()) << length;
        EXPECT_EQ(r.error().code, Errc::malformed) << length;
        EXPECT_EQ(r.error().value, length);
    }
}

TEST(Rsdp, RejectsUnreadableAddress) {
    DumpReader mem;
    mem.add(0x9000, make_rsdp(0, 0x1000));
    auto r = hv::acpi::parse_rsdp(mem, 0xA000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unmapped);
    EXPECT_EQ(r.error().value, 0xA000u);
    auto wrap = hv::acpi::parse_rsdp(mem, ~0ull - 4);
    ASSERT_FALSE(wrap.ok());
    EXPECT_EQ(wrap.error().code, Errc::unmapped);
}

TEST(Rsdp, CopyParsesV1AndV2) {
    Bytes v1 = make_rsdp(0, 0x1234);
    auto r1 = hv::acpi::parse_rsdp_copy(v1.data(), v1.size(), 0);
    ASSERT_TRUE(r1.ok());
    EXPECT_EQ(r1->phys, 0u);
    EXPECT_EQ(r1->rsdt, 0x1234u);
    EXPECT_EQ(r1->xsdt, 0u);

    Bytes v2 = make_rsdp(2, 0x1234, 0x5678);
    auto r2 = hv::acpi::parse_rsdp_copy(v2.data(), v2.size(), 0xF0010);
    ASSERT_TRUE(r2.ok());
    EXPECT_EQ(r2->phys, 0xF0010u);
    EXPECT_EQ(r2->revision, 2);
    EXPECT_EQ(r2->xsdt, 0x5678u);
}

TEST(Rsdp, CopyRejectsShortBuffers) {
    Bytes v2 = make_rsdp(2, 0x1234, 0x5678);
    auto short_v1 = hv::acpi::parse_rsdp_copy(v2.data(), 19, 0);
    ASSERT_FALSE(short_v1.ok());
    EXPECT_EQ(short_v1.error().code, Errc::truncated);
    EXPECT_EQ(short_v1.error().value, 19u);
    // A multiboot2 "old ACPI" tag holding only 20 bytes of a revision 2 RSDP.
    auto short_v2 = hv::acpi::parse_rsdp_copy(v2.data(), 20, 0);
    ASSERT_FALSE(short_v2.ok());
    EXPECT_EQ(short_v2.error().code, Errc::truncated);
    auto null = hv::acpi::parse_rsdp_copy(nullptr, 36, 0);
    ASSERT_FALSE(null.ok());
    EXPECT_EQ(null.error().code, Errc::invalid_argument);
}

// ---------------------------------------------------------------- BIOS scan

TEST(RsdpScan, FindsRsdpInEbdaBeforeBiosArea) {
    DumpReader mem = make_bios_image(0x9FC0);  // EBDA at 0x9FC00
    mem.add(0x9FC00 + 0x30, make_rsdp(0, 0x1000));
    mem.add(0xF0000, make_rsdp(0, 0x2000));
    auto r = hv::acpi::find_rsdp_bios(mem);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r.value(), 0x9FC30u);
}

TEST(RsdpScan, FindsRsdpInBiosAreaSkippingBadChecksum) {
    DumpReader mem = make_bios_image(0x9FC0);
    Bytes bad = make_rsdp(0, 0x1000);
    bad[8] ^= 0x55;
    mem.add(0xE0000, bad);
    mem.add(0xF5A40, make_rsdp(2, 0x7FE0000, 0x7FE1000));
    auto r = hv::acpi::find_rsdp_bios(mem);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r.value(), 0xF5A40u);
}

TEST(RsdpScan, IgnoresUnalignedCandidatesAndReportsBadOnes) {
    DumpReader mem = make_bios_image(0x9FC0);
    mem.add(0xE0008, make_rsdp(0, 0x1000));  // valid, but not on a 16-byte boundary
    Bytes bad = make_rsdp(0, 0x1000);
    bad[8] ^= 0x01;
    mem.add(0xE1000, bad);
    mem.add(0x9FC00 + 0x3F0, bad);  // inside the first KiB of the EBDA
    auto r = hv::acpi::find_rsdp_bios(mem);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::not_found);
    EXPECT_EQ(r.error().value, 2u);  // two candidates had the signature but failed
}

TEST(RsdpScan, SearchesOnlyFirstKibOfEbda) {
    DumpReader mem = make_bios_image(0x9FC0);
    mem.add(0x9FC00 + 0x400, make_rsdp(0, 0x1000));  // just past the first KiB
    auto r = hv::acpi::find_rsdp_bios(mem);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::not_found);
}

TEST(RsdpScan, ZeroEbdaSegmentOrNoBdaStillSearchesBiosArea) {
    DumpReader mem = make_bios_image(0);
    mem.add(0xFFFE0, make_rsdp(0, 0x1000));
    auto r = hv::acpi::find_rsdp_bios(mem);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value(), 0xFFFE0u);

    DumpReader only_bios;
    only_bios.add(0xE0000, Bytes(0x20000, 0));
    only_bios.add(0xE0100, make_rsdp(0, 0x1000));
    auto r2 = hv::acpi::find_rsdp_bios(only_bios);
    ASSERT_TRUE(r2.ok());
    EXPECT_EQ(r2.value(), 0xE0100u);

    DumpReader empty;
    auto r3 = hv::acpi::find_rsdp_bios(empty);
    ASSERT_FALSE(r3.ok());
    EXPECT_EQ(r3.error().code, Errc::not_found);
    EXPECT_EQ(r3.error().value, 0u);
}

// ---------------------------------------------------------------- directory

TEST(AcpiTable, CheckTableReadsHeader) {
    DumpReader mem;
    mem.add(0x5000, make_table("HPET", Bytes(20, 0xAB), 3));
    auto t = hv::acpi::check_table(mem, 0x5000);
    ASSERT_TRUE(t.ok()) << t.error().detail;
    EXPECT_STREQ(t->signature, "HPET");
    EXPECT_EQ(t->phys, 0x5000u);
    EXPECT_EQ(t->length, 56u);
    EXPECT_EQ(t->revision, 3);
}

TEST(AcpiTable, CheckTableRejectsHugeLengthWithoutReading) {
    Bytes b = make_table("SSDT", {});
    put_u32(b, 4, 0xFFFFFFF0u);
    DumpReader mem;
    mem.add(0xFFFFFFFF'FFFFF000ull, b);  // phys + length would wrap 2^64
    auto t = hv::acpi::check_table(mem, 0xFFFFFFFF'FFFFF000ull);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, Errc::malformed);
    EXPECT_EQ(t.error().value, 0xFFFFFFF0u);
}

TEST(Directory, PrefersXsdtOverRsdt) {
    DumpReader mem;
    mem.add(0x1000, make_rsdt({0x3000}));
    mem.add(0x2000, make_xsdt({0x4000, 0x1'0000'0000ull}));
    mem.add(0x3000, make_table("FACP", Bytes(8, 0)));
    mem.add(0x4000, MadtBuilder().lapic(0, 0, 1).build());
    mem.add(0x1'0000'0000ull, make_table("HPET", Bytes(20, 0)));
    Rsdp rsdp{};
    rsdp.revision = 2;
    rsdp.rsdt = 0x1000;
    rsdp.xsdt = 0x2000;
    auto d = hv::acpi::load_directory(mem, rsdp);
    ASSERT_TRUE(d.ok()) << d.error().detail;
    EXPECT_TRUE(d->used_xsdt);
    EXPECT_EQ(d->root_phys, 0x2000u);
    ASSERT_EQ(d->count, 2u);
    EXPECT_EQ(d->rejected, 0u);
    ASSERT_NE(d->find("APIC"), nullptr);
    EXPECT_EQ(d->find("APIC")->phys, 0x4000u);
    ASSERT_NE(d->find("HPET"), nullptr);
    EXPECT_EQ(d->find("HPET")->phys, 0x1'0000'0000ull);
    EXPECT_EQ(d->find("FACP"), nullptr);  // only in the RSDT
}

TEST(Directory, UsesRsdtForRevision0AndForZeroXsdt) {
    DumpReader mem;
    mem.add(0x1000, make_rsdt({0x3000}));
    mem.add(0x2000, make_xsdt({0x4000}));
    mem.add(0x3000, make_table("FACP", Bytes(8, 0)));
    mem.add(0x4000, make_table("HPET", Bytes(8, 0)));
    Rsdp v1{};
    v1.revision = 0;
    v1.rsdt = 0x1000;
    v1.xsdt = 0x2000;  // must be ignored: revision 0 has no XSDT
    auto d = hv::acpi::load_directory(mem, v1);
    ASSERT_TRUE(d.ok());
    EXPECT_FALSE(d->used_xsdt);
    EXPECT_EQ(d->root_phys, 0x1000u);
    ASSERT_EQ(d->count, 1u);
    EXPECT_STREQ(d->tables[0].signature, "FACP");

    Rsdp v2{};
    v2.revision = 2;
    v2.rsdt = 0x1000;
    v2.xsdt = 0;
    auto d2 = hv::acpi::load_directory(mem, v2);
    ASSERT_TRUE(d2.ok());
    EXPECT_FALSE(d2->used_xsdt);
    EXPECT_EQ(d2->count, 1u);
}

TEST(Directory, RsdtLengthNotMultipleOfFourUsesWholeEntries) {
    Bytes body;
    put_u32(body, 0, 0x3000);
    put_u32(body, 4, 0x4000);
    put_u16(body, 8, 0x5000);  // 2 stray bytes: half an entry
    DumpReader mem;
    mem.add(0x1000, make_table("RSDT", body));
    mem.add(0x3000, make_table("FACP", Bytes(8, 0)));
    mem.add(0x4000, make_table("APIC", Bytes(8, 0)));
    mem.add(0x5000, make_table("BOOM", Bytes(8, 0)));
    Rsdp rsdp{};
    rsdp.rsdt = 0x1000;
    auto d = hv::acpi::load_directory(mem, rsdp);
    ASSERT_TRUE(d.ok()) << d.error().detail;
    EXPECT_EQ(d->count, 2u);
    EXPECT_EQ(d->root_trailing_bytes, 2u);
    EXPECT_EQ(d->find("BOOM"), nullptr);
    EXPECT_EQ(d->rejected, 0u);
}

TEST(Directory, XsdtLengthNotMultipleOfEight) {
    Bytes body;
    put_u64(body, 0, 0x3000);
    put_u32(body, 8, 0x4000);  // 4 stray bytes
    DumpReader mem;
    mem.add(0x2000, make_table("XSDT", body));
    mem.add(0x3000, make_table("FACP", Bytes(8, 0)));
    mem.add(0x4000, make_table("APIC", Bytes(8, 0)));
    Rsdp rsdp{};
    rsdp.revision = 2;
    rsdp.xsdt = 0x2000;
    auto d = hv::acpi::load_directory(mem, rsdp);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->count, 1u);
    EXPECT_EQ(d->root_trailing_bytes, 4u);
    EXPECT_STREQ(d->tables[0].signature, "FACP");
}

TEST(Directory, BadTableIsRejectedAndCountedWhileOthersLoad) {
    Bytes bad_madt = MadtBuilder().lapic(0, 0, 1).build();
    bad_madt[40] ^= 0x10;  // flag byte flipped after checksumming
    DumpReader mem;
    mem.add(0x1000, make_rsdt({0x3000, 0x4000, 0x5000}));
    mem.add(0x3000, make_table("FACP", Bytes(8, 0)));
    mem.add(0x4000, bad_madt);
    mem.add(0x5000, make_table("HPET", Bytes(20, 0)));
    Rsdp rsdp{};
    rsdp.rsdt = 0x1000;
    auto d = hv::acpi::load_directory(mem, rsdp);
    ASSERT_TRUE(d.ok()) << d.error().detail;
    EXPECT_EQ(d->count, 2u);
    EXPECT_EQ(d->rejected, 1u);
    EXPECT_EQ(d->first_reject.code, Errc::bad_checksum);
    EXPECT_EQ(d->first_reject.value, 0x10u);
    EXPECT_STREQ(d->first_reject_sig, "APIC");
    EXPECT_EQ(d->first_reject_phys, 0x4000u);
    EXPECT_NE(d->find("FACP"), nullptr);
    EXPECT_NE(d->find("HPET"), nullptr);
    EXPECT_EQ(d->find("APIC"), nullptr);
}

TEST(Directory, RejectsNullShortTruncatedAndUnreadableTables) {
    Bytes short_table = make_table("SHRT", {});
    put_u32(short_table, 4, 20);  // length below the 36-byte header
    fix_checksum(short_table, 36, 9);
    Bytes truncated = make_table("TRNC", Bytes(64, 0));
    truncated.resize(50);  // header says 100 bytes, reader has 50
    DumpReader mem;
    mem.add(0x1000, make_rsdt({0x3000, 0, 0x4000, 0x5000, 0xDEAD0000, 0x6000}));
    mem.add(0x3000, short_table);
    mem.add(0x4000, truncated);
    mem.add(0x5000, make_table("FACP", Bytes(8, 0)));
    mem.add(0x6000, make_table("HPET", Bytes(8, 0)));
    Rsdp rsdp{};
    rsdp.rsdt = 0x1000;
    auto d = hv::acpi::load_directory(mem, rsdp);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->count, 2u);
    EXPECT_EQ(d->rejected, 4u);
    EXPECT_EQ(d->first_reject.code, Errc::malformed);
    EXPECT_EQ(d->first_reject.value, 20u);
    EXPECT_STREQ(d->first_reject_sig, "SHRT");
    EXPECT_EQ(d->first_reject_phys, 0x3000u);

    // Each failure on its own, through check_table.
    auto null = hv::acpi::check_table(mem, 0);
    ASSERT_FALSE(null.ok());
    EXPECT_EQ(null.error().code, Errc::malformed);
    auto trunc = hv::acpi::check_table(mem, 0x4000);
    ASSERT_FALSE(trunc.ok());
    EXPECT_EQ(trunc.error().code, Errc::truncated);
    EXPECT_EQ(trunc.error().value, 100u);
    auto unreadable = hv::acpi::check_table(mem, 0xDEAD0000);
    ASSERT_FALSE(unreadable.ok());
    EXPECT_EQ(unreadable.error().code, Errc::unmapped);
    EXPECT_EQ(unreadable.error().value, 0xDEAD0000u);
}

TEST(Directory, UnreadableFirstRejectGetsPlaceholderSignature) {
    DumpReader mem;
    mem.add(0x1000, make_rsdt({0xDEAD0000}));
    Rsdp rsdp{};
    rsdp.rsdt = 0x1000;
    auto d = hv::acpi::load_directory(mem, rsdp);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->count, 0u);
    EXPECT_EQ(d->rejected, 1u);
    EXPECT_STREQ(d->first_reject_sig, "????");
    EXPECT_EQ(d->first_reject_phys, 0xDEAD0000u);
}

TEST(Directory, DuplicateEntriesLoadOnce) {
    DumpReader mem;
    mem.add(0x1000, make_rsdt({0x3000, 0x3000, 0x4000, 0x3000}));
    mem.add(0x3000, make_table("APIC", Bytes(8, 0)));
    mem.add(0x4000, make_table("SSDT", Bytes(8, 0)));
    Rsdp rsdp{};
    rsdp.rsdt = 0x1000;
    auto d = hv::acpi::load_directory(mem, rsdp);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->count, 2u);
    EXPECT_EQ(d->duplicates, 2u);
}

TEST(Directory, MoreTablesThanCapacityAreDropped) {
    DumpReader mem;
    std::vector<uint64_t> entries;
    for (uint64_t i = 0; i < hv::acpi::kMaxTables + 6; ++i) {
        uint64_t addr = 0x10000 + i * 0x100;
        mem.add(addr, make_table("SSDT", Bytes(8, static_cast<uint8_t>(i))));
        entries.push_back(addr);
    }
    mem.add(0x2000, make_xsdt(entries));
    Rsdp rsdp{};
    rsdp.revision = 2;
    rsdp.xsdt = 0x2000;
    auto d = hv::acpi::load_directory(mem, rsdp);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->count, hv::acpi::kMaxTables);
    EXPECT_EQ(d->dropped, 6u);
    EXPECT_EQ(d->tables[hv::acpi::kMaxTables - 1].phys, 0x10000u + (hv::acpi::kMaxTables - 1) * 0x100);
}

TEST(Directory, InvalidRootIsHardError) {
    Bytes rsdt = make_rsdt({0x3000});
    rsdt[20] ^= 1;
    DumpReader mem;
    mem.add(0x1000, rsdt);
    mem.add(0x2000, make_table("RSDT", Bytes(8, 0)));  // wrong signature for an XSDT
    mem.add(0x3000, make_table("FACP", Bytes(8, 0)));

    Rsdp bad_sum{};
    bad_sum.rsdt = 0x1000;
    auto r1 = hv::acpi::load_directory(mem, bad_sum);
    ASSERT_FALSE(r1.ok());
    EXPECT_EQ(r1.error().code, Errc::bad_checksum);
    EXPECT_STREQ(r1.error().detail, "RSDT checksum mismatch");

    Rsdp bad_sig{};
    bad_sig.revision = 2;
    bad_sig.xsdt = 0x2000;
    auto r2 = hv::acpi::load_directory(mem, bad_sig);
    ASSERT_FALSE(r2.ok());
    EXPECT_EQ(r2.error().code, Errc::bad_signature);
    EXPECT_STREQ(r2.error().detail, "XSDT signature is not 'XSDT'");

    Rsdp unreadable{};
    unreadable.revision = 2;
    unreadable.xsdt = 0xBAD000;
    auto r3 = hv::acpi::load_directory(mem, unreadable);
    ASSERT_FALSE(r3.ok());
    EXPECT_EQ(r3.error().code, Errc::unmapped);
    EXPECT_EQ(r3.error().value, 0xBAD000u);

    Rsdp none{};
    auto r4 = hv::acpi::load_directory(mem, none);
    ASSERT_FALSE(r4.ok());
    EXPECT_EQ(r4.error().code, Errc::not_found);
}

// ---------------------------------------------------------------- MADT

TEST(Madt, DecodesAllEntryTypes) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder()
                           .lapic(0, 0, 1)
                           .lapic(1, 2, 1)
                           .x2apic(300, 1, 7)
                           .ioapic(4, 0xFEC00000, 0)
                           .ioapic(5, 0xFEC01000, 24)
                           .iso(0, 0, 2, 0)
                           .iso(0, 9, 9, 0x000D)
                           .nmi(0xFF, 0x0005, 1)
                           .nmi(1, 0x000F, 0)
                           .x2nmi(0x0005, 7, 1)
                           .lapic_override(0x1'FEE0'0000ull)
                           .build(0xFEE00000, 1));
    auto m = parse_madt_ok(mem);
    EXPECT_EQ(m->lapic_address, 0x1'FEE0'0000ull);
    EXPECT_EQ(m->flags, 1u);
    EXPECT_TRUE(m->pcat_compat);

    ASSERT_EQ(m->cpu_count, 3u);
    EXPECT_EQ(m->cpus[0].apic_id, 0u);
    EXPECT_EQ(m->cpus[0].acpi_uid, 0u);
    EXPECT_TRUE(m->cpus[0].enabled);
    EXPECT_FALSE(m->cpus[0].x2apic_entry);
    EXPECT_EQ(m->cpus[1].apic_id, 2u);
    EXPECT_EQ(m->cpus[1].acpi_uid, 1u);
    EXPECT_EQ(m->cpus[2].apic_id, 300u);
    EXPECT_EQ(m->cpus[2].acpi_uid, 7u);
    EXPECT_TRUE(m->cpus[2].enabled);
    EXPECT_TRUE(m->cpus[2].x2apic_entry);
    EXPECT_EQ(m->usable_cpu_count(), 3u);

    ASSERT_EQ(m->ioapic_count, 2u);
    EXPECT_EQ(m->ioapics[0].id, 4);
    EXPECT_EQ(m->ioapics[0].address, 0xFEC00000u);
    EXPECT_EQ(m->ioapics[0].gsi_base, 0u);
    EXPECT_EQ(m->ioapics[1].id, 5);
    EXPECT_EQ(m->ioapics[1].address, 0xFEC01000u);
    EXPECT_EQ(m->ioapics[1].gsi_base, 24u);

    ASSERT_EQ(m->override_count, 2u);
    EXPECT_EQ(m->overrides[0].bus, 0);
    EXPECT_EQ(m->overrides[0].source_irq, 0);
    EXPECT_EQ(m->overrides[0].gsi, 2u);
    EXPECT_EQ(m->overrides[0].flags, 0);
    EXPECT_EQ(m->overrides[1].source_irq, 9);
    EXPECT_EQ(m->overrides[1].gsi, 9u);
    EXPECT_EQ(m->overrides[1].flags, 0x000D);

    ASSERT_EQ(m->nmi_count, 3u);
    EXPECT_EQ(m->nmis[0].acpi_uid, hv::acpi::kAllProcessors);  // 0xFF widened
    EXPECT_EQ(m->nmis[0].flags, 0x0005);
    EXPECT_EQ(m->nmis[0].lint, 1);
    EXPECT_EQ(m->nmis[1].acpi_uid, 1u);
    EXPECT_EQ(m->nmis[1].flags, 0x000F);
    EXPECT_EQ(m->nmis[1].lint, 0);
    EXPECT_EQ(m->nmis[2].acpi_uid, 7u);
    EXPECT_EQ(m->nmis[2].flags, 0x0005);
    EXPECT_EQ(m->nmis[2].lint, 1);

    EXPECT_EQ(m->skipped_entries, 0u);
    EXPECT_EQ(m->dropped_entries, 0u);
}

TEST(Madt, HeaderAddressWithoutOverrideAndNoPcat) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().lapic(0, 0, 1).build(0xFEE00000, 0));
    auto m = parse_madt_ok(mem);
    EXPECT_EQ(m->lapic_address, 0xFEE00000u);
    EXPECT_EQ(m->flags, 0u);
    EXPECT_FALSE(m->pcat_compat);
    EXPECT_EQ(m->cpu_count, 1u);
}

TEST(Madt, ParseMadtReturnsValue) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().lapic(3, 5, 1).build());
    TableRef ref{};
    ref.phys = kMadtAddr;
    ref.length = 0xFFFFFFFF;  // never trusted: the header is re-read
    auto r = hv::acpi::parse_madt(mem, ref);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    ASSERT_EQ(r->cpu_count, 1u);
    EXPECT_EQ(r->cpus[0].apic_id, 5u);
    EXPECT_EQ(r->cpus[0].acpi_uid, 3u);
}

TEST(Madt, DisabledAndOnlineCapableCpus) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder()
                           .lapic(0, 0, 0x1)        // enabled
                           .lapic(1, 1, 0x0)        // disabled, not online-capable
                           .lapic(2, 2, 0x2)        // online-capable
                           .x2apic(400, 0x2, 3)     // online-capable x2APIC
                           .lapic(4, 4, 0x3)        // enabled; bit 1 reserved then
                           .build(0xFEE00000, 1, 5));
    auto m = parse_madt_ok(mem);
    ASSERT_EQ(m->cpu_count, 5u);
    EXPECT_TRUE(m->cpus[0].enabled);
    EXPECT_FALSE(m->cpus[0].online_capable);
    EXPECT_FALSE(m->cpus[1].enabled);
    EXPECT_FALSE(m->cpus[1].online_capable);
    EXPECT_FALSE(m->cpus[2].enabled);
    EXPECT_TRUE(m->cpus[2].online_capable);
    EXPECT_FALSE(m->cpus[3].enabled);
    EXPECT_TRUE(m->cpus[3].online_capable);
    EXPECT_EQ(m->cpus[3].apic_id, 400u);
    EXPECT_TRUE(m->cpus[4].enabled);
    EXPECT_FALSE(m->cpus[4].online_capable);
    EXPECT_EQ(m->usable_cpu_count(), 4u);
}

TEST(Madt, OnlineCapableBitIgnoredBeforeRevision5) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().lapic(0, 0, 0x1).lapic(1, 1, 0x2).build(0xFEE00000, 1, 4));
    auto m = parse_madt_ok(mem);
    ASSERT_EQ(m->cpu_count, 2u);
    EXPECT_FALSE(m->cpus[1].enabled);
    EXPECT_FALSE(m->cpus[1].online_capable);
    EXPECT_EQ(m->usable_cpu_count(), 1u);
}

TEST(Madt, ZeroLengthEntryFailsInsteadOfLooping) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().lapic(0, 0, 1).raw(0, 0, 8).build());
    auto e = parse_madt_err(mem);
    EXPECT_EQ(e.code, Errc::malformed);
    EXPECT_EQ(e.value, 44u + 8u);  // offset of the bad entry
    EXPECT_STREQ(e.detail, "MADT entry length below 2");

    DumpReader mem1;
    mem1.add(kMadtAddr, MadtBuilder().raw(0x7F, 1, 4).build());
    auto e1 = parse_madt_err(mem1);
    EXPECT_EQ(e1.code, Errc::malformed);
    EXPECT_EQ(e1.value, 44u);
}

TEST(Madt, EntryPastTableEnd) {
    DumpReader mem;
    // An x2APIC entry claiming 16 bytes with only 8 left in the table.
    mem.add(kMadtAddr, MadtBuilder().lapic(0, 0, 1).raw(9, 16, 8).build());
    auto e = parse_madt_err(mem);
    EXPECT_EQ(e.code, Errc::truncated);
    EXPECT_EQ(e.value, 52u);
    EXPECT_STREQ(e.detail, "MADT entry extends past table end");
}

TEST(Madt, SingleTrailingByteIsTruncated) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().lapic(0, 0, 1).raw(0, 0, 1).build());
    auto e = parse_madt_err(mem);
    EXPECT_EQ(e.code, Errc::truncated);
    EXPECT_EQ(e.value, 52u);
}

TEST(Madt, KnownEntryShorterThanSpecIsMalformed) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().raw(0, 6, 6).build());  // Local APIC needs 8
    auto e = parse_madt_err(mem);
    EXPECT_EQ(e.code, Errc::malformed);
    EXPECT_EQ(e.value, 44u);
    EXPECT_STREQ(e.detail, "MADT Processor Local APIC entry shorter than 8 bytes");

    DumpReader mem2;
    mem2.add(kMadtAddr, MadtBuilder().lapic(0, 0, 1).raw(9, 12, 12).build());  // x2APIC needs 16
    auto e2 = parse_madt_err(mem2);
    EXPECT_EQ(e2.code, Errc::malformed);
    EXPECT_EQ(e2.value, 52u);
}

TEST(Madt, LongerKnownEntryIsAcceptedAndStepsByItsLength) {
    DumpReader mem;
    MadtBuilder b;
    b.lapic(0, 7, 1);
    b.entries[1] = 12;  // a future revision appended 4 bytes
    b.entries.resize(b.entries.size() + 4, 0xEE);
    b.ioapic(1, 0xFEC00000, 0);
    mem.add(kMadtAddr, b.build());
    auto m = parse_madt_ok(mem);
    ASSERT_EQ(m->cpu_count, 1u);
    EXPECT_EQ(m->cpus[0].apic_id, 7u);
    ASSERT_EQ(m->ioapic_count, 1u);
    EXPECT_EQ(m->ioapics[0].address, 0xFEC00000u);
}

TEST(Madt, DuplicateApicIdIsMalformed) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().lapic(0, 3, 1).lapic(1, 4, 1).lapic(2, 3, 1).build());
    auto e = parse_madt_err(mem);
    EXPECT_EQ(e.code, Errc::malformed);
    EXPECT_EQ(e.value, 3u);

    // The same processor listed as both Local APIC and x2APIC.
    DumpReader mem2;
    mem2.add(kMadtAddr, MadtBuilder().lapic(0, 5, 1).x2apic(5, 1, 9).build());
    auto e2 = parse_madt_err(mem2);
    EXPECT_EQ(e2.code, Errc::malformed);
    EXPECT_EQ(e2.value, 5u);

    // An online-capable entry may not reuse an enabled processor's ID either.
    DumpReader mem3;
    mem3.add(kMadtAddr, MadtBuilder().lapic(0, 6, 1).lapic(1, 6, 2).build());
    auto e3 = parse_madt_err(mem3);
    EXPECT_EQ(e3.code, Errc::malformed);
    EXPECT_EQ(e3.value, 6u);
}

TEST(Madt, UnusablePlaceholdersMayShareAnId) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().lapic(0, 0, 1).lapic(1, 0xFF, 0).lapic(2, 0xFF, 0).build());
    auto m = parse_madt_ok(mem);
    EXPECT_EQ(m->cpu_count, 3u);
    EXPECT_EQ(m->usable_cpu_count(), 1u);
    EXPECT_EQ(m->cpus[2].apic_id, 0xFFu);
}

TEST(Madt, MoreEntriesThanCapacityAreDroppedNotOverflowed) {
    MadtBuilder b;
    const uint32_t cpus = hv::acpi::kMaxCpus + 44;
    for (uint32_t i = 0; i < cpus; ++i) b.x2apic(i, 1, i);
    for (uint32_t i = 0; i < hv::acpi::kMaxIoApics + 2; ++i) b.ioapic(static_cast<uint8_t>(i), 0xFEC00000 + i * 0x1000, i * 24);
    for (uint32_t i = 0; i < hv::acpi::kMaxOverrides + 1; ++i) b.iso(0, static_cast<uint8_t>(i), i, 0);
    for (uint32_t i = 0; i < hv::acpi::kMaxNmis + 3; ++i) b.x2nmi(5, i, 1);
    DumpReader mem;
    mem.add(kMadtAddr, b.build());
    auto m = parse_madt_ok(mem);
    EXPECT_EQ(m->cpu_count, hv::acpi::kMaxCpus);
    EXPECT_EQ(m->cpus[hv::acpi::kMaxCpus - 1].apic_id, hv::acpi::kMaxCpus - 1);
    EXPECT_EQ(m->ioapic_count, hv::acpi::kMaxIoApics);
    EXPECT_EQ(m->override_count, hv::acpi::kMaxOverrides);
    EXPECT_EQ(m->nmi_count, hv::acpi::kMaxNmis);
    EXPECT_EQ(m->dropped_entries, 44u + 2u + 1u + 3u);
    EXPECT_EQ(m->usable_cpu_count(), hv::acpi::kMaxCpus);
}

TEST(Madt, UnknownEntryTypesAreSkipped) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder()
                           .raw(3, 8, 8)      // NMI Source: known to the spec, not decoded here
                           .lapic(0, 1, 1)
                           .raw(0x11, 2, 2)   // minimal 2-byte entry
                           .raw(0x80, 40, 40) // OEM-reserved type
                           .lapic(1, 2, 1)
                           .build());
    auto m = parse_madt_ok(mem);
    EXPECT_EQ(m->skipped_entries, 3u);
    ASSERT_EQ(m->cpu_count, 2u);
    EXPECT_EQ(m->cpus[0].apic_id, 1u);
    EXPECT_EQ(m->cpus[1].apic_id, 2u);
}

TEST(Madt, VerifiesChecksumItself) {
    Bytes t = MadtBuilder().lapic(0, 0, 1).build();
    t[44 + 3] = 9;  // APIC ID changed after checksumming: 0 -> 9
    DumpReader mem;
    mem.add(kMadtAddr, t);
    auto e = parse_madt_err(mem);
    EXPECT_EQ(e.code, Errc::bad_checksum);
    EXPECT_EQ(e.value, 9u);
    EXPECT_STREQ(e.detail, "MADT checksum mismatch");
}

TEST(Madt, RejectsWrongSignatureShortTableAndBadAddress) {
    DumpReader mem;
    mem.add(kMadtAddr, make_table("FACP", Bytes(8, 0)));
    auto e = parse_madt_err(mem);
    EXPECT_EQ(e.code, Errc::bad_signature);

    DumpReader mem2;
    mem2.add(kMadtAddr, make_table("APIC", Bytes(4, 0)));  // 40 bytes: no Flags field
    auto e2 = parse_madt_err(mem2);
    EXPECT_EQ(e2.code, Errc::truncated);
    EXPECT_EQ(e2.value, 40u);

    auto e3 = parse_madt_err(mem2, 0);
    EXPECT_EQ(e3.code, Errc::malformed);
    EXPECT_STREQ(e3.detail, "MADT address is null");

    auto e4 = parse_madt_err(mem2, 0x1234000);
    EXPECT_EQ(e4.code, Errc::unmapped);
    EXPECT_EQ(e4.value, 0x1234000u);
}

TEST(Madt, EmptyEntryListIsValid) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().build(0xFEE00000, 0));
    auto m = parse_madt_ok(mem);
    EXPECT_EQ(m->cpu_count, 0u);
    EXPECT_EQ(m->usable_cpu_count(), 0u);
    EXPECT_EQ(m->lapic_address, 0xFEE00000u);
}

TEST(Madt, SecondAddressOverrideIsMalformed) {
    DumpReader mem;
    mem.add(kMadtAddr, MadtBuilder().lapic_override(0x1000).lapic_override(0x2000).build());
    auto e = parse_madt_err(mem);
    EXPECT_EQ(e.code, Errc::malformed);
    EXPECT_EQ(e.value, 56u);
}

// RSDP found by the BIOS scan -> XSDT -> MADT, as the boot path uses it.
TEST(Acpi, EndToEndFromBiosScanToMadt) {
    DumpReader mem = make_bios_image(0x9FC0);
    mem.add(0xF5A40, make_rsdp(2, 0x7FE0000, 0x7FE0100));
    mem.add(0x7FE0000, make_rsdt({0x7FE0300}));
    mem.add(0x7FE0100, make_xsdt({0x7FE0200, kMadtAddr}));
    mem.add(0x7FE0200, make_table("FACP", Bytes(80, 0), 6));
    mem.add(kMadtAddr, MadtBuilder().lapic(0, 0, 1).lapic(1, 1, 1).ioapic(0, 0xFEC00000, 0).build());

    auto where = hv::acpi::find_rsdp_bios(mem);
    ASSERT_TRUE(where.ok());
    auto rsdp = hv::acpi::parse_rsdp(mem, where.value());
    ASSERT_TRUE(rsdp.ok());
    auto dir = hv::acpi::load_directory(mem, rsdp.value());
    ASSERT_TRUE(dir.ok()) << dir.error().detail;
    EXPECT_TRUE(dir->used_xsdt);
    EXPECT_EQ(dir->count, 2u);
    const TableRef* apic = dir->find("APIC");
    ASSERT_NE(apic, nullptr);
    EXPECT_EQ(apic->length, 44u + 8u + 8u + 12u);
    EXPECT_EQ(apic->revision, 5);
    auto madt = std::make_unique<Madt>();
    ASSERT_TRUE(hv::acpi::parse_madt_into(mem, *apic, *madt).ok());
    EXPECT_EQ(madt->usable_cpu_count(), 2u);
    EXPECT_EQ(madt->ioapic_count, 1u);
}
