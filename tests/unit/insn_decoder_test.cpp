// The MMIO instruction decoder against a table of encodings: the expected fields
// are written from the SDM in tests/data/insn/cases.txt, the bytes and lengths
// come from the GNU assembler (tests/data/insn/gen.py writes insn_cases.inc).
#include <gtest/gtest.h>
#include <string.h>

#include <string>
#include <vector>

#include "kernel/x86/insn_decoder.hpp"

using hv::Errc;
using hv::x86::CpuMode;
using hv::x86::MmioInsn;
using hv::x86::MmioOp;
using hv::x86::Segment;

namespace {

struct InsnCase {
    CpuMode mode;
    const char* text;
    uint8_t bytes[16];
    uint8_t length;
    MmioOp op;
    uint8_t access_size;
    uint8_t operand_size;
    uint8_t reg;  // hv::x86::kNoReg for an immediate source
    bool high_byte;
    bool has_imm;
    uint64_t imm;
    bool reg_destination;
    bool lock;
    Segment segment;
    bool segment_override;
    bool has_ea;
    uint64_t ea;
};

struct RejectCase {
    CpuMode mode;
    const char* text;
    uint8_t bytes[24];
    uint8_t length;
    Errc code;
    uint64_t value;
    const char* detail;
};

#include "tests/data/insn/insn_cases.inc"

const char* mode_name(CpuMode m) {
    switch (m) {
        case CpuMode::real16: return "real16";
        case CpuMode::protected16: return "protected16";
        case CpuMode::protected32: return "protected32";
        case CpuMode::long64: return "long64";
    }
    return "?";
}

std::string where(CpuMode mode, const char* text) {
    return std::string(mode_name(mode)) + " | " + text;
}

// The register file cases.txt's ea= expressions are written against.
void ea_registers(uint64_t gpr[16]) {
    for (uint64_t i = 0; i < 16; ++i) gpr[i] = 0xA5A5A5A500000000ull | ((i + 1) << 16) | ((i + 1) << 4);
}
constexpr uint64_t kCaseRip = 0x1000;

// Exactly `n` bytes on the heap, so ASan reports any read past them.
std::vector<uint8_t> exact(const uint8_t* bytes, size_t n) {
    return std::vector<uint8_t>(bytes, bytes + n);
}

void expect_fields(const InsnCase& c, const MmioInsn& d) {
    EXPECT_EQ(d.length, c.length);
    EXPECT_EQ(d.op, c.op) << hv::x86::mmio_op_name(d.op) << " vs " << hv::x86::mmio_op_name(c.op);
    EXPECT_EQ(d.access_size, c.access_size);
    EXPECT_EQ(d.operand_size, c.operand_size);
    EXPECT_EQ(d.has_reg, c.reg != hv::x86::kNoReg);
    if (c.reg != hv::x86::kNoReg) {
        EXPECT_EQ(d.reg, c.reg);
    }
    EXPECT_EQ(d.reg_high_byte, c.high_byte);
    EXPECT_EQ(d.has_imm, c.has_imm);
    EXPECT_EQ(d.imm, c.imm);
    EXPECT_EQ(d.reg_destination, c.reg_destination);
    EXPECT_EQ(d.lock, c.lock);
    EXPECT_EQ(d.segment, c.segment);
    EXPECT_EQ(d.segment_override, c.segment_override);
    if (c.has_ea) {
        uint64_t gpr[16];
        ea_registers(gpr);
        EXPECT_EQ(hv::x86::effective_address(d, gpr, kCaseRip), c.ea)
            << std::hex << hv::x86::effective_address(d, gpr, kCaseRip) << " vs " << c.ea;
    }
}

}  // namespace

TEST(InsnDecoder, TableOfAssembledInstructions) {
    ASSERT_GT(std::size(kInsnCases), 150u);
    for (const InsnCase& c : kInsnCases) {
        SCOPED_TRACE(where(c.mode, c.text));
        auto buf = exact(c.bytes, c.length);
        auto r = hv::x86::decode_mmio(buf.data(), buf.size(), c.mode);
        ASSERT_TRUE(r.ok()) << r.error().detail << " value=0x" << std::hex << r.error().value;
        expect_fields(c, *r);
    }
}

// With the rest of a 15-byte window holding other instructions, the length must
// still be the assembler's: the decoder may not consume bytes it does not need.
TEST(InsnDecoder, LengthIsTheSameWithMoreBytesAvailable) {
    for (const InsnCase& c : kInsnCases) {
        SCOPED_TRACE(where(c.mode, c.text));
        for (uint8_t fill : {0x00, 0x66, 0x90, 0xFF}) {
            uint8_t window[15];
            memset(window, fill, sizeof window);
            memcpy(window, c.bytes, c.length);
            auto r = hv::x86::decode_mmio(window, sizeof window, c.mode);
            ASSERT_TRUE(r.ok()) << r.error().detail;
            expect_fields(c, *r);
        }
        // avail larger than 15 is capped, not an error.
        uint8_t big[64] = {};
        memcpy(big, c.bytes, c.length);
        auto r = hv::x86::decode_mmio(big, sizeof big, c.mode);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->length, c.length);
    }
}

// Near the end of a page the hypervisor may have fewer bytes than the
// instruction: every shorter prefix of every instruction is "truncated".
TEST(InsnDecoder, EveryTruncationIsReported) {
    for (const InsnCase& c : kInsnCases) {
        SCOPED_TRACE(where(c.mode, c.text));
        for (size_t n = 0; n < c.length; ++n) {
            auto buf = exact(c.bytes, n);
            auto r = hv::x86::decode_mmio(buf.data(), n, c.mode);
            ASSERT_FALSE(r.ok()) << "decoded from " << n << " of " << int(c.length) << " bytes";
            EXPECT_EQ(r.error().code, Errc::truncated) << r.error().detail << " at " << n;
            EXPECT_STREQ(r.error().detail, "truncated");
            EXPECT_EQ(r.error().value, n);
        }
    }
}

TEST(InsnDecoder, RejectedInstructionsNameTheReason) {
    ASSERT_GT(std::size(kRejectCases), 30u);
    for (const RejectCase& c : kRejectCases) {
        SCOPED_TRACE(where(c.mode, c.text));
        auto buf = exact(c.bytes, c.length);
        auto r = hv::x86::decode_mmio(buf.data(), buf.size(), c.mode);
        ASSERT_FALSE(r.ok()) << "decoded, length " << int(r->length);
        EXPECT_EQ(r.error().code, c.code);
        EXPECT_EQ(r.error().value, c.value) << std::hex << r.error().value;
        EXPECT_STREQ(r.error().detail, c.detail);
    }
}

// The same bytes mean different sizes in different modes (SDM Vol. 1 §3.6,
// Table 3-4): 89 07 is a 16-bit store in 16-bit code and a 32-bit one elsewhere,
// and 66 flips it.
TEST(InsnDecoder, OperandAndAddressSizeFollowTheMode) {
    struct Row {
        uint8_t bytes[4];
        uint8_t len;
        CpuMode mode;
        uint8_t operand_size;
        uint8_t address_size;
        uint8_t length;
    };
    const Row rows[] = {
        {{0x89, 0x07}, 2, CpuMode::real16, 2, 2, 2},        // mov %ax,(%bx)
        {{0x89, 0x07}, 2, CpuMode::protected16, 2, 2, 2},   // mov %ax,(%bx)
        {{0x89, 0x07}, 2, CpuMode::protected32, 4, 4, 2},   // mov %eax,(%edi)
        {{0x89, 0x07}, 2, CpuMode::long64, 4, 8, 2},        // mov %eax,(%rdi)
        {{0x66, 0x89, 0x07}, 3, CpuMode::real16, 4, 2, 3},  // mov %eax,(%bx)
        {{0x66, 0x89, 0x07}, 3, CpuMode::protected32, 2, 4, 3},
        {{0x66, 0x89, 0x07}, 3, CpuMode::long64, 2, 8, 3},
        {{0x67, 0x89, 0x07}, 3, CpuMode::real16, 2, 4, 3},       // mov %ax,(%edi)
        {{0x67, 0x89, 0x07}, 3, CpuMode::protected32, 4, 2, 3},  // mov %eax,(%bx)
        {{0x67, 0x89, 0x07}, 3, CpuMode::long64, 4, 4, 3},       // mov %eax,(%edi)
        {{0x48, 0x89, 0x07}, 3, CpuMode::long64, 8, 8, 3},
        // mod=00 r/m=101: RIP+disp32 in 64-bit mode, disp32 elsewhere, and in
        // 16-bit addressing mod=00 r/m=101 is [DI] with no displacement.
        {{0x8B, 0x05, 0, 0}, 4, CpuMode::real16, 2, 2, 2},
    };
    for (const Row& row : rows) {
        auto r = hv::x86::decode_mmio(row.bytes, row.len, row.mode);
        ASSERT_TRUE(r.ok()) << mode_name(row.mode);
        EXPECT_EQ(r->operand_size, row.operand_size) << mode_name(row.mode);
        EXPECT_EQ(r->mem.address_size, row.address_size) << mode_name(row.mode);
        EXPECT_EQ(r->length, row.length) << mode_name(row.mode);
    }
    const uint8_t disp32[] = {0x8B, 0x05, 0x10, 0x00, 0x00, 0x00};
    auto r64 = hv::x86::decode_mmio(disp32, sizeof disp32, CpuMode::long64);
    auto r32 = hv::x86::decode_mmio(disp32, sizeof disp32, CpuMode::protected32);
    ASSERT_TRUE(r64.ok() && r32.ok());
    EXPECT_TRUE(r64->mem.rip_relative);
    EXPECT_FALSE(r32->mem.rip_relative);
    uint64_t gpr[16] = {};
    EXPECT_EQ(hv::x86::effective_address(*r64, gpr, 0x2000), 0x2000u + 6 + 0x10);
    EXPECT_EQ(hv::x86::effective_address(*r32, gpr, 0x2000), 0x10u);
}

// The memory-operand description itself, for callers that look at it.
TEST(InsnDecoder, MemoryOperandParts) {
    // mov %eax,0x12345678(%r10,%r13,8): REX.X and REX.B extend index and base.
    const uint8_t b[] = {0x43, 0x89, 0x84, 0xEA, 0x78, 0x56, 0x34, 0x12};
    auto r = hv::x86::decode_mmio(b, sizeof b, CpuMode::long64);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->mem.base, 10);
    EXPECT_EQ(r->mem.index, 13);
    EXPECT_EQ(r->mem.scale, 8);
    EXPECT_EQ(r->mem.disp, 0x12345678);
    EXPECT_EQ(r->length, sizeof b);
    // 16-bit [BP+DI-0x80]: disp8 sign-extended.
    const uint8_t b16[] = {0x8B, 0x43, 0x80};
    auto r16 = hv::x86::decode_mmio(b16, sizeof b16, CpuMode::real16);
    ASSERT_TRUE(r16.ok());
    EXPECT_EQ(r16->mem.base, 5);
    EXPECT_EQ(r16->mem.index, 7);
    EXPECT_EQ(r16->mem.disp, -0x80);
    EXPECT_EQ(r16->segment, Segment::SS);
}

TEST(InsnDecoder, BadArguments) {
    auto r = hv::x86::decode_mmio(nullptr, 4, CpuMode::long64);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    const uint8_t b[] = {0x8B, 0x07};
    auto m = hv::x86::decode_mmio(b, sizeof b, static_cast<CpuMode>(7));
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, Errc::invalid_argument);
    auto empty = hv::x86::decode_mmio(nullptr, 0, CpuMode::long64);
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.error().code, Errc::truncated);
}

TEST(InsnDecoder, CpuModeFromGuestState) {
    using hv::x86::cpu_mode;
    EXPECT_EQ(cpu_mode(false, false, false, false, false), CpuMode::real16);
    EXPECT_EQ(cpu_mode(true, false, false, false, true), CpuMode::real16);  // virtual-8086
    EXPECT_EQ(cpu_mode(true, false, false, false, false), CpuMode::protected16);
    EXPECT_EQ(cpu_mode(true, false, false, true, false), CpuMode::protected32);
    EXPECT_EQ(cpu_mode(true, true, true, false, false), CpuMode::long64);
    EXPECT_EQ(cpu_mode(true, true, false, true, false), CpuMode::protected32);  // compatibility mode
    EXPECT_EQ(cpu_mode(true, true, false, false, false), CpuMode::protected16);
}

TEST(InsnDecoder, NextRipWrapsAtTheCodeSize) {
    MmioInsn insn;
    insn.length = 3;
    EXPECT_EQ(hv::x86::next_rip(0xFFFE, insn, CpuMode::real16), 0x1u);
    EXPECT_EQ(hv::x86::next_rip(0xFFFE, insn, CpuMode::protected32), 0x10001u);
    EXPECT_EQ(hv::x86::next_rip(0xFFFFFFFE, insn, CpuMode::protected32), 0x1u);
    EXPECT_EQ(hv::x86::next_rip(0xFFFFFFFE, insn, CpuMode::long64), 0x100000001u);
}
