#pragma once
// An Ethernet MAC address (IEEE 802-2014 §8): six octets in wire order. The
// first octet's low bit is the individual/group bit: set for multicast and
// broadcast destinations, never legal in a source address.

#include <stddef.h>
#include <stdint.h>

namespace hv::net {

struct MacAddr {
    uint8_t b[6] = {};

    static MacAddr from_bytes(const uint8_t* p) {
        MacAddr m;
        for (size_t i = 0; i < 6; ++i) m.b[i] = p[i];
        return m;
    }
    // The 48 bits as an integer (first wire octet in the low byte): the FDB key.
    static constexpr MacAddr from_u64(uint64_t v) {
        MacAddr m;
        for (size_t i = 0; i < 6; ++i) m.b[i] = static_cast<uint8_t>(v >> (8 * i));
        return m;
    }
    constexpr uint64_t to_u64() const {
        uint64_t v = 0;
        for (size_t i = 0; i < 6; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
        return v;
    }

    constexpr bool is_group() const { return (b[0] & 1) != 0; }  // multicast or broadcast
    constexpr bool is_broadcast() const { return to_u64() == 0xFFFF'FFFF'FFFFull; }
    constexpr bool is_zero() const { return to_u64() == 0; }

    friend constexpr bool operator==(const MacAddr& a, const MacAddr& c) { return a.to_u64() == c.to_u64(); }
};
static_assert(sizeof(MacAddr) == 6);

// The 48-bit integer form straight from six wire bytes (a 4- and a 2-byte load).
inline uint64_t load_mac48(const uint8_t* p) {
    return static_cast<uint64_t>(p[0]) | (static_cast<uint64_t>(p[1]) << 8) | (static_cast<uint64_t>(p[2]) << 16) |
           (static_cast<uint64_t>(p[3]) << 24) | (static_cast<uint64_t>(p[4]) << 32) |
           (static_cast<uint64_t>(p[5]) << 40);
}

inline constexpr size_t kMacStringLen = 17;  // "xx:xx:xx:xx:xx:xx"

// Lower-case colon form into out (at least kMacStringLen + 1 bytes), NUL-terminated.
inline void format_mac(const MacAddr& m, char* out) {
    const char* hex = "0123456789abcdef";
    for (size_t i = 0; i < 6; ++i) {
        out[3 * i] = hex[m.b[i] >> 4];
        out[3 * i + 1] = hex[m.b[i] & 15];
        if (i != 5) out[3 * i + 2] = ':';
    }
    out[kMacStringLen] = '\0';
}

}  // namespace hv::net
