#pragma once
// The guest-visible PCI bus 0: a host bridge in slot 0 and up to 31 device
// functions, reached through configuration mechanism #1 (PCI Local Bus 3.0
// §3.2.2.3.2: CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC-0xCFF) and through
// the memory BARs the functions decode. There is no firmware in front of the
// guest, so the hypervisor assigns every BAR itself, inside an MMIO window
// given at construction; a guest may move a BAR afterwards.
//
// Concurrency: a guest's vCPUs may call in at the same time. Configuration
// cycles and BAR decoding are serialised by the bus lock; a BAR access itself
// runs after the lock is dropped (a device's MMIO handler may run a whole
// virtqueue and must not hold up the guest's other vCPUs), so a function
// protects its own BAR state.
//
// Pure: no hardware, no kernel globals.

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/result.hpp"
#include "kernel/lib/spinlock.hpp"
#include "kernel/vdev/pci_function.hpp"

namespace hv::vdev {

// Slot 0: class 0x060000 (host bridge), so Linux's pci_sanity_check()
// (arch/x86/pci/direct.c) accepts mechanism #1 on the first probe. It uses
// Red Hat's generic host-bridge ID 1b36:0008 rather than an i440FX (8086:1237)
// on purpose: an Intel chipset ID promises registers (PAM, SMRAM) and a PIIX
// ISA bridge that do not exist here and draws chipset quirks; no Linux driver
// or quirk binds to 1b36:0008.
class PciHostBridge final : public PciFunction {
  public:
    static constexpr PciIdentity kIdentity{0x1b36, 0x0008, 0, 0x060000, 0x1b36, 0x0008};
    PciHostBridge() : PciFunction(kIdentity) {}
    // No BARs: the bus never calls these.
    uint64_t bar_read(unsigned, uint64_t, unsigned) override { return 0; }
    void bar_write(unsigned, uint64_t, unsigned, uint64_t) override {}
};

// One BAR decoding guest-physical addresses now (for logging).
struct PciDecodedRange {
    uint8_t slot;
    uint8_t bar;
    uint64_t base;
    uint64_t size;
};

class PciBus {
  public:
    static constexpr unsigned kSlots = 32;
    static constexpr uint16_t CONFIG_ADDRESS = 0xcf8;
    static constexpr uint16_t CONFIG_DATA = 0xcfc;
    // §3.2.2.3.2 CONFIG_ADDRESS: enable bit 31, bus 23:16, device 15:11,
    // function 10:8, register 7:2. Bits 30:24 are reserved and bits 1:0 are
    // read-only, all read as 0.
    static constexpr uint32_t kConfigAddressEnable = 1u << 31;
    static constexpr uint32_t kConfigAddressWritable = 0x80fffffcu;
    // Each BAR gets at least a page of its own, so the glue can keep the
    // window unmapped in the EPT at page granularity.
    static constexpr uint64_t kMinBarAlign = 4096;

    // window_base/window_size: guest-physical range the hypervisor assigns BARs
    // from (e.g. 0xE0000000 / 256 MiB), outside the guest's RAM.
    PciBus(uint64_t window_base, uint64_t window_size);
    PciBus(const PciBus&) = delete;
    PciBus& operator=(const PciBus&) = delete;

    // Places fn at slot (1..31) and assigns each of its memory BARs a
    // size-aligned address inside the window (mem32 BARs below 4 GiB). Fails
    // without side effects when the slot is taken or the window is full.
    Result<void> attach(unsigned slot, PciFunction& fn);
    PciHostBridge& host_bridge() { return host_; }
    // The window BARs are assigned from: the glue keeps it out of the EPT so
    // accesses exit and come here.
    uint64_t window_base() const { return window_base_; }
    uint64_t window_end() const { return window_end_; }

    // ---- Port I/O: the glue sends ports 0xCF8-0xCFF here ----
    static constexpr bool handles_port(uint16_t port) { return port >= CONFIG_ADDRESS && port <= CONFIG_DATA + 3; }
    // width 1, 2 or 4. A read nobody answers is all-ones of the access width
    // (master abort, §6.1); a write nobody answers is dropped.
    uint32_t io_read(uint16_t port, unsigned width);
    void io_write(uint16_t port, unsigned width, uint32_t value);

    // ---- MMIO: the glue sends EPT-violation accesses (width 1/2/4/8) here ----
    // false: no enabled memory BAR contains gpa (or width is not 1/2/4/8); the
    // caller decides what that means. An access that starts inside a BAR but
    // runs past its end is claimed and dropped (reads all-ones), counted.
    bool mmio_read(uint64_t gpa, unsigned width, uint64_t* value);
    bool mmio_write(uint64_t gpa, unsigned width, uint64_t value);
    // Does an enabled memory BAR contain gpa now? (For a caller that asks
    // before it decodes the instruction; mmio_read/mmio_write decide again.)
    bool decodes(uint64_t gpa) const;

    // The BARs decoding now: memory space enabled, size > 0; lowest slot and
    // BAR first (the one that wins if a guest made two overlap). A BAR the
    // guest moved outside the window still decodes: the glue sends only
    // EPT-unmapped addresses here, so a BAR moved over RAM never sees an access
    // and cannot expose anything. Writes up to max entries; returns the total.
    size_t decoded_ranges(PciDecodedRange* out, size_t max) const;
    // Bumped by every configuration write that may change decoding (command
    // register or a BAR): the glue logs decoded_ranges() when it moves.
    uint64_t decode_generation() const { return __atomic_load_n(&decode_generation_, __ATOMIC_RELAXED); }

    // Power-on state of the bus and every function (guest restart).
    void reset();

    // Accesses with no defined meaning: bad widths, CONFIG_DATA accesses past
    // 0xCFF, MMIO running past a BAR's end.
    uint64_t bad_accesses() const { return __atomic_load_n(&bad_accesses_, __ATOMIC_RELAXED); }

  private:
    struct Target {
        PciFunction* fn;
        unsigned bar;
        uint64_t off;
        uint64_t size;
    };
    PciFunction* config_target();  // the function CONFIG_ADDRESS selects, nullptr if none
    bool decode(uint64_t gpa, Target* t) const;
    // Calls visit(slot, bar, fn) for each BAR decoding now, lowest slot and
    // BAR first, until it returns true. Lock held by the caller.
    template <typename Visit>
    void for_each_decoding_bar(Visit visit) const;
    // none: not ours; dropped: starts in a BAR, runs past its end; inside: pass on.
    enum class Claim : uint8_t { none, dropped, inside };
    Claim claim(uint64_t gpa, unsigned width, Target* t);
    void count_bad() { __atomic_fetch_add(&bad_accesses_, 1, __ATOMIC_RELAXED); }

    mutable Spinlock lock_;
    PciHostBridge host_;
    PciFunction* slots_[kSlots] = {};
    uint32_t config_address_ = 0;
    uint64_t window_base_;
    uint64_t window_end_;  // exclusive; saturated at 2^64 - 1
    uint64_t next_free_;
    uint64_t decode_generation_ = 0;
    uint64_t bad_accesses_ = 0;
};

}  // namespace hv::vdev
