#include "kernel/guest/elf_loader.hpp"

#include "kernel/lib/bytes.hpp"

namespace hv::guest {

namespace {
constexpr uint8_t kElfClass64 = 2;
constexpr uint8_t kElfData2Lsb = 1;
constexpr uint16_t kEtExec = 2;
constexpr uint16_t kEmX86_64 = 62;
constexpr uint32_t kPtLoad = 1;
constexpr uint32_t kPfX = 1, kPfW = 2;
constexpr size_t kEhdrSize = 64;
constexpr size_t kPhdrSize = 56;
constexpr uint16_t kMaxPhdrs = 64;
}  // namespace

Result<ElfImage> parse_elf(const uint8_t* d, size_t size, uint64_t min_gpa, uint64_t ram_bytes) {
    if (!d || size < kEhdrSize) return make_error(Errc::truncated, "guest image smaller than an ELF header", size);
    if (!(d[0] == 0x7F && d[1] == 'E' && d[2] == 'L' && d[3] == 'F'))
        return make_error(Errc::bad_signature, "guest image is not an ELF file");
    if (d[4] != kElfClass64) return make_error(Errc::unsupported, "guest image is not ELF64", d[4]);
    if (d[5] != kElfData2Lsb) return make_error(Errc::unsupported, "guest image is not little-endian", d[5]);
    if (load_u16(d + 16) != kEtExec) return make_error(Errc::unsupported, "guest image is not an executable (ET_EXEC)", load_u16(d + 16));
    if (load_u16(d + 18) != kEmX86_64) return make_error(Errc::unsupported, "guest image is not for x86-64", load_u16(d + 18));

    uint64_t entry = load_u64(d + 24);
    uint64_t phoff = load_u64(d + 32);
    uint16_t phentsize = load_u16(d + 54);
    uint16_t phnum = load_u16(d + 56);
    if (phentsize != kPhdrSize) return make_error(Errc::malformed, "ELF program header size is not 56", phentsize);
    if (phnum == 0 || phnum > kMaxPhdrs) return make_error(Errc::malformed, "ELF program header count out of range", phnum);
    uint64_t ph_end;
    if (add_overflows(phoff, uint64_t{phnum} * kPhdrSize, &ph_end) || ph_end > size)
        return make_error(Errc::truncated, "ELF program headers run past the end of the image", phoff);

    ElfImage img{};
    img.entry = entry;
    img.lowest_gpa = ~uint64_t{0};
    bool entry_ok = false;
    for (uint16_t i = 0; i < phnum; ++i) {
        const uint8_t* ph = d + phoff + uint64_t{i} * kPhdrSize;
        if (load_u32(ph) != kPtLoad) continue;
        uint32_t flags = load_u32(ph + 4);
        LoadSegment s{load_u64(ph + 8), load_u64(ph + 32), load_u64(ph + 24), load_u64(ph + 40),
                      (flags & kPfW) != 0, (flags & kPfX) != 0};
        if (s.mem_size == 0) continue;
        if (s.file_size > s.mem_size) return make_error(Errc::malformed, "ELF segment file size exceeds memory size", i);
        uint64_t file_end, gpa_end;
        if (add_overflows(s.file_offset, s.file_size, &file_end) || file_end > size)
            return make_error(Errc::truncated, "ELF segment data runs past the end of the image", i);
        if (add_overflows(s.gpa, s.mem_size, &gpa_end) || s.gpa < min_gpa || gpa_end > ram_bytes)
            return make_error(Errc::invalid_argument, "ELF segment does not fit in the guest's RAM", s.gpa);
        for (size_t j = 0; j < img.count; ++j) {
            const LoadSegment& o = img.segments[j];
            if (s.gpa < o.gpa + o.mem_size && o.gpa < gpa_end)
                return make_error(Errc::overlap, "ELF segments overlap", s.gpa);
        }
        if (img.count == ElfImage::kMaxSegments) return make_error(Errc::unsupported, "guest image has too many loadable segments", i);
        img.segments[img.count++] = s;
        if (s.gpa < img.lowest_gpa) img.lowest_gpa = s.gpa;
        if (gpa_end > img.end_gpa) img.end_gpa = gpa_end;
        if (s.exec && entry >= s.gpa && entry < gpa_end) entry_ok = true;
    }
    if (img.count == 0) return make_error(Errc::malformed, "guest image has no loadable segment");
    if (!entry_ok) return make_error(Errc::malformed, "ELF entry point is not in an executable segment", entry);
    return img;
}

}  // namespace hv::guest
