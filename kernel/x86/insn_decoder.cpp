#include "kernel/x86/insn_decoder.hpp"

namespace hv::x86 {

const char* mmio_op_name(MmioOp op) {
    switch (op) {
        case MmioOp::load: return "load";
        case MmioOp::store: return "store";
        case MmioOp::load_zero_extend: return "load_zero_extend";
        case MmioOp::load_sign_extend: return "load_sign_extend";
        case MmioOp::rmw_and: return "rmw_and";
        case MmioOp::rmw_or: return "rmw_or";
        case MmioOp::rmw_xor: return "rmw_xor";
        case MmioOp::rmw_add: return "rmw_add";
        case MmioOp::rmw_sub: return "rmw_sub";
        case MmioOp::cmp: return "cmp";
        case MmioOp::test: return "test";
        case MmioOp::xchg: return "xchg";
    }
    return "?";
}

namespace {

constexpr uint8_t kRexW = 0x8, kRexR = 0x4, kRexX = 0x2, kRexB = 0x1;

// Reads the instruction bytes in order. It stops at min(avail, 15): past 15 the
// CPU raises #GP (SDM Vol. 2A §2.1), before that a short buffer means the caller
// must fetch more (the instruction crosses into a page it did not copy).
class Cursor {
  public:
    Cursor(const uint8_t* bytes, size_t avail)
        : bytes_(bytes), avail_(avail), limit_(avail < kMaxInsnLength ? avail : kMaxInsnLength) {}

    Result<uint8_t> u8() {
        if (pos_ >= limit_) return short_error();
        return bytes_[pos_++];
    }
    // `n` bytes little-endian (n <= 8), zero-extended.
    Result<uint64_t> le(unsigned n) {
        uint64_t v = 0;
        for (unsigned i = 0; i < n; ++i) v |= static_cast<uint64_t>(TRY(u8())) << (8 * i);
        return v;
    }
    size_t pos() const { return pos_; }

  private:
    Error short_error() const {
        if (pos_ >= kMaxInsnLength) return make_error(Errc::malformed, "instruction longer than 15 bytes", pos_ + 1);
        return make_error(Errc::truncated, "truncated", avail_);
    }

    const uint8_t* bytes_;
    size_t avail_;
    size_t limit_;
    size_t pos_ = 0;
};

struct Prefixes {
    bool opsize = false;    // 66
    bool addrsize = false;  // 67
    bool lock = false;      // F0
    uint8_t rep = 0;        // F2/F3, 0 when absent
    uint8_t rex = 0;        // the REX byte (0x40-0x4F), 0 when absent or cancelled
    bool seg_override = false;
    Segment seg = Segment::DS;
};

bool is_16bit(CpuMode m) {
    return m == CpuMode::real16 || m == CpuMode::protected16;
}

// Operand size of a non-byte instruction, SDM Vol. 1 §3.6 and Table 3-4: REX.W
// wins over 66 in 64-bit mode.
uint8_t full_operand_size(CpuMode mode, const Prefixes& p) {
    if (mode == CpuMode::long64) {
        if (p.rex & kRexW) return 8;
        return p.opsize ? 2 : 4;
    }
    if (is_16bit(mode)) return p.opsize ? 4 : 2;
    return p.opsize ? 2 : 4;
}

uint8_t address_size(CpuMode mode, const Prefixes& p) {
    if (mode == CpuMode::long64) return p.addrsize ? 4 : 8;
    if (is_16bit(mode)) return p.addrsize ? 4 : 2;
    return p.addrsize ? 2 : 4;
}

Error not_emulated(uint64_t opcode) {
    return make_error(Errc::unsupported, "opcode not emulated", opcode);
}

// Legacy prefixes (SDM Vol. 2A §2.1.1) and, in 64-bit mode, REX (§2.2.1). A REX
// counts only directly before the opcode: a legacy prefix after it makes the CPU
// ignore it, and of several REX bytes only the last one is used. Returns the
// first opcode byte.
Result<uint8_t> read_prefixes(Cursor& cur, CpuMode mode, Prefixes& p) {
    for (;;) {  // bounded: every iteration consumes a byte and the cursor stops at 15
        const uint8_t b = TRY(cur.u8());
        Segment seg = Segment::DS;
        switch (b) {
            case 0x66:
                p.opsize = true;
                p.rex = 0;
                continue;
            case 0x67:
                p.addrsize = true;
                p.rex = 0;
                continue;
            case 0xF0:
                p.lock = true;
                p.rex = 0;
                continue;
            case 0xF2:
            case 0xF3:
                p.rep = b;
                p.rex = 0;
                continue;
            case 0x26: seg = Segment::ES; break;
            case 0x2E: seg = Segment::CS; break;
            case 0x36: seg = Segment::SS; break;
            case 0x3E: seg = Segment::DS; break;
            case 0x64: seg = Segment::FS; break;
            case 0x65: seg = Segment::GS; break;
            default:
                if (mode == CpuMode::long64 && (b & 0xF0) == 0x40) {
                    p.rex = b;
                    continue;
                }
                return b;
        }
        // The last segment override wins, as on the CPU.
        p.seg_override = true;
        p.seg = seg;
        p.rex = 0;
    }
}

// ModR/M (and SIB and displacement) of a memory operand. 16-bit addressing: SDM
// Vol. 2A Table 2-1; 32/64-bit: Tables 2-2 and 2-3, with REX.B/REX.X extending
// base and index (§2.2.1.2) and mod=00 r/m=101 meaning RIP+disp32 in 64-bit mode
// (§2.2.1.6, Table 2-7). Sets `stack` when the default segment is SS (BP/SP-based).
Result<void> read_memory_operand(Cursor& cur, uint8_t modrm, uint16_t opcode, CpuMode mode, const Prefixes& p,
                                 MemOperand& m, bool& stack) {
    const uint8_t mod = modrm >> 6, rm = modrm & 7;
    if (mod == 3) return make_error(Errc::unsupported, "register operand: no memory access", opcode);
    m.address_size = address_size(mode, p);
    stack = false;

    if (m.address_size == 2) {
        // [BX+SI] [BX+DI] [BP+SI] [BP+DI] [SI] [DI] [BP] [BX]
        static constexpr uint8_t kBase[8] = {3, 3, 5, 5, kNoReg, kNoReg, 5, 3};
        static constexpr uint8_t kIndex[8] = {6, 7, 6, 7, 6, 7, kNoReg, kNoReg};
        if (mod == 0 && rm == 6) {
            m.disp = static_cast<int64_t>(TRY(cur.le(2)));  // disp16, no base (not [BP])
            return ok_result();
        }
        m.base = kBase[rm];
        m.index = kIndex[rm];
        stack = m.base == 5;
        if (mod == 1) m.disp = static_cast<int64_t>(sign_extend(TRY(cur.le(1)), 1));
        if (mod == 2) m.disp = static_cast<int64_t>(sign_extend(TRY(cur.le(2)), 2));
        return ok_result();
    }

    const uint8_t rex_b = (p.rex & kRexB) ? 8 : 0, rex_x = (p.rex & kRexX) ? 8 : 0;
    bool disp32 = mod == 2;
    if (rm == 4) {
        const uint8_t sib = TRY(cur.u8());
        const uint8_t scale_bits = sib >> 6, index = ((sib >> 3) & 7) | rex_x, base = sib & 7;
        m.scale = static_cast<uint8_t>(1u << scale_bits);
        if (index != 4) m.index = index;  // RSP cannot be an index; R12 can
        if (base == 5 && mod == 0) {
            disp32 = true;  // no base, disp32 (also with REX.B: the low 3 bits decide)
        } else {
            m.base = base | rex_b;
        }
    } else if (rm == 5 && mod == 0) {
        disp32 = true;
        m.rip_relative = mode == CpuMode::long64;  // absolute disp32 outside 64-bit mode
    } else {
        m.base = rm | rex_b;
    }
    stack = m.base == 4 || m.base == 5;
    if (mod == 1) m.disp = static_cast<int64_t>(sign_extend(TRY(cur.le(1)), 1));
    if (disp32) m.disp = static_cast<int64_t>(sign_extend(TRY(cur.le(4)), 4));
    return ok_result();
}

// What one opcode means for us, before ModR/M.
struct OpcodeForm {
    MmioOp op;
    bool byte;             // 8-bit operands
    bool reg_destination;  // "d" direction bit: reg <- r/m
    bool has_reg;          // ModR/M.reg names a register (else it is an opcode extension)
    uint8_t imm_bytes;     // 0, or 1 (ib), or 4 meaning iz (imm16/imm32 by operand size)
    bool moffs;            // A0-A3: no ModR/M, an address-size offset
    uint8_t access_size;   // MOVZX/MOVSX source size, else 0 (= operand size)
};

// ALU operation from bits 5:3 of 00-3F or ModR/M.reg of 80/81/83 (SDM Vol. 2D
// Table group 1): ADD OR ADC SBB AND SUB XOR CMP. ADC/SBB are not
// used on device memory and are not emulated.
bool alu_op(unsigned n, MmioOp& op) {
    static constexpr MmioOp kOps[8] = {MmioOp::rmw_add, MmioOp::rmw_or,  MmioOp::rmw_add, MmioOp::rmw_add,
                                       MmioOp::rmw_and, MmioOp::rmw_sub, MmioOp::rmw_xor, MmioOp::cmp};
    if (n == 2 || n == 3) return false;
    op = kOps[n];
    return true;
}

bool is_rmw(MmioOp op) {
    return op == MmioOp::rmw_and || op == MmioOp::rmw_or || op == MmioOp::rmw_xor || op == MmioOp::rmw_add ||
           op == MmioOp::rmw_sub;
}

// One-byte opcodes whose ModR/M.reg is a register (or no ModR/M at all).
Result<OpcodeForm> classify(uint8_t opcode) {
    if (opcode < 0x40 && (opcode & 7) < 4) {
        OpcodeForm f{};
        if (!alu_op(opcode >> 3, f.op)) return not_emulated(opcode);
        f.byte = (opcode & 1) == 0;
        f.reg_destination = (opcode & 2) != 0;
        f.has_reg = true;
        return f;
    }
    switch (opcode) {
        case 0x84:
        case 0x85: return OpcodeForm{MmioOp::test, opcode == 0x84, false, true, 0, false, 0};
        case 0x86:
        case 0x87: return OpcodeForm{MmioOp::xchg, opcode == 0x86, false, true, 0, false, 0};
        case 0x88:
        case 0x89: return OpcodeForm{MmioOp::store, opcode == 0x88, false, true, 0, false, 0};
        case 0x8A:
        case 0x8B: return OpcodeForm{MmioOp::load, opcode == 0x8A, true, true, 0, false, 0};
        case 0xA0:
        case 0xA1: return OpcodeForm{MmioOp::load, opcode == 0xA0, true, true, 0, true, 0};
        case 0xA2:
        case 0xA3: return OpcodeForm{MmioOp::store, opcode == 0xA2, false, true, 0, true, 0};
        // Group opcodes: the operation is in ModR/M.reg, refined in decode_mmio.
        case 0x80: return OpcodeForm{MmioOp::rmw_add, true, false, false, 1, false, 0};
        case 0x81: return OpcodeForm{MmioOp::rmw_add, false, false, false, 4, false, 0};
        case 0x83: return OpcodeForm{MmioOp::rmw_add, false, false, false, 1, false, 0};
        case 0xC6: return OpcodeForm{MmioOp::store, true, false, false, 1, false, 0};
        case 0xC7: return OpcodeForm{MmioOp::store, false, false, false, 4, false, 0};
        case 0xF6: return OpcodeForm{MmioOp::test, true, false, false, 1, false, 0};
        case 0xF7: return OpcodeForm{MmioOp::test, false, false, false, 4, false, 0};
        default: return not_emulated(opcode);
    }
}

// Two-byte opcodes 0F xx: only MOVZX/MOVSX (SDM Vol. 2B "MOVZX", "MOVSX").
Result<OpcodeForm> classify_0f(uint8_t opcode2) {
    switch (opcode2) {
        case 0xB6: return OpcodeForm{MmioOp::load_zero_extend, false, true, true, 0, false, 1};
        case 0xB7: return OpcodeForm{MmioOp::load_zero_extend, false, true, true, 0, false, 2};
        case 0xBE: return OpcodeForm{MmioOp::load_sign_extend, false, true, true, 0, false, 1};
        case 0xBF: return OpcodeForm{MmioOp::load_sign_extend, false, true, true, 0, false, 2};
        default: return not_emulated(0x0F00u | opcode2);
    }
}

// The group's operation from ModR/M.reg: 80/81/83 group 1, C6/C7 group 11
// (MOV /0), F6/F7 group 3 (TEST /0), SDM Vol. 2D Table A-6.
Result<void> refine_group(uint8_t opcode, uint8_t ext, OpcodeForm& f) {
    const Error e = make_error(Errc::unsupported, "opcode extension (ModR/M.reg) not emulated",
                               (static_cast<uint64_t>(opcode) << 8) | ext);
    switch (opcode) {
        case 0x80:
        case 0x81:
        case 0x83:
            if (!alu_op(ext, f.op)) return e;
            return ok_result();
        default:  // C6, C7, F6, F7: only /0
            if (ext != 0) return e;
            return ok_result();
    }
}

}  // namespace

Result<MmioInsn> decode_mmio(const uint8_t* bytes, size_t avail, CpuMode mode) {
    if (bytes == nullptr && avail != 0) return make_error(Errc::invalid_argument, "no instruction bytes");
    if (mode != CpuMode::real16 && mode != CpuMode::protected16 && mode != CpuMode::protected32 &&
        mode != CpuMode::long64)
        return make_error(Errc::invalid_argument, "bad cpu mode", static_cast<uint64_t>(mode));

    Cursor cur(bytes, avail);
    Prefixes p;
    const uint8_t opcode = TRY(read_prefixes(cur, mode, p));
    uint16_t full_opcode = opcode;  // for error values: 0x0Fxx for two-byte opcodes
    OpcodeForm f{};
    if (opcode == 0x0F) {
        const uint8_t opcode2 = TRY(cur.u8());
        full_opcode = static_cast<uint16_t>(0x0F00u | opcode2);
        f = TRY(classify_0f(opcode2));
    } else {
        f = TRY(classify(opcode));
    }
    if (p.rep != 0) return make_error(Errc::unsupported, "REP prefix on an MMIO instruction", p.rep);

    MmioInsn insn;
    insn.op = f.op;
    insn.reg_destination = f.reg_destination;
    insn.operand_size = f.byte ? 1 : full_operand_size(mode, p);
    insn.access_size = f.access_size != 0 ? f.access_size : insn.operand_size;
    const bool any_rex = p.rex != 0;

    bool stack = false;
    if (f.moffs) {
        // MOV AL/rAX <-> moffs: the offset has the address size (SDM Vol. 2A "MOV",
        // note on moffs; 8 bytes in 64-bit mode unless 67).
        insn.mem.address_size = address_size(mode, p);
        insn.mem.disp = static_cast<int64_t>(TRY(cur.le(insn.mem.address_size)));
        insn.has_reg = true;
        insn.reg = 0;  // AL/AX/EAX/RAX
    } else {
        const uint8_t modrm = TRY(cur.u8());
        const uint8_t reg_field = (modrm >> 3) & 7;
        if (!f.has_reg) TRY(refine_group(opcode, reg_field, f));
        insn.op = f.op;
        TRY(read_memory_operand(cur, modrm, full_opcode, mode, p, insn.mem, stack));
        if (f.has_reg) {
            insn.has_reg = true;
            insn.reg = reg_field | ((p.rex & kRexR) ? 8 : 0);
            // Without any REX, byte registers 4-7 are AH, CH, DH, BH (SDM Vol. 2A
            // §2.2.1.2, Table 3-1); MOVZX/MOVSX destinations are never bytes.
            if (insn.operand_size == 1 && !any_rex && insn.reg >= 4) {
                insn.reg -= 4;
                insn.reg_high_byte = true;
            }
        }
    }

    if (f.imm_bytes != 0) {
        // iz: imm16 for a 16-bit operand, else imm32 (sign-extended under REX.W).
        const unsigned n = f.imm_bytes == 1 ? 1 : (insn.operand_size == 2 ? 2 : 4);
        insn.has_imm = true;
        insn.imm = sign_extend(TRY(cur.le(n)), n) & size_mask(insn.operand_size);
    }

    // LOCK is legal only on read-modify-write forms with a memory destination
    // (SDM Vol. 2A "LOCK": otherwise #UD). XCHG with memory locks by itself.
    if (insn.op == MmioOp::xchg) {
        insn.lock = true;
    } else if (p.lock) {
        if (!is_rmw(insn.op) || insn.reg_destination)
            return make_error(Errc::malformed, "lock on non-RMW", full_opcode);
        insn.lock = true;
    }

    insn.segment_override = p.seg_override;
    insn.segment = p.seg_override ? p.seg : (stack ? Segment::SS : Segment::DS);
    insn.length = static_cast<uint8_t>(cur.pos());
    return insn;
}

uint64_t effective_address(const MmioInsn& insn, const uint64_t gpr[16], uint64_t rip) {
    const MemOperand& m = insn.mem;
    uint64_t ea = static_cast<uint64_t>(m.disp);
    if (m.rip_relative) ea += rip + insn.length;
    if (m.base < 16) ea += gpr[m.base];
    if (m.index < 16) ea += gpr[m.index] * m.scale;
    return ea & size_mask(m.address_size);
}

}  // namespace hv::x86
