#include "vmx/vmx_probe.hpp"

#include "kernel/cpu/x86.hpp"
#include "kernel/log.hpp"
#include "vmx/vmx_caps.hpp"

namespace hv::vmx {

namespace {
uint64_t read(Msr m) { return x86::rdmsr(static_cast<uint32_t>(m)); }

void dump(uint32_t cpu, Msr m, uint64_t v) {
    Line l("vmx.msr");
    l.u("cpu", cpu).x("msr", static_cast<uint32_t>(m)).x("value", v);
    log::emit(l);
}
}  // namespace

void probe_this_cpu(cpu::PerCpu& pc, bool dump_msrs) {
    RawCaps raw{};
    raw.cpuid_vmx = (x86::cpuid(1).ecx & kCpuid1EcxVmx) != 0;
    pc.feature_control = FeatureControlState::disabled_by_firmware;
    if (!raw.cpuid_vmx) {
        pc.vmx = decode(raw);
        return;
    }
    uint64_t fc = read(Msr::IA32_FEATURE_CONTROL);
    auto decision = decide_feature_control(fc);
    if (decision.state == FeatureControlState::needs_enable) {
        // Unlocked by firmware: enable VMX outside SMX and lock, as firmware
        // normally does (SDM Vol. 3C §24.7). Writing a locked MSR would #GP.
        x86::wrmsr(static_cast<uint32_t>(Msr::IA32_FEATURE_CONTROL), decision.value_to_write);
        fc = read(Msr::IA32_FEATURE_CONTROL);
        decision = decide_feature_control(fc);
    }
    pc.feature_control = decision.state;
    pc.feature_control_msr = fc;

    // Only MSRs the CPU enumerates are read: reading an absent one raises #GP
    // (SDM Vol. 3D Appendix A.1-A.10).
    raw.feature_control = fc;
    raw.basic = read(Msr::IA32_VMX_BASIC);
    raw.pinbased = read(Msr::IA32_VMX_PINBASED_CTLS);
    raw.procbased = read(Msr::IA32_VMX_PROCBASED_CTLS);
    raw.exit = read(Msr::IA32_VMX_EXIT_CTLS);
    raw.entry = read(Msr::IA32_VMX_ENTRY_CTLS);
    raw.misc = read(Msr::IA32_VMX_MISC);
    if (allowed1(raw.procbased, kProcActivateSecondary)) {
        raw.procbased2 = read(Msr::IA32_VMX_PROCBASED_CTLS2);
        // EPT_VPID_CAP exists when EPT or VPID may be enabled (allowed-1 bits 1 and 5).
        if (allowed1(raw.procbased2, kProc2EnableEpt) || allowed1(raw.procbased2, kProc2EnableVpid))
            raw.ept_vpid = read(Msr::IA32_VMX_EPT_VPID_CAP);
    }
    if (raw.basic & kBasicTrueCtls) {
        raw.true_pinbased = read(Msr::IA32_VMX_TRUE_PINBASED_CTLS);
        raw.true_procbased = read(Msr::IA32_VMX_TRUE_PROCBASED_CTLS);
        raw.true_exit = read(Msr::IA32_VMX_TRUE_EXIT_CTLS);
        raw.true_entry = read(Msr::IA32_VMX_TRUE_ENTRY_CTLS);
    }
    pc.vmx = decode(raw);
    pc.vmx_raw = raw;

    if (dump_msrs) {
        dump(pc.index, Msr::IA32_FEATURE_CONTROL, fc);
        dump(pc.index, Msr::IA32_VMX_BASIC, raw.basic);
        dump(pc.index, Msr::IA32_VMX_PINBASED_CTLS, raw.pinbased);
        dump(pc.index, Msr::IA32_VMX_PROCBASED_CTLS, raw.procbased);
        dump(pc.index, Msr::IA32_VMX_EXIT_CTLS, raw.exit);
        dump(pc.index, Msr::IA32_VMX_ENTRY_CTLS, raw.entry);
        dump(pc.index, Msr::IA32_VMX_MISC, raw.misc);
        dump(pc.index, Msr::IA32_VMX_PROCBASED_CTLS2, raw.procbased2);
        dump(pc.index, Msr::IA32_VMX_EPT_VPID_CAP, raw.ept_vpid);
        dump(pc.index, Msr::IA32_VMX_TRUE_PINBASED_CTLS, raw.true_pinbased);
        dump(pc.index, Msr::IA32_VMX_TRUE_PROCBASED_CTLS, raw.true_procbased);
        dump(pc.index, Msr::IA32_VMX_TRUE_EXIT_CTLS, raw.true_exit);
        dump(pc.index, Msr::IA32_VMX_TRUE_ENTRY_CTLS, raw.true_entry);
    }
}

void report(const cpu::PerCpu& pc) {
    const VmxCaps& c = pc.vmx;
    Line l("vmx");
    l.u("cpu", pc.index).u("apic_id", pc.apic_id).b("vmx", c.vmx);
    if (!c.vmx) {
        l.s("reason", "cpuid_no_vmx");
        log::emit(l);
        return;
    }
    const char* fc = pc.feature_control == FeatureControlState::enabled_locked ? "enabled"
                     : pc.feature_control == FeatureControlState::needs_enable ? "unlocked"
                                                                               : "disabled_by_firmware";
    l.s("feature_control", fc)
        .b("usable", pc.feature_control == FeatureControlState::enabled_locked)
        .b("ept", c.ept)
        .b("vpid", c.vpid)
        .b("unrestricted_guest", c.unrestricted_guest)
        .b("preemption_timer", c.preemption_timer)
        .b("ept_2m", c.ept_2m)
        .b("ept_1g", c.ept_1g)
        .b("ept_wb", c.ept_wb)
        .b("vmcs_shadowing", c.vmcs_shadowing)
        .x("vmcs_revision", c.vmcs_revision);
    log::emit(l);
}

}  // namespace hv::vmx
