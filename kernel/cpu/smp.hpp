#pragma once
// Application processor start-up (SDM Vol. 3A §9.4 "Multiple-processor (MP)
// initialization"): INIT, then up to two STARTUP IPIs per CPU, one CPU at a time.

#include <stddef.h>
#include <stdint.h>

#include "kernel/acpi/acpi.hpp"

namespace hv::cpu {

struct SmpReport {
    size_t listed;   // CPUs the MADT lists as usable (BSP included)
    size_t online;   // BSP included
    size_t failed;
};

struct SmpOptions {
    uint64_t trampoline_phys;   // page below 1 MiB, identity mapped RX
    uint64_t tsc_hz;
    bool dump_vmx_msrs;
    uint32_t max_cpus;          // 0 = all
    bool inject_ap_hang;        // test hook: the last AP finds a halt loop instead of the trampoline
};

SmpReport start_aps(const acpi::Madt& madt, uint32_t bsp_apic_id, const SmpOptions& opt);

// Prepares the stacks of a CPU slot (kernel + NMI/#DF/#MC IST stacks).
bool allocate_stacks(struct PerCpu& pc);

// One `hv.cpu` line (docs/console.md).
void report_cpu(const struct PerCpu& pc, const char* reason);

}  // namespace hv::cpu
