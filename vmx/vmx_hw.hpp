#pragma once
// VMX instructions as always-inline wrappers (the NOVA habit). Failure is read
// straight from the flags (SDM Vol. 3C §31.2 "Conventions"): CF=1 is
// VMfailInvalid (no current VMCS), ZF=1 is VMfailValid with the reason in the
// VM-instruction error field, which the returned Error carries as its value.

#include <stdint.h>

#include "kernel/lib/result.hpp"
#include "vmx/vmcs_fields.hpp"

namespace hv::vmx::hw {

#define HV_VMX_INLINE inline __attribute__((always_inline))

HV_VMX_INLINE uint64_t vmread_raw(uint32_t field) {
    uint64_t v;
    asm volatile("vmread %1, %0" : "=r"(v) : "r"(static_cast<uint64_t>(field)) : "cc");
    return v;
}

HV_VMX_INLINE Result<void> check(bool cf, bool zf, const char* what) {
    if (cf) return make_error(Errc::hardware, what, 0);  // VMfailInvalid
    if (zf) return make_error(Errc::hardware, what, vmread_raw(static_cast<uint32_t>(VmcsField32::VM_INSTRUCTION_ERROR)));
    return {};
}

HV_VMX_INLINE Result<void> vmxon(uint64_t phys) {
    bool cf, zf;
    asm volatile("vmxon %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(phys) : "memory");
    return cf ? make_error(Errc::hardware, "VMXON failed", 0) : zf ? make_error(Errc::hardware, "VMXON failed (VMfailValid)", 0) : Result<void>{};
}

HV_VMX_INLINE Result<void> vmclear(uint64_t phys) {
    bool cf, zf;
    asm volatile("vmclear %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(phys) : "memory");
    return check(cf, zf, "VMCLEAR failed");
}

HV_VMX_INLINE Result<void> vmptrld(uint64_t phys) {
    bool cf, zf;
    asm volatile("vmptrld %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(phys) : "memory");
    return check(cf, zf, "VMPTRLD failed");
}

HV_VMX_INLINE Result<void> vmwrite_raw(uint32_t field, uint64_t value) {
    bool cf, zf;
    asm volatile("vmwrite %3, %2" : "=@ccc"(cf), "=@ccz"(zf) : "r"(static_cast<uint64_t>(field)), "rm"(value) : "memory");
    return check(cf, zf, "VMWRITE failed");
}

HV_VMX_INLINE Result<void> vmwrite(VmcsField16 f, uint16_t v) { return vmwrite_raw(static_cast<uint32_t>(f), v); }
HV_VMX_INLINE Result<void> vmwrite(VmcsField32 f, uint32_t v) { return vmwrite_raw(static_cast<uint32_t>(f), v); }
HV_VMX_INLINE Result<void> vmwrite(VmcsField64 f, uint64_t v) { return vmwrite_raw(static_cast<uint32_t>(f), v); }
HV_VMX_INLINE Result<void> vmwrite(VmcsFieldNatural f, uint64_t v) { return vmwrite_raw(static_cast<uint32_t>(f), v); }

HV_VMX_INLINE uint16_t vmread(VmcsField16 f) { return static_cast<uint16_t>(vmread_raw(static_cast<uint32_t>(f))); }
HV_VMX_INLINE uint32_t vmread(VmcsField32 f) { return static_cast<uint32_t>(vmread_raw(static_cast<uint32_t>(f))); }
HV_VMX_INLINE uint64_t vmread(VmcsField64 f) { return vmread_raw(static_cast<uint32_t>(f)); }
HV_VMX_INLINE uint64_t vmread(VmcsFieldNatural f) { return vmread_raw(static_cast<uint32_t>(f)); }

// INVEPT/INVVPID descriptors and types (SDM Vol. 3C §31.3).
struct alignas(16) InveptDescriptor {
    uint64_t eptp;
    uint64_t reserved;
};
struct alignas(16) InvvpidDescriptor {
    uint64_t vpid;
    uint64_t linear_address;
};
inline constexpr uint64_t kInveptSingleContext = 1;
inline constexpr uint64_t kInveptAllContexts = 2;
inline constexpr uint64_t kInvvpidSingleContext = 1;
inline constexpr uint64_t kInvvpidAllContexts = 2;

HV_VMX_INLINE Result<void> invept(uint64_t type, uint64_t eptp) {
    InveptDescriptor d{eptp, 0};
    bool cf, zf;
    asm volatile("invept %2, %3" : "=@ccc"(cf), "=@ccz"(zf) : "m"(d), "r"(type) : "memory");
    return check(cf, zf, "INVEPT failed");
}

HV_VMX_INLINE Result<void> invvpid(uint64_t type, uint16_t vpid) {
    InvvpidDescriptor d{vpid, 0};
    bool cf, zf;
    asm volatile("invvpid %2, %3" : "=@ccc"(cf), "=@ccz"(zf) : "m"(d), "r"(type) : "memory");
    return check(cf, zf, "INVVPID failed");
}

HV_VMX_INLINE void vmxoff() { asm volatile("vmxoff" ::: "cc", "memory"); }

}  // namespace hv::vmx::hw
