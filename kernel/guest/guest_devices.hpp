#pragma once
// A guest's virtual devices besides its UART and APICs: the PCI host bridge
// with one virtio-net function per configured port, and their link to the
// switch (docs/virtio-pci.md, docs/switch.md). vmx/ routes the guest's port
// I/O and its accesses to unmapped guest-physical addresses here.

#include <stdint.h>

#include "kernel/config/config.hpp"
#include "kernel/lib/result.hpp"

namespace hv::guest {

struct Guest;
struct Vcpu;
struct GuestDevices;  // guest_devices.cpp

// Boot: the switch's settings and mirror sessions from the configuration.
Result<void> init_switch(const config::Config& cfg, uint64_t tsc_hz);
// Builds guest g's PCI bus and one virtio-net port per [[guest.port]], each
// attached to the switch.
Result<void> create_devices(Guest& g);
// Every vCPU of g has left it (before its memory is reloaded): its ports
// leave the switch and its devices return to their power-on state.
void devices_stopped(Guest& g);
// g is about to run again: its ports rejoin the switch.
void devices_starting(Guest& g);
// hv.port.stats for g's ports; hv.switch.stats; each mirror's pcap file.
void report_ports(const Guest& g);
void report_switch();
void report_switch_captures();

// Port I/O to a device port (the PCI configuration ports 0xCF8-0xCFF).
// False: no device there (the caller treats the port as empty).
bool device_io(Guest& g, uint16_t port, uint8_t size, bool in, uint32_t* value);

// A guest-physical address outside RAM: does a device decode it?
bool device_claims(const Guest& g, uint64_t gpa);
// One MMIO access of 1, 2, 4 or 8 bytes at gpa (claimed by device_claims).
uint64_t device_mmio_read(Guest& g, uint64_t gpa, uint8_t size);
void device_mmio_write(Guest& g, uint64_t gpa, uint8_t size, uint64_t value);

}  // namespace hv::guest
