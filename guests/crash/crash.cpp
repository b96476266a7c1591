// crash: triple-faults on purpose, to test that the hypervisor stops (and,
// with a restart policy, restarts) only this guest.
//
//   guest.crash about=triple_fault restart=<r>
//
// With an empty IDT (limit 0) the #UD from UD2 cannot be delivered: #GP, which
// cannot be delivered either: #DF, likewise: triple fault, a VM exit with basic
// reason 2 (SDM Vol. 3A §6.15 "Interrupt 8", Vol. 3C §25.2).

#include "guests/runtime/console.hpp"
#include "guests/runtime/runtime.hpp"
#include "guests/runtime/x86.hpp"

namespace {

struct [[gnu::packed]] DescriptorPointer {
    uint16_t limit;
    uint64_t base;
};
static_assert(sizeof(DescriptorPointer) == 10);

}  // namespace

extern "C" int guest_main(const hv::abi::BootInfo* info) {
    hvg::Event("crash").s("about", "triple_fault").u("restart", info->restart_count).emit();
    static constexpr DescriptorPointer kEmptyIdt = {0, 0};
    hvg::cli();
    asm volatile("lidt %0; ud2" ::"m"(kEmptyIdt) : "memory");
    // Not reached: a hypervisor that survives the triple fault must not resume us.
    hvg::Event("crash_survived").emit();
    return 1;
}
