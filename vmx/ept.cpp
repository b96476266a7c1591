#include "vmx/ept.hpp"

#include "kernel/lib/bytes.hpp"

namespace hv::vmx {

namespace {

constexpr uint64_t k4K = mm::page_bytes(mm::PageSize::size_4k);

// The EPTP for a PML4 at 0x1000: WB (6) | walk length 4 - 1 (3 << 3) | A/D (1 << 6).
static_assert(make_eptp(0x1000, false) == 0x101E);
static_assert(make_eptp(0x1000, true) == 0x105E);
static_assert(make_eptp(0x1FFF, false) == 0x101E);  // low bits never reach the control field

// Guest RAM leaves: R|W|X, WB in bits 5:3, bit 7 for large pages.
static_assert(EptFormat::leaf(0x5000, kGuestRamAttrs, mm::PageSize::size_4k) == 0x5037);
static_assert(EptFormat::leaf(0x20'0000, kGuestRamAttrs, mm::PageSize::size_2m) == 0x20'00B7);
static_assert(EptFormat::table(0x3000) == 0x3007);

}  // namespace

bool eptp_supported(const VmxCaps& caps, bool accessed_dirty) {
    return caps.ept && caps.ept_4level && caps.ept_wb && (!accessed_dirty || caps.ept_ad);
}

uint64_t ept_max_page_bytes(const VmxCaps& caps) {
    if (caps.ept_2m && caps.ept_1g) return mm::page_bytes(mm::PageSize::size_1g);
    if (caps.ept_2m) return mm::page_bytes(mm::PageSize::size_2m);
    return k4K;
}

Result<mm::PageSize> ept_page_size(uint64_t max_page_bytes) {
    constexpr mm::PageSize kSizes[] = {mm::PageSize::size_4k, mm::PageSize::size_2m, mm::PageSize::size_1g};
    for (mm::PageSize s : kSizes)
        if (max_page_bytes == mm::page_bytes(s)) return s;
    return make_error(Errc::invalid_argument, "ept: max page size is not 4 KiB, 2 MiB or 1 GiB", max_page_bytes);
}

Result<uint64_t> check_guest_ram(const HostChunk* chunks, size_t count, uint64_t max_page_bytes) {
    TRY(ept_page_size(max_page_bytes));
    if (chunks == nullptr || count == 0) return make_error(Errc::invalid_argument, "ept: guest has no RAM chunks");
    uint64_t total = 0;
    for (size_t i = 0; i < count; ++i) {
        const HostChunk& c = chunks[i];
        if (c.bytes == 0) return make_error(Errc::invalid_argument, "ept: guest RAM chunk is empty", i);
        if (!is_aligned(c.host_phys, k4K))
            return make_error(Errc::invalid_argument, "ept: guest RAM chunk not 4 KiB aligned", c.host_phys);
        if (!is_aligned(c.bytes, k4K))
            return make_error(Errc::invalid_argument, "ept: guest RAM chunk size not a multiple of 4 KiB", c.bytes);
        uint64_t host_last = 0;
        if (add_overflows(c.host_phys, c.bytes - 1, &host_last) || host_last >= EptFormat::kPhysLimit)
            return make_error(Errc::invalid_argument, "ept: guest RAM chunk beyond host physical addresses",
                              c.host_phys);
        // total is also the GPA where the next chunk goes; the last one must
        // still end within what a 4-level walk translates.
        if (add_overflows(total, c.bytes, &total) || total > EptFormat::kGuestPhysLimit)
            return make_error(Errc::invalid_argument, "ept: guest RAM extends beyond GPA 2^48", i);
        // Two chunks sharing host pages would alias guest RAM: a configuration
        // bug, and the guest would see writes appear at two GPAs.
        for (size_t j = 0; j < i; ++j) {
            const uint64_t other_last = chunks[j].host_phys + (chunks[j].bytes - 1);  // checked at j
            if (c.host_phys <= other_last && chunks[j].host_phys <= host_last)
                return make_error(Errc::overlap, "ept: guest RAM chunks share host memory", c.host_phys);
        }
    }
    return total;
}

EptViolation decode_ept_violation(uint64_t q) {
    EptViolation v{};
    v.read = (q & kEptQualRead) != 0;
    v.write = (q & kEptQualWrite) != 0;
    v.fetch = (q & kEptQualFetch) != 0;
    v.readable = (q & kEptQualReadable) != 0;
    v.writable = (q & kEptQualWritable) != 0;
    v.executable = (q & kEptQualExecutable) != 0;
    v.gla_valid = (q & kEptQualGlaValid) != 0;
    v.linear_access = v.gla_valid && (q & kEptQualLinearAccess) != 0;
    v.nmi_unblocking = (q & kEptQualNmiUnblocking) != 0;
    return v;
}

}  // namespace hv::vmx
