#include "vmx/exit_qualification.hpp"

#include "vmx/vmcs_fields.hpp"

namespace hv::vmx {

CrAccess decode_cr_access(uint64_t q) {
    return CrAccess{
        .cr = static_cast<uint8_t>(q & 0xF),
        .type = static_cast<CrAccessType>((q >> 4) & 3),
        .gpr = static_cast<uint8_t>((q >> 8) & 0xF),
        .lmsw_memory = ((q >> 6) & 1) != 0,
        .lmsw_source = static_cast<uint16_t>((q >> 16) & 0xFFFF),
    };
}

IoAccess decode_io_access(uint64_t q) {
    uint8_t size_code = q & 7;  // 0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes
    return IoAccess{
        .size = static_cast<uint8_t>(size_code == 0 ? 1 : size_code == 1 ? 2 : 4),
        .in = ((q >> 3) & 1) != 0,
        .string = ((q >> 4) & 1) != 0,
        .rep = ((q >> 5) & 1) != 0,
        .immediate = ((q >> 6) & 1) != 0,
        .port = static_cast<uint16_t>((q >> 16) & 0xFFFF),
    };
}

Interruption decode_interruption(uint32_t info) {
    return Interruption{
        .vector = static_cast<uint8_t>(info & 0xFF),
        .type = static_cast<InterruptionType>((info >> 8) & 7),
        .error_code_valid = ((info >> 11) & 1) != 0,
        .nmi_unblocking = ((info >> 12) & 1) != 0,
        .valid = (info >> 31) != 0,
    };
}

uint32_t encode_interruption(uint8_t vector, InterruptionType type, bool error_code_valid) {
    return vector | (static_cast<uint32_t>(type) << 8) | (error_code_valid ? 1u << 11 : 0) | (1u << 31);
}

const char* vm_instruction_error_name(uint32_t e) {
    switch (e) {
        case 1: return "VMCALL executed in VMX root operation";
        case 2: return "VMCLEAR with invalid physical address";
        case 3: return "VMCLEAR with VMXON pointer";
        case 4: return "VMLAUNCH with non-clear VMCS";
        case 5: return "VMRESUME with non-launched VMCS";
        case 6: return "VMRESUME after VMXOFF";
        case 7: return "VM entry with invalid control field(s)";
        case 8: return "VM entry with invalid host-state field(s)";
        case 9: return "VMPTRLD with invalid physical address";
        case 10: return "VMPTRLD with VMXON pointer";
        case 11: return "VMPTRLD with incorrect VMCS revision identifier";
        case 12: return "VMREAD/VMWRITE from/to unsupported VMCS component";
        case 13: return "VMWRITE to read-only VMCS component";
        case 15: return "VMXON executed in VMX root operation";
        case 16: return "VM entry with invalid executive-VMCS pointer";
        case 17: return "VM entry with non-launched executive VMCS";
        case 18: return "VM entry with executive-VMCS pointer not VMXON pointer";
        case 19: return "VMCALL with non-clear VMCS";
        case 20: return "VMCALL with invalid VM-exit control fields";
        case 22: return "VMCALL with incorrect MSEG revision identifier";
        case 23: return "VMXOFF under dual-monitor treatment";
        case 24: return "VMCALL with invalid SMM-monitor features";
        case 25: return "VM entry with invalid VM-execution control fields in executive VMCS";
        case 26: return "VM entry with events blocked by MOV SS";
        case 28: return "Invalid operand to INVEPT/INVVPID";
        default: return "unknown VM-instruction error";
    }
}

const char* exit_reason_name(uint16_t r) {
    switch (static_cast<ExitReason>(r)) {
        case ExitReason::EXCEPTION_NMI: return "EXCEPTION_NMI";
        case ExitReason::EXTERNAL_INTERRUPT: return "EXTERNAL_INTERRUPT";
        case ExitReason::TRIPLE_FAULT: return "TRIPLE_FAULT";
        case ExitReason::INIT_SIGNAL: return "INIT_SIGNAL";
        case ExitReason::SIPI: return "SIPI";
        case ExitReason::INTERRUPT_WINDOW: return "INTERRUPT_WINDOW";
        case ExitReason::NMI_WINDOW: return "NMI_WINDOW";
        case ExitReason::TASK_SWITCH: return "TASK_SWITCH";
        case ExitReason::CPUID: return "CPUID";
        case ExitReason::GETSEC: return "GETSEC";
        case ExitReason::HLT: return "HLT";
        case ExitReason::INVD: return "INVD";
        case ExitReason::INVLPG: return "INVLPG";
        case ExitReason::RDPMC: return "RDPMC";
        case ExitReason::RDTSC: return "RDTSC";
        case ExitReason::RSM: return "RSM";
        case ExitReason::VMCALL: return "VMCALL";
        case ExitReason::VMCLEAR: return "VMCLEAR";
        case ExitReason::VMLAUNCH: return "VMLAUNCH";
        case ExitReason::VMPTRLD: return "VMPTRLD";
        case ExitReason::VMPTRST: return "VMPTRST";
        case ExitReason::VMREAD: return "VMREAD";
        case ExitReason::VMRESUME: return "VMRESUME";
        case ExitReason::VMWRITE: return "VMWRITE";
        case ExitReason::VMXOFF: return "VMXOFF";
        case ExitReason::VMXON: return "VMXON";
        case ExitReason::CR_ACCESS: return "CR_ACCESS";
        case ExitReason::DR_ACCESS: return "DR_ACCESS";
        case ExitReason::IO_INSTRUCTION: return "IO_INSTRUCTION";
        case ExitReason::RDMSR: return "RDMSR";
        case ExitReason::WRMSR: return "WRMSR";
        case ExitReason::ENTRY_FAIL_GUEST_STATE: return "ENTRY_FAIL_GUEST_STATE";
        case ExitReason::ENTRY_FAIL_MSR_LOADING: return "ENTRY_FAIL_MSR_LOADING";
        case ExitReason::MWAIT: return "MWAIT";
        case ExitReason::MONITOR_TRAP_FLAG: return "MONITOR_TRAP_FLAG";
        case ExitReason::MONITOR: return "MONITOR";
        case ExitReason::PAUSE: return "PAUSE";
        case ExitReason::ENTRY_FAIL_MACHINE_CHECK: return "ENTRY_FAIL_MACHINE_CHECK";
        case ExitReason::TPR_BELOW_THRESHOLD: return "TPR_BELOW_THRESHOLD";
        case ExitReason::APIC_ACCESS: return "APIC_ACCESS";
        case ExitReason::VIRTUALIZED_EOI: return "VIRTUALIZED_EOI";
        case ExitReason::GDTR_IDTR_ACCESS: return "GDTR_IDTR_ACCESS";
        case ExitReason::LDTR_TR_ACCESS: return "LDTR_TR_ACCESS";
        case ExitReason::EPT_VIOLATION: return "EPT_VIOLATION";
        case ExitReason::EPT_MISCONFIG: return "EPT_MISCONFIG";
        case ExitReason::INVEPT: return "INVEPT";
        case ExitReason::RDTSCP: return "RDTSCP";
        case ExitReason::PREEMPTION_TIMER: return "PREEMPTION_TIMER";
        case ExitReason::INVVPID: return "INVVPID";
        case ExitReason::WBINVD: return "WBINVD";
        case ExitReason::XSETBV: return "XSETBV";
        case ExitReason::APIC_WRITE: return "APIC_WRITE";
        case ExitReason::RDRAND: return "RDRAND";
        case ExitReason::INVPCID: return "INVPCID";
        case ExitReason::VMFUNC: return "VMFUNC";
        case ExitReason::ENCLS: return "ENCLS";
        case ExitReason::RDSEED: return "RDSEED";
        case ExitReason::PML_FULL: return "PML_FULL";
        case ExitReason::XSAVES: return "XSAVES";
        case ExitReason::XRSTORS: return "XRSTORS";
    }
    return "UNKNOWN";
}

}  // namespace hv::vmx
