#include "guests/runtime/x2apic.hpp"

#include "guests/runtime/interrupt.hpp"
#include "guests/runtime/x86.hpp"

namespace hvg::x2apic {

namespace {

// SVR (SDM Vol. 3A §10.9, Figure 10-23): bit 8 = APIC software enable.
constexpr uint64_t kSvrEnable = 1u << 8;
// LVT timer (SDM Vol. 3A Figure 10-8): bit 16 mask, bits 18:17 mode.
constexpr uint64_t kLvtMasked = 1u << 16;
constexpr uint64_t kLvtModeOneShot = 0u << 17;
constexpr uint64_t kLvtModeTscDeadline = 2u << 17;
constexpr uint64_t kDivideBy1 = 0xB;  // divide configuration 1011b (SDM Figure 10-10)
constexpr uint32_t kCpuid1EcxTscDeadline = 1u << 24;
// ICR (SDM Vol. 3A Figure 10-28): delivery mode 10:8 (100b = NMI; the vector
// is ignored), destination mode 11, destination shorthand 19:18.
constexpr uint64_t kIcrDeliveryNmi = 4u << 8;
constexpr uint64_t kIcrLogical = 1u << 11;
constexpr uint64_t kIcrAllExcludingSelf = 3u << 18;
// Longest single arming; later deadlines are reached by re-arming on wake-up.
constexpr uint64_t kMaxArmMs = 1000;

constinit bool g_present = false;
constinit uint32_t g_id = 0;
constinit TimerMode g_timer = TimerMode::none;
constinit uint64_t g_timer_irqs = 0;
constinit uint64_t g_tsc_per_ms = 0;
constinit uint64_t g_apic_per_ms = 0;

void on_timer(void*, uint8_t) {
    ++g_timer_irqs;
}

// SDM Vol. 3A §10.5.4.1: WRMSR to the x2APIC registers is not serializing;
// a fence orders the LVT write before the deadline write.
HVG_ALWAYS_INLINE void mfence() {
    asm volatile("mfence" ::: "memory");
}

// Waits up to `ticks` of TSC with interrupts let in, until the timer fired.
bool timer_fired_within(uint64_t before, uint64_t ticks) {
    uint64_t end = rdtsc() + ticks;
    while (rdtsc() < end) {
        irq_window();
        if (g_timer_irqs != before) return true;
    }
    return false;
}

}  // namespace

const char* init_error_name(InitError e) {
    switch (e) {
        case InitError::ok: return "ok";
        case InitError::apic_base_unreadable: return "apic_base_unreadable";
        case InitError::not_x2apic: return "not_x2apic";
        case InitError::msr_fault: return "msr_fault";
    }
    return "?";
}

const char* timer_mode_name(TimerMode m) {
    switch (m) {
        case TimerMode::none: return "none";
        case TimerMode::tsc_deadline: return "tsc_deadline";
        case TimerMode::one_shot: return "one_shot";
    }
    return "?";
}

InitError init() {
    if (g_present) return InitError::ok;
    MsrResult base = rdmsr_safe(kMsrIa32ApicBase);
    if (!base.ok) return InitError::apic_base_unreadable;
    // The hypervisor owns the mode; turning x2APIC on ourselves would be a
    // WRMSR to IA32_APIC_BASE, which it refuses (docs/guest-abi.md).
    if ((base.value & (kApicBaseEn | kApicBaseExtd)) != (kApicBaseEn | kApicBaseExtd)) return InitError::not_x2apic;
    MsrResult id_msr = rdmsr_safe(kMsrApicId);
    if (!id_msr.ok) return InitError::msr_fault;
    set_irq_handler(kTimerVector, &on_timer, nullptr);
    if (!wrmsr_safe(kMsrSvr, kSvrEnable | kSpuriousVector)) return InitError::msr_fault;
    g_id = static_cast<uint32_t>(id_msr.value);
    g_present = true;
    return InitError::ok;
}

bool present() {
    return g_present;
}
uint32_t id() {
    return g_id;
}

void eoi() {
    if (g_present) wrmsr(kMsrEoi, 0);
}

bool send_nmi(uint32_t x2apic_id) {
    return wrmsr_safe(kMsrIcr, (static_cast<uint64_t>(x2apic_id) << 32) | kIcrDeliveryNmi);
}

bool send_nmi_logical(uint32_t logical_destination) {
    return wrmsr_safe(kMsrIcr, (static_cast<uint64_t>(logical_destination) << 32) | kIcrLogical | kIcrDeliveryNmi);
}

bool send_nmi_all_excluding_self() {
    return wrmsr_safe(kMsrIcr, kIcrAllExcludingSelf | kIcrDeliveryNmi);
}

TimerMode timer_init(uint64_t tsc_hz) {
    if (!g_present || tsc_hz < 1000) return TimerMode::none;
    if (g_timer != TimerMode::none) return g_timer;
    g_tsc_per_ms = tsc_hz / 1000;
    bool was_on = (read_rflags() & kRflagsIf) != 0;
    irq_disable();

    // TSC-deadline mode (SDM Vol. 3A §10.5.4.1) when CPUID.1:ECX[24] says so;
    // proven by one real interrupt 100 us out, within 10 ms.
    if (cpuid(1).ecx & kCpuid1EcxTscDeadline) {
        if (wrmsr_safe(kMsrLvtTimer, kLvtModeTscDeadline | kTimerVector)) {
            mfence();
            uint64_t before = g_timer_irqs;
            if (wrmsr_safe(kMsrTscDeadline, rdtsc() + g_tsc_per_ms / 10) &&
                timer_fired_within(before, 10 * g_tsc_per_ms)) {
                g_timer = TimerMode::tsc_deadline;
            } else {
                wrmsr_safe(kMsrTscDeadline, 0);
            }
        }
    }
    // One-shot mode: count how far the timer runs down in 1 ms of TSC time.
    if (g_timer == TimerMode::none && wrmsr_safe(kMsrTimerDivide, kDivideBy1) &&
        wrmsr_safe(kMsrLvtTimer, kLvtMasked | kLvtModeOneShot | kTimerVector) &&
        wrmsr_safe(kMsrTimerInitialCount, 0xFFFF'FFFF)) {
        uint64_t end = rdtsc() + g_tsc_per_ms;
        while (rdtsc() < end) pause();
        MsrResult cur = rdmsr_safe(kMsrTimerCurrentCount);
        wrmsr_safe(kMsrTimerInitialCount, 0);
        if (cur.ok && cur.value < 0xFFFF'FFFF) {
            g_apic_per_ms = 0xFFFF'FFFF - cur.value;
            uint64_t before = g_timer_irqs;
            if (wrmsr_safe(kMsrLvtTimer, kLvtModeOneShot | kTimerVector) &&
                wrmsr_safe(kMsrTimerInitialCount, g_apic_per_ms / 10 + 1) &&
                timer_fired_within(before, 10 * g_tsc_per_ms))
                g_timer = TimerMode::one_shot;
        }
    }
    if (was_on) irq_enable();
    return g_timer;
}

bool timer_arm(uint64_t deadline) {
    switch (g_timer) {
        case TimerMode::none: return false;
        case TimerMode::tsc_deadline:
            // A deadline already past fires at once (SDM §10.5.4.1); 0 would disarm.
            wrmsr(kMsrTscDeadline, deadline ? deadline : 1);
            return true;
        case TimerMode::one_shot: {
            uint64_t now = rdtsc();
            uint64_t delta = deadline > now ? deadline - now : 1;
            if (delta > kMaxArmMs * g_tsc_per_ms) delta = kMaxArmMs * g_tsc_per_ms;
            // delta * apic_per_ms <= 1000 * tsc_per_ms * apic_per_ms: no overflow
            // for any TSC and APIC clock below ~100 GHz.
            uint64_t count = delta * g_apic_per_ms / g_tsc_per_ms + 1;
            if (count > 0xFFFF'FFFF) count = 0xFFFF'FFFF;
            wrmsr(kMsrTimerInitialCount, count);
            return true;
        }
    }
    return false;
}

uint64_t timer_interrupts() {
    return g_timer_irqs;
}

}  // namespace hvg::x2apic
