#include "kernel/vdev/pci_bus.hpp"

#include "kernel/lib/bytes.hpp"

namespace hv::vdev {

PciBus::PciBus(uint64_t window_base, uint64_t window_size) : window_base_(window_base), next_free_(window_base) {
    if (add_overflows(window_base, window_size, &window_end_)) window_end_ = ~uint64_t{0};
    slots_[0] = &host_;
}

Result<void> PciBus::attach(unsigned slot, PciFunction& fn) {
    if (slot == 0 || slot >= kSlots) return make_error(Errc::invalid_argument, "pci: slot out of range", slot);
    LockGuard g(lock_);
    if (slots_[slot] != nullptr) return make_error(Errc::overlap, "pci: slot already taken", slot);
    // Plan every BAR first, commit only if all fit.
    uint64_t next = next_free_;
    uint64_t addr[pci::NUM_BARS] = {};
    for (unsigned b = 0; b < pci::NUM_BARS; ++b) {
        const BarType t = fn.bar_type(b);
        if (t != BarType::mem32 && t != BarType::mem64) continue;
        const uint64_t size = fn.bar_size(b);
        const uint64_t align = size > kMinBarAlign ? size : kMinBarAlign;
        uint64_t a, end;
        if (add_overflows(next, align - 1, &a)) return make_error(Errc::no_memory, "pci: MMIO window full", slot);
        a = align_down(a, align);
        if (add_overflows(a, size, &end) || end > window_end_)
            return make_error(Errc::no_memory, "pci: MMIO window full", slot);
        if (t == BarType::mem32 && end > (uint64_t{1} << 32))
            return make_error(Errc::unsupported, "pci: 32-bit BAR above 4 GiB", slot);
        addr[b] = a;
        next = end;
    }
    for (unsigned b = 0; b < pci::NUM_BARS; ++b)
        if (fn.bar_type(b) == BarType::mem32 || fn.bar_type(b) == BarType::mem64) fn.assign_bar(b, addr[b]);
    next_free_ = next;
    slots_[slot] = &fn;
    __atomic_fetch_add(&decode_generation_, 1, __ATOMIC_RELAXED);
    return ok_result();
}

PciFunction* PciBus::config_target() {
    if (!(config_address_ & kConfigAddressEnable)) return nullptr;
    const unsigned bus = (config_address_ >> 16) & 0xff;
    const unsigned dev = (config_address_ >> 11) & 0x1f;
    const unsigned func = (config_address_ >> 8) & 0x7;
    // Only bus 0 exists (no PCI-PCI bridges, so no type-1 cycles reach
    // anything) and every function is single-function: function 0 only.
    if (bus != 0 || func != 0) return nullptr;
    return slots_[dev];
}

uint32_t PciBus::io_read(uint16_t port, unsigned width) {
    if (width != 1 && width != 2 && width != 4) {
        count_bad();
        return 0xffffffffu;
    }
    const auto ones = static_cast<uint32_t>(access_mask(width));
    LockGuard g(lock_);
    // §3.2.2.3.2: only a DWORD access to 0xCF8 is CONFIG_ADDRESS; byte and
    // word accesses to 0xCF8-0xCFB are ordinary I/O cycles that nothing here
    // claims (on a PIIX, 0xCF9 is the reset control register; we have none).
    if (port == CONFIG_ADDRESS && width == 4) return config_address_;
    if (port < CONFIG_DATA || port > CONFIG_DATA + 3) return ones;
    const unsigned byte = port - CONFIG_DATA;
    if (byte + width > 4) {  // runs past 0xCFF: not a configuration cycle
        count_bad();
        return ones;
    }
    PciFunction* fn = config_target();
    if (fn == nullptr) return ones;  // §6.1: absent devices read all-ones
    return fn->config_read(static_cast<uint16_t>((config_address_ & 0xfc) + byte), width) & ones;
}

void PciBus::io_write(uint16_t port, unsigned width, uint32_t value) {
    if (width != 1 && width != 2 && width != 4) {
        count_bad();
        return;
    }
    LockGuard g(lock_);
    if (port == CONFIG_ADDRESS && width == 4) {
        config_address_ = value & kConfigAddressWritable;
        return;
    }
    if (port < CONFIG_DATA || port > CONFIG_DATA + 3) return;
    const unsigned byte = port - CONFIG_DATA;
    if (byte + width > 4) {
        count_bad();
        return;
    }
    PciFunction* fn = config_target();
    if (fn == nullptr) return;
    const auto off = static_cast<uint16_t>((config_address_ & 0xfc) + byte);
    fn->config_write(off, width, value & static_cast<uint32_t>(access_mask(width)));
    // Command register or a BAR touched: decoding may have changed.
    if (ranges_overlap(off, width, pci::COMMAND, 2) || ranges_overlap(off, width, pci::BASE_ADDRESS_0, 24))
        __atomic_fetch_add(&decode_generation_, 1, __ATOMIC_RELAXED);
}

template <typename Visit>
void PciBus::for_each_decoding_bar(Visit visit) const {
    for (unsigned s = 0; s < kSlots; ++s) {
        PciFunction* fn = slots_[s];
        if (fn == nullptr || !fn->memory_space_enabled()) continue;
        for (unsigned b = 0; b < pci::NUM_BARS; ++b) {
            const BarType type = fn->bar_type(b);
            if ((type == BarType::mem32 || type == BarType::mem64) && visit(s, b, fn)) return;
        }
    }
}

bool PciBus::decode(uint64_t gpa, Target* t) const {
    bool found = false;
    for_each_decoding_bar([&](unsigned, unsigned b, PciFunction* fn) {
        const uint64_t base = fn->bar_address(b), size = fn->bar_size(b);
        // base is size-aligned (the low address bits are not writable), so
        // base + size - 1 cannot wrap.
        if (gpa < base || gpa - base >= size) return false;
        *t = Target{fn, b, gpa - base, size};
        found = true;
        return true;
    });
    return found;
}

bool PciBus::decodes(uint64_t gpa) const {
    Target t;
    LockGuard g(lock_);
    return decode(gpa, &t);
}

PciBus::Claim PciBus::claim(uint64_t gpa, unsigned width, Target* t) {
    if (!valid_access_width(width)) {
        count_bad();
        return Claim::none;
    }
    {
        LockGuard g(lock_);
        if (!decode(gpa, t)) return Claim::none;
    }
    if (t->off + width > t->size) {
        count_bad();
        return Claim::dropped;
    }
    return Claim::inside;
}

bool PciBus::mmio_read(uint64_t gpa, unsigned width, uint64_t* value) {
    Target t;
    switch (claim(gpa, width, &t)) {
        case Claim::none: return false;
        case Claim::dropped: *value = access_mask(width); return true;
        case Claim::inside: break;
    }
    *value = t.fn->bar_read(t.bar, t.off, width) & access_mask(width);
    return true;
}

bool PciBus::mmio_write(uint64_t gpa, unsigned width, uint64_t value) {
    Target t;
    const Claim c = claim(gpa, width, &t);
    if (c == Claim::inside) t.fn->bar_write(t.bar, t.off, width, value & access_mask(width));
    return c != Claim::none;
}

size_t PciBus::decoded_ranges(PciDecodedRange* out, size_t max) const {
    LockGuard g(lock_);
    size_t n = 0;
    for_each_decoding_bar([&](unsigned s, unsigned b, PciFunction* fn) {
        if (n < max)
            out[n] =
                PciDecodedRange{static_cast<uint8_t>(s), static_cast<uint8_t>(b), fn->bar_address(b), fn->bar_size(b)};
        ++n;
        return false;
    });
    return n;
}

void PciBus::reset() {
    LockGuard g(lock_);
    config_address_ = 0;
    for (PciFunction* fn : slots_)
        if (fn != nullptr) fn->reset();
    __atomic_fetch_add(&decode_generation_, 1, __ATOMIC_RELAXED);
}

}  // namespace hv::vdev
