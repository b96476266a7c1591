#pragma once
// PageTable<Format, Memory>: builds 4-level translation tables. The kernel uses it
// at boot for its own address space (IA-32e paging, X86Format); EPT will reuse the
// same walker with its own Format, because both are 4 levels of 512 eight-byte
// entries indexed by 9 address bits each and differ only in the entry bits.
//
// Format policy (static members, see X86Format):
//   leaf(phys, attrs, size), table(phys), widen(table_entry, attrs), present(e),
//   is_leaf(e, level), address(e, level), attrs(e), valid_virt_range(first, last),
//   kPhysLimit.
// Memory policy (see PageTableMemory): alloc_table() -> phys of a zeroed 4 KiB page
// or 0 when exhausted; table(phys) -> its 512 entries. Optionally
// write_entry(table_phys, index, value) performs each entry store itself (tests
// record every store through it); otherwise the walker does one atomic 64-bit store.
//
// Update discipline, so a CPU walking the live tables (another core, or this one
// via a speculative walk) never sees anything but the old or the new mapping:
//   * every entry is written with one 64-bit store;
//   * a new table is filled completely before the store that links it;
//   * live entries only go from not-present to present, or gain rights (widen);
//   * all checks (overlap) and all allocations happen before the first store, so
//     a failed map() leaves the tables exactly as they were.
// Not thread-safe: callers serialise map() (boot runs it on one CPU).

#include <stdint.h>

#include <concepts>

#include "kernel/lib/bytes.hpp"
#include "kernel/lib/result.hpp"

namespace hv::mm {

enum class PageSize : uint64_t {
    size_4k = 1ull << 12,
    size_2m = 1ull << 21,
    size_1g = 1ull << 30,
};

constexpr uint64_t page_bytes(PageSize s) { return static_cast<uint64_t>(s); }

enum class CacheMode : uint8_t {
    write_back,
    uncacheable,
    // Needs a PAT entry programmed for WC; until the PAT is set up this maps as
    // uncacheable (PCD|PWT), which is correct for MMIO, only slower.
    write_combining,
};

struct MapAttrs {
    bool write = false;
    bool exec = false;
    bool user = false;
    bool global = false;
    CacheMode cache = CacheMode::write_back;
};

// Walk geometry shared by IA-32e paging and EPT (SDM Vol. 3A §4.5): level 4 is
// the PML4, 3 the PDPT, 2 the PD, 1 the PT. Each level translates 9 address
// bits, so a 4 KiB table holds 512 entries; the low 12 bits are the page offset.
inline constexpr int kPagingLevels = 4;
inline constexpr unsigned kIndexBits = 9;
inline constexpr unsigned kEntriesPerTable = 1u << kIndexBits;
inline constexpr unsigned kPageShift = 12;
static_assert(kEntriesPerTable * sizeof(uint64_t) == page_bytes(PageSize::size_4k));

// Bytes one entry at `level` maps: 4 KiB at level 1, 2 MiB at 2, 1 GiB at 3.
constexpr uint64_t level_bytes(int level) {
    return 1ull << (kPageShift + kIndexBits * static_cast<unsigned>(level - 1));
}
static_assert(level_bytes(1) == page_bytes(PageSize::size_4k));
static_assert(level_bytes(2) == page_bytes(PageSize::size_2m));
static_assert(level_bytes(3) == page_bytes(PageSize::size_1g));

constexpr unsigned table_index(uint64_t virt, int level) {
    return static_cast<unsigned>(virt >> (kPageShift + kIndexBits * static_cast<unsigned>(level - 1))) &
           (kEntriesPerTable - 1);
}

// IA-32e (4-level) paging entries, SDM Vol. 3A §4.5, Tables 4-15 to 4-20.
struct X86Format {
    static constexpr uint64_t kPresent = 1ull << 0;
    static constexpr uint64_t kWritable = 1ull << 1;      // R/W
    static constexpr uint64_t kUser = 1ull << 2;          // U/S
    static constexpr uint64_t kWriteThrough = 1ull << 3;  // PWT
    static constexpr uint64_t kCacheDisable = 1ull << 4;  // PCD
    // PS: in a PDPTE/PDE the entry maps a 1 GiB/2 MiB page; reserved in a PML4E.
    // (Bit 7 of a PTE is PAT instead, which is why is_leaf() looks at the level.)
    static constexpr uint64_t kLargePage = 1ull << 7;
    static constexpr uint64_t kGlobal = 1ull << 8;  // G: kept in the TLB across CR3 loads
    // XD: instruction fetches fault (SDM Vol. 3A §4.6). Reserved unless
    // IA32_EFER.NXE = 1, so the kernel must set NXE before loading these tables.
    static constexpr uint64_t kNoExecute = 1ull << 63;

    // Addresses are at most 52 bits (MAXPHYADDR <= 52, SDM Vol. 3A §4.1.4); a CPU
    // with a smaller MAXPHYADDR treats the bits above it as reserved, so callers
    // must not pass RAM/MMIO beyond what CPUID reports.
    static constexpr unsigned kMaxPhysBits = 52;
    static constexpr uint64_t kPhysLimit = 1ull << kMaxPhysBits;
    static constexpr uint64_t kAddressMask = (kPhysLimit - 1) & ~(level_bytes(1) - 1);  // bits 51:12

    // 4-level paging translates 48-bit linear addresses; bits 63:47 must all be
    // equal (canonical, SDM Vol. 1 §3.3.7.1), so the hole in the middle is unmappable.
    static constexpr unsigned kLinearBits = 48;

    static constexpr bool canonical(uint64_t virt) {
        const uint64_t top = virt >> (kLinearBits - 1);  // bits 63:47
        return top == 0 || top == (~0ull >> (kLinearBits - 1));
    }

    // [first, last] is mappable: canonical at both ends and not spanning the hole.
    static constexpr bool valid_virt_range(uint64_t first, uint64_t last) {
        return canonical(first) && canonical(last) &&
               (first >> (kLinearBits - 1)) == (last >> (kLinearBits - 1));
    }

    static constexpr uint64_t leaf(uint64_t phys, MapAttrs a, PageSize s) {
        uint64_t e = kPresent | (phys & kAddressMask & ~(page_bytes(s) - 1));
        if (a.write) e |= kWritable;
        if (a.user) e |= kUser;
        // PCD|PWT selects PAT entry 3 (SDM Vol. 3A §11.12.3 Table 11-11), which is
        // UC in the power-on PAT (§11.12.4 Table 11-12): UC whatever the MTRRs say.
        if (a.cache != CacheMode::write_back) e |= kCacheDisable | kWriteThrough;
        if (s != PageSize::size_4k) e |= kLargePage;
        if (a.global) e |= kGlobal;
        if (!a.exec) e |= kNoExecute;
        return e;
    }

    // Non-leaf entries grant everything except U/S: the effective rights are the
    // intersection over all levels (SDM Vol. 3A §4.6.1), so the leaf decides.
    // No XD here: XD at any level would forbid execution of everything below.
    static constexpr uint64_t table(uint64_t phys) { return kPresent | kWritable | (phys & kAddressMask); }

    // A table entry with whatever rights a leaf with `a` below it needs: U/S must
    // be set at every level for user access to be allowed at all.
    static constexpr uint64_t widen(uint64_t table_entry, MapAttrs a) {
        return a.user ? (table_entry | kUser) : table_entry;
    }

    static constexpr bool present(uint64_t e) { return (e & kPresent) != 0; }

    static constexpr bool is_leaf(uint64_t e, int level) {
        return level == 1 || ((level == 2 || level == 3) && (e & kLargePage) != 0);
    }

    // Physical address the entry points at: the page for a leaf (large pages keep
    // PAT and reserved bits in 20:12 / 29:12), otherwise the next table.
    static constexpr uint64_t address(uint64_t e, int level) {
        if (level > 1 && is_leaf(e, level)) return e & kAddressMask & ~(level_bytes(level) - 1);
        return e & kAddressMask;
    }

    // Inverse of leaf() for the bits leaf() produces. Any PCD/PWT reads back as
    // uncacheable (the conservative answer); write_combining reads back as
    // uncacheable until it has its own PAT entry.
    static constexpr MapAttrs attrs(uint64_t e) {
        MapAttrs a;
        a.write = (e & kWritable) != 0;
        a.exec = (e & kNoExecute) == 0;
        a.user = (e & kUser) != 0;
        a.global = (e & kGlobal) != 0;
        a.cache = (e & (kCacheDisable | kWriteThrough)) != 0 ? CacheMode::uncacheable : CacheMode::write_back;
        return a;
    }
};

template <typename F>
concept PageTableFormat = requires(uint64_t e, MapAttrs a, PageSize s, int level) {
    { F::leaf(e, a, s) } -> std::same_as<uint64_t>;
    { F::table(e) } -> std::same_as<uint64_t>;
    { F::widen(e, a) } -> std::same_as<uint64_t>;
    { F::present(e) } -> std::same_as<bool>;
    { F::is_leaf(e, level) } -> std::same_as<bool>;
    { F::address(e, level) } -> std::same_as<uint64_t>;
    { F::attrs(e) } -> std::same_as<MapAttrs>;
    { F::valid_virt_range(e, e) } -> std::same_as<bool>;
    { F::kPhysLimit } -> std::convertible_to<uint64_t>;
};

template <typename M>
concept PageTableMemory = requires(M& m, uint64_t phys) {
    { m.alloc_table() } -> std::same_as<uint64_t>;
    { m.table(phys) } -> std::same_as<uint64_t*>;
};

// Optional Memory hook: the policy performs (and may record) every entry store.
template <typename M>
concept WritesEntries = requires(M& m, uint64_t table_phys, unsigned index, uint64_t value) {
    m.write_entry(table_phys, index, value);
};

template <PageTableFormat Format, PageTableMemory Memory>
class PageTable {
  public:
    struct Translation {
        uint64_t phys;
        PageSize page;
        MapAttrs attrs;
    };

    // Allocates the root table; ok() is false when that failed.
    explicit PageTable(Memory& mem) : mem_(&mem), root_(mem.alloc_table()), tables_used_(root_ != 0 ? 1 : 0) {}
    PageTable(const PageTable&) = delete;
    PageTable& operator=(const PageTable&) = delete;

    bool ok() const { return root_ != 0; }
    // Physical address of the PML4 (the value for CR3, or the EPTP base).
    uint64_t root() const { return root_; }
    // Tables linked into the hierarchy, root included.
    uint64_t tables_used() const { return tables_used_; }

    // Maps [virt, virt + size) to [phys, phys + size) with the largest pages
    // <= max_page that both addresses are aligned for and the range still covers.
    [[nodiscard]] Result<void> map(uint64_t virt, uint64_t phys, uint64_t size, MapAttrs attrs,
                                   PageSize max_page = PageSize::size_1g) {
        if (!ok()) return make_error(Errc::no_memory, "page table: root table was never allocated");
        TRY(check_arguments(virt, phys, size, max_page));
        const uint64_t last = virt + (size - 1);  // inclusive, so a range may end at 2^64
        const int max_leaf = leaf_level(max_page);
        uint64_t needed = 0;
        TRY(count_new_tables(root_, kPagingLevels, virt, last, phys, max_leaf, needed));
        TRY(reserve(needed));
        build(root_, kPagingLevels, virt, last, phys, attrs, max_leaf);
        return ok_result();
    }

    [[nodiscard]] Result<Translation> translate(uint64_t virt) const {
        if (!Format::valid_virt_range(virt, virt))
            return make_error(Errc::invalid_argument, "page table: address is not canonical", virt);
        if (!ok()) return make_error(Errc::not_found, "page table: address not mapped", virt);
        uint64_t table = root_;
        for (int level = kPagingLevels; level >= 1; --level) {
            const uint64_t e = load(table, table_index(virt, level));
            if (!Format::present(e)) break;
            if (Format::is_leaf(e, level)) {
                const uint64_t span = level_bytes(level);
                return Translation{Format::address(e, level) + (virt & (span - 1)), static_cast<PageSize>(span),
                                   Format::attrs(e)};
            }
            table = Format::address(e, level);
        }
        return make_error(Errc::not_found, "page table: address not mapped", virt);
    }

  private:
    // One entry of one table visited by map(): it handles [virt, last] of the range.
    struct Step {
        unsigned index;
        uint64_t last;
        bool leaf;
    };

    static int leaf_level(PageSize s) {
        return s == PageSize::size_1g ? 3 : s == PageSize::size_2m ? 2 : 1;
    }

    static Result<void> check_arguments(uint64_t virt, uint64_t phys, uint64_t size, PageSize max_page) {
        constexpr uint64_t kSmallest = page_bytes(PageSize::size_4k);
        if (max_page != PageSize::size_4k && max_page != PageSize::size_2m && max_page != PageSize::size_1g)
            return make_error(Errc::invalid_argument, "page table: max_page is not a page size",
                              static_cast<uint64_t>(max_page));
        if (size == 0) return make_error(Errc::invalid_argument, "page table: size is zero");
        if (!is_aligned(virt, kSmallest))
            return make_error(Errc::invalid_argument, "page table: virtual address not 4 KiB aligned", virt);
        if (!is_aligned(phys, kSmallest))
            return make_error(Errc::invalid_argument, "page table: physical address not 4 KiB aligned", phys);
        if (!is_aligned(size, kSmallest))
            return make_error(Errc::invalid_argument, "page table: size not a multiple of 4 KiB", size);
        uint64_t last_virt = 0;
        if (add_overflows(virt, size - 1, &last_virt))
            return make_error(Errc::invalid_argument, "page table: virtual range wraps around", virt);
        if (!Format::valid_virt_range(virt, last_virt))
            return make_error(Errc::invalid_argument, "page table: virtual range not canonical", virt);
        uint64_t last_phys = 0;
        if (add_overflows(phys, size - 1, &last_phys) || last_phys >= Format::kPhysLimit)
            return make_error(Errc::invalid_argument, "page table: physical range beyond 52 bits", phys);
        return ok_result();
    }

    // The entry of a level-`level` table that `virt` falls in, clipped to `last`.
    // It becomes a leaf when the level allows one and the whole entry's span is
    // covered with both addresses aligned to it; level 1 entries are always leaves.
    static Step step_at(int level, uint64_t virt, uint64_t last, uint64_t phys, int max_leaf) {
        const uint64_t span = level_bytes(level);
        const uint64_t entry_last = virt | (span - 1);
        const uint64_t step_last = entry_last < last ? entry_last : last;
        const bool covers_entry = is_aligned(virt, span) && step_last == entry_last;
        const bool leaf = level == 1 || (level <= max_leaf && covers_entry && is_aligned(phys, span));
        return Step{table_index(virt, level), step_last, leaf};
    }

    // Pass 1: fails on any overlap and counts the tables pass 2 will need, without
    // writing anything. `table` 0 stands for a table this map() would create
    // (all entries empty).
    Result<void> count_new_tables(uint64_t table, int level, uint64_t virt, uint64_t last, uint64_t phys,
                                  int max_leaf, uint64_t& needed) const {
        for (;;) {
            const Step s = step_at(level, virt, last, phys, max_leaf);
            const uint64_t e = table != 0 ? load(table, s.index) : 0;
            // A present entry where we want a leaf is a mapping (large page) or a
            // table; tables are only ever created for mappings, so both overlap.
            if (Format::present(e) && (s.leaf || Format::is_leaf(e, level)))
                return make_error(Errc::overlap, "page table: range already mapped", virt);
            if (!s.leaf) {
                if (Format::present(e)) {
                    TRY(count_new_tables(Format::address(e, level), level - 1, virt, s.last, phys, max_leaf, needed));
                } else {
                    ++needed;
                    // A new page table (level 1) holds only leaves: nothing more to count.
                    if (level - 1 > 1) TRY(count_new_tables(0, level - 1, virt, s.last, phys, max_leaf, needed));
                }
            }
            if (s.last == last) return ok_result();
            phys += s.last - virt + 1;
            virt = s.last + 1;
        }
    }

    // Pass 2: cannot fail; pass 1 found no overlap and reserve() has the tables.
    void build(uint64_t table, int level, uint64_t virt, uint64_t last, uint64_t phys, MapAttrs attrs,
               int max_leaf) {
        for (;;) {
            const Step s = step_at(level, virt, last, phys, max_leaf);
            if (s.leaf) {
                store(table, s.index, Format::leaf(phys, attrs, static_cast<PageSize>(level_bytes(level))));
            } else {
                const uint64_t e = load(table, s.index);
                if (Format::present(e)) {
                    build(Format::address(e, level), level - 1, virt, s.last, phys, attrs, max_leaf);
                    const uint64_t widened = Format::widen(e, attrs);
                    if (widened != e) store(table, s.index, widened);
                } else {
                    const uint64_t child = take_spare();
                    build(child, level - 1, virt, s.last, phys, attrs, max_leaf);
                    store(table, s.index, Format::widen(Format::table(child), attrs));  // link when complete
                    ++tables_used_;
                }
            }
            if (s.last == last) return;
            phys += s.last - virt + 1;
            virt = s.last + 1;
        }
    }

    // Tables reserved for the current map() but not yet linked, chained through
    // their entry 0, so a failed reservation keeps them for the next call rather
    // than leaking them (the Memory policy has no free).
    Result<void> reserve(uint64_t count) {
        while (spare_count_ < count) {
            const uint64_t page = mem_->alloc_table();
            if (page == 0)
                return make_error(Errc::no_memory, "page table: no page for a table", count - spare_count_);
            mem_->table(page)[0] = spare_;  // plain store: the page is in no hierarchy
            spare_ = page;
            ++spare_count_;
        }
        return ok_result();
    }

    uint64_t take_spare() {
        const uint64_t page = spare_;
        uint64_t* entries = mem_->table(page);
        spare_ = entries[0];
        entries[0] = 0;
        --spare_count_;
        return page;
    }

    // Atomic because the CPU sets Accessed/Dirty bits in live entries while we
    // read them (SDM Vol. 3A §4.8).
    uint64_t load(uint64_t table, unsigned index) const {
        return __atomic_load_n(&mem_->table(table)[index], __ATOMIC_RELAXED);
    }

    // One 64-bit store; release so the filled child table is visible before the
    // entry that links it.
    void store(uint64_t table, unsigned index, uint64_t value) {
        if constexpr (WritesEntries<Memory>) {
            mem_->write_entry(table, index, value);
        } else {
            __atomic_store_n(&mem_->table(table)[index], value, __ATOMIC_RELEASE);
        }
    }

    Memory* mem_;
    uint64_t root_;
    uint64_t tables_used_;
    uint64_t spare_ = 0;
    uint64_t spare_count_ = 0;
};

}  // namespace hv::mm
