#include "kernel/mm/kernel_memory.hpp"

#include "kernel/cpu/x86.hpp"
#include "kernel/lib/bytes.hpp"
#include "kernel/lib/spinlock.hpp"
#include "kernel/log.hpp"
#include "kernel/mm/frame_allocator.hpp"
#include "kernel/mm/page_table.hpp"

extern "C" char __text_start[], __text_end[], __rodata_start[], __rodata_end[], __data_start[], __bss_end[];

namespace hv::mm {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kMmioWindow = 1ull << 39;  // one PML4 slot

// Page-table frames come from below 4 GiB: the boot tables reach only that far
// until the switch, and APs load CR3 with a 32-bit move in the trampoline.
struct KernelTableMemory {
    FrameAllocator* frames;
    uint64_t alloc_table();
    uint64_t* table(uint64_t phys) { return static_cast<uint64_t*>(phys_to_virt(phys)); }
};

using KernelPageTable = PageTable<X86Format, KernelTableMemory>;

constinit MemoryMap g_map;
constinit FrameAllocator g_frames;
constinit Spinlock g_lock;  // frames, page tables, and the virtual bump pointers
constinit KernelTableMemory g_table_memory{&g_frames};
alignas(KernelPageTable) constinit unsigned char g_pt_storage[sizeof(KernelPageTable)];
constinit KernelPageTable* g_pt = nullptr;
constinit uint64_t g_direct_limit = kBootDirectMapLimit;
constinit uint64_t g_direct_map_bytes = 0;
constinit uint64_t g_next_stack_slot = 0;
constinit uint64_t g_next_mmio = kMmioBase;
constinit Range g_free[kMaxRanges];
constinit DirectMapReader g_reader;

uint64_t KernelTableMemory::alloc_table() {
    auto r = frames->allocate(1, kPage, kBootDirectMapLimit);
    if (!r) return 0;
    __builtin_memset(phys_to_virt(*r), 0, kPage);
    return *r;
}

uint64_t image_addr(const char* sym) { return reinterpret_cast<uint64_t>(sym); }

Result<void> map_image(KernelPageTable& pt) {
    MapAttrs text{.write = false, .exec = true};
    MapAttrs rodata{.write = false, .exec = false};
    MapAttrs data{.write = true, .exec = false};
    auto map_section = [&](const char* start, const char* end, MapAttrs a) -> Result<void> {
        uint64_t s = image_addr(start), e = align_up(image_addr(end), kPage);
        if (e == s) return {};
        return pt.map(s, s, e - s, a, PageSize::size_4k);
    };
    TRY(map_section(__text_start, __text_end, text));
    TRY(map_section(__rodata_start, __rodata_end, rodata));
    TRY(map_section(__data_start, __bss_end, data));
    return {};
}

}  // namespace

void Reservations::add(uint64_t base, uint64_t end, const char* what) {
    if (end <= base) return;
    if (count_ == kCapacity) {
        overflowed_ = true;
        return;
    }
    ranges_[count_] = Range{align_down(base, kPage), align_up(end, kPage)};
    what_[count_] = what;
    ++count_;
}

const uint8_t* DirectMapReader::view(uint64_t phys, uint64_t len) const {
    uint64_t end;
    if (add_overflows(phys, len, &end) || end > g_direct_limit) return nullptr;
    return static_cast<const uint8_t*>(phys_to_virt(phys));
}

const DirectMapReader& phys_reader() { return g_reader; }

Result<void> init(const boot::BootInfo& boot, const Reservations& reserved, bool gib_pages,
                  uint64_t* trampoline_phys) {
    *trampoline_phys = 0;
    TRY(g_map.build(boot.regions, boot.region_count));
    if (g_map.total_usable() == 0) return make_error(Errc::no_memory, "memory map has no usable RAM");

    size_t nfree = TRY(g_map.free_ranges(reserved.ranges(), reserved.count(), g_free, kMaxRanges));

    // The allocator's bitmap covers 0..top of usable RAM; place it in the first
    // free range below 4 GiB that holds it, then reserve it.
    uint64_t top = align_up(g_map.highest_usable_end(), kPage);
    uint64_t frames = top / kPage;
    uint64_t bitmap_bytes = align_up(FrameAllocator::bitmap_words(frames) * 8, kPage);
    uint64_t bitmap_phys = 0;
    for (size_t i = 0; i < nfree; ++i) {
        Range r = g_free[i];
        uint64_t base = r.base < (1ull << 20) ? (1ull << 20) : r.base;  // keep low memory for the trampoline
        if (base < r.end && r.end - base >= bitmap_bytes && base + bitmap_bytes <= kBootDirectMapLimit) {
            bitmap_phys = base;
            break;
        }
    }
    if (bitmap_phys == 0) return make_error(Errc::no_memory, "no room below 4 GiB for the frame bitmap", bitmap_bytes);
    auto* bitmap = static_cast<uint64_t*>(phys_to_virt(bitmap_phys));
    __builtin_memset(bitmap, 0, bitmap_bytes);
    g_frames.init(bitmap, 0, frames);
    for (size_t i = 0; i < nfree; ++i) g_frames.add_free(g_free[i]);
    g_frames.reserve(Range{bitmap_phys, bitmap_phys + bitmap_bytes});

    // The AP trampoline needs a page below 1 MiB (SIPI vectors address 4 KiB pages there).
    if (auto t = g_frames.allocate(1, kPage, 1ull << 20)) *trampoline_phys = *t;

    auto* pt = new (g_pt_storage) KernelPageTable(g_table_memory);
    if (!pt->ok()) return make_error(Errc::no_memory, "cannot allocate the kernel PML4");
    TRY(map_image(*pt));
    if (*trampoline_phys)
        TRY(pt->map(*trampoline_phys, *trampoline_phys, kPage, MapAttrs{.write = false, .exec = true},
                    PageSize::size_4k));

    // Direct map: 0 up to max(4 GiB, end of the highest RAM or ACPI region),
    // rounded to 1 GiB. Reserved ranges far above RAM (QEMU reports one below
    // 1 TiB) are device space: drivers reach those through map_mmio(), so they
    // do not inflate the direct map. Device ranges below 4 GiB inside it are
    // uncached by the firmware's MTRRs.
    uint64_t ram_top = kBootDirectMapLimit;
    for (size_t i = 0; i < g_map.count(); ++i) {
        const auto& r = g_map[i];
        bool ram = r.type == boot::MemType::usable || r.type == boot::MemType::acpi_reclaimable ||
                   r.type == boot::MemType::acpi_nvs;
        if (ram && r.base + r.length > ram_top) ram_top = r.base + r.length;
    }
    uint64_t direct = align_up(ram_top, kGiB);
    TRY(pt->map(kDirectMapBase, 0, direct, MapAttrs{.write = true, .exec = false},
                gib_pages ? PageSize::size_1g : PageSize::size_2m));
    g_direct_map_bytes = direct;

    x86::write_cr3(pt->root());
    g_pt = pt;
    g_direct_limit = direct;
    return {};
}

const MemoryMap& memory_map() { return g_map; }

MemoryStats stats() {
    LockGuard guard(g_lock);
    return MemoryStats{
        .usable_bytes = g_map.total_usable(),
        .managed_bytes = g_frames.total_frames() * kPage,
        .free_bytes = g_frames.free_frames() * kPage,
        .direct_map_bytes = g_direct_map_bytes,
        .page_table_pages = g_pt ? g_pt->tables_used() : 0,
        .map_overlaps = g_map.overlaps(),
        .map_invalid = g_map.invalid(),
    };
}

uint64_t kernel_cr3() { return g_pt ? g_pt->root() : 0; }

Result<uint64_t> alloc_frames(uint64_t count, uint64_t align, uint64_t limit) {
    LockGuard guard(g_lock);
    return g_frames.allocate(count, align, limit);
}

uint64_t FrameTableMemory::alloc_table() {
    auto r = alloc_frames(1);
    if (!r) return 0;
    __builtin_memset(phys_to_virt(*r), 0, kPage);
    return *r;
}

FrameTableMemory& frame_table_memory() {
    static constinit FrameTableMemory m;
    return m;
}

Result<uint64_t> map_stack(uint64_t bytes, uint64_t* bottom) {
    if (bytes == 0 || !is_aligned(bytes, kPage) || bytes > kStackSlot - kPage)
        return make_error(Errc::invalid_argument, "stack size must be 4 KiB multiple below slot size", bytes);
    LockGuard guard(g_lock);
    if (!g_pt) return make_error(Errc::unsupported, "kernel page tables not active yet");
    uint64_t phys = TRY(g_frames.allocate(bytes / kPage));
    __builtin_memset(phys_to_virt(phys), 0, bytes);
    // The slot's lowest page stays unmapped: running off the stack faults
    // (into the #DF handler on its own IST stack) instead of corrupting memory.
    uint64_t slot = kStackBase + g_next_stack_slot * kStackSlot;
    uint64_t top = slot + kStackSlot;
    uint64_t base = top - bytes;
    auto r = g_pt->map(base, phys, bytes, MapAttrs{.write = true, .exec = false}, PageSize::size_4k);
    if (!r) {
        (void)g_frames.free(phys, bytes / kPage);
        return r.error();
    }
    ++g_next_stack_slot;
    *bottom = base;
    return top;
}

Result<volatile void*> map_mmio(uint64_t phys, uint64_t bytes) {
    uint64_t base = align_down(phys, kPage);
    uint64_t size = align_up(phys + bytes, kPage) - base;
    LockGuard guard(g_lock);
    if (!g_pt) return make_error(Errc::unsupported, "kernel page tables not active yet");
    if (g_next_mmio + size > kMmioBase + kMmioWindow) return make_error(Errc::no_memory, "MMIO window full", phys);
    uint64_t virt = g_next_mmio;
    TRY(g_pt->map(virt, base, size, MapAttrs{.write = true, .exec = false, .cache = CacheMode::uncacheable},
                  PageSize::size_4k));
    g_next_mmio += size;
    return reinterpret_cast<volatile void*>(virt + (phys - base));
}

}  // namespace hv::mm
