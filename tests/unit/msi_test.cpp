// MSI address/data decoding (SDM Vol. 3A §11.11, Figures 11-24 and 11-25),
// and the extended destination ID of KVM_FEATURE_MSI_EXT_DEST_ID.
#include <gtest/gtest.h>

#include <cstring>

#include "kernel/vdev/msi.hpp"

using namespace hv::vdev;

namespace {

constexpr uint64_t addr(uint32_t dest) {
    return 0xFEE00000ull | (uint64_t{dest & 0xFF} << 12);
}

}  // namespace

TEST(Msi, DecodesTheFieldsOfValidMessages) {
    struct Case {
        const char* what;
        uint64_t address;
        uint32_t data;
        uint32_t destination;
        bool broadcast, rh, lowest;
        MsiDelivery delivery;
        uint8_t vector;
        bool level, assert_;
    } const cases[] = {
        // What Linux writes for a virtio-net queue: physical, fixed, edge.
        {"fixed edge", addr(3), 0x0041, 3, false, false, false, MsiDelivery::fixed, 0x41, false, false},
        {"destination 0", addr(0), 0x00EF, 0, false, false, false, MsiDelivery::fixed, 0xEF, false, false},
        {"broadcast", addr(0xFF), 0x0030, 0xFF, true, false, false, MsiDelivery::fixed, 0x30, false, false},
        {"redirection hint", addr(7) | 0x8, 0x0050, 7, false, true, false, MsiDelivery::fixed, 0x50, false, false},
        {"low address bits ignored", addr(7) | 0x3, 0x0050, 7, false, false, false, MsiDelivery::fixed, 0x50, false,
         false},
        {"lowest priority as fixed", addr(2), 0x0160, 2, false, false, true, MsiDelivery::fixed, 0x60, false, false},
        {"nmi ignores the vector", addr(4), 0x04AA, 4, false, false, false, MsiDelivery::nmi, 0, false, false},
        {"level assert", addr(1), 0xC070, 1, false, false, false, MsiDelivery::fixed, 0x70, true, true},
        {"level deassert", addr(1), 0x8070, 1, false, false, false, MsiDelivery::fixed, 0x70, true, false},
        {"illegal vector is the receiver's business", addr(1), 0x0003, 1, false, false, false, MsiDelivery::fixed, 3,
         false, false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto r = decode_msi(c.address, c.data);
        ASSERT_TRUE(r.ok()) << r.error().detail;
        EXPECT_EQ(r->destination, c.destination);
        EXPECT_EQ(r->broadcast, c.broadcast);
        EXPECT_EQ(r->redirection_hint, c.rh);
        EXPECT_EQ(r->lowest_priority, c.lowest);
        EXPECT_EQ(r->delivery, c.delivery);
        EXPECT_EQ(r->vector, c.vector);
        EXPECT_EQ(r->level_triggered, c.level);
        EXPECT_EQ(r->level_assert, c.assert_);
    }
}

TEST(Msi, RejectsWhatIsNotAnInterruptWeDeliver) {
    struct Case {
        const char* what;
        uint64_t address;
        uint32_t data;
        const char* detail;
    } const cases[] = {
        {"plain memory address", 0xFED00000, 0x41, "0xFEE"},
        {"above 4 GiB", 0x1FEE00000ull, 0x41, "0xFEE"},
        {"high dword set", 0xFFFFFFFFFEE00000ull, 0x41, "0xFEE"},
        {"remappable format (bit 4)", addr(1) | 0x10, 0x41, "reserved"},
        {"extended destination bits without the feature", addr(1) | 0x20, 0x41, "reserved"},
        {"logical destination mode", addr(1) | 0x4, 0x41, "logical"},
        {"SMI", addr(1), 0x0200, "SMI"},
        {"INIT", addr(1), 0x0500, "INIT"},
        {"ExtINT", addr(1), 0x0700, "ExtINT"},
        {"reserved mode 011", addr(1), 0x0341, "reserved"},
        {"reserved mode 110", addr(1), 0x0641, "reserved"},
        {"reserved data bits 13:11", addr(1), 0x0841, "reserved"},
        {"reserved data bits 31:16", addr(1), 0x10041, "reserved"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto r = decode_msi(c.address, c.data);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(std::strstr(r.error().detail, c.detail), nullptr) << r.error().detail;
        EXPECT_NE(std::strstr(r.error().detail, "MSI"), nullptr) << r.error().detail;
    }
}

TEST(Msi, ExtendedDestinationIdCarriesBits14To8) {
    // Address bits 11:5 = destination bits 14:8 (Linux: virt_destid_8_14).
    const uint32_t id = 0x5A3C;  // 15 bits
    const uint64_t address = 0xFEE00000ull | (uint64_t{id & 0xFF} << 12) | (uint64_t{id >> 8} << 5);
    auto r = decode_msi(address, 0x41, true);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->destination, id);
    EXPECT_FALSE(r->broadcast);
    EXPECT_TRUE(msi_targets(*r, id));
    EXPECT_FALSE(msi_targets(*r, id & 0xFF));
    // 0x1FF is a unicast ID, not the 0xFF broadcast.
    r = decode_msi(addr(0xFF) | (1u << 5), 0x41, true);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->destination, 0x1FFu);
    EXPECT_FALSE(r->broadcast);
    // Bit 4 stays reserved.
    EXPECT_FALSE(decode_msi(addr(1) | 0x10, 0x41, true).ok());
}

TEST(Msi, TargetsOneVcpuOrAll) {
    auto r = decode_msi(addr(2), 0x41);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(msi_targets(*r, 2));
    EXPECT_FALSE(msi_targets(*r, 3));
    auto b = decode_msi(addr(0xFF), 0x41);
    ASSERT_TRUE(b.ok());
    EXPECT_TRUE(msi_targets(*b, 0));
    EXPECT_TRUE(msi_targets(*b, 200));
}
