#pragma once
// The hypervisor command line: space-separated `key` or `key=value` tokens as
// passed by the boot loader (e.g. "hv.test_exit=1 hv.dump=acpi,mbi").
// Keys the hypervisor does not know are reported at boot, never silently
// ignored (docs/cmdline.md lists the known ones).

#include <stddef.h>

#include <stdint.h>

namespace hv {

// Parses exactly `len` decimal digits into *out. False (and *out unchanged)
// for an empty string, any other character, or a value above `max`; never
// overflows. For numeric command-line values and the test-action times.
bool parse_decimal(const char* s, size_t len, uint64_t max, uint64_t* out);

struct CmdlineToken {
    const char* key;
    size_t key_len;
    const char* value;  // nullptr when the token has no '='
    size_t value_len;
};

class Cmdline {
  public:
    explicit Cmdline(const char* text) : text_(text ? text : "") {}

    bool has(const char* key) const;
    // Copies the value of the last `key=...` into out (NUL-terminated, cut to cap).
    // A bare `key` yields "". Returns false when the key is absent.
    bool get(const char* key, char* out, size_t cap) const;
    // Present as a bare key or with value 1/yes/on/true.
    bool flag(const char* key) const;
    // `key=a,b,c` contains `item`.
    bool list_contains(const char* key, const char* item) const;

    // Calls f(token) for each token in order; stops early when f returns false.
    template <typename F>
    void for_each(F&& f) const {
        const char* p = text_;
        while (*p) {
            while (*p == ' ' || *p == '\t') ++p;
            if (!*p) break;
            const char* start = p;
            while (*p && *p != ' ' && *p != '\t') ++p;
            CmdlineToken t{start, static_cast<size_t>(p - start), nullptr, 0};
            for (size_t i = 0; i < t.key_len; ++i) {
                if (start[i] == '=') {
                    t.value = start + i + 1;
                    t.value_len = t.key_len - i - 1;
                    t.key_len = i;
                    break;
                }
            }
            if (!f(t)) return;
        }
    }

    const char* text() const { return text_; }

  private:
    bool find(const char* key, CmdlineToken* out) const;
    const char* text_;
};

}  // namespace hv
