#pragma once
// Reads this CPU's VMX capabilities (and enables VMX in IA32_FEATURE_CONTROL
// when the firmware left it unlocked), for the boot report. No VMXON yet.

#include "kernel/cpu/percpu.hpp"

namespace hv::vmx {

void probe_this_cpu(cpu::PerCpu& pc, bool dump_msrs);
void report(const cpu::PerCpu& pc);

}  // namespace hv::vmx
