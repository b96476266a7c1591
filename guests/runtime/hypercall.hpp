#pragma once
// Hypercall wrappers (kernel/abi/guest_abi.hpp, docs/guest-abi.md): VMCALL with
// RAX = call number, RDI/RSI/RDX = arguments; RAX = status, RDX = value.

#include <stdint.h>

#include "kernel/abi/guest_abi.hpp"

namespace hvg {

struct HypercallResult {
    hv::abi::Status status;
    uint64_t value;
    bool ok() const { return status == hv::abi::Status::ok; }
};

// Any call number, including ones the ABI does not define (the probe guest
// checks that those fail with Status::unknown_call).
#if HVG_QEMU_HARNESS
// Built for tests/guestnet (the network guests on plain QEMU, against its
// virtio-net-pci): no hypervisor answers VMCALL there. exit becomes a write
// to QEMU's isa-debug-exit port (QEMU's status is code * 2 + 1); every other
// call is unknown.
inline HypercallResult hypercall(uint64_t nr, uint64_t a0 = 0, uint64_t = 0, uint64_t = 0) {
    if (nr == static_cast<uint64_t>(hv::abi::Hypercall::exit)) {
        asm volatile("outl %0, %1" ::"a"(static_cast<uint32_t>(a0 & 0x7F)), "Nd"(uint16_t{0xF4}));
    }
    return {hv::abi::Status::unknown_call, 0};
}
#else
inline HypercallResult hypercall(uint64_t nr, uint64_t a0 = 0, uint64_t a1 = 0, uint64_t a2 = 0) {
    uint64_t rax = nr, rdi = a0, rsi = a1, rdx = a2;
    // The ABI preserves every register but RAX and RDX. RDI and RSI are still
    // declared as outputs, and flags and memory as clobbered, so that a
    // hypervisor bug there cannot silently corrupt the caller's state.
    asm volatile("vmcall" : "+a"(rax), "+D"(rdi), "+S"(rsi), "+d"(rdx)::"cc", "memory");
    return {static_cast<hv::abi::Status>(rax), rdx};
}
#endif

inline HypercallResult hypercall(hv::abi::Hypercall nr, uint64_t a0 = 0, uint64_t a1 = 0, uint64_t a2 = 0) {
    return hypercall(static_cast<uint64_t>(nr), a0, a1, a2);
}

namespace hc {

inline HypercallResult abi_version() {
    return hypercall(hv::abi::Hypercall::abi_version);
}
inline HypercallResult tsc_hz() {
    return hypercall(hv::abi::Hypercall::tsc_hz);
}
inline HypercallResult yield() {
    return hypercall(hv::abi::Hypercall::yield);
}
// `gpa` is a guest-physical address; RAM is identity mapped, so a pointer to
// guest memory is its GPA.
inline HypercallResult console_write(uint64_t gpa, uint64_t len) {
    return hypercall(hv::abi::Hypercall::console_write, gpa, len);
}
// Stops the guest. Should it ever return, the caller hangs with interrupts off.
[[noreturn]] void exit(uint64_t code);

}  // namespace hc

// Name of a status for console lines: "ok", "unknown_call", ..., or "other".
const char* status_name(hv::abi::Status s);

}  // namespace hvg
