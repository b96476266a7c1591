#include "vmx/vmx_cpu.hpp"

#include "kernel/cpu/x86.hpp"
#include "kernel/mm/kernel_memory.hpp"
#include "vmx/vmx_hw.hpp"

namespace hv::vmx {

namespace {
constexpr uint64_t kCr4Vmxe = 1ull << 13;
constexpr uint64_t kCr4Osxsave = 1ull << 18;
constexpr uint32_t kCpuidOsxsaveCapable = 1u << 26;  // CPUID.1:ECX.XSAVE
}  // namespace

FixedBits read_fixed_bits() {
    return FixedBits{x86::rdmsr(static_cast<uint32_t>(Msr::IA32_VMX_CR0_FIXED0)),
                     x86::rdmsr(static_cast<uint32_t>(Msr::IA32_VMX_CR0_FIXED1)),
                     x86::rdmsr(static_cast<uint32_t>(Msr::IA32_VMX_CR4_FIXED0)),
                     x86::rdmsr(static_cast<uint32_t>(Msr::IA32_VMX_CR4_FIXED1))};
}

Result<void> enable_on_this_cpu(cpu::PerCpu& pc) {
    if (pc.vmxon_phys) return {};
    if (!pc.vmx.vmx) return make_error(Errc::unsupported, "CPU has no VMX");
    if (pc.feature_control != FeatureControlState::enabled_locked)
        return make_error(Errc::unsupported, "VMX disabled in IA32_FEATURE_CONTROL by firmware");

    // CR0 and CR4 must hold the fixed-1 bits and none outside fixed-1 while in
    // VMX operation (SDM Vol. 3D §A.7, §A.8): in practice NE and VMXE.
    FixedBits f = read_fixed_bits();
    uint64_t cr0 = (x86::read_cr0() | f.cr0_fixed0) & f.cr0_fixed1;
    asm volatile("mov %0, %%cr0" ::"r"(cr0) : "memory");
    uint64_t cr4 = x86::read_cr4() | kCr4Vmxe | f.cr4_fixed0;
    // XSETBV exits are handled by executing XSETBV for the guest on its own CPU,
    // which needs CR4.OSXSAVE in the host.
    if (x86::cpuid(1).ecx & kCpuidOsxsaveCapable) cr4 |= kCr4Osxsave;
    cr4 &= f.cr4_fixed1 | kCr4Osxsave;
    x86::write_cr4(cr4);

    uint64_t region = TRY(mm::alloc_frames(1));
    auto* p = static_cast<uint32_t*>(mm::phys_to_virt(region));
    __builtin_memset(p, 0, 4096);
    p[0] = pc.vmx.vmcs_revision;  // bit 31 clear: a normal VMXON region
    auto r = hw::vmxon(region);
    if (!r) return r.error();
    pc.vmxon_phys = region;
    // Nothing may be cached from before (firmware, a previous boot stage).
    (void)hw::invept(hw::kInveptAllContexts, 0);
    (void)hw::invvpid(hw::kInvvpidAllContexts, 0);
    return {};
}

}  // namespace hv::vmx
