#pragma once
// Partition lifecycle (kernel/guest/manager.cpp).

#include <stdint.h>

#include "kernel/boot/multiboot.hpp"
#include "kernel/cpu/percpu.hpp"

namespace hv::guest {

// Boot CPU: reads the `config` module, validates it against this machine,
// builds and launches every valid guest. False when there is no configuration.
bool start_partitions(const boot::BootInfo& boot, uint64_t tsc_hz);
// Boot CPU, called in a loop: prints guest output, handles stops and restarts.
// Returns whether any guest is still running or due to restart.
bool poll_partitions(uint64_t now_tsc);
// Asks every running guest to stop and waits (bounded) until they have; the
// preemption timer lets even a guest spinning with interrupts off be stopped.
void stop_partitions(uint64_t tsc_hz);
// Prints hv.guest.stats for every guest (at the end of a test run).
void report_partitions();

// Application processors, once online: wait for a guest and run it, forever.
[[noreturn]] void ap_loop(cpu::PerCpu& pc);

}  // namespace hv::guest
