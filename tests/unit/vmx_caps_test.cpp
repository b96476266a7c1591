#include "vmx/vmx_caps.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace {

using hv::vmx::decode;
using hv::vmx::decide_feature_control;
using hv::vmx::FeatureControlState;
using hv::vmx::RawCaps;
using hv::vmx::VmxCaps;

// Measured in Bochs 2.7, cpu model corei7_skylake_x. PROCBASED_CTLS2 was
// recorded as its allowed-1 half (0x02177fff); the allowed-0 half is all zero.
constexpr uint64_t kBochsProcbased2 = 0x0217'7FFF'0000'0000ull;
constexpr uint64_t kBochsEptVpidCap = 0x0000'0F01'0633'4141ull;
constexpr uint64_t kBochsFeatureControl = 5;

// Synthetic, Skylake-like values for the MSRs not captured yet (to be replaced by
// the full Bochs dump in tests/data): revision 4, 1 KiB VMCS, WB, TRUE controls.
constexpr uint64_t kBasic = 0x00DA'0400'0000'0004ull;
constexpr uint64_t kPinbased = 0x0000'007F'0000'0016ull;
constexpr uint64_t kProcbased = 0xFFF9'FFFE'0401'E172ull;
constexpr uint64_t kTrueProcbased = 0xFFF9'FFFE'0400'6172ull;
constexpr uint64_t kExit = 0x01FF'FFFF'0003'6DFFull;
constexpr uint64_t kTrueExit = 0x01FF'FFFF'0003'6DFBull;
constexpr uint64_t kEntry = 0x0003'FFFF'0000'11FFull;
constexpr uint64_t kTrueEntry = 0x0003'FFFF'0000'11FBull;
constexpr uint64_t kMisc = 0x0000'0000'7004'C1E7ull;

constexpr uint32_t bit(unsigned n) { return 1u << n; }

RawCaps skylake_x() {
    RawCaps raw{};
    raw.cpuid_vmx = true;
    raw.feature_control = kBochsFeatureControl;
    raw.basic = kBasic;
    raw.pinbased = kPinbased;
    raw.procbased = kProcbased;
    raw.exit = kExit;
    raw.entry = kEntry;
    raw.misc = kMisc;
    raw.procbased2 = kBochsProcbased2;
    raw.ept_vpid = kBochsEptVpidCap;
    raw.true_pinbased = kPinbased;
    raw.true_procbased = kTrueProcbased;
    raw.true_exit = kTrueExit;
    raw.true_entry = kTrueEntry;
    return raw;
}

void expect_no_secondary_features(const VmxCaps& c) {
    EXPECT_FALSE(c.ept);
    EXPECT_FALSE(c.vpid);
    EXPECT_FALSE(c.unrestricted_guest);
    EXPECT_FALSE(c.vmcs_shadowing);
    EXPECT_FALSE(c.apic_virt);
    EXPECT_FALSE(c.ept_4level);
    EXPECT_FALSE(c.ept_wb);
    EXPECT_FALSE(c.ept_2m);
    EXPECT_FALSE(c.ept_1g);
    EXPECT_FALSE(c.ept_ad);
    EXPECT_FALSE(c.invept);
    EXPECT_FALSE(c.invvpid);
}

TEST(VmxCaps, AllowedAndRequiredBitsComeFromTheirHalves) {
    static_assert(hv::vmx::allowed1(kBochsProcbased2, hv::vmx::kProc2EnableEpt));
    static_assert(!hv::vmx::required1(kBochsProcbased2, hv::vmx::kProc2EnableEpt));
    // Pin-based: bits 1, 2, 4 are default-1 (allowed-0 = 0x16); bit 7 cannot be set.
    EXPECT_TRUE(hv::vmx::required1(kPinbased, bit(1) | bit(2) | bit(4)));
    EXPECT_FALSE(hv::vmx::required1(kPinbased, bit(0)));
    EXPECT_TRUE(hv::vmx::allowed1(kPinbased, bit(0) | bit(6)));
    EXPECT_FALSE(hv::vmx::allowed1(kPinbased, bit(7)));
    // A mask counts only when every bit in it is allowed.
    EXPECT_FALSE(hv::vmx::allowed1(kPinbased, bit(6) | bit(7)));
    // Secondary bits 15 and 19 are not in Bochs' allowed-1 0x02177fff; 25 is.
    EXPECT_FALSE(hv::vmx::allowed1(kBochsProcbased2, bit(15)));
    EXPECT_FALSE(hv::vmx::allowed1(kBochsProcbased2, bit(19)));
    EXPECT_TRUE(hv::vmx::allowed1(kBochsProcbased2, bit(25)));
}

TEST(VmxCaps, BochsSkylakeXDecodesEveryFeature) {
    const VmxCaps c = decode(skylake_x());
    EXPECT_TRUE(c.vmx);
    EXPECT_EQ(c.vmcs_revision, 4u);
    EXPECT_EQ(c.vmcs_size, 0x400u);
    EXPECT_TRUE(c.true_ctls);
    EXPECT_EQ(c.vmcs_memory_type, 6u);
    EXPECT_TRUE(c.memory_type_wb);
    EXPECT_TRUE(c.preemption_timer);
    EXPECT_EQ(c.preemption_timer_rate, 7u);
    EXPECT_TRUE(c.io_bitmaps);
    EXPECT_TRUE(c.msr_bitmaps);
    EXPECT_TRUE(c.secondary_ctls);
    EXPECT_TRUE(c.apic_virt);
    EXPECT_TRUE(c.ept);
    EXPECT_TRUE(c.vpid);
    EXPECT_TRUE(c.unrestricted_guest);
    EXPECT_TRUE(c.vmcs_shadowing);
    EXPECT_TRUE(c.ept_4level);
    EXPECT_TRUE(c.ept_wb);
    EXPECT_TRUE(c.ept_2m);
    EXPECT_TRUE(c.ept_1g);
    EXPECT_TRUE(c.ept_ad);
    EXPECT_TRUE(c.invept);
    EXPECT_TRUE(c.invvpid);
}

TEST(VmxCaps, BochsFeatureControlIsEnabledAndLocked) {
    const auto d = decide_feature_control(kBochsFeatureControl);
    EXPECT_EQ(d.state, FeatureControlState::enabled_locked);
    EXPECT_EQ(d.value_to_write, 0u);
}

TEST(VmxCaps, FeatureControlDecisions) {
    struct Case {
        uint64_t msr;
        FeatureControlState state;
        uint64_t value_to_write;
    };
    const Case cases[] = {
        {0, FeatureControlState::needs_enable, 5},                 // untouched by firmware
        {1, FeatureControlState::disabled_by_firmware, 0},         // locked, VMX off
        {3, FeatureControlState::disabled_by_firmware, 0},         // locked, VMX only inside SMX
        {5, FeatureControlState::enabled_locked, 0},
        {7, FeatureControlState::enabled_locked, 0},
        {4, FeatureControlState::needs_enable, 5},                 // enabled but not locked yet
        {0x4'0002, FeatureControlState::needs_enable, 0x4'0007},   // firmware's other bits kept
    };
    for (const Case& c : cases) {
        const auto d = decide_feature_control(c.msr);
        EXPECT_EQ(d.state, c.state) << "IA32_FEATURE_CONTROL=" << c.msr;
        EXPECT_EQ(d.value_to_write, c.value_to_write) << "IA32_FEATURE_CONTROL=" << c.msr;
    }
}

TEST(VmxCaps, NoCpuidVmxMeansNothingIsDecoded) {
    RawCaps raw = skylake_x();
    raw.cpuid_vmx = false;
    const VmxCaps c = decode(raw);
    EXPECT_FALSE(c.vmx);
    EXPECT_EQ(c.vmcs_revision, 0u);
    EXPECT_EQ(c.vmcs_size, 0u);
    EXPECT_FALSE(c.true_ctls);
    EXPECT_EQ(c.vmcs_memory_type, 0u);
    EXPECT_FALSE(c.memory_type_wb);
    EXPECT_FALSE(c.preemption_timer);
    EXPECT_EQ(c.preemption_timer_rate, 0u);
    EXPECT_FALSE(c.io_bitmaps);
    EXPECT_FALSE(c.msr_bitmaps);
    EXPECT_FALSE(c.secondary_ctls);
    expect_no_secondary_features(c);
}

TEST(VmxCaps, WithoutSecondaryControlsNoEptOrVpid) {
    RawCaps raw = skylake_x();
    // Clear "activate secondary controls" (bit 31) from both allowed-1 halves;
    // PROCBASED_CTLS2 and EPT_VPID_CAP keep their values, which must be ignored.
    raw.procbased &= ~(uint64_t{1} << 63);
    raw.true_procbased &= ~(uint64_t{1} << 63);
    const VmxCaps c = decode(raw);
    EXPECT_TRUE(c.vmx);
    EXPECT_FALSE(c.secondary_ctls);
    expect_no_secondary_features(c);
    EXPECT_TRUE(c.io_bitmaps);
    EXPECT_TRUE(c.msr_bitmaps);
    EXPECT_TRUE(c.preemption_timer);
}

TEST(VmxCaps, EptWithoutUnrestrictedGuestOr1GiBPages) {
    RawCaps raw = skylake_x();
    raw.procbased2 = uint64_t{bit(1) | bit(5)} << 32;  // EPT and VPID only
    raw.ept_vpid = kBochsEptVpidCap & ~(uint64_t{1} << 17) & ~(uint64_t{1} << 21);  // no 1G, no A/D
    const VmxCaps c = decode(raw);
    EXPECT_TRUE(c.secondary_ctls);
    EXPECT_TRUE(c.ept);
    EXPECT_TRUE(c.vpid);
    EXPECT_FALSE(c.unrestricted_guest);
    EXPECT_FALSE(c.vmcs_shadowing);
    EXPECT_FALSE(c.apic_virt);
    EXPECT_TRUE(c.ept_4level);
    EXPECT_TRUE(c.ept_wb);
    EXPECT_TRUE(c.ept_2m);
    EXPECT_FALSE(c.ept_1g);
    EXPECT_FALSE(c.ept_ad);
    EXPECT_TRUE(c.invept);
    EXPECT_TRUE(c.invvpid);
}

TEST(VmxCaps, UnrestrictedGuestRequiresEpt) {
    RawCaps raw = skylake_x();
    raw.procbased2 = uint64_t{bit(5) | bit(7)} << 32;  // VPID and unrestricted guest, no EPT
    const VmxCaps c = decode(raw);
    EXPECT_FALSE(c.ept);
    EXPECT_FALSE(c.unrestricted_guest);
    EXPECT_TRUE(c.vpid);
    EXPECT_TRUE(c.invvpid);
    // EPT capability bits are meaningless without EPT.
    EXPECT_FALSE(c.ept_4level);
    EXPECT_FALSE(c.ept_wb);
    EXPECT_FALSE(c.ept_2m);
    EXPECT_FALSE(c.ept_1g);
    EXPECT_FALSE(c.invept);
}

TEST(VmxCaps, VpidCapabilityNeedsVpid) {
    RawCaps raw = skylake_x();
    raw.procbased2 = uint64_t{bit(1)} << 32;  // EPT only
    const VmxCaps c = decode(raw);
    EXPECT_TRUE(c.ept);
    EXPECT_TRUE(c.invept);
    EXPECT_FALSE(c.vpid);
    EXPECT_FALSE(c.invvpid);
}

TEST(VmxCaps, TrueControlMsrsUsedOnlyWhenAdvertised) {
    RawCaps raw = skylake_x();
    // Make the plain and TRUE MSRs disagree to see which one decode() reads.
    raw.pinbased = kPinbased & ~(uint64_t{1} << 38);  // no preemption timer
    raw.true_pinbased = kPinbased;
    raw.procbased = kProcbased & ~(uint64_t{1} << 63);  // no secondary controls
    raw.true_procbased = kTrueProcbased;
    VmxCaps c = decode(raw);
    EXPECT_TRUE(c.true_ctls);
    EXPECT_TRUE(c.preemption_timer);
    EXPECT_TRUE(c.secondary_ctls);

    raw.basic &= ~(uint64_t{1} << 55);  // no TRUE MSRs: their values must be ignored
    c = decode(raw);
    EXPECT_FALSE(c.true_ctls);
    EXPECT_FALSE(c.preemption_timer);
    EXPECT_FALSE(c.secondary_ctls);
    EXPECT_FALSE(c.ept);
}

TEST(VmxCaps, VmcsMemoryTypeOtherThanWriteBack) {
    RawCaps raw = skylake_x();
    raw.basic &= ~(uint64_t{0xF} << 50);  // memory type 0 (UC)
    const VmxCaps c = decode(raw);
    EXPECT_EQ(c.vmcs_memory_type, 0u);
    EXPECT_FALSE(c.memory_type_wb);
    EXPECT_EQ(c.vmcs_revision, 4u);
    EXPECT_EQ(c.vmcs_size, 0x400u);
}

}  // namespace
