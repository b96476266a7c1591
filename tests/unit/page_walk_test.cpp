// Guest page walks over page tables built in a fake guest memory: every paging
// mode and page size, faults with their #PF error codes, and tables outside RAM.
#include <gtest/gtest.h>
#include <string.h>

#include <map>
#include <vector>

#include "kernel/x86/page_walk.hpp"

using hv::Errc;
using hv::x86::Access;
using hv::x86::AccessType;
using hv::x86::PagingState;
using hv::x86::Translation;
using hv::x86::WalkFault;
using namespace hv::x86;

namespace {

// Sparse guest RAM: only the 4 KiB pages something was written to exist, so a
// table pointer anywhere else is "outside RAM".
class FakeRam final : public GuestPhysReader {
  public:
    void set64(uint64_t gpa, uint64_t v) { page(gpa)[(gpa & 0xFFF) / 8] = v; }
    void set32(uint64_t gpa, uint32_t v) {
        uint64_t& q = page(gpa)[(gpa & 0xFFF) / 8];
        if (gpa & 4) {
            q = (q & 0xFFFFFFFFull) | (static_cast<uint64_t>(v) << 32);
        } else {
            q = (q & ~0xFFFFFFFFull) | v;
        }
    }
    bool read_u64(uint64_t gpa, uint64_t& v) const override {
        ++reads;
        EXPECT_EQ(gpa & 7, 0u) << "unaligned entry read";
        auto it = pages_.find(gpa & ~0xFFFull);
        if (it == pages_.end()) return false;
        v = it->second[(gpa & 0xFFF) / 8];
        return true;
    }
    mutable int reads = 0;

  private:
    std::vector<uint64_t>& page(uint64_t gpa) {
        auto& p = pages_[gpa & ~0xFFFull];
        if (p.empty()) p.assign(512, 0);
        return p;
    }
    std::map<uint64_t, std::vector<uint64_t>> pages_;
};

constexpr uint64_t P = 1, RW = 2, US = 4, PS = 1ull << 7, PAT4K = 1ull << 7, PATL = 1ull << 12, XD = 1ull << 63;

constexpr Access kRead{AccessType::read, false};
constexpr Access kWrite{AccessType::write, false};
constexpr Access kFetch{AccessType::fetch, false};
constexpr Access kUserRead{AccessType::read, true};
constexpr Access kUserWrite{AccessType::write, true};

unsigned idx(uint64_t linear, int level) {
    return (linear >> (12 + 9 * (level - 1))) & 0x1FF;
}

// 4-level tables for `linear`: PML4 at 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000;
// `leaf_level` 1, 2 or 3 puts the leaf (with PS above level 1) there.
struct FourLevel {
    FakeRam ram;
    PagingState s;
    uint64_t linear;
    FourLevel(uint64_t lin, int leaf_level, uint64_t leaf, uint64_t table_flags = P | RW | US) : linear(lin) {
        s.cr0 = kCr0PE | kCr0PG | kCr0WP;
        s.cr4 = kCr4PAE;
        s.efer = kEferLME | kEferLMA | kEferNXE;
        s.cr3 = 0x1000;
        const uint64_t tables[] = {0x1000, 0x2000, 0x3000, 0x4000};
        for (int level = 4, t = 0; level >= 1; --level, ++t) {
            const uint64_t at = tables[t] + idx(lin, level) * 8;
            if (level == leaf_level) {
                ram.set64(at, leaf);
                break;
            }
            ram.set64(at, tables[t + 1] | table_flags);
        }
    }
    hv::Result<Translation> walk(Access a) { return translate(s, ram, linear, a); }
};

void expect_ok(const hv::Result<Translation>& r, uint64_t gpa, uint64_t page_size) {
    ASSERT_TRUE(r.ok()) << r.error().detail;
    ASSERT_TRUE(r->ok()) << "fault " << int(r->fault) << " level " << int(r->level);
    EXPECT_EQ(r->gpa, gpa) << std::hex << r->gpa;
    EXPECT_EQ(r->page_size, page_size);
    EXPECT_EQ(r->bytes_to_page_end, page_size - (gpa & (page_size - 1)));
}

void expect_fault(const hv::Result<Translation>& r, WalkFault kind, unsigned level, uint32_t code) {
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->fault, kind);
    EXPECT_EQ(r->level, level);
    EXPECT_EQ(r->pf_error_code, code) << std::hex << r->pf_error_code;
}

}  // namespace

// ---- 4-level paging (SDM Vol. 3A §4.5) ---------------------------------------

TEST(PageWalk, FourLevel4KiB) {
    FourLevel t(0x00007F1234567ABCull, 1, 0x12345000 | P | RW | US);
    expect_ok(t.walk(kRead), 0x12345ABC, 0x1000);
    auto r = t.walk(kWrite);
    ASSERT_TRUE(r.ok() && r->ok());
    EXPECT_TRUE(r->writable);
    EXPECT_TRUE(r->user);
    EXPECT_TRUE(r->executable);
    EXPECT_EQ(r->bytes_to_page_end, 0x544u);
    EXPECT_EQ(t.ram.reads, 8);  // two walks of four entries
}

TEST(PageWalk, FourLevelPatBitOfA4KiBPteIsNotAnAddressBit) {
    FourLevel t(0x5000, 1, 0x12345000 | P | PAT4K);
    expect_ok(t.walk(kRead), 0x12345000, 0x1000);
}

TEST(PageWalk, FourLevel2MiBAnd1GiB) {
    FourLevel two(0x00007F1234567ABCull, 2, 0x40000000 | P | RW | PS | PATL);  // PAT bit 12 is not address
    expect_ok(two.walk(kRead), 0x40000000 + (0x00007F1234567ABCull & 0x1FFFFF), 1ull << 21);
    FourLevel one(0xFFFF800012345678ull, 3, 0x1C0000000ull | P | RW | PS);
    expect_ok(one.walk(kWrite), 0x1C0000000ull + 0x12345678, 1ull << 30);
}

TEST(PageWalk, FourLevelReservedBits) {
    // Bits between the PAT bit and the address of a large page.
    FourLevel two(0x200000, 2, 0x40000000 | P | PS | (1ull << 13));
    expect_fault(two.walk(kRead), WalkFault::reserved_bit, 2, kPfPresent | kPfReserved);
    FourLevel one(0x40000000, 3, 0x40000000 | P | PS | (1ull << 29));
    expect_fault(one.walk(kWrite), WalkFault::reserved_bit, 3, kPfPresent | kPfReserved | kPfWrite);
    // Address bits above MAXPHYADDR.
    FourLevel high(0x1000, 1, (1ull << 46) | 0x5000 | P);
    high.s.maxphyaddr = 46;
    expect_fault(high.walk(kRead), WalkFault::reserved_bit, 1, kPfPresent | kPfReserved);
    high.s.maxphyaddr = 47;
    expect_ok(high.walk(kRead), (1ull << 46) | 0x5000, 0x1000);
    // XD is reserved without EFER.NXE.
    FourLevel xd(0x1000, 1, 0x5000 | P | XD);
    xd.s.efer &= ~kEferNXE;
    expect_fault(xd.walk(kRead), WalkFault::reserved_bit, 1, kPfPresent | kPfReserved);
    // PS is reserved in a PML4E.
    FourLevel pml4(0x1000, 1, 0x5000 | P);
    pml4.ram.set64(0x1000, 0x2000 | P | PS);
    expect_fault(pml4.walk(kRead), WalkFault::reserved_bit, 4, kPfPresent | kPfReserved);
}

TEST(PageWalk, FourLevelNotPresentAtEachLevel) {
    for (unsigned level = 1; level <= 4; ++level) {
        FourLevel t(0x00007F1234567ABCull, 1, 0x12345000 | P | RW);
        const uint64_t tables[] = {0, 0x4000, 0x3000, 0x2000, 0x1000};
        t.ram.set64(tables[level] + idx(t.linear, level) * 8, 0x12345000 | RW);  // P = 0, rest ignored
        expect_fault(t.walk(kRead), WalkFault::not_present, level, 0);
        expect_fault(t.walk(kWrite), WalkFault::not_present, level, kPfWrite);
        expect_fault(t.walk(kUserRead), WalkFault::not_present, level, kPfUser);
        expect_fault(t.walk(kFetch), WalkFault::not_present, level, kPfFetch);
    }
}

TEST(PageWalk, FourLevelAccessRights) {
    // Read-only at the PD level: supervisor writes fault with CR0.WP only.
    FourLevel ro(0x1000, 1, 0x5000 | P | RW | US, P | US);
    ro.ram.set64(0x1000, 0x2000 | P | RW | US);  // the PML4E stays writable
    expect_fault(ro.walk(kWrite), WalkFault::protection, 1, kPfPresent | kPfWrite);
    expect_fault(ro.walk(kUserWrite), WalkFault::protection, 1, kPfPresent | kPfWrite | kPfUser);
    ro.s.cr0 &= ~kCr0WP;
    auto r = ro.walk(kWrite);
    ASSERT_TRUE(r.ok() && r->ok());
    EXPECT_FALSE(r->writable);
    expect_fault(ro.walk(kUserWrite), WalkFault::protection, 1, kPfPresent | kPfWrite | kPfUser);
    // Supervisor page: user accesses fault, supervisor ones do not.
    FourLevel sup(0x1000, 1, 0x5000 | P | RW);
    expect_fault(sup.walk(kUserRead), WalkFault::protection, 1, kPfPresent | kPfUser);
    auto s = sup.walk(kRead);
    ASSERT_TRUE(s.ok() && s->ok());
    EXPECT_FALSE(s->user);
    // XD anywhere forbids fetches when NXE is on.
    FourLevel nx(0x1000, 1, 0x5000 | P | RW);
    nx.ram.set64(0x2000 + idx(0x1000, 3) * 8, 0x3000 | P | RW | US | XD);
    expect_fault(nx.walk(kFetch), WalkFault::protection, 1, kPfPresent | kPfFetch);
    auto nr = nx.walk(kRead);
    ASSERT_TRUE(nr.ok() && nr->ok());
    EXPECT_FALSE(nr->executable);
    // SMEP: a supervisor fetch from a user page.
    FourLevel smep(0x1000, 1, 0x5000 | P | US);
    smep.s.cr4 |= kCr4SMEP;
    expect_fault(smep.walk(kFetch), WalkFault::protection, 1, kPfPresent | kPfFetch);
    expect_ok(smep.walk(Access{AccessType::fetch, true}), 0x5000, 0x1000);
    smep.s.cr4 &= ~kCr4SMEP;
    expect_ok(smep.walk(kFetch), 0x5000, 0x1000);
}

TEST(PageWalk, FourLevelNonCanonicalIsNotAPageFault) {
    FourLevel t(0x0000800000000000ull, 1, 0x5000 | P);
    auto r = t.walk(kRead);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->fault, WalkFault::non_canonical);
    EXPECT_EQ(t.ram.reads, 0);
}

TEST(PageWalk, TableOutsideRamIsAnErrorNamingItsAddress) {
    FourLevel t(0x00007F1234567ABCull, 1, 0x5000 | P);
    t.ram.set64(0x2000 + idx(t.linear, 3) * 8, 0x7777000 | P | RW);  // PD page never written
    auto r = t.walk(kRead);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unmapped);
    EXPECT_EQ(r.error().value, 0x7777000u + idx(t.linear, 2) * 8);
    PagingState s = t.s;
    s.cr3 = 0xABC000;
    auto c = translate(s, t.ram, t.linear, kRead);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().value, 0xABC000u + idx(t.linear, 4) * 8);
}

// A PML4 entry pointing at the PML4 itself (the recursive-mapping trick): the
// walk is bounded by the level count, and maps the table page.
TEST(PageWalk, SelfReferencingTablesEndAfterFourLevels) {
    FakeRam ram;
    ram.set64(0x1000 + 510 * 8, 0x1000 | P | RW);
    PagingState s;
    s.cr0 = kCr0PE | kCr0PG;
    s.cr4 = kCr4PAE;
    s.efer = kEferLMA;
    s.cr3 = 0x1000;
    const uint64_t linear =
        0xFFFF000000000000ull | (510ull << 39) | (510ull << 30) | (510ull << 21) | (510ull << 12) | 8;
    expect_ok(translate(s, ram, linear, kRead), 0x1008, 0x1000);
    EXPECT_EQ(ram.reads, 4);
}

TEST(PageWalk, FiveLevelPagingIsReportedUnsupported) {
    FourLevel t(0x1000, 1, 0x5000 | P);
    t.s.cr4 |= kCr4LA57;
    auto r = t.walk(kRead);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unsupported);
    t.s.cr4 &= ~kCr4LA57;
    t.s.maxphyaddr = 60;
    EXPECT_EQ(t.walk(kRead).error().code, Errc::invalid_argument);
}

// ---- PAE paging (SDM Vol. 3A §4.4) -------------------------------------------

namespace {
struct Pae {
    FakeRam ram;
    PagingState s;
    Pae() {
        s.cr0 = kCr0PE | kCr0PG | kCr0WP;
        s.cr4 = kCr4PAE;
        s.efer = kEferNXE;
        s.cr3 = 0x1020;  // 32-byte aligned PDPT inside a page
    }
};
}  // namespace

TEST(PageWalk, Pae4KiBAnd2MiB) {
    Pae t;
    const uint64_t lin = 0xC0345678;  // PDPTE 3, PDE 1, PTE 0x145
    t.ram.set64(0x1020 + 3 * 8, 0x2000 | P);
    t.ram.set64(0x2000 + 1 * 8, 0x3000 | P | RW);
    t.ram.set64(0x3000 + 0x145 * 8, 0x0000000912345000ull | P | RW);  // above 4 GiB
    expect_ok(translate(t.s, t.ram, lin, kWrite), 0x912345678ull, 0x1000);

    t.ram.set64(0x2000 + 1 * 8, 0x7FE00000 | P | RW | PS | PATL);
    expect_ok(translate(t.s, t.ram, lin, kRead), 0x7FE00000 + (lin & 0x1FFFFF), 1ull << 21);
    t.ram.set64(0x2000 + 1 * 8, 0x7FE00000 | P | PS | (1ull << 20));
    expect_fault(translate(t.s, t.ram, lin, kRead), WalkFault::reserved_bit, 2, kPfPresent | kPfReserved);
}

TEST(PageWalk, PaePdptesComeFromTheVmcsWithEpt) {
    Pae t;
    t.s.use_pdptes = true;
    t.s.pdpte[0] = 0x2000 | P;
    t.s.cr3 = 0x99000;  // nothing there: must not be read
    t.ram.set64(0x2000, 0x3000 | P | RW);
    t.ram.set64(0x3000 + 5 * 8, 0x8000 | P);
    expect_ok(translate(t.s, t.ram, 0x5123, kRead), 0x8123, 0x1000);
    t.s.pdpte[0] = 0x2000;  // not present
    expect_fault(translate(t.s, t.ram, 0x5123, kRead), WalkFault::not_present, 3, 0);
    t.s.pdpte[0] = 0x2000 | P | RW;  // bit 1 is reserved in a PAE PDPTE
    expect_fault(translate(t.s, t.ram, 0x5123, kRead), WalkFault::reserved_bit, 3, kPfPresent | kPfReserved);
}

TEST(PageWalk, PaeExecuteDisableAndReservedBits) {
    Pae t;
    t.ram.set64(0x1020, 0x2000 | P);
    t.ram.set64(0x2000, 0x3000 | P | RW);
    t.ram.set64(0x3000 + 1 * 8, 0x8000 | P | XD);
    expect_fault(translate(t.s, t.ram, 0x1000, kFetch), WalkFault::protection, 1, kPfPresent | kPfFetch);
    expect_ok(translate(t.s, t.ram, 0x1000, kRead), 0x8000, 0x1000);
    t.s.efer = 0;  // XD reserved, and the I/D bit is not reported without NXE
    expect_fault(translate(t.s, t.ram, 0x1000, kFetch), WalkFault::reserved_bit, 1, kPfPresent | kPfReserved);
    t.ram.set64(0x3000 + 1 * 8, (1ull << 52) | 0x8000 | P);  // bits 62:MAXPHYADDR reserved in PAE
    expect_fault(translate(t.s, t.ram, 0x1000, kRead), WalkFault::reserved_bit, 1, kPfPresent | kPfReserved);
    auto r = translate(t.s, t.ram, 0x100000000ull, kRead);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

// ---- 32-bit paging (SDM Vol. 3A §4.3) ----------------------------------------

namespace {
struct Bits32 {
    FakeRam ram;
    PagingState s;
    Bits32() {
        s.cr0 = kCr0PE | kCr0PG | kCr0WP;
        s.cr3 = 0x1000;
        s.maxphyaddr = 40;
    }
};
}  // namespace

TEST(PageWalk, Bits32FourKiBWithFourByteEntries) {
    Bits32 t;
    const uint64_t lin = 0x00C03ABC;  // PDE 3 (upper half of a qword), PTE 3
    t.ram.set32(0x1000 + 3 * 4, 0x2000 | P | RW | US);
    t.ram.set32(0x1000 + 2 * 4, 0xDEAD0000 | P);  // the neighbour in the same qword
    t.ram.set32(0x2000 + 3 * 4, 0x00ABC000 | P | RW | US);
    t.ram.set32(0x2000 + 2 * 4, 0xFFFFF000 | P);
    expect_ok(translate(t.s, t.ram, lin, kWrite), 0x00ABCABC, 0x1000);
    t.ram.set32(0x2000 + 3 * 4, 0x00ABC000 | RW);
    expect_fault(translate(t.s, t.ram, lin, kWrite), WalkFault::not_present, 1, kPfWrite);
    t.ram.set32(0x2000 + 3 * 4, 0x00ABC000 | P | US);
    expect_fault(translate(t.s, t.ram, lin, kUserWrite), WalkFault::protection, 1, kPfPresent | kPfWrite | kPfUser);
}

TEST(PageWalk, Bits32FourMiBPagesNeedPse) {
    Bits32 t;
    const uint64_t lin = 0x80512345;  // PDE 0x201
    t.ram.set32(0x1000 + 0x201 * 4, 0x7FC00000 | P | RW | PS);
    t.s.cr4 = kCr4PSE;
    expect_ok(translate(t.s, t.ram, lin, kRead), 0x7FC00000 + (lin & 0x3FFFFF), 1ull << 22);
    // PSE-36: PDE bits 20:13 are physical-address bits 39:32.
    t.ram.set32(0x1000 + 0x201 * 4, 0x7FC00000 | (0x81u << 13) | P | PS);
    expect_ok(translate(t.s, t.ram, lin, kRead), 0x817FC00000ull + (lin & 0x3FFFFF), 1ull << 22);
    t.s.maxphyaddr = 36;  // bits 20:17 are now reserved
    expect_fault(translate(t.s, t.ram, lin, kRead), WalkFault::reserved_bit, 2, kPfPresent | kPfReserved);
    t.ram.set32(0x1000 + 0x201 * 4, 0x7FC00000 | (1u << 21) | P | PS);  // bit 21 always reserved
    t.s.maxphyaddr = 40;
    expect_fault(translate(t.s, t.ram, lin, kRead), WalkFault::reserved_bit, 2, kPfPresent | kPfReserved);
    // Without CR4.PSE the PS bit is ignored: the PDE points to a page table.
    t.ram.set32(0x1000 + 0x201 * 4, 0x3000 | P | PS);
    t.ram.set32(0x3000 + 0x112 * 4, 0x9000 | P);
    t.s.cr4 = 0;
    expect_ok(translate(t.s, t.ram, lin, kRead), 0x9345, 0x1000);
}

TEST(PageWalk, Bits32HasNoExecuteDisable) {
    Bits32 t;
    t.s.efer = kEferNXE;  // has no effect on 32-bit paging
    t.ram.set32(0x1000, 0x2000 | P | RW);
    t.ram.set32(0x2000, 0x80005000u | P);  // bit 31 is an address bit here
    expect_ok(translate(t.s, t.ram, 0x10, kFetch), 0x80005010, 0x1000);
    t.ram.set32(0x2000, 0x5000);
    expect_fault(translate(t.s, t.ram, 0x10, kFetch), WalkFault::not_present, 1, 0);  // no I/D bit
    t.s.cr4 = kCr4SMEP;
    expect_fault(translate(t.s, t.ram, 0x10, kFetch), WalkFault::not_present, 1, kPfFetch);
}

// ---- paging off, and GuestMemory --------------------------------------------

TEST(PageWalk, PagingOffIsIdentity) {
    FakeRam ram;
    PagingState s;
    s.cr0 = kCr0PE;
    expect_ok(translate(s, ram, 0xFEE00FF0, kWrite), 0xFEE00FF0, 0x1000);
    auto r = translate(s, ram, 0xFEE00FF0, kWrite);
    EXPECT_EQ(r->bytes_to_page_end, 0x10u);
    EXPECT_EQ(ram.reads, 0);
    auto big = translate(s, ram, 0x100000000ull, kRead);
    ASSERT_FALSE(big.ok());
    EXPECT_EQ(big.error().code, Errc::invalid_argument);
}

TEST(PageWalk, GuestMemoryReaderStopsAtTheEndOfRam) {
    std::vector<uint8_t> ram(0x6000, 0);
    auto put = [&](uint64_t gpa, uint64_t v) { memcpy(&ram[gpa], &v, 8); };
    put(0x1000, 0x2000 | P | RW);
    put(0x2000, 0x3000 | P | RW);
    put(0x3000, 0x4000 | P | RW);
    put(0x4000 + 8, 0x5000 | P | RW);
    hv::guest::GuestMemory mem(ram.data(), ram.size());
    GuestMemoryReader reader(mem);
    PagingState s;
    s.cr0 = kCr0PE | kCr0PG;
    s.cr4 = kCr4PAE;
    s.efer = kEferLMA;
    s.cr3 = 0x1000;
    expect_ok(translate(s, reader, 0x1234, kRead), 0x5234, 0x1000);
    put(0x4000 + 16, 0x6000 | P);  // the leaf may point past RAM: that is the caller's fetch
    expect_ok(translate(s, reader, 0x2000, kRead), 0x6000, 0x1000);
    put(0x3000, 0x5000 | P | 0x38 | (0x7ull << 9));  // PWT, PCD, A and the ignored bits 11:9
    put(0x5008, 0x7000 | P);
    expect_ok(translate(s, reader, 0x1000, kRead), 0x7000, 0x1000);
    put(0x3000, 0x6000 | P);  // a page table beyond RAM
    auto r = translate(s, reader, 0x1000, kRead);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::unmapped);
    EXPECT_EQ(r.error().value, 0x6008u);
}
