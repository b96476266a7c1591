#pragma once
// Entering VMX root operation on one CPU (SDM Vol. 3C §24.7 "Enabling and
// entering VMX operation"): CR0/CR4 fixed bits, CR4.VMXE, a VMXON region.

#include "kernel/cpu/percpu.hpp"
#include "kernel/lib/result.hpp"

namespace hv::vmx {

// Idempotent: the second call on the same CPU does nothing.
Result<void> enable_on_this_cpu(cpu::PerCpu& pc);

struct FixedBits {
    uint64_t cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
};
// Read on the calling CPU (IA32_VMX_CR0_FIXED0/1, CR4_FIXED0/1).
FixedBits read_fixed_bits();

}  // namespace hv::vmx
