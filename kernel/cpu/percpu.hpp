#pragma once
// Per-CPU data. Each CPU's IA32_GS_BASE points at its PerCpu, whose first field
// points at itself, so `current()` is one load from %gs:0.

#include <stddef.h>
#include <stdint.h>

#include "kernel/cpu/descriptors.hpp"
#include "vmx/vmx_caps.hpp"

namespace hv::cpu {

constexpr size_t kMaxCpus = 256;

enum class CpuState : uint32_t {
    absent = 0,   // listed by firmware, not (yet) started
    starting,     // INIT-SIPI-SIPI sent
    online,       // running our code, idle
    failed,       // did not answer in time; held in INIT
    halted,       // stopped after a fatal exception
};

const char* state_name(CpuState s);

struct Stacks {
    uint64_t kernel_top;
    uint64_t nmi_top;
    uint64_t double_fault_top;
    uint64_t machine_check_top;
    uint64_t kernel_bottom;  // lowest mapped byte of the kernel stack, for backtraces
};

struct PerCpu {
    PerCpu* self;             // must stay first: read through %gs:0
    uint32_t index;           // dense 0..n-1, BSP is 0
    uint32_t apic_id;
    CpuState state;
    bool is_bsp;
    Stacks stacks;
    Tss tss;
    GdtEntries gdt;
    vmx::VmxCaps vmx;
    vmx::RawCaps vmx_raw;     // the capability MSRs as read, for control computation
    vmx::FeatureControlState feature_control;
    uint64_t feature_control_msr;
    uint64_t online_tsc;      // TSC when the CPU reported online
    uint64_t vmxon_phys;      // VMXON region once the CPU is in VMX root operation
    void* assigned_vcpu;      // guest::Vcpu this CPU runs (set by the boot CPU)
};
static_assert(offsetof(PerCpu, self) == 0);

PerCpu& cpu(size_t index);
size_t cpu_count();           // CPUs with a PerCpu slot (BSP + APs we tried)
PerCpu& add_cpu(uint32_t apic_id);

inline PerCpu& current() {
    PerCpu* p;
    asm volatile("mov %%gs:0, %0" : "=r"(p));
    return *p;
}

uint64_t idt_base();

// Installs GDT, TSS and IDT for `pc` on the calling CPU and points GS at it.
void load(PerCpu& pc);

}  // namespace hv::cpu
