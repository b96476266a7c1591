// The guest-visible PCI bus: configuration mechanism #1 as Linux drives it
// (arch/x86/pci/direct.c), type-0 header semantics, BAR sizing and
// assignment, memory-space gating of MMIO decoding, hostile accesses.
#include "kernel/vdev/pci_bus.hpp"

#include <gtest/gtest.h>

#include <vector>

using hv::vdev::BarType;
using hv::vdev::PciBus;
using hv::vdev::PciDecodedRange;
using hv::vdev::PciFunction;
using hv::vdev::PciIdentity;
namespace pci = hv::vdev::pci;

namespace {

constexpr uint64_t kWindow = 0xe0000000;
constexpr uint64_t kWindowSize = 256ull << 20;

struct Access {
    unsigned bar;
    uint64_t off;
    unsigned width;
    uint64_t value;
};

// A function with one 32-bit BAR of 4 KiB and one 64-bit BAR of 16 KiB whose
// registers read back as a pattern of the offset, and that records writes.
class FakeFunction final : public PciFunction {
  public:
    static constexpr PciIdentity kId{0x1234, 0x5678, 0x02, 0x0c0330, 0xabcd, 0xef01};
    FakeFunction() : PciFunction(kId) {
        declare_ok = declare_bar(0, BarType::mem32, 0x1000) && declare_bar(2, BarType::mem64, 0x4000);
    }
    uint64_t bar_read(unsigned bar, uint64_t off, unsigned width) override {
        reads.push_back({bar, off, width, 0});
        return 0x1122334455667788ull + off + (uint64_t{bar} << 56);
    }
    void bar_write(unsigned bar, uint64_t off, unsigned width, uint64_t value) override {
        writes.push_back({bar, off, width, value});
    }
    bool declare_ok = false;
    std::vector<Access> reads, writes;
};

uint32_t address(unsigned bus, unsigned dev, unsigned fn, unsigned reg) {
    return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}
uint32_t cfg_read(PciBus& b, unsigned dev, unsigned reg, unsigned width, unsigned bus = 0, unsigned fn = 0) {
    b.io_write(0xcf8, 4, address(bus, dev, fn, reg));
    return b.io_read(static_cast<uint16_t>(0xcfc + (reg & 3)), width);
}
void cfg_write(PciBus& b, unsigned dev, unsigned reg, unsigned width, uint32_t v) {
    b.io_write(0xcf8, 4, address(0, dev, 0, reg));
    b.io_write(static_cast<uint16_t>(0xcfc + (reg & 3)), width, v);
}

class PciBusTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(fn.declare_ok);
        ASSERT_TRUE(bus.attach(3, fn).ok());
    }
    void enable_memory() { cfg_write(bus, 3, pci::COMMAND, 2, pci::COMMAND_MEMORY); }
    PciBus bus{kWindow, kWindowSize};
    FakeFunction fn;
};

// Linux's pci_scan_slot(): vendor/device dword of function 0 of every slot;
// absent slots read all-ones (PCI 3.0 §6.1), and a single-function header
// type means functions 1-7 are not looked at (they are absent anyway).
TEST_F(PciBusTest, ProbingAllSlotsFindsHostBridgeAndFunction) {
    std::vector<unsigned> present;
    for (unsigned slot = 0; slot < 32; ++slot) {
        const uint32_t id = cfg_read(bus, slot, pci::VENDOR_ID, 4);
        if (id == 0xffffffffu) continue;
        present.push_back(slot);
        EXPECT_EQ(cfg_read(bus, slot, pci::HEADER_TYPE, 1) & 0x80, 0u) << "slot " << slot;
        for (unsigned f = 1; f < 8; ++f) EXPECT_EQ(cfg_read(bus, slot, 0, 4, 0, f), 0xffffffffu);
    }
    EXPECT_EQ(present, (std::vector<unsigned>{0, 3}));
    EXPECT_EQ(cfg_read(bus, 0, pci::VENDOR_ID, 4), 0x00081b36u);
    EXPECT_EQ(cfg_read(bus, 3, pci::VENDOR_ID, 4), 0x56781234u);
    // pci_sanity_check() accepts mechanism #1 because slot 0 is a host bridge.
    EXPECT_EQ(cfg_read(bus, 0, pci::CLASS_DEVICE, 2), 0x0600u);
    EXPECT_EQ(cfg_read(bus, 0, pci::REVISION_ID, 4), 0x06000000u);
    EXPECT_EQ(cfg_read(bus, 3, pci::REVISION_ID, 4), 0x0c033002u);
    EXPECT_EQ(cfg_read(bus, 3, pci::SUBSYSTEM_VENDOR_ID, 4), 0xef01abcdu);
    EXPECT_EQ(cfg_read(bus, 3, pci::INTERRUPT_PIN, 1), 0u);  // MSI-X only, no INTx
}

// arch/x86/pci/direct.c pci_check_type1(), step by step.
TEST_F(PciBusTest, LinuxType1DetectionSequence) {
    bus.io_write(0xcfb, 1, 0x01);  // a byte write at 0xCFB is not CONFIG_ADDRESS
    const uint32_t saved = bus.io_read(0xcf8, 4);
    EXPECT_EQ(saved, 0u);
    bus.io_write(0xcf8, 4, 0x80000000u);
    EXPECT_EQ(bus.io_read(0xcf8, 4), 0x80000000u);
    bus.io_write(0xcf8, 4, saved);
    EXPECT_EQ(bus.io_read(0xcf8, 4), saved);
}

TEST_F(PciBusTest, ConfigAddressReservedBitsReadZero) {
    bus.io_write(0xcf8, 4, 0xffffffffu);
    EXPECT_EQ(bus.io_read(0xcf8, 4), 0x80fffffcu);  // bits 30:24 and 1:0 read as 0
}

TEST_F(PciBusTest, NarrowAccessesToConfigAddressAreNotConfigCycles) {
    bus.io_write(0xcf8, 4, address(0, 3, 0, 0));
    struct Case {
        uint16_t port;
        unsigned width;
    };
    for (Case c : {Case{0xcf8, 1}, Case{0xcf8, 2}, Case{0xcf9, 1}, Case{0xcfa, 2}, Case{0xcfb, 1}, Case{0xcf9, 4}}) {
        bus.io_write(c.port, c.width, 0);
        EXPECT_EQ(bus.io_read(c.port, c.width), hv::vdev::access_mask(c.width)) << c.port << "/" << c.width;
    }
    EXPECT_EQ(bus.io_read(0xcf8, 4), address(0, 3, 0, 0));  // CONFIG_ADDRESS unchanged
}

// Byte, word and dword reads at CONFIG_DATA + n see the same bytes as the dword.
TEST_F(PciBusTest, ByteWordDwordConfigReadsAgree) {
    for (unsigned reg = 0; reg < 0x40; reg += 4) {
        const uint32_t d = cfg_read(bus, 3, reg, 4);
        for (unsigned b = 0; b < 4; ++b) EXPECT_EQ(cfg_read(bus, 3, reg + b, 1), (d >> (8 * b)) & 0xff) << reg + b;
        for (unsigned b = 0; b < 4; b += 2) EXPECT_EQ(cfg_read(bus, 3, reg + b, 2), (d >> (8 * b)) & 0xffff);
        // An unaligned word inside the dword (CONFIG_DATA + 1) is legal too.
        EXPECT_EQ(cfg_read(bus, 3, reg + 1, 2), (d >> 8) & 0xffff);
    }
}

TEST_F(PciBusTest, ConfigDataAccessPastCfffIsNotAConfigCycle) {
    const uint64_t bad = bus.bad_accesses();
    bus.io_write(0xcf8, 4, address(0, 3, 0, pci::COMMAND));
    EXPECT_EQ(bus.io_read(0xcfd, 4), 0xffffffffu);
    EXPECT_EQ(bus.io_read(0xcff, 2), 0xffffu);
    bus.io_write(0xcfe, 4, 0xffffffffu);
    EXPECT_EQ(cfg_read(bus, 3, pci::COMMAND, 2), 0u);
    EXPECT_EQ(bus.bad_accesses(), bad + 3);
}

TEST_F(PciBusTest, EnableBitClearMeansNoConfigCycle) {
    bus.io_write(0xcf8, 4, address(0, 3, 0, pci::COMMAND) & ~0x80000000u);
    EXPECT_EQ(bus.io_read(0xcfc, 4), 0xffffffffu);
    bus.io_write(0xcfc, 2, pci::COMMAND_MEMORY);
    EXPECT_EQ(cfg_read(bus, 3, pci::COMMAND, 2), 0u);
}

TEST_F(PciBusTest, OtherBusesAndFunctionsAreAbsent) {
    for (unsigned b : {1u, 2u, 255u}) EXPECT_EQ(cfg_read(bus, 3, 0, 4, b), 0xffffffffu) << "bus " << b;
    EXPECT_EQ(cfg_read(bus, 0, 0, 2, 1), 0xffffu);
    EXPECT_EQ(cfg_read(bus, 3, 0, 1, 0, 7), 0xffu);
    // A write there goes nowhere: function 0 of the same slot is unchanged.
    bus.io_write(0xcf8, 4, address(1, 3, 0, pci::COMMAND));
    bus.io_write(0xcfc, 2, pci::COMMAND_MEMORY);
    EXPECT_EQ(cfg_read(bus, 3, pci::COMMAND, 2), 0u);
}

TEST_F(PciBusTest, BadWidthsAreCountedAndAnswerAllOnes) {
    const uint64_t bad = bus.bad_accesses();
    EXPECT_EQ(bus.io_read(0xcfc, 3), 0xffffffffu);
    EXPECT_EQ(bus.io_read(0xcfc, 0), 0xffffffffu);
    bus.io_write(0xcf8, 8, 0);
    uint64_t v = 0;
    EXPECT_FALSE(bus.mmio_read(kWindow, 3, &v));
    EXPECT_FALSE(bus.mmio_write(kWindow, 16, 0));
    EXPECT_EQ(bus.bad_accesses(), bad + 5);
}

TEST_F(PciBusTest, PortsOutsideCf8CffAreNotHandled) {
    EXPECT_TRUE(PciBus::handles_port(0xcf8));
    EXPECT_TRUE(PciBus::handles_port(0xcff));
    EXPECT_FALSE(PciBus::handles_port(0xcf7));
    EXPECT_FALSE(PciBus::handles_port(0xd00));
    EXPECT_EQ(bus.io_read(0x3f8, 1), 0xffu);
}

TEST_F(PciBusTest, HeaderWritableBitsFollowTheSpec) {
    struct Case {
        uint16_t reg;
        unsigned width;
        uint32_t after_all_ones;  // what reads back after writing all-ones
    };
    const Case cases[] = {
        {pci::VENDOR_ID, 2, 0x1234},
        {pci::DEVICE_ID, 2, 0x5678},
        {pci::COMMAND, 2, pci::COMMAND_MEMORY | pci::COMMAND_MASTER | pci::COMMAND_INTX_DISABLE},
        {pci::STATUS, 2, 0},  // no capabilities on this function, no RW1C bits ever set
        {pci::REVISION_ID, 1, 0x02},
        {pci::CACHE_LINE_SIZE, 1, 0xff},
        {pci::LATENCY_TIMER, 1, 0},
        {pci::HEADER_TYPE, 1, 0},
        {pci::BIST, 1, 0},
        {pci::ROM_ADDRESS, 4, 0},  // no expansion ROM: sizing reads 0
        {pci::CAPABILITY_LIST, 1, 0},
        {pci::INTERRUPT_LINE, 1, 0xff},
        {pci::INTERRUPT_PIN, 1, 0},
        {0x40, 4, 0},  // no capabilities: device-specific space is read-only zero
        {0xfc, 4, 0},
    };
    for (const Case& c : cases) {
        cfg_write(bus, 3, c.reg, c.width, 0xffffffffu);
        EXPECT_EQ(cfg_read(bus, 3, c.reg, c.width), c.after_all_ones) << "reg " << c.reg;
    }
}

// Linux's __pci_read_base(): save, write all-ones, read the size mask, restore.
TEST_F(PciBusTest, BarSizingRoundTrip) {
    const uint32_t bar0 = cfg_read(bus, 3, pci::BASE_ADDRESS_0, 4);
    cfg_write(bus, 3, pci::BASE_ADDRESS_0, 4, 0xffffffffu);
    EXPECT_EQ(cfg_read(bus, 3, pci::BASE_ADDRESS_0, 4), 0xfffff000u);  // 4 KiB, mem32, not prefetchable
    cfg_write(bus, 3, pci::BASE_ADDRESS_0, 4, bar0);
    EXPECT_EQ(cfg_read(bus, 3, pci::BASE_ADDRESS_0, 4), bar0);

    const uint16_t lo = pci::BASE_ADDRESS_0 + 8, hi = pci::BASE_ADDRESS_0 + 12;
    const uint32_t l = cfg_read(bus, 3, lo, 4), h = cfg_read(bus, 3, hi, 4);
    EXPECT_EQ(l & 0xf, pci::BAR_MEM_TYPE_64);
    cfg_write(bus, 3, lo, 4, 0xffffffffu);
    cfg_write(bus, 3, hi, 4, 0xffffffffu);
    EXPECT_EQ(cfg_read(bus, 3, lo, 4), 0xffffc004u);  // 16 KiB, 64-bit
    EXPECT_EQ(cfg_read(bus, 3, hi, 4), 0xffffffffu);
    cfg_write(bus, 3, lo, 4, l);
    cfg_write(bus, 3, hi, 4, h);
    EXPECT_EQ(fn.bar_address(2), (uint64_t{h} << 32) | (l & ~0xfu));
    // Unimplemented BARs are hardwired to 0.
    for (unsigned b : {1u, 4u, 5u}) {
        cfg_write(bus, 3, pci::BASE_ADDRESS_0 + 4 * b, 4, 0xffffffffu);
        EXPECT_EQ(cfg_read(bus, 3, pci::BASE_ADDRESS_0 + 4 * b, 4), 0u) << "BAR " << b;
    }
}

TEST_F(PciBusTest, BarsArePreassignedInsideTheWindowSizeAligned) {
    FakeFunction second;
    ASSERT_TRUE(bus.attach(9, second).ok());
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (PciFunction* f : {static_cast<PciFunction*>(&fn), static_cast<PciFunction*>(&second)}) {
        for (unsigned b : {0u, 2u}) {
            const uint64_t a = f->bar_address(b), s = f->bar_size(b);
            EXPECT_GE(a, kWindow);
            EXPECT_LE(a + s, kWindow + kWindowSize);
            EXPECT_EQ(a % s, 0u);
            EXPECT_EQ(a % PciBus::kMinBarAlign, 0u);
            for (auto& r : ranges) EXPECT_TRUE(a + s <= r.first || r.first + r.second <= a);
            ranges.push_back({a, s});
        }
    }
}

TEST_F(PciBusTest, AttachRefusesBadSlotsAndAFullWindow) {
    FakeFunction other;
    EXPECT_FALSE(bus.attach(0, other).ok());  // the host bridge's
    EXPECT_FALSE(bus.attach(32, other).ok());
    EXPECT_FALSE(bus.attach(3, other).ok());  // taken
    PciBus tiny(kWindow, 0x4000);             // room for the 4 KiB BAR, not the 16 KiB one after it
    EXPECT_EQ(tiny.attach(1, other).error().code, hv::Errc::no_memory);
    EXPECT_EQ(cfg_read(tiny, 1, 0, 4), 0xffffffffu);  // not attached
    PciBus high(0x100000000ull, 0x100000);            // a window above 4 GiB cannot hold a mem32 BAR
    EXPECT_EQ(high.attach(1, other).error().code, hv::Errc::unsupported);
}

TEST_F(PciBusTest, MemorySpaceEnableGatesDecoding) {
    const uint64_t base = fn.bar_address(0);
    uint64_t v = 0;
    EXPECT_FALSE(bus.decodes(base));
    EXPECT_FALSE(bus.mmio_read(base, 4, &v));  // power-on: command = 0
    EXPECT_FALSE(bus.mmio_write(base, 4, 1));
    enable_memory();
    EXPECT_TRUE(bus.decodes(base));
    EXPECT_TRUE(bus.decodes(base + fn.bar_size(0) - 1));
    EXPECT_FALSE(bus.decodes(base + fn.bar_size(0)));  // the 16 KiB BAR is 16 KiB aligned, further up
    ASSERT_TRUE(bus.mmio_read(base + 0x10, 4, &v));
    EXPECT_EQ(v, (0x1122334455667788ull + 0x10) & 0xffffffffu);
    ASSERT_TRUE(bus.mmio_write(fn.bar_address(2) + 8, 8, 0xdeadbeefcafef00dull));
    ASSERT_EQ(fn.writes.size(), 1u);
    EXPECT_EQ(fn.writes[0].bar, 2u);
    EXPECT_EQ(fn.writes[0].off, 8u);
    EXPECT_EQ(fn.writes[0].width, 8u);
    EXPECT_EQ(fn.writes[0].value, 0xdeadbeefcafef00dull);
    cfg_write(bus, 3, pci::COMMAND, 2, 0);
    EXPECT_FALSE(bus.mmio_read(base, 4, &v));
    EXPECT_FALSE(bus.mmio_read(kWindow - 1, 1, &v));  // below every BAR
}

TEST_F(PciBusTest, EveryWidthIsPassedThroughAndMasked) {
    enable_memory();
    const uint64_t base = fn.bar_address(0);
    for (unsigned w : {1u, 2u, 4u, 8u}) {
        uint64_t v = 0;
        ASSERT_TRUE(bus.mmio_read(base + 0x20, w, &v));
        EXPECT_EQ(v, (0x1122334455667788ull + 0x20) & hv::vdev::access_mask(w));
        ASSERT_TRUE(bus.mmio_write(base + 0x20, w, ~0ull));
        EXPECT_EQ(fn.writes.back().value, hv::vdev::access_mask(w));
    }
}

TEST_F(PciBusTest, AccessRunningPastTheBarEndIsClaimedAndDropped) {
    enable_memory();
    const uint64_t last = fn.bar_address(0) + fn.bar_size(0) - 4;
    const uint64_t bad = bus.bad_accesses();
    uint64_t v = 0;
    ASSERT_TRUE(bus.mmio_read(last, 8, &v));
    EXPECT_EQ(v, ~0ull);
    ASSERT_TRUE(bus.mmio_write(last, 8, 0));
    EXPECT_TRUE(fn.reads.empty());
    EXPECT_TRUE(fn.writes.empty());
    EXPECT_EQ(bus.bad_accesses(), bad + 2);
    ASSERT_TRUE(bus.mmio_read(last, 4, &v));  // the last dword itself is fine
    EXPECT_EQ(fn.reads.size(), 1u);
}

TEST_F(PciBusTest, GuestMayMoveABarEvenOutsideTheWindow) {
    enable_memory();
    const uint64_t old = fn.bar_address(0);
    const uint64_t gen = bus.decode_generation();
    cfg_write(bus, 3, pci::BASE_ADDRESS_0, 4, 0x12345678);  // low bits below 4 KiB are not writable
    EXPECT_EQ(fn.bar_address(0), 0x12345000u);
    EXPECT_GT(bus.decode_generation(), gen);
    uint64_t v = 0;
    EXPECT_FALSE(bus.mmio_read(old, 4, &v));
    EXPECT_TRUE(bus.mmio_read(0x12345ffc, 4, &v));
    EXPECT_EQ(fn.reads.back().off, 0xffcu);
    // The 64-bit BAR can go above 4 GiB.
    cfg_write(bus, 3, pci::BASE_ADDRESS_0 + 12, 4, 0x10);
    EXPECT_EQ(fn.bar_address(2) >> 32, 0x10u);
    EXPECT_TRUE(bus.mmio_read(fn.bar_address(2), 2, &v));
}

TEST_F(PciBusTest, DecodedRangesReportWhatDecodes) {
    PciDecodedRange r[4];
    EXPECT_EQ(bus.decoded_ranges(r, 4), 0u);
    enable_memory();
    ASSERT_EQ(bus.decoded_ranges(r, 4), 2u);
    EXPECT_EQ(r[0].slot, 3);
    EXPECT_EQ(r[0].bar, 0);
    EXPECT_EQ(r[0].base, fn.bar_address(0));
    EXPECT_EQ(r[0].size, 0x1000u);
    EXPECT_EQ(r[1].bar, 2);
    EXPECT_EQ(r[1].size, 0x4000u);
    EXPECT_EQ(bus.decoded_ranges(r, 1), 2u);  // total even when out is short
}

TEST_F(PciBusTest, ResetRestoresPowerOnState) {
    const uint64_t assigned = fn.bar_address(0);
    enable_memory();
    cfg_write(bus, 3, pci::BASE_ADDRESS_0, 4, 0x1000);
    cfg_write(bus, 3, pci::INTERRUPT_LINE, 1, 5);
    bus.reset();
    EXPECT_EQ(bus.io_read(0xcf8, 4), 0u);
    EXPECT_EQ(cfg_read(bus, 3, pci::COMMAND, 2), 0u);
    EXPECT_EQ(fn.bar_address(0), assigned);
    EXPECT_EQ(cfg_read(bus, 3, pci::INTERRUPT_LINE, 1), 0xffu);
}

// Every offset and width, written with all-ones and zeros, on both functions:
// identity registers never change and nothing reads outside 256 bytes (ASan).
TEST_F(PciBusTest, HostileWritesEverywhereLeaveIdentityIntact) {
    for (unsigned slot : {0u, 3u}) {
        const uint32_t id = cfg_read(bus, slot, 0, 4), cls = cfg_read(bus, slot, 8, 4);
        for (uint32_t pattern : {0xffffffffu, 0u, 0xa5a5a5a5u}) {
            for (unsigned reg = 0; reg < 256; ++reg) {
                for (unsigned w : {1u, 2u, 4u}) {
                    bus.io_write(0xcf8, 4, address(0, slot, 0, reg));
                    bus.io_write(static_cast<uint16_t>(0xcfc + (reg & 3)), w, pattern);
                    (void)bus.io_read(static_cast<uint16_t>(0xcfc + (reg & 3)), w);
                }
            }
        }
        EXPECT_EQ(cfg_read(bus, slot, 0, 4), id);
        EXPECT_EQ(cfg_read(bus, slot, 8, 4), cls);
        EXPECT_EQ(cfg_read(bus, slot, pci::HEADER_TYPE, 1), 0u);
    }
}

}  // namespace
