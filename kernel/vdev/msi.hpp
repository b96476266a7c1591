#pragma once
// Decoding of x86 message-signalled interrupts (SDM Vol. 3A §11.11): the
// address/data pair a device (our virtio-pci MSI-X table) writes. The result
// says which vCPU's VirtualLapic gets what; routing is the caller's.

#include <stdint.h>

#include "kernel/lib/result.hpp"

namespace hv::vdev {

enum class MsiDelivery : uint8_t {
    fixed,  // also lowest priority: with one physical destination it is that CPU
    nmi,
};

struct MsiMessage {
    uint32_t destination = 0;  // x2APIC ID (physical destination mode)
    bool broadcast = false;    // destination 0xFF: every vCPU (KVM does the same in x2APIC mode)
    bool redirection_hint = false;
    bool lowest_priority = false;  // delivery mode was 001b (delivered as fixed)
    MsiDelivery delivery = MsiDelivery::fixed;
    uint8_t vector = 0;            // fixed only; an illegal one (< 16) is the receiver's ESR error
    bool level_triggered = false;  // data bit 15
    bool level_assert = false;     // data bit 14 (meaningful for level only)
};

// `ext_dest_id`: address bits 11:5 carry destination bits 14:8, the
// convention of KVM_FEATURE_MSI_EXT_DEST_ID (Linux Documentation/virt/kvm/
// cpuid.rst), which a guest uses only if the hypervisor advertises it.
// Errors name the field: not an interrupt address, reserved bits, logical
// destination mode, or a delivery mode other than fixed, lowest priority, NMI.
Result<MsiMessage> decode_msi(uint64_t address, uint32_t data, bool ext_dest_id = false);

// Does the decoded message reach the vCPU whose x2APIC ID is `x2apic_id`?
inline bool msi_targets(const MsiMessage& m, uint32_t x2apic_id) {
    return m.broadcast || m.destination == x2apic_id;
}

}  // namespace hv::vdev
