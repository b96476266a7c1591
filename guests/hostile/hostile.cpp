// hostile: tries one attack on the isolation per boot. Each attack is announced
// BEFORE it is tried, so the console shows what the guest was doing when the
// hypervisor stopped it:
//
//   guest.attack n=<i> name=<attack> expect=stop|survive restart=<r> [gpa=.. map=..]
//
// Which attack runs: BootInfo.restart_count % kRotation, so with the restart
// policy "always" every restart tries the next one. A guest whose configured
// name ends with an attack's name (e.g. "hostile_spin_cli", "h-write_lapic")
// always runs that attack instead; that is the only way to get spin_cli.
//
//  n  name             what it does                                          expected outcome
//  0  read_beyond_ram  map and read GPA memory_bytes + 1 GiB                 EPT violation: guest stopped
//  1  write_lapic      map and write GPA 0xFEE00000 (the LAPIC page; not     EPT violation: guest stopped
//                      mapped for guests)
//  2  write_ram_end    map and write GPA memory_bytes, the first byte past   EPT violation: guest stopped
//                      RAM (host memory such as the hypervisor's image is
//                      not visible; this is the closest the guest can aim)
//  3  wrmsr_apic_base  WRMSR IA32_APIC_BASE (0x1B): move the LAPIC 1 MiB down  #GP injected: the runtime prints
//                                                                            guest.exception, exits 113
//  4  pci_config       OUT 0xCF8 (00:00.0 reg 0), IN 0xCFC, OUT 0xCFC to the  dropped, guest continues:
//                      read-only ID register                                 guest.attack_result survived=yes, exit 0
//  5  spin_cli         CLI; JMP $ (never exits, never yields). Not in the    the hypervisor still preempts the
//                      rotation                                              CPU (VMX-preemption timer) and can stop it
//
// An attack expected to stop the guest that does not prints
//   guest.attack_result n=<i> name=<attack> survived=yes expect=stop value=..
// and exits with code 1: the hypervisor let something through.

#include "guests/runtime/console.hpp"
#include "guests/runtime/hypercall.hpp"
#include "guests/runtime/paging.hpp"
#include "guests/runtime/runtime.hpp"
#include "guests/runtime/x86.hpp"

namespace {

using hv::abi::BootInfo;

constexpr uint64_t k1GiB = 1ull << 30;
constexpr uint64_t kLapicGpa = 0xFEE00000;
constexpr uint64_t kPoison = 0xBAD0'BAD0'BAD0'BAD0ull;
// IA32_APIC_BASE value: base 0xFEE00000, BSP (bit 8), x2APIC enable (bit 10),
// global enable (bit 11) (SDM Vol. 3A §10.4.4, §10.12.1).
// The APIC moved 1 MiB down, still enabled in x2APIC mode: the virtual APIC
// cannot be moved (rewriting its own value is allowed, so that would not be an attack).
constexpr uint64_t kApicBaseMoved = (kLapicGpa - 0x100000) | (1u << 8) | (1u << 10) | (1u << 11);
// PCI configuration mechanism #1 (PCI Local Bus Spec. 3.0 §3.2.2.3.2).
constexpr uint16_t kPciConfigAddress = 0xCF8;
constexpr uint16_t kPciConfigData = 0xCFC;
constexpr uint32_t kPciEnableBus0Dev0Reg0 = 0x8000'0000;

enum class Expect : uint8_t { stop, survive };

struct Attack {
    const char* name;
    Expect expect;
    // GPA the attack touches (0: not a memory attack), mapped before it runs.
    uint64_t (*target)(const BootInfo& info);
    // Returns the value it read (or wrote) if the guest is still alive.
    uint64_t (*run)(uint64_t gpa);
};

uint64_t read_qword(uint64_t gpa) {
    return *reinterpret_cast<volatile uint64_t*>(gpa);
}
uint64_t write_qword(uint64_t gpa) {
    *reinterpret_cast<volatile uint64_t*>(gpa) = kPoison;
    return kPoison;
}

uint64_t wrmsr_apic_base(uint64_t) {
    hvg::wrmsr(hvg::kMsrIa32ApicBase, kApicBaseMoved);  // no fixup: a #GP is meant to stop us
    return kApicBaseMoved;
}

uint64_t pci_config(uint64_t) {
    hvg::outl(kPciConfigAddress, kPciEnableBus0Dev0Reg0);
    uint32_t id = hvg::inl(kPciConfigData);
    hvg::outl(kPciConfigData, 0xFFFF'FFFF);  // vendor/device ID is read-only even on real hardware
    return id;
}

[[noreturn]] uint64_t spin_cli(uint64_t) {
    for (;;) asm volatile("cli; 1: jmp 1b" ::: "memory");
}

constexpr Attack kAttacks[] = {
    {"read_beyond_ram", Expect::stop, [](const BootInfo& i) { return i.memory_bytes + k1GiB; }, read_qword},
    {"write_lapic", Expect::stop, [](const BootInfo&) { return kLapicGpa; }, write_qword},
    {"write_ram_end", Expect::stop, [](const BootInfo& i) { return i.memory_bytes; }, write_qword},
    {"wrmsr_apic_base", Expect::stop, nullptr, wrmsr_apic_base},
    {"pci_config", Expect::survive, nullptr, pci_config},
    {"spin_cli", Expect::stop, nullptr, spin_cli},
};
constexpr uint32_t kAttackCount = sizeof kAttacks / sizeof kAttacks[0];
constexpr uint32_t kRotation = kAttackCount - 1;  // all but spin_cli
static_assert(kAttacks[kRotation].run == spin_cli, "spin_cli must stay last, outside the rotation");

bool ends_with(const char* s, const char* suffix) {
    size_t n = 0, m = 0;
    while (s[n]) ++n;
    while (suffix[m]) ++m;
    if (m > n) return false;
    for (size_t k = 0; k < m; ++k)
        if (s[n - m + k] != suffix[k]) return false;
    return true;
}

uint32_t choose_attack(const BootInfo& info) {
    for (uint32_t k = 0; k < kAttackCount; ++k)
        if (ends_with(info.name, kAttacks[k].name)) return k;
    return info.restart_count % kRotation;
}

const char* expect_name(Expect e) {
    return e == Expect::stop ? "stop" : "survive";
}

}  // namespace

extern "C" int guest_main(const BootInfo* info) {
    uint32_t n = choose_attack(*info);
    const Attack& a = kAttacks[n];

    hvg::Event announce("attack");
    announce.u("n", n).s("name", a.name).s("expect", expect_name(a.expect)).u("restart", info->restart_count);
    uint64_t gpa = 0;
    if (a.target) {
        // The hypervisor's page tables map only RAM; without our own mapping the
        // access would end in this guest's #PF and never reach EPT.
        gpa = a.target(*info);
        hvg::MapResult m = hvg::map_identity_2m(gpa);
        announce.x("gpa", gpa).s("map", hvg::map_result_name(m));
        if (m != hvg::MapResult::mapped && m != hvg::MapResult::already_mapped) {
            announce.emit();
            hvg::Event("attack_error").u("n", n).s("name", a.name).s("what", "cannot_map").emit();
            return 3;
        }
    }
    announce.emit();

    uint64_t value = a.run(gpa);

    hvg::Event("attack_result")
        .u("n", n)
        .s("name", a.name)
        .b("survived", true)
        .s("expect", expect_name(a.expect))
        .x("value", value)
        .emit();
    return a.expect == Expect::survive ? 0 : 1;
}
