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
        fail(key, __builtin_strlen(key), "out_of_range");
        return dflt;
    }
    return n;
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
