#pragma once
// Message-signalled interrupts as a device model produces them (PCI Local Bus
// 3.0 §6.8): a 32-bit write of `data` to `address`. On x86 the address selects
// the destination local APIC and the data the vector (SDM Vol. 3A §11.11); the
// hypervisor glue decodes both and raises the interrupt in the guest's virtual
// x2APIC. Device models only hand the pair over.

#include <stdint.h>

namespace hv::vdev {

struct MsiMessage {
    uint64_t address;
    uint32_t data;
};

// Where a device's MSI/MSI-X writes go. Implemented by the glue; may be called
// from any CPU (a device's data path runs on the sender's CPU), never with a
// lock of the caller held that the sink could need.
class MsiSink {
  public:
    virtual void send_msi(uint64_t address, uint32_t data) = 0;

  protected:
    ~MsiSink() = default;
};

}  // namespace hv::vdev
