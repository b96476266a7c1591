#pragma once
// VM-execution, VM-exit and VM-entry controls computed from the capability MSRs
// (SDM Vol. 3C §25.6-25.8 control fields; Vol. 3D Appendix A.3-A.5 for the
// allowed-0/allowed-1 settings, and §A.2 for the TRUE_* MSRs that let default-1
// bits be cleared). Pure: the capability values come from vmx_probe (hardware)
// or from dumps captured in Bochs (tests).

#include <stdint.h>

#include "kernel/lib/result.hpp"
#include "vmx/vmx_caps.hpp"

namespace hv::vmx {

// Control bits we use, the manual's names (SDM Vol. 3C Tables 25-5..25-7, 25-13, 25-15).
namespace pin {
inline constexpr uint32_t EXTERNAL_INTERRUPT_EXITING = 1u << 0;
inline constexpr uint32_t NMI_EXITING = 1u << 3;
inline constexpr uint32_t VIRTUAL_NMIS = 1u << 5;
inline constexpr uint32_t ACTIVATE_PREEMPTION_TIMER = 1u << 6;
}  // namespace pin
namespace proc {
inline constexpr uint32_t INTERRUPT_WINDOW_EXITING = 1u << 2;
inline constexpr uint32_t HLT_EXITING = 1u << 7;
inline constexpr uint32_t INVLPG_EXITING = 1u << 9;
inline constexpr uint32_t MWAIT_EXITING = 1u << 10;
inline constexpr uint32_t RDPMC_EXITING = 1u << 11;
inline constexpr uint32_t RDTSC_EXITING = 1u << 12;
inline constexpr uint32_t CR3_LOAD_EXITING = 1u << 15;
inline constexpr uint32_t CR3_STORE_EXITING = 1u << 16;
inline constexpr uint32_t CR8_LOAD_EXITING = 1u << 19;
inline constexpr uint32_t CR8_STORE_EXITING = 1u << 20;
inline constexpr uint32_t NMI_WINDOW_EXITING = 1u << 22;
inline constexpr uint32_t MOV_DR_EXITING = 1u << 23;
inline constexpr uint32_t UNCONDITIONAL_IO_EXITING = 1u << 24;
inline constexpr uint32_t USE_IO_BITMAPS = 1u << 25;
inline constexpr uint32_t USE_MSR_BITMAPS = 1u << 28;
inline constexpr uint32_t MONITOR_EXITING = 1u << 29;
inline constexpr uint32_t ACTIVATE_SECONDARY_CONTROLS = 1u << 31;
}  // namespace proc
namespace proc2 {
inline constexpr uint32_t ENABLE_EPT = 1u << 1;
inline constexpr uint32_t ENABLE_RDTSCP = 1u << 3;
inline constexpr uint32_t ENABLE_VPID = 1u << 5;
inline constexpr uint32_t WBINVD_EXITING = 1u << 6;
inline constexpr uint32_t UNRESTRICTED_GUEST = 1u << 7;
inline constexpr uint32_t ENABLE_INVPCID = 1u << 12;
}  // namespace proc2
namespace exit_ctl {
inline constexpr uint32_t SAVE_DEBUG_CONTROLS = 1u << 2;
inline constexpr uint32_t HOST_ADDRESS_SPACE_SIZE = 1u << 9;
inline constexpr uint32_t ACK_INTERRUPT_ON_EXIT = 1u << 15;
inline constexpr uint32_t SAVE_IA32_PAT = 1u << 18;
inline constexpr uint32_t LOAD_IA32_PAT = 1u << 19;
inline constexpr uint32_t SAVE_IA32_EFER = 1u << 20;
inline constexpr uint32_t LOAD_IA32_EFER = 1u << 21;
}  // namespace exit_ctl
namespace entry_ctl {
inline constexpr uint32_t LOAD_DEBUG_CONTROLS = 1u << 2;
inline constexpr uint32_t IA32E_MODE_GUEST = 1u << 9;
inline constexpr uint32_t LOAD_IA32_PAT = 1u << 14;
inline constexpr uint32_t LOAD_IA32_EFER = 1u << 15;
}  // namespace entry_ctl

struct VmcsControls {
    uint32_t pin;
    uint32_t proc;
    uint32_t proc2;
    uint32_t exit;
    uint32_t entry;  // without IA32E_MODE_GUEST: that one follows the guest's EFER.LMA
};

// value = (wanted | allowed-0) & allowed-1. Fails with Errc::unsupported naming
// `what` when a bit of `required` may not be 1.
Result<uint32_t> adjust_controls(uint64_t capability_msr, uint32_t wanted, uint32_t required, const char* what);

// The controls every partition vCPU runs with. Every requested bit has a
// one-line reason in vmx_controls.cpp. A CPU that lacks a required one is
// refused with an error naming the missing control.
Result<VmcsControls> compute_controls(const RawCaps& raw);

}  // namespace hv::vmx
