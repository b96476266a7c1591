#include "kernel/net/port_counters.hpp"

namespace hv::net {

const char* drop_reason_name(DropReason r) {
    switch (r) {
        case DropReason::no_buffer: return "no_buffer";
        case DropReason::spoofed: return "spoofed";
        case DropReason::vlan_filtered: return "vlan_filtered";
        case DropReason::rate_limited: return "rate_limited";
        case DropReason::malformed: return "malformed";
        case DropReason::port_down: return "port_down";
        case DropReason::protected_port: return "protected_port";
        case DropReason::mac_limit: return "mac_limit";
        case DropReason::count: break;
    }
    return "unknown";
}

}  // namespace hv::net
