#include "kernel/guest/guest_devices.hpp"

#include "kernel/guest/guest.hpp"

namespace hv::guest {

// No guest has devices yet: every port and address is empty.
bool device_io(Guest&, uint16_t, uint8_t, bool, uint32_t*) { return false; }
bool device_claims(const Guest&, uint64_t) { return false; }
uint64_t device_mmio_read(Guest&, uint64_t, uint8_t) { return ~0ull; }
void device_mmio_write(Guest&, uint64_t, uint8_t, uint64_t) {}

}  // namespace hv::guest
