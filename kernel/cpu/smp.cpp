#include "kernel/cpu/smp.hpp"

#include "drivers/lapic.hpp"
#include "kernel/cpu/percpu.hpp"
#include "kernel/cpu/x86.hpp"
#include "kernel/guest/manager.hpp"
#include "kernel/log.hpp"
#include "kernel/mm/kernel_memory.hpp"
#include "vmx/vmx_probe.hpp"

extern "C" {
extern const char ap_tramp_start[], __ap_trampoline_end[];
extern const char ap_tramp_gdtr_base[], ap_tramp_far32[], ap_tramp_far64[], ap_tramp_cr3[], ap_tramp_stack[],
    ap_tramp_arg[], ap_tramp_gdt[], ap_tramp_pm32[];
void ap_entry64();
}

namespace hv::cpu {

namespace {

constexpr uint64_t kKernelStack = 16 * 1024;
constexpr uint64_t kIstStack = 8 * 1024;

constinit bool g_dump_vmx = false;

uint64_t tramp_offset(const char* sym) {
    return static_cast<uint64_t>(sym - ap_tramp_start);
}

template <typename T>
void tramp_store(uint8_t* page, const char* sym, T value) {
    __builtin_memcpy(page + tramp_offset(sym), &value, sizeof(T));
}

void delay_ticks(uint64_t ticks) {
    uint64_t start = x86::rdtsc();
    while (x86::rdtsc() - start < ticks) x86::pause();
}

CpuState wait_state(PerCpu& pc, uint64_t ticks) {
    uint64_t start = x86::rdtsc();
    for (;;) {
        auto s = __atomic_load_n(&pc.state, __ATOMIC_ACQUIRE);
        if (s != CpuState::starting) return s;
        if (x86::rdtsc() - start >= ticks) return s;
        x86::pause();
    }
}

bool is_last_usable(const acpi::Madt& madt, size_t index, uint32_t bsp_apic_id) {
    for (size_t j = index + 1; j < madt.cpu_count; ++j)
        if ((madt.cpus[j].enabled || madt.cpus[j].online_capable) && madt.cpus[j].apic_id != bsp_apic_id) return false;
    return true;
}

}  // namespace

void report_cpu(const PerCpu& pc, const char* reason) {
    Line l("cpu");
    l.u("index", pc.index).u("apic_id", pc.apic_id).s("state", state_name(pc.state)).b("bsp", pc.is_bsp);
    if (reason) l.s("reason", reason);
    log::emit(l);
}

bool allocate_stacks(PerCpu& pc) {
    uint64_t bottom = 0, ignored = 0;
    auto k = mm::map_stack(kKernelStack, &bottom);
    auto n = mm::map_stack(kIstStack, &ignored);
    auto d = mm::map_stack(kIstStack, &ignored);
    auto m = mm::map_stack(kIstStack, &ignored);
    if (!k || !n || !d || !m) return false;
    pc.stacks = Stacks{*k, *n, *d, *m, bottom};
    return true;
}

SmpReport start_aps(const acpi::Madt& madt, uint32_t bsp_apic_id, const SmpOptions& opt) {
    SmpReport rep{madt.usable_cpu_count(), 1, 0};
    g_dump_vmx = opt.dump_vmx_msrs;
    if (opt.trampoline_phys == 0) {
        log::error("smp", "no free page below 1 MiB for the AP trampoline; APs stay offline");
        rep.failed = rep.listed > 0 ? rep.listed - 1 : 0;
        return rep;
    }
    // Timing from the MP spec / SDM §9.4.4.1: 10 ms after INIT, 200 us between SIPIs;
    // then give the AP 100 ms to reach 64-bit code. Without a TSC frequency, fall
    // back to a large tick count (a slow CPU still gets its time).
    uint64_t hz = opt.tsc_hz ? opt.tsc_hz : 3'000'000'000ull;
    uint64_t t10ms = hz / 100, t200us = hz / 5000, t100ms = hz / 10;

    auto* page = static_cast<uint8_t*>(mm::phys_to_virt(opt.trampoline_phys));
    uint64_t size = static_cast<uint64_t>(__ap_trampoline_end - ap_tramp_start);
    __builtin_memcpy(page, ap_tramp_start, size);
    uint32_t base = static_cast<uint32_t>(opt.trampoline_phys);
    tramp_store<uint32_t>(page, ap_tramp_gdtr_base, base + static_cast<uint32_t>(tramp_offset(ap_tramp_gdt)));
    tramp_store<uint32_t>(page, ap_tramp_far32, base + static_cast<uint32_t>(tramp_offset(ap_tramp_pm32)));
    tramp_store<uint32_t>(page, ap_tramp_far64, static_cast<uint32_t>(reinterpret_cast<uint64_t>(&ap_entry64)));
    tramp_store<uint64_t>(page, ap_tramp_cr3, mm::kernel_cr3());

    for (size_t i = 0; i < madt.cpu_count; ++i) {
        const acpi::MadtCpu& mc = madt.cpus[i];
        if (!(mc.enabled || mc.online_capable) || mc.apic_id == bsp_apic_id) continue;
        if (opt.max_cpus && cpu_count() >= opt.max_cpus) break;
        if (cpu_count() >= kMaxCpus) {
            log::warn("smp", "more CPUs than kMaxCpus=%zu; the rest stay offline", kMaxCpus);
            break;
        }
        PerCpu& pc = add_cpu(mc.apic_id);
        if (!allocate_stacks(pc)) {
            pc.state = CpuState::failed;
            report_cpu(pc, "no_memory_for_stacks");
            ++rep.failed;
            continue;
        }
        tramp_store<uint64_t>(page, ap_tramp_stack, pc.stacks.kernel_top);
        tramp_store<uint64_t>(page, ap_tramp_arg, reinterpret_cast<uint64_t>(&pc));
        __atomic_store_n(&pc.state, CpuState::starting, __ATOMIC_RELEASE);

        // Test hook (hv.inject=ap-hang): the last listed AP gets `cli; hlt; jmp $-1`
        // in place of the trampoline, so it never reports: the timeout path must
        // report it, park it in INIT and carry on.
        uint8_t saved[4];
        bool hang = opt.inject_ap_hang && is_last_usable(madt, i, bsp_apic_id);
        if (hang) {
            static const uint8_t kHaltLoop[4] = {0xFA, 0xF4, 0xEB, 0xFD};
            __builtin_memcpy(saved, page, sizeof saved);
            __builtin_memcpy(page, kHaltLoop, sizeof kHaltLoop);
        }

        auto vector = static_cast<uint8_t>(opt.trampoline_phys >> 12);
        bool sent = drv::Lapic::send_init(mc.apic_id).ok();
        if (sent) {
            delay_ticks(t10ms);
            sent = drv::Lapic::send_startup(mc.apic_id, vector).ok();
        }
        CpuState s = CpuState::starting;
        if (sent) {
            s = wait_state(pc, t200us);
            if (s == CpuState::starting) {
                (void)drv::Lapic::send_startup(mc.apic_id, vector);
                s = wait_state(pc, t100ms);
            }
        }
        if (hang) __builtin_memcpy(page, saved, sizeof saved);
        if (s == CpuState::online) {
            // The BSP reports for the AP: one writer keeps the log in CPU order.
            report_cpu(pc, nullptr);
            vmx::report(pc);
            ++rep.online;
            continue;
        }
        // Put a late or wedged AP back into wait-for-SIPI, so that it cannot run
        // the trampoline later with the next CPU's stack.
        (void)drv::Lapic::send_init(mc.apic_id);
        pc.state = CpuState::failed;
        report_cpu(pc, sent ? "timeout" : "ipi_failed");
        log::error("smp", "CPU apic_id=%u did not start", mc.apic_id);
        ++rep.failed;
    }
    return rep;
}

extern "C" [[noreturn]] void ap_main(PerCpu* pc) {
    load(*pc);
    drv::Lapic::enable_local();
    uint32_t id = drv::Lapic::id();
    if (id != pc->apic_id) log::warn("smp", "CPU %u reports APIC id %u, MADT said %u", pc->index, id, pc->apic_id);
    vmx::probe_this_cpu(*pc, g_dump_vmx);
    pc->online_tsc = x86::rdtsc();
    __atomic_store_n(&pc->state, CpuState::online, __ATOMIC_RELEASE);
    guest::ap_loop(*pc);
}

}  // namespace hv::cpu
