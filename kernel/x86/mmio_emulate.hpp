#pragma once
// Executes a decoded MMIO instruction (insn_decoder.hpp) against a device: the
// memory side goes through MmioDevice, the register side updates the guest's
// GPRs and RFLAGS as the instruction would have.

#include <stdint.h>

#include "kernel/lib/result.hpp"
#include "kernel/x86/insn_decoder.hpp"

namespace hv::x86 {

// The device behind the faulting address. The caller binds it to the address and
// holds whatever lock makes a read followed by a write atomic for LOCKed forms
// and XCHG (one read, then at most one write, of `size` bytes).
class MmioDevice {
  public:
    virtual uint64_t read(uint8_t size) = 0;  // the low `size` bytes count
    virtual void write(uint8_t size, uint64_t value) = 0;

  protected:
    ~MmioDevice() = default;
};

// RFLAGS bits written by the arithmetic instructions (SDM Vol. 1 §3.4.3.1).
inline constexpr uint64_t kFlagCF = 1ull << 0;
inline constexpr uint64_t kFlagPF = 1ull << 2;
inline constexpr uint64_t kFlagAF = 1ull << 4;
inline constexpr uint64_t kFlagZF = 1ull << 6;
inline constexpr uint64_t kFlagSF = 1ull << 7;
inline constexpr uint64_t kFlagOF = 1ull << 11;
inline constexpr uint64_t kArithFlags = kFlagCF | kFlagPF | kFlagAF | kFlagZF | kFlagSF | kFlagOF;

// Applies `insn` (which must come from decode_mmio) to gpr[16] (ModR/M
// numbering, RAX = 0) and rflags. Does not advance RIP (see next_rip()). Fails,
// touching nothing, only for an MmioInsn that decode_mmio cannot produce.
Result<void> emulate_mmio(const MmioInsn& insn, uint64_t gpr[16], uint64_t& rflags, MmioDevice& device);

// Register write rules (SDM Vol. 1 §3.4.1.1): a 32-bit destination is
// zero-extended into the 64-bit register, 8- and 16-bit destinations leave the
// other bits alone, and a high-byte register (AH..BH, reg 0-3) is bits 15:8.
void write_gpr(uint64_t gpr[16], uint8_t reg, bool high_byte, uint8_t size, uint64_t value);
uint64_t read_gpr(const uint64_t gpr[16], uint8_t reg, bool high_byte, uint8_t size);

}  // namespace hv::x86
