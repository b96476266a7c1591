#pragma once
// Running one guest vCPU on the calling CPU: VMCS set-up, the VM entry/exit
// loop and the exit handlers. Nothing a guest does can panic the hypervisor:
// every exit either resumes the guest (possibly with an injected fault) or
// stops this guest with a StopRecord (STYLE.md §9).

#include "kernel/cpu/percpu.hpp"
#include "kernel/guest/guest.hpp"
#include "kernel/lib/result.hpp"

namespace hv::vmx {

// The MSR and I/O bitmaps are one policy for every guest: built once, read-only.
Result<void> init_global_bitmaps();

// Runs vCPU `v` on the calling CPU (one of its guest's CPUs) from its start
// state until the guest stops: returns once `v` has left the guest, with the
// guest's stop record written by whichever vCPU stopped it first.
void run_vcpu(cpu::PerCpu& pc, guest::Vcpu& v);

// The preemption-timer period: how often a running guest exits so the
// hypervisor can stop it, even if it spins with interrupts off.
inline constexpr uint64_t kTimerHz = 100;

}  // namespace hv::vmx
