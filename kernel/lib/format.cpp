#include "kernel/lib/format.hpp"

namespace hv {

namespace {

struct Out {
    char* buf;
    size_t cap;  // includes room for the NUL
    size_t len = 0;
    void put(char c) {
        if (len + 1 < cap) buf[len++] = c;
    }
};

void put_unsigned(Out& o, uint64_t v, unsigned base, bool upper, int width, bool zero, bool left, bool neg) {
    char tmp[24];
    int n = 0;
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v != 0);
    int total = n + (neg ? 1 : 0);
    if (!left && !zero)
        for (int k = total; k < width; ++k) o.put(' ');
    if (neg) o.put('-');
    if (!left && zero)
        for (int k = total; k < width; ++k) o.put('0');
    while (n > 0) o.put(tmp[--n]);
    if (left)
        for (int k = total; k < width; ++k) o.put(' ');
}

}  // namespace

size_t vformat(char* buf, size_t cap, const char* fmt, va_list ap) {
    if (cap == 0) return 0;
    Out o{buf, cap};
    for (const char* p = fmt; *p; ++p) {
        if (*p != '%') {
            o.put(*p);
            continue;
        }
        ++p;
        bool left = false, zero = false;
        for (;; ++p) {
            if (*p == '-') left = true;
            else if (*p == '0') zero = true;
            else break;
        }
        int width = 0;
        while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
        int longs = 0;
        bool size_t_mod = false;
        while (*p == 'l') {
            ++longs;
            ++p;
        }
        if (*p == 'z') {
            size_t_mod = true;
            ++p;
        }
        auto get_unsigned = [&]() -> uint64_t {
            if (size_t_mod) return va_arg(ap, size_t);
            if (longs >= 1) return va_arg(ap, unsigned long);
            return va_arg(ap, unsigned int);
        };
        switch (*p) {
            case 'd':
            case 'i': {
                int64_t v = size_t_mod ? static_cast<int64_t>(va_arg(ap, size_t))
                            : longs  ? va_arg(ap, long)
                                     : va_arg(ap, int);
                bool neg = v < 0;
                uint64_t mag = neg ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
                put_unsigned(o, mag, 10, false, width, zero, left, neg);
                break;
            }
            case 'u': put_unsigned(o, get_unsigned(), 10, false, width, zero, left, false); break;
            case 'x': put_unsigned(o, get_unsigned(), 16, false, width, zero, left, false); break;
            case 'X': put_unsigned(o, get_unsigned(), 16, true, width, zero, left, false); break;
            case 'p': {
                o.put('0');
                o.put('x');
                put_unsigned(o, reinterpret_cast<uintptr_t>(va_arg(ap, void*)), 16, false, width, zero, left,
                             false);
                break;
            }
            case 'c': o.put(static_cast<char>(va_arg(ap, int))); break;
            case 's': {
                const char* s = va_arg(ap, const char*);
                if (!s) s = "(null)";
                size_t n = 0;
                while (s[n]) ++n;
                if (!left)
                    for (size_t k = n; k < static_cast<size_t>(width); ++k) o.put(' ');
                for (size_t k = 0; k < n; ++k) o.put(s[k]);
                if (left)
                    for (size_t k = n; k < static_cast<size_t>(width); ++k) o.put(' ');
                break;
            }
            case '%': o.put('%'); break;
            case '\0': --p; break;  // lone '%' at the end
            default:
                o.put('%');
                o.put(*p);
                break;
        }
    }
    o.buf[o.len] = '\0';
    return o.len;
}

size_t format(char* buf, size_t cap, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

Line::Line(const char* event) {
    buf_[0] = '\0';
    append("hv.", 3);
    size_t n = 0;
    while (event[n]) ++n;
    append(event, n);
}

void Line::append(const char* p, size_t n) {
    for (size_t k = 0; k < n; ++k) {
        if (len_ >= kCapacity) {
            truncated_ = true;
            break;
        }
        buf_[len_++] = p[k];
    }
    buf_[len_] = '\0';
}

void Line::key(const char* k) {
    append(" ", 1);
    size_t n = 0;
    while (k[n]) ++n;
    append(k, n);
    append("=", 1);
}

Line& Line::u(const char* k, uint64_t v) {
    char tmp[24];
    key(k);
    append(tmp, format(tmp, sizeof tmp, "%llu", static_cast<unsigned long long>(v)));
    return *this;
}

Line& Line::i(const char* k, int64_t v) {
    char tmp[24];
    key(k);
    append(tmp, format(tmp, sizeof tmp, "%lld", static_cast<long long>(v)));
    return *this;
}

Line& Line::x(const char* k, uint64_t v) {
    char tmp[24];
    key(k);
    append(tmp, format(tmp, sizeof tmp, "0x%llx", static_cast<unsigned long long>(v)));
    return *this;
}

Line& Line::b(const char* k, bool v) {
    key(k);
    append(v ? "yes" : "no", v ? 3 : 2);
    return *this;
}

Line& Line::s(const char* k, const char* v) {
    size_t n = 0;
    while (v && v[n]) ++n;
    return s(k, v ? v : "", n);
}

Line& Line::s(const char* k, const char* v, size_t len) {
    key(k);
    bool quote = len == 0;
    for (size_t j = 0; j < len; ++j) {
        char c = v[j];
        if (c == ' ' || c == '"' || c == '=' || c == '\\' || c < 0x21 || c > 0x7e) quote = true;
    }
    if (!quote) {
        append(v, len);
        return *this;
    }
    append("\"", 1);
    for (size_t j = 0; j < len; ++j) {
        char c = v[j];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', c};
            append(esc, 2);
        } else if (c < 0x20 || c > 0x7e) {
            // Control and non-ASCII bytes become \xNN: a line stays one line.
            char tmp[8];
            append(tmp, format(tmp, sizeof tmp, "\\x%02x", static_cast<unsigned>(static_cast<uint8_t>(c))));
        } else {
            append(&c, 1);
        }
    }
    append("\"", 1);
    return *this;
}

Line& Line::f(const char* k, const char* fmt, ...) {
    char tmp[kCapacity + 1];
    va_list ap;
    va_start(ap, fmt);
    size_t n = vformat(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return s(k, tmp, n);
}

}  // namespace hv
