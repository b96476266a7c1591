#pragma once
// The guest's local APIC in x2APIC mode (SDM Vol. 3A §10.12): MSR access only.
// The hypervisor starts the guest with IA32_APIC_BASE.EN and EXTD set; this
// code checks that, software-enables the APIC, sends EOIs, builds MSI
// messages aimed at this vCPU, and drives the APIC timer as a wake-up source
// for HLT (TSC-deadline mode when CPUID offers it, else one-shot mode
// calibrated against the TSC).

#include <stdint.h>

namespace hvg::x2apic {

// x2APIC MSR numbers (SDM Vol. 3A Table 10-6).
inline constexpr uint32_t kMsrApicId = 0x802;
inline constexpr uint32_t kMsrEoi = 0x80B;
inline constexpr uint32_t kMsrSvr = 0x80F;
inline constexpr uint32_t kMsrIcr = 0x830;
inline constexpr uint32_t kMsrLvtTimer = 0x832;
inline constexpr uint32_t kMsrTimerInitialCount = 0x838;
inline constexpr uint32_t kMsrTimerCurrentCount = 0x839;
inline constexpr uint32_t kMsrTimerDivide = 0x83E;
inline constexpr uint32_t kMsrTscDeadline = 0x6E0;  // IA32_TSC_DEADLINE
inline constexpr uint64_t kApicBaseEn = 1ull << 11;
inline constexpr uint64_t kApicBaseExtd = 1ull << 10;

inline constexpr uint8_t kSpuriousVector = 0xFF;
inline constexpr uint8_t kTimerVector = 0xFE;

// MSI message for a fixed, edge-triggered interrupt to APIC `dest`
// (SDM Vol. 3A §10.11.1-2): address 0xFEE00000 | dest << 12 (physical
// destination mode, no redirection hint), data = vector (delivery mode fixed,
// edge). Destinations above 255 need interrupt remapping: not supported.
inline constexpr uint64_t kMsiAddressBase = 0xFEE00000;
inline uint64_t msi_address(uint32_t dest) {
    return kMsiAddressBase | (static_cast<uint64_t>(dest & 0xFF) << 12);
}
inline uint32_t msi_data(uint8_t vector) {
    return vector;
}

// NMI IPIs through the ICR (SDM Vol. 3A §10.6.1, §10.12.9: one 64-bit
// WRMSR; destination in bits 63:32). False when the APIC refused the write
// (#GP). The self shorthand is not valid with NMI delivery (Table 10-3): aim
// at this vCPU's own ID instead.
inline constexpr uint32_t kBroadcastId = 0xFFFFFFFF;  // physical: every vCPU, this one included
bool send_nmi(uint32_t x2apic_id);
// Logical destination (§10.12.10.2): cluster in bits 31:16, member bitmap in 15:0.
bool send_nmi_logical(uint32_t logical_destination);
bool send_nmi_all_excluding_self();

enum class InitError : uint8_t {
    ok,
    apic_base_unreadable,  // RDMSR IA32_APIC_BASE faulted
    not_x2apic,            // EN or EXTD clear
    msr_fault,             // an x2APIC MSR faulted: no virtual x2APIC
};
const char* init_error_name(InitError e);

// Checks the mode, reads the APIC ID, sets SVR (APIC software-enabled,
// spurious vector 0xFF) and installs the timer handler. Safe to call when the
// hypervisor has no x2APIC: every MSR access is fault-checked.
InitError init();
bool present();
uint32_t id();
void eoi();

// Timer. timer_init() calibrates once; timer_arm() asks for an interrupt at or
// after `deadline` (TSC), replacing any earlier request; it returns false when
// no timer works (the caller must then poll).
enum class TimerMode : uint8_t { none, tsc_deadline, one_shot };
TimerMode timer_init(uint64_t tsc_hz);
const char* timer_mode_name(TimerMode m);
bool timer_arm(uint64_t deadline);
uint64_t timer_interrupts();

}  // namespace hvg::x2apic
