#include "drivers/lapic.hpp"

#include "kernel/cpu/x86.hpp"

namespace hv::drv {

namespace {
constexpr uint64_t kApicBaseEnable = 1ull << 11;
constexpr uint64_t kApicBaseX2 = 1ull << 10;
constexpr uint64_t kApicBaseAddrMask = 0x000FFFFFFFFFF000ull;

// xAPIC register offsets / x2APIC MSRs (0x800 + offset/16), SDM Vol. 3A Table 10-1, 10-6.
constexpr uint32_t kRegId = 0x20;
constexpr uint32_t kRegEoi = 0xB0;
constexpr uint32_t kRegSvr = 0xF0;
constexpr uint32_t kRegIcrLow = 0x300;
constexpr uint32_t kRegIcrHigh = 0x310;
constexpr uint32_t kX2Msr(uint32_t reg) { return 0x800 + reg / 16; }

constexpr uint32_t kSvrEnable = 1u << 8;
constexpr uint32_t kSpuriousVector = 0xFF;
constexpr uint32_t kIcrInit = 5u << 8;
constexpr uint32_t kIcrStartup = 6u << 8;
constexpr uint32_t kIcrLevelAssert = 1u << 14;
constexpr uint32_t kIcrDeliveryPending = 1u << 12;

constinit bool g_x2apic = false;
constinit volatile uint32_t* g_mmio = nullptr;

uint32_t read(uint32_t reg) {
    if (g_x2apic) return static_cast<uint32_t>(x86::rdmsr(kX2Msr(reg)));
    return g_mmio[reg / 4];
}

void write(uint32_t reg, uint32_t v) {
    if (g_x2apic) x86::wrmsr(kX2Msr(reg), v);
    else g_mmio[reg / 4] = v;
}

Result<void> send_ipi(uint32_t apic_id, uint32_t low) {
    if (g_x2apic) {
        // x2APIC ICR is one 64-bit MSR with the destination in bits 63:32.
        x86::wrmsr(kX2Msr(kRegIcrLow), (static_cast<uint64_t>(apic_id) << 32) | low);
        return {};
    }
    if (apic_id > 0xFF) return make_error(Errc::unsupported, "xAPIC cannot address APIC id > 255", apic_id);
    write(kRegIcrHigh, apic_id << 24);
    write(kRegIcrLow, low);
    for (uint32_t i = 0; i < 1'000'000; ++i) {
        if (!(read(kRegIcrLow) & kIcrDeliveryPending)) return {};
        x86::pause();
    }
    return make_error(Errc::timeout, "xAPIC IPI stuck in delivery-pending", apic_id);
}
}  // namespace

void Lapic::init_global(bool x2apic, volatile uint32_t* mmio) {
    g_x2apic = x2apic;
    g_mmio = mmio;
}

bool Lapic::x2apic() { return g_x2apic; }

uint64_t Lapic::base_phys() { return x86::rdmsr(x86::Msr::IA32_APIC_BASE) & kApicBaseAddrMask; }

void Lapic::enable_local() {
    uint64_t base = x86::rdmsr(x86::Msr::IA32_APIC_BASE);
    base |= kApicBaseEnable;
    if (g_x2apic) base |= kApicBaseX2;  // xAPIC -> x2APIC is a legal transition (§10.12.5)
    x86::wrmsr(x86::Msr::IA32_APIC_BASE, base);
    write(kRegSvr, kSvrEnable | kSpuriousVector);
}

uint32_t Lapic::id() {
    uint32_t v = read(kRegId);
    return g_x2apic ? v : v >> 24;
}

Result<void> Lapic::send_init(uint32_t apic_id) { return send_ipi(apic_id, kIcrInit | kIcrLevelAssert); }

Result<void> Lapic::send_startup(uint32_t apic_id, uint8_t vector_page) {
    return send_ipi(apic_id, kIcrStartup | vector_page);
}

void Lapic::eoi() { write(kRegEoi, 0); }

Result<void> Lapic::send_nmi(uint32_t apic_id) { return send_ipi(apic_id, (4u << 8) | kIcrLevelAssert); }

Result<void> Lapic::send_fixed(uint32_t apic_id, uint8_t vector) { return send_ipi(apic_id, vector | kIcrLevelAssert); }

}  // namespace hv::drv
