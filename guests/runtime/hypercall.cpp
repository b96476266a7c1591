#include "guests/runtime/hypercall.hpp"

#include "guests/runtime/console.hpp"
#include "guests/runtime/x86.hpp"

namespace hvg {

namespace hc {

void exit(uint64_t code) {
    hypercall(hv::abi::Hypercall::exit, code);
    // A hypervisor that honours the ABI never gets here. Say so once, then hang
    // without interrupts: nothing useful is left to do.
    Event("error").s("what", "exit_returned").u("code", code).emit();
    for (;;) {
        cli();
        asm volatile("hlt" ::: "memory");
    }
}

}  // namespace hc

const char* status_name(hv::abi::Status s) {
    switch (s) {
        case hv::abi::Status::ok: return "ok";
        case hv::abi::Status::unknown_call: return "unknown_call";
        case hv::abi::Status::invalid_argument: return "invalid_argument";
        case hv::abi::Status::fault: return "fault";
    }
    return "other";
}

}  // namespace hvg
