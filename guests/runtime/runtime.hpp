#pragma once
// The guest runtime's entry contract. entry.asm sets up the CPU, then the
// checked boot (start.cpp) validates what the hypervisor handed over and calls
//
//   extern "C" int guest_main(const hv::abi::BootInfo* info);
//
// which every guest defines. Its return value becomes the exit code of the
// exit hypercall (0 = clean). `info` points at the runtime's validated copy of
// the BootInfo (name always NUL-terminated).

#include <stdint.h>

#include "kernel/abi/guest_abi.hpp"

extern "C" int guest_main(const hv::abi::BootInfo* info);

namespace hvg {

// The validated copy, also reachable from anywhere in the guest.
const hv::abi::BootInfo& boot_info();

// Stops the guest through the exit hypercall.
[[noreturn]] void exit(uint64_t code);

// [start, end) of this image as linked (linker.ld); end includes .bss.
uint64_t image_start();
uint64_t image_end();

}  // namespace hvg
