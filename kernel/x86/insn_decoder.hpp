#pragma once
// Decoder for the one instruction behind an MMIO EPT violation.
//
// An EPT violation reports the guest-physical (and usually the guest-linear)
// address but, unlike most exits, no instruction length and no operand
// information (SDM Vol. 3C §28.2.1, §28.2.5: the VM-exit instruction-length field
// is only defined for exits caused by instruction execution, and EPT violations
// are not among them). So the hypervisor fetches the bytes at the guest's RIP and
// decodes them itself. Only the forms a driver uses on device memory are
// accepted: MOV (88-8B, C6/C7 /0, A0-A3), MOVZX/MOVSX (0F B6/B7/BE/BF), the ALU
// forms ADD/OR/AND/SUB/XOR/CMP (00-3D family, 80/81/83), TEST (84/85, F6/F7 /0)
// and XCHG (86/87). Everything else is an error naming the reason.
//
// Encodings: SDM Vol. 2A chapter 2 (§2.1.1 prefixes, §2.1.5 ModR/M and SIB,
// Tables 2-1 to 2-3, §2.2.1 REX, §2.2.1.6 RIP-relative addressing) and the
// instruction pages of Vol. 2A/2B; operand- and address-size attributes: SDM
// Vol. 1 §3.6 and Table 3-4 (64-bit mode).

#include <stddef.h>
#include <stdint.h>

#include "kernel/lib/result.hpp"

namespace hv::x86 {

// The default operand/address size comes from the mode (SDM Vol. 1 §3.6).
// Compatibility mode is protected32 or protected16 according to CS.D; virtual-8086
// mode decodes like real16.
enum class CpuMode : uint8_t { real16, protected16, protected32, long64 };

// CR0.PE, IA32_EFER.LMA, CS.L, CS.D and RFLAGS.VM -> the decoding mode.
constexpr CpuMode cpu_mode(bool cr0_pe, bool efer_lma, bool cs_l, bool cs_d, bool rflags_vm) {
    if (!cr0_pe || rflags_vm) return CpuMode::real16;
    if (efer_lma && cs_l) return CpuMode::long64;
    return cs_d ? CpuMode::protected32 : CpuMode::protected16;
}

enum class MmioOp : uint8_t {
    load,              // register <- memory (8A, 8B, A0, A1)
    store,             // memory <- register or immediate (88, 89, A2, A3, C6, C7)
    load_zero_extend,  // MOVZX (0F B6, 0F B7)
    load_sign_extend,  // MOVSX (0F BE, 0F BF)
    rmw_and,           // AND/OR/XOR/ADD/SUB: memory or register destination,
    rmw_or,            // see MmioInsn::reg_destination
    rmw_xor,
    rmw_add,
    rmw_sub,
    cmp,   // flags from destination - source, nothing written
    test,  // flags from memory & source, nothing written
    xchg,  // memory <-> register, implicitly locked
};

const char* mmio_op_name(MmioOp op);

// Segment registers in their sreg3 encoding (SDM Vol. 2D §B.1.4, Table B-6).
enum class Segment : uint8_t { ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5 };

// GPR numbers as in ModR/M and REX (SDM Vol. 2A Table 2-2 and §2.2.1.2):
// 0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI, 8-15 R8-R15.
inline constexpr uint8_t kNoReg = 0xFF;
inline constexpr size_t kMaxInsnLength = 15;  // SDM Vol. 2A §2.1: longer is #GP

// All-ones in the low `bytes` bytes (1, 2, 4 or 8), and sign extension from them.
constexpr uint64_t size_mask(unsigned bytes) {
    return bytes >= 8 ? ~0ull : (1ull << (8 * bytes)) - 1;
}
constexpr uint64_t sign_extend(uint64_t v, unsigned bytes) {
    if (bytes >= 8) return v;
    const uint64_t sign = 1ull << (8 * bytes - 1);
    v &= size_mask(bytes);
    return (v ^ sign) - sign;
}

// The memory operand, enough to recompute the effective address.
struct MemOperand {
    uint8_t base = kNoReg;   // GPR number or kNoReg
    uint8_t index = kNoReg;  // GPR number or kNoReg
    uint8_t scale = 1;       // 1, 2, 4 or 8
    bool rip_relative = false;
    uint8_t address_size = 0;  // 2, 4 or 8 bytes
    int64_t disp = 0;          // sign-extended displacement, or the moffs offset (zero-extended)
};

struct MmioInsn {
    uint8_t length = 0;  // bytes, prefixes included: the guest's RIP advances by this
    MmioOp op = MmioOp::load;
    uint8_t access_size = 0;  // bytes read from/written to the device: 1, 2, 4 or 8
    // The register/immediate operand's size; differs from access_size only for
    // MOVZX/MOVSX (>=: 0F B7/BF with a 16-bit operand size is a 16-bit move).
    uint8_t operand_size = 0;
    // Register operand (source of stores/ALU ops, destination of loads, the other
    // side of XCHG). `reg` is 0-15; with reg_high_byte it is 0-3 meaning AH, CH, DH,
    // BH (bits 15:8 of RAX..RBX; byte registers 4-7 without any REX prefix,
    // SDM Vol. 2A §2.2.1.2, Table 3-1).
    bool has_reg = false;
    uint8_t reg = kNoReg;
    bool reg_high_byte = false;
    // Immediate source (C6/C7, 80/81/83, F6/F7), sign-extended to operand_size
    // and truncated to it (a 4-byte operand's immediate is below 2^32).
    bool has_imm = false;
    uint64_t imm = 0;
    // The register is the destination (loads, and ALU/CMP forms reg, r/m: 02, 03,
    // 0A, 0B, 22, 23, 2A, 2B, 32, 33, 3A, 3B); otherwise memory is.
    bool reg_destination = false;
    Segment segment = Segment::DS;  // effective segment (override, or DS/SS default)
    bool segment_override = false;
    bool lock = false;  // F0 prefix, or XCHG's implicit lock
    MemOperand mem{};
};

// Decodes the one instruction at `bytes` (at most `avail` bytes are readable;
// never reads beyond min(avail, 15)). Errors: Errc::truncated ("truncated") when
// the instruction needs more than `avail` bytes; Errc::unsupported for
// instructions not emulated (value = the opcode byte, 0x0Fxx for two-byte opcodes,
// (opcode << 8) | ModRM.reg for group opcodes), register-only operands and REP
// prefixes; Errc::malformed for encodings that fault (#UD/#GP): LOCK on anything
// but an RMW with a memory destination (value = the opcode as above), or more
// than 15 bytes (value = 16).
Result<MmioInsn> decode_mmio(const uint8_t* bytes, size_t avail, CpuMode mode);

// The effective address (offset in the segment, SDM Vol. 1 §3.7.5) of the memory
// operand, truncated to the address size, from the GPRs and the address of the
// instruction (`rip`, used by RIP-relative operands, which are relative to the
// next instruction). The linear address is this plus the segment base; in 64-bit
// mode only FS and GS have a base (SDM Vol. 1 §3.3.7.1).
uint64_t effective_address(const MmioInsn& insn, const uint64_t gpr[16], uint64_t rip);

// RIP after the instruction: IP/EIP wrap at the code segment's size in 16- and
// 32-bit code (SDM Vol. 1 §3.5 / §3.6.1).
constexpr uint64_t next_rip(uint64_t rip, const MmioInsn& insn, CpuMode mode) {
    uint64_t next = rip + insn.length;
    switch (mode) {
        case CpuMode::real16:
        case CpuMode::protected16: return next & 0xFFFF;
        case CpuMode::protected32: return next & 0xFFFFFFFF;
        case CpuMode::long64: return next;
    }
    return next;
}

}  // namespace hv::x86
