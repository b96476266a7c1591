// The boot CPU's side of partitions: read the configuration, build each guest
// (RAM, EPT, image), hand it to its CPU, print what guests write, and apply the
// restart policy when one stops. Guest CPUs never print: only this loop writes
// to the serial console, so no guest can slow the console or another guest.

#include "kernel/guest/manager.hpp"

#include "kernel/guest/guest_devices.hpp"

#include "drivers/lapic.hpp"
#include "kernel/cpu/interrupt_frame.hpp"
#include "kernel/cpu/percpu.hpp"
#include "kernel/cpu/x86.hpp"
#include "kernel/lib/cmdline.hpp"
#include "kernel/log.hpp"
#include "kernel/mm/kernel_memory.hpp"
#include "kernel/mm/page_table.hpp"
#include "kernel/panic.hpp"
#include "vmx/ept.hpp"
#include "vmx/exit_qualification.hpp"
#include "vmx/vcpu.hpp"
#include "vmx/vmx_controls.hpp"
#include "vmx/vmcs_fields.hpp"

extern "C" uint64_t boot_tsc;

namespace hv::guest {

namespace {

using EptTable = mm::PageTable<vmx::EptFormat, mm::FrameTableMemory>;

constinit config::Config g_config{};
constinit Guest g_guests[config::kMaxGuests];
alignas(EptTable) constinit unsigned char g_ept_storage[config::kMaxGuests][sizeof(EptTable)];
constinit size_t g_guest_count = 0;
void run_scheduled(uint64_t now);  // operator actions due (below)
constinit uint64_t g_tsc_hz = 0;
constexpr uint64_t k2MiB = 2ull << 20;
// Kept free for the hypervisor itself (stacks, tables of later guests' restarts).
constexpr uint64_t kHypervisorReserve = 4ull << 20;

// The module's first word is its name (GRUB: `module2 /boot/hello.elf hello`).
void module_name(const boot::Module& m, char* out, size_t cap) {
    size_t n = 0;
    while (m.cmdline[n] && m.cmdline[n] != ' ' && n + 1 < cap) {
        out[n] = m.cmdline[n];
        ++n;
    }
    out[n] = '\0';
}

bool starts_with(const char* s, const char* prefix) {
    while (*prefix && *s == *prefix) ++s, ++prefix;
    return *prefix == '\0';
}

bool str_eq(const char* a, const char* b) {
    while (*a && *a == *b) ++a, ++b;
    return *a == *b;
}

void report_diagnostics(const char* file) {
    for (size_t i = 0; i < g_config.diag_count; ++i) {
        const config::Diagnostic& d = g_config.diags[i];
        char text[256];
        config::format_diagnostic(d, g_config, file, text, sizeof text);
        Line l("config.diag");
        l.s("severity", d.severity == config::Severity::error ? "error" : "warning").s("file", file).u("line", d.line);
        if (d.guest >= 0 && static_cast<size_t>(d.guest) < g_config.guest_count) {
            const config::GuestConfig& gc = g_config.guests[d.guest];
            l.s("guest", gc.name);
            if (d.port >= 0 && static_cast<size_t>(d.port) < gc.port_count) l.s("port", gc.ports[d.port].name);
        }
        if (d.mirror >= 0 && static_cast<size_t>(d.mirror) < g_config.mirror_count)
            l.s("mirror", g_config.mirrors[d.mirror].name);
        if (d.field[0]) l.s("field", d.field);
        l.s("msg", d.message);
        log::emit(l);
        if (d.severity == config::Severity::error) log::error("config", "%s", text);
        else log::warn("config", "%s", text);
    }
    if (g_config.diags_dropped)
        log::error("config", "%zu more configuration problems were not listed", g_config.diags_dropped);
}

void guest_error(const Guest& g, const char* what, const Error& e) {
    Line l("guest.error");
    l.s("guest", g.cfg.name).s("what", what).s("code", errc_name(e.code)).s("detail", e.detail).x("value", e.value);
    log::emit(l);
    log::error("guest", "%s: %s: %s", g.cfg.name, what, e.detail);
}

// Clear RAM, write page tables, boot info and the image: the state in which
// a guest starts, first time and after every restart.
Result<void> load(Guest& g) {
    __builtin_memset(mm::phys_to_virt(g.ram_hpa), 0, g.ram_bytes);
    abi::BootInfo info{};
    info.version = abi::kBootInfoVersion;
    info.size = sizeof info;
    info.hypercall_abi = abi::kHypercallAbiVersion;
    info.guest_id = g.id;
    for (size_t i = 0; i < sizeof info.name - 1 && g.cfg.name[i]; ++i) info.name[i] = g.cfg.name[i];
    static_assert(sizeof info.args == sizeof g.cfg.args, "BootInfo.args holds the whole configured args");
    for (size_t i = 0; i < sizeof info.args - 1 && g.cfg.args[i]; ++i) info.args[i] = g.cfg.args[i];
    info.memory_bytes = g.ram_bytes;
    info.image_start = g.elf.lowest_gpa;
    info.image_end = (g.elf.end_gpa + 4095) & ~4095ull;
    info.tsc_hz = g_tsc_hz;
    info.cpu_count = g.vcpu_count;
    info.restart_count = g.restart_count;
    info.console_port = 0x3F8;
    return load_guest_image(g.mem, g.elf, g.image, g.image_size, info);
}

// Builds guest `g` from its (valid) configuration: RAM, EPT, VMCS page, image.
Result<void> build(Guest& g, const boot::BootInfo& boot) {
    const cpu::PerCpu& pc = cpu::cpu(g.vcpus[0].cpu_index);
    for (size_t i = 0; i < boot.module_count; ++i) {
        char name[64];
        module_name(boot.modules[i], name, sizeof name);
        if (str_eq(name, g.cfg.image)) {
            g.image = static_cast<const uint8_t*>(mm::phys_to_virt(boot.modules[i].start));
            g.image_size = boot.modules[i].end - boot.modules[i].start;
        }
    }
    if (!g.image) return make_error(Errc::not_found, "no boot module with the image's name");
    g.ram_bytes = g.cfg.memory_bytes;
    bool low = g.cfg.mode != config::StartMode::long64;
    g.elf = TRY(parse_elf(g.image, g.image_size, low ? abi::kLowImageBase : abi::kImageBase, g.ram_bytes));
    if (g.cfg.mode == config::StartMode::real16 && g.elf.entry >= 0x100000)
        return make_error(Errc::invalid_argument, "a real16 guest's entry point must be below 1 MiB", g.elf.entry);

    // One contiguous block, aligned to the largest EPT page it can use.
    uint64_t align = g.ram_bytes >= (1ull << 30) && pc.vmx.ept_1g ? (1ull << 30) : k2MiB;
    auto ram = mm::alloc_frames(g.ram_bytes / 4096, align);
    if (!ram && align > k2MiB) ram = mm::alloc_frames(g.ram_bytes / 4096, k2MiB);
    if (!ram) return make_error(Errc::no_memory, "no contiguous block of host RAM for the guest", g.ram_bytes);
    g.ram_hpa = *ram;
    g.mem = GuestMemory(static_cast<uint8_t*>(mm::phys_to_virt(g.ram_hpa)), g.ram_bytes);

    auto* ept = new (g_ept_storage[g.id]) EptTable(mm::frame_table_memory());
    if (!ept->ok()) return make_error(Errc::no_memory, "no memory for the guest's EPT root");
    vmx::HostChunk chunk{g.ram_hpa, g.ram_bytes};
    TRY(vmx::map_guest_ram(*ept, &chunk, 1, vmx::ept_max_page_bytes(pc.vmx)));
    // Self-check: the EPT maps this guest's RAM and nothing else.
    uint64_t mapped = 0;
    bool outside = false;
    vmx::for_each_leaf(*ept, mm::frame_table_memory(), [&](const vmx::EptLeaf& leaf) {
        mapped += leaf.page_bytes;
        if (leaf.hpa < g.ram_hpa || leaf.hpa + leaf.page_bytes > g.ram_hpa + g.ram_bytes) outside = true;
    });
    if (outside || mapped != g.ram_bytes) PANIC("guest EPT maps memory outside the guest's RAM");
    g.eptp = vmx::make_eptp(ept->root(), false);
    g.ept_tables = ept->tables_used();
    for (uint32_t i = 0; i < g.vcpu_count; ++i) {
        Vcpu& v = g.vcpus[i];
        v.vmcs_phys = TRY(mm::alloc_frames(1));
        // VPID 0 is the hypervisor's own; one per vCPU.
        v.vpid = static_cast<uint16_t>(1 + g.id * config::kMaxGuestCpus + i);
    }
    g.tsc_hz = g_tsc_hz;
    TRY(load(g));
    TRY(create_devices(g));
    return {};
}

// The guest's vCPUs all left the guest (or never entered it): safe to reload
// and launch. A vCPU another vCPU asked to start just before the stop is still
// "runnable" until its CPU claims it and sees the stop; wait for that.
bool quiescent(const Guest& g) {
    for (uint32_t i = 0; i < g.vcpu_count; ++i) {
        VcpuRun r = __atomic_load_n(&g.vcpus[i].run, __ATOMIC_ACQUIRE);
        if (r == VcpuRun::running || r == VcpuRun::runnable) return false;
    }
    return true;
}

void launch(Guest& g) {
    g.stop = StopRecord{};
    g.stop_detail = nullptr;
    g.stop_vcpu = 0;
    g.running_reported = false;
    g.start_tsc = x86::rdtsc();
    __atomic_store_n(&g.stop_claimed, false, __ATOMIC_RELEASE);
    __atomic_store_n(&g.stop_requested, false, __ATOMIC_RELEASE);
    devices_starting(g);
    __atomic_store_n(&g.state, GuestState::ready, __ATOMIC_RELEASE);
    for (uint32_t i = 0; i < g.vcpu_count; ++i) {
        Vcpu& v = g.vcpus[i];
        v.first_entry_tsc = 0;
        v.start = VcpuStart::image;
        v.lapic = vdev::VirtualLapic(v.index, g.tsc_hz, g.tsc_hz);
        // vCPU 0 starts at the image's entry; the others wait to be started by it.
        __atomic_store_n(&v.run, i == 0 ? VcpuRun::runnable : VcpuRun::waiting_start, __ATOMIC_RELEASE);
        __atomic_store_n(&cpu::cpu(v.cpu_index).assigned_vcpu, static_cast<void*>(&v), __ATOMIC_RELEASE);
    }
    wake_cpu(g.vcpus[0]);
}

// At most `budget` lines per call: the console is shared round-robin, so a
// guest that refills its ring as fast as the UART drains it still gets only its
// share, and everyone else's lines (and the hypervisor's) keep flowing.
constexpr size_t kLinesPerPoll = 2;

void drain_console(Guest& g, size_t budget = ConsoleRing::kLines) {
    char text[ConsoleRing::kLineMax + 1];
    while (budget-- > 0 && g.console.pop(text)) {
        Line l("guest.console");
        l.s("guest", g.cfg.name).s("text", text);
        log::emit(l);
    }
}

uint64_t ms_to_ticks(uint64_t ms) { return g_tsc_hz ? g_tsc_hz / 1000 * ms : ms * 1'000'000; }

// The guest's last output, then its stop record as one hv.guest.stop line.
void report_stop(Guest& g) {
    drain_console(g);
    const StopRecord& s = g.stop;
    Line l("guest.stop");
    l.s("guest", g.cfg.name).s("reason", s.reason ? s.reason : "unknown").b("failure", s.failure)
        .i("code", s.code).s("exit", s.exit_reason == kNoExit ? "none" : vmx::exit_reason_name(s.exit_reason))
        .x("rip", s.rip);
    if (s.gpa || (s.reason && str_eq(s.reason, "ept_violation"))) l.x("gpa", s.gpa).x("qualification", s.qualification);
    if (g.stop_detail) l.s("detail", g.stop_detail);
    if (g.vcpu_count > 1) l.u("vcpu", g.stop_vcpu);
    l.u("restarts", g.restart_count);
    log::emit(l);
}

// A stopped guest: print the stop record and apply the restart policy.
void on_stopped(Guest& g, uint64_t now) {
    devices_stopped(g);
    report_stop(g);
    const StopRecord& s = g.stop;
    if (g.park_on_stop) {
        g.park_on_stop = false;
        __atomic_store_n(&g.state, GuestState::parked, __ATOMIC_RELEASE);
        Line p("guest.parked");
        p.s("guest", g.cfg.name);
        log::emit(p);
        return;
    }
    bool restart = false;
    switch (g.cfg.restart) {
        case config::RestartPolicy::never: restart = false; break;
        case config::RestartPolicy::on_failure: restart = s.failure; break;
        case config::RestartPolicy::always: restart = true; break;
    }
    if (restart && g.cfg.restart_limit != 0 && g.restart_count >= g.cfg.restart_limit) {
        Line gu("guest.gave_up");
        gu.s("guest", g.cfg.name).u("restarts", g.restart_count).u("limit", g.cfg.restart_limit);
        log::emit(gu);
        restart = false;
        __atomic_store_n(&g.state, GuestState::given_up, __ATOMIC_RELEASE);
        return;
    }
    if (!restart) {
        __atomic_store_n(&g.state, GuestState::given_up, __ATOMIC_RELEASE);
        return;
    }
    // Back-off doubles per consecutive restart, capped.
    uint64_t delay = g.cfg.restart_delay_ms;
    for (uint32_t i = 0; i < g.consecutive_restarts && delay < g.cfg.restart_delay_max_ms; ++i) delay *= 2;
    if (delay > g.cfg.restart_delay_max_ms) delay = g.cfg.restart_delay_max_ms;
    g.restart_tsc = now + ms_to_ticks(delay);
    __atomic_store_n(&g.state, GuestState::waiting_restart, __ATOMIC_RELEASE);
    Line r("guest.restart_scheduled");
    r.s("guest", g.cfg.name).u("delay_ms", delay).u("restart", g.restart_count + 1);
    log::emit(r);
}

void report_stats(const Guest& g) {
    const Counters c = g.total_counters();
    Line l("guest.stats");
    l.s("guest", g.cfg.name)
        .s("state", state_name(g.state))
        .u("restarts", g.restart_count)
        .u("exits", c.exits)
        .u("cpuid", c.by_reason[static_cast<int>(vmx::ExitReason::CPUID)])
        .u("io", c.by_reason[static_cast<int>(vmx::ExitReason::IO_INSTRUCTION)])
        .u("hypercalls", c.hypercalls)
        .u("hypercall_errors", c.hypercall_errors)
        .u("msr_denied", c.msr_denied)
        .u("io_unknown_in", c.io_unknown_in)
        .u("io_dropped_out", c.io_dropped_out)
        .u("injected", c.injected)
        .u("timer_ticks", c.timer_ticks)
        .u("nmis", c.nmis)
        .u("nmis_injected", c.nmis_injected)
        .u("nmis_dropped", __atomic_load_n(&g.nmis_dropped, __ATOMIC_RELAXED))
        .u("interrupts", c.interrupts)
        .u("ipis", c.ipis)
        .u("apic_errors", c.apic_errors)
        .u("mmio", c.mmio)
        .u("host_ticks", c.host_ticks)
        .u("console_dropped", g.console.dropped_lines());
    log::emit(l);
    // Where the hypervisor's time went: per exit reason, "count:ticks".
    Line p("guest.exit_profile");
    p.s("guest", g.cfg.name);
    for (size_t r = 0; r < sizeof c.by_reason / sizeof c.by_reason[0]; ++r)
        if (c.by_reason[r])
            p.f(vmx::exit_reason_name(static_cast<uint16_t>(r)), "%llu:%llu", static_cast<unsigned long long>(c.by_reason[r]),
                static_cast<unsigned long long>(c.ticks_by_reason[r]));
    log::emit(p);
}

}  // namespace

namespace {

struct ScheduledAction {
    char name[config::kMaxNameLen + 1];
    Action action;
    uint64_t at_tsc;
    bool done;
};
constexpr size_t kMaxScheduled = 16;
constinit ScheduledAction g_scheduled[kMaxScheduled];
constinit size_t g_scheduled_count = 0;

Guest* find_guest(const char* name) {
    for (size_t i = 0; i < g_guest_count; ++i)
        if (str_eq(g_guests[i].cfg.name, name)) return &g_guests[i];
    return nullptr;
}

const char* action_name(Action a) {
    switch (a) {
        case Action::stop: return "stop";
        case Action::start: return "start";
        case Action::restart: return "restart";
        case Action::nmi: return "nmi";
        case Action::stats: return "stats";
    }
    return "?";
}

// Start a parked or given-up guest again from its pristine image.
Result<void> restart_from_image(Guest& g) {
    ++g.restart_count;
    g.consecutive_restarts = 0;
    g.console.reset();
    TRY(load(g));
    Line l("guest.restart");
    l.s("guest", g.cfg.name).u("restart", g.restart_count).s("by", "operator");
    log::emit(l);
    launch(g);
    return {};
}

}  // namespace

Result<void> guest_action(const char* name, Action action) {
    Guest* g = find_guest(name);
    if (!g) return make_error(Errc::not_found, "no guest with that name");
    GuestState st = __atomic_load_n(&g->state, __ATOMIC_ACQUIRE);
    if (st == GuestState::invalid) return make_error(Errc::invalid_argument, "the guest's configuration was rejected");
    Line l("guest.action");
    l.s("guest", g->cfg.name).s("action", action_name(action)).s("state", state_name(st));
    log::emit(l);
    bool running = st == GuestState::ready || st == GuestState::running;
    if (action == Action::nmi) {
        // Test hook: an NMI to the guest's CPU must reach the hypervisor (an
        // EXCEPTION_NMI exit) and never the guest.
        if (!running) return make_error(Errc::invalid_argument, "the guest is not running");
        return drv::Lapic::send_nmi(cpu::cpu(g->vcpus[0].cpu_index).apic_id);
    }
    if (action == Action::stop || (action == Action::restart && running)) {
        if (!running) {
            // Stopped already (waiting for a restart, or given up): just park it.
            __atomic_store_n(&g->state, GuestState::parked, __ATOMIC_RELEASE);
            return {};
        }
        g->park_on_stop = true;
        g->start_after_park = action == Action::restart;
        __atomic_store_n(&g->stop_requested, true, __ATOMIC_RELEASE);
        // The IPI makes the guest's CPUs exit now instead of at the next timer tick.
        for (uint32_t i = 0; i < g->vcpu_count; ++i) kick(g->vcpus[i]);
        return {};
    }
    if (running) return make_error(Errc::invalid_argument, "the guest is already running");
    return restart_from_image(*g);
}

Result<void> schedule_test_actions(const char* spec, uint64_t start_tsc) {
    // stop:NAME@MS,start:NAME@MS,restart:NAME@MS
    const char* p = spec;
    while (*p) {
        if (g_scheduled_count == kMaxScheduled) return make_error(Errc::no_memory, "more than 16 test actions");
        ScheduledAction a{};
        if (starts_with(p, "stats@")) {  // not about one guest: no NAME
            a.action = Action::stats;
            p += 5;
        } else {
            const char* colon = p;
            while (*colon && *colon != ':') ++colon;
            size_t n = static_cast<size_t>(colon - p);
            if (n == 4 && __builtin_memcmp(p, "stop", 4) == 0) a.action = Action::stop;
            else if (n == 5 && __builtin_memcmp(p, "start", 5) == 0) a.action = Action::start;
            else if (n == 7 && __builtin_memcmp(p, "restart", 7) == 0) a.action = Action::restart;
            else if (n == 3 && __builtin_memcmp(p, "nmi", 3) == 0) a.action = Action::nmi;
            else return make_error(Errc::invalid_argument, "test action must be stop, start, restart, nmi or stats");
            if (*colon != ':') return make_error(Errc::invalid_argument, "test action lacks ':NAME@MS'");
            p = colon + 1;
            size_t len = 0;
            while (*p && *p != '@' && len < config::kMaxNameLen) a.name[len++] = *p++;
            if (*p != '@' || len == 0) return make_error(Errc::invalid_argument, "test action lacks '@MS' or a name");
        }
        ++p;
        const char* end = p;
        while (*end && *end != ',') ++end;
        uint64_t ms = 0;
        if (!parse_decimal(p, static_cast<size_t>(end - p), 1'000'000'000, &ms))
            return make_error(Errc::invalid_argument, "test action time is not a number of milliseconds");
        p = *end == ',' ? end + 1 : end;
        a.at_tsc = start_tsc + ms_to_ticks(ms);
        g_scheduled[g_scheduled_count++] = a;
    }
    return {};
}

namespace {

void run_scheduled(uint64_t now) {
    for (size_t i = 0; i < g_scheduled_count; ++i) {
        ScheduledAction& a = g_scheduled[i];
        if (a.done || now < a.at_tsc) continue;
        a.done = true;
        if (a.action == Action::stats) {
            report_counters();
            continue;
        }
        if (auto r = guest_action(a.name, a.action); !r) {
            Line l("guest.action_failed");
            l.s("guest", a.name).s("action", action_name(a.action)).s("detail", r.error().detail);
            log::emit(l);
            log::error("guest", "%s %s: %s", action_name(a.action), a.name, r.error().detail);
        }
    }
}

}  // namespace

const char* state_name(GuestState s) {
    switch (s) {
        case GuestState::invalid: return "invalid";
        case GuestState::ready: return "ready";
        case GuestState::running: return "running";
        case GuestState::stopped: return "stopped";
        case GuestState::waiting_restart: return "waiting_restart";
        case GuestState::given_up: return "given_up";
        case GuestState::parked: return "parked";
    }
    return "unknown";
}

void wake_cpu(const Vcpu& v) { (void)drv::Lapic::send_fixed(cpu::cpu(v.cpu_index).apic_id, cpu::vector::WAKEUP); }

void kick(const Vcpu& v) {
    if (__atomic_load_n(&v.run, __ATOMIC_ACQUIRE) != VcpuRun::running) return;
    if (v.cpu_index == cpu::current().index) return;  // it is this CPU: not in the guest right now
    wake_cpu(v);
}

bool send_nmi(Vcpu& v) {
    const VcpuRun run = __atomic_load_n(&v.run, __ATOMIC_ACQUIRE);
    if (run == VcpuRun::waiting_start || run == VcpuRun::offline) {
        __atomic_fetch_add(&v.guest->nmis_dropped, 1, __ATOMIC_RELAXED);
        return false;
    }
    // Already pending: NMIs do not queue (one latch, SDM Vol. 3A §6.7.1); the
    // kick that latched it is on its way.
    if (v.lapic.accept_nmi()) kick(v);
    return true;
}

Counters Guest::total_counters() const {
    Counters t{};
    for (uint32_t i = 0; i < vcpu_count; ++i) {
        const Counters& c = vcpus[i].counters;
        t.exits += c.exits;
        for (size_t r = 0; r < sizeof t.by_reason / sizeof t.by_reason[0]; ++r) {
            t.by_reason[r] += c.by_reason[r];
            t.ticks_by_reason[r] += c.ticks_by_reason[r];
        }
        t.msr_denied += c.msr_denied;
        t.io_unknown_in += c.io_unknown_in;
        t.io_dropped_out += c.io_dropped_out;
        t.hypercalls += c.hypercalls;
        t.hypercall_errors += c.hypercall_errors;
        t.injected += c.injected;
        t.timer_ticks += c.timer_ticks;
        t.nmis += c.nmis;
        t.nmis_injected += c.nmis_injected;
        t.interrupts += c.interrupts;
        t.ipis += c.ipis;
        t.apic_errors += c.apic_errors;
        t.mmio += c.mmio;
        t.host_ticks += c.host_ticks;
    }
    return t;
}

[[noreturn]] void ap_loop(cpu::PerCpu& pc) {
    for (;;) {
        x86::cli();
        auto* v = static_cast<Vcpu*>(__atomic_load_n(&pc.assigned_vcpu, __ATOMIC_ACQUIRE));
        VcpuRun expected = VcpuRun::runnable;
        if (v && __atomic_compare_exchange_n(&v->run, &expected, VcpuRun::running, false, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE)) {
            Guest& g = *v->guest;
            __atomic_add_fetch(&g.active_vcpus, 1, __ATOMIC_ACQ_REL);
            if (!__atomic_load_n(&g.stop_requested, __ATOMIC_ACQUIRE)) {
                GuestState ready = GuestState::ready;
                __atomic_compare_exchange_n(&g.state, &ready, GuestState::running, false, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE);
                vmx::run_vcpu(pc, *v);  // returns only once the guest is stopping
            }
            __atomic_store_n(&v->run, VcpuRun::exited, __ATOMIC_RELEASE);
            // The last vCPU out hands the guest to the boot CPU.
            if (__atomic_sub_fetch(&g.active_vcpus, 1, __ATOMIC_ACQ_REL) == 0)
                __atomic_store_n(&g.state, GuestState::stopped, __ATOMIC_RELEASE);
            continue;
        }
        // STI's one-instruction shadow makes "sti; hlt" atomic: a wake-up IPI
        // sent after the check above still ends this HLT.
        asm volatile("sti; hlt; cli" ::: "memory");
    }
}

bool start_partitions(const boot::BootInfo& boot, uint64_t tsc_hz) {
    g_tsc_hz = tsc_hz;
    const boot::Module* cfg_module = nullptr;
    for (size_t i = 0; i < boot.module_count; ++i) {
        char name[64];
        module_name(boot.modules[i], name, sizeof name);
        if (str_eq(name, "config")) cfg_module = &boot.modules[i];
    }
    if (!cfg_module) {
        log::info("config", "no configuration module (GRUB: module2 /boot/hv.toml config): no guests to run");
        return false;
    }
    const char* text = static_cast<const char*>(mm::phys_to_virt(cfg_module->start));
    size_t len = cfg_module->end - cfg_module->start;
    const char* file = "hv.toml";
    config::parse(text, len, g_config);

    // What validate() needs to know about this machine.
    const char* names[boot::kMaxModules];
    char name_store[boot::kMaxModules][64];
    size_t nnames = 0;
    for (size_t i = 0; i < boot.module_count; ++i) {
        module_name(boot.modules[i], name_store[nnames], sizeof name_store[nnames]);
        if (str_eq(name_store[nnames], "config")) continue;
        names[nnames] = name_store[nnames];
        ++nnames;
    }
    // Offline CPUs are the parser's to reject, so the message names the line.
    static constinit bool online[cpu::kMaxCpus];
    for (size_t i = 0; i < cpu::cpu_count(); ++i) online[i] = cpu::cpu(i).state == cpu::CpuState::online;
    auto st = mm::stats();
    config::MachineFacts facts{static_cast<uint32_t>(cpu::cpu_count()),
                               st.free_bytes > kHypervisorReserve ? st.free_bytes - kHypervisorReserve : 0, names,
                               nnames, online};
    config::validate(g_config, facts);
    report_diagnostics(file);

    if (auto r = vmx::init_global_bitmaps(); !r) log::error("vmx", "cannot build the MSR/I/O bitmaps");
    if (auto r = init_switch(g_config, tsc_hz); !r) log::error("switch", "cannot set up the switch: %s", r.error().detail);

    size_t valid = 0;
    bool built[config::kMaxGuests] = {};
    for (size_t i = 0; i < g_config.guest_count; ++i) {
        Guest& g = g_guests[i];
        g.id = static_cast<uint32_t>(i);
        g.cfg = g_config.guests[i];
        g.state = GuestState::invalid;
        ++g_guest_count;
        if (!g.cfg.valid) {
            Line l("guest.rejected");
            l.s("guest", g.cfg.name[0] ? g.cfg.name : "?").u("line", g.cfg.line).s("reason", "configuration");
            log::emit(l);
            continue;
        }
        g.vcpu_count = static_cast<uint32_t>(g.cfg.cpu_count);
        bool usable = true;
        for (uint32_t k = 0; k < g.vcpu_count && usable; ++k) {
            Vcpu& v = g.vcpus[k];
            v.guest = &g;
            v.index = k;
            v.cpu_index = g.cfg.cpus[k];
            const cpu::PerCpu& pc = cpu::cpu(v.cpu_index);
            if (!pc.vmx.vmx || pc.feature_control != vmx::FeatureControlState::enabled_locked) {
                Line l("guest.rejected");
                l.s("guest", g.cfg.name).u("cpu", v.cpu_index).s("reason", "cpu_without_vmx");
                log::emit(l);
                log::error("guest", "%s: CPU %u cannot run guests", g.cfg.name, v.cpu_index);
                usable = false;
            } else if (auto ctl = vmx::compute_controls(pc.vmx_raw); !ctl) {
                // Refuse a CPU that lacks a required VMX control here, with its
                // name, rather than on the guest's CPU at launch.
                Line l("guest.rejected");
                l.s("guest", g.cfg.name).u("cpu", v.cpu_index).s("reason", "vmx_unsupported")
                    .s("detail", ctl.error().detail);
                log::emit(l);
                log::error("guest", "%s: CPU %u: %s", g.cfg.name, v.cpu_index, ctl.error().detail);
                usable = false;
            }
        }
        if (!usable) continue;
        if (auto r = build(g, boot); !r) {
            guest_error(g, "cannot build the guest", r.error());
            continue;
        }
        ++valid;
        Line l("guest.start");
        l.s("guest", g.cfg.name).u("id", g.id).u("cpu", g.vcpus[0].cpu_index).u("vcpus", g.vcpu_count)
            .u("mem_mib", g.ram_bytes >> 20).x("ram_hpa", g.ram_hpa).x("entry", g.elf.entry)
            .u("ept_tables", g.ept_tables).u("vpid", g.vcpus[0].vpid)
            .u("overhead_bytes", (g.ept_tables + g.vcpu_count) * 4096 + sizeof(Guest))
            .s("restart", config::restart_policy_name(g.cfg.restart)).s("mode", config::start_mode_name(g.cfg.mode));
        log::emit(l);
        built[i] = true;
    }
    // Every guest, and so every switch port, exists before the first one runs:
    // an early sender finds its peers' ports (down until their drivers are ready).
    for (size_t i = 0; i < g_config.guest_count; ++i)
        if (built[i]) launch(g_guests[i]);
    Line s("config");
    s.s("file", file).u("guests", g_config.guest_count).u("started", valid).b("fatal", g_config.fatal);
    log::emit(s);
    // With a configuration the management loop runs even if no guest could
    // start: it reports and (under test) ends the run the same way.
    return true;
}

bool poll_partitions(uint64_t now) {
    run_scheduled(now);
    bool any_alive = false;
    for (size_t i = 0; i < g_guest_count; ++i) {
        Guest& g = g_guests[i];
        GuestState st = __atomic_load_n(&g.state, __ATOMIC_ACQUIRE);
        drain_console(g, kLinesPerPoll);
        if (st == GuestState::running && g.vcpus[0].first_entry_tsc && !g.running_reported) {
            // First VM entry seen: report how long the way from power-on took.
            uint64_t first = g.vcpus[0].first_entry_tsc;
            Line l("guest.running");
            l.s("guest", g.cfg.name).u("restart", g.restart_count).u("ticks_from_hv_entry", first - boot_tsc)
                .u("ticks_from_launch", first - g.start_tsc);
            log::emit(l);
            g.running_reported = true;
        }
        // A stop is handled once every vCPU is out of the guest.
        if (st == GuestState::stopped && !quiescent(g)) {
            any_alive = true;
            continue;
        }
        if (st == GuestState::stopped) {
            on_stopped(g, now);
            st = g.state;
            if (st == GuestState::parked && g.start_after_park) {
                g.start_after_park = false;
                if (auto r = restart_from_image(g); !r) guest_error(g, "cannot restart the guest", r.error());
                st = g.state;
            }
        }
        if (st == GuestState::waiting_restart && now >= g.restart_tsc) {
            ++g.restart_count;
            ++g.consecutive_restarts;
            g.console.reset();
            if (auto r = load(g); !r) {
                guest_error(g, "cannot reload the guest image", r.error());
                g.state = GuestState::given_up;
                continue;
            }
            Line l("guest.restart");
            l.s("guest", g.cfg.name).u("restart", g.restart_count);
            log::emit(l);
            launch(g);
            st = GuestState::ready;
        }
        any_alive |= st == GuestState::ready || st == GuestState::running || st == GuestState::waiting_restart;
        for (size_t k = 0; k < g_scheduled_count; ++k) any_alive |= !g_scheduled[k].done;
    }
    return any_alive;
}

void stop_partitions(uint64_t tsc_hz) {
    bool asked[config::kMaxGuests] = {};
    for (size_t i = 0; i < g_guest_count; ++i) {
        Guest& g = g_guests[i];
        GuestState st = __atomic_load_n(&g.state, __ATOMIC_ACQUIRE);
        if (st == GuestState::ready || st == GuestState::running) {
            __atomic_store_n(&g.stop_requested, true, __ATOMIC_RELEASE);
            asked[i] = true;
        } else if (st == GuestState::waiting_restart) {
            g.state = GuestState::given_up;
        }
    }
    // No IPI on purpose: the next preemption-timer exit (every 1/kTimerHz s)
    // brings each CPU back to the hypervisor, which sees the request.
    uint64_t limit = x86::rdtsc() + (tsc_hz ? tsc_hz : 3'000'000'000ull) / 2;
    for (size_t i = 0; i < g_guest_count; ++i) {
        if (!asked[i]) continue;
        Guest& g = g_guests[i];
        while (x86::rdtsc() < limit &&
               (__atomic_load_n(&g.state, __ATOMIC_ACQUIRE) != GuestState::stopped || !quiescent(g)))
            x86::pause();
        if (__atomic_load_n(&g.state, __ATOMIC_ACQUIRE) == GuestState::stopped) {
            report_stop(g);
            g.state = GuestState::given_up;
        } else {
            log::error("guest", "%s did not stop within 500 ms", g.cfg.name);
        }
    }
}

void report_counters() {
    for (size_t i = 0; i < g_guest_count; ++i)
        if (g_guests[i].state != GuestState::invalid) report_stats(g_guests[i]);
    for (size_t i = 0; i < g_guest_count; ++i) report_ports(g_guests[i]);
    report_switch();
}

void report_partitions() {
    for (size_t i = 0; i < g_guest_count; ++i) drain_console(g_guests[i]);
    report_counters();
    report_switch_captures();
}

}  // namespace hv::guest
