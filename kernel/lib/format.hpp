#pragma once
// Text formatting without a C library, shared by the hypervisor and host tests.
//
// Console output is a stream of events, one per line (docs/console.md):
//   hv.<event> key=value key=value ...
// Values are bare when they contain no space, quote or '=' and are otherwise
// double-quoted with \" and \\ escapes, so tools can split lines reliably.
// Line builds events; format() is a printf subset for free text.

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

namespace hv {

// printf subset: %s %c %d %i %u %x %X %p %%, with 'l', 'll', 'z' length
// modifiers, '-' and '0' flags and a width. Always NUL-terminates (cap > 0);
// returns the length written (truncated output is cut, never overflows).
size_t vformat(char* buf, size_t cap, const char* fmt, va_list ap);
size_t format(char* buf, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

class Line {
  public:
    static constexpr size_t kCapacity = 480;

    explicit Line(const char* event);

    Line& u(const char* key, uint64_t v);           // decimal
    Line& i(const char* key, int64_t v);            // signed decimal
    Line& x(const char* key, uint64_t v);           // 0x-prefixed hex
    Line& s(const char* key, const char* v);        // string, quoted when needed
    Line& s(const char* key, const char* v, size_t len);
    Line& b(const char* key, bool v);               // yes/no
    Line& f(const char* key, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

    const char* c_str() const { return buf_; }
    size_t size() const { return len_; }
    bool truncated() const { return truncated_; }

  private:
    void append(const char* p, size_t n);
    void key(const char* k);
    char buf_[kCapacity + 1];
    size_t len_ = 0;
    bool truncated_ = false;
};

}  // namespace hv
