#pragma once
// Where a device model's message-signalled interrupts go (PCI Local Bus 3.0
// §6.8): a 32-bit write of `data` to `address`. Device models only hand the
// pair over; the glue decodes it (decode_msi() in kernel/vdev/msi.hpp, SDM
// Vol. 3A §11.11) and raises the interrupt in the guest's virtual x2APIC.

#include <stdint.h>

namespace hv::vdev {

// One message as the device writes it (an MSI-X table entry's address and data).
struct MsiWrite {
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
