// Building a guest's initial memory (docs/guest-abi.md "Start state").

#include "kernel/guest/guest.hpp"

namespace hv::guest {

namespace {
constexpr uint64_t kPageP = 1ull << 0, kPageRw = 1ull << 1, kPagePs = 1ull << 7;
constexpr uint64_t k2MiB = 2ull << 20, k1GiB = 1ull << 30;

void store_u64(uint8_t* p, uint64_t v) { __builtin_memcpy(p, &v, 8); }
}  // namespace

Result<void> load_guest_image(const GuestMemory& mem, const ElfImage& elf, const uint8_t* image, size_t image_size,
                              const abi::BootInfo& info) {
    uint64_t ram = mem.size();
    if (ram < abi::kImageBase || ram % k2MiB != 0)
        return make_error(Errc::invalid_argument, "guest RAM must be a multiple of 2 MiB and at least 2 MiB", ram);
    uint64_t gib = (ram + k1GiB - 1) / k1GiB;
    if (gib > abi::kMaxGuestGib) return make_error(Errc::unsupported, "guest RAM above the 64-bit start layout's limit", ram);

    // Identity map of all RAM with 2 MiB pages: PML4[0] -> PDPT -> one PD per GiB.
    uint8_t* pml4 = mem.at(abi::kPml4Gpa, 4096);
    uint8_t* pdpt = mem.at(abi::kPdptGpa, 4096);
    if (!pml4 || !pdpt) return make_error(Errc::invalid_argument, "guest RAM too small for its page tables");
    store_u64(pml4, abi::kPdptGpa | kPageP | kPageRw);
    for (uint64_t g = 0; g < gib; ++g) {
        uint64_t pd_gpa = abi::kPdGpa + g * 4096;
        uint8_t* pd = mem.at(pd_gpa, 4096);
        if (!pd) return make_error(Errc::invalid_argument, "guest RAM too small for its page tables");
        store_u64(pdpt + g * 8, pd_gpa | kPageP | kPageRw);
        for (uint64_t i = 0; i < 512; ++i) {
            uint64_t addr = g * k1GiB + i * k2MiB;
            if (addr >= ram) break;
            store_u64(pd + i * 8, addr | kPageP | kPageRw | kPagePs);
        }
    }

    uint8_t* bi = mem.at(abi::kBootInfoGpa, sizeof(abi::BootInfo));
    if (!bi) return make_error(Errc::invalid_argument, "guest RAM too small for its boot information");
    __builtin_memcpy(bi, &info, sizeof info);

    for (size_t i = 0; i < elf.count; ++i) {
        const LoadSegment& s = elf.segments[i];
        uint8_t* dst = mem.at(s.gpa, s.mem_size);
        // parse_elf checked both bounds already; check again against this RAM.
        if (!dst || s.file_offset + s.file_size > image_size)
            return make_error(Errc::invalid_argument, "guest image segment outside RAM or image", s.gpa);
        __builtin_memcpy(dst, image + s.file_offset, s.file_size);
        // The rest (bss) is already zero: RAM was cleared before loading.
    }
    return {};
}

}  // namespace hv::guest
