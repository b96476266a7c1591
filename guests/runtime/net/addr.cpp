#include "guests/runtime/net/addr.hpp"

namespace hvg::net {

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

bool parse_ipv4(const char* s, size_t len, Ipv4Addr* out) {
    uint32_t value = 0;
    size_t pos = 0;
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (pos >= len || s[pos] != '.') return false;
            ++pos;
        }
        uint32_t n = 0;
        size_t digits = 0;
        while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
            n = n * 10 + static_cast<uint32_t>(s[pos] - '0');
            ++pos;
            // Three digits at most: bounds n before it can overflow.
            if (++digits > 3 || n > 255) return false;
        }
        if (digits == 0) return false;
        value = (value << 8) | n;
    }
    if (pos != len) return false;
    out->value = value;
    return true;
}

bool parse_mac(const char* s, size_t len, MacAddr* out) {
    if (len != 17) return false;
    MacAddr m{};
    for (int k = 0; k < 6; ++k) {
        int hi = hex_digit(s[k * 3]), lo = hex_digit(s[k * 3 + 1]);
        if (hi < 0 || lo < 0) return false;
        if (k < 5 && s[k * 3 + 2] != ':' && s[k * 3 + 2] != '-') return false;
        m.b[k] = static_cast<uint8_t>(hi << 4 | lo);
    }
    *out = m;
    return true;
}

void format_ipv4(Ipv4Addr a, char (&out)[kIpv4TextLen]) {
    size_t pos = 0;
    for (int part = 3; part >= 0; --part) {
        unsigned n = (a.value >> (part * 8)) & 0xFF;
        if (n >= 100) out[pos++] = static_cast<char>('0' + n / 100);
        if (n >= 10) out[pos++] = static_cast<char>('0' + n / 10 % 10);
        out[pos++] = static_cast<char>('0' + n % 10);
        if (part > 0) out[pos++] = '.';
    }
    out[pos] = '\0';
}

void format_mac(const MacAddr& m, char (&out)[kMacTextLen]) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (int k = 0; k < 6; ++k) {
        out[k * 3] = kHex[m.b[k] >> 4];
        out[k * 3 + 1] = kHex[m.b[k] & 0xF];
        out[k * 3 + 2] = k < 5 ? ':' : '\0';
    }
}

}  // namespace hvg::net
