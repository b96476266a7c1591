// libFuzzer target for the virtual x2APIC (kernel/vdev/vlapic) and MSI
// decoding (kernel/vdev/msi): a byte stream becomes a sequence of guest
// RDMSR/WRMSR, arriving interrupts, injections, EOIs and timer ticks with an
// advancing TSC, on arbitrary clock rates. Besides memory errors and UB it
// traps on broken invariants: only deliverable vectors are offered, the
// current count never exceeds the initial count, and after tick(now) the
// next deadline is in the future.
//
// Built and run by tests/fuzz/CMakeLists.txt (ctest fuzz.vlapic).

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/vdev/msi.hpp"
#include "kernel/vdev/vlapic.hpp"

namespace {

using namespace hv::vdev;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

class Input {
  public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    bool empty() const { return pos_ >= size_; }
    uint64_t take(size_t bytes) {
        uint64_t v = 0;
        for (size_t i = 0; i < bytes && pos_ < size_; ++i) v |= uint64_t{data_[pos_++]} << (8 * i);
        return v;
    }

  private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

// Mostly real registers, so the fuzzer spends its time past the map lookup.
const uint32_t kMsrs[] = {
    IA32_X2APIC_TPR,       IA32_X2APIC_EOI,       IA32_X2APIC_SIVR,        IA32_X2APIC_ESR,       IA32_X2APIC_LVT_CMCI,
    IA32_X2APIC_ICR,       IA32_X2APIC_LVT_TIMER, IA32_X2APIC_LVT_THERMAL, IA32_X2APIC_LVT_PMI,   IA32_X2APIC_LVT_LINT0,
    IA32_X2APIC_LVT_LINT1, IA32_X2APIC_LVT_ERROR, IA32_X2APIC_INIT_COUNT,  IA32_X2APIC_CUR_COUNT, IA32_X2APIC_DIV_CONF,
    IA32_X2APIC_SELF_IPI,  IA32_TSC_DEADLINE,     IA32_X2APIC_PPR,         IA32_X2APIC_IRR0 + 2,  IA32_X2APIC_ISR0 + 7,
};

uint8_t class_of(int v) {
    return static_cast<uint8_t>(v & 0xF0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    const uint64_t tsc_hz = in.take(5) + 1;
    const uint64_t timer_hz = in.take(5) + 1;
    VirtualLapic l(static_cast<uint32_t>(in.take(1)), tsc_hz, timer_hz);
    uint64_t now = in.take(8) >> 8;  // leave room to advance

    for (int steps = 0; !in.empty() && steps < 4096; ++steps) {
        const uint8_t op = static_cast<uint8_t>(in.take(1));
        IpiRequest out;
        switch (op % 10) {
            case 0:
            case 1: {
                const uint8_t sel = static_cast<uint8_t>(in.take(1));
                const uint32_t msr = sel < 200 ? kMsrs[sel % (sizeof(kMsrs) / sizeof(kMsrs[0]))] : 0x800 + sel;
                const uint64_t value = in.take(op & 0x10 ? 8 : 4);
                (void)l.write_msr(msr, value, now, &out);
                if (out.targets != IpiTargets::none) check(!ipi_targets(out, l.x2apic_id()));
                break;
            }
            case 2: {
                const uint32_t msr = 0x800 + static_cast<uint32_t>(in.take(1));
                auto r = l.read_msr(msr, now);
                if (r.ok() && msr == IA32_X2APIC_CUR_COUNT) {
                    check(*r <= l.read_msr(IA32_X2APIC_INIT_COUNT, now).value());
                }
                if (r.ok() && msr == IA32_X2APIC_PPR) check(*r == l.ppr());
                break;
            }
            case 3: l.accept_interrupt(static_cast<uint8_t>(in.take(1)), op & 0x80); break;
            case 4: {
                const int v = l.pending_vector();
                if (v >= 0) {
                    check(v >= 16 && v <= 255);
                    check(class_of(v) > class_of(l.ppr()));
                    check(l.ack(static_cast<uint8_t>(v)));
                    check(l.ppr() >= class_of(v));
                }
                break;
            }
            case 5: l.eoi(); break;
            case 6: {
                now += in.take(op & 0x80 ? 4 : 2);
                l.tick(now);
                check(l.next_deadline() > now);
                break;
            }
            case 7:
                if (op & 0x80)
                    l.take_nmi();
                else
                    l.accept_nmi();
                break;
            case 8: {
                const uint64_t address = in.take(op & 0x80 ? 8 : 4);
                const uint32_t msi_data = static_cast<uint32_t>(in.take(4));
                auto m = decode_msi(address, msi_data, op & 0x40);
                if (m.ok() && m->delivery == MsiDelivery::fixed && msi_targets(*m, l.x2apic_id())) {
                    l.accept_interrupt(m->vector, m->level_triggered);
                }
                break;
            }
            default:
                if (op & 0x80)
                    l.reset();
                else
                    l.set_tpr(static_cast<uint8_t>(in.take(1)));
                break;
        }
    }
    return 0;
}
