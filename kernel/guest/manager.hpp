#pragma once
// Partition lifecycle (kernel/guest/manager.cpp).

#include <stdint.h>

#include "kernel/boot/multiboot.hpp"
#include "kernel/cpu/percpu.hpp"
#include "kernel/lib/result.hpp"

namespace hv::guest {

// Boot CPU: reads the `config` module, validates it against this machine,
// builds and launches every valid guest. False when there is no configuration.
bool start_partitions(const boot::BootInfo& boot, uint64_t tsc_hz);
// Boot CPU, called in a loop: prints guest output, handles stops and restarts.
// Returns whether any guest is still running or due to restart.
bool poll_partitions(uint64_t now_tsc);
// Operator actions on one guest, by name; the other guests are not touched.
// stop: the guest's CPU leaves it at its next exit (an IPI forces one) and it
// stays stopped, whatever its restart policy. start: a stopped guest starts
// again from its pristine image. restart: stop, then start.
enum class Action : uint8_t { stop, start, restart, nmi /* test only */, stats /* every guest's counters now */ };
Result<void> guest_action(const char* name, Action action);
// Prints hv.guest.stats, hv.port.stats and hv.switch.stats now (the same
// lines as at the end of a run, without the pcap files).
void report_counters();
// Test hook: hv.test_actions=stop:NAME@MS,start:NAME@MS,stats@MS,... runs those actions
// MS milliseconds after the partitions started (docs/cmdline.md).
Result<void> schedule_test_actions(const char* spec, uint64_t start_tsc);

// Asks every running guest to stop and waits (bounded) until they have; the
// preemption timer lets even a guest spinning with interrupts off be stopped.
void stop_partitions(uint64_t tsc_hz);
// Prints hv.guest.stats for every guest (at the end of a test run).
void report_partitions();

// Application processors, once online: wait for a guest and run it, forever.
[[noreturn]] void ap_loop(cpu::PerCpu& pc);

}  // namespace hv::guest
