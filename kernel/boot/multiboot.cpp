#include "kernel/boot/multiboot.hpp"

#include "kernel/lib/bytes.hpp"

namespace hv::boot {

namespace {

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

MemType mem_type_from_firmware(uint32_t t) {
    switch (t) {
        case 1: return MemType::usable;
        case 3: return MemType::acpi_reclaimable;
        case 4: return MemType::acpi_nvs;
        case 5: return MemType::bad;
        // Type 2 and every value we do not know: never hand it out as RAM.
        default: return MemType::reserved;
    }
}

void add_region(BootInfo& out, uint64_t base, uint64_t length, MemType type) {
    if (out.region_count == kMaxRegions) {
        ++out.regions_dropped;
        return;
    }
    out.regions[out.region_count++] = MemRegion{base, length, type};
}

void add_loader_data(BootInfo& out, uint64_t base, uint64_t length) {
    if (length == 0 || out.loader_data_count == kMaxLoaderData) return;
    uint64_t end;
    // A range that wraps is clipped: reserving too much is harmless here.
    if (add_overflows(base, length, &end)) end = ~uint64_t{0};
    out.loader_data[out.loader_data_count++] = PhysRange{base, end};
}

// Copies a NUL-terminated `src` of `len` bytes (excluding the NUL) into dst,
// truncating to dst_cap - 1. Returns true when it had to truncate.
bool copy_string(char* dst, size_t dst_cap, const uint8_t* src, size_t len) {
    size_t n = len < dst_cap - 1 ? len : dst_cap - 1;
    __builtin_memcpy(dst, src, n);
    dst[n] = '\0';
    return n < len;
}

// Loaders without a memory map still report mem_lower/mem_upper (Multiboot
// 0.6.96 §3.3 flags bit 0): lower memory starts at 0, upper memory at 1 MiB and
// runs to the first hole. Synthesizing from them keeps old loaders working.
void synthesize_from_basic_meminfo(BootInfo& out) {
    constexpr uint64_t kUpperBase = 1024 * 1024;
    if (out.mem_lower_kib != 0) add_region(out, 0, out.mem_lower_kib * 1024, MemType::usable);
    if (out.mem_upper_kib != 0) add_region(out, kUpperBase, out.mem_upper_kib * 1024, MemType::usable);
}

Result<void> finish_regions(BootInfo& out, const char* no_memory_info) {
    if (out.region_count == 0 && out.regions_dropped == 0 && out.has_basic_meminfo)
        synthesize_from_basic_meminfo(out);
    if (out.region_count == 0) return make_error(Errc::not_found, no_memory_info, out.info_phys);
    return ok_result();
}

// ---------------------------------------------------------------------------
// Multiboot 0.6.96 §3.3 "Boot information format"
// ---------------------------------------------------------------------------

constexpr uint32_t kMb1FlagMem = 1u << 0;
constexpr uint32_t kMb1FlagCmdline = 1u << 2;
constexpr uint32_t kMb1FlagMods = 1u << 3;
constexpr uint32_t kMb1FlagMmap = 1u << 6;
constexpr uint32_t kMb1FlagLoaderName = 1u << 9;

// Field offsets in the info structure.
constexpr uint64_t kMb1Flags = 0;
constexpr uint64_t kMb1MemLower = 4;
constexpr uint64_t kMb1MemUpper = 8;
constexpr uint64_t kMb1Cmdline = 16;
constexpr uint64_t kMb1ModsCount = 20;
constexpr uint64_t kMb1ModsAddr = 24;
constexpr uint64_t kMb1MmapLength = 44;
constexpr uint64_t kMb1MmapAddr = 48;
constexpr uint64_t kMb1LoaderName = 64;
// Up to and including the framebuffer colour info; reserved whole because the
// loader allocated it whole, even when we only read the first fields.
constexpr uint64_t kMb1InfoSize = 116;

// Module list entry: mod_start, mod_end, string, reserved.
constexpr uint64_t kMb1ModuleSize = 16;
// mmap entry: u32 size (not counting itself), u64 base_addr, u64 length, u32 type.
constexpr uint32_t kMb1MmapEntryMin = 20;
// Sanity bounds so a hostile length cannot make us walk gigabytes.
constexpr uint64_t kMb1MaxMmapLength = 1024 * 1024;
constexpr uint64_t kMb1MaxModules = 4096;
// MB1 strings are bare pointers with no length; a command line longer than this
// is not a command line.
constexpr uint64_t kMb1MaxString = 4096;

struct StringErrors {
    const char* unreadable;
    const char* unterminated;
};

// Reads the NUL-terminated string at `phys` byte by byte (copying as it goes), so
// a string ending just before an inaccessible page is still fine. Returns its
// length without the NUL; *truncated tells whether dst was too small.
Result<uint64_t> mb1_string(const PhysReader& mem, uint64_t phys, char* dst, size_t dst_cap,
                            bool* truncated, const StringErrors& err) {
    for (uint64_t i = 0; i < kMb1MaxString; ++i) {
        uint64_t addr;
        const uint8_t* p = add_overflows(phys, i, &addr) ? nullptr : mem.view(addr, 1);
        if (p == nullptr) return make_error(Errc::unmapped, err.unreadable, phys);
        if (i < dst_cap - 1) dst[i] = static_cast<char>(*p);
        if (*p != 0) continue;
        dst[i < dst_cap - 1 ? i : dst_cap - 1] = '\0';
        if (truncated != nullptr) *truncated = i > dst_cap - 1;
        return i;
    }
    return make_error(Errc::malformed, err.unterminated, phys);
}

Result<void> mb1_mmap(const PhysReader& mem, uint64_t addr, uint64_t length, BootInfo& out) {
    if (length > kMb1MaxMmapLength)
        return make_error(Errc::malformed, "multiboot1 mmap_length (flags bit 6) larger than 1 MiB", length);
    if (length == 0) return ok_result();  // nothing to read; mem_lower/upper may still help
    const uint8_t* buf = mem.view(addr, length);
    if (buf == nullptr) return make_error(Errc::unmapped, "multiboot1 mmap buffer (mmap_addr) not readable", addr);
    add_loader_data(out, addr, length);

    // Entries are variable-sized: the next one starts size + 4 bytes later, which
    // lets loaders append fields. size < 20 would cut the fields we read.
    uint64_t off = 0;
    while (off < length) {
        if (length - off < 4)
            return make_error(Errc::truncated, "multiboot1 mmap entry size field runs past mmap_length", off);
        uint32_t size = load_u32(buf + off);
        if (size < kMb1MmapEntryMin)
            return make_error(Errc::malformed, "multiboot1 mmap entry size below 20", off);
        if (length - off - 4 < size)
            return make_error(Errc::truncated, "multiboot1 mmap entry runs past mmap_length", off);
        const uint8_t* e = buf + off + 4;
        add_region(out, load_u64(e), load_u64(e + 8), mem_type_from_firmware(load_u32(e + 16)));
        off += uint64_t{size} + 4;
    }
    return ok_result();
}

Result<void> mb1_modules(const PhysReader& mem, uint64_t addr, uint64_t count, BootInfo& out) {
    if (count > kMb1MaxModules)
        return make_error(Errc::malformed, "multiboot1 mods_count (flags bit 3) implausibly large", count);
    if (count == 0) return ok_result();  // mods_addr may be anything then
    const uint8_t* list = mem.view(addr, count * kMb1ModuleSize);
    if (list == nullptr) return make_error(Errc::unmapped, "multiboot1 module list (mods_addr) not readable", addr);
    add_loader_data(out, addr, count * kMb1ModuleSize);

    for (uint64_t i = 0; i < count; ++i) {
        const uint8_t* m = list + i * kMb1ModuleSize;
        uint32_t start = load_u32(m);
        uint32_t end = load_u32(m + 4);
        uint32_t string = load_u32(m + 8);
        if (end < start) return make_error(Errc::malformed, "multiboot1 module mod_end below mod_start", i);
        if (out.module_count == kMaxModules) {
            ++out.modules_dropped;
            continue;
        }
        Module& mod = out.modules[out.module_count++];
        mod.start = start;
        mod.end = end;
        mod.cmdline[0] = '\0';
        // 0 means "no string" in practice; no loader places a string at address 0.
        if (string != 0) {
            uint64_t len = TRY(mb1_string(mem, string, mod.cmdline, sizeof mod.cmdline, nullptr,
                                          {"multiboot1 module string not readable",
                                           "multiboot1 module string not NUL-terminated within 4 KiB"}));
            add_loader_data(out, string, len + 1);
        }
    }
    return ok_result();
}

// ---------------------------------------------------------------------------
// Multiboot2 1.6 §3.6 "Boot information"
// ---------------------------------------------------------------------------

constexpr uint32_t kMb2TagEnd = 0;
constexpr uint32_t kMb2TagCmdline = 1;
constexpr uint32_t kMb2TagLoaderName = 2;
constexpr uint32_t kMb2TagModule = 3;
constexpr uint32_t kMb2TagBasicMeminfo = 4;
constexpr uint32_t kMb2TagMmap = 6;
constexpr uint32_t kMb2TagAcpiOld = 14;
constexpr uint32_t kMb2TagAcpiNew = 15;

constexpr uint64_t kMb2FixedSize = 8;   // total_size, reserved
constexpr uint64_t kMb2TagHeader = 8;   // type, size
constexpr uint64_t kMb2TagAlign = 8;    // §3.6.1: tags start 8-byte aligned
constexpr uint64_t kMb2MinInfoSize = kMb2FixedSize + kMb2TagHeader;  // fixed part + end tag
constexpr uint64_t kMb2MaxInfoSize = 1024 * 1024;  // GRUB's is a few KiB; bigger is garbage
constexpr uint32_t kMb2MmapEntryMin = 24;           // base, length, type, reserved

// Returns the length of the NUL-terminated string filling [p, p + cap), or an
// error when there is no NUL inside the tag.
Result<uint64_t> mb2_string(const uint8_t* p, uint64_t cap, const char* unterminated, uint64_t tag_off) {
    for (uint64_t i = 0; i < cap; ++i)
        if (p[i] == 0) return i;
    return make_error(Errc::malformed, unterminated, tag_off);
}

Result<void> mb2_mmap(const uint8_t* tag, uint32_t size, uint64_t off, BootInfo& out) {
    if (size < 16) return make_error(Errc::malformed, "multiboot2 mmap tag (type 6) smaller than 16 bytes", off);
    uint32_t entry_size = load_u32(tag + 8);
    // entry_version (tag + 12) is not checked: §3.6.8 says newer versions only
    // append fields, which entry_size already lets us step over.
    if (entry_size < kMb2MmapEntryMin || entry_size % 8 != 0)
        return make_error(Errc::malformed, "multiboot2 mmap tag (type 6) entry_size below 24 or not a multiple of 8",
                          entry_size);
    uint64_t bytes = size - 16;
    if (bytes % entry_size != 0)
        return make_error(Errc::malformed, "multiboot2 mmap tag (type 6) size not a whole number of entries", off);
    for (uint64_t e = 16; e < size; e += entry_size) {
        const uint8_t* p = tag + e;
        add_region(out, load_u64(p), load_u64(p + 8), mem_type_from_firmware(load_u32(p + 16)));
    }
    return ok_result();
}

Result<void> mb2_module(const uint8_t* tag, uint32_t size, uint64_t off, BootInfo& out) {
    // mod_start, mod_end, then a string of at least the NUL.
    if (size < 17) return make_error(Errc::malformed, "multiboot2 module tag (type 3) smaller than 17 bytes", off);
    uint32_t start = load_u32(tag + 8);
    uint32_t end = load_u32(tag + 12);
    if (end < start) return make_error(Errc::malformed, "multiboot2 module tag (type 3) mod_end below mod_start", off);
    uint64_t len = TRY(mb2_string(tag + 16, size - 16, "multiboot2 module tag (type 3) string not NUL-terminated", off));
    if (out.module_count == kMaxModules) {
        ++out.modules_dropped;
        return ok_result();
    }
    Module& mod = out.modules[out.module_count++];
    mod.start = start;
    mod.end = end;
    copy_string(mod.cmdline, sizeof mod.cmdline, tag + 16, len);
    return ok_result();
}

}  // namespace

Result<void> parse_multiboot1(const PhysReader& mem, uint64_t info_phys, BootInfo& out) {
    __builtin_memset(&out, 0, sizeof out);
    out.protocol = 1;
    out.info_phys = info_phys;
    out.info_size = kMb1InfoSize;

    const uint8_t* head = mem.view(info_phys, 4);
    if (head == nullptr) return make_error(Errc::unmapped, "multiboot1 info structure not readable", info_phys);
    uint32_t flags = load_u32(head + kMb1Flags);

    // Read only as far as the fields the flags announce, so a loader that
    // allocated a shorter (older) structure is still accepted.
    uint64_t needed = 4;
    if (flags & kMb1FlagMem) needed = kMb1MemUpper + 4;
    if (flags & kMb1FlagCmdline) needed = kMb1Cmdline + 4;
    if (flags & kMb1FlagMods) needed = kMb1ModsAddr + 4;
    if (flags & kMb1FlagMmap) needed = kMb1MmapAddr + 4;
    if (flags & kMb1FlagLoaderName) needed = kMb1LoaderName + 4;
    const uint8_t* info = mem.view(info_phys, needed);
    if (info == nullptr)
        return make_error(Errc::unmapped, "multiboot1 info fields announced by flags not readable", needed);

    if (flags & kMb1FlagMem) {
        out.has_basic_meminfo = true;
        out.mem_lower_kib = load_u32(info + kMb1MemLower);
        out.mem_upper_kib = load_u32(info + kMb1MemUpper);
    }
    if (flags & kMb1FlagCmdline) {
        uint32_t p = load_u32(info + kMb1Cmdline);
        if (p != 0) {
            uint64_t len = TRY(mb1_string(mem, p, out.cmdline, sizeof out.cmdline, &out.cmdline_truncated,
                                          {"multiboot1 cmdline (flags bit 2) not readable",
                                           "multiboot1 cmdline (flags bit 2) not NUL-terminated within 4 KiB"}));
            add_loader_data(out, p, len + 1);
        }
    }
    if (flags & kMb1FlagLoaderName) {
        uint32_t p = load_u32(info + kMb1LoaderName);
        if (p != 0) {
            uint64_t len =
                TRY(mb1_string(mem, p, out.loader_name, sizeof out.loader_name, nullptr,
                               {"multiboot1 boot_loader_name (flags bit 9) not readable",
                                "multiboot1 boot_loader_name (flags bit 9) not NUL-terminated within 4 KiB"}));
            add_loader_data(out, p, len + 1);
        }
    }
    if (flags & kMb1FlagMods)
        TRY(mb1_modules(mem, load_u32(info + kMb1ModsAddr), load_u32(info + kMb1ModsCount), out));
    if (flags & kMb1FlagMmap)
        TRY(mb1_mmap(mem, load_u32(info + kMb1MmapAddr), load_u32(info + kMb1MmapLength), out));

    return finish_regions(out, "multiboot1 info has neither mmap (flags bit 6) nor mem_lower/upper (bit 0)");
}

Result<void> parse_multiboot2(const PhysReader& mem, uint64_t info_phys, BootInfo& out) {
    __builtin_memset(&out, 0, sizeof out);
    out.protocol = 2;
    out.info_phys = info_phys;

    if (!is_aligned(info_phys, kMb2TagAlign))
        return make_error(Errc::malformed, "multiboot2 info address not 8-byte aligned (1.6 §3.6.1)", info_phys);
    const uint8_t* fixed = mem.view(info_phys, kMb2FixedSize);
    if (fixed == nullptr) return make_error(Errc::unmapped, "multiboot2 info structure not readable", info_phys);
    uint32_t total = load_u32(fixed);
    if (total < kMb2MinInfoSize)
        return make_error(Errc::malformed, "multiboot2 info total_size below 16 (fixed part + end tag)", total);
    if (total > kMb2MaxInfoSize) return make_error(Errc::malformed, "multiboot2 info total_size above 1 MiB", total);
    const uint8_t* info = mem.view(info_phys, total);
    if (info == nullptr)
        return make_error(Errc::unmapped, "multiboot2 info structure not readable up to total_size", total);
    out.info_size = total;

    bool rsdp_from_new = false;
    uint64_t off = kMb2FixedSize;
    for (;;) {
        // Every tag advances by at least 8 (size >= 8, rounded up to 8), and the
        // offset never exceeds total_size <= 1 MiB, so this loop terminates.
        if (off >= total || total - off < kMb2TagHeader)
            return make_error(Errc::malformed, "multiboot2 info has no end tag (type 0) before total_size", off);
        const uint8_t* tag = info + off;
        uint32_t type = load_u32(tag);
        uint32_t size = load_u32(tag + 4);
        if (size < kMb2TagHeader) return make_error(Errc::malformed, "multiboot2 tag size below 8 at offset", off);
        if (size > total - off) return make_error(Errc::truncated, "multiboot2 tag at offset runs past total_size", off);

        switch (type) {
            case kMb2TagEnd:
                if (size != kMb2TagHeader)
                    return make_error(Errc::malformed, "multiboot2 end tag (type 0) size not 8", off);
                return finish_regions(out, "multiboot2 info has neither mmap (tag 6) nor basic meminfo (tag 4)");
            case kMb2TagCmdline: {
                uint64_t len = TRY(
                    mb2_string(tag + 8, size - 8, "multiboot2 cmdline tag (type 1) string not NUL-terminated", off));
                out.cmdline_truncated = copy_string(out.cmdline, sizeof out.cmdline, tag + 8, len);
                break;
            }
            case kMb2TagLoaderName: {
                uint64_t len = TRY(mb2_string(tag + 8, size - 8,
                                              "multiboot2 loader name tag (type 2) string not NUL-terminated", off));
                copy_string(out.loader_name, sizeof out.loader_name, tag + 8, len);
                break;
            }
            case kMb2TagModule: TRY(mb2_module(tag, size, off, out)); break;
            case kMb2TagBasicMeminfo:
                if (size < 16)
                    return make_error(Errc::malformed, "multiboot2 basic meminfo tag (type 4) smaller than 16 bytes",
                                      off);
                out.has_basic_meminfo = true;
                out.mem_lower_kib = load_u32(tag + 8);
                out.mem_upper_kib = load_u32(tag + 12);
                break;
            case kMb2TagMmap: TRY(mb2_mmap(tag, size, off, out)); break;
            case kMb2TagAcpiOld:
            case kMb2TagAcpiNew: {
                // The new (XSDT-capable) RSDP wins whatever the tag order.
                bool is_new = type == kMb2TagAcpiNew;
                if (rsdp_from_new && !is_new) break;
                uint64_t len = size - 8;
                if (len > sizeof out.rsdp_copy) len = sizeof out.rsdp_copy;
                __builtin_memcpy(out.rsdp_copy, tag + 8, len);
                out.rsdp_copy_len = len;
                rsdp_from_new = is_new;
                break;
            }
            default: break;  // framebuffer, ELF sections, EFI, ...: not ours to parse
        }
        off = align_up(off + size, kMb2TagAlign);
    }
}

Result<void> parse_boot_info(const PhysReader& mem, uint32_t magic, uint64_t info_phys, BootInfo& out) {
    switch (magic) {
        case kMultiboot1Magic: return parse_multiboot1(mem, info_phys, out);
        case kMultiboot2Magic: return parse_multiboot2(mem, info_phys, out);
        default: return make_error(Errc::bad_signature, "boot loader magic in EAX is neither multiboot1 nor 2", magic);
    }
}

}  // namespace hv::boot
