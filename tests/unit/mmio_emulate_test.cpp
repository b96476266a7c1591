// MMIO emulation: register write rules (SDM Vol. 1 §3.4.1.1) on decoded
// instructions, and the arithmetic flags of every read-modify-write and compare
// form checked against the host CPU running the same instruction.
#include <gtest/gtest.h>

#include <string.h>

#include <initializer_list>
#include <vector>

#include "kernel/x86/insn_decoder.hpp"
#include "kernel/x86/mmio_emulate.hpp"

using hv::x86::CpuMode;
using hv::x86::MmioInsn;
using hv::x86::MmioOp;

namespace {

// A device register holding `value`. Reads return garbage above the access size
// (the emulator must only use the low bytes), and every access is recorded.
class FakeDevice final : public hv::x86::MmioDevice {
  public:
    explicit FakeDevice(uint64_t v) : value(v) {}
    uint64_t read(uint8_t size) override {
        ++reads;
        read_size = size;
        const uint64_t mask = hv::x86::size_mask(size);
        return (value & mask) | (0xDEADBEEFCAFEF00Dull & ~mask);
    }
    void write(uint8_t size, uint64_t v) override {
        ++writes;
        write_size = size;
        written = v;
        const uint64_t mask = hv::x86::size_mask(size);
        value = (value & ~mask) | (v & mask);
    }
    uint64_t value;
    int reads = 0, writes = 0;
    uint8_t read_size = 0, write_size = 0;
    uint64_t written = 0;
};

MmioInsn decode(std::initializer_list<uint8_t> bytes, CpuMode mode = CpuMode::long64) {
    std::vector<uint8_t> b(bytes);
    auto r = hv::x86::decode_mmio(b.data(), b.size(), mode);
    EXPECT_TRUE(r.ok()) << r.error().detail;
    return r.ok() ? *r : MmioInsn{};
}

constexpr uint64_t kRflagsPattern = 0x202 | hv::x86::kFlagCF | hv::x86::kFlagZF | (1ull << 10);  // IF, CF, ZF, DF

struct Machine {
    uint64_t gpr[16];
    uint64_t rflags = kRflagsPattern;
    Machine() {
        for (uint64_t i = 0; i < 16; ++i) gpr[i] = 0x1122334455667788ull + i * 0x0101010101010101ull;
    }
};

}  // namespace

// Loads: 8/16-bit destinations merge, 32-bit zero-extend, high-byte registers are
// bits 15:8; flags untouched.
TEST(MmioEmulate, LoadRegisterWriteRules) {
    struct Row {
        std::initializer_list<uint8_t> bytes;
        const char* text;
        uint64_t device;
        uint8_t reg;
        uint64_t expect;
    };
    const uint64_t rax = 0x1122334455667788ull;
    const Row rows[] = {
        {{0x8A, 0x07}, "mov (%rdi),%al", 0xAB, 0, 0x11223344556677ABull},
        {{0x8A, 0x27}, "mov (%rdi),%ah", 0xAB, 0, 0x112233445566AB88ull},
        {{0x8A, 0x3F}, "mov (%rdi),%bh", 0xAB, 3, ((rax + 3 * 0x0101010101010101ull) & ~0xFF00ull) | 0xAB00},
        {{0x40, 0x8A, 0x27}, "mov (%rdi),%spl", 0xAB, 4, ((rax + 4 * 0x0101010101010101ull) & ~0xFFull) | 0xAB},
        {{0x66, 0x8B, 0x07}, "mov (%rdi),%ax", 0xABCD, 0, 0x112233445566ABCDull},
        {{0x8B, 0x07}, "mov (%rdi),%eax", 0xABCDEF01, 0, 0xABCDEF01ull},
        {{0x44, 0x8B, 0x2F}, "mov (%rdi),%r13d", 0x80000000, 13, 0x80000000ull},
        {{0x48, 0x8B, 0x07}, "mov (%rdi),%rax", 0xFEDCBA9876543210ull, 0, 0xFEDCBA9876543210ull},
        {{0x0F, 0xB6, 0x07}, "movzbl (%rdi),%eax", 0xFF, 0, 0xFFull},
        {{0x66, 0x0F, 0xB6, 0x07}, "movzbw (%rdi),%ax", 0xFF, 0, 0x11223344556600FFull},
        {{0x48, 0x0F, 0xB7, 0x07}, "movzwq (%rdi),%rax", 0xFFFF, 0, 0xFFFFull},
        {{0x0F, 0xBE, 0x07}, "movsbl (%rdi),%eax", 0x80, 0, 0xFFFFFF80ull},
        {{0x0F, 0xBE, 0x07}, "movsbl (%rdi),%eax", 0x7F, 0, 0x7Full},
        {{0x48, 0x0F, 0xBE, 0x07}, "movsbq (%rdi),%rax", 0x80, 0, 0xFFFFFFFFFFFFFF80ull},
        {{0x66, 0x0F, 0xBE, 0x07}, "movsbw (%rdi),%ax", 0x80, 0, 0x112233445566FF80ull},
        {{0x0F, 0xBF, 0x07}, "movswl (%rdi),%eax", 0x8000, 0, 0xFFFF8000ull},
        {{0x48, 0x0F, 0xBF, 0x07}, "movswq (%rdi),%rax", 0x8000, 0, 0xFFFFFFFFFFFF8000ull},
        {{0x66, 0x0F, 0xBF, 0x07}, "movsww (%rdi),%ax: a 16-bit move", 0x8000, 0, 0x1122334455668000ull},
        {{0xA1, 0x00, 0x00, 0xE0, 0xFE, 0, 0, 0, 0}, "movabs 0xfee00000,%eax", 0x12345678, 0, 0x12345678ull},
    };
    for (const Row& row : rows) {
        SCOPED_TRACE(row.text);
        Machine m;
        const Machine before;
        FakeDevice dev(row.device);
        const MmioInsn insn = decode(row.bytes);
        ASSERT_TRUE(hv::x86::emulate_mmio(insn, m.gpr, m.rflags, dev).ok());
        EXPECT_EQ(m.gpr[row.reg], row.expect) << std::hex << m.gpr[row.reg];
        for (int i = 0; i < 16; ++i) {
            if (i != row.reg) {
                EXPECT_EQ(m.gpr[i], before.gpr[i]) << "register " << i;
            }
        }
        EXPECT_EQ(m.rflags, kRflagsPattern);
        EXPECT_EQ(dev.reads, 1);
        EXPECT_EQ(dev.writes, 0);
        EXPECT_EQ(dev.read_size, insn.access_size);
    }
}

// Stores write exactly the register's (or immediate's) low bytes; registers and
// flags stay as they were.
TEST(MmioEmulate, StoresTakeTheRegisterOrImmediate) {
    struct Row {
        std::initializer_list<uint8_t> bytes;
        const char* text;
        uint8_t size;
        uint64_t expect;
    };
    const Row rows[] = {
        {{0x88, 0x07}, "mov %al,(%rdi)", 1, 0x88},
        {{0x88, 0x27}, "mov %ah,(%rdi)", 1, 0x77},
        {{0x88, 0x3F}, "mov %bh,(%rdi)", 1, 0x7A},
        {{0x40, 0x88, 0x3F}, "mov %dil,(%rdi)", 1, 0x8F},
        {{0x66, 0x89, 0x07}, "mov %ax,(%rdi)", 2, 0x7788},
        {{0x89, 0x07}, "mov %eax,(%rdi)", 4, 0x55667788},
        {{0x48, 0x89, 0x07}, "mov %rax,(%rdi)", 8, 0x1122334455667788},
        {{0x4C, 0x89, 0x3F}, "mov %r15,(%rdi)", 8, 0x1122334455667788ull + 15 * 0x0101010101010101ull},
        {{0xC6, 0x07, 0x80}, "movb $0x80,(%rdi)", 1, 0x80},
        {{0x66, 0xC7, 0x07, 0x34, 0x12}, "movw $0x1234,(%rdi)", 2, 0x1234},
        {{0xC7, 0x07, 0xFF, 0xFF, 0xFF, 0xFF}, "movl $-1,(%rdi)", 4, 0xFFFFFFFF},
        {{0x48, 0xC7, 0x07, 0xFF, 0xFF, 0xFF, 0xFF}, "movq $-1,(%rdi)", 8, 0xFFFFFFFFFFFFFFFF},
        {{0x48, 0xC7, 0x07, 0x00, 0x00, 0x00, 0x80}, "movq $-0x80000000,(%rdi)", 8, 0xFFFFFFFF80000000},
        {{0xA3, 0, 0, 0, 0, 0, 0, 0, 0}, "movabs %eax,0x0", 4, 0x55667788},
    };
    for (const Row& row : rows) {
        SCOPED_TRACE(row.text);
        Machine m;
        const Machine before;
        FakeDevice dev(0);
        ASSERT_TRUE(hv::x86::emulate_mmio(decode(row.bytes), m.gpr, m.rflags, dev).ok());
        EXPECT_EQ(dev.reads, 0);
        EXPECT_EQ(dev.writes, 1);
        EXPECT_EQ(dev.write_size, row.size);
        EXPECT_EQ(dev.written, row.expect) << std::hex << dev.written;
        EXPECT_EQ(0, memcmp(m.gpr, before.gpr, sizeof m.gpr));
        EXPECT_EQ(m.rflags, kRflagsPattern);
    }
}

TEST(MmioEmulate, XchgSwapsWithTheSameRules) {
    {
        Machine m;
        FakeDevice dev(0xABCD1234);
        ASSERT_TRUE(hv::x86::emulate_mmio(decode({0x87, 0x07}), m.gpr, m.rflags, dev).ok());  // xchg %eax,(%rdi)
        EXPECT_EQ(dev.written, 0x55667788u);
        EXPECT_EQ(m.gpr[0], 0xABCD1234u);  // 32-bit: zero-extended
        EXPECT_EQ(dev.reads, 1);
        EXPECT_EQ(dev.writes, 1);
    }
    {
        Machine m;
        FakeDevice dev(0xEE);
        ASSERT_TRUE(hv::x86::emulate_mmio(decode({0x86, 0x2F}), m.gpr, m.rflags, dev).ok());  // xchg %ch,(%rdi)
        const uint64_t rcx = 0x1122334455667788ull + 0x0101010101010101ull;
        EXPECT_EQ(dev.written, (rcx >> 8) & 0xFF);
        EXPECT_EQ(m.gpr[1], (rcx & ~0xFF00ull) | 0xEE00);
        EXPECT_EQ(m.rflags, kRflagsPattern);
    }
}

TEST(MmioEmulate, InconsistentInsnIsRefusedWithoutSideEffects) {
    MmioInsn bad = decode({0x89, 0x07});
    bad.access_size = 3;
    Machine m;
    const Machine before;
    FakeDevice dev(1);
    auto r = hv::x86::emulate_mmio(bad, m.gpr, m.rflags, dev);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, hv::Errc::invalid_argument);
    MmioInsn high = decode({0x89, 0x07});
    high.reg_high_byte = true;  // AH-style register with a 4-byte operand
    EXPECT_FALSE(hv::x86::emulate_mmio(high, m.gpr, m.rflags, dev).ok());
    MmioInsn noreg = decode({0x8B, 0x07});
    noreg.has_reg = false;
    noreg.has_imm = true;
    EXPECT_FALSE(hv::x86::emulate_mmio(noreg, m.gpr, m.rflags, dev).ok());
    EXPECT_EQ(dev.reads + dev.writes, 0);
    EXPECT_EQ(0, memcmp(m.gpr, before.gpr, sizeof m.gpr));
    EXPECT_EQ(m.rflags, kRflagsPattern);
}

// ---- flags against the host CPU ------------------------------------------------

namespace {

enum class Alu { add, sub, and_, or_, xor_, cmp, test };

// Runs `a OP= b` natively at `size` bytes with RFLAGS = flags_in, returns the new
// RFLAGS and the result in `a`. The stack pointer is moved below the red zone
// around the PUSHF/POPF so the compiler's locals there survive.
#define HV_NATIVE(mnemonic, mod)                   \
    asm volatile(                                  \
        "add $-128, %%rsp\n\t"                     \
        "push %[fin]\n\t"                          \
        "popfq\n\t" mnemonic " %" mod "[b], %" mod \
        "[a]\n\t"                                  \
        "pushfq\n\t"                               \
        "pop %[fout]\n\t"                          \
        "sub $-128, %%rsp"                         \
        : [a] "+r"(a), [fout] "=&r"(fout)          \
        : [b] "r"(b), [fin] "r"(flags_in)          \
        : "cc", "memory")

#define HV_NATIVE_SIZES(m)                     \
    switch (size) {                            \
        case 1: HV_NATIVE(m "b", "b"); break;  \
        case 2: HV_NATIVE(m "w", "w"); break;  \
        case 4: HV_NATIVE(m "l", "k"); break;  \
        default: HV_NATIVE(m "q", "q"); break; \
    }

uint64_t native(Alu op, unsigned size, uint64_t& a, uint64_t b, uint64_t flags_in) {
    uint64_t fout = 0;
    switch (op) {
        case Alu::add: HV_NATIVE_SIZES("add"); break;
        case Alu::sub: HV_NATIVE_SIZES("sub"); break;
        case Alu::and_: HV_NATIVE_SIZES("and"); break;
        case Alu::or_: HV_NATIVE_SIZES("or"); break;
        case Alu::xor_: HV_NATIVE_SIZES("xor"); break;
        case Alu::cmp: HV_NATIVE_SIZES("cmp"); break;
        case Alu::test: HV_NATIVE_SIZES("test"); break;
    }
    a &= hv::x86::size_mask(size);
    return fout;
}

// Opcode of "OP r/m, reg" (d = 0) for the full-size form; +2 gives "OP reg, r/m".
uint8_t alu_opcode(Alu op) {
    switch (op) {
        case Alu::add: return 0x01;
        case Alu::or_: return 0x09;
        case Alu::and_: return 0x21;
        case Alu::sub: return 0x29;
        case Alu::xor_: return 0x31;
        case Alu::cmp: return 0x39;
        case Alu::test: return 0x85;
    }
    return 0;
}

// `op` at `size` with ModR/M 0x07 (memory (%rdi), register %al/%ax/%eax/%rax).
std::vector<uint8_t> encode(Alu op, unsigned size, bool reg_destination) {
    std::vector<uint8_t> b;
    if (size == 2) b.push_back(0x66);
    if (size == 8) b.push_back(0x48);
    uint8_t opcode = alu_opcode(op);
    if (size == 1) opcode -= 1;
    if (reg_destination) opcode += 2;
    b.push_back(opcode);
    b.push_back(0x07);
    return b;
}

const uint64_t kValues[] = {0,
                            1,
                            2,
                            0x0F,
                            0x10,
                            0x7F,
                            0x80,
                            0x81,
                            0xFF,
                            0x100,
                            0x7FFF,
                            0x8000,
                            0xFFFF,
                            0x7FFFFFFF,
                            0x80000000,
                            0xFFFFFFFF,
                            0x100000000,
                            0x7FFFFFFFFFFFFFFF,
                            0x8000000000000000,
                            0xFFFFFFFFFFFFFFFF,
                            0x123456789ABCDEF0,
                            0xF0E1D2C3B4A59687};

}  // namespace

TEST(MmioEmulate, ArithmeticFlagsMatchTheHostCpu) {
    const Alu ops[] = {Alu::add, Alu::sub, Alu::and_, Alu::or_, Alu::xor_, Alu::cmp, Alu::test};
    const uint64_t flag_inputs[] = {0x202, 0x202 | hv::x86::kArithFlags};
    int checked = 0;
    for (Alu op : ops) {
        for (unsigned size : {1u, 2u, 4u, 8u}) {
            for (bool reg_destination : {false, true}) {
                if (op == Alu::test && reg_destination) continue;  // 84/85 only, symmetric
                const std::vector<uint8_t> bytes = encode(op, size, reg_destination);
                auto d = hv::x86::decode_mmio(bytes.data(), bytes.size(), CpuMode::long64);
                ASSERT_TRUE(d.ok()) << d.error().detail;
                for (uint64_t memory : kValues) {
                    for (uint64_t reg : kValues) {
                        for (uint64_t fin : flag_inputs) {
                            SCOPED_TRACE(testing::Message() << std::hex << "op " << int(op) << " size " << size
                                                            << " regdst " << reg_destination << " memory 0x" << memory
                                                            << " reg 0x" << reg << " flags 0x" << fin);
                            // The native instruction computes dst OP src.
                            uint64_t a = reg_destination ? reg : memory;
                            const uint64_t b = reg_destination ? memory : reg;
                            const uint64_t native_flags = native(op, size, a, b, fin);

                            uint64_t gpr[16] = {};
                            gpr[0] = reg;
                            uint64_t rflags = fin;
                            FakeDevice dev(memory);
                            ASSERT_TRUE(hv::x86::emulate_mmio(*d, gpr, rflags, dev).ok());
                            // All six flags, AF of the logical ops included: the SDM
                            // leaves it undefined, Intel and AMD hardware clear it.
                            EXPECT_EQ(rflags & hv::x86::kArithFlags, native_flags & hv::x86::kArithFlags);
                            EXPECT_EQ(rflags & ~hv::x86::kArithFlags, fin & ~hv::x86::kArithFlags);
                            const bool writes = op != Alu::cmp && op != Alu::test;
                            const uint64_t mask = hv::x86::size_mask(size);
                            if (!writes) {
                                EXPECT_EQ(dev.writes, 0);
                                EXPECT_EQ(gpr[0], reg);
                            } else if (reg_destination) {
                                EXPECT_EQ(dev.writes, 0);
                                // Register write rule: 32-bit zero-extends, 8/16 merge.
                                const uint64_t expect = size == 4 ? a : (reg & ~mask) | a;
                                EXPECT_EQ(gpr[0], expect);
                            } else {
                                EXPECT_EQ(dev.writes, 1);
                                EXPECT_EQ(dev.written, a);
                                EXPECT_EQ(gpr[0], reg);
                            }
                            EXPECT_EQ(dev.reads, 1);
                            ++checked;
                        }
                    }
                }
            }
        }
    }
    EXPECT_GT(checked, 20000);
}

// Immediate forms go through the same arithmetic with the decoder's already
// sign-extended immediate: 83 /0 ib on 64 bits, 80 /5 ib, 81 /7 iz, F7 /0 iz.
TEST(MmioEmulate, ImmediateFormsMatchTheHostCpu) {
    struct Row {
        std::initializer_list<uint8_t> bytes;
        Alu op;
        unsigned size;
        uint64_t imm;  // as the instruction means it, at operand size
    };
    const Row rows[] = {
        {{0x48, 0x83, 0x07, 0xFF}, Alu::add, 8, 0xFFFFFFFFFFFFFFFF},  // addq $-1,(%rdi)
        {{0x80, 0x2F, 0x80}, Alu::sub, 1, 0x80},                      // subb $0x80,(%rdi)
        {{0x81, 0x3F, 0x00, 0x00, 0x00, 0x80}, Alu::cmp, 4, 0x80000000},
        {{0x48, 0x81, 0x3F, 0x00, 0x00, 0x00, 0x80}, Alu::cmp, 8, 0xFFFFFFFF80000000},
        {{0xF7, 0x07, 0x01, 0x00, 0x00, 0x80}, Alu::test, 4, 0x80000001},
        {{0x66, 0x83, 0x27, 0xFE}, Alu::and_, 2, 0xFFFE},
        {{0x83, 0x0F, 0x04}, Alu::or_, 4, 0x4},
        {{0x66, 0x81, 0x37, 0x00, 0x80}, Alu::xor_, 2, 0x8000},
    };
    for (const Row& row : rows) {
        const MmioInsn insn = decode(row.bytes);
        ASSERT_EQ(insn.imm, row.imm);
        for (uint64_t memory : kValues) {
            SCOPED_TRACE(testing::Message() << std::hex << "op " << int(row.op) << " memory 0x" << memory);
            uint64_t a = memory;
            const uint64_t native_flags = native(row.op, row.size, a, row.imm, 0x202);
            Machine m;
            m.rflags = 0x202;
            FakeDevice dev(memory);
            ASSERT_TRUE(hv::x86::emulate_mmio(insn, m.gpr, m.rflags, dev).ok());
            EXPECT_EQ(m.rflags & hv::x86::kArithFlags, native_flags & hv::x86::kArithFlags);
            if (row.op != Alu::cmp && row.op != Alu::test) {
                EXPECT_EQ(dev.written, a);
            } else {
                EXPECT_EQ(dev.writes, 0);
            }
        }
    }
}

// High-byte register as the destination of an ALU op: and (%rdi),%ah.
TEST(MmioEmulate, HighByteDestinationOfAluOp) {
    Machine m;
    const uint64_t rax = m.gpr[0];
    FakeDevice dev(0x0F);
    ASSERT_TRUE(hv::x86::emulate_mmio(decode({0x22, 0x27}), m.gpr, m.rflags, dev).ok());
    EXPECT_EQ(m.gpr[0], (rax & ~0xFF00ull) | (((rax >> 8) & 0x0F) << 8));
    EXPECT_EQ(dev.writes, 0);
}
