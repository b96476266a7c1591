#pragma once
// VMX capability decoding: raw CPUID bits and VMX capability MSR values in, the
// facts later steps need out. Pure (no rdmsr here), so it is tested on the host
// with values captured from emulators and real CPUs. Layouts: SDM Vol. 3D
// Appendix A; IA32_FEATURE_CONTROL: SDM Vol. 3C §23.7.

#include <stdint.h>

namespace hv::vmx {

enum class Msr : uint32_t {
    IA32_FEATURE_CONTROL = 0x3A,
    IA32_VMX_BASIC = 0x480,
    IA32_VMX_PINBASED_CTLS = 0x481,
    IA32_VMX_PROCBASED_CTLS = 0x482,
    IA32_VMX_EXIT_CTLS = 0x483,
    IA32_VMX_ENTRY_CTLS = 0x484,
    IA32_VMX_MISC = 0x485,
    IA32_VMX_CR0_FIXED0 = 0x486,
    IA32_VMX_CR0_FIXED1 = 0x487,
    IA32_VMX_CR4_FIXED0 = 0x488,
    IA32_VMX_CR4_FIXED1 = 0x489,
    IA32_VMX_VMCS_ENUM = 0x48A,
    IA32_VMX_PROCBASED_CTLS2 = 0x48B,
    IA32_VMX_EPT_VPID_CAP = 0x48C,
    IA32_VMX_TRUE_PINBASED_CTLS = 0x48D,
    IA32_VMX_TRUE_PROCBASED_CTLS = 0x48E,
    IA32_VMX_TRUE_EXIT_CTLS = 0x48F,
    IA32_VMX_TRUE_ENTRY_CTLS = 0x490,
    IA32_VMX_VMFUNC = 0x491,
};

// CPUID.1:ECX.VMX[bit 5] (SDM Vol. 3C §23.6): the CPU implements VMX at all.
inline constexpr uint32_t kCpuid1EcxVmx = 1u << 5;

// IA32_FEATURE_CONTROL (SDM Vol. 3C §23.7). Once the lock bit is set the MSR
// cannot be written until reset, and VMXON outside SMX needs bit 2.
inline constexpr uint64_t kFeatureControlLock = 1ull << 0;
inline constexpr uint64_t kFeatureControlVmxInsideSmx = 1ull << 1;
inline constexpr uint64_t kFeatureControlVmxOutsideSmx = 1ull << 2;

// IA32_VMX_BASIC (SDM Vol. 3D Appendix A.1).
inline constexpr uint64_t kBasicRevisionMask = 0x7FFF'FFFF;  // bits 30:0; bit 31 is always 0
inline constexpr unsigned kBasicVmcsSizeShift = 32;          // bits 44:32: bytes for VMXON/VMCS regions
inline constexpr uint64_t kBasicVmcsSizeMask = 0x1FFF;
inline constexpr unsigned kBasicMemoryTypeShift = 50;  // bits 53:50: memory type for VMCS accesses
inline constexpr uint64_t kBasicMemoryTypeMask = 0xF;
inline constexpr uint64_t kBasicTrueCtls = 1ull << 55;  // the IA32_VMX_TRUE_*_CTLS MSRs exist

// Memory type encoding shared by VMX_BASIC, EPT and the PAT (SDM Vol. 3A
// Table 11-10; Vol. 3D Appendix A.1).
inline constexpr uint8_t kMemoryTypeWriteBack = 6;

// Pin-based VM-execution controls (SDM Vol. 3C §24.6.1).
inline constexpr uint32_t kPinPreemptionTimer = 1u << 6;

// Primary processor-based VM-execution controls (SDM Vol. 3C §24.6.2, Table 24-6).
inline constexpr uint32_t kProcUseIoBitmaps = 1u << 25;
inline constexpr uint32_t kProcUseMsrBitmaps = 1u << 28;
inline constexpr uint32_t kProcActivateSecondary = 1u << 31;

// Secondary processor-based VM-execution controls (SDM Vol. 3C §24.6.2, Table 24-7).
inline constexpr uint32_t kProc2VirtualizeApicAccesses = 1u << 0;
inline constexpr uint32_t kProc2EnableEpt = 1u << 1;
inline constexpr uint32_t kProc2EnableVpid = 1u << 5;
inline constexpr uint32_t kProc2UnrestrictedGuest = 1u << 7;
inline constexpr uint32_t kProc2VmcsShadowing = 1u << 14;

// IA32_VMX_MISC (SDM Vol. 3D Appendix A.6).
inline constexpr uint64_t kMiscPreemptionTimerRateMask = 0x1F;  // bits 4:0

// IA32_VMX_EPT_VPID_CAP (SDM Vol. 3D Appendix A.10).
inline constexpr uint64_t kEptCapPageWalk4 = 1ull << 6;
inline constexpr uint64_t kEptCapWriteBack = 1ull << 14;
inline constexpr uint64_t kEptCapLargePage2m = 1ull << 16;
inline constexpr uint64_t kEptCapLargePage1g = 1ull << 17;
inline constexpr uint64_t kEptCapInvept = 1ull << 20;
inline constexpr uint64_t kEptCapAccessedDirty = 1ull << 21;
inline constexpr uint64_t kVpidCapInvvpid = 1ull << 32;

// VMX control capability MSRs: bits 31:0 are the allowed-0 settings (a 1 there
// means the control must be 1), bits 63:32 the allowed-1 settings (a 1 there
// means the control may be 1). SDM Vol. 3D Appendix A.3.
constexpr bool allowed1(uint64_t capability_msr, uint32_t bit_mask) {
    return (static_cast<uint32_t>(capability_msr >> 32) & bit_mask) == bit_mask;
}
constexpr bool required1(uint64_t capability_msr, uint32_t bit_mask) {
    return (static_cast<uint32_t>(capability_msr) & bit_mask) == bit_mask;
}

// Values as read by the caller. An MSR the caller must not read (it does not
// exist per the rules in decode()) is passed as 0; decode() ignores it anyway.
struct RawCaps {
    bool cpuid_vmx;  // CPUID.1:ECX[5]
    uint64_t feature_control;
    uint64_t basic, pinbased, procbased, exit, entry, misc, procbased2, ept_vpid;
    uint64_t true_pinbased, true_procbased, true_exit, true_entry;
};

// What to do with IA32_FEATURE_CONTROL before VMXON.
enum class FeatureControlState : uint8_t {
    enabled_locked,        // locked with VMX outside SMX on: nothing to do
    needs_enable,          // unlocked: write value_to_write (sets lock + VMX outside SMX)
    disabled_by_firmware,  // locked without VMX outside SMX: VMXON would #GP
};

struct FeatureControlDecision {
    FeatureControlState state;
    uint64_t value_to_write;  // 0 unless state is needs_enable
};

FeatureControlDecision decide_feature_control(uint64_t feature_control);

struct VmxCaps {
    bool vmx;
    uint32_t vmcs_revision;
    uint32_t vmcs_size;
    bool true_ctls;            // BASIC bit 55
    uint8_t vmcs_memory_type;  // BASIC bits 53:50
    bool memory_type_wb;       // vmcs_memory_type is write-back
    bool ept;
    bool vpid;
    bool unrestricted_guest;
    bool preemption_timer;
    uint8_t preemption_timer_rate;  // MISC bits 4:0: timer ticks every 2^rate TSC cycles
    bool ept_4level;
    bool ept_wb;
    bool ept_2m;
    bool ept_1g;
    bool ept_ad;
    bool invept;
    bool invvpid;
    bool secondary_ctls;
    bool msr_bitmaps;
    bool io_bitmaps;
    bool vmcs_shadowing;
    bool apic_virt;
};

// Everything false/0 when !raw.cpuid_vmx. Does not look at feature_control:
// whether VMX is usable after firmware is decide_feature_control()'s answer.
VmxCaps decode(const RawCaps& raw);

}  // namespace hv::vmx
