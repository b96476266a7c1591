#pragma once
// Decoders for VM-exit information fields, as small value structs (the Zircon
// habit): exit reason, exit qualifications for control-register access and I/O
// instructions, and VM-exit/entry interruption information. SDM Vol. 3C
// §28.2.1 "Basic VM-exit information" (Tables 28-1, 28-3, 28-5) and
// §25.8.3 "VM-entry controls for event injection" (Table 25-17).

#include <stdint.h>

namespace hv::vmx {

struct ExitReasonInfo {
    uint16_t basic;        // bits 15:0
    bool entry_failure;    // bit 31: the VM entry failed (reasons 33, 34, 41)
};
constexpr ExitReasonInfo decode_exit_reason(uint32_t v) {
    return ExitReasonInfo{static_cast<uint16_t>(v & 0xFFFF), (v >> 31) != 0};
}

enum class CrAccessType : uint8_t { mov_to_cr = 0, mov_from_cr = 1, clts = 2, lmsw = 3 };

struct CrAccess {
    uint8_t cr;            // 0, 3, 4 or 8
    CrAccessType type;
    uint8_t gpr;           // register operand of MOV (0 = RAX ... 15 = R15; 4 = RSP)
    bool lmsw_memory;      // LMSW operand was memory (else register)
    uint16_t lmsw_source;  // LMSW source data
};
CrAccess decode_cr_access(uint64_t qualification);

struct IoAccess {
    uint8_t size;          // 1, 2 or 4 bytes
    bool in;               // IN/INS (else OUT/OUTS)
    bool string;           // INS/OUTS
    bool rep;              // REP prefix
    bool immediate;        // port given as immediate operand
    uint16_t port;
};
IoAccess decode_io_access(uint64_t qualification);

enum class InterruptionType : uint8_t {
    external_interrupt = 0,
    nmi = 2,
    hardware_exception = 3,
    software_interrupt = 4,
    privileged_software_exception = 5,
    software_exception = 6,
    other_event = 7,
};

struct Interruption {
    uint8_t vector;
    InterruptionType type;
    bool error_code_valid;
    bool nmi_unblocking;   // exit info only: NMI unblocking due to IRET
    bool valid;
};
Interruption decode_interruption(uint32_t info);
// Value for VM_ENTRY_INTR_INFO_FIELD to inject `vector` of `type`.
uint32_t encode_interruption(uint8_t vector, InterruptionType type, bool error_code_valid);

// Exceptions that push an error code (SDM Vol. 3A Table 6-1), for injection.
constexpr bool exception_has_error_code(uint8_t vector) {
    return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 || vector == 29 ||
           vector == 30;
}

// VM-instruction error numbers (SDM Vol. 3C §31.4 "VM instruction error numbers").
const char* vm_instruction_error_name(uint32_t error);

}  // namespace hv::vmx
