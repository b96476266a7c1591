// libFuzzer target for the MMIO instruction decoder (kernel/x86/insn_decoder) and
// the emulation of what it decodes (kernel/x86/mmio_emulate), with ASan and UBSan.
//
// Input: byte 0 selects the CPU mode (low 2 bits), the rest are the instruction
// bytes, exactly as many as the guest page had left (libFuzzer's buffer ends
// there, so a read past `avail` is an ASan report). Besides memory errors it
// traps on broken invariants of a successful decode: length within 15 and
// within avail, consistent sizes and operands, the same result from exactly
// `length` bytes and "truncated" from one byte less; and on the emulator
// touching anything but the one register, the arithmetic flags and one device
// read and/or write of the access size.
//
// Built and run by tests/fuzz/CMakeLists.txt (ctest fuzz.insn_decoder).

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/x86/insn_decoder.hpp"
#include "kernel/x86/mmio_emulate.hpp"

namespace {

using namespace hv::x86;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

bool valid_size(uint8_t s) {
    return s == 1 || s == 2 || s == 4 || s == 8;
}

class CountingDevice final : public MmioDevice {
  public:
    explicit CountingDevice(uint64_t v) : value_(v) {}
    uint64_t read(uint8_t size) override {
        ++reads;
        read_size = size;
        return value_;  // garbage above `size` on purpose
    }
    void write(uint8_t size, uint64_t v) override {
        ++writes;
        write_size = size;
        written = v;
    }
    int reads = 0, writes = 0;
    uint8_t read_size = 0, write_size = 0;
    uint64_t written = 0;

  private:
    uint64_t value_;
};

bool same(const MmioInsn& a, const MmioInsn& b) {
    return a.length == b.length && a.op == b.op && a.access_size == b.access_size && a.operand_size == b.operand_size &&
           a.has_reg == b.has_reg && a.reg == b.reg && a.reg_high_byte == b.reg_high_byte && a.has_imm == b.has_imm &&
           a.imm == b.imm && a.reg_destination == b.reg_destination && a.segment == b.segment &&
           a.segment_override == b.segment_override && a.lock == b.lock && a.mem.base == b.mem.base &&
           a.mem.index == b.mem.index && a.mem.scale == b.mem.scale && a.mem.rip_relative == b.mem.rip_relative &&
           a.mem.address_size == b.mem.address_size && a.mem.disp == b.mem.disp;
}

void check_fields(const MmioInsn& d, CpuMode mode, size_t avail) {
    const bool is64 = mode == CpuMode::long64;
    check(d.length >= 1 && d.length <= kMaxInsnLength && d.length <= avail);
    check(valid_size(d.access_size) && valid_size(d.operand_size));
    check(is64 || d.operand_size <= 4);
    const bool extend = d.op == MmioOp::load_zero_extend || d.op == MmioOp::load_sign_extend;
    check(extend ? d.access_size <= d.operand_size && d.access_size <= 2 : d.access_size == d.operand_size);
    check(d.has_reg != d.has_imm);
    if (d.has_reg) {
        check(d.reg < (is64 ? 16 : 8));
        if (d.reg_high_byte) check(d.reg < 4 && d.operand_size == 1);
    } else {
        check(!d.reg_high_byte && d.reg == kNoReg);
    }
    if (d.has_imm) {
        check(d.imm <= size_mask(d.operand_size));
        check(d.op != MmioOp::load && !extend && d.op != MmioOp::xchg && !d.reg_destination);
    }
    switch (d.op) {
        case MmioOp::load:
        case MmioOp::load_zero_extend:
        case MmioOp::load_sign_extend: check(d.reg_destination && !d.lock); break;
        case MmioOp::store:
        case MmioOp::test: check(!d.reg_destination && !d.lock); break;
        case MmioOp::xchg: check(!d.reg_destination && d.lock); break;
        case MmioOp::cmp: check(!d.lock); break;
        default: check(!(d.lock && d.reg_destination)); break;  // the RMW ops
    }
    const MemOperand& m = d.mem;
    check(m.address_size == 2 || m.address_size == 4 || m.address_size == 8);
    check(is64 ? m.address_size != 2 : m.address_size != 8);
    check(!m.rip_relative || (is64 && m.base == kNoReg && m.index == kNoReg));
    check(m.base == kNoReg || m.base < (is64 ? 16 : 8));
    check(m.index == kNoReg || (m.index < (is64 ? 16 : 8) && m.index != 4));
    check(m.scale == 1 || m.scale == 2 || m.scale == 4 || m.scale == 8);
    check(static_cast<uint8_t>(d.segment) <= static_cast<uint8_t>(Segment::GS));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const CpuMode mode = static_cast<CpuMode>(data[0] & 3);
    const uint8_t* bytes = data + 1;
    const size_t avail = size - 1;

    auto r = decode_mmio(bytes, avail, mode);
    if (!r.ok()) {
        const hv::Errc c = r.error().code;
        check(c == hv::Errc::truncated || c == hv::Errc::unsupported || c == hv::Errc::malformed);
        check(r.error().detail != nullptr && r.error().detail[0] != '\0');
        if (c == hv::Errc::truncated) check(avail < kMaxInsnLength);
        return 0;
    }
    const MmioInsn& d = *r;
    check_fields(d, mode, avail);

    // The decode depends on exactly `length` bytes.
    auto again = decode_mmio(bytes, d.length, mode);
    check(again.ok() && same(*again, d));
    auto shorter = decode_mmio(bytes, d.length - 1u, mode);
    check(!shorter.ok() && shorter.error().code == hv::Errc::truncated);

    // Emulate against a device, from a register file made of the input.
    uint64_t gpr[16], before[16];
    for (unsigned i = 0; i < 16; ++i) gpr[i] = (0x9E3779B97F4A7C15ull * (i + 1)) ^ (size * 0x0101010101010101ull);
    memcpy(before, gpr, sizeof gpr);
    const uint64_t rflags_in = 0x202 | (bytes[0] & 1 ? kArithFlags : 0);
    uint64_t rflags = rflags_in;
    (void)effective_address(d, gpr, 0xFFFFFFFFFFFFFFF0ull);  // UBSan: no overflow traps

    CountingDevice dev(0x0123456789ABCDEFull ^ data[0]);
    check(emulate_mmio(d, gpr, rflags, dev).ok());
    check(dev.reads <= 1 && dev.writes <= 1 && dev.reads + dev.writes >= 1);
    if (dev.reads) check(dev.read_size == d.access_size);
    if (dev.writes) check(dev.write_size == d.access_size && dev.written <= size_mask(d.access_size));
    check((rflags & ~kArithFlags) == (rflags_in & ~kArithFlags));
    const bool flags_op = d.op != MmioOp::load && d.op != MmioOp::store && d.op != MmioOp::load_zero_extend &&
                          d.op != MmioOp::load_sign_extend && d.op != MmioOp::xchg;
    if (!flags_op) check(rflags == rflags_in);
    switch (d.op) {
        case MmioOp::store: check(dev.reads == 0 && dev.writes == 1); break;
        case MmioOp::cmp:
        case MmioOp::test: check(dev.reads == 1 && dev.writes == 0); break;
        case MmioOp::xchg: check(dev.reads == 1 && dev.writes == 1); break;
        default: break;
    }
    for (unsigned i = 0; i < 16; ++i) {
        if (d.has_reg && i == d.reg) continue;
        check(gpr[i] == before[i]);
    }
    if (d.has_reg && !d.reg_destination && d.op != MmioOp::xchg) check(gpr[d.reg] == before[d.reg]);
    if (d.has_reg && d.reg_high_byte) check((gpr[d.reg] & ~0xFF00ull) == (before[d.reg] & ~0xFF00ull));
    return 0;
}
