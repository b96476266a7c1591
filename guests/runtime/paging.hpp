#pragma once
// Edits the guest's own page tables (the identity map the hypervisor built at
// hv::abi::kPml4Gpa, found through CR3). The hypervisor maps only RAM; a guest
// that wants to touch a GPA outside RAM (to test EPT, say) first maps it here,
// otherwise the access ends in the guest's own #PF and never reaches EPT.

#include <stdint.h>

namespace hvg {

enum class MapResult : uint8_t {
    mapped,           // a new 2 MiB identity mapping was added
    already_mapped,   // a present entry already covers the address; left as is
    no_table_memory,  // the runtime's pool of page-table pages is used up
    not_4_level,      // CR4.LA57 or !CR4.PAE: not the paging mode of the ABI
};

// Identity-maps the 2 MiB page containing `gpa` (RW, uncached: the target is
// usually not RAM) and flushes its TLB entry.
MapResult map_identity_2m(uint64_t gpa);

// Identity-maps every 2 MiB page of [gpa, gpa + len) uncached, for device
// registers (PCI BARs). A page this function (or map_identity_2m) mapped
// before counts as mapped; a page already mapped any other way (RAM, cached)
// gives already_mapped, and the caller must not use it for MMIO.
MapResult map_mmio(uint64_t gpa, uint64_t len);
const char* map_result_name(MapResult r);

}  // namespace hvg
