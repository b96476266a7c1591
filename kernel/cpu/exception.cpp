// Exception and interrupt dispatch. A CPU exception inside the hypervisor is a
// bug: print everything needed to find it (vector, error code, registers, a
// frame-pointer backtrace) and stop that CPU cleanly, instead of letting it
// escalate to a silent triple fault.

#include "drivers/lapic.hpp"
#include "kernel/cpu/interrupt_frame.hpp"
#include "kernel/cpu/percpu.hpp"
#include "kernel/cpu/x86.hpp"
#include "kernel/log.hpp"
#include "kernel/panic.hpp"

namespace hv::cpu {

namespace {

const char* exception_name(uint64_t v) {
    static const char* const kNames[32] = {
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
        "#NP", "#SS", "#GP", "#PF", "RSV", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
        "RSV", "RSV", "RSV", "RSV", "RSV", "RSV", "#HV", "#VC", "#SX", "RSV"};
    return v < 32 ? kNames[v] : "IRQ";
}

// A saved RBP is followed only while it stays inside this CPU's kernel stack and
// strictly grows, so a corrupted chain ends the walk instead of faulting again.
void backtrace(uint32_t cpu_index, const PerCpu* pc, uint64_t rip, uint64_t rbp) {
    Line first("backtrace");
    first.u("cpu", cpu_index).u("frame", 0).x("rip", rip);
    log::emit(first);
    uint64_t lo = pc ? pc->stacks.kernel_bottom : 0;
    uint64_t hi = pc ? pc->stacks.kernel_top : 0;
    for (int depth = 1; depth < 24 && rbp != 0; ++depth) {
        if (rbp < lo || rbp + 16 > hi || (rbp & 7) != 0) break;
        const uint64_t* fp = reinterpret_cast<const uint64_t*>(rbp);
        uint64_t ret = fp[1];
        uint64_t next = fp[0];
        if (ret == 0) break;
        Line l("backtrace");
        l.u("cpu", cpu_index).u("frame", static_cast<uint64_t>(depth)).x("rip", ret);
        log::emit(l);
        if (next <= rbp) break;
        rbp = next;
    }
}

}  // namespace

extern "C" void exception_dispatch(InterruptFrame* f) {
    PerCpu* pc = nullptr;
    if (x86::rdmsr(x86::Msr::IA32_GS_BASE) != 0) pc = &current();
    uint32_t idx = pc ? pc->index : 0;

    if (f->vector == vector::SPURIOUS) return;
    if (f->vector >= 32) {
        // Interrupts: the wake-up IPI only needs its EOI; anything else is
        // unexpected but harmless, so it is reported and acknowledged.
        drv::Lapic::eoi();
        if (f->vector != vector::WAKEUP) {
            Line l("interrupt.unexpected");
            l.u("cpu", idx).u("vector", f->vector);
            log::emit(l);
        }
        return;
    }
    if (f->vector == vector::NMI) {
        Line l("nmi");
        l.u("cpu", idx).x("rip", f->rip);
        log::emit(l);
        return;
    }

    x86::cli();
    log::enter_panic_mode();
    Line e("exception");
    e.u("cpu", idx)
        .u("vector", f->vector)
        .s("name", exception_name(f->vector))
        .x("error", f->error)
        .x("rip", f->rip)
        .x("cs", f->cs)
        .x("rflags", f->rflags)
        .x("rsp", f->rsp)
        .x("ss", f->ss)
        .x("cr2", x86::read_cr2())
        .x("cr3", x86::read_cr3());
    log::emit(e);
    Line r1("regs");
    r1.u("cpu", idx).x("rax", f->rax).x("rbx", f->rbx).x("rcx", f->rcx).x("rdx", f->rdx)
        .x("rsi", f->rsi).x("rdi", f->rdi).x("rbp", f->rbp).x("r8", f->r8);
    log::emit(r1);
    Line r2("regs");
    r2.u("cpu", idx).x("r9", f->r9).x("r10", f->r10).x("r11", f->r11).x("r12", f->r12)
        .x("r13", f->r13).x("r14", f->r14).x("r15", f->r15).x("cr0", x86::read_cr0()).x("cr4", x86::read_cr4());
    log::emit(r2);
    backtrace(idx, pc, f->rip, f->rbp);

    if (pc) pc->state = CpuState::halted;
    Line h("cpu.halted");
    h.u("cpu", idx).s("reason", "exception");
    log::emit(h);
    // Under test the run ends here with a failure status; on a server the other
    // CPUs keep running and this one stays halted.
    if (test_exit_enabled()) platform_exit(ExitStatus::failure);
    x86::halt_forever();
}

}  // namespace hv::cpu
