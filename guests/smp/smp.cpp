// smp: a guest with several vCPUs. vCPU 0 starts every other vCPU with the
// vcpu_start hypercall; each one reports its index and the APIC ID CPUID gives
// it, and checks in on a shared counter. vCPU 0 then reports how many came.
//
//   guest.smp.start vcpus=4
//   guest.smp.ap index=1 apic_id=1 ...
//   guest.smp.done vcpus=4 started=3 checked_in=3
//
// Exit code 0 when every vCPU checked in within a second, 1 otherwise.
//
// args "crash_ap" (first run only, BootInfo.restart_count == 0): vCPU 1
// triple-faults right after checking in, so tests can see one vCPU's crash
// stop the whole guest and the restart bring every vCPU back.
//
// args "nmi" (3 vCPUs or more): NMIs between the vCPUs through the virtual
// x2APIC's ICR, each vCPU counting the ones its handler runs, in steps:
//   dropped  before vCPU 2 is started, one NMI to it (the hypervisor drops it:
//            a vCPU in wait-for-SIPI takes none; held, it would hit a vCPU
//            with no IDT yet)
//   ipi      3 NMIs to vCPU 1 while it spins, each awaited
//   self     2 NMIs to vCPU 0's own ID: taken before the next instruction
//   halt     vCPU 1 runs "sti; hlt": one NMI wakes it (its APIC is
//            software-disabled, so no interrupt can)
//   halt_cli vCPU 1 runs "cli; hlt", which only an NMI ends: one NMI wakes it
//   held     3 NMIs to vCPU 1 while its handler spins on the first: the
//            others wait for its IRET, then come in as one (an NMI latch)
//   others   the all-excluding-self shorthand: vCPUs 1 and 2, not 0
//   all      physical broadcast 0xFFFFFFFF: every vCPU, vCPU 0 at once
//   logical  logical destination cluster 0, members 1 and 2
// and prints
//   guest.smp.nmi dropped=yes ipi=yes self=yes halt=yes halt_cli=yes held=yes
//     coalesced=yes others=yes all=yes logical=yes nested=0 ipi_max_us=..
//     wake_us=.. wake_cli_us=.. total=16 vcpu0=3 vcpu1=10 vcpu2=3 ok=yes
// with 3 vCPUs (vCPUs past 2 take the others and all steps). ipi_max_us is
// the slowest of the 3 NMIs from the ICR write until vCPU 0 saw vCPU 1's
// count move; wake_us and wake_cli_us the same for the halted vCPU 1 to
// come back from its HLT; total the runtime's count of NMI handler runs.
// ok=no makes the exit code 1. vCPUs 1 and up run with interrupts on, as an
// OS does, except in the "cli; hlt" and in the NMI handler.

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"
#include "guests/runtime/interrupt.hpp"
#include "guests/runtime/runtime.hpp"
#include "guests/runtime/smp.hpp"
#include "guests/runtime/x2apic.hpp"
#include "guests/runtime/x86.hpp"

namespace {

constexpr uint32_t kMaxVcpus = 16;
constexpr size_t kStackBytes = 16 * 1024;
alignas(16) constinit uint8_t g_stacks[kMaxVcpus][kStackBytes];
constinit uint32_t g_checked_in = 0;
constinit uint32_t g_bad_index = 0;
constinit bool g_crash_ap = false;
constinit bool g_nmi_mode = false;
constinit uint64_t g_tsc_hz = 0;

bool has_word(const char* args, const char* word) {
    for (const char* p = args; *p;) {
        while (*p == ' ') ++p;
        const char* w = word;
        const char* q = p;
        while (*w && *q == *w) ++q, ++w;
        if (!*w && (*q == ' ' || *q == '\0')) return true;
        while (*p && *p != ' ') ++p;
    }
    return false;
}

// An empty IDT and an exception: #GP cannot be delivered, nor can #DF: the CPU shuts down.
[[noreturn]] void triple_fault() {
    struct [[gnu::packed]] {
        uint16_t limit;
        uint64_t base;
    } empty{0, 0};
    asm volatile("lidt %0; int3" ::"m"(empty));
    __builtin_unreachable();
}

uint32_t load(const uint32_t& v) {
    return __atomic_load_n(&v, __ATOMIC_SEQ_CST);
}
void store(uint32_t& v, uint32_t x) {
    __atomic_store_n(&v, x, __ATOMIC_SEQ_CST);
}

// Spins until cond() holds or `ms` of TSC time have passed; true if it held.
template <typename Cond>
bool wait_until(Cond&& cond, uint64_t ms) {
    const uint64_t end = hvg::rdtsc() + g_tsc_hz / 1000 * ms;
    while (!cond()) {
        if (hvg::rdtsc() >= end) return cond();
        hvg::pause();
    }
    return true;
}

void spin_ms(uint64_t ms) {
    (void)wait_until([] { return false; }, ms);
}

uint64_t ticks_to_us(uint64_t ticks) {
    return ticks * 1000 / (g_tsc_hz / 1000);
}

// ---- args "nmi" ----

// Shared by every vCPU's NMI handler and vCPU 0's driver; atomics only.
struct NmiShared {
    uint32_t taken[kMaxVcpus];   // NMIs each vCPU's handler ran
    uint32_t inside[kMaxVcpus];  // 1 while that vCPU is in its handler
    uint32_t nested;             // a handler entered on a vCPU already inside it
    uint32_t hold;               // vCPU 1's next NMI spins in the handler ...
    uint32_t holding;            // ... (it is spinning now) ...
    uint32_t release;            // ... until this is set
    uint32_t halt;               // vCPU 1: 1 = run "sti; hlt" now, 2 = "cli; hlt"
    uint32_t halting;            // vCPU 1 is about to halt
    uint32_t woke;               // vCPU 1 came back from that HLT
};
constinit NmiShared g_nmi = {};

void on_nmi(void*) {
    const uint32_t me = hvg::vcpu_index();
    if (me >= kMaxVcpus) return;
    if (__atomic_exchange_n(&g_nmi.inside[me], 1u, __ATOMIC_SEQ_CST))
        __atomic_add_fetch(&g_nmi.nested, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&g_nmi.taken[me], 1, __ATOMIC_SEQ_CST);
    if (me == 1 && __atomic_exchange_n(&g_nmi.hold, 0u, __ATOMIC_SEQ_CST)) {
        store(g_nmi.holding, 1);
        while (!load(g_nmi.release)) hvg::pause();
        store(g_nmi.holding, 0);
    }
    store(g_nmi.inside[me], 0);
}

// Application vCPUs in NMI mode spin with interrupts on (their APICs are
// software-disabled: nothing but NMIs arrives), and vCPU 1 halts when asked.
[[noreturn]] void ap_nmi_loop(uint32_t index) {
    hvg::irq_enable();
    for (;;) {
        const uint32_t how = index == 1 ? __atomic_exchange_n(&g_nmi.halt, 0u, __ATOMIC_SEQ_CST) : 0;
        if (how != 0) {
            store(g_nmi.halting, 1);
            if (how == 1)
                asm volatile("sti; hlt" ::: "memory");
            else
                asm volatile("cli; hlt; sti" ::: "memory");  // IF = 0: only an NMI ends it
            store(g_nmi.halting, 0);
            __atomic_add_fetch(&g_nmi.woke, 1, __ATOMIC_SEQ_CST);
        }
        hvg::pause();
    }
}

// vCPU 1 halts (`how` as in NmiShared::halt); one NMI must end it. False if
// it woke before the NMI or not after it; `ticks` gets the send-to-wake time.
bool halt_step(uint32_t how, uint32_t* want, uint64_t* ticks) {
    const uint32_t woke = load(g_nmi.woke);
    store(g_nmi.halt, how);
    bool ok = wait_until([] { return load(g_nmi.halting) == 1; }, 1000);
    spin_ms(20);
    ok = load(g_nmi.woke) == woke && ok;  // HLT holds it: nothing else wakes it
    const uint64_t t0 = hvg::rdtsc();
    ok = hvg::x2apic::send_nmi(1) && ok;
    ++want[1];
    ok = wait_until([&] { return load(g_nmi.woke) == woke + 1; }, 1000) && load(g_nmi.taken[1]) == want[1] && ok;
    *ticks = hvg::rdtsc() - t0;
    return ok;
}

// vCPU 0's side, once every vCPU has checked in (steps in the header).
bool nmi_steps(uint32_t n, bool dropped_sent) {
    using hvg::x2apic::send_nmi;
    uint32_t* taken = g_nmi.taken;
    auto counts_are = [&](const uint32_t* want) {
        for (uint32_t i = 0; i < n; ++i)
            if (load(taken[i]) != want[i]) return false;
        return true;
    };
    uint32_t want[kMaxVcpus] = {};

    // The NMI sent to vCPU n-1 before its start must never arrive.
    const bool dropped = dropped_sent && load(taken[n - 1]) == 0;

    // Latencies: a kick brings the NMI in at once; without one it would wait
    // for the target's next exit (the 10 ms hypervisor tick).
    uint64_t ipi_ticks = 0;
    bool ipi = true;
    for (uint32_t k = 0; k < 3; ++k) {
        const uint64_t t0 = hvg::rdtsc();
        ipi = send_nmi(1) && ipi;
        ++want[1];
        ipi = wait_until([&] { return load(taken[1]) == want[1]; }, 1000) && ipi;
        const uint64_t dt = hvg::rdtsc() - t0;
        if (dt > ipi_ticks) ipi_ticks = dt;
    }

    bool self = true;
    for (uint32_t k = 0; k < 2; ++k) {
        self = send_nmi(0) && self;
        ++want[0];
        self = load(taken[0]) == want[0] && self;  // the instruction after the WRMSR already sees it
    }

    uint64_t wake_ticks = 0, wake_cli_ticks = 0;
    const bool halt = halt_step(1, want, &wake_ticks);
    const bool halt_cli = halt_step(2, want, &wake_cli_ticks);

    store(g_nmi.hold, 1);
    bool held = send_nmi(1);
    ++want[1];
    held = wait_until([] { return load(g_nmi.holding) == 1; }, 1000) && held;
    held = send_nmi(1) && send_nmi(1) && held;
    spin_ms(20);
    held = load(taken[1]) == want[1] && load(g_nmi.holding) == 1 && held;  // none while the handler runs
    store(g_nmi.release, 1);
    ++want[1];
    held = wait_until([&] { return load(taken[1]) == want[1]; }, 1000) && held;  // the IRET lets one in
    spin_ms(20);
    const bool coalesced = load(taken[1]) == want[1];

    bool others = hvg::x2apic::send_nmi_all_excluding_self();
    for (uint32_t i = 1; i < n; ++i) ++want[i];
    others = wait_until([&] { return counts_are(want); }, 1000) && others;
    spin_ms(10);
    others = counts_are(want) && others;

    bool all = send_nmi(hvg::x2apic::kBroadcastId);
    all = load(taken[0]) == want[0] + 1 && all;
    for (uint32_t i = 0; i < n; ++i) ++want[i];
    all = wait_until([&] { return counts_are(want); }, 1000) && all;

    bool logical = hvg::x2apic::send_nmi_logical((1u << 1) | (1u << 2));  // cluster 0: IDs 1 and 2
    ++want[1];
    ++want[2];
    logical = wait_until([&] { return counts_are(want); }, 1000) && logical;
    spin_ms(10);
    logical = counts_are(want) && logical;

    const uint32_t nested = load(g_nmi.nested);
    const bool ok =
        dropped && ipi && self && halt && halt_cli && held && coalesced && others && all && logical && nested == 0;
    hvg::Event e("smp.nmi");
    e.b("dropped", dropped).b("ipi", ipi).b("self", self).b("halt", halt).b("halt_cli", halt_cli);
    e.b("held", held).b("coalesced", coalesced);
    e.b("others", others).b("all", all).b("logical", logical).u("nested", nested);
    e.u("ipi_max_us", ticks_to_us(ipi_ticks)).u("wake_us", ticks_to_us(wake_ticks));
    e.u("wake_cli_us", ticks_to_us(wake_cli_ticks)).u("total", hvg::nmi_count());
    for (uint32_t i = 0; i < n && i < 4; ++i) {
        static constexpr const char* kKeys[] = {"vcpu0", "vcpu1", "vcpu2", "vcpu3"};
        e.u(kKeys[i], load(taken[i]));
    }
    e.b("ok", ok).emit();
    return ok;
}

void ap_main(uint32_t index) {
    uint32_t apic_id = hvg::vcpu_index();
    hvg::Event("smp.ap").u("index", index).u("apic_id", apic_id).emit();
    if (apic_id != index) __atomic_add_fetch(&g_bad_index, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_checked_in, 1, __ATOMIC_RELEASE);
    if (g_crash_ap && index == 1) triple_fault();
    if (g_nmi_mode) ap_nmi_loop(index);
    // Stay alive until the guest stops; a vCPU that returns just halts.
    for (;;) {
        if (!hvg::hc::yield().ok()) hvg::pause();
    }
}

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    uint32_t n = info->cpu_count;
    g_crash_ap = info->restart_count == 0 && has_word(info->args, "crash_ap");
    g_nmi_mode = has_word(info->args, "nmi");
    g_tsc_hz = info->tsc_hz ? info->tsc_hz : 2'000'000'000ull;
    hvg::Event("smp.start").u("vcpus", n).u("self", hvg::vcpu_index()).u("restart", info->restart_count).emit();
    if (n > kMaxVcpus) n = kMaxVcpus;
    bool dropped_sent = false;
    if (g_nmi_mode) {
        hvg::x2apic::InitError apic = hvg::x2apic::init();
        if (apic != hvg::x2apic::InitError::ok || n < 3) {
            hvg::Event("smp.nmi").s("apic", hvg::x2apic::init_error_name(apic)).u("vcpus", n).b("ok", false).emit();
            return 1;
        }
        hvg::set_nmi_handler(on_nmi, nullptr);
        dropped_sent = hvg::x2apic::send_nmi(n - 1);  // not started yet
    }
    uint32_t started = 0;
    for (uint32_t i = 1; i < n; ++i) {
        hvg::HypercallResult r = hvg::start_vcpu(i, ap_main, g_stacks[i], kStackBytes);
        if (r.ok()) ++started;
        else hvg::Event("smp.start_failed").u("index", i).s("status", hvg::status_name(r.status)).emit();
    }
    // Starting a vCPU twice, or one that does not exist, must fail.
    bool twice_refused = n < 2 || !hvg::start_vcpu(1, ap_main, g_stacks[1], kStackBytes).ok();
    bool missing_refused = !hvg::hypercall(hv::abi::Hypercall::vcpu_start, n, 0x100000, 0x80000).ok();

    uint64_t deadline = hvg::rdtsc() + g_tsc_hz;
    while (__atomic_load_n(&g_checked_in, __ATOMIC_ACQUIRE) < started && hvg::rdtsc() < deadline) {
        if (!hvg::hc::yield().ok()) hvg::pause();
    }
    uint32_t checked = __atomic_load_n(&g_checked_in, __ATOMIC_ACQUIRE);
    if (g_crash_ap) {
        // vCPU 1's triple fault stops the guest, this vCPU included.
        for (;;) hvg::pause();
    }
    bool ok = checked == n - 1 && started == n - 1 && g_bad_index == 0 && twice_refused && missing_refused;
    if (g_nmi_mode) ok = nmi_steps(n, dropped_sent) && ok;
    hvg::Event("smp.done")
        .u("vcpus", n)
        .u("started", started)
        .u("checked_in", checked)
        .u("bad_apic_ids", g_bad_index)
        .b("twice_refused", twice_refused)
        .b("missing_refused", missing_refused)
        .b("ok", ok)
        .emit();
    return ok ? 0 : 1;
}
