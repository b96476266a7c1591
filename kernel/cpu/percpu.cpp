#include "kernel/cpu/percpu.hpp"

#include "kernel/cpu/interrupt_frame.hpp"
#include "kernel/cpu/x86.hpp"
#include "kernel/panic.hpp"

extern "C" const uint64_t isr_stub_table[256];

namespace hv::cpu {

namespace {
constinit PerCpu g_cpus[kMaxCpus];
constinit size_t g_cpu_count = 0;
constinit IdtGate g_idt[256];
constinit bool g_idt_ready = false;

void build_idt() {
    for (size_t v = 0; v < 256; ++v) {
        uint8_t ist = 0;
        if (v == vector::NMI) ist = kIstNmi;
        if (v == vector::DOUBLE_FAULT) ist = kIstDoubleFault;
        if (v == vector::MACHINE_CHECK) ist = kIstMachineCheck;
        g_idt[v] = interrupt_gate(isr_stub_table[v], kKernelCode, ist);
    }
    g_idt_ready = true;
}
}  // namespace

const char* state_name(CpuState s) {
    switch (s) {
        case CpuState::absent: return "absent";
        case CpuState::starting: return "starting";
        case CpuState::online: return "online";
        case CpuState::failed: return "failed";
        case CpuState::halted: return "halted";
    }
    return "unknown";
}

PerCpu& cpu(size_t index) { return g_cpus[index]; }
uint64_t idt_base() { return reinterpret_cast<uint64_t>(&g_idt); }
size_t cpu_count() { return g_cpu_count; }

PerCpu& add_cpu(uint32_t apic_id) {
    if (g_cpu_count >= kMaxCpus) PANIC("more CPUs than kMaxCpus");
    PerCpu& pc = g_cpus[g_cpu_count];
    pc.self = &pc;
    pc.index = static_cast<uint32_t>(g_cpu_count);
    pc.apic_id = apic_id;
    pc.state = CpuState::absent;
    ++g_cpu_count;
    return pc;
}

void load(PerCpu& pc) {
    if (!g_idt_ready) build_idt();
    pc.tss.ist[kIstNmi - 1] = pc.stacks.nmi_top;
    pc.tss.ist[kIstDoubleFault - 1] = pc.stacks.double_fault_top;
    pc.tss.ist[kIstMachineCheck - 1] = pc.stacks.machine_check_top;
    pc.tss.rsp[0] = pc.stacks.kernel_top;
    pc.tss.iomap_base = sizeof(Tss);  // no I/O bitmap
    uint64_t tss = reinterpret_cast<uint64_t>(&pc.tss);
    pc.gdt.e[0] = 0;
    pc.gdt.e[1] = kGdtCode64;
    pc.gdt.e[2] = kGdtData;
    pc.gdt.e[3] = tss_descriptor_low(tss, sizeof(Tss) - 1);
    pc.gdt.e[4] = tss_descriptor_high(tss);

    x86::lgdt({sizeof(pc.gdt) - 1, reinterpret_cast<uint64_t>(&pc.gdt)});
    // Reload CS with a far return (there is no far jump to an immediate in 64-bit mode).
    asm volatile(
        "pushq %[cs]\n"
        "leaq 1f(%%rip), %%rax\n"
        "pushq %%rax\n"
        "lretq\n"
        "1:\n"
        "movw %[ds], %%ax\n"
        "movw %%ax, %%ds\n"
        "movw %%ax, %%es\n"
        "movw %%ax, %%ss\n" ::[cs] "i"(kKernelCode),
        [ds] "i"(kKernelData)
        : "rax", "memory");
    x86::ltr(kTssSelector);
    x86::lidt({sizeof(g_idt) - 1, reinterpret_cast<uint64_t>(&g_idt)});
    x86::wrmsr(x86::Msr::IA32_GS_BASE, reinterpret_cast<uint64_t>(&pc));
}

}  // namespace hv::cpu
