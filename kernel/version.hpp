#pragma once

namespace hv {
inline constexpr const char* kVersion = "0.1.0";
}
