#pragma once
// Extended page tables: the guest-physical -> host-physical translation of each
// guest (SDM Vol. 3C §29.3 "The Extended Page Table Mechanism (EPT)").
//
// EPT has the same geometry as IA-32e paging (4 levels of 512 eight-byte entries,
// 9 address bits per level, 1 GiB/2 MiB pages at levels 3/2), so the tables are
// built by mm::PageTable with EptFormat below; only the entry bits differ. This
// file also has the EPTP value for the VMCS, the guest RAM layout (chunks of host
// RAM placed back to back from GPA 0), a read-only leaf walker for self-checks,
// and the decoder of the EPT-violation exit qualification. All pure: the tables
// live in whatever the Memory policy hands out.

#include <stddef.h>
#include <stdint.h>

#include <type_traits>
#include <utility>

#include "kernel/lib/result.hpp"
#include "kernel/mm/page_table.hpp"
#include "vmx/vmx_caps.hpp"

namespace hv::vmx {

// Memory types an EPT leaf or the EPTP may name (SDM Vol. 3C §29.3.7 "EPT and
// Memory Typing"; same encoding as the MTRRs). 2, 3 and 7 are reserved: an EPT
// leaf with one of them is an EPT misconfiguration (§29.3.3.1).
enum class EptMemoryType : uint8_t {
    UC = 0,
    WC = 1,
    WT = 4,
    WP = 5,
    WB = kMemoryTypeWriteBack,
};

// EPT paging-structure entries (SDM Vol. 3C §29.3.2 "EPT Translation Mechanism",
// Tables 29-x "Format of an EPT PML4 Entry" .. "Format of an EPT Page-Table Entry
// that Maps a 4-KByte Page"). Satisfies mm::PageTableFormat.
struct EptFormat {
    // Access rights, at every level; the access is allowed only if every entry of
    // the walk allows it. Execute is supervisor-mode execute only when mode-based
    // execute control is on; we leave it off, so bit 2 governs all fetches.
    static constexpr uint64_t kRead = 1ull << 0;
    static constexpr uint64_t kWrite = 1ull << 1;
    static constexpr uint64_t kExecute = 1ull << 2;
    static constexpr uint64_t kRwx = kRead | kWrite | kExecute;
    // Leaf only (reserved, must be 0, in entries that reference a table).
    static constexpr unsigned kMemoryTypeShift = 3;  // bits 5:3
    static constexpr uint64_t kMemoryTypeMask = 7ull << kMemoryTypeShift;
    static constexpr uint64_t kIgnorePat = 1ull << 6;
    // PDPTE/PDE: maps a 1 GiB/2 MiB page. Reserved in a PML4E; a PTE is always a leaf.
    static constexpr uint64_t kLargePage = 1ull << 7;
    // Set by the CPU only when the EPTP enables them (§29.3.5 "Accessed and Dirty
    // Flags for EPT"); never produced by leaf()/table(), ignored by attrs().
    static constexpr uint64_t kAccessed = 1ull << 8;
    static constexpr uint64_t kDirty = 1ull << 9;

    // Host-physical addresses are bits (MAXPHYADDR-1):12, the same 52-bit ceiling
    // as IA-32e paging, so the limit and mask are the ones X86Format defines.
    static constexpr uint64_t kPhysLimit = mm::X86Format::kPhysLimit;
    static constexpr uint64_t kAddressMask = mm::X86Format::kAddressMask;  // bits 51:12

    // A 4-level walk translates 48-bit guest-physical addresses (§29.3.2). There
    // is no canonical-form rule for GPAs: any address below 2^48 is mappable.
    static constexpr unsigned kGuestPhysBits = 48;
    static constexpr uint64_t kGuestPhysLimit = 1ull << kGuestPhysBits;

    static constexpr bool valid_virt_range(uint64_t first, uint64_t last) {
        return first <= last && last < kGuestPhysLimit;
    }

    static constexpr EptMemoryType memory_type(mm::CacheMode c) {
        switch (c) {
            case mm::CacheMode::write_back: return EptMemoryType::WB;
            case mm::CacheMode::write_combining: return EptMemoryType::WC;
            case mm::CacheMode::uncacheable: return EptMemoryType::UC;
        }
        return EptMemoryType::UC;  // unreachable for valid enumerators; UC is the safe answer
    }

    // Always readable: write-without-read is a misconfiguration (§29.3.3.1) and
    // execute-only needs a capability we do not ask for. user/global have no EPT
    // meaning and are ignored. IPAT stays 0 so the guest's PAT combines with the
    // EPT type like a PAT with the MTRRs on bare metal (§29.3.7.2 "Memory Type
    // Used for Translated Guest-Physical Addresses"): its WB RAM stays WB under
    // the default PAT, and a guest that wants WC or UC for a buffer gets it.
    static constexpr uint64_t leaf(uint64_t phys, mm::MapAttrs a, mm::PageSize s) {
        uint64_t e = kRead | (phys & kAddressMask & ~(mm::page_bytes(s) - 1));
        if (a.write) e |= kWrite;
        if (a.exec) e |= kExecute;
        e |= static_cast<uint64_t>(memory_type(a.cache)) << kMemoryTypeShift;
        if (s != mm::PageSize::size_4k) e |= kLargePage;
        return e;
    }

    // Tables grant everything; the leaf decides (rights are intersected per walk).
    static constexpr uint64_t table(uint64_t phys) { return kRwx | (phys & kAddressMask); }
    static constexpr uint64_t widen(uint64_t table_entry, mm::MapAttrs) { return table_entry; }

    // Bits 2:0 all clear is "not present" (§29.3.2); any other value is used.
    static constexpr bool present(uint64_t e) { return (e & kRwx) != 0; }

    static constexpr bool is_leaf(uint64_t e, int level) {
        return level == 1 || ((level == 2 || level == 3) && (e & kLargePage) != 0);
    }

    // For large pages bits 20:12 / 29:12 of the entry are reserved, so masked off.
    static constexpr uint64_t address(uint64_t e, int level) {
        if (level > 1 && is_leaf(e, level)) return e & kAddressMask & ~(mm::level_bytes(level) - 1);
        return e & kAddressMask;
    }

    // Inverse of leaf(). Memory types leaf() never writes (WT, WP, reserved) read
    // back as uncacheable, the conservative answer.
    static constexpr mm::MapAttrs attrs(uint64_t e) {
        mm::MapAttrs a;
        a.write = (e & kWrite) != 0;
        a.exec = (e & kExecute) != 0;
        const auto type = static_cast<EptMemoryType>((e & kMemoryTypeMask) >> kMemoryTypeShift);
        a.cache = type == EptMemoryType::WB   ? mm::CacheMode::write_back
                  : type == EptMemoryType::WC ? mm::CacheMode::write_combining
                                              : mm::CacheMode::uncacheable;
        return a;
    }
};
static_assert(mm::PageTableFormat<EptFormat>);

// ---------------------------------------------------------------------- EPTP
// SDM Vol. 3C §25.6.11 "Extended-Page-Table Pointer (EPTP)": bits 2:0 memory type
// of the paging-structure accesses, 5:3 page-walk length minus 1, bit 6 enables
// accessed/dirty flags, 11:7 reserved here, 51:12 the PML4 address.
inline constexpr uint64_t kEptpMemoryTypeMask = 0x7;
inline constexpr unsigned kEptpWalkLengthShift = 3;
inline constexpr uint64_t kEptpAccessedDirty = 1ull << 6;

// `pml4_phys` is a PageTable root(), always page-aligned; stray low bits are
// dropped rather than allowed to land in the control bits. WB because the
// tables sit in ordinary RAM; the caller checks eptp_supported() first.
constexpr uint64_t make_eptp(uint64_t pml4_phys, bool accessed_dirty) {
    return (pml4_phys & EptFormat::kAddressMask) | static_cast<uint64_t>(EptMemoryType::WB) |
           (static_cast<uint64_t>(mm::kPagingLevels - 1) << kEptpWalkLengthShift) |
           (accessed_dirty ? kEptpAccessedDirty : 0);
}

// The CPU accepts make_eptp()'s value: 4-level walks and WB paging-structure
// accesses, plus A/D flags if asked for (IA32_VMX_EPT_VPID_CAP, Vol. 3D A.10).
bool eptp_supported(const VmxCaps& caps, bool accessed_dirty = false);

// Largest page to pass to map_guest_ram(): PageTable uses every size up to the
// limit, so 1 GiB is offered only together with 2 MiB.
uint64_t ept_max_page_bytes(const VmxCaps& caps);

// ---------------------------------------------------------------- guest RAM
// One run of host RAM given to a guest. Chunk i sits at GPA = sum of the sizes
// of chunks 0..i-1, so the guest sees one contiguous RAM range starting at 0.
struct HostChunk {
    uint64_t host_phys;
    uint64_t bytes;
};

inline constexpr mm::MapAttrs kGuestRamAttrs{
    .write = true, .exec = true, .user = false, .global = false, .cache = mm::CacheMode::write_back};

// Checks chunks and max_page_bytes without touching any table: every chunk
// non-empty, 4 KiB aligned in address and size, below 2^52 on the host, no two
// chunks sharing host pages, total below 2^48. Returns the total bytes.
[[nodiscard]] Result<uint64_t> check_guest_ram(const HostChunk* chunks, size_t count, uint64_t max_page_bytes);

// max_page_bytes as a PageSize (it must be 4 KiB, 2 MiB or 1 GiB).
[[nodiscard]] Result<mm::PageSize> ept_page_size(uint64_t max_page_bytes);

// Maps the chunks RWX + WB from GPA 0 with the largest pages alignment and
// max_page_bytes allow. All argument errors are found before the first table
// store. An overlap with mappings already in `ept`, or running out of table
// pages, fails at the chunk concerned with the earlier chunks left mapped: the
// EPT is not live yet at that point, and the caller drops the guest.
template <mm::PageTableMemory Memory>
[[nodiscard]] Result<void> map_guest_ram(mm::PageTable<EptFormat, Memory>& ept, const HostChunk* chunks, size_t count,
                                         uint64_t max_page_bytes) {
    TRY(check_guest_ram(chunks, count, max_page_bytes));
    const mm::PageSize max_page = TRY(ept_page_size(max_page_bytes));
    uint64_t gpa = 0;
    for (size_t i = 0; i < count; ++i) {
        TRY(ept.map(gpa, chunks[i].host_phys, chunks[i].bytes, kGuestRamAttrs, max_page));
        gpa += chunks[i].bytes;
    }
    return ok_result();
}

// ---------------------------------------------------------------- walker
struct EptLeaf {
    uint64_t gpa;
    uint64_t hpa;
    uint64_t page_bytes;
    mm::MapAttrs attrs;
};

namespace detail {
template <typename Memory, typename F>
void walk_ept_leaves(Memory& mem, uint64_t table, int level, uint64_t gpa_base, F& f) {
    for (unsigned i = 0; i < mm::kEntriesPerTable; ++i) {
        // Atomic: with A/D enabled the CPU updates live entries as we read them.
        const uint64_t e = __atomic_load_n(&mem.table(table)[i], __ATOMIC_RELAXED);
        if (!EptFormat::present(e)) continue;
        const uint64_t gpa = gpa_base + static_cast<uint64_t>(i) * mm::level_bytes(level);
        if (EptFormat::is_leaf(e, level)) {
            f(EptLeaf{gpa, EptFormat::address(e, level), mm::level_bytes(level), EptFormat::attrs(e)});
        } else {
            walk_ept_leaves(mem, EptFormat::address(e, level), level - 1, gpa, f);
        }
    }
}
}  // namespace detail

// Calls f(const EptLeaf&) for every present leaf, in ascending GPA order. `mem`
// must be the Memory `ept` was built with: PageTable does not hand out its own.
template <mm::PageTableMemory Memory, typename F>
void for_each_leaf(const mm::PageTable<EptFormat, Memory>& ept, Memory& mem, F&& f) {
    if (!ept.ok()) return;
    detail::walk_ept_leaves(mem, ept.root(), mm::kPagingLevels, 0, f);
}

// ------------------------------------------------------- EPT violation exits
// SDM Vol. 3C §28.2.1 "Basic VM-Exit Information", Table 28-x "Exit
// Qualification for EPT Violations".
inline constexpr uint64_t kEptQualRead = 1ull << 0;            // the access was a data read
inline constexpr uint64_t kEptQualWrite = 1ull << 1;           // a data write (incl. guest A/D updates)
inline constexpr uint64_t kEptQualFetch = 1ull << 2;           // an instruction fetch
inline constexpr uint64_t kEptQualReadable = 1ull << 3;        // AND of bit 0 over the walk's entries
inline constexpr uint64_t kEptQualWritable = 1ull << 4;        // AND of bit 1
inline constexpr uint64_t kEptQualExecutable = 1ull << 5;      // AND of bit 2
inline constexpr uint64_t kEptQualGlaValid = 1ull << 7;        // guest-linear-address field is valid
inline constexpr uint64_t kEptQualLinearAccess = 1ull << 8;    // with bit 7: the access was to the
                                                               // translation of that linear address,
                                                               // not to a guest paging structure
inline constexpr uint64_t kEptQualNmiUnblocking = 1ull << 12;  // "NMI unblocking due to IRET"

struct EptViolation {
    bool read, write, fetch;              // what the guest tried to do
    bool readable, writable, executable;  // what the EPT allowed at that GPA
    bool gla_valid;
    bool linear_access;  // false unless gla_valid: bit 8 is undefined without bit 7
    // The violation hit an IRET after it had unblocked NMIs. To re-execute that
    // IRET, first set blocking by NMI in the guest interruptibility state (SDM
    // Vol. 3C §28.2.3 "Information About NMI Unblocking Due to IRET").
    bool nmi_unblocking;
};

EptViolation decode_ept_violation(uint64_t qualification);

}  // namespace hv::vmx
