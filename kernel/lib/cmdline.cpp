#include "kernel/lib/cmdline.hpp"

namespace hv {

namespace {

bool equals(const char* a, size_t alen, const char* b) {
    size_t i = 0;
    for (; i < alen; ++i)
        if (b[i] == '\0' || a[i] != b[i]) return false;
    return b[i] == '\0';
}

}  // namespace

bool parse_decimal(const char* s, size_t len, uint64_t max, uint64_t* out) {
    if (len == 0) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        uint64_t d = static_cast<uint64_t>(s[i] - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool Cmdline::find(const char* key, CmdlineToken* out) const {
    bool found = false;
    for_each([&](const CmdlineToken& t) {
        if (equals(t.key, t.key_len, key)) {
            *out = t;  // last occurrence wins, as with Linux's command line
            found = true;
        }
        return true;
    });
    return found;
}

bool Cmdline::has(const char* key) const {
    CmdlineToken t;
    return find(key, &t);
}

bool Cmdline::get(const char* key, char* out, size_t cap) const {
    CmdlineToken t;
    if (!find(key, &t)) return false;
    if (cap == 0) return true;
    size_t n = t.value ? t.value_len : 0;
    if (n > cap - 1) n = cap - 1;
    for (size_t i = 0; i < n; ++i) out[i] = t.value[i];
    out[n] = '\0';
    return true;
}

bool Cmdline::flag(const char* key) const {
    CmdlineToken t;
    if (!find(key, &t)) return false;
    if (!t.value) return true;
    return equals(t.value, t.value_len, "1") || equals(t.value, t.value_len, "yes") ||
           equals(t.value, t.value_len, "on") || equals(t.value, t.value_len, "true");
}

bool Cmdline::list_contains(const char* key, const char* item) const {
    CmdlineToken t;
    if (!find(key, &t) || !t.value) return false;
    const char* p = t.value;
    const char* end = t.value + t.value_len;
    while (p < end) {
        const char* q = p;
        while (q < end && *q != ',') ++q;
        if (equals(p, static_cast<size_t>(q - p), item)) return true;
        p = q + 1;
    }
    return false;
}

}  // namespace hv
