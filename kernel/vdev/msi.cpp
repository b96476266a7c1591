#include "kernel/vdev/msi.hpp"

namespace hv::vdev {

namespace {

// Message address (§11.11.1, Figure 11-24): 31:20 = 0FEEH, 19:12 destination
// ID, 11:4 reserved, 3 redirection hint, 2 destination mode, 1:0 ignored.
constexpr uint64_t kAddressBaseMask = 0xFFFFFFFFFFF00000ull;  // the high dword must be 0 too
constexpr uint64_t kAddressBase = 0xFEE00000;
constexpr uint64_t kAddressRh = 1u << 3;
constexpr uint64_t kAddressDmLogical = 1u << 2;
constexpr uint64_t kAddressReserved = 0xFF0;  // bits 11:4
constexpr uint64_t kAddressExtDest = 0xFE0;   // bits 11:5 with ext_dest_id
constexpr uint32_t kExtDestBroadcast = 0xFF;

// Message data (§11.11.2, Figure 11-25): 7:0 vector, 10:8 delivery mode,
// 13:11 reserved, 14 level, 15 trigger mode, 31:16 reserved.
constexpr uint32_t kDataReserved = 0xFFFF3800;
constexpr uint32_t kDataLevelAssert = 1u << 14;
constexpr uint32_t kDataTriggerLevel = 1u << 15;

enum MsiDeliveryMode : uint8_t {
    MSI_FIXED = 0,
    MSI_LOWEST_PRIORITY = 1,
    MSI_SMI = 2,
    MSI_NMI = 4,
    MSI_INIT = 5,
    MSI_EXTINT = 7,
};

}  // namespace

Result<MsiMessage> decode_msi(uint64_t address, uint32_t data, bool ext_dest_id) {
    if ((address & kAddressBaseMask) != kAddressBase) {
        return make_error(Errc::invalid_argument, "MSI address: not 0xFEExxxxx", address);
    }
    const uint64_t reserved = ext_dest_id ? kAddressReserved & ~kAddressExtDest : kAddressReserved;
    if (address & reserved) {
        // Bit 4 is the interrupt-remapping format of VT-d; there is no vIOMMU.
        return make_error(Errc::invalid_argument, "MSI address: reserved bits 11:4 set", address);
    }
    if (address & kAddressDmLogical) {
        // Linux without interrupt remapping runs x2APIC in physical mode, so
        // its MSIs are physical; the 8-bit field cannot name an x2APIC cluster.
        return make_error(Errc::unsupported, "MSI address: logical destination mode", address);
    }
    if (data & kDataReserved) return make_error(Errc::invalid_argument, "MSI data: reserved bits set", data);

    MsiMessage m;
    m.destination = static_cast<uint32_t>((address >> 12) & 0xFF);
    if (ext_dest_id) m.destination |= static_cast<uint32_t>((address >> 5) & 0x7F) << 8;
    m.broadcast = m.destination == kExtDestBroadcast;
    m.redirection_hint = (address & kAddressRh) != 0;
    m.vector = static_cast<uint8_t>(data);
    m.level_triggered = (data & kDataTriggerLevel) != 0;
    m.level_assert = (data & kDataLevelAssert) != 0;
    switch ((data >> 8) & 7) {
        case MSI_FIXED: break;
        case MSI_LOWEST_PRIORITY: m.lowest_priority = true; break;
        case MSI_NMI:
            m.delivery = MsiDelivery::nmi;
            m.vector = 0;  // §11.11.2: the vector is ignored for NMI
            break;
        case MSI_SMI: return make_error(Errc::unsupported, "MSI data: SMI delivery mode", data);
        case MSI_INIT: return make_error(Errc::unsupported, "MSI data: INIT delivery mode", data);
        case MSI_EXTINT: return make_error(Errc::unsupported, "MSI data: ExtINT delivery mode", data);
        default: return make_error(Errc::invalid_argument, "MSI data: reserved delivery mode", data);
    }
    return m;
}

}  // namespace hv::vdev
