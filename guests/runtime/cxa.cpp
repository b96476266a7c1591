// The C++ ABI hook for a pure virtual call. The C memory functions GCC may
// call come from the hypervisor's kernel/lib/libc.cpp, compiled into the runtime.

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"

extern "C" {

// A pure virtual call is a guest bug: report it and stop the guest.
[[noreturn]] void __cxa_pure_virtual() {
    hvg::Event("error").s("what", "pure_virtual_call").emit();
    hvg::hc::exit(2);
}

}  // extern "C"
