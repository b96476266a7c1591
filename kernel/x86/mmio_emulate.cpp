#include "kernel/x86/mmio_emulate.hpp"

namespace hv::x86 {

namespace {

bool valid_size(uint8_t s) {
    return s == 1 || s == 2 || s == 4 || s == 8;
}

// SF, ZF and PF from a result of `size` bytes (already masked). PF looks at the
// low byte only and is set for an even number of 1 bits (SDM Vol. 1 §3.4.3.1).
uint64_t szp_flags(uint64_t r, uint8_t size) {
    uint64_t f = 0;
    if (r == 0) f |= kFlagZF;
    if ((r >> (8 * size - 1)) & 1) f |= kFlagSF;
    if ((__builtin_popcount(static_cast<unsigned>(r & 0xFF)) & 1) == 0) f |= kFlagPF;
    return f;
}

// The operation's result and the six arithmetic flags, as the instruction pages
// of ADD, SUB, CMP, AND, OR, XOR and TEST (SDM Vol. 2) define them. AND/OR/XOR/
// TEST clear CF and OF; their AF is "undefined", and is 0 here as on Intel and
// AMD processors (the unit test checks that against the host CPU).
struct AluResult {
    uint64_t value;
    uint64_t flags;
};

AluResult alu(MmioOp op, uint64_t a, uint64_t b, uint8_t size) {
    const uint64_t mask = size_mask(size);
    const unsigned top = 8 * size - 1;
    a &= mask;
    b &= mask;
    uint64_t r = 0, f = 0;
    switch (op) {
        case MmioOp::rmw_add:
            r = (a + b) & mask;
            if (r < a) f |= kFlagCF;
            if ((((a ^ r) & (b ^ r)) >> top) & 1) f |= kFlagOF;
            if ((a ^ b ^ r) & 0x10) f |= kFlagAF;
            break;
        case MmioOp::rmw_sub:
        case MmioOp::cmp:
            r = (a - b) & mask;
            if (a < b) f |= kFlagCF;
            if ((((a ^ b) & (a ^ r)) >> top) & 1) f |= kFlagOF;
            if ((a ^ b ^ r) & 0x10) f |= kFlagAF;
            break;
        case MmioOp::rmw_and:
        case MmioOp::test: r = a & b; break;
        case MmioOp::rmw_or: r = a | b; break;
        case MmioOp::rmw_xor: r = a ^ b; break;
        default: break;
    }
    return AluResult{r, f | szp_flags(r, size)};
}

Result<void> check(const MmioInsn& insn) {
    const Error bad = make_error(Errc::invalid_argument, "inconsistent MmioInsn", static_cast<uint64_t>(insn.op));
    if (!valid_size(insn.access_size) || !valid_size(insn.operand_size)) return bad;
    if (insn.has_reg && (insn.reg >= 16 || (insn.reg_high_byte && insn.reg >= 4))) return bad;
    if (insn.has_reg == insn.has_imm) return bad;  // exactly one non-memory operand
    const bool extend = insn.op == MmioOp::load_zero_extend || insn.op == MmioOp::load_sign_extend;
    // MOVZX/MOVSX with a 16-bit destination and source (0F B7/BF at operand size
    // 16) are plain moves, so an extension may also be of equal size.
    if (extend ? insn.access_size > insn.operand_size : insn.access_size != insn.operand_size) return bad;
    if (insn.reg_high_byte && insn.operand_size != 1) return bad;
    const bool needs_reg = insn.op == MmioOp::load || extend || insn.op == MmioOp::xchg || insn.reg_destination;
    if (needs_reg && !insn.has_reg) return bad;
    return ok_result();
}

}  // namespace

uint64_t read_gpr(const uint64_t gpr[16], uint8_t reg, bool high_byte, uint8_t size) {
    if (high_byte) return (gpr[reg] >> 8) & 0xFF;
    return gpr[reg] & size_mask(size);
}

void write_gpr(uint64_t gpr[16], uint8_t reg, bool high_byte, uint8_t size, uint64_t value) {
    uint64_t& r = gpr[reg];
    if (high_byte) {
        r = (r & ~0xFF00ull) | ((value & 0xFF) << 8);
    } else if (size == 4) {
        r = value & 0xFFFFFFFFull;  // zero-extends, in every mode
    } else {
        const uint64_t mask = size_mask(size);
        r = (r & ~mask) | (value & mask);
    }
}

Result<void> emulate_mmio(const MmioInsn& insn, uint64_t gpr[16], uint64_t& rflags, MmioDevice& device) {
    TRY(check(insn));
    const uint8_t size = insn.access_size;
    const uint64_t mask = size_mask(size);
    const uint64_t source = insn.has_imm ? insn.imm : read_gpr(gpr, insn.reg, insn.reg_high_byte, insn.operand_size);

    switch (insn.op) {
        case MmioOp::load:
            write_gpr(gpr, insn.reg, insn.reg_high_byte, size, device.read(size) & mask);
            return ok_result();
        case MmioOp::load_zero_extend:
            write_gpr(gpr, insn.reg, false, insn.operand_size, device.read(size) & mask);
            return ok_result();
        case MmioOp::load_sign_extend:
            write_gpr(gpr, insn.reg, false, insn.operand_size, sign_extend(device.read(size), size));
            return ok_result();
        case MmioOp::store: device.write(size, source & mask); return ok_result();
        case MmioOp::xchg: {
            const uint64_t old = device.read(size) & mask;
            device.write(size, source & mask);
            write_gpr(gpr, insn.reg, insn.reg_high_byte, size, old);
            return ok_result();
        }
        case MmioOp::rmw_and:
        case MmioOp::rmw_or:
        case MmioOp::rmw_xor:
        case MmioOp::rmw_add:
        case MmioOp::rmw_sub:
        case MmioOp::cmp:
        case MmioOp::test: {
            const uint64_t memory = device.read(size) & mask;
            // reg, r/m forms compute reg OP memory; the others memory OP source.
            const AluResult res =
                insn.reg_destination ? alu(insn.op, source, memory, size) : alu(insn.op, memory, source, size);
            rflags = (rflags & ~kArithFlags) | res.flags;
            if (insn.op == MmioOp::cmp || insn.op == MmioOp::test) return ok_result();
            if (insn.reg_destination) {
                write_gpr(gpr, insn.reg, insn.reg_high_byte, size, res.value);
            } else {
                device.write(size, res.value);
            }
            return ok_result();
        }
    }
    return make_error(Errc::invalid_argument, "unknown MmioOp", static_cast<uint64_t>(insn.op));
}

}  // namespace hv::x86
