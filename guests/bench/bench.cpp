// bench: what one VM exit costs, seen from inside the guest, in TSC ticks.
//
// For each exiting instruction, a loop of N of them is timed with RDTSC, and
// the same loop with a non-exiting instruction in its place; the difference
// per iteration is the cost of the exit round trip (guest -> hypervisor ->
// guest, including the handler). Each loop runs kRuns times; the minimum counts.
//
//   guest.bench.start name=<guest> iterations=N runs=R tsc_hz=..
//   guest.bench name=cpuid iterations=N total_ticks=.. loop_ticks=.. per_exit_ticks=.. per_exit_ns=.. failures=0
//   guest.bench name=vmcall ... failures=<hypercalls that did not return ok>
//   guest.bench.done tsc_hz=..
//
// per_exit_ns is 0 when the TSC frequency is unknown. CPUID leaf 0x40000000
// exits unconditionally under VT-x (SDM Vol. 3C §25.1.2); VMCALL is
// hypercall abi_version, the cheapest call. Exit code: 0, or 1 if any VMCALL failed.

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"
#include "guests/runtime/runtime.hpp"
#include "guests/runtime/x86.hpp"

namespace {

constexpr uint32_t kIterations = 10000;
constexpr uint32_t kRuns = 5;

uint64_t min(uint64_t a, uint64_t b) {
    return a < b ? a : b;
}

// Each loop keeps the same shape so that only the timed instruction differs.
// The baselines do what the exiting loop does around the instruction (load
// the registers) but replace it with LFENCE, so neither is overlapped by
// out-of-order execution the way a plain register op could be.

uint64_t time_cpuid(uint32_t n) {
    uint64_t t0 = hvg::rdtsc_ordered();
    for (uint32_t k = 0; k < n; ++k) {
        uint32_t a = hv::abi::kCpuidHypervisorBase, b, c = 0, d;
        asm volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d)::"memory");
    }
    return hvg::rdtsc_ordered() - t0;
}

uint64_t time_cpuid_baseline(uint32_t n) {
    uint64_t t0 = hvg::rdtsc_ordered();
    for (uint32_t k = 0; k < n; ++k) {
        uint32_t a = hv::abi::kCpuidHypervisorBase, b, c = 0, d;
        asm volatile("lfence; xor %%ebx, %%ebx; xor %%edx, %%edx" : "+a"(a), "=b"(b), "+c"(c), "=d"(d)::"memory");
    }
    return hvg::rdtsc_ordered() - t0;
}

uint64_t time_vmcall(uint32_t n, uint32_t* failures) {
    uint32_t bad = 0;
    uint64_t t0 = hvg::rdtsc_ordered();
    for (uint32_t k = 0; k < n; ++k) {
        uint64_t rax = static_cast<uint64_t>(hv::abi::Hypercall::abi_version), rdi = 0, rsi = 0, rdx = 0;
        asm volatile("vmcall" : "+a"(rax), "+D"(rdi), "+S"(rsi), "+d"(rdx)::"cc", "memory");
        bad += rax != 0;
    }
    uint64_t t = hvg::rdtsc_ordered() - t0;
    *failures = bad;
    return t;
}

uint64_t time_vmcall_baseline(uint32_t n, uint32_t* failures) {
    uint32_t bad = 0;
    uint64_t t0 = hvg::rdtsc_ordered();
    for (uint32_t k = 0; k < n; ++k) {
        uint64_t rax = static_cast<uint64_t>(hv::abi::Hypercall::abi_version), rdi = 0, rsi = 0, rdx = 0;
        asm volatile("lfence; xor %%eax, %%eax; mov $1, %%edx"
                     : "+a"(rax), "+D"(rdi), "+S"(rsi), "+d"(rdx)::"cc", "memory");
        bad += rax != 0;
    }
    uint64_t t = hvg::rdtsc_ordered() - t0;
    *failures = bad;
    return t;
}

void report(const char* name, uint64_t total, uint64_t loop, uint64_t hz, uint32_t failures) {
    uint64_t exits = total > loop ? total - loop : 0;
    uint64_t per_exit = exits / kIterations;
    // ticks * 1e9 / hz without 128-bit arithmetic: per_exit is small (< 2^32
    // for any sane exit), so per_exit * 1e9 fits in 64 bits.
    uint64_t per_exit_ns = (hz != 0 && per_exit < (1ull << 32)) ? per_exit * 1'000'000'000ull / hz : 0;
    hvg::Event("bench")
        .s("name", name)
        .u("iterations", kIterations)
        .u("total_ticks", total)
        .u("loop_ticks", loop)
        .u("per_exit_ticks", per_exit)
        .u("per_exit_ns", per_exit_ns)
        .u("failures", failures)
        .emit();
}

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    hvg::HypercallResult hz_call = hvg::hc::tsc_hz();
    uint64_t hz = hz_call.ok() && hz_call.value ? hz_call.value : info->tsc_hz;
    hvg::Event("bench.start")
        .s("name", info->name)
        .u("iterations", kIterations)
        .u("runs", kRuns)
        .u("tsc_hz", hz)
        .emit();

    // Warm up caches, TLBs and the hypervisor's exit path once before timing.
    uint32_t failures = 0, ignored = 0;
    (void)time_cpuid(16);
    (void)time_cpuid_baseline(16);
    (void)time_vmcall(16, &ignored);
    (void)time_vmcall_baseline(16, &ignored);

    // Best of kRuns for each loop: an interrupt or a preemption of this guest
    // only ever adds time, so the minimum is the closest to the true cost.
    uint64_t cpuid_total = ~0ull, cpuid_loop = ~0ull, vmcall_total = ~0ull, vmcall_loop = ~0ull;
    for (uint32_t run = 0; run < kRuns; ++run) {
        uint32_t bad = 0;
        cpuid_total = min(cpuid_total, time_cpuid(kIterations));
        cpuid_loop = min(cpuid_loop, time_cpuid_baseline(kIterations));
        vmcall_total = min(vmcall_total, time_vmcall(kIterations, &bad));
        failures += bad;
        vmcall_loop = min(vmcall_loop, time_vmcall_baseline(kIterations, &ignored));
    }
    report("cpuid", cpuid_total, cpuid_loop, hz, 0);
    report("vmcall", vmcall_total, vmcall_loop, hz, failures);

    hvg::Event("bench.done").u("tsc_hz", hz).emit();
    return failures == 0 ? 0 : 1;
}
