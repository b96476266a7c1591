#include "kernel/net/port_config.hpp"

namespace hv::net {

const char* vlan_mode_name(VlanMode m) {
    switch (m) {
        case VlanMode::access: return "access";
        case VlanMode::trunk: return "trunk";
    }
    return "unknown";
}

const char* mirror_dir_name(MirrorDir d) {
    switch (d) {
        case MirrorDir::none: return "none";
        case MirrorDir::ingress: return "ingress";
        case MirrorDir::egress: return "egress";
        case MirrorDir::both: return "both";
    }
    return "unknown";
}

}  // namespace hv::net
