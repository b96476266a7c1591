// What to inject at VM entry and which window to ask for, as tables over the
// SDM's rules (Vol. 3C §27.3.1.5 entry checks on the interruptibility state,
// §26.2 window exits, §28.2.3 NMI unblocking due to IRET).
#include "vmx/event_injection.hpp"

#include <gtest/gtest.h>

#include <string>

#include "vmx/exit_qualification.hpp"
#include "vmx/vmcs_fields.hpp"

using namespace hv::vmx;

namespace {

constexpr uint32_t kSti = kBlockingBySti, kMovSs = kBlockingByMovSs, kNmi = kBlockingByNmi, kSmi = kBlockingBySmi;

struct Row {
    const char* name;
    EventState in;
    Inject inject;
    bool nmi_window;
    bool interrupt_window;
};

// Fields: event_pending, interruptibility, IF, nmi_pending, interrupt_pending.
const Row kRows[] = {
    {"nothing pending", {false, 0, true, false, false}, Inject::none, false, false},
    {"nothing pending, every blocking", {true, kSti | kNmi, false, false, false}, Inject::none, false, false},

    // NMIs alone.
    {"NMI, open", {false, 0, true, true, false}, Inject::nmi, false, false},
    {"NMI ignores IF", {false, 0, false, true, false}, Inject::nmi, false, false},
    {"NMI ignores SMI blocking", {false, kSmi, false, true, false}, Inject::nmi, false, false},
    {"NMI under its own blocking waits for IRET", {false, kNmi, true, true, false}, Inject::none, true, false},
    {"NMI under MOV SS waits one instruction", {false, kMovSs, true, true, false}, Inject::none, true, false},
    {"NMI under MOV SS and NMI blocking", {false, kMovSs | kNmi, false, true, false}, Inject::none, true, false},
    {"NMI under STI waits out the shadow via the interrupt window",
     {false, kSti, true, true, false},
     Inject::none,
     false,
     true},
    {"NMI under STI and NMI blocking waits for IRET",
     {false, kSti | kNmi, true, true, false},
     Inject::none,
     true,
     false},
    {"NMI behind an event being re-injected", {true, 0, true, true, false}, Inject::none, true, false},
    {"NMI behind an event, STI shadow (cleared by the vectoring entry)",
     {true, kSti, true, true, false},
     Inject::none,
     true,
     false},

    // Interrupts alone (the rules the old code had).
    {"interrupt, open", {false, 0, true, false, true}, Inject::interrupt, false, false},
    {"interrupt with IF = 0", {false, 0, false, false, true}, Inject::none, false, true},
    {"interrupt under STI", {false, kSti, true, false, true}, Inject::none, false, true},
    {"interrupt under MOV SS", {false, kMovSs, true, false, true}, Inject::none, false, true},
    {"interrupt is not held by NMI blocking", {false, kNmi, true, false, true}, Inject::interrupt, false, false},
    {"interrupt behind an event being re-injected", {true, 0, true, false, true}, Inject::none, false, true},

    // Both: the NMI goes first, the interrupt waits for its window.
    {"both, open: NMI first", {false, 0, true, true, true}, Inject::nmi, false, true},
    {"both, IF = 0: NMI now, interrupt later", {false, 0, false, true, true}, Inject::nmi, false, true},
    {"both, in an NMI handler with IF = 1: the interrupt goes in",
     {false, kNmi, true, true, true},
     Inject::interrupt,
     true,
     false},
    {"both, in an NMI handler with IF = 0", {false, kNmi, false, true, true}, Inject::none, true, true},
    {"both under STI", {false, kSti, true, true, true}, Inject::none, false, true},
    {"both under MOV SS", {false, kMovSs, true, true, true}, Inject::none, true, true},
    {"both behind an event", {true, 0, true, true, true}, Inject::none, true, true},
};

const char* name(Inject i) {
    switch (i) {
        case Inject::none: return "none";
        case Inject::nmi: return "nmi";
        case Inject::interrupt: return "interrupt";
    }
    return "?";
}

// What VM entry checks (§27.3.1.5) say about injecting `i` with this state:
// the plan must never ask for an entry the CPU refuses.
bool entry_accepts(Inject i, const EventState& s) {
    switch (i) {
        case Inject::none: return true;
        case Inject::nmi:
            return !(s.interruptibility & kMovSs) && !(s.interruptibility & kNmi) &&
                   !(s.interruptibility & kSti);  // "may" be required: never rely on it
        case Inject::interrupt: return s.interrupts_enabled && !(s.interruptibility & (kSti | kMovSs));
    }
    return false;
}

}  // namespace

TEST(PlanEvents, SdmTable) {
    for (const Row& r : kRows) {
        const EventPlan p = plan_events(r.in);
        EXPECT_EQ(p.inject, r.inject) << r.name << ": injected " << name(p.inject);
        EXPECT_EQ(p.nmi_window, r.nmi_window) << r.name;
        EXPECT_EQ(p.interrupt_window, r.interrupt_window) << r.name;
    }
}

TEST(PlanEvents, EveryStateGivesALegalEntryAndLosesNothing) {
    // All 2^5 * 16 combinations (interruptibility bits 3:0): the plan is
    // accepted by VM entry, injects at most what is pending, and whatever
    // is pending and not injected has a window that will bring it back.
    for (uint32_t bits = 0; bits < 32; ++bits) {
        for (uint32_t intr = 0; intr < 16; ++intr) {
            EventState s{(bits & 1) != 0, intr, (bits & 2) != 0, (bits & 4) != 0, (bits & 8) != 0};
            if ((intr & kSti) && !s.interrupts_enabled) continue;  // not a state entry accepts at all
            if ((intr & kSti) && (intr & kMovSs)) continue;        // ditto
            const EventPlan p = plan_events(s);
            const std::string what = "bits=" + std::to_string(bits) + " intr=" + std::to_string(intr);
            if (s.event_pending) {
                EXPECT_EQ(p.inject, Inject::none) << what;
            } else {
                EXPECT_TRUE(entry_accepts(p.inject, s)) << what << " injects " << name(p.inject);
            }
            // An interrupt window only opens with IF = 1: asked for an NMI held by
            // STI alone, it relies on STI blocking implying IF = 1 (§27.3.1.5).
            EXPECT_TRUE(!p.interrupt_window || s.interrupt_pending || s.interrupts_enabled) << what;
            // Each as "if A then B", i.e. !A || B.
            EXPECT_TRUE(p.inject != Inject::nmi || s.nmi_pending) << what;
            EXPECT_TRUE(p.inject != Inject::interrupt || s.interrupt_pending) << what;
            EXPECT_TRUE(!s.nmi_pending || p.inject == Inject::nmi || p.nmi_window || p.interrupt_window) << what;
            EXPECT_TRUE(!s.interrupt_pending || p.inject == Inject::interrupt || p.interrupt_window) << what;
            EXPECT_TRUE(s.nmi_pending || !p.nmi_window) << what;
            EXPECT_TRUE(s.nmi_pending || s.interrupt_pending || !p.interrupt_window) << what;
        }
    }
}

TEST(NmiUnblockedByIret, EptViolationQualificationBit12) {
    const auto ept = static_cast<uint16_t>(ExitReason::EPT_VIOLATION);
    EXPECT_TRUE(nmi_unblocked_by_iret(ept, 0x1000 | 0x181, 0, 0));
    EXPECT_FALSE(nmi_unblocked_by_iret(ept, 0x181, 0, 0));
    // During event delivery the bit is undefined.
    const uint32_t vectoring = encode_interruption(14, InterruptionType::hardware_exception, true);
    EXPECT_FALSE(nmi_unblocked_by_iret(ept, 0x1000, 0, vectoring));
    EXPECT_TRUE(nmi_unblocked_by_iret(static_cast<uint16_t>(ExitReason::PML_FULL), 0x1000, 0, 0));
}

TEST(NmiUnblockedByIret, ExceptionExitInterruptionBit12) {
    const auto exc = static_cast<uint16_t>(ExitReason::EXCEPTION_NMI);
    const uint32_t gp = encode_interruption(13, InterruptionType::hardware_exception, true);
    EXPECT_TRUE(nmi_unblocked_by_iret(exc, 0, gp | (1u << 12), 0));
    EXPECT_FALSE(nmi_unblocked_by_iret(exc, 0, gp, 0));
    // Undefined for #DF and with an event being delivered; meaningless when the field is invalid.
    const uint32_t df = encode_interruption(8, InterruptionType::hardware_exception, true);
    EXPECT_FALSE(nmi_unblocked_by_iret(exc, 0, df | (1u << 12), 0));
    EXPECT_FALSE(nmi_unblocked_by_iret(exc, 0, gp | (1u << 12),
                                       encode_interruption(32, InterruptionType::external_interrupt, false)));
    EXPECT_FALSE(nmi_unblocked_by_iret(exc, 0, (1u << 12) | 13, 0));
}

TEST(NmiUnblockedByIret, OtherExitsNeverReportIt) {
    // The qualification of other exits has its own bit 12 (an I/O port, a CR number...).
    for (auto r : {ExitReason::IO_INSTRUCTION, ExitReason::CR_ACCESS, ExitReason::EPT_MISCONFIG, ExitReason::HLT,
                   ExitReason::NMI_WINDOW}) {
        EXPECT_FALSE(nmi_unblocked_by_iret(static_cast<uint16_t>(r), ~0ull, ~0u & ~kInterruptionValid, 0))
            << exit_reason_name(static_cast<uint16_t>(r));
    }
}

TEST(ReinjectionInterruptibility, AnNmiCutOffMayBeInjectedAgain) {
    const uint32_t nmi = encode_interruption(2, InterruptionType::nmi, false);
    EXPECT_EQ(reinjection_interruptibility(nmi, kNmi), 0u);
    EXPECT_EQ(reinjection_interruptibility(nmi, kNmi | kSmi), kSmi);
    // Other events keep the guest's NMI blocking: an interrupt or #PF cut off
    // inside an NMI handler is still inside it.
    const uint32_t irq = encode_interruption(0x40, InterruptionType::external_interrupt, false);
    EXPECT_EQ(reinjection_interruptibility(irq, kNmi), kNmi);
    const uint32_t pf = encode_interruption(14, InterruptionType::hardware_exception, true);
    EXPECT_EQ(reinjection_interruptibility(pf, kNmi), kNmi);
    EXPECT_EQ(reinjection_interruptibility(0, kNmi), kNmi);
}
