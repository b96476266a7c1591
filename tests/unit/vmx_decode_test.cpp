// Exit-information decoders and control computation, against the bit layouts
// of SDM Vol. 3C §28.2.1 and Vol. 3D Appendix A.
#include <gtest/gtest.h>

#include "vmx/exit_qualification.hpp"
#include "vmx/vmcs_fields.hpp"
#include "vmx/vmx_controls.hpp"

using namespace hv::vmx;

TEST(ExitReason, BasicAndEntryFailure) {
    auto r = decode_exit_reason(0x80000021);  // entry failed: invalid guest state
    EXPECT_EQ(r.basic, 33);
    EXPECT_TRUE(r.entry_failure);
    EXPECT_STREQ(exit_reason_name(r.basic), "ENTRY_FAIL_GUEST_STATE");
    auto c = decode_exit_reason(10);
    EXPECT_EQ(c.basic, 10);
    EXPECT_FALSE(c.entry_failure);
    EXPECT_STREQ(exit_reason_name(48), "EPT_VIOLATION");
    EXPECT_STREQ(exit_reason_name(1000), "UNKNOWN");
}

TEST(CrAccess, MovToCr4FromRbx) {
    // Table 28-3: CR number bits 3:0, access type 5:4, GPR 11:8.
    auto a = decode_cr_access(0x0304);
    EXPECT_EQ(a.cr, 4);
    EXPECT_EQ(a.type, CrAccessType::mov_to_cr);
    EXPECT_EQ(a.gpr, 3);
}

TEST(CrAccess, MovFromCr3ToR12AndLmsw) {
    auto a = decode_cr_access(0x0C13);
    EXPECT_EQ(a.cr, 3);
    EXPECT_EQ(a.type, CrAccessType::mov_from_cr);
    EXPECT_EQ(a.gpr, 12);
    auto l = decode_cr_access(0x00050070);  // LMSW from memory, source 5
    EXPECT_EQ(l.type, CrAccessType::lmsw);
    EXPECT_TRUE(l.lmsw_memory);
    EXPECT_EQ(l.lmsw_source, 5);
    EXPECT_EQ(decode_cr_access(0x20).type, CrAccessType::clts);
}

TEST(IoAccess, OutByteDxAndInDwordImmediate) {
    // Table 28-5: size 2:0, direction 3, string 4, REP 5, immediate 6, port 31:16.
    auto o = decode_io_access(0x03F80000);
    EXPECT_EQ(o.size, 1);
    EXPECT_FALSE(o.in);
    EXPECT_FALSE(o.string);
    EXPECT_EQ(o.port, 0x3F8);
    auto i = decode_io_access(0x00F4004B);  // in eax, 0xf4 (imm), 4 bytes
    EXPECT_EQ(i.size, 4);
    EXPECT_TRUE(i.in);
    EXPECT_TRUE(i.immediate);
    EXPECT_EQ(i.port, 0xF4);
    auto s = decode_io_access(0x03F80031);  // rep outsw
    EXPECT_EQ(s.size, 2);
    EXPECT_TRUE(s.string);
    EXPECT_TRUE(s.rep);
}

TEST(Interruption, DecodeAndEncodeRoundTrip) {
    uint32_t gp = encode_interruption(13, InterruptionType::hardware_exception, true);
    EXPECT_EQ(gp, 0x80000B0Du);
    auto d = decode_interruption(gp);
    EXPECT_EQ(d.vector, 13);
    EXPECT_EQ(d.type, InterruptionType::hardware_exception);
    EXPECT_TRUE(d.error_code_valid);
    EXPECT_TRUE(d.valid);
    auto nmi = decode_interruption(0x80001202);
    EXPECT_EQ(nmi.type, InterruptionType::nmi);
    EXPECT_TRUE(nmi.nmi_unblocking);
    EXPECT_FALSE(decode_interruption(0x0B0D).valid);
    EXPECT_TRUE(exception_has_error_code(14));
    EXPECT_FALSE(exception_has_error_code(6));
}

TEST(VmInstructionError, Names) {
    EXPECT_STREQ(vm_instruction_error_name(7), "VM entry with invalid control field(s)");
    EXPECT_STREQ(vm_instruction_error_name(99), "unknown VM-instruction error");
}

TEST(AdjustControls, DefaultOnesAndRefusal) {
    // allowed-0 (low) = 0x16: bits that must be 1; allowed-1 (high) = 0x7f: may be 1.
    uint64_t cap = (0x7Full << 32) | 0x16;
    auto v = adjust_controls(cap, 0x1, 0x8, "x");
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v, 0x1Fu);
    auto bad = adjust_controls(cap, 0, 0x80, "bit 7 missing");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, hv::Errc::unsupported);
    EXPECT_EQ(bad.error().value, 0x80u);
    EXPECT_STREQ(bad.error().detail, "bit 7 missing");
}
