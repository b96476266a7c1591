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
#include "guests/runtime/net/vlan.hpp"

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

    // A comma-separated list: its items go to `items` and their number is
    // returned (0 when the key is absent). An empty item is "bad_value",
    // more than `cap` items "too_many".
    size_t list(const char* key, ArgValue* items, size_t cap);
    static constexpr size_t kMaxListItems = 8;
    // key=VID:A.B.C.D[,VID:A.B.C.D...]: interfaces on VLANs (VID 0..4094, 0
    // for untagged), as list() with at most min(cap, kMaxListItems) items.
    size_t vlan_ifs(const char* key, net::VlanIf* out, size_t cap);
    // key=A.B.C.D[@aa:bb:cc:dd:ee:ff][,...]: addresses, each with an optional
    // MAC that stands in for ARP. A required key that is absent is "missing".
    struct Peer {
        net::Ipv4Addr ip;
        bool has_mac;
        net::MacAddr mac;
    };
    size_t peers(const char* key, bool required, Peer* out, size_t cap);

    // Records a problem the caller found in `key`'s value (the first problem wins).
    void reject(const char* key, const char* what) { fail(key, __builtin_strlen(key), what); }

    // The first word that is not key=value or whose key is not in `known`
    // (nullptr-terminated) is an error too.
    void check_known(const char* const* known);

    bool ok() const { return error_key_len_ == 0 && !error_what_; }
    // The offending key (or word) and why: "bad_value", "out_of_range",
    // "missing", "unknown_key", "not_key_value", "too_many", or what the
    // caller gave reject().
    ArgValue error_key() const { return ArgValue{error_key_, error_key_len_}; }
    const char* error_what() const { return error_what_ ? error_what_ : ""; }
    // For "out_of_range": the allowed values, min..max.
    bool error_has_range() const { return error_has_range_; }
    uint64_t error_min() const { return error_min_; }
    uint64_t error_max() const { return error_max_; }

  private:
    void fail(const char* key, size_t len, const char* what);
    void out_of_range(const char* key, uint64_t min, uint64_t max);
    template <typename Fn>
    size_t parse_items(const char* key, size_t cap, char sep, Fn parse);

    const char* text_;
    const char* error_key_ = nullptr;
    size_t error_key_len_ = 0;
    const char* error_what_ = nullptr;
    bool error_has_range_ = false;
    uint64_t error_min_ = 0;
    uint64_t error_max_ = 0;
};

// Decimal without sign, no overflow past 2^64 - 1; exactly `len` characters.
bool parse_u64(const char* s, size_t len, uint64_t* out);

}  // namespace hvg
