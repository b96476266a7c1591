#pragma once
// Guest-linear -> guest-physical translation through the guest's own page tables,
// done in software: to fetch the instruction at the guest's RIP after an MMIO EPT
// violation, and to check the linear address the exit reports.
//
// Paging modes (SDM Vol. 3A §4.1.1, Table 4-1): none (CR0.PG = 0), 32-bit
// (§4.3, 4 KiB pages and 4 MiB pages with CR4.PSE), PAE (§4.4, 4 KiB and 2 MiB)
// and 4-level (§4.5, 4 KiB, 2 MiB and 1 GiB). 5-level paging (CR4.LA57) is not
// supported and is reported as such. The walk only reads: accessed and dirty
// bits are not set (the guest's own access already set them). Not checked:
// SMAP (needs RFLAGS.AC and implicit-access information), protection keys
// (PKRU/PKRS), and whether the CPU supports 1 GiB pages (a PS PDPTE is taken as
// a 1 GiB page).

#include <stddef.h>
#include <stdint.h>

#include "kernel/guest/guest_memory.hpp"
#include "kernel/x86/control_regs.hpp"
#include "kernel/lib/result.hpp"

namespace hv::x86 {

// Guest-physical memory as the walker sees it: eight bytes at an 8-byte-aligned
// GPA, or false when the GPA is not guest RAM (a page table outside RAM).
class GuestPhysReader {
  public:
    virtual bool read_u64(uint64_t gpa, uint64_t& value) const = 0;

  protected:
    ~GuestPhysReader() = default;
};

// GuestPhysReader over the guest's RAM block, copying each entry out once.
class GuestMemoryReader final : public GuestPhysReader {
  public:
    explicit GuestMemoryReader(const guest::GuestMemory& ram) : ram_(ram) {}
    bool read_u64(uint64_t gpa, uint64_t& value) const override;

  private:
    const guest::GuestMemory& ram_;
};

struct PagingState {
    uint64_t cr0 = 0;
    uint64_t cr3 = 0;
    uint64_t cr4 = 0;
    uint64_t efer = 0;        // LMA selects 4-level paging, NXE enables the XD bit
    uint8_t maxphyaddr = 52;  // CPUID.80000008H:EAX[7:0] as the guest sees it, 32..52
    // PAE paging with EPT: the CPU uses the PDPTEs loaded from the VMCS guest-state
    // area (GUEST_PDPTE0-3, SDM Vol. 3C §25.4.2 and "Loading Page-Directory-
    // Pointer-Table Entries" in the VM-entry chapter), not the memory at CR3.
    bool use_pdptes = false;
    uint64_t pdpte[4] = {};
};

enum class PagingMode : uint8_t { none, bits32, pae, level4 };

enum class AccessType : uint8_t { read, write, fetch };

struct Access {
    AccessType type = AccessType::read;
    bool user = false;  // CPL 3 (user-mode access, SDM Vol. 3A §4.6)
};

enum class WalkFault : uint8_t {
    none,
    not_present,    // P = 0 in some entry: #PF
    reserved_bit,   // a reserved bit set in a present entry: #PF with RSVD
    protection,     // R/W, U/S, XD or SMEP forbid the access: #PF with P
    non_canonical,  // 4-level paging, bits 63:47 not all equal: #GP, not #PF
};

// #PF error code bits (SDM Vol. 3A §4.7, Figure 4-12).
inline constexpr uint32_t kPfPresent = 1u << 0;
inline constexpr uint32_t kPfWrite = 1u << 1;
inline constexpr uint32_t kPfUser = 1u << 2;
inline constexpr uint32_t kPfReserved = 1u << 3;
inline constexpr uint32_t kPfFetch = 1u << 4;

struct Translation {
    WalkFault fault = WalkFault::none;
    uint32_t pf_error_code = 0;  // for #PF faults, to inject with CR2 = the linear address
    uint8_t level = 0;           // level of the entry that ended the walk (1 = PTE ... 4 = PML4E)
    // On success:
    uint64_t gpa = 0;
    uint64_t page_size = 0;          // 4 KiB with paging off
    uint64_t bytes_to_page_end = 0;  // bytes from gpa that are contiguous in both spaces, >= 1
    bool writable = false;           // effective rights of the whole walk
    bool user = false;
    bool executable = false;
    bool ok() const { return fault == WalkFault::none; }
};

// Paging mode from CR0.PG, CR4.PAE and EFER.LMA; Errc::unsupported for LA57.
Result<PagingMode> paging_mode(const PagingState& s);

// Walks the guest's tables for `linear`. Faults come back in Translation::fault;
// errors are for the hypervisor: Errc::unmapped (a table entry not in guest RAM,
// value = its GPA), Errc::unsupported (5-level paging), Errc::invalid_argument
// (maxphyaddr out of range, or a linear address above 4 GiB outside 4-level paging).
Result<Translation> translate(const PagingState& s, const GuestPhysReader& mem, uint64_t linear, Access access);

}  // namespace hv::x86
