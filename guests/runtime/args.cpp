#include "guests/runtime/args.hpp"

namespace hvg {

namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t';
}

bool equals(const char* a, size_t a_len, const char* b) {
    size_t k = 0;
    for (; k < a_len; ++k)
        if (b[k] != a[k] || b[k] == '\0') return false;
    return b[k] == '\0';
}

// Calls fn(word, len) for each word; stops early when fn returns true.
template <typename Fn>
bool for_each_word(const char* text, Fn fn) {
    const char* p = text;
    for (;;) {
        while (is_space(*p)) ++p;
        if (*p == '\0') return false;
        const char* w = p;
        while (*p && !is_space(*p)) ++p;
        if (fn(w, static_cast<size_t>(p - w))) return true;
    }
}

size_t key_len_of(const char* w, size_t len) {
    for (size_t k = 0; k < len; ++k)
        if (w[k] == '=') return k;
    return len;
}

}  // namespace

bool parse_u64(const char* s, size_t len, uint64_t* out) {
    if (len == 0) return false;
    uint64_t v = 0;
    for (size_t k = 0; k < len; ++k) {
        if (s[k] < '0' || s[k] > '9') return false;
        if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, static_cast<uint64_t>(s[k] - '0'), &v))
            return false;
    }
    *out = v;
    return true;
}

bool Args::find(const char* key, ArgValue* out) const {
    return for_each_word(text_, [&](const char* w, size_t len) {
        size_t klen = key_len_of(w, len);
        if (klen == len || !equals(w, klen, key)) return false;
        *out = ArgValue{w + klen + 1, len - klen - 1};
        return true;
    });
}

bool Args::is(const char* key, const char* word) const {
    ArgValue v;
    return find(key, &v) && equals(v.p, v.len, word);
}

void Args::fail(const char* key, size_t len, const char* what) {
    if (!ok()) return;  // keep the first problem
    error_key_ = key;
    error_key_len_ = len;
    error_what_ = what;
}

uint64_t Args::u64(const char* key, uint64_t dflt, uint64_t min, uint64_t max) {
    ArgValue v;
    if (!find(key, &v)) return dflt;
    uint64_t n = 0;
    if (!parse_u64(v.p, v.len, &n)) {
        fail(key, __builtin_strlen(key), "bad_value");
        return dflt;
    }
    if (n < min || n > max) {
        out_of_range(key, min, max);
        return dflt;
    }
    return n;
}

void Args::out_of_range(const char* key, uint64_t min, uint64_t max) {
    if (!ok()) return;
    fail(key, __builtin_strlen(key), "out_of_range");
    error_has_range_ = true;
    error_min_ = min;
    error_max_ = max;
}

bool Args::ipv4(const char* key, bool required, net::Ipv4Addr* out) {
    ArgValue v;
    if (!find(key, &v)) {
        if (required) fail(key, __builtin_strlen(key), "missing");
        return false;
    }
    if (!net::parse_ipv4(v.p, v.len, out)) {
        fail(key, __builtin_strlen(key), "bad_value");
        return false;
    }
    return true;
}

bool Args::mac(const char* key, bool required, net::MacAddr* out) {
    ArgValue v;
    if (!find(key, &v)) {
        if (required) fail(key, __builtin_strlen(key), "missing");
        return false;
    }
    if (!net::parse_mac(v.p, v.len, out)) {
        fail(key, __builtin_strlen(key), "bad_value");
        return false;
    }
    return true;
}

size_t Args::choice(const char* key, const char* const* choices, size_t dflt) {
    ArgValue v;
    if (!find(key, &v)) return dflt;
    for (size_t k = 0; choices[k]; ++k)
        if (equals(v.p, v.len, choices[k])) return k;
    fail(key, __builtin_strlen(key), "bad_value");
    return dflt;
}

size_t Args::list(const char* key, ArgValue* items, size_t cap) {
    ArgValue v;
    if (!find(key, &v)) return 0;
    size_t n = 0;
    size_t start = 0;
    for (size_t k = 0; k <= v.len; ++k) {
        if (k < v.len && v.p[k] != ',') continue;
        if (k == start) {
            fail(key, __builtin_strlen(key), "bad_value");
            return 0;
        }
        if (n == cap) {
            fail(key, __builtin_strlen(key), "too_many");
            return 0;
        }
        items[n++] = ArgValue{v.p + start, k - start};
        start = k + 1;
    }
    return n;
}

// Calls parse(item, sep_at, index) for each item of key's list (at most cap;
// sep_at: where `sep` first occurs in the item, or its length). An item it
// refuses makes the key "bad_value", unless it recorded another problem.
template <typename Fn>
size_t Args::parse_items(const char* key, size_t cap, char sep, Fn parse) {
    ArgValue items[kMaxListItems];
    size_t n = list(key, items, cap < kMaxListItems ? cap : kMaxListItems);
    for (size_t i = 0; i < n; ++i) {
        size_t at = 0;
        while (at < items[i].len && items[i].p[at] != sep) ++at;
        if (!parse(items[i], at, i)) {
            fail(key, __builtin_strlen(key), "bad_value");
            return 0;
        }
    }
    return n;
}

size_t Args::vlan_ifs(const char* key, net::VlanIf* out, size_t cap) {
    return parse_items(key, cap, ':', [&](const ArgValue& it, size_t colon, size_t i) {
        uint64_t vid = 0;
        if (colon == it.len || !parse_u64(it.p, colon, &vid) ||
            !net::parse_ipv4(it.p + colon + 1, it.len - colon - 1, &out[i].ip))
            return false;
        if (vid > net::kVidMax) out_of_range(key, 0, net::kVidMax);
        out[i].vid = static_cast<uint16_t>(vid);
        return vid <= net::kVidMax;
    });
}

size_t Args::peers(const char* key, bool required, Peer* out, size_t cap) {
    if (required && !has(key)) {
        fail(key, __builtin_strlen(key), "missing");
        return 0;
    }
    return parse_items(key, cap, '@', [&](const ArgValue& it, size_t at, size_t i) {
        out[i].has_mac = at < it.len;
        return net::parse_ipv4(it.p, at, &out[i].ip) &&
               (!out[i].has_mac || net::parse_mac(it.p + at + 1, it.len - at - 1, &out[i].mac));
    });
}

void Args::check_known(const char* const* known) {
    for_each_word(text_, [&](const char* w, size_t len) {
        size_t klen = key_len_of(w, len);
        if (klen == len || klen == 0) {
            fail(w, len, "not_key_value");
            return true;
        }
        for (size_t k = 0; known[k]; ++k)
            if (equals(w, klen, known[k])) return false;
        fail(w, klen, "unknown_key");
        return true;
    });
}

}  // namespace hvg
