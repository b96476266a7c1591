#include "kernel/x86/page_walk.hpp"

#include "kernel/lib/bytes.hpp"
#include "kernel/mm/page_table.hpp"

namespace hv::x86 {

bool GuestMemoryReader::read_u64(uint64_t gpa, uint64_t& value) const {
    const uint8_t* p = ram_.at(gpa, 8);
    if (p == nullptr) return false;
    value = load_u64(p);
    return true;
}

namespace {

// Entry bits: P, R/W, U/S and PS sit at the same place in 32-bit, PAE and 4-level
// entries (SDM Vol. 3A Tables 4-4 to 4-20), XD (PAE and 4-level) too; the kernel's
// own 4-level format defines them once.
using F = mm::X86Format;
constexpr uint64_t kP = F::kPresent;
constexpr uint64_t kRW = F::kWritable;
constexpr uint64_t kUS = F::kUser;
constexpr uint64_t kPS = F::kLargePage;
constexpr uint64_t kXD = F::kNoExecute;
constexpr uint64_t k4K = mm::page_bytes(mm::PageSize::size_4k);

// Bits hi..lo inclusive; empty when hi < lo.
constexpr uint64_t bit_range(unsigned hi, unsigned lo) {
    if (hi < lo) return 0;
    const uint64_t upto_hi = hi >= 63 ? ~0ull : (1ull << (hi + 1)) - 1;
    return upto_hi & ~((1ull << lo) - 1);
}
static_assert(bit_range(20, 13) == 0x1FE000);
static_assert(bit_range(12, 13) == 0);
static_assert(bit_range(63, 52) == 0xFFF0000000000000);

class Walker {
  public:
    Walker(const PagingState& s, const GuestPhysReader& mem, uint64_t linear, Access access)
        : s_(s), mem_(mem), linear_(linear), access_(access), nxe_((s.efer & kEferNXE) != 0) {}

    // Paging off: identity, reported in 4 KiB units so that a fetch stops where
    // guest RAM and MMIO can change.
    Result<Translation> none() { return finish(linear_ & ~(k4K - 1), k4K, 0, false); }
    Result<Translation> bits32();
    Result<Translation> pae();
    Result<Translation> level4();

  private:
    // The entry at `gpa` (8-byte aligned); the walk cannot go on without it.
    Result<uint64_t> read(uint64_t gpa) const {
        uint64_t v = 0;
        if (!mem_.read_u64(gpa, v)) return make_error(Errc::unmapped, "page table outside guest RAM", gpa);
        return v;
    }

    // Rights accumulate over the levels (SDM Vol. 3A §4.6.1): writable only if
    // every level allows writes, user only if every level allows user access,
    // and one XD bit anywhere forbids fetches.
    void accumulate(uint64_t e, bool has_rights) {
        if (!has_rights) return;  // PAE PDPTEs carry no rights
        writable_ = writable_ && (e & kRW) != 0;
        user_ = user_ && (e & kUS) != 0;
        if (nxe_ && (e & kXD) != 0) executable_ = false;
    }

    // The I/D bit is reported only when fetches can be told apart: PAE or 4-level
    // paging with EFER.NXE, or CR4.SMEP (SDM Vol. 3A §4.7).
    Translation fault(WalkFault kind, unsigned level, bool fetch_distinguished) const {
        Translation t;
        t.fault = kind;
        t.level = static_cast<uint8_t>(level);
        uint32_t code = 0;
        if (kind == WalkFault::reserved_bit) code |= kPfPresent | kPfReserved;
        if (kind == WalkFault::protection) code |= kPfPresent;
        if (access_.type == AccessType::write) code |= kPfWrite;
        if (access_.user) code |= kPfUser;
        if (access_.type == AccessType::fetch && fetch_distinguished) code |= kPfFetch;
        t.pf_error_code = code;
        return t;
    }

    bool fetch_distinguished(bool xd_mode) const { return (xd_mode && nxe_) || (s_.cr4 & kCr4SMEP) != 0; }

    // Access rights against the accumulated rights (SDM Vol. 3A §4.6.1): user
    // accesses need U/S everywhere and, for writes, R/W everywhere; supervisor
    // writes need R/W only with CR0.WP; fetches fail on XD and, with CR4.SMEP,
    // a supervisor fetch from a user page fails too.
    Result<Translation> finish(uint64_t page_base, uint64_t page_size, unsigned level, bool xd_mode) {
        const bool user_access = access_.user;
        bool denied = user_access && !user_;
        if (access_.type == AccessType::write && !writable_ && (user_access || (s_.cr0 & kCr0WP) != 0)) denied = true;
        if (access_.type == AccessType::fetch) {
            if (!executable_) denied = true;
            if (!user_access && user_ && (s_.cr4 & kCr4SMEP) != 0 && level != 0) denied = true;
        }
        if (denied) return fault(WalkFault::protection, level, fetch_distinguished(xd_mode));
        Translation t;
        t.level = static_cast<uint8_t>(level);
        const uint64_t offset = linear_ & (page_size - 1);
        t.gpa = page_base + offset;
        t.page_size = page_size;
        t.bytes_to_page_end = page_size - offset;
        t.writable = writable_;
        t.user = user_;
        t.executable = executable_;
        return t;
    }

    const PagingState& s_;
    const GuestPhysReader& mem_;
    uint64_t linear_;
    Access access_;
    bool nxe_;
    bool writable_ = true;
    bool user_ = true;
    bool executable_ = true;
};

// 32-bit paging (SDM Vol. 3A §4.3, Tables 4-4 to 4-6): 4-byte entries, a page
// directory at CR3[31:12], 4 MiB pages when CR4.PSE and PDE.PS, whose bits 20:13
// hold physical-address bits 39:32 (PSE-36, up to MAXPHYADDR capped at 40).
Result<Translation> Walker::bits32() {
    const unsigned m = s_.maxphyaddr < 40 ? s_.maxphyaddr : 40;
    auto entry32 = [this](uint64_t gpa) -> Result<uint64_t> {
        const uint64_t q = TRY(read(gpa & ~7ull));
        return (gpa & 4) ? q >> 32 : q & 0xFFFFFFFF;
    };
    const uint64_t pde_gpa = (s_.cr3 & 0xFFFFF000) + ((linear_ >> 22) & 0x3FF) * 4;
    const uint64_t pde = TRY(entry32(pde_gpa));
    if (!(pde & kP)) return fault(WalkFault::not_present, 2, fetch_distinguished(false));
    accumulate(pde, true);
    if ((pde & kPS) && (s_.cr4 & kCr4PSE)) {
        if (pde & (bit_range(21, 21) | bit_range(20, 13 + (m - 32))))
            return fault(WalkFault::reserved_bit, 2, fetch_distinguished(false));
        const uint64_t base = (pde & 0xFFC00000) | (((pde >> 13) & 0xFF) << 32);
        return finish(base, 1ull << 22, 2, false);
    }
    const uint64_t pte_gpa = (pde & 0xFFFFF000) + ((linear_ >> 12) & 0x3FF) * 4;
    const uint64_t pte = TRY(entry32(pte_gpa));
    if (!(pte & kP)) return fault(WalkFault::not_present, 1, fetch_distinguished(false));
    accumulate(pte, true);
    return finish(pte & 0xFFFFF000, k4K, 1, false);
}

// PAE paging (SDM Vol. 3A §4.4, Tables 4-8 to 4-11): four PDPTEs at CR3[31:5]
// (or from the VMCS), then 8-byte PDEs and PTEs; bits 62:MAXPHYADDR are reserved,
// and bit 63 too unless EFER.NXE.
Result<Translation> Walker::pae() {
    const unsigned m = s_.maxphyaddr;
    const uint64_t addr = bit_range(m - 1, 12);
    const uint64_t xd_rsvd = nxe_ ? 0 : kXD;
    const unsigned i = static_cast<unsigned>((linear_ >> 30) & 3);
    const uint64_t pdpte = s_.use_pdptes ? s_.pdpte[i] : TRY(read((s_.cr3 & 0xFFFFFFE0) + i * 8));
    if (!(pdpte & kP)) return fault(WalkFault::not_present, 3, fetch_distinguished(true));
    if (pdpte & (bit_range(2, 1) | bit_range(8, 5) | bit_range(63, m)))
        return fault(WalkFault::reserved_bit, 3, fetch_distinguished(true));

    const uint64_t pde = TRY(read((pdpte & addr) + ((linear_ >> 21) & 0x1FF) * 8));
    if (!(pde & kP)) return fault(WalkFault::not_present, 2, fetch_distinguished(true));
    const uint64_t rsvd = bit_range(62, m) | xd_rsvd;
    if (pde & (rsvd | ((pde & kPS) ? bit_range(20, 13) : 0)))
        return fault(WalkFault::reserved_bit, 2, fetch_distinguished(true));
    accumulate(pde, true);
    if (pde & kPS) return finish(pde & bit_range(m - 1, 21), 1ull << 21, 2, true);

    const uint64_t pte = TRY(read((pde & addr) + ((linear_ >> 12) & 0x1FF) * 8));
    if (!(pte & kP)) return fault(WalkFault::not_present, 1, fetch_distinguished(true));
    if (pte & rsvd) return fault(WalkFault::reserved_bit, 1, fetch_distinguished(true));
    accumulate(pte, true);
    return finish(pte & addr, k4K, 1, true);
}

// 4-level paging (SDM Vol. 3A §4.5, Tables 4-14 to 4-20): bits 51:MAXPHYADDR
// reserved everywhere, bit 63 unless EFER.NXE, PS in a PML4E, and the bits
// between the PAT bit and the page address of 1 GiB and 2 MiB pages.
Result<Translation> Walker::level4() {
    // Bits 63:47 must all be equal (SDM Vol. 3A §4.5, Vol. 1 §3.3.7.1): #GP.
    const uint64_t top = linear_ >> 47;
    if (top != 0 && top != 0x1FFFF) return fault(WalkFault::non_canonical, 4, false);
    const unsigned m = s_.maxphyaddr;
    const uint64_t addr = bit_range(m - 1, 12);
    const uint64_t rsvd = bit_range(51, m) | (nxe_ ? 0 : kXD);
    uint64_t table = s_.cr3 & addr;
    for (unsigned level = 4; level >= 1; --level) {
        const unsigned shift = 12 + 9 * (level - 1);
        const uint64_t e = TRY(read(table + ((linear_ >> shift) & 0x1FF) * 8));
        if (!(e & kP)) return fault(WalkFault::not_present, level, fetch_distinguished(true));
        uint64_t r = rsvd;
        const bool large = (e & kPS) != 0 && (level == 3 || level == 2);
        if (level == 4) r |= kPS;
        if (large) r |= bit_range(shift - 1, 13);
        if (e & r) return fault(WalkFault::reserved_bit, level, fetch_distinguished(true));
        accumulate(e, true);
        if (large || level == 1) return finish(e & bit_range(m - 1, shift), 1ull << shift, level, true);
        table = e & addr;
    }
    return make_error(Errc::malformed, "page walk did not end");  // unreachable: level 1 always ends it
}

}  // namespace

Result<PagingMode> paging_mode(const PagingState& s) {
    if (!(s.cr0 & kCr0PG)) return PagingMode::none;
    if (!(s.cr4 & kCr4PAE)) return PagingMode::bits32;
    if (!(s.efer & kEferLMA)) return PagingMode::pae;
    if (s.cr4 & kCr4LA57) return make_error(Errc::unsupported, "5-level paging not supported", s.cr4);
    return PagingMode::level4;
}

Result<Translation> translate(const PagingState& s, const GuestPhysReader& mem, uint64_t linear, Access access) {
    if (s.maxphyaddr < 32 || s.maxphyaddr > 52)
        return make_error(Errc::invalid_argument, "maxphyaddr out of range", s.maxphyaddr);
    const PagingMode mode = TRY(paging_mode(s));
    if (mode != PagingMode::level4 && linear > 0xFFFFFFFF)
        return make_error(Errc::invalid_argument, "linear address above 4 GiB without 4-level paging", linear);
    Walker w(s, mem, linear, access);
    switch (mode) {
        case PagingMode::none: return w.none();
        case PagingMode::bits32: return w.bits32();
        case PagingMode::pae: return w.pae();
        case PagingMode::level4: return w.level4();
    }
    return make_error(Errc::invalid_argument, "bad paging mode");
}

}  // namespace hv::x86
