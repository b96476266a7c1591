#pragma once
// A guest's virtual devices besides its UART and APICs: the PCI host bridge
// with one virtio-net function per configured port, and their link to the
// switch (docs/virtio-pci.md, docs/switch.md). vmx/ routes the guest's port
// I/O and its accesses to unmapped guest-physical addresses here.

#include <stdint.h>

namespace hv::guest {

struct Guest;
struct Vcpu;

// Port I/O to a device port (the PCI configuration ports 0xCF8-0xCFF).
// False: no device there (the caller treats the port as empty).
bool device_io(Guest& g, uint16_t port, uint8_t size, bool in, uint32_t* value);

// A guest-physical address outside RAM: does a device decode it?
bool device_claims(const Guest& g, uint64_t gpa);
// One MMIO access of 1, 2, 4 or 8 bytes at gpa (claimed by device_claims).
uint64_t device_mmio_read(Guest& g, uint64_t gpa, uint8_t size);
void device_mmio_write(Guest& g, uint64_t gpa, uint8_t size, uint64_t value);

}  // namespace hv::guest
