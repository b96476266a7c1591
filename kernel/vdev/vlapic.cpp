#include "kernel/vdev/vlapic.hpp"

namespace hv::vdev {

namespace {

// ---- Register map (SDM Vol. 3A §11.12.1.2, Table 11-6) ----

enum class Access : uint8_t { ro, rw, wo };

// One x2APIC register: how it may be accessed, which bits a WRMSR may set
// (`writable`), which it may set but are ignored (`ignored`: read-only status
// bits such as LVT delivery status, which software writes back unchanged).
// Every other bit is reserved: §11.12.1.3, a non-zero write to it is #GP.
// The upper 32 bits are reserved for every register but the ICR.
struct Reg {
    uint32_t msr;
    Access access;
    uint64_t writable;
    uint64_t ignored;
    const char* ro_error;
    const char* wo_error;
    const char* rsvd_error;
};

#define HV_X2APIC_REG(msr, name, access, writable, ignored)                                   \
    Reg {                                                                                     \
        msr, access, writable, ignored, "x2APIC " name ": read-only register written",        \
            "x2APIC " name ": write-only register read", "x2APIC " name ": reserved bits set" \
    }

// LVT layouts (§11.5.1, Figure 11-8): vector 7:0, delivery mode 10:8,
// delivery status 12 (RO), polarity 13, remote IRR 14 (RO), trigger 15,
// mask 16, timer mode 18:17.
constexpr uint64_t kLvtWithMode = 0x107FF;   // CMCI, thermal, PMI: vector, delivery mode, mask
constexpr uint64_t kLvtTimerBits = 0x700FF;  // vector, mask, timer mode
constexpr uint64_t kLvtLintBits = 0x1A7FF;   // + polarity, trigger mode
constexpr uint64_t kLvtErrorBits = 0x100FF;  // vector, mask
constexpr uint64_t kDeliveryStatus = 1u << 12;
constexpr uint64_t kRemoteIrr = 1u << 14;
constexpr uint32_t kTimerModeMask = 3u << 17;

// ICR in x2APIC mode (§11.12.9, Figure 11-28): vector 7:0, delivery mode
// 10:8, destination mode 11, level 14, trigger 15, shorthand 19:18,
// destination 63:32. Bit 12 (delivery status) is ignored on writes.
constexpr uint64_t kIcrWritable = 0xFFFFFFFF000CCFFFull;

constexpr Reg kRegs[] = {
    HV_X2APIC_REG(IA32_X2APIC_APICID, "ID", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_VERSION, "VERSION", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_TPR, "TPR", Access::rw, 0xFF, 0),
    HV_X2APIC_REG(IA32_X2APIC_PPR, "PPR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_EOI, "EOI", Access::wo, 0, 0),  // only 0 may be written
    HV_X2APIC_REG(IA32_X2APIC_LDR, "LDR", Access::ro, 0, 0),
    // Vector, software enable, focus-processor checking (stored, no effect:
    // there is no lowest-priority arbitration). Bit 12 needs VERSION bit 24.
    HV_X2APIC_REG(IA32_X2APIC_SIVR, "SVR", Access::rw, 0x3FF, 0),
    HV_X2APIC_REG(IA32_X2APIC_ISR0 + 0, "ISR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_ISR0 + 1, "ISR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_ISR0 + 2, "ISR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_ISR0 + 3, "ISR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_ISR0 + 4, "ISR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_ISR0 + 5, "ISR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_ISR0 + 6, "ISR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_ISR0 + 7, "ISR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_TMR0 + 0, "TMR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_TMR0 + 1, "TMR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_TMR0 + 2, "TMR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_TMR0 + 3, "TMR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_TMR0 + 4, "TMR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_TMR0 + 5, "TMR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_TMR0 + 6, "TMR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_TMR0 + 7, "TMR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_IRR0 + 0, "IRR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_IRR0 + 1, "IRR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_IRR0 + 2, "IRR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_IRR0 + 3, "IRR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_IRR0 + 4, "IRR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_IRR0 + 5, "IRR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_IRR0 + 6, "IRR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_IRR0 + 7, "IRR", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_ESR, "ESR", Access::rw, 0, 0),  // only 0 may be written
    HV_X2APIC_REG(IA32_X2APIC_LVT_CMCI, "LVT CMCI", Access::rw, kLvtWithMode, kDeliveryStatus),
    HV_X2APIC_REG(IA32_X2APIC_ICR, "ICR", Access::rw, kIcrWritable, kDeliveryStatus),
    HV_X2APIC_REG(IA32_X2APIC_LVT_TIMER, "LVT timer", Access::rw, kLvtTimerBits, kDeliveryStatus),
    HV_X2APIC_REG(IA32_X2APIC_LVT_THERMAL, "LVT thermal", Access::rw, kLvtWithMode, kDeliveryStatus),
    HV_X2APIC_REG(IA32_X2APIC_LVT_PMI, "LVT PMI", Access::rw, kLvtWithMode, kDeliveryStatus),
    HV_X2APIC_REG(IA32_X2APIC_LVT_LINT0, "LVT LINT0", Access::rw, kLvtLintBits, kDeliveryStatus | kRemoteIrr),
    HV_X2APIC_REG(IA32_X2APIC_LVT_LINT1, "LVT LINT1", Access::rw, kLvtLintBits, kDeliveryStatus | kRemoteIrr),
    HV_X2APIC_REG(IA32_X2APIC_LVT_ERROR, "LVT error", Access::rw, kLvtErrorBits, kDeliveryStatus),
    HV_X2APIC_REG(IA32_X2APIC_INIT_COUNT, "timer initial count", Access::rw, 0xFFFFFFFF, 0),
    HV_X2APIC_REG(IA32_X2APIC_CUR_COUNT, "timer current count", Access::ro, 0, 0),
    HV_X2APIC_REG(IA32_X2APIC_DIV_CONF, "timer divide configuration", Access::rw, 0xB, 0),  // bits 0, 1, 3
    HV_X2APIC_REG(IA32_X2APIC_SELF_IPI, "SELF IPI", Access::wo, 0xFF, 0),
};

#undef HV_X2APIC_REG

const Reg* find_reg(uint32_t msr) {
    for (const Reg& r : kRegs) {
        if (r.msr == msr) return &r;
    }
    return nullptr;
}

constexpr uint32_t kX2apicFirst = 0x800;
constexpr uint32_t kX2apicLast = 0x8FF;

// ICR fields (§11.6.1, §11.12.9).
enum IcrDeliveryMode : uint8_t {
    ICR_FIXED = 0,
    ICR_LOWEST_PRIORITY = 1,
    ICR_SMI = 2,
    ICR_NMI = 4,
    ICR_INIT = 5,
    ICR_STARTUP = 6,
};
enum IcrShorthand : uint8_t {
    ICR_NO_SHORTHAND = 0,
    ICR_SELF = 1,
    ICR_ALL_INCLUDING_SELF = 2,
    ICR_ALL_EXCLUDING_SELF = 3
};
constexpr uint64_t kIcrLogical = 1u << 11;
constexpr uint64_t kIcrLevelAssert = 1u << 14;
constexpr uint64_t kIcrTriggerLevel = 1u << 15;
constexpr uint32_t kBroadcast = 0xFFFFFFFF;  // §11.12.9: broadcast in both destination modes

bool logical_match(uint32_t ldr, uint32_t destination) {
    // §11.12.10.2: same cluster, and the member bitmap includes us.
    return (ldr >> 16) == (destination >> 16) && (ldr & destination & 0xFFFF) != 0;
}

constexpr uint8_t priority_class(uint32_t vector) {
    return static_cast<uint8_t>(vector & 0xF0);
}

int highest_bit(const uint32_t* words, bool atomic) {
    for (int w = 7; w >= 0; --w) {
        const uint32_t v = atomic ? __atomic_load_n(&words[w], __ATOMIC_SEQ_CST) : words[w];
        if (v != 0) return w * 32 + 31 - __builtin_clz(v);
    }
    return -1;
}

// floor or ceil of a * b / c, saturating at UINT64_MAX. The 128-bit product
// is divided by shift-and-subtract: the kernel has no libgcc for __int128
// division, and timer arithmetic is rare enough not to need more.
uint64_t mul_div(uint64_t a, uint64_t b, uint64_t c, bool round_up) {
    if (b == c) return a;
    const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
    const uint64_t hi = static_cast<uint64_t>(p >> 64);
    const uint64_t lo = static_cast<uint64_t>(p);
    uint64_t q;
    uint64_t rem;
    if (hi == 0) {
        q = lo / c;
        rem = lo % c;
    } else {
        if (hi >= c) return UINT64_MAX;  // the quotient needs more than 64 bits
        q = 0;
        rem = hi;
        for (int i = 63; i >= 0; --i) {
            const bool carry = (rem >> 63) != 0;
            rem = (rem << 1) | ((lo >> i) & 1);
            q <<= 1;
            if (carry || rem >= c) {
                rem -= c;  // exact mod 2^64: the true remainder is below c
                q |= 1;
            }
        }
    }
    if (round_up && rem != 0) q = q == UINT64_MAX ? q : q + 1;
    return q;
}

uint64_t sat_add(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

uint64_t sat_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

}  // namespace

bool ipi_targets(const IpiRequest& req, uint32_t x2apic_id) {
    if (x2apic_id == req.sender) return false;
    switch (req.targets) {
        case IpiTargets::none: return false;
        case IpiTargets::physical: return x2apic_id == req.destination;
        case IpiTargets::logical: return logical_match(x2apic_ldr(x2apic_id), req.destination);
        case IpiTargets::all_excluding_self: return true;
    }
    return false;
}

VirtualLapic::VirtualLapic(uint32_t x2apic_id, uint64_t tsc_hz, uint64_t timer_hz)
    : id_(x2apic_id), tsc_hz_(tsc_hz ? tsc_hz : 1), timer_hz_(timer_hz ? timer_hz : 1) {
    // The bus or crystal clock never outruns the TSC; capping it keeps tick
    // counts within 64 bits for any TSC span.
    if (timer_hz_ > tsc_hz_) timer_hz_ = tsc_hz_;
    min_period_ticks_ = timer_hz_ / (1000000 / kMinPeriodUs);
    if (min_period_ticks_ == 0) min_period_ticks_ = 1;
    reset();
}

void VirtualLapic::reset() {
    // §11.4.7.1: IRR, ISR, TMR, ICR, LDR, TPR, timer registers zero; LVTs
    // masked; SVR 0xFF (software-disabled).
    for (int i = 0; i < 8; ++i) {
        __atomic_store_n(&irr_[i], 0u, __ATOMIC_SEQ_CST);
        __atomic_store_n(&tmr_[i], 0u, __ATOMIC_SEQ_CST);
        isr_[i] = 0;
    }
    __atomic_store_n(&irr_summary_, 0u, __ATOMIC_SEQ_CST);
    __atomic_store_n(&esr_pending_, 0u, __ATOMIC_SEQ_CST);
    __atomic_store_n(&nmi_pending_, 0u, __ATOMIC_SEQ_CST);
    __atomic_store_n(&svr_, 0xFFu, __ATOMIC_SEQ_CST);
    for (int i = 0; i < kLvtCount; ++i) set_lvt(static_cast<Lvt>(i), kLvtMasked);
    tpr_ = 0;
    esr_ = 0;
    icr_ = 0;
    divide_config_ = 0;
    initial_count_ = 0;
    tsc_deadline_ = 0;
    timer_armed_ = false;
    timer_start_ = 0;
    timer_first_count_ = 0;
    timer_div_ = divisor();
    timer_period_ = 0;
    timer_expiries_ = 0;
}

bool VirtualLapic::handles_msr(uint32_t msr) {
    return msr == IA32_TSC_DEADLINE || (msr >= kX2apicFirst && msr <= kX2apicLast);
}

uint32_t VirtualLapic::lvt(Lvt which) const {
    return __atomic_load_n(&lvt_[which], __ATOMIC_RELAXED);
}

void VirtualLapic::set_lvt(Lvt which, uint32_t value) {
    __atomic_store_n(&lvt_[which], value, __ATOMIC_RELAXED);
}

bool VirtualLapic::software_enabled() const {
    return (__atomic_load_n(&svr_, __ATOMIC_RELAXED) & kSvrApicEnabled) != 0;
}

// ---- Registers ----

Result<uint64_t> VirtualLapic::read_msr(uint32_t msr, uint64_t now) {
    if (msr == IA32_TSC_DEADLINE) return read_tsc_deadline(now);
    const Reg* reg = find_reg(msr);
    if (reg == nullptr) return make_error(Errc::invalid_argument, "x2APIC: reserved register", msr);
    if (reg->access == Access::wo) return make_error(Errc::invalid_argument, reg->wo_error, msr);

    switch (msr) {
        case IA32_X2APIC_APICID: return uint64_t{id_};
        case IA32_X2APIC_VERSION: return uint64_t{kVersion};
        case IA32_X2APIC_TPR: return uint64_t{tpr_};
        case IA32_X2APIC_PPR: return uint64_t{ppr()};
        case IA32_X2APIC_LDR: return uint64_t{ldr()};
        case IA32_X2APIC_SIVR: return uint64_t{__atomic_load_n(&svr_, __ATOMIC_RELAXED)};
        case IA32_X2APIC_ESR: return uint64_t{esr_};
        case IA32_X2APIC_LVT_CMCI: return uint64_t{lvt(kLvtCmci)};
        case IA32_X2APIC_ICR: return icr_;
        case IA32_X2APIC_LVT_TIMER: return uint64_t{lvt(kLvtTimer)};
        case IA32_X2APIC_LVT_THERMAL: return uint64_t{lvt(kLvtThermal)};
        case IA32_X2APIC_LVT_PMI: return uint64_t{lvt(kLvtPmi)};
        case IA32_X2APIC_LVT_LINT0: return uint64_t{lvt(kLvtLint0)};
        case IA32_X2APIC_LVT_LINT1: return uint64_t{lvt(kLvtLint1)};
        case IA32_X2APIC_LVT_ERROR: return uint64_t{lvt(kLvtError)};
        case IA32_X2APIC_INIT_COUNT: return uint64_t{initial_count_};
        case IA32_X2APIC_CUR_COUNT: return uint64_t{current_count(now)};
        case IA32_X2APIC_DIV_CONF: return uint64_t{divide_config_};
        default: break;
    }
    const uint32_t word = (msr - IA32_X2APIC_ISR0) % 8;
    if (msr >= IA32_X2APIC_IRR0) return uint64_t{__atomic_load_n(&irr_[word], __ATOMIC_SEQ_CST)};
    if (msr >= IA32_X2APIC_TMR0) return uint64_t{__atomic_load_n(&tmr_[word], __ATOMIC_SEQ_CST)};
    return uint64_t{isr_[word]};
}

Result<void> VirtualLapic::write_msr(uint32_t msr, uint64_t value, uint64_t now, IpiRequest* out) {
    if (out != nullptr) *out = IpiRequest{};
    if (msr == IA32_TSC_DEADLINE) {
        write_tsc_deadline(value, now);
        return {};
    }
    const Reg* reg = find_reg(msr);
    if (reg == nullptr) return make_error(Errc::invalid_argument, "x2APIC: reserved register", msr);
    if (reg->access == Access::ro) return make_error(Errc::invalid_argument, reg->ro_error, msr);
    if ((value & ~(reg->writable | reg->ignored)) != 0) {
        return make_error(Errc::invalid_argument, reg->rsvd_error, value);
    }
    const uint32_t v32 = static_cast<uint32_t>(value & reg->writable);
    // §11.5.1, Figure 11-8: timer mode 11b is reserved.
    if (msr == IA32_X2APIC_LVT_TIMER && (v32 & kTimerModeMask) == kTimerModeMask) {
        return make_error(Errc::invalid_argument, "x2APIC LVT timer: reserved timer mode 11b", value);
    }

    switch (msr) {
        case IA32_X2APIC_TPR: tpr_ = static_cast<uint8_t>(v32); return {};
        case IA32_X2APIC_EOI: eoi(); return {};
        case IA32_X2APIC_SIVR: write_svr(v32, now); return {};
        case IA32_X2APIC_ESR:
            // §11.5.3: the write latches the errors seen since the last one
            // and re-arms the error interrupt.
            esr_ = __atomic_exchange_n(&esr_pending_, 0u, __ATOMIC_SEQ_CST);
            return {};
        case IA32_X2APIC_LVT_CMCI: write_lvt(kLvtCmci, v32, now); return {};
        case IA32_X2APIC_ICR: return write_icr(value & reg->writable, out);
        case IA32_X2APIC_LVT_TIMER: write_lvt(kLvtTimer, v32, now); return {};
        case IA32_X2APIC_LVT_THERMAL: write_lvt(kLvtThermal, v32, now); return {};
        case IA32_X2APIC_LVT_PMI: write_lvt(kLvtPmi, v32, now); return {};
        case IA32_X2APIC_LVT_LINT0: write_lvt(kLvtLint0, v32, now); return {};
        case IA32_X2APIC_LVT_LINT1: write_lvt(kLvtLint1, v32, now); return {};
        case IA32_X2APIC_LVT_ERROR: write_lvt(kLvtError, v32, now); return {};
        case IA32_X2APIC_INIT_COUNT: write_initial_count(v32, now); return {};
        case IA32_X2APIC_DIV_CONF: write_divide(v32, now); return {};
        case IA32_X2APIC_SELF_IPI: {
            // §11.12.11: as if received from the bus; an illegal vector is
            // a send error and nothing is delivered.
            const uint8_t vector = static_cast<uint8_t>(v32);
            if (vector < 16)
                record_error(kEsrSendIllegalVector);
            else
                accept_interrupt(vector);
            return {};
        }
        default: break;
    }
    return make_error(Errc::invalid_argument, reg->ro_error, msr);  // not reached: the table covers every case
}

void VirtualLapic::write_svr(uint32_t value, uint64_t now) {
    if (!(value & kSvrApicEnabled)) {
        // §11.4.7.2: software disable masks every LVT entry. Expiries due
        // before now still count under the old mask.
        advance(now);
        for (int i = 0; i < kLvtCount; ++i) set_lvt(static_cast<Lvt>(i), lvt(static_cast<Lvt>(i)) | kLvtMasked);
    }
    __atomic_store_n(&svr_, value, __ATOMIC_RELAXED);
}

void VirtualLapic::write_lvt(Lvt which, uint32_t value, uint64_t now) {
    // §11.4.7.2: while software-disabled the mask bits cannot be cleared.
    if (!software_enabled()) value |= kLvtMasked;
    if (which == kLvtTimer) {
        advance(now);  // expiries up to now happen under the old mask and mode
        // §11.5.4.1: a write that changes the timer mode disarms the timer.
        if ((value & kTimerModeMask) != timer_mode()) {
            disarm_timer();
            initial_count_ = 0;
            tsc_deadline_ = 0;
        }
    }
    set_lvt(which, value);
}

uint32_t VirtualLapic::timer_mode() const {
    return lvt(kLvtTimer) & kTimerModeMask;
}

// ---- ICR (§11.6.1, §11.12.9) ----

Result<void> VirtualLapic::write_icr(uint64_t value, IpiRequest* out) {
    if (out == nullptr) return make_error(Errc::invalid_argument, "x2APIC ICR: no IpiRequest to fill");
    const uint8_t vector = static_cast<uint8_t>(value);
    const uint8_t mode = static_cast<uint8_t>((value >> 8) & 7);
    const uint8_t shorthand = static_cast<uint8_t>((value >> 18) & 3);
    const uint32_t destination = static_cast<uint32_t>(value >> 32);

    switch (mode) {
        case ICR_FIXED:
        case ICR_NMI:
        case ICR_INIT:
        case ICR_STARTUP: break;
        case ICR_LOWEST_PRIORITY:
            // §11.5.3 (x2APIC): "redirectable IPI" is logged and the IPI is
            // not sent; this takes precedence over an illegal vector.
            icr_ = value;
            record_error(kEsrRedirectableIpi);
            return {};
        case ICR_SMI: return make_error(Errc::unsupported, "x2APIC ICR: SMI delivery mode (guests have no SMM)", value);
        default: return make_error(Errc::invalid_argument, "x2APIC ICR: reserved delivery mode", value);
    }
    // Table 11-3: the self and all-including-self shorthands are valid only
    // with fixed delivery.
    if ((shorthand == ICR_SELF || shorthand == ICR_ALL_INCLUDING_SELF) && mode != ICR_FIXED) {
        return make_error(Errc::invalid_argument,
                          "x2APIC ICR: self/all-including-self shorthand with non-fixed delivery", value);
    }

    // Work out whether we are a target and who else is.
    bool self = false;
    IpiRequest req;
    req.sender = id_;
    switch (shorthand) {
        case ICR_SELF: self = true; break;
        case ICR_ALL_INCLUDING_SELF:
            self = true;
            req.targets = IpiTargets::all_excluding_self;
            break;
        case ICR_ALL_EXCLUDING_SELF: req.targets = IpiTargets::all_excluding_self; break;
        default:
            if (destination == kBroadcast) {
                self = true;
                req.targets = IpiTargets::all_excluding_self;
            } else if (value & kIcrLogical) {
                self = logical_match(ldr(), destination);
                if ((destination & 0xFFFF) != 0) {
                    req.targets = IpiTargets::logical;
                    req.destination = destination;
                }
            } else if (destination == id_) {
                self = true;
            } else {
                req.targets = IpiTargets::physical;
                req.destination = destination;
            }
            break;
    }

    if (mode == ICR_INIT || mode == ICR_STARTUP) {
        // INIT level de-assert (level 0, trigger level) only synchronises
        // arbitration IDs on old parts; Linux still sends it. It does nothing.
        if (mode == ICR_INIT && !(value & kIcrLevelAssert) && (value & kIcrTriggerLevel)) {
            icr_ = value;
            return {};
        }
        // The hypervisor resets/starts vCPUs other than the running one; a
        // vCPU sending INIT or SIPI to itself is refused rather than guessed at.
        if (self) return make_error(Errc::invalid_argument, "x2APIC ICR: INIT/SIPI aimed at the sender", value);
    }
    if (mode == ICR_FIXED && vector < 16) {
        // §11.5.3: send illegal vector; nothing is sent.
        icr_ = value;
        record_error(kEsrSendIllegalVector);
        return {};
    }

    icr_ = value;
    // Level-triggered IPIs are sent as edge (Table 11-3, note 2).
    if (self) {
        if (mode == ICR_FIXED)
            accept_interrupt(vector);
        else
            accept_nmi();
    }
    if (req.targets != IpiTargets::none) {
        switch (mode) {
            case ICR_FIXED:
                req.mode = IpiMode::fixed;
                req.vector = vector;
                break;
            case ICR_NMI: req.mode = IpiMode::nmi; break;
            case ICR_INIT: req.mode = IpiMode::init; break;
            default:
                req.mode = IpiMode::startup;
                req.vector = vector;
                break;
        }
        *out = req;
    }
    return {};
}

// ---- Interrupt acceptance, priority, EOI (§11.8) ----

bool VirtualLapic::set_irr(uint8_t vector, bool level) {
    const uint32_t bit = 1u << (vector & 31);
    const int word = vector >> 5;
    // §11.8.4: TMR follows the trigger mode of the accepted interrupt. It is
    // published before IRR so whoever sees the IRR bit sees the right TMR.
    if (level)
        __atomic_fetch_or(&tmr_[word], bit, __ATOMIC_RELAXED);
    else
        __atomic_fetch_and(&tmr_[word], ~bit, __ATOMIC_RELAXED);
    const uint32_t old = __atomic_fetch_or(&irr_[word], bit, __ATOMIC_SEQ_CST);
    // After the IRR bit: whoever sees the summary bit finds the IRR bit.
    __atomic_fetch_or(&irr_summary_, 1u << word, __ATOMIC_SEQ_CST);
    return (old & bit) == 0;
}

bool VirtualLapic::accept_interrupt(uint8_t vector, bool level) {
    if (vector < 16) {
        record_error(kEsrReceiveIllegalVector);
        return false;
    }
    if (!software_enabled()) return false;
    return set_irr(vector, level);
}

bool VirtualLapic::accept_nmi() {
    return __atomic_exchange_n(&nmi_pending_, 1u, __ATOMIC_SEQ_CST) == 0;
}

bool VirtualLapic::take_nmi() {
    return __atomic_exchange_n(&nmi_pending_, 0u, __ATOMIC_SEQ_CST) != 0;
}

void VirtualLapic::record_error(uint32_t esr_bits) {
    // §11.5.3: errors accumulate until software writes the ESR; the error
    // interrupt fires for the first one and is re-armed by that write.
    const uint32_t old = __atomic_fetch_or(&esr_pending_, esr_bits, __ATOMIC_SEQ_CST);
    if (old != 0) return;
    const uint32_t entry = lvt(kLvtError);
    if (entry & kLvtMasked) return;
    const uint8_t vector = static_cast<uint8_t>(entry);
    if (vector < 16) {
        __atomic_fetch_or(&esr_pending_, kEsrReceiveIllegalVector, __ATOMIC_SEQ_CST);
        return;
    }
    if (software_enabled()) set_irr(vector, false);
}

int VirtualLapic::highest_isr() const {
    return highest_bit(isr_, false);
}

uint8_t VirtualLapic::ppr() const {
    // §11.8.3.1: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4.
    const int isrv = highest_isr();
    const uint8_t isr_class = isrv < 0 ? 0 : priority_class(static_cast<uint32_t>(isrv));
    return priority_class(tpr_) >= isr_class ? tpr_ : isr_class;
}

int VirtualLapic::pending_vector() const {
    // Every VM entry asks; nearly always nothing is pending, so one load
    // answers instead of a scan of the eight IRR words.
    if (__atomic_load_n(&irr_summary_, __ATOMIC_SEQ_CST) == 0) return -1;
    const int irrv = highest_bit(irr_, true);
    if (irrv < 0) return -1;
    // §11.8.3.1: only a priority class above the PPR's is delivered; lower
    // IRR bits have no higher class, so the highest one decides.
    if (priority_class(static_cast<uint32_t>(irrv)) <= priority_class(ppr())) return -1;
    return irrv;
}

bool VirtualLapic::ack(uint8_t vector) {
    const uint32_t bit = 1u << (vector & 31);
    const int word = vector >> 5;
    const uint32_t old = __atomic_fetch_and(&irr_[word], ~bit, __ATOMIC_SEQ_CST);
    if (!(old & bit)) return false;
    if ((old & ~bit) == 0) {
        // The word may be empty now: clear its summary bit, then look again,
        // since another CPU may have set an IRR bit there in between (its
        // summary update could have come before our clear).
        __atomic_fetch_and(&irr_summary_, ~(1u << word), __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&irr_[word], __ATOMIC_SEQ_CST) != 0)
            __atomic_fetch_or(&irr_summary_, 1u << word, __ATOMIC_SEQ_CST);
    }
    isr_[word] |= bit;
    return true;
}

int VirtualLapic::eoi() {
    const int v = highest_isr();
    if (v < 0) return -1;  // §11.8.5: an EOI with nothing in service does nothing
    isr_[v >> 5] &= ~(1u << (v & 31));
    return v;
}

// ---- Timer (§11.5.4) ----
//
// A one-shot or periodic countdown is kept as: the TSC value it started at,
// the count loaded then (initial count, or the current count when the divide
// register changed mid-run), and the divisor. Expiry k (k = 0, 1, ...) is due
// first_count * div + k * period ticks of the input clock after the start;
// its TSC value is rounded up, so an expiry is due exactly when the
// current count reads 0. Everything is computed from the start, so a
// periodic timer keeps its phase (no drift) however late tick() runs.

uint32_t VirtualLapic::divisor() const {
    // §11.5.4, Figure 11-10: bits 3,1:0; 111 = 1, otherwise 2 << value.
    const uint32_t v = ((divide_config_ >> 1) & 4) | (divide_config_ & 3);
    return v == 7 ? 1 : 2u << v;
}

uint64_t VirtualLapic::ticks_since(uint64_t start, uint64_t now) const {
    if (now <= start) return 0;
    return mul_div(now - start, timer_hz_, tsc_hz_, false);
}

uint64_t VirtualLapic::ticks_to_tsc(uint64_t ticks) const {
    return mul_div(ticks, tsc_hz_, timer_hz_, true);
}

void VirtualLapic::disarm_timer() {
    timer_armed_ = false;
    timer_first_count_ = 0;
    timer_period_ = 0;
    timer_expiries_ = 0;
}

void VirtualLapic::arm_countdown(uint32_t count, uint64_t now) {
    timer_div_ = divisor();
    timer_start_ = now;
    timer_first_count_ = count;
    timer_expiries_ = 0;
    timer_period_ = 0;
    if (timer_mode() == kLvtTimerPeriodic) {
        timer_period_ = uint64_t{initial_count_} * timer_div_;
        if (timer_period_ < min_period_ticks_) timer_period_ = min_period_ticks_;
    }
    timer_armed_ = count != 0;
}

void VirtualLapic::write_initial_count(uint32_t value, uint64_t now) {
    // §11.5.4.1: ignored in TSC-deadline mode.
    if (timer_mode() == kLvtTimerTscDeadline) return;
    advance(now);
    initial_count_ = value;
    // §11.5.4: a write restarts the countdown; 0 stops the timer.
    arm_countdown(value, now);
}

void VirtualLapic::write_divide(uint32_t value, uint64_t now) {
    advance(now);
    const uint32_t count = current_count(now);
    divide_config_ = value;
    // The SDM leaves a divisor change mid-count open; like KVM, the count left
    // now continues at the new rate (and later periods use it too).
    if (timer_armed_)
        arm_countdown(count != 0 ? count : initial_count_, now);
    else
        timer_div_ = divisor();
}

uint32_t VirtualLapic::current_count(uint64_t now) const {
    // §11.5.4.1: reads 0 in TSC-deadline mode.
    if (timer_mode() == kLvtTimerTscDeadline || !timer_armed_) return 0;
    const uint64_t ticks = ticks_since(timer_start_, now);
    const uint64_t first = uint64_t{timer_first_count_} * timer_div_;
    if (ticks < first) return timer_first_count_ - static_cast<uint32_t>(ticks / timer_div_);
    if (timer_period_ == 0) return 0;  // one-shot, expired but not yet ticked
    // Periodic: reloaded from the initial count at each expiry. With a period
    // stretched to the minimum, the count rests at 0 for the extra time.
    const uint64_t into = (ticks - first) % timer_period_;
    const uint64_t done = into / timer_div_;
    return done >= initial_count_ ? 0 : initial_count_ - static_cast<uint32_t>(done);
}

uint64_t VirtualLapic::read_tsc_deadline(uint64_t now) {
    if (timer_mode() != kLvtTimerTscDeadline) return 0;
    advance(now);
    return tsc_deadline_;
}

void VirtualLapic::write_tsc_deadline(uint64_t value, uint64_t now) {
    if (timer_mode() != kLvtTimerTscDeadline) return;
    // §11.5.4.1: non-zero arms (a deadline already passed fires at once), 0 disarms.
    tsc_deadline_ = value;
    advance(now);
}

uint64_t VirtualLapic::next_deadline() const {
    if (lvt(kLvtTimer) & kLvtMasked) return kNoDeadline;
    if (timer_mode() == kLvtTimerTscDeadline) return tsc_deadline_ != 0 ? tsc_deadline_ : kNoDeadline;
    if (!timer_armed_) return kNoDeadline;
    const uint64_t due = sat_add(uint64_t{timer_first_count_} * timer_div_, sat_mul(timer_expiries_, timer_period_));
    return sat_add(timer_start_, ticks_to_tsc(due));
}

void VirtualLapic::tick(uint64_t now) {
    advance(now);
}

void VirtualLapic::advance(uint64_t now) {
    if (timer_mode() == kLvtTimerTscDeadline) {
        if (tsc_deadline_ != 0 && now >= tsc_deadline_) {
            tsc_deadline_ = 0;  // §11.5.4.1: firing disarms and clears the MSR
            fire_timer();
        }
        return;
    }
    if (!timer_armed_) return;
    const uint64_t ticks = ticks_since(timer_start_, now);
    const uint64_t first = uint64_t{timer_first_count_} * timer_div_;
    if (ticks < first) return;
    if (timer_period_ == 0) {
        timer_armed_ = false;  // one-shot: stays at 0 until reprogrammed
        fire_timer();
        return;
    }
    // Periodic: expiries due by now; however many were missed, the IRR bit
    // makes them one interrupt.
    const uint64_t due = (ticks - first) / timer_period_ + 1;
    if (due > timer_expiries_) {
        timer_expiries_ = due;
        fire_timer();
    }
}

void VirtualLapic::fire_timer() {
    const uint32_t entry = lvt(kLvtTimer);
    if (entry & kLvtMasked) return;
    // §11.5.3: an illegal vector in an LVT entry is a receive error.
    accept_interrupt(static_cast<uint8_t>(entry));
}

}  // namespace hv::vdev
