#include "vmx/vmx_caps.hpp"

namespace hv::vmx {

FeatureControlDecision decide_feature_control(uint64_t feature_control) {
    if ((feature_control & kFeatureControlLock) == 0) {
        // Unlocked: we may (and must) set VMX-outside-SMX ourselves, and lock so
        // nothing later can turn it off. Other bits firmware chose are kept.
        return {FeatureControlState::needs_enable,
                feature_control | kFeatureControlLock | kFeatureControlVmxOutsideSmx};
    }
    if ((feature_control & kFeatureControlVmxOutsideSmx) != 0) return {FeatureControlState::enabled_locked, 0};
    // Locked with VMX off (or allowed only inside SMX, which we never enter):
    // only a firmware setting change and a reset can fix this.
    return {FeatureControlState::disabled_by_firmware, 0};
}

VmxCaps decode(const RawCaps& raw) {
    VmxCaps caps{};
    if (!raw.cpuid_vmx) return caps;  // none of the VMX MSRs exist (SDM Vol. 3D Appendix A)
    caps.vmx = true;

    caps.vmcs_revision = static_cast<uint32_t>(raw.basic & kBasicRevisionMask);
    caps.vmcs_size = static_cast<uint32_t>((raw.basic >> kBasicVmcsSizeShift) & kBasicVmcsSizeMask);
    caps.vmcs_memory_type = static_cast<uint8_t>((raw.basic >> kBasicMemoryTypeShift) & kBasicMemoryTypeMask);
    caps.memory_type_wb = caps.vmcs_memory_type == kMemoryTypeWriteBack;
    caps.true_ctls = (raw.basic & kBasicTrueCtls) != 0;

    // The TRUE MSRs exist only with BASIC bit 55; where they exist they are the
    // authoritative report (they also clear default-1 bits that may be 0).
    const uint64_t pinbased = caps.true_ctls ? raw.true_pinbased : raw.pinbased;
    const uint64_t procbased = caps.true_ctls ? raw.true_procbased : raw.procbased;

    caps.preemption_timer = allowed1(pinbased, kPinPreemptionTimer);
    caps.preemption_timer_rate = static_cast<uint8_t>(raw.misc & kMiscPreemptionTimerRateMask);
    caps.io_bitmaps = allowed1(procbased, kProcUseIoBitmaps);
    caps.msr_bitmaps = allowed1(procbased, kProcUseMsrBitmaps);

    // IA32_VMX_PROCBASED_CTLS2 exists only if secondary controls can be activated
    // (Appendix A.3.3); otherwise whatever the caller passed means nothing.
    caps.secondary_ctls = allowed1(procbased, kProcActivateSecondary);
    if (!caps.secondary_ctls) return caps;
    const uint64_t procbased2 = raw.procbased2;
    caps.apic_virt = allowed1(procbased2, kProc2VirtualizeApicAccesses);
    caps.ept = allowed1(procbased2, kProc2EnableEpt);
    caps.vpid = allowed1(procbased2, kProc2EnableVpid);
    caps.vmcs_shadowing = allowed1(procbased2, kProc2VmcsShadowing);
    // VM entry fails with unrestricted guest set and EPT clear (SDM Vol. 3C
    // §26.2.1.1), so without EPT it is useless.
    caps.unrestricted_guest = caps.ept && allowed1(procbased2, kProc2UnrestrictedGuest);

    // IA32_VMX_EPT_VPID_CAP exists only if EPT or VPID can be enabled; its EPT
    // bits mean something only with EPT, its VPID bits only with VPID (A.10).
    if (caps.ept) {
        caps.ept_4level = (raw.ept_vpid & kEptCapPageWalk4) != 0;
        caps.ept_wb = (raw.ept_vpid & kEptCapWriteBack) != 0;
        caps.ept_2m = (raw.ept_vpid & kEptCapLargePage2m) != 0;
        caps.ept_1g = (raw.ept_vpid & kEptCapLargePage1g) != 0;
        caps.ept_ad = (raw.ept_vpid & kEptCapAccessedDirty) != 0;
        caps.invept = (raw.ept_vpid & kEptCapInvept) != 0;
    }
    if (caps.vpid) caps.invvpid = (raw.ept_vpid & kVpidCapInvvpid) != 0;
    return caps;
}

}  // namespace hv::vmx
