// VMX control computation on capability MSRs captured in Bochs: the Skylake-X
// model (everything we need) and the Core 2 Penryn model (VMX without the
// preemption timer, EPT, VPID or unrestricted guest), which must be refused
// with the missing control named.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "vmx/vmx_caps.hpp"
#include "vmx/vmx_controls.hpp"

using namespace hv::vmx;

namespace {

// hv.vmx.msr cpu=N msr=0x... value=0x... lines of one CPU.
std::map<uint32_t, uint64_t> load_msrs(const std::string& file, int cpu) {
    std::ifstream f(std::string(HV_TEST_DATA) + "/" + file);
    EXPECT_TRUE(f) << file;
    std::map<uint32_t, uint64_t> out;
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("hv.vmx.msr ", 0) != 0) continue;
        std::istringstream in(line);
        std::string tok;
        int c = -1;
        uint32_t msr = 0;
        uint64_t value = 0;
        while (in >> tok) {
            if (tok.rfind("cpu=", 0) == 0) c = std::stoi(tok.substr(4));
            if (tok.rfind("msr=", 0) == 0) msr = static_cast<uint32_t>(std::stoul(tok.substr(4), nullptr, 16));
            if (tok.rfind("value=", 0) == 0) value = std::stoull(tok.substr(6), nullptr, 16);
        }
        if (c == cpu) out[msr] = value;
    }
    return out;
}

RawCaps raw_from(const std::string& file) {
    auto m = load_msrs(file, 0);
    EXPECT_GE(m.size(), 13u) << file;
    RawCaps r{};
    r.cpuid_vmx = true;
    r.feature_control = m[0x3A];
    r.basic = m[0x480];
    r.pinbased = m[0x481];
    r.procbased = m[0x482];
    r.exit = m[0x483];
    r.entry = m[0x484];
    r.misc = m[0x485];
    r.procbased2 = m[0x48B];
    r.ept_vpid = m[0x48C];
    r.true_pinbased = m[0x48D];
    r.true_procbased = m[0x48E];
    r.true_exit = m[0x48F];
    r.true_entry = m[0x490];
    return r;
}

// Every chosen value must respect the capability: allowed-0 bits set, nothing
// outside allowed-1 (SDM Vol. 3D §A.3).
void expect_legal(uint32_t value, uint64_t cap, const char* what) {
    uint32_t allowed0 = static_cast<uint32_t>(cap), allowed1 = static_cast<uint32_t>(cap >> 32);
    EXPECT_EQ(value & allowed0, allowed0) << what << ": a required-1 bit is clear";
    EXPECT_EQ(value & ~allowed1, 0u) << what << ": a bit outside allowed-1 is set";
}

}  // namespace

TEST(VmxControls, BochsSkylakeGetsEveryControlWeAskFor) {
    RawCaps raw = raw_from("bochs-mb2.dump");
    auto c = compute_controls(raw);
    ASSERT_TRUE(c.ok()) << c.error().detail;
    const uint32_t pin_want =
        pin::EXTERNAL_INTERRUPT_EXITING | pin::NMI_EXITING | pin::VIRTUAL_NMIS | pin::ACTIVATE_PREEMPTION_TIMER;
    EXPECT_EQ(c->pin & pin_want, pin_want);
    // The window exits are toggled per entry, never on by default.
    EXPECT_EQ(c->proc & (proc::INTERRUPT_WINDOW_EXITING | proc::NMI_WINDOW_EXITING), 0u);
    uint32_t proc_want = proc::HLT_EXITING | proc::USE_IO_BITMAPS | proc::USE_MSR_BITMAPS |
                         proc::ACTIVATE_SECONDARY_CONTROLS | proc::CR8_LOAD_EXITING | proc::CR8_STORE_EXITING |
                         proc::MWAIT_EXITING | proc::MONITOR_EXITING | proc::RDPMC_EXITING;
    EXPECT_EQ(c->proc & proc_want, proc_want);
    // With TRUE controls, CR3 exiting (default-1 in the old MSR) is cleared: EPT makes it pointless.
    EXPECT_EQ(c->proc & (proc::CR3_LOAD_EXITING | proc::CR3_STORE_EXITING), 0u);
    EXPECT_NE(static_cast<uint32_t>(raw.procbased) & proc::CR3_LOAD_EXITING, 0u) << "capture should default CR3 exiting on";
    uint32_t proc2_want = proc2::ENABLE_EPT | proc2::ENABLE_VPID | proc2::UNRESTRICTED_GUEST;
    EXPECT_EQ(c->proc2 & proc2_want, proc2_want);
    uint32_t exit_want = exit_ctl::HOST_ADDRESS_SPACE_SIZE | exit_ctl::ACK_INTERRUPT_ON_EXIT |
                         exit_ctl::SAVE_IA32_EFER | exit_ctl::LOAD_IA32_EFER | exit_ctl::SAVE_IA32_PAT |
                         exit_ctl::LOAD_IA32_PAT;
    EXPECT_EQ(c->exit & exit_want, exit_want);
    EXPECT_EQ(c->entry & (entry_ctl::LOAD_IA32_EFER | entry_ctl::LOAD_IA32_PAT),
              entry_ctl::LOAD_IA32_EFER | entry_ctl::LOAD_IA32_PAT);
    EXPECT_EQ(c->entry & entry_ctl::IA32E_MODE_GUEST, 0u) << "set per guest, not by default";
    expect_legal(c->pin, raw.true_pinbased, "pin");
    expect_legal(c->proc, raw.true_procbased, "proc");
    expect_legal(c->proc2, raw.procbased2, "proc2");
    expect_legal(c->exit, raw.true_exit, "exit");
    expect_legal(c->entry, raw.true_entry, "entry");
}

TEST(VmxControls, BochsPenrynIsRefusedNamingTheMissingControl) {
    RawCaps raw = raw_from("bochs-penryn.dump");
    VmxCaps caps = decode(raw);
    EXPECT_TRUE(caps.vmx);
    EXPECT_FALSE(caps.ept);
    EXPECT_FALSE(caps.unrestricted_guest);
    EXPECT_FALSE(caps.preemption_timer);
    auto c = compute_controls(raw);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, hv::Errc::unsupported);
    EXPECT_STREQ(c.error().detail, "pin control 'VMX-preemption timer' unavailable");
    EXPECT_EQ(c.error().value, pin::ACTIVATE_PREEMPTION_TIMER);
}

TEST(VmxControls, PenrynWithATimerStillLacksEpt) {
    // Give the captured Penryn the preemption timer: the next refusal is EPT.
    RawCaps raw = raw_from("bochs-penryn.dump");
    raw.true_pinbased |= static_cast<uint64_t>(pin::ACTIVATE_PREEMPTION_TIMER) << 32;
    raw.pinbased |= static_cast<uint64_t>(pin::ACTIVATE_PREEMPTION_TIMER) << 32;
    auto c = compute_controls(raw);
    ASSERT_FALSE(c.ok());
    EXPECT_STREQ(c.error().detail, "secondary control 'enable EPT' unavailable");
}

TEST(VmxControls, WithoutTrueControlsDefaultOnesStay) {
    // Same Skylake capture, but pretend BASIC bit 55 is clear: the old MSRs'
    // default-1 CR3 exiting bits cannot be cleared and must stay set.
    RawCaps raw = raw_from("bochs-mb2.dump");
    raw.basic &= ~kBasicTrueCtls;
    auto c = compute_controls(raw);
    ASSERT_TRUE(c.ok()) << c.error().detail;
    EXPECT_EQ(c->proc & (proc::CR3_LOAD_EXITING | proc::CR3_STORE_EXITING),
              static_cast<uint32_t>(raw.procbased) & (proc::CR3_LOAD_EXITING | proc::CR3_STORE_EXITING));
    expect_legal(c->proc, raw.procbased, "proc");
    expect_legal(c->pin, raw.pinbased, "pin");
}

TEST(VmxControls, NoVmxAtAll) {
    RawCaps raw{};
    auto c = compute_controls(raw);
    ASSERT_FALSE(c.ok());
    EXPECT_STREQ(c.error().detail, "CPU has no VMX");
}

namespace {

// Without this control the CPU is refused, with the control named.
void expect_refused_without(uint64_t RawCaps::*cap, uint32_t control, const char* detail) {
    RawCaps raw = raw_from("bochs-mb2.dump");
    raw.*cap &= ~(static_cast<uint64_t>(control) << 32);
    auto c = compute_controls(raw);
    ASSERT_FALSE(c.ok()) << detail;
    EXPECT_STREQ(c.error().detail, detail);
    EXPECT_EQ(c.error().value, control);
}

}  // namespace

TEST(VmxControls, WithoutVirtualNmisOrTheNmiWindowTheCpuIsRefused) {
    // Guest NMIs need the CPU to track the guest's NMI blocking up to its IRET,
    // and an exit when it ends.
    expect_refused_without(&RawCaps::true_pinbased, pin::VIRTUAL_NMIS, "pin control 'virtual NMIs' unavailable");
    expect_refused_without(&RawCaps::true_procbased, proc::NMI_WINDOW_EXITING,
                           "processor control 'NMI-window exiting' unavailable");
}
