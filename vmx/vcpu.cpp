#include "vmx/vcpu.hpp"

#include "drivers/lapic.hpp"
#include "kernel/abi/guest_abi.hpp"
#include "kernel/cpu/x86.hpp"
#include "kernel/guest/guest_devices.hpp"
#include "kernel/mm/kernel_memory.hpp"
#include "kernel/vdev/vlapic.hpp"
#include "kernel/x86/insn_decoder.hpp"
#include "kernel/x86/mmio_emulate.hpp"
#include "kernel/x86/page_walk.hpp"
#include "vmx/event_injection.hpp"
#include "vmx/exit_qualification.hpp"
#include "vmx/vmcs_fields.hpp"
#include "vmx/vmx_controls.hpp"
#include "vmx/vmx_cpu.hpp"
#include "vmx/vmx_hw.hpp"

extern "C" uint64_t vmx_enter(hv::guest::GuestRegs* regs, uint64_t launched);
extern "C" void vmx_exit();

namespace hv::vmx {

using guest::Guest;
using guest::Vcpu;
using hw::vmread;
using hw::vmwrite;

namespace {

// --- Architectural constants used here (SDM Vol. 3A §2.5, §4.1, Vol. 3C §24.4.1);
// the CR0/CR4/EFER bits are in kernel/x86/control_regs.hpp.
constexpr uint64_t kRflagsIf = 1ull << 9;
constexpr uint64_t kDefaultPat = 0x0007040600070406ull;
constexpr uint32_t kActivityActive = 0, kActivityHlt = 1;
constexpr uint32_t kArUnusable = 1u << 16;
// Segment access rights: type | S | DPL | P | L | D/B | G (SDM Vol. 3C Table 25-2).
constexpr uint32_t kArCode64 = 0xB | (1u << 4) | (1u << 7) | (1u << 13) | (1u << 15);
constexpr uint32_t kArData = 0x3 | (1u << 4) | (1u << 7) | (1u << 14) | (1u << 15);
constexpr uint32_t kArTss64Busy = 0xB | (1u << 7);  // also "busy 32-bit TSS" outside IA-32e mode
constexpr uint32_t kArCode32 = 0xB | (1u << 4) | (1u << 7) | (1u << 14) | (1u << 15);
constexpr uint32_t kArCode16 = 0xB | (1u << 4) | (1u << 7);  // real mode: 16-bit, byte granular
constexpr uint32_t kArData16 = 0x3 | (1u << 4) | (1u << 7);

constexpr uint16_t kUartBase = 0x3F8;
enum UartReg : uint16_t { THR = 0, IER = 1, IIR = 2, LCR = 3, MCR = 4, LSR = 5, MSR_REG = 6, SCR = 7 };

// MSRs (SDM Vol. 4).
constexpr uint32_t IA32_TSC = 0x10, IA32_APIC_BASE = 0x1B, IA32_SYSENTER_CS = 0x174, IA32_SYSENTER_ESP = 0x175,
                   IA32_SYSENTER_EIP = 0x176, IA32_MISC_ENABLE = 0x1A0, IA32_PAT = 0x277, IA32_EFER = 0xC0000080,
                   IA32_STAR = 0xC0000081, IA32_LSTAR = 0xC0000082, IA32_CSTAR = 0xC0000083,
                   IA32_FMASK = 0xC0000084, IA32_FS_BASE = 0xC0000100, IA32_GS_BASE = 0xC0000101,
                   IA32_KERNEL_GS_BASE = 0xC0000102, IA32_TSC_AUX = 0xC0000103;

constexpr uint8_t kVectorNmi = 2, kVectorUd = 6, kVectorGp = 13;
constexpr uint8_t kWakeupVector = 0xF0;

alignas(4096) constinit uint8_t g_msr_bitmap[4096];
alignas(4096) constinit uint8_t g_io_bitmap_a[4096];
alignas(4096) constinit uint8_t g_io_bitmap_b[4096];
constinit bool g_bitmaps_ready = false;

uint64_t image_phys(const void* p) { return reinterpret_cast<uint64_t>(p); }  // identity-mapped image

// MSR bitmap layout (SDM Vol. 3C §25.6.9): read-low, read-high, write-low, write-high,
// 1 KiB each; low = 0..0x1FFF, high = 0xC0000000..0xC0001FFF. A clear bit = no exit.
void msr_passthrough(uint32_t msr, bool read, bool write) {
    uint32_t base = msr >= 0xC0000000 ? 1024 : 0;
    uint32_t bit = msr & 0x1FFF;
    if (read) g_msr_bitmap[base + bit / 8] &= static_cast<uint8_t>(~(1u << (bit % 8)));
    if (write) g_msr_bitmap[2048 + base + bit / 8] &= static_cast<uint8_t>(~(1u << (bit % 8)));
}

}  // namespace

Result<void> init_global_bitmaps() {
    if (g_bitmaps_ready) return {};
    // Deny by default: every port and every MSR exits, then the few MSRs that
    // only hold guest state the hypervisor never uses itself go straight through.
    __builtin_memset(g_io_bitmap_a, 0xFF, sizeof g_io_bitmap_a);
    __builtin_memset(g_io_bitmap_b, 0xFF, sizeof g_io_bitmap_b);
    __builtin_memset(g_msr_bitmap, 0xFF, sizeof g_msr_bitmap);
    // FS/GS bases are switched by the VMCS on every exit/entry.
    msr_passthrough(IA32_FS_BASE, true, true);
    msr_passthrough(IA32_GS_BASE, true, true);
    // SWAPGS and SYSCALL state: the hypervisor uses neither, and each physical
    // CPU belongs to one guest, so the guest may own them outright.
    msr_passthrough(IA32_KERNEL_GS_BASE, true, true);
    msr_passthrough(IA32_STAR, true, true);
    msr_passthrough(IA32_LSTAR, true, true);
    msr_passthrough(IA32_CSTAR, true, true);
    msr_passthrough(IA32_FMASK, true, true);
    msr_passthrough(IA32_TSC_AUX, true, true);
    // Reading the TSC is harmless; writing it would skew the hypervisor's clock.
    msr_passthrough(IA32_TSC, true, false);
    g_bitmaps_ready = true;
    return {};
}

namespace {

// Asks every vCPU of the guest to leave it; the others are kicked out of
// non-root operation by the wake-up IPI instead of waiting for their next tick.
void request_stop(Guest& g) {
    __atomic_store_n(&g.stop_requested, true, __ATOMIC_RELEASE);
    for (uint32_t i = 0; i < g.vcpu_count; ++i) guest::kick(g.vcpus[i]);
}

// The first vCPU to stop the guest writes its stop record; a guest stops as a whole.
void record_stop(Vcpu& v, const guest::StopRecord& r, const char* detail = nullptr) {
    Guest& g = *v.guest;
    if (!__atomic_exchange_n(&g.stop_claimed, true, __ATOMIC_ACQ_REL)) {
        g.stop = r;
        g.stop_detail = detail;
        g.stop_vcpu = v.index;
    }
    request_stop(g);
}

// Starts an application vCPU that is still waiting for its start: set_start
// fills in its start state, then its CPU is woken to claim it. False when it
// was started already. One starter at a time (start_lock).
template <typename SetStart>
bool start_waiting_vcpu(Vcpu& t, SetStart&& set_start) {
    LockGuard lock(t.guest->start_lock);
    if (__atomic_load_n(&t.run, __ATOMIC_ACQUIRE) != guest::VcpuRun::waiting_start) return false;
    set_start(t);
    __atomic_store_n(&t.run, guest::VcpuRun::runnable, __ATOMIC_RELEASE);
    guest::wake_cpu(t);
    return true;
}

// INIT-SIPI (SDM Vol. 3A §9.4.4): a SIPI starts an application vCPU that is
// still waiting for its start, in real mode at vector << 12. A vCPU already
// started ignores it, as a CPU not in wait-for-SIPI does.
void start_by_sipi(Vcpu& t, uint8_t vector) {
    (void)start_waiting_vcpu(t, [vector](Vcpu& v) {
        v.start = guest::VcpuStart::sipi;
        v.start_rip = static_cast<uint64_t>(vector) << 12;
    });
}

// Delivers an IPI the sender's APIC model produced to the guest's other vCPUs.
void route_ipi(Vcpu& from, const vdev::IpiRequest& req) {
    Guest& g = *from.guest;
    for (uint32_t i = 0; i < g.vcpu_count; ++i) {
        Vcpu& t = g.vcpus[i];
        if (!vdev::ipi_targets(req, t.index)) continue;
        switch (req.mode) {
            case vdev::IpiMode::fixed:
                if (t.lapic.accept_interrupt(req.vector)) guest::kick(t);
                break;
            case vdev::IpiMode::nmi: (void)guest::send_nmi(t); break;
            case vdev::IpiMode::init: break;  // a waiting vCPU is already in its INIT state
            case vdev::IpiMode::startup: start_by_sipi(t, req.vector); break;
        }
    }
}

bool canonical(uint64_t a) { return static_cast<uint64_t>(static_cast<int64_t>(a << 16) >> 16) == a; }

class Exit {
  public:
    Exit(cpu::PerCpu& pc, Vcpu& v) : pc_(pc), v_(v), g_(*v.guest) {}

    enum class Action { resume, stop };
    Action handle();
    uint16_t reason() const { return reason_; }

  private:
    uint64_t& reg(unsigned n) { return v_.regs.gpr[n]; }
    uint64_t& rax() { return v_.regs.gpr[0]; }
    uint64_t& rcx() { return v_.regs.gpr[1]; }
    uint64_t& rdx() { return v_.regs.gpr[2]; }
    uint64_t& rdi() { return v_.regs.gpr[7]; }
    uint64_t& rsi() { return v_.regs.gpr[6]; }

    void skip_instruction() {
        uint64_t rip = vmread(VmcsFieldNatural::GUEST_RIP);
        set_rip(rip + vmread(VmcsField32::VM_EXIT_INSTRUCTION_LEN));
    }
    // The instruction completed: an STI or MOV SS shadow it was in ends with
    // it (SDM Vol. 3A §6.8.3). Left set, "sti; hlt" would enter HLT with STI
    // blocking, which VM entry refuses (SDM Vol. 3C §27.3.1.5).
    void set_rip(uint64_t rip) {
        (void)vmwrite(VmcsFieldNatural::GUEST_RIP, rip);
        const uint32_t shadows = kBlockingBySti | kBlockingByMovSs;
        uint32_t blocking = vmread(VmcsField32::GUEST_INTERRUPTIBILITY_INFO);
        if (blocking & shadows) (void)vmwrite(VmcsField32::GUEST_INTERRUPTIBILITY_INFO, blocking & ~shadows);
    }
    Action inject(uint8_t vector, bool error_code) {
        (void)vmwrite(VmcsField32::VM_ENTRY_INTR_INFO_FIELD,
                      encode_interruption(vector, InterruptionType::hardware_exception, error_code));
        if (error_code) (void)vmwrite(VmcsField32::VM_ENTRY_EXCEPTION_ERROR_CODE, 0);
        ++v_.counters.injected;
        return Action::resume;
    }
    // Stops the whole guest; the record is written by whichever vCPU stops it first.
    Action stop(const char* reason, bool failure, int64_t code = 0, uint64_t gpa = 0) {
        record_stop(v_, guest::StopRecord{reason, failure, reason_, vmread(VmcsFieldNatural::GUEST_RIP), gpa,
                                          qualification_, code, x86::rdtsc()});
        return Action::stop;
    }

    Action on_cpuid();
    Action on_msr(bool write);
    Action on_io();
    Action on_cr();
    Action on_hlt();
    Action on_vmcall();
    Action on_xsetbv();
    Action on_ept_violation();
    Action on_external_interrupt();
    Action on_exception_nmi();
    Action on_apic_msr(uint32_t msr, bool write, uint64_t value);
    Action on_mmio(uint64_t gpa);
    abi::Status vcpu_start(uint64_t index, uint64_t rip, uint64_t rsp);
    void uart_out(uint16_t offset, uint8_t value);
    uint8_t uart_in(uint16_t offset);
    uint32_t guest_cpl() { return (vmread(VmcsField32::GUEST_SS_AR_BYTES) >> 5) & 3; }

    cpu::PerCpu& pc_;
    Vcpu& v_;
    Guest& g_;
    uint16_t reason_ = 0;
    uint64_t qualification_ = 0;

    friend void hv::vmx::run_vcpu(cpu::PerCpu&, Vcpu&);
};

Exit::Action Exit::handle() {
    ExitReasonInfo info = decode_exit_reason(vmread(VmcsField32::VM_EXIT_REASON));
    reason_ = info.basic;
    qualification_ = vmread(VmcsFieldNatural::EXIT_QUALIFICATION);
    ++v_.counters.exits;
    if (reason_ < sizeof v_.counters.by_reason / sizeof v_.counters.by_reason[0]) ++v_.counters.by_reason[reason_];
    if (info.entry_failure) return stop("entry_failed", true, reason_);
    // An exit in the middle of delivering an event (SDM Vol. 3C §28.2.4): the
    // event is delivered again on the next entry, as if nothing happened. An
    // NMI cut off that way may have left virtual-NMI blocking set, which the
    // re-injection must not carry.
    const uint32_t vectoring = vmread(VmcsField32::IDT_VECTORING_INFO_FIELD);
    if (vectoring & kInterruptionValid) {
        (void)vmwrite(VmcsField32::VM_ENTRY_INTR_INFO_FIELD, vectoring & ~(1u << 12));
        (void)vmwrite(VmcsField32::VM_ENTRY_EXCEPTION_ERROR_CODE, vmread(VmcsField32::IDT_VECTORING_ERROR_CODE));
        (void)vmwrite(VmcsField32::VM_ENTRY_INSTRUCTION_LEN, vmread(VmcsField32::VM_EXIT_INSTRUCTION_LEN));
        const uint32_t blocking = vmread(VmcsField32::GUEST_INTERRUPTIBILITY_INFO);
        const uint32_t resume_with = reinjection_interruptibility(vectoring, blocking);
        if (resume_with != blocking) (void)vmwrite(VmcsField32::GUEST_INTERRUPTIBILITY_INFO, resume_with);
    } else {
        // A fault or EPT violation in an IRET that had just ended the guest's
        // NMI handler: the IRET runs again, so the handler is still running.
        const uint32_t exit_interruption =
            reason_ == static_cast<uint16_t>(ExitReason::EXCEPTION_NMI) ? vmread(VmcsField32::VM_EXIT_INTR_INFO) : 0;
        if (nmi_unblocked_by_iret(reason_, qualification_, exit_interruption, vectoring)) {
            (void)vmwrite(VmcsField32::GUEST_INTERRUPTIBILITY_INFO,
                          vmread(VmcsField32::GUEST_INTERRUPTIBILITY_INFO) | kBlockingByNmi);
        }
    }

    switch (static_cast<ExitReason>(reason_)) {
        case ExitReason::CPUID: return on_cpuid();
        case ExitReason::RDMSR: return on_msr(false);
        case ExitReason::WRMSR: return on_msr(true);
        case ExitReason::IO_INSTRUCTION: return on_io();
        case ExitReason::CR_ACCESS: return on_cr();
        case ExitReason::HLT: return on_hlt();
        case ExitReason::VMCALL: return on_vmcall();
        case ExitReason::XSETBV: return on_xsetbv();
        case ExitReason::EPT_VIOLATION: return on_ept_violation();
        case ExitReason::EPT_MISCONFIG: return stop("ept_misconfig", true);
        case ExitReason::TRIPLE_FAULT: return stop("triple_fault", true);
        case ExitReason::INIT_SIGNAL: return stop("init_signal", true);
        case ExitReason::EXTERNAL_INTERRUPT: return on_external_interrupt();
        case ExitReason::EXCEPTION_NMI: return on_exception_nmi();
        // The guest can take interrupts (or its NMI) again: the entry below delivers them.
        case ExitReason::INTERRUPT_WINDOW:
        case ExitReason::NMI_WINDOW: return Action::resume;
        case ExitReason::PREEMPTION_TIMER:
            ++v_.counters.timer_ticks;
            if (v_.yielding) {
                v_.yielding = false;
                (void)vmwrite(VmcsField32::GUEST_ACTIVITY_STATE, kActivityActive);
            }
            return Action::resume;
        // Cache flushes would reach caches other partitions share: a no-op here.
        case ExitReason::WBINVD:
        case ExitReason::INVD: skip_instruction(); return Action::resume;
        // No performance counters and no MONITOR/MWAIT for guests (hidden in CPUID).
        case ExitReason::RDPMC: return inject(kVectorGp, true);
        case ExitReason::MWAIT:
        case ExitReason::MONITOR:
        // No nested virtualisation: VMX instructions are undefined for the guest.
        case ExitReason::VMCLEAR:
        case ExitReason::VMLAUNCH:
        case ExitReason::VMPTRLD:
        case ExitReason::VMPTRST:
        case ExitReason::VMREAD:
        case ExitReason::VMRESUME:
        case ExitReason::VMWRITE:
        case ExitReason::VMXOFF:
        case ExitReason::VMXON:
        case ExitReason::INVEPT:
        case ExitReason::INVVPID:
        case ExitReason::VMFUNC:
        case ExitReason::GETSEC:
        case ExitReason::ENCLS: return inject(kVectorUd, false);
        default: return stop("unhandled_exit", true, reason_);
    }
}

// CPUID as the guest sees it (docs/guest-abi.md): no VMX, a hypervisor bit and
// our leaves at 0x40000000.
Exit::Action Exit::on_cpuid() {
    uint32_t leaf = static_cast<uint32_t>(rax()), sub = static_cast<uint32_t>(rcx());
    x86::CpuidResult r{0, 0, 0, 0};
    if (leaf == abi::kCpuidHypervisorBase) {
        uint32_t sig[3];
        __builtin_memcpy(sig, abi::kCpuidSignature, 12);
        r = {abi::kCpuidHypervisorMaxLeaf, sig[0], sig[1], sig[2]};
    } else if (leaf == abi::kCpuidHypervisorMaxLeaf) {
        r = {abi::kHypercallAbiVersion, 0, 0, 0};
    } else if (leaf >= abi::kCpuidHypervisorBase && leaf < 0x50000000) {
        r = {0, 0, 0, 0};
    } else {
        r = x86::cpuid(leaf, sub);
        if (leaf == 1) {
            // Hide VMX (5), SMX (6), MONITOR (3) and PDCM (15): none is
            // virtualised. Offer the virtual APIC: x2APIC (21) and its TSC
            // deadline timer (24). Bit 31: hypervisor present.
            r.ecx &= ~((1u << 3) | (1u << 5) | (1u << 6) | (1u << 15));
            r.ecx |= (1u << 21) | (1u << 24) | (1u << 31);
            // Initial APIC ID = vCPU index; logical processors = the guest's vCPUs.
            r.ebx = (r.ebx & 0xFFFF) | ((g_.vcpu_count & 0xFF) << 16) | (v_.index << 24);
        } else if (leaf == 5 || leaf == 0xA) {
            r = {0, 0, 0, 0};  // MONITOR leaf and performance monitoring: not offered
        } else if (leaf == 0xB || leaf == 0x1F) {
            // x2APIC topology (SDM Vol. 2A CPUID leaf 0BH): one thread per core,
            // the guest's vCPUs as the cores of one package, APIC ID = index.
            uint32_t shift = 0;
            while ((1u << shift) < g_.vcpu_count) ++shift;
            if (sub == 0) r = {0, 1, 0x100, v_.index};
            else if (sub == 1) r = {shift, g_.vcpu_count, 0x201, v_.index};
            else r = {0, 0, sub & 0xFF, v_.index};
        }
    }
    rax() = r.eax;
    reg(3) = r.ebx;
    rcx() = r.ecx;
    rdx() = r.edx;
    skip_instruction();
    return Action::resume;
}

// MSRs outside the passthrough set exit here. A short allow-list is emulated;
// everything else is refused with #GP and counted (docs/guest-abi.md).
Exit::Action Exit::on_msr(bool write) {
    uint32_t msr = static_cast<uint32_t>(rcx());
    uint64_t value = (rdx() << 32) | (rax() & 0xFFFFFFFF);
    if (vdev::VirtualLapic::handles_msr(msr)) return on_apic_msr(msr, write, value);
    uint64_t out = 0;
    bool ok = true;
    switch (msr) {
        case IA32_EFER: {
            if (!write) {
                out = vmread(VmcsField64::GUEST_IA32_EFER);
                break;
            }
            uint64_t cur = vmread(VmcsField64::GUEST_IA32_EFER);
            bool paging = vmread(VmcsFieldNatural::CR0_READ_SHADOW) & x86::kCr0PG;
            if ((value & ~(x86::kEferSCE | x86::kEferLME | x86::kEferLMA | x86::kEferNXE)) ||
                (paging && ((value ^ cur) & x86::kEferLME))) {
                ok = false;
                break;
            }
            (void)vmwrite(VmcsField64::GUEST_IA32_EFER, (value & ~x86::kEferLMA) | (cur & x86::kEferLMA));
            break;
        }
        case IA32_PAT:
            if (!write) {
                out = vmread(VmcsField64::GUEST_IA32_PAT);
                break;
            }
            for (int i = 0; i < 8 && ok; ++i) {
                uint8_t t = static_cast<uint8_t>(value >> (8 * i));
                ok = t == 0 || t == 1 || t == 4 || t == 5 || t == 6 || t == 7;
            }
            if (ok) (void)vmwrite(VmcsField64::GUEST_IA32_PAT, value);
            break;
        case IA32_SYSENTER_CS:
            if (write) (void)vmwrite(VmcsField32::GUEST_SYSENTER_CS, static_cast<uint32_t>(value));
            else out = vmread(VmcsField32::GUEST_SYSENTER_CS);
            break;
        case IA32_SYSENTER_ESP:
            if (write) (void)vmwrite(VmcsFieldNatural::GUEST_SYSENTER_ESP, value);
            else out = vmread(VmcsFieldNatural::GUEST_SYSENTER_ESP);
            break;
        case IA32_SYSENTER_EIP:
            if (write) (void)vmwrite(VmcsFieldNatural::GUEST_SYSENTER_EIP, value);
            else out = vmread(VmcsFieldNatural::GUEST_SYSENTER_EIP);
            break;
        case IA32_APIC_BASE: {
            // The virtual APIC is always enabled (EN, bit 11) in x2APIC mode
            // (EXTD, bit 10) at the usual base; vCPU 0 is the BSP (bit 8). It
            // cannot be moved or switched: rewriting the same value is allowed.
            uint64_t base = 0xFEE00000ull | (1ull << 11) | (1ull << 10) | (v_.index == 0 ? 1ull << 8 : 0);
            if (write) ok = value == base;
            else out = base;
            break;
        }
        case IA32_MISC_ENABLE:
            if (write) ok = false;
            else out = 1;  // fast strings
            break;
        default: ok = false; break;
    }
    if (!ok) {
        ++v_.counters.msr_denied;
        return inject(kVectorGp, true);
    }
    if (!write) {
        rax() = out & 0xFFFFFFFF;
        rdx() = out >> 32;
    }
    skip_instruction();
    return Action::resume;
}

// The x2APIC MSRs and IA32_TSC_DEADLINE go to the vCPU's virtual APIC; an
// ICR write may produce an IPI for the guest's other vCPUs.
Exit::Action Exit::on_apic_msr(uint32_t msr, bool write, uint64_t value) {
    uint64_t now = x86::rdtsc();
    if (write) {
        vdev::IpiRequest req;
        if (auto r = v_.lapic.write_msr(msr, value, now, &req); !r) {
            ++v_.counters.apic_errors;
            return inject(kVectorGp, true);
        }
        if (req.targets != vdev::IpiTargets::none) {
            ++v_.counters.ipis;
            route_ipi(v_, req);
        }
    } else {
        auto r = v_.lapic.read_msr(msr, now);
        if (!r) {
            ++v_.counters.apic_errors;
            return inject(kVectorGp, true);
        }
        rax() = *r & 0xFFFFFFFF;
        rdx() = *r >> 32;
    }
    skip_instruction();
    return Action::resume;
}

void Exit::uart_out(uint16_t offset, uint8_t value) {
    bool dlab = g_.uart_lcr & 0x80;
    switch (offset) {
        case THR:
            if (!dlab) {
                LockGuard lock(g_.uart_lock);  // one UART, several vCPUs
                g_.console.put_char(static_cast<char>(value));
            }
            break;  // with DLAB set: divisor latch, meaningless here
        case LCR: g_.uart_lcr = value; break;
        case SCR: g_.uart_scratch = value; break;
        default: break;  // IER, FCR, MCR: accepted, no effect
    }
}

uint8_t Exit::uart_in(uint16_t offset) {
    switch (offset) {
        // Transmitter empty and idle, unless this guest's console ring is full:
        // then "busy", which is back-pressure for a guest that polls LSR.
        case LSR: return g_.console.full() ? 0x00 : 0x60;
        case IIR: return 0x01;       // no interrupt pending
        case LCR: return g_.uart_lcr;
        case MSR_REG: return 0xB0;   // DCD, DSR, CTS
        case SCR: return g_.uart_scratch;
        default: return 0;           // RBR (no input yet), IER, MCR
    }
}

// Port I/O: the guest's UART is emulated; any other port reads all-ones and
// drops writes, counted (a PC with nothing on that port behaves the same).
Exit::Action Exit::on_io() {
    IoAccess io = decode_io_access(qualification_);
    if (io.string) {
        // INS/OUTS would need the guest's linear-to-physical walk: refused for now.
        ++v_.counters.io_dropped_out;
        return inject(kVectorGp, true);
    }
    uint64_t mask = io.size == 1 ? 0xFF : io.size == 2 ? 0xFFFF : 0xFFFFFFFF;
    bool uart = io.port >= kUartBase && io.port < kUartBase + 8 && io.size == 1;
    uint32_t dev_value = static_cast<uint32_t>(rax() & mask);
    bool device = !uart && guest::device_io(g_, static_cast<uint16_t>(io.port), static_cast<uint8_t>(io.size), io.in,
                                            &dev_value);
    if (io.in) {
        uint64_t v = mask;
        if (uart) v = uart_in(static_cast<uint16_t>(io.port - kUartBase));
        else if (device) v = dev_value;
        else ++v_.counters.io_unknown_in;
        // A 32-bit IN zero-extends into RAX; 8/16-bit ones keep the upper bits.
        rax() = io.size == 4 ? (v & mask) : ((rax() & ~mask) | (v & mask));
    } else {
        if (uart) uart_out(static_cast<uint16_t>(io.port - kUartBase), static_cast<uint8_t>(rax()));
        else if (!device) ++v_.counters.io_dropped_out;
    }
    skip_instruction();
    return Action::resume;
}

// Control registers: CR0/CR4 bits the hypervisor owns are masked (the guest
// sees its own values through the read shadows); CR8 is virtual.
Exit::Action Exit::on_cr() {
    CrAccess a = decode_cr_access(qualification_);
    FixedBits f = read_fixed_bits();
    auto gpr = [&](unsigned n) -> uint64_t { return n == 4 ? vmread(VmcsFieldNatural::GUEST_RSP) : reg(n); };
    if (a.type == CrAccessType::mov_to_cr && a.cr == 0) {
        uint64_t v = gpr(a.gpr);
        if ((v >> 32) || ((v & x86::kCr0PG) && !(v & x86::kCr0PE)) || ((v & x86::kCr0NW) && !(v & x86::kCr0CD)))
            return inject(kVectorGp, true);
        // Unrestricted guest: PE and PG are the guest's; other fixed bits (NE) are forced.
        uint64_t fixed0 = f.cr0_fixed0 & ~(x86::kCr0PE | x86::kCr0PG);
        uint64_t efer = vmread(VmcsField64::GUEST_IA32_EFER);
        uint32_t entry = vmread(VmcsField32::VM_ENTRY_CONTROLS);
        if ((v & x86::kCr0PG) && (efer & x86::kEferLME)) {
            efer |= x86::kEferLMA;
            entry |= entry_ctl::IA32E_MODE_GUEST;
        } else if (!(v & x86::kCr0PG)) {
            efer &= ~x86::kEferLMA;
            entry &= ~entry_ctl::IA32E_MODE_GUEST;
        }
        (void)vmwrite(VmcsField64::GUEST_IA32_EFER, efer);
        (void)vmwrite(VmcsField32::VM_ENTRY_CONTROLS, entry);
        (void)vmwrite(VmcsFieldNatural::GUEST_CR0, (v | fixed0) & f.cr0_fixed1);
        (void)vmwrite(VmcsFieldNatural::CR0_READ_SHADOW, v);
    } else if (a.type == CrAccessType::mov_to_cr && a.cr == 4) {
        uint64_t v = gpr(a.gpr);
        // No nested VMX; no bit the CPU cannot hold in VMX operation.
        if ((v & x86::kCr4VMXE) || (v & ~f.cr4_fixed1)) return inject(kVectorGp, true);
        (void)vmwrite(VmcsFieldNatural::GUEST_CR4, v | f.cr4_fixed0);
        (void)vmwrite(VmcsFieldNatural::CR4_READ_SHADOW, v);
    } else if (a.cr == 8) {
        // The guest's task priority is virtual: the real TPR of this CPU must not
        // mask the hypervisor's own interrupts (stop requests).
        if (a.type == CrAccessType::mov_to_cr) {
            uint64_t v = gpr(a.gpr);
            if (v > 15) return inject(kVectorGp, true);
            v_.lapic.set_tpr(static_cast<uint8_t>(v << 4));  // CR8 is TPR[7:4] (SDM Vol. 3A §11.8.6.1)
        } else if (a.type == CrAccessType::mov_from_cr) {
            uint64_t cr8 = v_.lapic.tpr() >> 4;
            if (a.gpr == 4) (void)vmwrite(VmcsFieldNatural::GUEST_RSP, cr8);
            else reg(a.gpr) = cr8;
        }
    } else if (a.type == CrAccessType::clts) {
        (void)vmwrite(VmcsFieldNatural::GUEST_CR0, vmread(VmcsFieldNatural::GUEST_CR0) & ~x86::kCr0TS);
        (void)vmwrite(VmcsFieldNatural::CR0_READ_SHADOW, vmread(VmcsFieldNatural::CR0_READ_SHADOW) & ~x86::kCr0TS);
    } else if (a.type == CrAccessType::lmsw) {
        // LMSW loads CR0 bits 3:0 but can never clear PE.
        uint64_t shadow = vmread(VmcsFieldNatural::CR0_READ_SHADOW);
        uint64_t v = (shadow & ~0xEull) | (a.lmsw_source & 0xF) | (shadow & x86::kCr0PE);
        (void)vmwrite(VmcsFieldNatural::CR0_READ_SHADOW, v);
        (void)vmwrite(VmcsFieldNatural::GUEST_CR0, (vmread(VmcsFieldNatural::GUEST_CR0) & ~0xFull) | (v & 0xF) | x86::kCr0NE);
    } else {
        return stop("unhandled_cr_access", true, static_cast<int64_t>(qualification_));
    }
    skip_instruction();
    return Action::resume;
}

// HLT: the guest sleeps until it has work. With interrupts disabled nothing
// can ever wake vCPU 0: that is the guest stopping itself. An application
// vCPU doing the same is only parking itself (as an OS does with a CPU it
// takes offline); the guest goes on.
Exit::Action Exit::on_hlt() {
    skip_instruction();
    bool interrupts_on = vmread(VmcsFieldNatural::GUEST_RFLAGS) & kRflagsIf;
    if (!interrupts_on && v_.index == 0) return stop("halted", false);
    // An interrupt is already waiting: HLT returns at once (the entry delivers it).
    if (interrupts_on && v_.lapic.pending_vector() >= 0) return Action::resume;
    v_.halted = true;
    (void)vmwrite(VmcsField32::GUEST_ACTIVITY_STATE, kActivityHlt);
    return Action::resume;
}

// Hypercalls (docs/guest-abi.md, kernel/abi/guest_abi.hpp).
Exit::Action Exit::on_vmcall() {
    if (guest_cpl() != 0) return inject(kVectorUd, false);  // kernel-mode ABI only
    ++v_.counters.hypercalls;
    auto status = abi::Status::ok;
    switch (static_cast<abi::Hypercall>(rax())) {
        case abi::Hypercall::abi_version: rdx() = abi::kHypercallAbiVersion; break;
        case abi::Hypercall::tsc_hz: rdx() = g_.tsc_hz; break;
        case abi::Hypercall::yield:
            // Sleep until the next timer tick: HLT activity state, woken by the
            // preemption-timer exit below instead of by an interrupt.
            v_.yielding = true;
            (void)vmwrite(VmcsField32::GUEST_ACTIVITY_STATE, kActivityHlt);
            break;
        case abi::Hypercall::console_write: {
            uint64_t gpa = rdi(), len = rsi();
            if (len > 4096) {
                status = abi::Status::invalid_argument;
                break;
            }
            const uint8_t* p = g_.mem.at(gpa, len);
            if (!p) {
                status = abi::Status::fault;
                break;
            }
            // Copied byte by byte: the guest may change the buffer meanwhile, which
            // only garbles its own output.
            LockGuard lock(g_.uart_lock);
            for (uint64_t i = 0; i < len; ++i) g_.console.put_char(static_cast<char>(p[i]));
            rdx() = len;
            break;
        }
        case abi::Hypercall::exit: {
            skip_instruction();
            int64_t code = static_cast<int64_t>(rdi());
            return stop("exit", code != 0, code);
        }
        case abi::Hypercall::vcpu_start: status = vcpu_start(rdi(), rsi(), rdx()); break;
        default: status = abi::Status::unknown_call; break;
    }
    if (status != abi::Status::ok) ++v_.counters.hypercall_errors;
    rax() = static_cast<uint64_t>(status);
    skip_instruction();
    return Action::resume;
}

// vcpu_start hypercall (docs/guest-abi.md "vCPUs"): start application vCPU
// `index` in 64-bit mode with the caller's paging, at rip with rsp; RDI = index.
abi::Status Exit::vcpu_start(uint64_t index, uint64_t rip, uint64_t rsp) {
    uint64_t efer = vmread(VmcsField64::GUEST_IA32_EFER);
    if (!(efer & x86::kEferLMA)) return abi::Status::invalid_argument;  // only from 64-bit mode
    if (index == 0 || index >= g_.vcpu_count || !canonical(rip) || !canonical(rsp))
        return abi::Status::invalid_argument;
    // What the caller's CR0/CR4 look like to the caller: owned bits from the shadows.
    const uint64_t cr0_mask = vmread(VmcsFieldNatural::CR0_GUEST_HOST_MASK);
    const uint64_t cr4_mask = vmread(VmcsFieldNatural::CR4_GUEST_HOST_MASK);
    const uint64_t cr0 = (vmread(VmcsFieldNatural::GUEST_CR0) & ~cr0_mask) | (vmread(VmcsFieldNatural::CR0_READ_SHADOW) & cr0_mask);
    const uint64_t cr4 = (vmread(VmcsFieldNatural::GUEST_CR4) & ~cr4_mask) | (vmread(VmcsFieldNatural::CR4_READ_SHADOW) & cr4_mask);
    const uint64_t cr3 = vmread(VmcsFieldNatural::GUEST_CR3);
    bool started = start_waiting_vcpu(g_.vcpus[index], [&](Vcpu& t) {
        t.start = guest::VcpuStart::long64;
        t.start_cr0 = cr0;
        t.start_cr4 = cr4;
        t.start_cr3 = cr3;
        t.start_efer = efer;
        t.start_rip = rip;
        t.start_rsp = rsp;
    });
    return started ? abi::Status::ok : abi::Status::invalid_argument;  // invalid: already started
}

// XSETBV: only XCR0, only feature sets the CPU supports and that are
// architecturally consistent (SDM Vol. 1 §13.3); the value is then loaded on
// this CPU, which belongs to this guest.
Exit::Action Exit::on_xsetbv() {
    uint64_t value = (rdx() << 32) | (rax() & 0xFFFFFFFF);
    auto d = x86::cpuid(0xD, 0);
    uint64_t supported = (static_cast<uint64_t>(d.edx) << 32) | d.eax;
    bool ok = rcx() == 0 && (value & 1) && !(value & ~supported) && !((value & 4) && !(value & 2));
    if (!ok) return inject(kVectorGp, true);
    asm volatile("xsetbv" ::"c"(0), "a"(static_cast<uint32_t>(value)), "d"(static_cast<uint32_t>(value >> 32)));
    skip_instruction();
    return Action::resume;
}

// Any access outside the guest's RAM: the guest is stopped with the address.
Exit::Action Exit::on_ept_violation() {
    uint64_t gpa = vmread(VmcsField64::GUEST_PHYSICAL_ADDRESS);
    // Outside RAM the EPT maps nothing: a device's registers, or an attack.
    if (guest::device_claims(g_, gpa)) return on_mmio(gpa);
    return stop("ept_violation", true, 0, gpa);
}

// An access to device memory (SDM Vol. 3C §28.2.3.2: an EPT violation gives
// the guest-physical address but not the instruction): fetch the instruction
// at RIP through the guest's own page tables, decode it, and carry it out
// against the device (kernel/x86). What cannot be emulated stops the guest
// with a record naming it; the hypervisor never guesses.
Exit::Action Exit::on_mmio(uint64_t gpa) {
    const uint64_t cr0 = vmread(VmcsFieldNatural::GUEST_CR0), cr4 = vmread(VmcsFieldNatural::GUEST_CR4);
    const uint64_t efer = vmread(VmcsField64::GUEST_IA32_EFER);
    const uint64_t rflags_in = vmread(VmcsFieldNatural::GUEST_RFLAGS);
    const uint32_t cs_ar = vmread(VmcsField32::GUEST_CS_AR_BYTES);
    const x86::CpuMode mode = x86::cpu_mode(cr0 & x86::kCr0PE, efer & x86::kEferLMA, cs_ar & (1u << 13), cs_ar & (1u << 14),
                                            rflags_in & (1ull << 17));
    const uint64_t rip = vmread(VmcsFieldNatural::GUEST_RIP);
    uint64_t linear = rip;
    if (mode != x86::CpuMode::long64) linear = (vmread(VmcsFieldNatural::GUEST_CS_BASE) + rip) & 0xFFFFFFFF;

    x86::PagingState ps;
    ps.cr0 = cr0;
    ps.cr3 = vmread(VmcsFieldNatural::GUEST_CR3);
    ps.cr4 = cr4;
    ps.efer = efer;
    ps.maxphyaddr = static_cast<uint8_t>(x86::cpuid(0x80000008).eax & 0xFF);
    if ((cr0 & x86::kCr0PG) && (cr4 & x86::kCr4PAE) && !(efer & x86::kEferLMA)) {
        ps.use_pdptes = true;
        ps.pdpte[0] = vmread(VmcsField64::GUEST_PDPTE0);
        ps.pdpte[1] = vmread(VmcsField64::GUEST_PDPTE1);
        ps.pdpte[2] = vmread(VmcsField64::GUEST_PDPTE2);
        ps.pdpte[3] = vmread(VmcsField64::GUEST_PDPTE3);
    }
    x86::GuestMemoryReader reader(g_.mem);
    uint8_t bytes[15];
    size_t got = 0;
    while (got < sizeof bytes) {
        auto t = x86::translate(ps, reader, linear + got, {x86::AccessType::fetch, guest_cpl() == 3});
        if (!t || !t->ok()) break;  // the rest is unreachable: decode what we have
        uint64_t n = sizeof bytes - got;
        if (t->bytes_to_page_end < n) n = t->bytes_to_page_end;
        const uint8_t* p = g_.mem.at(t->gpa, n);
        if (!p) break;  // code outside RAM (executing from a device)
        __builtin_memcpy(bytes + got, p, n);
        got += n;
    }
    auto insn = x86::decode_mmio(bytes, got, mode);
    if (!insn) {
        record_stop(v_, guest::StopRecord{"mmio_not_emulated", true, reason_, rip, gpa, qualification_,
                                          static_cast<int64_t>(insn.error().value), x86::rdtsc()},
                    insn.error().detail);
        return Action::stop;
    }

    class Device final : public x86::MmioDevice {
      public:
        Device(Guest& g, uint64_t gpa) : g_(g), gpa_(gpa) {}
        uint64_t read(uint8_t size) override { return guest::device_mmio_read(g_, gpa_, size); }
        void write(uint8_t size, uint64_t value) override { guest::device_mmio_write(g_, gpa_, size, value); }

      private:
        Guest& g_;
        uint64_t gpa_;
    } device(g_, gpa);
    // RSP lives in the VMCS, not in the saved registers (slot 4).
    v_.regs.gpr[4] = vmread(VmcsFieldNatural::GUEST_RSP);
    uint64_t rflags = rflags_in;
    if (auto r = x86::emulate_mmio(*insn, v_.regs.gpr, rflags, device); !r) {
        record_stop(v_, guest::StopRecord{"mmio_not_emulated", true, reason_, rip, gpa, qualification_,
                                          static_cast<int64_t>(r.error().value), x86::rdtsc()},
                    r.error().detail);
        return Action::stop;
    }
    (void)vmwrite(VmcsFieldNatural::GUEST_RSP, v_.regs.gpr[4]);
    (void)vmwrite(VmcsFieldNatural::GUEST_RFLAGS, rflags);
    set_rip(x86::next_rip(rip, *insn, mode));
    ++v_.counters.mmio;
    return Action::resume;
}

Exit::Action Exit::on_external_interrupt() {
    // Acknowledged by the exit (exit control); the vector is informational. The
    // hypervisor's only interrupt here is the wake-up/stop IPI, checked by the loop.
    Interruption i = decode_interruption(vmread(VmcsField32::VM_EXIT_INTR_INFO));
    (void)i;
    drv::Lapic::eoi();
    return Action::resume;
}

Exit::Action Exit::on_exception_nmi() {
    Interruption i = decode_interruption(vmread(VmcsField32::VM_EXIT_INTR_INFO));
    if (i.type == InterruptionType::nmi) {
        // The CPU's NMIs belong to the hypervisor and are never given to a
        // guest (a guest's own NMIs are virtual, injected by prepare_entry);
        // none is used yet, so it is only counted.
        ++v_.counters.nmis;
        return Action::resume;
    }
    // The exception bitmap is empty, so only #MC lands here: the guest cannot go on.
    return stop("exception", true, i.vector);
}

// The register state a vCPU starts in (docs/guest-abi.md "Start states").
struct StartState {
    enum class Kind : uint8_t { long64, protected32, real16 } kind;
    uint64_t cr0, cr3, cr4, efer;  // guest-visible values
    uint64_t rip, rsp;
    uint64_t cs_base;              // real mode: CS = cs_base >> 4
};

StartState start_state(const Vcpu& v) {
    const Guest& g = *v.guest;
    StartState st{};
    switch (v.start) {
        case guest::VcpuStart::image:
            if (g.cfg.mode == config::StartMode::long64) {
                st = {StartState::Kind::long64, x86::kCr0PE | x86::kCr0MP | x86::kCr0ET | x86::kCr0NE | x86::kCr0WP | x86::kCr0PG, abi::kPml4Gpa,
                      x86::kCr4PAE, x86::kEferLME | x86::kEferLMA | x86::kEferNXE, g.elf.entry, abi::kStackTopGpa, 0};
            } else if (g.cfg.mode == config::StartMode::protected32) {
                st = {StartState::Kind::protected32, x86::kCr0PE | x86::kCr0ET | x86::kCr0NE, 0, 0, 0, g.elf.entry, abi::kStackTopGpa, 0};
            } else {
                // CS:IP = entry >> 4 : entry & 0xF, as DOS loads a program.
                uint64_t base = g.elf.entry & 0xFFFF0;
                st = {StartState::Kind::real16, x86::kCr0ET | x86::kCr0NE, 0, 0, 0, g.elf.entry - base, abi::kRealStackTop, base};
            }
            break;
        case guest::VcpuStart::long64:
            st = {StartState::Kind::long64, v.start_cr0, v.start_cr3, v.start_cr4, v.start_efer, v.start_rip,
                  v.start_rsp, 0};
            break;
        case guest::VcpuStart::sipi:
            // SDM Vol. 3A §9.4.4.1: the AP starts in real mode at vector << 12 (CS = vector << 8, IP = 0).
            st = {StartState::Kind::real16, x86::kCr0ET | x86::kCr0NE, 0, 0, 0, 0, 0, v.start_rip};
            break;
    }
    return st;
}

Result<void> setup_vmcs(cpu::PerCpu& pc, Vcpu& v, const VmcsControls& ctl) {
    const Guest& g = *v.guest;
    FixedBits f = read_fixed_bits();
    const StartState start = start_state(v);
    const bool long_mode = start.kind == StartState::Kind::long64;
    const bool real = start.kind == StartState::Kind::real16;

    // Controls (vmx_controls.cpp gives each one's reason).
    TRY(vmwrite(VmcsField32::PIN_BASED_VM_EXEC_CONTROL, ctl.pin));
    TRY(vmwrite(VmcsField32::CPU_BASED_VM_EXEC_CONTROL, ctl.proc));
    TRY(vmwrite(VmcsField32::SECONDARY_VM_EXEC_CONTROL, ctl.proc2));
    TRY(vmwrite(VmcsField32::VM_EXIT_CONTROLS, ctl.exit));
    // IA-32e mode only for a guest that starts in 64-bit mode.
    TRY(vmwrite(VmcsField32::VM_ENTRY_CONTROLS, ctl.entry | (long_mode ? entry_ctl::IA32E_MODE_GUEST : 0)));
    TRY(vmwrite(VmcsField32::EXCEPTION_BITMAP, 0));
    TRY(vmwrite(VmcsField32::PAGE_FAULT_ERROR_CODE_MASK, 0));
    TRY(vmwrite(VmcsField32::PAGE_FAULT_ERROR_CODE_MATCH, 0));
    TRY(vmwrite(VmcsField32::CR3_TARGET_COUNT, 0));
    TRY(vmwrite(VmcsField32::VM_EXIT_MSR_STORE_COUNT, 0));
    TRY(vmwrite(VmcsField32::VM_EXIT_MSR_LOAD_COUNT, 0));
    TRY(vmwrite(VmcsField32::VM_ENTRY_MSR_LOAD_COUNT, 0));
    TRY(vmwrite(VmcsField32::VM_ENTRY_INTR_INFO_FIELD, 0));
    TRY(vmwrite(VmcsField64::IO_BITMAP_A, image_phys(g_io_bitmap_a)));
    TRY(vmwrite(VmcsField64::IO_BITMAP_B, image_phys(g_io_bitmap_b)));
    TRY(vmwrite(VmcsField64::MSR_BITMAP, image_phys(g_msr_bitmap)));
    TRY(vmwrite(VmcsField64::EPT_POINTER, g.eptp));
    TRY(vmwrite(VmcsField16::VIRTUAL_PROCESSOR_ID, v.vpid));
    TRY(vmwrite(VmcsField64::VMCS_LINK_POINTER, ~0ull));
    TRY(vmwrite(VmcsField64::TSC_OFFSET, 0));

    // CR0/CR4 bits the CPU fixes in VMX operation belong to the hypervisor; the
    // guest reads its own values from the shadows. PE/PG are the guest's
    // (unrestricted guest). SDM Vol. 3C §25.6.6.
    uint64_t cr0_owned = ((f.cr0_fixed0 & ~(x86::kCr0PE | x86::kCr0PG)) | ~f.cr0_fixed1) & 0xFFFFFFFF;
    uint64_t cr4_owned = (f.cr4_fixed0 | ~f.cr4_fixed1) & 0xFFFFFFFF;
    // 16- and 32-bit starts run with paging off, which unrestricted guest
    // allows (SDM Vol. 3C §26.3.1.1: PE and PG may be 0).
    const uint64_t cr0 = start.cr0, cr4 = start.cr4;
    TRY(vmwrite(VmcsFieldNatural::CR0_GUEST_HOST_MASK, cr0_owned));
    TRY(vmwrite(VmcsFieldNatural::CR4_GUEST_HOST_MASK, cr4_owned));
    TRY(vmwrite(VmcsFieldNatural::CR0_READ_SHADOW, cr0));
    TRY(vmwrite(VmcsFieldNatural::CR4_READ_SHADOW, cr4));

    // Host state: what the CPU loads on every exit (SDM Vol. 3C §26.5).
    TRY(vmwrite(VmcsFieldNatural::HOST_CR0, x86::read_cr0()));
    TRY(vmwrite(VmcsFieldNatural::HOST_CR3, x86::read_cr3()));
    TRY(vmwrite(VmcsFieldNatural::HOST_CR4, x86::read_cr4()));
    TRY(vmwrite(VmcsField16::HOST_CS_SELECTOR, cpu::kKernelCode));
    TRY(vmwrite(VmcsField16::HOST_SS_SELECTOR, cpu::kKernelData));
    TRY(vmwrite(VmcsField16::HOST_DS_SELECTOR, cpu::kKernelData));
    TRY(vmwrite(VmcsField16::HOST_ES_SELECTOR, cpu::kKernelData));
    TRY(vmwrite(VmcsField16::HOST_FS_SELECTOR, 0));
    TRY(vmwrite(VmcsField16::HOST_GS_SELECTOR, 0));
    TRY(vmwrite(VmcsField16::HOST_TR_SELECTOR, cpu::kTssSelector));
    TRY(vmwrite(VmcsFieldNatural::HOST_FS_BASE, 0));
    TRY(vmwrite(VmcsFieldNatural::HOST_GS_BASE, reinterpret_cast<uint64_t>(&pc)));
    TRY(vmwrite(VmcsFieldNatural::HOST_TR_BASE, reinterpret_cast<uint64_t>(&pc.tss)));
    TRY(vmwrite(VmcsFieldNatural::HOST_GDTR_BASE, reinterpret_cast<uint64_t>(&pc.gdt)));
    TRY(vmwrite(VmcsFieldNatural::HOST_IDTR_BASE, cpu::idt_base()));
    TRY(vmwrite(VmcsField32::HOST_IA32_SYSENTER_CS, 0));
    TRY(vmwrite(VmcsFieldNatural::HOST_IA32_SYSENTER_ESP, 0));
    TRY(vmwrite(VmcsFieldNatural::HOST_IA32_SYSENTER_EIP, 0));
    TRY(vmwrite(VmcsField64::HOST_IA32_EFER, x86::rdmsr(IA32_EFER)));
    TRY(vmwrite(VmcsField64::HOST_IA32_PAT, x86::rdmsr(IA32_PAT)));
    TRY(vmwrite(VmcsFieldNatural::HOST_RIP, reinterpret_cast<uint64_t>(&vmx_exit)));

    // Guest state: 64-bit mode, flat segments, paging through the identity map
    // the hypervisor wrote at kPml4Gpa (docs/guest-abi.md "Start state").
    uint64_t cr0_fixed0 = f.cr0_fixed0 & ~(x86::kCr0PE | x86::kCr0PG);  // unrestricted guest
    TRY(vmwrite(VmcsFieldNatural::GUEST_CR0, (cr0 | cr0_fixed0) & f.cr0_fixed1));
    TRY(vmwrite(VmcsFieldNatural::GUEST_CR3, start.cr3));
    TRY(vmwrite(VmcsFieldNatural::GUEST_CR4, (cr4 | f.cr4_fixed0) & f.cr4_fixed1));
    TRY(vmwrite(VmcsField64::GUEST_IA32_EFER, start.efer));
    TRY(vmwrite(VmcsField64::GUEST_IA32_PAT, kDefaultPat));
    TRY(vmwrite(VmcsField64::GUEST_IA32_DEBUGCTL, 0));
    TRY(vmwrite(VmcsFieldNatural::GUEST_DR7, 0x400));
    struct Seg {
        VmcsField16 sel;
        VmcsField32 limit, ar;
        VmcsFieldNatural base;
        uint16_t value;
        uint32_t rights;
    };
    const Seg segs[] = {
        {VmcsField16::GUEST_CS_SELECTOR, VmcsField32::GUEST_CS_LIMIT, VmcsField32::GUEST_CS_AR_BYTES,
         VmcsFieldNatural::GUEST_CS_BASE, 0x08, kArCode64},
        {VmcsField16::GUEST_SS_SELECTOR, VmcsField32::GUEST_SS_LIMIT, VmcsField32::GUEST_SS_AR_BYTES,
         VmcsFieldNatural::GUEST_SS_BASE, 0x10, kArData},
        {VmcsField16::GUEST_DS_SELECTOR, VmcsField32::GUEST_DS_LIMIT, VmcsField32::GUEST_DS_AR_BYTES,
         VmcsFieldNatural::GUEST_DS_BASE, 0x10, kArData},
        {VmcsField16::GUEST_ES_SELECTOR, VmcsField32::GUEST_ES_LIMIT, VmcsField32::GUEST_ES_AR_BYTES,
         VmcsFieldNatural::GUEST_ES_BASE, 0x10, kArData},
        {VmcsField16::GUEST_FS_SELECTOR, VmcsField32::GUEST_FS_LIMIT, VmcsField32::GUEST_FS_AR_BYTES,
         VmcsFieldNatural::GUEST_FS_BASE, 0x10, kArData},
        {VmcsField16::GUEST_GS_SELECTOR, VmcsField32::GUEST_GS_LIMIT, VmcsField32::GUEST_GS_AR_BYTES,
         VmcsFieldNatural::GUEST_GS_BASE, 0x10, kArData},
        {VmcsField16::GUEST_TR_SELECTOR, VmcsField32::GUEST_TR_LIMIT, VmcsField32::GUEST_TR_AR_BYTES,
         VmcsFieldNatural::GUEST_TR_BASE, 0x18, kArTss64Busy},
        {VmcsField16::GUEST_LDTR_SELECTOR, VmcsField32::GUEST_LDTR_LIMIT, VmcsField32::GUEST_LDTR_AR_BYTES,
         VmcsFieldNatural::GUEST_LDTR_BASE, 0, kArUnusable},
    };
    // Real mode: CS is the start paragraph, the other segments are 0; limits
    // are 64 KiB and IDTR points at a (zeroed) real-mode IVT.
    const uint64_t cs_base = start.cs_base;
    for (const Seg& s : segs) {
        bool is_cs = s.sel == VmcsField16::GUEST_CS_SELECTOR;
        bool is_tr = s.sel == VmcsField16::GUEST_TR_SELECTOR;
        bool is_ldtr = s.sel == VmcsField16::GUEST_LDTR_SELECTOR;
        uint32_t rights = s.rights;
        uint16_t sel = s.value;
        if (start.kind == StartState::Kind::protected32 && is_cs) rights = kArCode32;
        if (real && !is_tr && !is_ldtr) {
            rights = is_cs ? kArCode16 : kArData16;
            sel = is_cs ? static_cast<uint16_t>(cs_base >> 4) : 0;
        }
        TRY(vmwrite(s.sel, sel));
        TRY(vmwrite(s.limit, is_tr ? 0x67u : real ? 0xFFFFu : 0xFFFFFFFFu));
        TRY(vmwrite(s.ar, rights));
        TRY(vmwrite(s.base, is_cs ? cs_base : 0));
    }
    TRY(vmwrite(VmcsFieldNatural::GUEST_GDTR_BASE, 0));
    TRY(vmwrite(VmcsField32::GUEST_GDTR_LIMIT, real ? 0xFFFF : 0));
    TRY(vmwrite(VmcsFieldNatural::GUEST_IDTR_BASE, 0));
    TRY(vmwrite(VmcsField32::GUEST_IDTR_LIMIT, real ? 0x3FF : 0));
    TRY(vmwrite(VmcsFieldNatural::GUEST_RIP, start.rip));
    TRY(vmwrite(VmcsFieldNatural::GUEST_RSP, start.rsp));
    TRY(vmwrite(VmcsFieldNatural::GUEST_RFLAGS, 0x2));
    TRY(vmwrite(VmcsFieldNatural::GUEST_PENDING_DBG_EXCEPTIONS, 0));
    TRY(vmwrite(VmcsField32::GUEST_INTERRUPTIBILITY_INFO, 0));
    TRY(vmwrite(VmcsField32::GUEST_ACTIVITY_STATE, kActivityActive));
    TRY(vmwrite(VmcsField32::GUEST_SYSENTER_CS, 0));
    TRY(vmwrite(VmcsFieldNatural::GUEST_SYSENTER_ESP, 0));
    TRY(vmwrite(VmcsFieldNatural::GUEST_SYSENTER_EIP, 0));
    return {};
}

// An event delivered to a vCPU asleep in HLT (or in the yield hypercall) ends
// the sleep, as on hardware: after the handler it runs on past the HLT.
void wake_for_event(Vcpu& v) {
    if (v.halted || v.yielding) {
        v.halted = v.yielding = false;
        (void)vmwrite(VmcsField32::GUEST_ACTIVITY_STATE, kActivityActive);
    }
}

// Before each entry: bring the APIC timer up to date, inject a pending NMI or
// else the highest deliverable interrupt if the guest can take it now (SDM
// Vol. 3C §27.6 "event injection"; the rules are plan_events()'s), else ask
// for an exit the moment it can (NMI-window or interrupt-window exiting), and
// return the preemption-timer period up to the next APIC timer expiry or the
// hypervisor's own tick, whichever is first.
uint64_t prepare_entry(Vcpu& v, uint32_t& proc, uint64_t tick_tsc) {
    uint64_t now = x86::rdtsc();
    uint64_t deadline = v.lapic.next_deadline();
    if (deadline <= now) {
        v.lapic.tick(now);
        deadline = v.lapic.next_deadline();
    }
    uint32_t windows = 0;
    int vector = -1;
    bool nmi = false;
    if (v.lapic.maybe_pending()) {
        vector = v.lapic.pending_vector();
        nmi = v.lapic.nmi_pending();
    }
    if (vector >= 0 || nmi) {
        const EventState state{
            .event_pending = (vmread(VmcsField32::VM_ENTRY_INTR_INFO_FIELD) & kInterruptionValid) != 0,
            .interruptibility = vmread(VmcsField32::GUEST_INTERRUPTIBILITY_INFO),
            .interrupts_enabled = (vmread(VmcsFieldNatural::GUEST_RFLAGS) & kRflagsIf) != 0,
            .nmi_pending = nmi,
            .interrupt_pending = vector >= 0,
        };
        const EventPlan plan = plan_events(state);
        if (plan.inject == Inject::nmi && v.lapic.take_nmi()) {
            // The CPU sets virtual-NMI blocking as it delivers it; the guest's IRET clears it.
            (void)vmwrite(VmcsField32::VM_ENTRY_INTR_INFO_FIELD,
                          encode_interruption(kVectorNmi, InterruptionType::nmi, false));
            ++v.counters.nmis_injected;
            wake_for_event(v);
        } else if (plan.inject == Inject::interrupt) {
            (void)vmwrite(VmcsField32::VM_ENTRY_INTR_INFO_FIELD,
                          encode_interruption(static_cast<uint8_t>(vector), InterruptionType::external_interrupt, false));
            (void)v.lapic.ack(static_cast<uint8_t>(vector));
            ++v.counters.interrupts;
            wake_for_event(v);
        }
        if (plan.nmi_window) windows |= proc::NMI_WINDOW_EXITING;
        if (plan.interrupt_window) windows |= proc::INTERRUPT_WINDOW_EXITING;
    }
    const uint32_t wanted = (proc & ~(proc::INTERRUPT_WINDOW_EXITING | proc::NMI_WINDOW_EXITING)) | windows;
    if (wanted != proc) {
        proc = wanted;
        (void)vmwrite(VmcsField32::CPU_BASED_VM_EXEC_CONTROL, proc);
    }
    uint64_t period = tick_tsc;
    if (deadline != vdev::VirtualLapic::kNoDeadline) {
        uint64_t until = deadline > now ? deadline - now : 0;
        if (until < period) period = until;
    }
    return period;
}

}  // namespace

void run_vcpu(cpu::PerCpu& pc, Vcpu& v) {
    Guest& g = *v.guest;
    auto fail = [&](const char* reason, const Error& e) {
        record_stop(v, guest::StopRecord{reason, true, guest::kNoExit, 0, 0, 0, static_cast<int64_t>(e.value), x86::rdtsc()},
                    e.detail);
    };
    if (auto r = enable_on_this_cpu(pc); !r) return fail("vmx_unavailable", r.error());
    auto ctl = compute_controls(pc.vmx_raw);
    if (!ctl) return fail("vmx_controls", ctl.error());
    auto* vmcs = static_cast<uint32_t*>(mm::phys_to_virt(v.vmcs_phys));
    __builtin_memset(vmcs, 0, 4096);
    vmcs[0] = pc.vmx.vmcs_revision;
    if (auto r = hw::vmclear(v.vmcs_phys); !r) return fail("vmclear", r.error());
    if (auto r = hw::vmptrld(v.vmcs_phys); !r) return fail("vmptrld", r.error());
    if (auto r = setup_vmcs(pc, v, *ctl); !r) return fail("vmcs_setup", r.error());
    // Translations of a previous run of this guest (same EPTP and VPID) must go.
    (void)hw::invept(hw::kInveptSingleContext, g.eptp);
    (void)hw::invvpid(hw::kInvvpidSingleContext, v.vpid);

    __builtin_memset(&v.regs, 0, sizeof v.regs);
    if (v.start == guest::VcpuStart::image) {
        v.regs.gpr[7] = abi::kBootInfoGpa;  // RDI
        v.regs.gpr[6] = abi::kBootMagic;    // RSI
    } else if (v.start == guest::VcpuStart::long64) {
        v.regs.gpr[7] = v.index;            // RDI: which vCPU this is
    }
    v.launched = false;
    v.halted = false;
    v.yielding = false;
    const uint64_t rate = pc.vmx.preemption_timer_rate;
    const uint64_t tick_tsc = (g.tsc_hz ? g.tsc_hz : 1'000'000'000ull) / kTimerHz;
    uint32_t proc = ctl->proc;
    v.first_entry_tsc = x86::rdtsc();

    for (;;) {
        if (__atomic_load_n(&g.stop_requested, __ATOMIC_ACQUIRE)) {
            // Asked by the boot CPU (operator, shutdown) or by another vCPU that stopped the guest.
            record_stop(v, guest::StopRecord{"stopped_by_hypervisor", false, guest::kNoExit,
                                             vmread(VmcsFieldNatural::GUEST_RIP), 0, 0, 0, x86::rdtsc()});
            break;
        }
        // The preemption timer counts TSC >> rate (SDM Vol. 3C §26.5.1).
        uint64_t timer = prepare_entry(v, proc, tick_tsc) >> rate;
        if (timer > 0xFFFFFFFF) timer = 0xFFFFFFFF;
        (void)vmwrite(VmcsField32::VMX_PREEMPTION_TIMER_VALUE, static_cast<uint32_t>(timer));
        uint64_t rc = vmx_enter(&v.regs, v.launched);
        const uint64_t exit_tsc = x86::rdtsc();
        if (rc != 0) {
            uint32_t err = rc == 2 ? vmread(VmcsField32::VM_INSTRUCTION_ERROR) : 0;
            record_stop(v, guest::StopRecord{"entry_failed", true, guest::kNoExit, vmread(VmcsFieldNatural::GUEST_RIP), 0,
                                             0, err, x86::rdtsc()},
                        vm_instruction_error_name(err));
            break;
        }
        v.launched = true;
        Exit exit(pc, v);
        if (exit.handle() == Exit::Action::stop) break;
        // Up to here (the next entry's preparation is counted with the next exit).
        const uint64_t spent = x86::rdtsc() - exit_tsc;
        v.counters.host_ticks += spent;
        if (exit.reason() < sizeof v.counters.ticks_by_reason / sizeof v.counters.ticks_by_reason[0])
            v.counters.ticks_by_reason[exit.reason()] += spent;
    }
    {
        LockGuard lock(g.uart_lock);
        g.console.flush_partial();
    }
    (void)hw::vmclear(v.vmcs_phys);
}

}  // namespace hv::vmx
