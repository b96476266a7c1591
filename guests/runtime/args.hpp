#pragma once
// The guest's `args` string (BootInfo v2, docs/guest-abi.md): words separated
// by spaces or tabs, each `key=value`. Lookups scan the string each time (it is
// at most 127 characters); the first occurrence of a key wins. Getters record
// the first problem (a malformed or out-of-range value, a missing required
// key) so a guest can check ok() once and report error_key()/error_what().
// Pure: compiled into the guests and into the host unit tests.

#include <stddef.h>
#include <stdint.h>

#include "guests/runtime/net/addr.hpp"

namespace hvg {

struct ArgValue {
    const char* p;  // not NUL-terminated
    size_t len;
};

class Args {
  public:
    explicit Args(const char* text) : text_(text ? text : "") {}

    bool find(const char* key, ArgValue* out) const;
    bool has(const char* key) const {
        ArgValue v;
        return find(key, &v);
    }
    // True when `key` has exactly the value `word`.
    bool is(const char* key, const char* word) const;

    // Decimal value in [min, max]; `dflt` when absent (not range-checked).
    uint64_t u64(const char* key, uint64_t dflt, uint64_t min, uint64_t max);
    // An address; required keys that are absent are an error. Absent optional
    // ones return false and leave *out untouched.
    bool ipv4(const char* key, bool required, net::Ipv4Addr* out);
    bool mac(const char* key, bool required, net::MacAddr* out);
    // One of `choices` (nullptr-terminated); returns its index, `dflt` when absent.
    size_t choice(const char* key, const char* const* choices, size_t dflt);

    // The first word that is not key=value or whose key is not in `known`
    // (nullptr-terminated) is an error too.
    void check_known(const char* const* known);

    bool ok() const { return error_key_len_ == 0 && !error_what_; }
    // The offending key (or word) and why: "bad_value", "out_of_range",
    // "missing", "unknown_key", "not_key_value".
    ArgValue error_key() const { return ArgValue{error_key_, error_key_len_}; }
    const char* error_what() const { return error_what_ ? error_what_ : ""; }

  private:
    void fail(const char* key, size_t len, const char* what);

    const char* text_;
    const char* error_key_ = nullptr;
    size_t error_key_len_ = 0;
    const char* error_what_ = nullptr;
};

// Decimal without sign, no overflow past 2^64 - 1; exactly `len` characters.
bool parse_u64(const char* s, size_t len, uint64_t* out);

}  // namespace hvg
