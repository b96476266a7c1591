#pragma once
// RFC 4648 base64 (standard alphabet, '=' padding): binary data the console
// must carry as text, such as a mirror session's pcap file (docs/console.md).

#include <stddef.h>
#include <stdint.h>

namespace hv {

// Characters needed for n bytes, without a terminating NUL.
constexpr size_t base64_length(size_t n) { return (n + 2) / 3 * 4; }

// Encodes n bytes into out (cap characters); NUL-terminates when there is room
// for it. Returns the characters written, or 0 when cap < base64_length(n).
size_t base64_encode(const uint8_t* data, size_t n, char* out, size_t cap);

}  // namespace hv
