// The virtual x2APIC: register map and reset values (SDM Vol. 3A Table 11-6,
// §11.4.7.1), faulting accesses, TPR/PPR and interrupt acceptance (§11.8),
// EOI, ESR, software disable, the timer in its three modes (§11.5.4), ICR
// encodings (§11.6.1, §11.12.9) and concurrent interrupt senders.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "kernel/vdev/vlapic.hpp"

using namespace hv::vdev;

namespace {

// 1 MHz TSC and timer clock: one tick per TSC unit, a 100-tick minimum period.
constexpr uint64_t kHz = 1'000'000;

uint64_t rd(VirtualLapic& l, uint32_t msr, uint64_t now = 0) {
    auto r = l.read_msr(msr, now);
    EXPECT_TRUE(r.ok()) << std::hex << msr << " " << (r.ok() ? "" : r.error().detail);
    return r.ok() ? *r : ~0ull;
}

void wr(VirtualLapic& l, uint32_t msr, uint64_t value, uint64_t now = 0, IpiRequest* out = nullptr) {
    IpiRequest scratch;
    auto r = l.write_msr(msr, value, now, out ? out : &scratch);
    EXPECT_TRUE(r.ok()) << std::hex << msr << "=" << value << " " << (r.ok() ? "" : r.error().detail);
}

// Software-enabled, spurious vector 0xFF, as every guest sets it up first.
VirtualLapic enabled(uint32_t id = 0, uint64_t tsc_hz = kHz, uint64_t timer_hz = kHz) {
    VirtualLapic l(id, tsc_hz, timer_hz);
    wr(l, IA32_X2APIC_SIVR, 0x1FF);
    return l;
}

uint32_t esr(VirtualLapic& l) {
    wr(l, IA32_X2APIC_ESR, 0);  // §11.5.3: write, then read
    return static_cast<uint32_t>(rd(l, IA32_X2APIC_ESR));
}

bool irr_bit(VirtualLapic& l, uint8_t v) {
    return (rd(l, IA32_X2APIC_IRR0 + v / 32) >> (v % 32)) & 1;
}
bool isr_bit(VirtualLapic& l, uint8_t v) {
    return (rd(l, IA32_X2APIC_ISR0 + v / 32) >> (v % 32)) & 1;
}

// Deliver the pending vector as the hypervisor would: inject, then ack.
int take(VirtualLapic& l) {
    const int v = l.pending_vector();
    if (v >= 0) {
        EXPECT_TRUE(l.ack(static_cast<uint8_t>(v)));
    }
    return v;
}

}  // namespace

// ---- Register map and reset state ----

TEST(VirtualLapic, ResetValuesFollowTheSdm) {
    VirtualLapic l(0x23, kHz, kHz);
    struct Case {
        uint32_t msr;
        uint64_t value;
    } const cases[] = {
        {IA32_X2APIC_APICID, 0x23},
        {IA32_X2APIC_VERSION, 0x00060014},  // version 0x14, max LVT entry 6, no EOI-broadcast suppression
        {IA32_X2APIC_TPR, 0},
        {IA32_X2APIC_PPR, 0},
        {IA32_X2APIC_LDR, 0x00020008},  // cluster 2, bit 3
        {IA32_X2APIC_SIVR, 0xFF},       // §11.4.7.1: software-disabled
        {IA32_X2APIC_ESR, 0},
        {IA32_X2APIC_LVT_CMCI, 0x10000},
        {IA32_X2APIC_ICR, 0},
        {IA32_X2APIC_LVT_TIMER, 0x10000},
        {IA32_X2APIC_LVT_THERMAL, 0x10000},
        {IA32_X2APIC_LVT_PMI, 0x10000},
        {IA32_X2APIC_LVT_LINT0, 0x10000},
        {IA32_X2APIC_LVT_LINT1, 0x10000},
        {IA32_X2APIC_LVT_ERROR, 0x10000},
        {IA32_X2APIC_INIT_COUNT, 0},
        {IA32_X2APIC_CUR_COUNT, 0},
        {IA32_X2APIC_DIV_CONF, 0},
        {IA32_TSC_DEADLINE, 0},
    };
    for (const auto& c : cases) EXPECT_EQ(rd(l, c.msr), c.value) << std::hex << c.msr;
    for (uint32_t i = 0; i < 8; ++i) {
        EXPECT_EQ(rd(l, IA32_X2APIC_ISR0 + i), 0u);
        EXPECT_EQ(rd(l, IA32_X2APIC_TMR0 + i), 0u);
        EXPECT_EQ(rd(l, IA32_X2APIC_IRR0 + i), 0u);
    }
    EXPECT_FALSE(l.software_enabled());
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);
}

TEST(VirtualLapic, LdrIsDerivedFromTheId) {
    // §11.12.10.2: LDR = (ID[19:4] << 16) | (1 << ID[3:0]).
    struct Case {
        uint32_t id, ldr;
    } const cases[] = {
        {0, 0x00000001}, {1, 0x00000002}, {15, 0x00008000}, {16, 0x00010001}, {0x12345, 0x12340020},
    };
    for (const auto& c : cases) {
        VirtualLapic l(c.id, kHz, kHz);
        EXPECT_EQ(rd(l, IA32_X2APIC_LDR), c.ldr) << c.id;
        EXPECT_EQ(x2apic_ldr(c.id), c.ldr);
    }
}

TEST(VirtualLapic, ResetAfterUseRestoresPowerUpStateButKeepsTheId) {
    auto l = enabled(7);
    wr(l, IA32_X2APIC_TPR, 0x30);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x40);
    wr(l, IA32_X2APIC_INIT_COUNT, 100);
    l.accept_interrupt(0x80);
    take(l);
    l.accept_interrupt(0x90);
    l.accept_nmi();
    l.reset();  // §11.4.7.3: INIT
    EXPECT_EQ(rd(l, IA32_X2APIC_APICID), 7u);
    EXPECT_EQ(rd(l, IA32_X2APIC_SIVR), 0xFFu);
    EXPECT_EQ(rd(l, IA32_X2APIC_TPR), 0u);
    EXPECT_EQ(rd(l, IA32_X2APIC_LVT_TIMER), 0x10000u);
    EXPECT_EQ(rd(l, IA32_X2APIC_INIT_COUNT), 0u);
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_FALSE(isr_bit(l, 0x80));
    EXPECT_FALSE(l.nmi_pending());
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);
}

TEST(VirtualLapic, HandlesTheX2apicRangeAndTscDeadline) {
    EXPECT_TRUE(VirtualLapic::handles_msr(0x800));
    EXPECT_TRUE(VirtualLapic::handles_msr(0x8FF));
    EXPECT_TRUE(VirtualLapic::handles_msr(IA32_TSC_DEADLINE));
    EXPECT_FALSE(VirtualLapic::handles_msr(0x7FF));
    EXPECT_FALSE(VirtualLapic::handles_msr(0x900));
    EXPECT_FALSE(VirtualLapic::handles_msr(0x1B));  // IA32_APIC_BASE is the hypervisor's
}

// ---- Faulting accesses (#GP) ----

TEST(VirtualLapic, ReadsOfWriteOnlyAndReservedRegistersFault) {
    auto l = enabled();
    struct Case {
        uint32_t msr;
        const char* name;  // expected in the error detail
    } const cases[] = {
        {IA32_X2APIC_EOI, "EOI"}, {IA32_X2APIC_SELF_IPI, "SELF IPI"},
        {0x800, "reserved"},      {0x801, "reserved"},
        {0x804, "reserved"},      {0x807, "reserved"},
        {0x809, "reserved"},  // APR: not in x2APIC mode
        {0x80C, "reserved"},  // RRD
        {0x80E, "reserved"},  // DFR: no MSR in x2APIC mode
        {0x829, "reserved"},      {0x82E, "reserved"},
        {0x831, "reserved"},  // ICR high half: ICR is one 64-bit MSR
        {0x83A, "reserved"},      {0x83D, "reserved"},
        {0x840, "reserved"},      {0x8FF, "reserved"},
    };
    for (const auto& c : cases) {
        auto r = l.read_msr(c.msr, 0);
        ASSERT_FALSE(r.ok()) << std::hex << c.msr;
        EXPECT_NE(std::strstr(r.error().detail, c.name), nullptr) << r.error().detail;
        IpiRequest out;
        if (c.msr != IA32_X2APIC_EOI && c.msr != IA32_X2APIC_SELF_IPI) {
            EXPECT_FALSE(l.write_msr(c.msr, 0, 0, &out).ok()) << std::hex << c.msr;
        }
    }
}

TEST(VirtualLapic, WritesOfReadOnlyRegistersFault) {
    auto l = enabled();
    struct Case {
        uint32_t msr;
        const char* name;
    } const cases[] = {
        {IA32_X2APIC_APICID, "ID"},
        {IA32_X2APIC_VERSION, "VERSION"},
        {IA32_X2APIC_PPR, "PPR"},
        {IA32_X2APIC_LDR, "LDR"},
        {IA32_X2APIC_ISR0, "ISR"},
        {IA32_X2APIC_ISR0 + 7, "ISR"},
        {IA32_X2APIC_TMR0, "TMR"},
        {IA32_X2APIC_TMR0 + 7, "TMR"},
        {IA32_X2APIC_IRR0, "IRR"},
        {IA32_X2APIC_IRR0 + 7, "IRR"},
        {IA32_X2APIC_CUR_COUNT, "current count"},
    };
    for (const auto& c : cases) {
        const uint64_t before = rd(l, c.msr);
        IpiRequest out;
        auto r = l.write_msr(c.msr, before, 0, &out);  // even writing the same value
        ASSERT_FALSE(r.ok()) << std::hex << c.msr;
        EXPECT_NE(std::strstr(r.error().detail, c.name), nullptr) << r.error().detail;
        EXPECT_NE(std::strstr(r.error().detail, "read-only"), nullptr) << r.error().detail;
        EXPECT_EQ(rd(l, c.msr), before);
    }
}

TEST(VirtualLapic, ReservedBitsFaultAndLeaveTheRegisterAlone) {
    // §11.12.1.3: a non-zero write to a reserved bit is #GP; upper 32 bits
    // are reserved except in the ICR.
    struct Case {
        uint32_t msr;
        uint64_t value;
        const char* name;
    } const cases[] = {
        {IA32_X2APIC_TPR, 0x100, "TPR"},
        {IA32_X2APIC_TPR, 1ull << 32, "TPR"},
        {IA32_X2APIC_EOI, 1, "EOI"},  // only 0 may be written
        {IA32_X2APIC_EOI, 1ull << 40, "EOI"},
        {IA32_X2APIC_SIVR, 0x1000, "SVR"},  // EOI-broadcast suppression: VERSION bit 24 is 0
        {IA32_X2APIC_SIVR, 0x400, "SVR"},
        {IA32_X2APIC_ESR, 0x40, "ESR"},  // only 0 may be written in x2APIC mode
        {IA32_X2APIC_LVT_CMCI, 0x800, "LVT CMCI"},
        {IA32_X2APIC_LVT_CMCI, 0x20000, "LVT CMCI"},
        {IA32_X2APIC_LVT_TIMER, 0x700, "LVT timer"},  // no delivery mode in the timer entry
        {IA32_X2APIC_LVT_TIMER, 0x80000, "LVT timer"},
        {IA32_X2APIC_LVT_TIMER, 0x60000, "LVT timer"},  // timer mode 11b
        {IA32_X2APIC_LVT_THERMAL, 0x2000, "LVT thermal"},
        {IA32_X2APIC_LVT_PMI, 0x8000, "LVT PMI"},
        {IA32_X2APIC_LVT_LINT0, 0x800, "LVT LINT0"},
        {IA32_X2APIC_LVT_LINT1, 0x20000, "LVT LINT1"},
        {IA32_X2APIC_LVT_ERROR, 0x100, "LVT error"},
        {IA32_X2APIC_LVT_ERROR, 0x8000, "LVT error"},
        {IA32_X2APIC_ICR, 0x2000, "ICR"},
        {IA32_X2APIC_ICR, 0x10000, "ICR"},
        {IA32_X2APIC_ICR, 0x100000, "ICR"},
        {IA32_X2APIC_ICR, 0x80000000, "ICR"},
        {IA32_X2APIC_INIT_COUNT, 1ull << 32, "initial count"},
        {IA32_X2APIC_DIV_CONF, 0x4, "divide"},
        {IA32_X2APIC_DIV_CONF, 0x10, "divide"},
        {IA32_X2APIC_SELF_IPI, 0x140, "SELF IPI"},
    };
    for (const auto& c : cases) {
        auto l = enabled();
        const bool readable = c.msr != IA32_X2APIC_EOI && c.msr != IA32_X2APIC_SELF_IPI;
        const uint64_t before = readable ? rd(l, c.msr) : 0;
        IpiRequest out;
        auto r = l.write_msr(c.msr, c.value, 0, &out);
        ASSERT_FALSE(r.ok()) << std::hex << c.msr << "=" << c.value;
        EXPECT_NE(std::strstr(r.error().detail, c.name), nullptr) << r.error().detail;
        if (readable) {
            EXPECT_EQ(rd(l, c.msr), before) << std::hex << c.msr;
        }
        EXPECT_EQ(l.pending_vector(), -1);
    }
}

TEST(VirtualLapic, ReadOnlyStatusBitsAreAcceptedAndIgnored) {
    // Software writes back what it read; delivery status (bit 12) and remote
    // IRR (bit 14) are read-only, not reserved, and read back as 0 here.
    auto l = enabled();
    wr(l, IA32_X2APIC_LVT_LINT0, 0x1000 | 0x4000 | 0x700);
    EXPECT_EQ(rd(l, IA32_X2APIC_LVT_LINT0), 0x700u);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x1000 | 0x20000 | 0xEF);
    EXPECT_EQ(rd(l, IA32_X2APIC_LVT_TIMER), 0x200EFu);
    wr(l, IA32_X2APIC_ICR, 0x1000 | 0xC4000 | 0x40);  // all excluding self, fixed 0x40
    EXPECT_EQ(rd(l, IA32_X2APIC_ICR), 0xC4040u);
}

TEST(VirtualLapic, WritableFieldsReadBack) {
    auto l = enabled();
    struct Case {
        uint32_t msr;
        uint64_t value;
    } const cases[] = {
        {IA32_X2APIC_TPR, 0xA7},          {IA32_X2APIC_SIVR, 0x3F0},  // focus-check bit 9 is stored
        {IA32_X2APIC_LVT_CMCI, 0x104F2},  {IA32_X2APIC_LVT_THERMAL, 0x00422}, {IA32_X2APIC_LVT_PMI, 0x10433},
        {IA32_X2APIC_LVT_LINT0, 0x0A700},  // ExtINT, level, active low
        {IA32_X2APIC_LVT_LINT1, 0x00400},  // NMI
        {IA32_X2APIC_LVT_ERROR, 0x000FE}, {IA32_X2APIC_DIV_CONF, 0xB},        {IA32_X2APIC_INIT_COUNT, 0xFFFFFFFF},
    };
    for (const auto& c : cases) {
        wr(l, c.msr, c.value);
        EXPECT_EQ(rd(l, c.msr), c.value) << std::hex << c.msr;
    }
}

// ---- Priority, acceptance and EOI (§11.8) ----

TEST(VirtualLapic, PprIsTprOrTheInServiceClass) {
    // §11.8.3.1: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4.
    struct Case {
        uint8_t tpr;
        int in_service;  // -1: none
        uint8_t ppr;
    } const cases[] = {
        {0x00, -1, 0x00},   {0x35, -1, 0x35},   {0x20, 0x41, 0x40}, {0x45, 0x41, 0x45},
        {0x40, 0x4F, 0x40}, {0x3F, 0x41, 0x40}, {0xF0, 0xFE, 0xF0}, {0x00, 0x10, 0x10},
    };
    for (const auto& c : cases) {
        auto l = enabled();
        if (c.in_service >= 0) {
            ASSERT_TRUE(l.accept_interrupt(static_cast<uint8_t>(c.in_service)));
            ASSERT_TRUE(l.ack(static_cast<uint8_t>(c.in_service)));
        }
        wr(l, IA32_X2APIC_TPR, c.tpr);
        EXPECT_EQ(rd(l, IA32_X2APIC_PPR), c.ppr) << int(c.tpr) << " " << c.in_service;
        EXPECT_EQ(l.ppr(), c.ppr);
    }
}

TEST(VirtualLapic, PendingVectorNeedsAClassAbovePpr) {
    struct Case {
        uint8_t tpr;
        int in_service;
        uint8_t requested;
        bool deliverable;
    } const cases[] = {
        {0x00, -1, 0x20, true},    {0x50, -1, 0x55, false},   {0x50, -1, 0x60, true},
        {0x5F, -1, 0x5F, false},  // same class as the TPR
        {0x4F, -1, 0x50, true},    {0x00, 0x80, 0x85, false}, {0x00, 0x80, 0x90, true},
        {0x00, 0x80, 0x7F, false}, {0xA0, 0x80, 0x90, false}, {0xF0, -1, 0xFF, false},
    };
    for (const auto& c : cases) {
        auto l = enabled();
        if (c.in_service >= 0) {
            l.accept_interrupt(static_cast<uint8_t>(c.in_service));
            l.ack(static_cast<uint8_t>(c.in_service));
        }
        wr(l, IA32_X2APIC_TPR, c.tpr);
        ASSERT_TRUE(l.accept_interrupt(c.requested));
        EXPECT_TRUE(irr_bit(l, c.requested));
        EXPECT_EQ(l.pending_vector(), c.deliverable ? c.requested : -1)
            << std::hex << int(c.tpr) << " " << c.in_service << " " << int(c.requested);
        // Lowering the TPR (as CR8 writes do) releases it unless ISR holds it back.
        l.set_tpr(0);
        const bool held_by_isr = c.in_service >= 0 && (c.requested & 0xF0) <= (c.in_service & 0xF0);
        EXPECT_EQ(l.pending_vector(), held_by_isr ? -1 : c.requested);
    }
}

TEST(VirtualLapic, NestedInterruptsAndEoiOrder) {
    auto l = enabled();
    ASSERT_TRUE(l.accept_interrupt(0x40));
    EXPECT_EQ(take(l), 0x40);
    EXPECT_FALSE(irr_bit(l, 0x40));
    EXPECT_TRUE(isr_bit(l, 0x40));
    ASSERT_TRUE(l.accept_interrupt(0x80));
    EXPECT_EQ(take(l), 0x80);  // higher class nests
    ASSERT_TRUE(l.accept_interrupt(0x50));
    ASSERT_TRUE(l.accept_interrupt(0x45));  // same class as 0x40, lower than 0x80
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(rd(l, IA32_X2APIC_PPR), 0x80u);
    wr(l, IA32_X2APIC_EOI, 0);  // ends 0x80, the highest in service
    EXPECT_FALSE(isr_bit(l, 0x80));
    EXPECT_TRUE(isr_bit(l, 0x40));
    EXPECT_EQ(rd(l, IA32_X2APIC_PPR), 0x40u);
    EXPECT_EQ(take(l), 0x50);
    EXPECT_EQ(l.pending_vector(), -1);  // 0x45 is in 0x40's class, still in service
    EXPECT_EQ(l.eoi(), 0x50);
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(l.eoi(), 0x40);
    EXPECT_EQ(take(l), 0x45);
    EXPECT_EQ(l.eoi(), 0x45);
    EXPECT_EQ(l.eoi(), -1);  // nothing in service: ignored
    wr(l, IA32_X2APIC_EOI, 0);
    EXPECT_EQ(rd(l, IA32_X2APIC_PPR), 0u);
}

TEST(VirtualLapic, AcceptCoalescesAndAckNeedsAPendingVector) {
    auto l = enabled();
    EXPECT_TRUE(l.accept_interrupt(0x33));
    EXPECT_FALSE(l.accept_interrupt(0x33));  // already pending: no new kick needed
    EXPECT_FALSE(l.ack(0x34));
    EXPECT_TRUE(l.ack(0x33));
    EXPECT_FALSE(l.ack(0x33));
    EXPECT_TRUE(l.accept_interrupt(0x33));  // in service and requested again
    EXPECT_TRUE(irr_bit(l, 0x33));
    EXPECT_TRUE(isr_bit(l, 0x33));
}

TEST(VirtualLapic, TmrFollowsTheTriggerMode) {
    auto l = enabled();
    l.accept_interrupt(0x61, true);
    EXPECT_TRUE((rd(l, IA32_X2APIC_TMR0 + 3) >> 1) & 1);
    take(l);
    l.eoi();
    l.accept_interrupt(0x61, false);
    EXPECT_FALSE((rd(l, IA32_X2APIC_TMR0 + 3) >> 1) & 1);
}

TEST(VirtualLapic, IllegalVectorsAreDroppedAndLoggedInEsr) {
    for (unsigned v = 0; v < 16; ++v) {
        auto l = enabled();
        EXPECT_FALSE(l.accept_interrupt(static_cast<uint8_t>(v)));
        EXPECT_EQ(rd(l, IA32_X2APIC_IRR0), 0u);
        EXPECT_EQ(rd(l, IA32_X2APIC_ESR), 0u);  // not latched before an ESR write
        EXPECT_EQ(esr(l), kEsrReceiveIllegalVector);
        EXPECT_EQ(esr(l), 0u);  // the write cleared it
    }
    auto l = enabled();
    wr(l, IA32_X2APIC_SELF_IPI, 0x0F);
    EXPECT_EQ(esr(l), kEsrSendIllegalVector);
    wr(l, IA32_X2APIC_ICR, 0x40000 | 0x05);  // self, fixed, vector 5
    EXPECT_EQ(esr(l), kEsrSendIllegalVector);
    EXPECT_EQ(l.pending_vector(), -1);
    // An illegal vector in the timer LVT is a receive error when it fires.
    wr(l, IA32_X2APIC_LVT_TIMER, 0x0E);
    wr(l, IA32_X2APIC_INIT_COUNT, 1, 0);
    l.tick(10);
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(esr(l), kEsrReceiveIllegalVector);
}

TEST(VirtualLapic, ErrorInterruptFiresOnceUntilEsrIsWritten) {
    auto l = enabled();
    wr(l, IA32_X2APIC_LVT_ERROR, 0xFE);
    l.accept_interrupt(3);
    EXPECT_EQ(take(l), 0xFE);
    l.eoi();
    l.accept_interrupt(4);  // a second error before the ESR write: no new interrupt
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(esr(l), kEsrReceiveIllegalVector);
    wr(l, IA32_X2APIC_ICR, 0x40000 | 0x01);  // re-armed by that write
    EXPECT_EQ(l.pending_vector(), 0xFE);
    EXPECT_EQ(esr(l), kEsrSendIllegalVector);
    // Masked: logged, no interrupt.
    take(l);
    l.eoi();
    wr(l, IA32_X2APIC_LVT_ERROR, 0x100FE);
    l.accept_interrupt(2);
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(esr(l), kEsrReceiveIllegalVector);
}

TEST(VirtualLapic, SoftwareDisabledApicDropsFixedInterruptsAndMasksLvts) {
    VirtualLapic l(0, kHz, kHz);  // reset state: software-disabled
    EXPECT_FALSE(l.accept_interrupt(0x40));
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_TRUE(l.accept_nmi());  // §11.4.7.2: NMI is still accepted
    EXPECT_TRUE(l.take_nmi());
    wr(l, IA32_X2APIC_LVT_TIMER, 0x30);  // the mask cannot be cleared
    EXPECT_EQ(rd(l, IA32_X2APIC_LVT_TIMER), 0x10030u);
    wr(l, IA32_X2APIC_SELF_IPI, 0x40);
    EXPECT_EQ(l.pending_vector(), -1);

    wr(l, IA32_X2APIC_SIVR, 0x1FF);
    EXPECT_TRUE(l.software_enabled());
    EXPECT_EQ(rd(l, IA32_X2APIC_LVT_TIMER), 0x10030u);  // enabling does not unmask
    wr(l, IA32_X2APIC_LVT_TIMER, 0x30);
    wr(l, IA32_X2APIC_LVT_LINT1, 0x400);
    EXPECT_TRUE(l.accept_interrupt(0x40));
    EXPECT_TRUE(l.accept_interrupt(0x50));
    EXPECT_EQ(take(l), 0x50);

    wr(l, IA32_X2APIC_SIVR, 0x0FF);  // disable: every LVT masked, IRR/ISR held
    EXPECT_EQ(rd(l, IA32_X2APIC_LVT_TIMER), 0x10030u);
    EXPECT_EQ(rd(l, IA32_X2APIC_LVT_LINT1), 0x10400u);
    EXPECT_FALSE(l.accept_interrupt(0x60));
    EXPECT_TRUE(isr_bit(l, 0x50));
    EXPECT_TRUE(irr_bit(l, 0x40));
    EXPECT_FALSE(irr_bit(l, 0x60));
    l.eoi();
    EXPECT_EQ(l.pending_vector(), 0x40);  // held interrupts still reach the CPU
}

TEST(VirtualLapic, NmiIsLatchedOnce) {
    auto l = enabled();
    EXPECT_FALSE(l.nmi_pending());
    EXPECT_TRUE(l.accept_nmi());
    EXPECT_FALSE(l.accept_nmi());
    EXPECT_TRUE(l.nmi_pending());
    EXPECT_TRUE(l.take_nmi());
    EXPECT_FALSE(l.take_nmi());
}

// ---- Timer (§11.5.4) ----

TEST(VirtualLapic, OneShotCountsDownAndFiresOnce) {
    auto l = enabled();
    wr(l, IA32_X2APIC_DIV_CONF, 0xB);  // divide by 1
    wr(l, IA32_X2APIC_LVT_TIMER, 0xEC);
    wr(l, IA32_X2APIC_INIT_COUNT, 1000, 10000);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 10000), 1000u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 10001), 999u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 10500), 500u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 10999), 1u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 11000), 0u);
    EXPECT_EQ(l.next_deadline(), 11000u);
    l.tick(10999);
    EXPECT_EQ(l.pending_vector(), -1);
    l.tick(11000);
    EXPECT_EQ(take(l), 0xEC);
    l.eoi();
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);
    l.tick(50000);
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 50000), 0u);
    EXPECT_EQ(rd(l, IA32_X2APIC_INIT_COUNT), 1000u);  // the initial count stays
}

TEST(VirtualLapic, DivideConfigurationValues) {
    // Figure 11-10: bits 3,1,0.
    struct Case {
        uint32_t dcr, divisor;
    } const cases[] = {
        {0x0, 2}, {0x1, 4}, {0x2, 8}, {0x3, 16}, {0x8, 32}, {0x9, 64}, {0xA, 128}, {0xB, 1},
    };
    for (const auto& c : cases) {
        auto l = enabled();
        wr(l, IA32_X2APIC_DIV_CONF, c.dcr);
        wr(l, IA32_X2APIC_LVT_TIMER, 0x40);
        wr(l, IA32_X2APIC_INIT_COUNT, 100, 5000);
        EXPECT_EQ(l.next_deadline(), 5000u + 100 * c.divisor) << c.dcr;
        EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 5000 + c.divisor - 1), 100u) << c.dcr;
        EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 5000 + c.divisor), 99u) << c.dcr;
        EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 5000 + 50 * c.divisor), 50u) << c.dcr;
        l.tick(5000 + 100 * c.divisor - 1);
        EXPECT_EQ(l.pending_vector(), -1);
        l.tick(5000 + 100 * c.divisor);
        EXPECT_EQ(l.pending_vector(), 0x40) << c.dcr;
    }
}

TEST(VirtualLapic, TimerClockSlowerThanTheTsc) {
    // A 25 MHz crystal under a 2.5 GHz TSC: 100 TSC units per timer tick.
    auto l = enabled(0, 2'500'000'000, 25'000'000);
    wr(l, IA32_X2APIC_DIV_CONF, 0x0);  // by 2
    wr(l, IA32_X2APIC_LVT_TIMER, 0x40);
    wr(l, IA32_X2APIC_INIT_COUNT, 1000, 1'000'000);
    EXPECT_EQ(l.next_deadline(), 1'000'000u + 1000 * 2 * 100);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 1'000'000 + 199), 1000u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 1'000'000 + 200), 999u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 1'000'000 + 100'000), 500u);
}

TEST(VirtualLapic, PeriodicKeepsItsPhaseWithoutDrift) {
    auto l = enabled();
    wr(l, IA32_X2APIC_DIV_CONF, 0xB);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x20000 | 0xD0);
    wr(l, IA32_X2APIC_INIT_COUNT, 1000, 10000);
    EXPECT_EQ(l.next_deadline(), 11000u);
    l.tick(11000);
    EXPECT_EQ(take(l), 0xD0);
    l.eoi();
    EXPECT_EQ(l.next_deadline(), 12000u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 11000), 1000u);  // reloaded
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 11250), 750u);
    // Late by 2.5 periods: one interrupt, and the next expiry stays on the grid.
    l.tick(13500);
    EXPECT_EQ(take(l), 0xD0);
    l.eoi();
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(l.next_deadline(), 14000u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 13500), 500u);
    // Reads before a tick see the reload too.
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 14100), 900u);
    // A write of 0 stops it.
    wr(l, IA32_X2APIC_INIT_COUNT, 0, 14100);
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 14200), 0u);
}

TEST(VirtualLapic, PeriodicWithAnInexactClockRatioDoesNotDrift) {
    // 3 timer ticks per 1000 TSC units: each period is 333.3 units, so
    // expiry k is due at ceil(k * 1000 / 3) and period 3000 lands exactly on
    // 1,000,000 after the start.
    auto l = enabled(0, 1000, 3);
    wr(l, IA32_X2APIC_DIV_CONF, 0xB);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x20000 | 0x80);
    wr(l, IA32_X2APIC_INIT_COUNT, 1, 7);
    uint64_t fired = 0;
    for (uint64_t k = 1; k <= 3000; ++k) {
        const uint64_t due = 7 + (k * 1000 + 2) / 3;
        ASSERT_EQ(l.next_deadline(), due) << k;
        l.tick(due - 1);
        ASSERT_EQ(l.pending_vector(), -1) << k;
        l.tick(due);
        ASSERT_EQ(take(l), 0x80) << k;
        l.eoi();
        ++fired;
    }
    EXPECT_EQ(fired, 3000u);
    EXPECT_EQ(l.next_deadline(), 7u + (3001 * 1000 + 2) / 3);
}

TEST(VirtualLapic, PeriodicPeriodHasAFloor) {
    // 1 MHz timer: at least 100 ticks (100 us) between periodic interrupts.
    auto l = enabled();
    wr(l, IA32_X2APIC_DIV_CONF, 0xB);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x20000 | 0x80);
    wr(l, IA32_X2APIC_INIT_COUNT, 10, 0);
    EXPECT_EQ(l.next_deadline(), 10u);  // the first expiry is the real count
    l.tick(10);
    EXPECT_EQ(l.next_deadline(), 110u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 15), 5u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 50), 0u);  // rests at 0 for the stretch
}

TEST(VirtualLapic, MaskedTimerKeepsCountingButNeverInterrupts) {
    auto l = enabled();
    wr(l, IA32_X2APIC_DIV_CONF, 0xB);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x10000 | 0x40);
    wr(l, IA32_X2APIC_INIT_COUNT, 100, 0);
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);  // no wake-ups for a masked timer
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 40), 60u);
    l.tick(200);
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 200), 0u);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x40, 300);  // unmasking after the expiry delivers nothing
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);

    // Periodic: expiries while masked are accounted; unmasking resumes on the grid.
    wr(l, IA32_X2APIC_LVT_TIMER, 0x30000 | 0x40, 300);
    wr(l, IA32_X2APIC_INIT_COUNT, 100, 1000);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x20000 | 0x40, 1350);
    EXPECT_EQ(l.pending_vector(), -1);
    EXPECT_EQ(l.next_deadline(), 1400u);
    l.tick(1400);
    EXPECT_EQ(l.pending_vector(), 0x40);
}

TEST(VirtualLapic, TscDeadlineMode) {
    auto l = enabled();
    // Not in TSC-deadline mode: the MSR reads 0 and ignores writes.
    wr(l, IA32_TSC_DEADLINE, 5000, 1000);
    EXPECT_EQ(rd(l, IA32_TSC_DEADLINE, 1000), 0u);
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);

    wr(l, IA32_X2APIC_LVT_TIMER, 0x40000 | 0xE0);
    wr(l, IA32_X2APIC_INIT_COUNT, 500, 1000);  // ignored in this mode
    EXPECT_EQ(rd(l, IA32_X2APIC_INIT_COUNT), 0u);
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);
    l.write_tsc_deadline(5000, 1000);
    EXPECT_EQ(l.read_tsc_deadline(1000), 5000u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 1000), 0u);  // always 0 in this mode
    EXPECT_EQ(l.next_deadline(), 5000u);
    l.tick(4999);
    EXPECT_EQ(l.pending_vector(), -1);
    l.tick(5000);
    EXPECT_EQ(take(l), 0xE0);
    l.eoi();
    EXPECT_EQ(rd(l, IA32_TSC_DEADLINE, 5000), 0u);  // firing cleared it
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);

    // A deadline already passed fires at once; 0 disarms; moving it is allowed.
    wr(l, IA32_TSC_DEADLINE, 100, 6000);
    EXPECT_EQ(take(l), 0xE0);
    l.eoi();
    wr(l, IA32_TSC_DEADLINE, 9000, 6000);
    wr(l, IA32_TSC_DEADLINE, 0, 6000);
    l.tick(10000);
    EXPECT_EQ(l.pending_vector(), -1);
    wr(l, IA32_TSC_DEADLINE, 9000, 6000);
    wr(l, IA32_TSC_DEADLINE, 7000, 6000);
    EXPECT_EQ(l.next_deadline(), 7000u);

    // Masked: it still fires and clears itself, without an interrupt.
    wr(l, IA32_X2APIC_LVT_TIMER, 0x50000 | 0xE0, 6000);
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);
    EXPECT_EQ(rd(l, IA32_TSC_DEADLINE, 8000), 0u);
    EXPECT_EQ(l.pending_vector(), -1);
}

TEST(VirtualLapic, ChangingTheTimerModeDisarms) {
    auto l = enabled();
    wr(l, IA32_X2APIC_LVT_TIMER, 0x40);
    wr(l, IA32_X2APIC_INIT_COUNT, 100, 0);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x40000 | 0x40, 10);  // one-shot -> TSC-deadline
    EXPECT_EQ(rd(l, IA32_X2APIC_INIT_COUNT), 0u);
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);
    wr(l, IA32_TSC_DEADLINE, 500, 10);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x40, 20);  // TSC-deadline -> one-shot
    EXPECT_EQ(l.next_deadline(), VirtualLapic::kNoDeadline);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x40000 | 0x40, 30);
    EXPECT_EQ(rd(l, IA32_TSC_DEADLINE, 30), 0u);
    l.tick(1000);
    EXPECT_EQ(l.pending_vector(), -1);
    // Same mode, new vector: keeps running.
    wr(l, IA32_X2APIC_LVT_TIMER, 0x20000 | 0x40, 1000);
    wr(l, IA32_X2APIC_INIT_COUNT, 100, 1000);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x20000 | 0x41, 1050);
    EXPECT_NE(l.next_deadline(), VirtualLapic::kNoDeadline);
    l.tick(l.next_deadline());
    EXPECT_EQ(l.pending_vector(), 0x41);
}

TEST(VirtualLapic, DivisorChangeMidCountContinuesAtTheNewRate) {
    auto l = enabled();
    wr(l, IA32_X2APIC_DIV_CONF, 0xB);
    wr(l, IA32_X2APIC_LVT_TIMER, 0x40);
    wr(l, IA32_X2APIC_INIT_COUNT, 100, 0);
    wr(l, IA32_X2APIC_DIV_CONF, 0x0, 40);  // 60 left, now at 2 ticks per count
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 40), 60u);
    EXPECT_EQ(rd(l, IA32_X2APIC_CUR_COUNT, 60), 50u);
    EXPECT_EQ(l.next_deadline(), 160u);
}

// ---- ICR and IPIs (§11.6.1, §11.12.9) ----

namespace {

struct IcrCase {
    const char* what;
    uint64_t icr;
    bool ok;
    IpiTargets targets;
    IpiMode mode;
    uint8_t vector;
    uint32_t destination;
    int local_vector;  // fixed vector taken by the sender, or -1
    bool local_nmi;
    uint32_t esr;
};

constexpr uint64_t dest(uint32_t id) {
    return uint64_t{id} << 32;
}
constexpr uint64_t kFixed = 0x000, kLowest = 0x100, kSmi = 0x200, kNmi = 0x400, kInit = 0x500, kStartup = 0x600;
constexpr uint64_t kLogical = 0x800, kAssert = 0x4000, kLevel = 0x8000;
constexpr uint64_t kSelf = 0x40000, kAllIncl = 0x80000, kAllExcl = 0xC0000;
constexpr uint32_t kId = 0x21;  // cluster 2, member bit 1

}  // namespace

TEST(VirtualLapic, IcrEncodings) {
    using T = IpiTargets;
    using M = IpiMode;
    const IcrCase cases[] = {
        {"fixed physical", dest(5) | kFixed | 0x40, true, T::physical, M::fixed, 0x40, 5, -1, false, 0},
        {"fixed level treated as edge", dest(5) | kLevel | kAssert | 0x40, true, T::physical, M::fixed, 0x40, 5, -1,
         false, 0},
        {"fixed physical to itself", dest(kId) | 0x41, true, T::none, M::fixed, 0, 0, 0x41, false, 0},
        {"fixed self shorthand", dest(9) | kSelf | 0x42, true, T::none, M::fixed, 0, 0, 0x42, false, 0},
        {"fixed all including self", kAllIncl | 0x43, true, T::all_excluding_self, M::fixed, 0x43, 0, 0x43, false, 0},
        {"fixed all excluding self", kAllExcl | 0x44, true, T::all_excluding_self, M::fixed, 0x44, 0, -1, false, 0},
        {"fixed physical broadcast", dest(0xFFFFFFFF) | 0x45, true, T::all_excluding_self, M::fixed, 0x45, 0, 0x45,
         false, 0},
        {"fixed logical incl. self", dest(0x00020006) | kLogical | 0x46, true, T::logical, M::fixed, 0x46, 0x00020006,
         0x46, false, 0},
        {"fixed logical other cluster", dest(0x00010002) | kLogical | 0x47, true, T::logical, M::fixed, 0x47,
         0x00010002, -1, false, 0},
        {"fixed logical empty bitmap", dest(0x00020000) | kLogical | 0x48, true, T::none, M::fixed, 0, 0, -1, false, 0},
        {"fixed logical broadcast", dest(0xFFFFFFFF) | kLogical | 0x49, true, T::all_excluding_self, M::fixed, 0x49, 0,
         0x49, false, 0},
        {"fixed illegal vector", dest(5) | 0x0F, true, T::none, M::fixed, 0, 0, -1, false, kEsrSendIllegalVector},
        {"lowest priority", dest(5) | kLowest | 0x40, true, T::none, M::fixed, 0, 0, -1, false, kEsrRedirectableIpi},
        {"lowest priority, illegal vector", dest(5) | kLowest | 0x01, true, T::none, M::fixed, 0, 0, -1, false,
         kEsrRedirectableIpi},
        {"nmi physical", dest(3) | kNmi | kAssert, true, T::physical, M::nmi, 0, 3, -1, false, 0},
        {"nmi vector ignored", dest(3) | kNmi | 0x02, true, T::physical, M::nmi, 0, 3, -1, false, 0},
        {"nmi to itself", dest(kId) | kNmi, true, T::none, M::fixed, 0, 0, -1, true, 0},
        {"nmi all excluding self", kAllExcl | kNmi, true, T::all_excluding_self, M::nmi, 0, 0, -1, false, 0},
        {"nmi broadcast", dest(0xFFFFFFFF) | kNmi, true, T::all_excluding_self, M::nmi, 0, 0, -1, true, 0},
        {"init assert", dest(3) | kInit | kAssert | kLevel, true, T::physical, M::init, 0, 3, -1, false, 0},
        {"init edge", dest(3) | kInit | kAssert, true, T::physical, M::init, 0, 3, -1, false, 0},
        {"init de-assert does nothing", dest(3) | kInit | kLevel, true, T::none, M::fixed, 0, 0, -1, false, 0},
        {"init all excluding self", kAllExcl | kInit | kAssert, true, T::all_excluding_self, M::init, 0, 0, -1, false,
         0},
        {"startup", dest(3) | kStartup | kAssert | 0x9A, true, T::physical, M::startup, 0x9A, 3, -1, false, 0},
        {"startup vector 0 is a page number", dest(3) | kStartup, true, T::physical, M::startup, 0, 3, -1, false, 0},
        {"init to itself", dest(kId) | kInit | kAssert, false, T::none, M::fixed, 0, 0, -1, false, 0},
        {"startup broadcast includes itself", dest(0xFFFFFFFF) | kStartup | 0x10, false, T::none, M::fixed, 0, 0, -1,
         false, 0},
        {"init logical incl. self", dest(0x00020002) | kLogical | kInit | kAssert, false, T::none, M::fixed, 0, 0, -1,
         false, 0},
        {"nmi self shorthand (Table 11-3)", kSelf | kNmi, false, T::none, M::fixed, 0, 0, -1, false, 0},
        {"init all including self", kAllIncl | kInit | kAssert, false, T::none, M::fixed, 0, 0, -1, false, 0},
        {"startup self shorthand", kSelf | kStartup | 0x10, false, T::none, M::fixed, 0, 0, -1, false, 0},
        {"smi", dest(3) | kSmi, false, T::none, M::fixed, 0, 0, -1, false, 0},
        {"reserved mode 011", dest(3) | 0x300 | 0x40, false, T::none, M::fixed, 0, 0, -1, false, 0},
        {"reserved mode 111", dest(3) | 0x700 | 0x40, false, T::none, M::fixed, 0, 0, -1, false, 0},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto l = enabled(kId);
        IpiRequest out;
        out.targets = IpiTargets::physical;  // write_msr must reset it
        auto r = l.write_msr(IA32_X2APIC_ICR, c.icr, 0, &out);
        ASSERT_EQ(r.ok(), c.ok) << (r.ok() ? "" : r.error().detail);
        if (!c.ok) {
            EXPECT_NE(std::strstr(r.error().detail, "ICR"), nullptr);
            EXPECT_EQ(rd(l, IA32_X2APIC_ICR), 0u);  // a faulting write changes nothing
        } else {
            EXPECT_EQ(rd(l, IA32_X2APIC_ICR), c.icr);
        }
        EXPECT_EQ(out.targets, c.targets);
        if (c.targets != IpiTargets::none) {
            EXPECT_EQ(out.mode, c.mode);
            EXPECT_EQ(out.vector, c.vector);
            EXPECT_EQ(out.destination, c.destination);
            EXPECT_EQ(out.sender, kId);
        }
        EXPECT_EQ(l.pending_vector(), c.local_vector);
        EXPECT_EQ(l.nmi_pending(), c.local_nmi);
        EXPECT_EQ(esr(l), c.esr);
    }
}

TEST(VirtualLapic, IcrWriteNeedsARequestToFill) {
    auto l = enabled(kId);
    EXPECT_FALSE(l.write_msr(IA32_X2APIC_ICR, dest(5) | 0x40, 0, nullptr).ok());
    EXPECT_TRUE(l.write_msr(IA32_X2APIC_TPR, 0x10, 0, nullptr).ok());  // other registers do not
}

TEST(VirtualLapic, SelfIpiRegister) {
    auto l = enabled();
    wr(l, IA32_X2APIC_SELF_IPI, 0x77);
    EXPECT_TRUE(irr_bit(l, 0x77));
    EXPECT_FALSE((rd(l, IA32_X2APIC_TMR0 + 3) >> 23) & 1);  // edge
    EXPECT_EQ(take(l), 0x77);
}

TEST(VirtualLapic, IpiTargetsMatchesEachKindAndNeverTheSender) {
    IpiRequest phys{IpiTargets::physical, IpiMode::fixed, 0x40, 5, 1};
    EXPECT_TRUE(ipi_targets(phys, 5));
    EXPECT_FALSE(ipi_targets(phys, 4));
    IpiRequest all{IpiTargets::all_excluding_self, IpiMode::nmi, 0, 0, 1};
    EXPECT_TRUE(ipi_targets(all, 0));
    EXPECT_TRUE(ipi_targets(all, 2));
    EXPECT_FALSE(ipi_targets(all, 1));
    // Cluster 2, members 1 and 2 (IDs 0x21, 0x22), sent by 0x21.
    IpiRequest logical{IpiTargets::logical, IpiMode::fixed, 0x40, 0x00020006, 0x21};
    EXPECT_FALSE(ipi_targets(logical, 0x21));
    EXPECT_TRUE(ipi_targets(logical, 0x22));
    EXPECT_FALSE(ipi_targets(logical, 0x23));
    EXPECT_FALSE(ipi_targets(logical, 0x12));  // member 2 of cluster 1
    IpiRequest none{};
    EXPECT_FALSE(ipi_targets(none, 0));
}

TEST(VirtualLapic, IpiRoutedBetweenTwoModels) {
    // What the hypervisor's router does with a request.
    auto a = enabled(0);
    auto b = enabled(1);
    IpiRequest out;
    wr(a, IA32_X2APIC_ICR, dest(1) | 0x51, 0, &out);
    ASSERT_TRUE(ipi_targets(out, b.x2apic_id()));
    ASSERT_FALSE(ipi_targets(out, a.x2apic_id()));
    EXPECT_TRUE(b.accept_interrupt(out.vector));
    EXPECT_EQ(take(b), 0x51);
    EXPECT_EQ(a.pending_vector(), -1);
}

// ---- Concurrency: senders on other CPUs while the owner acks and EOIs ----

TEST(VirtualLapic, ConcurrentSendersLoseNoInterrupt) {
    auto l = enabled();
    constexpr int kThreads = 4;
    constexpr int kRounds = 2000;
    // Vectors 32..255, dealt round-robin: each thread owns 56 of them.
    std::atomic<uint32_t> sent[256] = {};
    std::atomic<uint32_t> delivered[256] = {};
    std::atomic<int> done{0};
    std::atomic<int> lost{-1};
    std::vector<std::thread> senders;
    for (int t = 0; t < kThreads; ++t) {
        senders.emplace_back([&, t] {
            for (int round = 0; round < kRounds && lost.load() < 0; ++round) {
                for (int v = 32 + t; v < 256 && lost.load() < 0; v += kThreads) {
                    // Wait until our previous one was delivered, so every new
                    // IRR bit must show up exactly once at the owner. A lost
                    // bit never shows up: give up after a generous 10 s.
                    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                    while (delivered[v].load() != sent[v].load() && lost.load() < 0) {
                        if (std::chrono::steady_clock::now() > limit) lost.store(v);
                        std::this_thread::yield();
                    }
                    if (lost.load() >= 0) break;
                    if (l.accept_interrupt(static_cast<uint8_t>(v)))
                        sent[v].fetch_add(1);
                    else
                        ADD_FAILURE() << "IRR bit " << v << " still set after delivery";
                }
            }
            done.fetch_add(1);
        });
    }
    // The owner: deliver, sometimes nest two before EOI, sometimes raise TPR.
    uint64_t iterations = 0;
    while (true) {
        const bool finished = done.load() == kThreads;
        const int v = take(l);
        if (v >= 0) {
            delivered[v].fetch_add(1);
            if ((iterations & 7) == 0) {
                const int w = take(l);  // nested: only a higher class can come in
                if (w >= 0) {
                    EXPECT_GT(w & 0xF0, v & 0xF0);
                    delivered[w].fetch_add(1);
                    EXPECT_EQ(l.eoi(), w);
                }
            }
            EXPECT_EQ(l.eoi(), v);
        } else if (finished) {
            break;
        }
        ++iterations;
    }
    for (auto& s : senders) s.join();
    ASSERT_EQ(lost.load(), -1) << "vector never delivered";
    EXPECT_EQ(l.pending_vector(), -1);
    for (int v = 32; v < 256; ++v) {
        EXPECT_EQ(sent[v].load(), static_cast<uint32_t>(kRounds)) << v;
        EXPECT_EQ(delivered[v].load(), sent[v].load()) << v;
    }
    for (uint32_t i = 0; i < 8; ++i) EXPECT_EQ(rd(l, IA32_X2APIC_ISR0 + i), 0u);
}

// ---- Randomized: the model against a plain reference of §11.8 ----

TEST(VirtualLapic, RandomSequencesMatchAReferenceModel) {
    std::mt19937 rng(12345);
    for (int run = 0; run < 200; ++run) {
        auto l = enabled();
        std::set<int> irr, isr;
        int tpr = 0;
        for (int step = 0; step < 300; ++step) {
            const int ppr_ref = [&] {
                const int isrv = isr.empty() ? 0 : *isr.rbegin();
                return (tpr & 0xF0) >= (isrv & 0xF0) ? tpr : (isrv & 0xF0);
            }();
            const int pending_ref = [&] {
                if (irr.empty()) return -1;
                const int top = *irr.rbegin();
                return (top & 0xF0) > (ppr_ref & 0xF0) ? top : -1;
            }();
            ASSERT_EQ(l.ppr(), ppr_ref) << run << ":" << step;
            ASSERT_EQ(l.pending_vector(), pending_ref) << run << ":" << step;
            switch (rng() % 5) {
                case 0:
                case 1: {
                    const int v = static_cast<int>(rng() % 256);
                    const bool fresh = v >= 16 && !irr.count(v);
                    ASSERT_EQ(l.accept_interrupt(static_cast<uint8_t>(v)), fresh);
                    if (v >= 16) irr.insert(v);
                    break;
                }
                case 2:
                    if (pending_ref >= 0) {
                        ASSERT_TRUE(l.ack(static_cast<uint8_t>(pending_ref)));
                        irr.erase(pending_ref);
                        isr.insert(pending_ref);
                    }
                    break;
                case 3: {
                    const int expect = isr.empty() ? -1 : *isr.rbegin();
                    ASSERT_EQ(l.eoi(), expect);
                    if (expect >= 0) isr.erase(expect);
                    break;
                }
                default:
                    tpr = static_cast<int>(rng() % 256);
                    wr(l, IA32_X2APIC_TPR, static_cast<uint64_t>(tpr));
                    break;
            }
        }
        for (uint32_t w = 0; w < 8; ++w) {
            uint32_t irr_ref = 0, isr_ref = 0;
            for (int b = 0; b < 32; ++b) {
                if (irr.count(static_cast<int>(w * 32 + b))) irr_ref |= 1u << b;
                if (isr.count(static_cast<int>(w * 32 + b))) isr_ref |= 1u << b;
            }
            ASSERT_EQ(rd(l, IA32_X2APIC_IRR0 + w), irr_ref);
            ASSERT_EQ(rd(l, IA32_X2APIC_ISR0 + w), isr_ref);
        }
    }
}
