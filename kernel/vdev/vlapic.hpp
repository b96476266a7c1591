#pragma once
// A virtual local APIC in x2APIC mode for one guest vCPU (SDM Vol. 3A
// chapter 11; §11.12 for x2APIC). The hypervisor intercepts RDMSR/WRMSR of
// 0x800-0x8FF and IA32_TSC_DEADLINE, calls read_msr/write_msr and turns any
// error into #GP(0) for the guest. It injects what pending_vector() names,
// then calls ack(); NMIs come out of take_nmi(); INIT/SIPI and IPIs to other
// vCPUs come out of write_msr as an IpiRequest for the hypervisor to route.
// Pure: no hardware, no globals; time comes in as TSC values (`now`).
//
// Threads: accept_interrupt() and accept_nmi() may run on any CPU at any time
// (MSI-X from a device on another CPU, IPIs from sibling vCPUs); they touch
// only the IRR/TMR words, the pending-NMI flag and the ESR error latch, all
// with atomic read-modify-writes. Everything else is called only by the CPU
// that runs this vCPU.

#include <stdint.h>

#include "kernel/lib/result.hpp"

namespace hv::vdev {

// x2APIC MSRs, named as in SDM Vol. 4 Table 2-2 (addresses: Vol. 3A Table 11-6).
enum X2apicMsr : uint32_t {
    IA32_TSC_DEADLINE = 0x6E0,
    IA32_X2APIC_APICID = 0x802,
    IA32_X2APIC_VERSION = 0x803,
    IA32_X2APIC_TPR = 0x808,
    IA32_X2APIC_PPR = 0x80A,
    IA32_X2APIC_EOI = 0x80B,
    IA32_X2APIC_LDR = 0x80D,
    IA32_X2APIC_SIVR = 0x80F,
    IA32_X2APIC_ISR0 = 0x810,  // ..ISR7 = 0x817
    IA32_X2APIC_TMR0 = 0x818,  // ..TMR7 = 0x81F
    IA32_X2APIC_IRR0 = 0x820,  // ..IRR7 = 0x827
    IA32_X2APIC_ESR = 0x828,
    IA32_X2APIC_LVT_CMCI = 0x82F,
    IA32_X2APIC_ICR = 0x830,
    IA32_X2APIC_LVT_TIMER = 0x832,
    IA32_X2APIC_LVT_THERMAL = 0x833,
    IA32_X2APIC_LVT_PMI = 0x834,
    IA32_X2APIC_LVT_LINT0 = 0x835,
    IA32_X2APIC_LVT_LINT1 = 0x836,
    IA32_X2APIC_LVT_ERROR = 0x837,
    IA32_X2APIC_INIT_COUNT = 0x838,
    IA32_X2APIC_CUR_COUNT = 0x839,
    IA32_X2APIC_DIV_CONF = 0x83E,
    IA32_X2APIC_SELF_IPI = 0x83F,
};

// Error Status Register bits (§11.5.3, Figure 11-9 for x2APIC).
inline constexpr uint32_t kEsrRedirectableIpi = 1u << 4;
inline constexpr uint32_t kEsrSendIllegalVector = 1u << 5;
inline constexpr uint32_t kEsrReceiveIllegalVector = 1u << 6;

// LVT bits (§11.5.1, Figure 11-8).
inline constexpr uint32_t kLvtMasked = 1u << 16;
inline constexpr uint32_t kLvtTimerPeriodic = 1u << 17;
inline constexpr uint32_t kLvtTimerTscDeadline = 2u << 17;

// SVR bit 8: APIC software enable (§11.9, Figure 11-23).
inline constexpr uint32_t kSvrApicEnabled = 1u << 8;

// What an IPI does at its targets (§11.6.1 delivery modes the model sends).
// Lowest priority is not sent (x2APIC sets "redirectable IPI" in the ESR
// instead, §11.5.3); SMI is refused (guests have no SMM).
enum class IpiMode : uint8_t { fixed, nmi, init, startup };

// Who receives an IPI besides the sender. The sender's own share (a fixed
// vector or an NMI aimed at itself) has already been taken by its model, so a
// request never targets the sender; INIT and SIPI aimed at the sender are
// refused by write_msr.
enum class IpiTargets : uint8_t {
    none,                // nothing to route
    physical,            // the vCPU whose x2APIC ID is `destination`
    logical,             // cluster model (§11.12.10.2): destination[31:16] cluster, [15:0] member bitmap
    all_excluding_self,  // every other vCPU of the guest
};

struct IpiRequest {
    IpiTargets targets = IpiTargets::none;
    IpiMode mode = IpiMode::fixed;
    uint8_t vector = 0;        // fixed: the vector; startup: the SIPI vector (start page); else 0
    uint32_t destination = 0;  // physical: x2APIC ID; logical: cluster/bitmap; else 0
    uint32_t sender = 0;       // the sender's x2APIC ID; never a target
};

// Does `req` reach the vCPU whose x2APIC ID is `x2apic_id`? The router calls
// this for each of the guest's vCPUs and then, per target: fixed ->
// accept_interrupt(vector), nmi -> accept_nmi(), init/startup -> its own
// run-state handling (an INIT also calls reset() on the target's CPU).
bool ipi_targets(const IpiRequest& req, uint32_t x2apic_id);

// LDR of an x2APIC ID (§11.12.10.2): cluster ID[19:4] in bits 31:16 and one
// bit, 1 << ID[3:0], in bits 15:0.
constexpr uint32_t x2apic_ldr(uint32_t x2apic_id) {
    return ((x2apic_id >> 4) << 16) | (1u << (x2apic_id & 0xF));
}

class VirtualLapic {
  public:
    static constexpr uint64_t kNoDeadline = UINT64_MAX;
    // VERSION: 0x14 (integrated APIC, as KVM reports), max LVT entry 6
    // (CMCI, timer, thermal, PMI, LINT0, LINT1, error). Bit 24 (EOI-broadcast
    // suppression) is clear: there is no virtual I/O APIC to direct EOIs to,
    // so SVR bit 12 is reserved.
    static constexpr uint32_t kVersion = 0x14 | (6u << 16);
    // A periodic timer fires at most every 100 us (like KVM's
    // min_timer_period_us), so a guest cannot make its CPU exit per TSC tick.
    static constexpr uint64_t kMinPeriodUs = 100;

    // `tsc_hz`: the TSC rate that `now` counts in. `timer_hz`: the timer's
    // input clock before the divide register (§11.5.4: the bus or core
    // crystal clock; equal to tsc_hz if we tell the guest it runs at the TSC
    // rate). Zero rates are taken as 1, and timer_hz is capped at tsc_hz.
    // The ID must not be 0xFFFFFFFF
    // (§11.12.5.1: reserved for broadcast).
    VirtualLapic(uint32_t x2apic_id, uint64_t tsc_hz, uint64_t timer_hz);
    // A placeholder (constant-initialisable, for static storage) until the
    // owner assigns a real one; not a usable APIC.
    constexpr VirtualLapic() : id_(0), tsc_hz_(1), timer_hz_(1), min_period_ticks_(1) {}

    // Power-up and INIT state (§11.4.7.1, §11.4.7.3: INIT resets everything
    // but the ID). The APIC starts software-disabled with every LVT masked.
    void reset();

    // Is `msr` one this model answers (the x2APIC range 0x800-0x8FF, where
    // unlisted addresses #GP, and IA32_TSC_DEADLINE)?
    static bool handles_msr(uint32_t msr);

    // RDMSR/WRMSR. Errors (write-only or reserved register read, read-only
    // register written, reserved bits set, unsupported ICR mode) mean #GP(0);
    // the detail names the register. write_msr resets *out to "none" and, for
    // ICR writes, fills it with what must be routed; `out` must not be null
    // for ICR writes.
    Result<uint64_t> read_msr(uint32_t msr, uint64_t now);
    Result<void> write_msr(uint32_t msr, uint64_t value, uint64_t now, IpiRequest* out);

    // IA32_TSC_DEADLINE (§11.5.4.1). Reads 0 and ignores writes unless the
    // LVT timer is in TSC-deadline mode.
    uint64_t read_tsc_deadline(uint64_t now);
    void write_tsc_deadline(uint64_t value, uint64_t now);

    // ---- Any CPU ----
    // A fixed interrupt arrives (MSI, IPI, self). Sets IRR (and TMR for
    // level). Vectors 0-15 are illegal: ESR "receive illegal vector" is set
    // and nothing is delivered. A software-disabled APIC drops it (§11.4.7.2).
    // Returns whether an IRR bit went from 0 to 1 (the caller kicks the
    // vCPU's CPU); false when dropped or already pending.
    bool accept_interrupt(uint8_t vector, bool level = false);
    // An NMI arrives (accepted even when software-disabled, §11.4.7.2).
    // Returns whether it was not already pending.
    bool accept_nmi();

    // ---- Owner CPU only ----
    // Highest IRR vector whose priority class is above the PPR's (§11.8.3.1), or -1.
    int pending_vector() const;
    // The hypervisor injected `vector`: IRR -> ISR (§11.8.4). False if it was not pending.
    bool ack(uint8_t vector);
    // EOI (§11.8.5): clears the highest ISR bit. Returns that vector or -1.
    // (A TMR-set vector is where a future virtual I/O APIC gets its EOI.)
    int eoi();
    bool nmi_pending() const { return __atomic_load_n(&nmi_pending_, __ATOMIC_SEQ_CST) != 0; }
    // Is anything at all waiting (an NMI, an IRR bit, deliverable or not)?
    // Inline, two loads: every VM entry asks, and nearly always nothing is.
    bool maybe_pending() const {
        return (__atomic_load_n(&irr_summary_, __ATOMIC_SEQ_CST) | __atomic_load_n(&nmi_pending_, __ATOMIC_SEQ_CST)) !=
               0;
    }
    // Takes the pending NMI, if any, for injection.
    bool take_nmi();

    // TSC value of the next timer expiry, or kNoDeadline (stopped or masked:
    // a masked timer's expiries are accounted lazily, without interrupts).
    uint64_t next_deadline() const;
    // Process timer expiries up to `now`: one-shot stops, periodic re-arms on
    // its original phase (no drift; one interrupt however late), TSC-deadline
    // clears IA32_TSC_DEADLINE. A masked LVT timer gets no interrupt.
    void tick(uint64_t now);

    uint32_t x2apic_id() const { return id_; }
    uint32_t ldr() const { return x2apic_ldr(id_); }
    bool software_enabled() const;
    uint8_t tpr() const { return tpr_; }
    // CR8 writes land here: TPR = CR8 << 4 (SDM Vol. 3A §11.8.6.1).
    void set_tpr(uint8_t tpr) { tpr_ = tpr; }
    // PPR from TPR and the highest in-service vector (§11.8.3.1).
    uint8_t ppr() const;

  private:
    enum Lvt : uint8_t { kLvtCmci, kLvtTimer, kLvtThermal, kLvtPmi, kLvtLint0, kLvtLint1, kLvtError, kLvtCount };

    Result<void> write_icr(uint64_t value, IpiRequest* out);
    void write_lvt(Lvt which, uint32_t value, uint64_t now);
    void write_svr(uint32_t value, uint64_t now);
    void write_divide(uint32_t value, uint64_t now);
    void write_initial_count(uint32_t value, uint64_t now);
    uint32_t current_count(uint64_t now) const;

    // Timer internals. Time in the timer's input clock ("ticks") counts from
    // timer_start_ (a TSC value); see vlapic.cpp.
    uint32_t timer_mode() const;
    uint32_t divisor() const;
    void arm_countdown(uint32_t count, uint64_t now);
    void disarm_timer();
    void advance(uint64_t now);
    void fire_timer();
    uint64_t ticks_since(uint64_t start, uint64_t now) const;
    uint64_t ticks_to_tsc(uint64_t ticks) const;

    void record_error(uint32_t esr_bits);
    bool set_irr(uint8_t vector, bool level);
    uint32_t lvt(Lvt which) const;
    void set_lvt(Lvt which, uint32_t value);
    int highest_isr() const;

    uint32_t id_;
    uint64_t tsc_hz_;
    uint64_t timer_hz_;
    uint64_t min_period_ticks_;

    // Shared with other CPUs: atomic access only.
    uint32_t irr_[8] = {};
    uint32_t irr_summary_ = 0;  // bit w: irr_[w] may be non-zero (never clear while it is)
    uint32_t tmr_[8] = {};
    uint32_t esr_pending_ = 0;  // errors since the last ESR write
    uint32_t nmi_pending_ = 0;
    uint32_t svr_ = 0;              // read by accept_interrupt
    uint32_t lvt_[kLvtCount] = {};  // LVT error read by record_error

    // Owner only.
    uint32_t isr_[8] = {};
    uint8_t tpr_ = 0;
    uint32_t esr_ = 0;  // latched by the last ESR write
    uint64_t icr_ = 0;
    uint32_t divide_config_ = 0;
    uint32_t initial_count_ = 0;
    uint64_t tsc_deadline_ = 0;  // 0: disarmed

    bool timer_armed_ = false;        // one-shot/periodic countdown running
    uint64_t timer_start_ = 0;        // TSC when the countdown (re)started
    uint32_t timer_first_count_ = 0;  // count loaded at timer_start_
    uint32_t timer_div_ = 1;          // divisor in force since timer_start_
    uint64_t timer_period_ = 0;       // periodic: ticks per period after the first expiry
    uint64_t timer_expiries_ = 0;     // expiries accounted since timer_start_
};

}  // namespace hv::vdev
