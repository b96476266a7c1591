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

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"
#include "guests/runtime/runtime.hpp"
#include "guests/runtime/smp.hpp"
#include "guests/runtime/x86.hpp"

namespace {

constexpr uint32_t kMaxVcpus = 16;
constexpr size_t kStackBytes = 16 * 1024;
alignas(16) constinit uint8_t g_stacks[kMaxVcpus][kStackBytes];
constinit uint32_t g_checked_in = 0;
constinit uint32_t g_bad_index = 0;
constinit bool g_crash_ap = false;

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

void ap_main(uint32_t index) {
    uint32_t apic_id = hvg::vcpu_index();
    hvg::Event("smp.ap").u("index", index).u("apic_id", apic_id).emit();
    if (apic_id != index) __atomic_add_fetch(&g_bad_index, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_checked_in, 1, __ATOMIC_RELEASE);
    if (g_crash_ap && index == 1) triple_fault();
    // Stay alive until the guest stops; a vCPU that returns just halts.
    for (;;) {
        if (!hvg::hc::yield().ok()) hvg::pause();
    }
}

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    uint32_t n = info->cpu_count;
    g_crash_ap = info->restart_count == 0 && has_word(info->args, "crash_ap");
    hvg::Event("smp.start").u("vcpus", n).u("self", hvg::vcpu_index()).u("restart", info->restart_count).emit();
    if (n > kMaxVcpus) n = kMaxVcpus;
    uint32_t started = 0;
    for (uint32_t i = 1; i < n; ++i) {
        hvg::HypercallResult r = hvg::start_vcpu(i, ap_main, g_stacks[i], kStackBytes);
        if (r.ok()) ++started;
        else hvg::Event("smp.start_failed").u("index", i).s("status", hvg::status_name(r.status)).emit();
    }
    // Starting a vCPU twice, or one that does not exist, must fail.
    bool twice_refused = n < 2 || !hvg::start_vcpu(1, ap_main, g_stacks[1], kStackBytes).ok();
    bool missing_refused = !hvg::hypercall(hv::abi::Hypercall::vcpu_start, n, 0x100000, 0x80000).ok();

    uint64_t hz = info->tsc_hz ? info->tsc_hz : 2'000'000'000ull;
    uint64_t deadline = hvg::rdtsc() + hz;
    while (__atomic_load_n(&g_checked_in, __ATOMIC_ACQUIRE) < started && hvg::rdtsc() < deadline) {
        if (!hvg::hc::yield().ok()) hvg::pause();
    }
    uint32_t checked = __atomic_load_n(&g_checked_in, __ATOMIC_ACQUIRE);
    if (g_crash_ap) {
        // vCPU 1's triple fault stops the guest, this vCPU included.
        for (;;) hvg::pause();
    }
    bool ok = checked == n - 1 && started == n - 1 && g_bad_index == 0 && twice_refused && missing_refused;
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
