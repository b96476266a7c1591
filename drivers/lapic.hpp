#pragma once
// Local APIC in x2APIC mode (MSRs) when the CPU has it, xAPIC (MMIO) otherwise
// (SDM Vol. 3A §10.4, §10.12). Enough for SMP bring-up: IDs, enable, IPIs.

#include <stdint.h>

#include "kernel/lib/result.hpp"

namespace hv::drv {

class Lapic {
  public:
    // On the BSP: decide the mode (x2APIC if CPUID.1:ECX[21]) and, for xAPIC,
    // remember the MMIO mapping `mmio` of the page at IA32_APIC_BASE.
    static void init_global(bool x2apic, volatile uint32_t* mmio);
    // On each CPU: enable the LAPIC in the chosen mode, spurious vector 0xFF.
    static void enable_local();
    static uint32_t id();
    static bool x2apic() ;
    static uint64_t base_phys();  // from IA32_APIC_BASE

    // INIT (assert) and STARTUP IPIs to one CPU (SDM Vol. 3A §10.6.1). Fails
    // with Errc::timeout if an xAPIC never clears its delivery-status bit.
    static Result<void> send_init(uint32_t apic_id);
    static Result<void> send_startup(uint32_t apic_id, uint8_t vector_page);
    static void eoi();
    // NMI to one CPU (delivery mode 100b).
    static Result<void> send_nmi(uint32_t apic_id);
    // Fixed-delivery IPI with `vector` to one CPU.
    static Result<void> send_fixed(uint32_t apic_id, uint8_t vector);
};

}  // namespace hv::drv
