#include "guests/runtime/paging.hpp"

#include <stddef.h>

#include "guests/runtime/x86.hpp"

namespace hvg {

namespace {

// 4-level paging entries (SDM Vol. 3A §4.5, Tables 4-14 to 4-18).
constexpr uint64_t kPteP = 1ull << 0;
constexpr uint64_t kPteRw = 1ull << 1;
constexpr uint64_t kPtePwt = 1ull << 3;
constexpr uint64_t kPtePcd = 1ull << 4;
constexpr uint64_t kPteAccessed = 1ull << 5;
constexpr uint64_t kPteDirty = 1ull << 6;
constexpr uint64_t kPtePs = 1ull << 7;
constexpr uint64_t kAddrMask = 0x000F'FFFF'FFFF'F000ull;
constexpr uint64_t k2MiB = 2ull << 20;
constexpr size_t kEntries = 512;

// New tables come from the image's .bss, which is guest RAM, identity mapped:
// a table's virtual address is its GPA. A mapping needs at most a new PDPT and
// a new PD, so four pages cover two mappings anywhere.
constexpr size_t kPoolPages = 4;
alignas(4096) constinit uint64_t g_pool[kPoolPages][kEntries] = {};
constinit size_t g_pool_used = 0;

// The entry at `index` of `table` points to the next level, creating it if absent.
// Returns nullptr when a large page is there already (*large set) or no memory is left.
uint64_t* next_table(uint64_t* table, size_t index, bool* large, bool* no_memory) {
    uint64_t e = table[index];
    if (e & kPteP) {
        if (e & kPtePs) {
            *large = true;
            return nullptr;
        }
        return reinterpret_cast<uint64_t*>(e & kAddrMask);
    }
    if (g_pool_used == kPoolPages) {
        *no_memory = true;
        return nullptr;
    }
    uint64_t* fresh = g_pool[g_pool_used++];
    table[index] = reinterpret_cast<uint64_t>(fresh) | kPteP | kPteRw;
    return fresh;
}

// The PDE map_identity_2m writes for `page`.
constexpr uint64_t uncached_pde(uint64_t page) {
    return page | kPteP | kPteRw | kPtePwt | kPtePcd | kPtePs;
}

// The PDE slot for `gpa`, creating upper tables; nullptr with *result set
// when it cannot be reached.
uint64_t* pde_slot(uint64_t gpa, MapResult* result) {
    uint64_t cr4 = read_cr4();
    if (!(cr4 & kCr4Pae) || (cr4 & kCr4La57)) {
        *result = MapResult::not_4_level;
        return nullptr;
    }
    auto* pml4 = reinterpret_cast<uint64_t*>(read_cr3() & kAddrMask);
    bool large = false, no_memory = false;
    uint64_t* pdpt = next_table(pml4, (gpa >> 39) & 511, &large, &no_memory);
    uint64_t* pd = pdpt ? next_table(pdpt, (gpa >> 30) & 511, &large, &no_memory) : nullptr;
    if (!pd) {
        *result = large ? MapResult::already_mapped : MapResult::no_table_memory;
        return nullptr;
    }
    return &pd[(gpa >> 21) & 511];
}

}  // namespace

MapResult map_identity_2m(uint64_t gpa) {
    uint64_t page = gpa & ~(k2MiB - 1);
    MapResult r = MapResult::mapped;
    uint64_t* pde = pde_slot(page, &r);
    if (!pde) return r;
    if (*pde & kPteP) return MapResult::already_mapped;
    *pde = uncached_pde(page);
    invlpg(gpa);
    return MapResult::mapped;
}

MapResult map_mmio(uint64_t gpa, uint64_t len) {
    if (len == 0) return MapResult::mapped;
    uint64_t last = 0;
    if (__builtin_add_overflow(gpa, len - 1, &last)) return MapResult::already_mapped;
    uint64_t first = gpa & ~(k2MiB - 1);
    uint64_t pages = ((last & ~(k2MiB - 1)) - first) / k2MiB + 1;
    for (uint64_t k = 0; k < pages; ++k) {
        uint64_t page = first + k * k2MiB;
        MapResult r = MapResult::mapped;
        uint64_t* pde = pde_slot(page, &r);
        if (!pde) return r;
        if (*pde & kPteP) {
            // Ours from an earlier call, give or take the CPU's A/D bits.
            if ((*pde & ~(kPteAccessed | kPteDirty)) != uncached_pde(page)) return MapResult::already_mapped;
            continue;
        }
        *pde = uncached_pde(page);
        invlpg(page);
    }
    return MapResult::mapped;
}

const char* map_result_name(MapResult r) {
    switch (r) {
        case MapResult::mapped: return "mapped";
        case MapResult::already_mapped: return "already_mapped";
        case MapResult::no_table_memory: return "no_table_memory";
        case MapResult::not_4_level: return "not_4_level";
    }
    return "?";
}

}  // namespace hvg
