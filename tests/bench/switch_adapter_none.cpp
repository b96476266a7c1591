// This tree has no switch core yet (kernel/net/switch.hpp): only the harness's
// reference bridge can take the seat (tests/bench/CMakeLists.txt picks this
// file instead of switch_adapter_hv.cpp).

#include "switch_adapter.hpp"

namespace hv::bench {

std::unique_ptr<SwitchAdapter> make_hv_adapter(bool) {
    return nullptr;
}

}  // namespace hv::bench
