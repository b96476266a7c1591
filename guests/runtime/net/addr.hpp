#pragma once
// Link and network addresses, and their text forms for args and console lines.
// Pure: compiled into the guests and into the host unit tests.

#include <stddef.h>
#include <stdint.h>

namespace hvg::net {

struct MacAddr {
    uint8_t b[6];

    bool operator==(const MacAddr& o) const {
        for (int k = 0; k < 6; ++k)
            if (b[k] != o.b[k]) return false;
        return true;
    }
    // IEEE 802-2014 §8.2: the I/G bit (bit 0 of the first octet) marks group addresses.
    bool is_multicast() const { return (b[0] & 1) != 0; }
    bool is_broadcast() const { return *this == broadcast(); }
    bool is_zero() const { return *this == MacAddr{}; }
    static constexpr MacAddr broadcast() { return MacAddr{{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}}; }
};
static_assert(sizeof(MacAddr) == 6);

// An IPv4 address in host order: a.b.c.d is (a << 24) | (b << 16) | (c << 8) | d.
struct Ipv4Addr {
    uint32_t value;

    bool operator==(const Ipv4Addr& o) const { return value == o.value; }
    static constexpr Ipv4Addr from(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
        return Ipv4Addr{(static_cast<uint32_t>(a) << 24) | (static_cast<uint32_t>(b) << 16) |
                        (static_cast<uint32_t>(c) << 8) | d};
    }
};

// "a.b.c.d", each part 0..255 in decimal without sign; exactly `len` characters.
bool parse_ipv4(const char* s, size_t len, Ipv4Addr* out);
// "aa:bb:cc:dd:ee:ff" (also '-' separated), hex digits in either case.
bool parse_mac(const char* s, size_t len, MacAddr* out);

// Text forms, NUL-terminated; the buffers are large enough for any address.
inline constexpr size_t kIpv4TextLen = 16;  // "255.255.255.255" + NUL
inline constexpr size_t kMacTextLen = 18;   // "aa:bb:cc:dd:ee:ff" + NUL
void format_ipv4(Ipv4Addr a, char (&out)[kIpv4TextLen]);
void format_mac(const MacAddr& m, char (&out)[kMacTextLen]);

}  // namespace hvg::net
