#pragma once
// Application vCPUs of a guest with more than one CPU (docs/guest-abi.md
// "vCPUs"). vCPU 0 runs guest_main; it starts each other vCPU once, on a stack
// it provides, with the vcpu_start hypercall.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/hypercall.hpp"

namespace hvg {

using ApFunction = void (*)(uint32_t index);

// Starts vCPU `index` (1 .. cpu_count - 1) running fn(index) on
// [stack, stack + stack_bytes). When fn returns the vCPU halts.
HypercallResult start_vcpu(uint32_t index, ApFunction fn, void* stack, size_t stack_bytes);

// This vCPU's index, from CPUID's initial APIC ID (= vCPU index).
uint32_t vcpu_index();

}  // namespace hvg
