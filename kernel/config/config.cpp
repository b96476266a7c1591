#include "kernel/config/config.hpp"

#include <limits>

#include "kernel/lib/format.hpp"  // also brings va_list (<stdarg.h>, a freestanding header)

namespace hv::config {

namespace {

constexpr const char* kFieldNames[] = {
    "name", "image", "cpus", "memory", "restart", "restart_delay_ms", "restart_delay_max_ms", "restart_limit", "mode",
};
static_assert(sizeof kFieldNames / sizeof kFieldNames[0] == static_cast<size_t>(Field::count));

constexpr const char* kPolicyNames[] = {"never", "on-failure", "always"};
constexpr const char* kModeNames[] = {"long64", "protected32", "real16"};
constexpr Field kRequiredFields[] = {Field::name, Field::image, Field::cpus, Field::memory};
constexpr Field kRestartTuning[] = {Field::restart_delay_ms, Field::restart_delay_max_ms, Field::restart_limit};

constexpr uint32_t kSupportedVersion = 1;
constexpr int32_t kNoGuest = -1;       // before the first [[guest]]
constexpr int32_t kIgnoredGuest = -2;  // a [[guest]] past kMaxGuests
constexpr size_t kSnippetLen = 24;     // user text echoed in a message is cut to this

// ---------------------------------------------------------------------------
// Small string helpers (no C library in the hypervisor).

size_t cstr_len(const char* s) {
    size_t n = 0;
    while (s[n]) ++n;
    return n;
}

bool equals(const char* a, size_t alen, const char* lit) {
    size_t i = 0;
    for (; i < alen; ++i)
        if (lit[i] == '\0' || a[i] != lit[i]) return false;
    return lit[i] == '\0';
}

bool cstr_equal(const char* a, const char* b) {
    return equals(a, cstr_len(a), b);
}

// Copies n bytes, cut to cap - 1, NUL-terminated.
void copy_text(char* dst, size_t cap, const char* src, size_t n) {
    if (cap == 0) return;
    if (n > cap - 1) n = cap - 1;
    for (size_t i = 0; i < n; ++i) dst[i] = src[i];
    dst[n] = '\0';
}

// User text for a message: printable ASCII kept, anything else shown as '?',
// cut to kSnippetLen characters with "..." so one message never hides the rest.
void snippet(char* dst, size_t cap, const char* src, size_t n) {
    if (cap == 0) return;
    size_t out = 0;
    bool cut = n > kSnippetLen;
    if (cut) n = kSnippetLen;
    for (size_t i = 0; i < n && out + 1 < cap; ++i) {
        char c = src[i];
        dst[out++] = (c >= 0x20 && c <= 0x7e) ? c : '?';
    }
    for (int k = 0; cut && k < 3 && out + 1 < cap; ++k) dst[out++] = '.';
    dst[out] = '\0';
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_key_char(char c) {
    return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
}
bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
}

// "64M", "3G", "1536K" or plain bytes: sizes in messages read like the file.
void format_size(char* buf, size_t cap, uint64_t v) {
    auto ull = [](uint64_t x) { return static_cast<unsigned long long>(x); };
    if (v != 0 && v % (1ull << 30) == 0)
        format(buf, cap, "%lluG", ull(v >> 30));
    else if (v != 0 && v % (1ull << 20) == 0)
        format(buf, cap, "%lluM", ull(v >> 20));
    else if (v != 0 && v % (1ull << 10) == 0)
        format(buf, cap, "%lluK", ull(v >> 10));
    else
        format(buf, cap, "%llu", ull(v));
}

// ---------------------------------------------------------------------------
// Diagnostics. The single place that records a problem; an error inside a guest
// also rejects that guest.

__attribute__((format(printf, 7, 0))) void vreport(Config& cfg, Severity sev, uint32_t line, int32_t guest,
                                                   const char* field, size_t field_len, const char* fmt, va_list ap) {
    if (sev == Severity::error)
        ++cfg.error_count;
    else
        ++cfg.warning_count;
    if (sev == Severity::error && guest >= 0 && static_cast<size_t>(guest) < cfg.guest_count)
        cfg.guests[guest].valid = false;
    if (cfg.diag_count >= kMaxDiagnostics) {
        ++cfg.diags_dropped;
        return;
    }
    Diagnostic& d = cfg.diags[cfg.diag_count++];
    d.severity = sev;
    d.line = line;
    d.guest = guest >= 0 ? guest : -1;
    if (field_len < sizeof d.field) {
        copy_text(d.field, sizeof d.field, field, field_len);
    } else {
        // A long unknown key: keep its start and say it was cut.
        copy_text(d.field, sizeof d.field - 3, field, field_len);
        d.field[sizeof d.field - 4] = '.';
        d.field[sizeof d.field - 3] = '.';
        d.field[sizeof d.field - 2] = '.';
        d.field[sizeof d.field - 1] = '\0';
    }
    vformat(d.message, sizeof d.message, fmt, ap);
}

__attribute__((format(printf, 6, 7))) void report(Config& cfg, Severity sev, uint32_t line, int32_t guest,
                                                  const char* field, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(cfg, sev, line, guest, field ? field : "", field ? cstr_len(field) : 0, fmt, ap);
    va_end(ap);
}

// The same, for a field given by pointer and length (a key as written in the file).
__attribute__((format(printf, 6, 7))) void report_key(Config& cfg, uint32_t line, int32_t guest, const char* key,
                                                      size_t key_len, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(cfg, Severity::error, line, guest, key, key_len, fmt, ap);
    va_end(ap);
}

// ---------------------------------------------------------------------------
// Values of one `key = value` line.

enum class Kind : uint8_t { string, integer, boolean, array };

const char* kind_name(Kind k) {
    switch (k) {
        case Kind::string: return "a string";
        case Kind::integer: return "an integer";
        case Kind::boolean: return "a boolean";
        case Kind::array: return "an array";
    }
    return "?";
}

struct Value {
    Kind kind;
    char str[kMaxLineLen + 1];  // decoded string; never longer than the line it came from
    size_t str_len;
    uint64_t num;  // magnitude
    bool negative;
    bool boolean;
    uint64_t items[kMaxGuestCpus];
    bool item_negative[kMaxGuestCpus];
    size_t item_count;  // all items on the line; only the first kMaxGuestCpus are kept
};

// A syntax error: where and what. Messages are literals or built into `text`.
struct SyntaxError {
    char text[96];
};

// One line, as a cursor. NUL bytes never get here (parse() rejects them), so
// peek() may use '\0' for "end of line".
struct Cursor {
    const char* p;
    const char* end;

    bool done() const { return p >= end; }
    char peek(size_t ahead = 0) const { return static_cast<size_t>(end - p) > ahead ? p[ahead] : '\0'; }
    void skip_ws() {
        while (p < end && (*p == ' ' || *p == '\t')) ++p;
    }
    // Whitespace, then the end of the line or a comment.
    bool at_line_end() {
        skip_ws();
        return p >= end || *p == '#';
    }
};

bool fail(SyntaxError& err, const char* msg) {
    copy_text(err.text, sizeof err.text, msg, cstr_len(msg));
    return false;
}

__attribute__((format(printf, 2, 3))) bool failf(SyntaxError& err, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat(err.text, sizeof err.text, fmt, ap);
    va_end(ap);
    return false;
}

bool fail_char(SyntaxError& err, const char* what, char c) {
    if (c >= 0x21 && c <= 0x7e) return failf(err, "unexpected '%c' %s", c, what);
    return failf(err, "unexpected byte 0x%02x %s", static_cast<unsigned>(static_cast<uint8_t>(c)), what);
}

bool ends_token(char c) {
    return c == '\0' || c == ' ' || c == '\t' || c == ',' || c == ']' || c == '#';
}

// TOML decimal integer: optional sign, digits, '_' only between digits, no
// leading zeros. Floats, dates and other bases are named as unsupported.
bool parse_integer(Cursor& c, uint64_t& mag, bool& neg, SyntaxError& err) {
    neg = false;
    if (c.peek() == '+' || c.peek() == '-') {
        neg = c.peek() == '-';
        ++c.p;
    }
    if ((c.peek() == 'i' && c.peek(1) == 'n' && c.peek(2) == 'f') ||
        (c.peek() == 'n' && c.peek(1) == 'a' && c.peek(2) == 'n'))
        return fail(err, "floating-point values are not supported");
    if (!is_digit(c.peek())) return fail(err, "expected a number");
    if (c.peek() == '0' && (c.peek(1) == 'x' || c.peek(1) == 'o' || c.peek(1) == 'b'))
        return fail(err, "only decimal integers are supported");
    if (c.peek() == '0' && (is_digit(c.peek(1)) || c.peek(1) == '_'))
        return fail(err, "leading zeros are not allowed in integers");
    mag = 0;
    bool overflow = false;
    while (!c.done()) {
        char ch = *c.p;
        if (is_digit(ch)) {
            uint64_t next;
            if (__builtin_mul_overflow(mag, 10u, &next) ||
                __builtin_add_overflow(next, static_cast<uint64_t>(ch - '0'), &next))
                overflow = true;
            mag = next;
            ++c.p;
        } else if (ch == '_') {
            if (!is_digit(c.peek(1))) return fail(err, "'_' in a number must sit between two digits");
            ++c.p;
        } else {
            break;
        }
    }
    char next = c.peek();
    if (next == '.' || next == 'e' || next == 'E') return fail(err, "floating-point values are not supported");
    if ((next == '-' || next == ':') && !neg) return fail(err, "dates and times are not supported");
    if (!ends_token(next)) return fail_char(err, "after a number", next);
    if (overflow) return fail(err, "integer is too large (more than 64 bits)");
    return true;
}

bool parse_string(Cursor& c, Value& v, SyntaxError& err) {
    if (c.peek(1) == '"' && c.peek(2) == '"') return fail(err, "multi-line strings are not supported");
    ++c.p;  // opening quote
    v.kind = Kind::string;
    v.str_len = 0;
    for (;;) {
        if (c.done()) return fail(err, "unterminated string (strings end on the same line)");
        char ch = *c.p++;
        if (ch == '"') break;
        if (ch == '\\') {
            if (c.done()) return fail(err, "unterminated string (strings end on the same line)");
            char e = *c.p++;
            switch (e) {
                case '"': ch = '"'; break;
                case '\\': ch = '\\'; break;
                case 'n': ch = '\n'; break;
                case 't': ch = '\t'; break;
                default:
                    if (e >= 0x21 && e <= 0x7e)
                        return failf(err, "unsupported escape '\\%c' (only \\\" \\\\ \\n \\t)", e);
                    return fail(err, "unsupported escape (only \\\" \\\\ \\n \\t)");
            }
        }
        // The decoded string is never longer than the line, which fits str[].
        if (v.str_len < kMaxLineLen) v.str[v.str_len++] = ch;
    }
    v.str[v.str_len] = '\0';
    return true;
}

bool parse_array(Cursor& c, Value& v, SyntaxError& err) {
    ++c.p;  // '['
    v.kind = Kind::array;
    v.item_count = 0;
    for (;;) {
        c.skip_ws();
        if (c.done() || c.peek() == '#') return fail(err, "arrays must end on the same line (no multi-line arrays)");
        if (c.peek() == ']') {
            ++c.p;
            return true;
        }
        char first = c.peek();
        if (first == '"' || first == '\'' || first == '[' || first == '{' || first == 't' || first == 'f')
            return fail(err, "arrays may only hold integers");
        uint64_t mag;
        bool neg;
        if (!parse_integer(c, mag, neg, err)) return false;
        if (v.item_count < kMaxGuestCpus) {
            v.items[v.item_count] = mag;
            v.item_negative[v.item_count] = neg;
        }
        ++v.item_count;  // bounded by the line length, cannot wrap
        c.skip_ws();
        if (c.peek() == ',') {
            ++c.p;
            continue;
        }
        if (c.peek() == ']') {
            ++c.p;
            return true;
        }
        if (c.done() || c.peek() == '#') return fail(err, "arrays must end on the same line (no multi-line arrays)");
        return fail_char(err, "in an array (expected ',' or ']')", c.peek());
    }
}

bool parse_value(Cursor& c, Value& v, SyntaxError& err) {
    char ch = c.peek();
    if (ch == '"') return parse_string(c, v, err);
    if (ch == '\'') return fail(err, "literal strings ('...') are not supported; use \"...\"");
    if (ch == '[') return parse_array(c, v, err);
    if (ch == '{') return fail(err, "inline tables are not supported");
    if (is_digit(ch) || ch == '+' || ch == '-') {
        v.kind = Kind::integer;
        return parse_integer(c, v.num, v.negative, err);
    }
    if (is_alpha(ch)) {
        const char* start = c.p;
        while (!c.done() && (is_key_char(*c.p) || *c.p == '.')) ++c.p;
        size_t n = static_cast<size_t>(c.p - start);
        if (equals(start, n, "true") || equals(start, n, "false")) {
            v.kind = Kind::boolean;
            v.boolean = n == 4;
            if (!ends_token(c.peek())) return fail_char(err, "after a boolean", c.peek());
            return true;
        }
        if (equals(start, n, "inf") || equals(start, n, "nan"))
            return fail(err, "floating-point values are not supported");
        char word[kSnippetLen + 4];
        snippet(word, sizeof word, start, n);
        return failf(err, "unquoted text '%s' (strings need double quotes)", word);
    }
    return fail_char(err, "where a value should start", ch);
}

// ---------------------------------------------------------------------------
// The parser: one pass over the lines, with the current section as state.

enum class Section : uint8_t {
    root,   // before the first header: only `version`
    guest,  // inside a [[guest]]
    port,   // inside a [[guest.port]]: syntax-checked, not interpreted
    skip,   // after a rejected header: lines ignored until the next header
};

class Parser {
  public:
    Parser(const char* text, size_t len, Config& cfg) : text_(text), len_(len), cfg_(cfg) {}

    void run();

  private:
    void line(Cursor c);
    void header(Cursor c);
    void key_value(Cursor c);
    void root_key(const char* key, size_t key_len, Cursor& c);
    void guest_key(const char* key, size_t key_len, Cursor& c);
    bool value_and_end(Cursor& c, const char* key, size_t key_len, int32_t guest);
    void apply(GuestConfig& g, Field f);
    bool apply_u32(Field f, uint32_t& out, uint32_t minimum);
    void start_guest();
    void finish_guest();
    bool prescan();

    int32_t scope() const { return (section_ == Section::guest || section_ == Section::port) ? guest_ : kNoGuest; }
    __attribute__((format(printf, 4, 5))) void error(int32_t guest, const char* field, const char* fmt, ...);
    void error_key(int32_t guest, const char* key, size_t key_len, const char* msg);

    const char* text_;
    size_t len_;
    Config& cfg_;
    uint32_t line_ = 0;
    Section section_ = Section::root;
    int32_t guest_ = kNoGuest;
    bool field_bad_[static_cast<size_t>(Field::count)] = {};
    uint32_t version_line_ = 0;
    bool stop_ = false;
    Value value_{};
};

void Parser::error(int32_t guest, const char* field, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(cfg_, Severity::error, line_, guest, field ? field : "", field ? cstr_len(field) : 0, fmt, ap);
    va_end(ap);
}

// The key as written is the field (keys are [A-Za-z0-9_-]; vreport cuts long ones).
void Parser::error_key(int32_t guest, const char* key, size_t key_len, const char* msg) {
    report_key(cfg_, line_, guest, key, key_len, "%s", msg);
}

// Rejects what cannot be a text file before looking at any line: NUL and other
// control bytes. One diagnostic, then nothing else is read.
bool Parser::prescan() {
    uint32_t line = 1;
    for (size_t i = 0; i < len_; ++i) {
        uint8_t b = static_cast<uint8_t>(text_[i]);
        if (b == '\n') {
            ++line;
            continue;
        }
        if (b == '\t') continue;
        if (b == '\r' && i + 1 < len_ && text_[i + 1] == '\n') continue;
        if (b == 0) {
            report(cfg_, Severity::error, line, -1, nullptr, "NUL byte at offset %zu: not a text file", i);
            cfg_.fatal = true;
            return false;
        }
        if (b < 0x20 || b == 0x7f) {
            report(cfg_, Severity::error, line, -1, nullptr, "control byte 0x%02x at offset %zu: not a text file",
                   static_cast<unsigned>(b), i);
            cfg_.fatal = true;
            return false;
        }
    }
    return true;
}

void Parser::run() {
    if (len_ > kMaxFileSize) {
        report(cfg_, Severity::error, 0, -1, nullptr, "file is %zu bytes, more than the %zu-byte limit", len_,
               kMaxFileSize);
        cfg_.fatal = true;
        return;
    }
    if (!prescan()) return;

    size_t pos = 0;
    // A UTF-8 byte order mark is harmless; editors on some systems add one.
    if (len_ >= 3 && static_cast<uint8_t>(text_[0]) == 0xef && static_cast<uint8_t>(text_[1]) == 0xbb &&
        static_cast<uint8_t>(text_[2]) == 0xbf)
        pos = 3;
    while (pos < len_ && !stop_) {
        size_t end = pos;
        while (end < len_ && text_[end] != '\n') ++end;
        ++line_;
        size_t n = end - pos;
        if (n > 0 && text_[pos + n - 1] == '\r') --n;
        if (n > kMaxLineLen) {
            // The line is not looked at, so it cannot be attributed to a key.
            error(scope(), nullptr, "line is %zu characters long, more than %zu", n, kMaxLineLen);
        } else {
            line(Cursor{text_ + pos, text_ + pos + n});
        }
        pos = end + 1;
    }
    if (stop_) return;
    finish_guest();

    if (version_line_ == 0) {
        report(cfg_, Severity::error, 0, -1, "version",
               "required key is missing (the file must start with version = 1)");
        cfg_.fatal = true;
    }
    if (cfg_.guest_count == 0 && !cfg_.fatal)
        report(cfg_, Severity::warning, 0, -1, nullptr, "no [[guest]] sections: there is nothing to start");
}

void Parser::line(Cursor c) {
    c.skip_ws();
    if (c.done() || c.peek() == '#') return;
    if (c.peek() == '[') {
        header(c);
        return;
    }
    if (section_ == Section::skip) return;
    key_value(c);
}

void Parser::header(Cursor c) {
    bool array = c.peek(1) == '[';
    c.p += array ? 2 : 1;
    c.skip_ws();

    // Dotted table name, e.g. "guest.port"; whitespace around dots is TOML.
    char path[64];
    size_t path_len = 0;
    bool path_cut = false;
    bool ok = true;
    const char* problem = nullptr;
    for (;;) {
        if (c.peek() == '"' || c.peek() == '\'') {
            problem = "quoted table names are not supported";
            ok = false;
            break;
        }
        const char* start = c.p;
        while (!c.done() && is_key_char(*c.p)) ++c.p;
        size_t n = static_cast<size_t>(c.p - start);
        if (n == 0) {
            problem = "expected a table name in the header";
            ok = false;
            break;
        }
        for (size_t i = 0; i < n; ++i) {
            if (path_len + 1 < sizeof path)
                path[path_len++] = start[i];
            else
                path_cut = true;
        }
        c.skip_ws();
        if (c.peek() != '.') break;
        ++c.p;
        if (path_len + 1 < sizeof path)
            path[path_len++] = '.';
        else
            path_cut = true;
        c.skip_ws();
    }
    path[path_len] = '\0';
    if (ok) {
        if (c.peek() != ']' || (array && c.peek(1) != ']')) {
            problem = array ? "expected ']]' to close the header" : "expected ']' to close the header";
            ok = false;
        } else {
            c.p += array ? 2 : 1;
            if (!c.at_line_end()) {
                problem = "unexpected text after the header";
                ok = false;
            }
        }
    }

    bool is_guest = ok && array && !path_cut && cstr_equal(path, "guest");
    bool is_port = ok && array && !path_cut && cstr_equal(path, "guest.port");
    bool in_guest = ok && path_len > 6 && equals(path, 6, "guest.");

    // A new [[guest]] (or a header that cannot belong to the current one) ends
    // the current guest; [[guest.port]] and [guest.x] stay inside it.
    if (!is_port && !in_guest) finish_guest();

    if (!ok) {
        error(kNoGuest, nullptr, "%s", problem);
        section_ = Section::skip;
        return;
    }
    char shown[kSnippetLen + 4];
    snippet(shown, sizeof shown, path, path_len);
    if (is_guest) {
        start_guest();
        return;
    }
    if (is_port) {
        if (guest_ == kNoGuest) {
            error(kNoGuest, nullptr, "[[guest.port]] must follow a [[guest]] header");
            section_ = Section::skip;
        } else if (guest_ == kIgnoredGuest) {
            section_ = Section::skip;
        } else {
            error(guest_, "port", "network ports are not supported yet");
            section_ = Section::port;
        }
        return;
    }
    section_ = Section::skip;
    if (in_guest && guest_ >= 0) {
        error(guest_, nullptr, array ? "unknown table [[%s]]" : "unknown table [%s]", shown);
        return;
    }
    if (in_guest && guest_ == kIgnoredGuest) return;
    if (!array && cstr_equal(path, "guest")) {
        error(kNoGuest, nullptr, "[guest] is a single table; declare each guest with [[guest]]");
        return;
    }
    error(kNoGuest, nullptr,
          array ? "unknown table [[%s]] (only [[guest]] and [[guest.port]])"
                : "unknown table [%s] (only [[guest]] and [[guest.port]])",
          shown);
}

void Parser::start_guest() {
    if (cfg_.guest_count >= kMaxGuests) {
        error(kNoGuest, nullptr, "too many guests: this one is ignored (at most %zu)", kMaxGuests);
        guest_ = kIgnoredGuest;
        section_ = Section::skip;
        return;
    }
    guest_ = static_cast<int32_t>(cfg_.guest_count++);
    GuestConfig& g = cfg_.guests[guest_];
    g = GuestConfig{};
    g.restart = RestartPolicy::never;
    g.restart_delay_ms = kDefaultRestartDelayMs;
    g.restart_delay_max_ms = kDefaultRestartDelayMaxMs;
    g.restart_limit = kDefaultRestartLimit;
    g.mode = StartMode::long64;
    g.line = line_;
    g.valid = true;
    for (bool& b : field_bad_) b = false;
    section_ = Section::guest;
}

// Required keys and the checks that involve two keys, once the section is complete.
void Parser::finish_guest() {
    int32_t gi = guest_;
    guest_ = kNoGuest;
    if (gi < 0) return;
    GuestConfig& g = cfg_.guests[gi];
    for (Field f : kRequiredFields) {
        if (g.line_of(f) == 0) report(cfg_, Severity::error, g.line, gi, field_name(f), "required key is missing");
    }
    auto bad = [&](Field f) { return field_bad_[static_cast<size_t>(f)]; };
    uint32_t delay_line = g.line_of(Field::restart_delay_ms);
    uint32_t max_line = g.line_of(Field::restart_delay_max_ms);
    uint32_t limit_line = g.line_of(Field::restart_limit);
    if (!bad(Field::restart_delay_ms) && !bad(Field::restart_delay_max_ms) &&
        g.restart_delay_max_ms < g.restart_delay_ms) {
        if (max_line != 0)
            report(cfg_, Severity::error, max_line, gi, "restart_delay_max_ms", "%u is less than restart_delay_ms (%u)",
                   g.restart_delay_max_ms, g.restart_delay_ms);
        else
            report(cfg_, Severity::error, delay_line, gi, "restart_delay_ms",
                   "%u is more than restart_delay_max_ms (default %u)", g.restart_delay_ms, g.restart_delay_max_ms);
    }
    if (!bad(Field::restart) && !bad(Field::restart_limit) && g.restart_limit == 0 &&
        g.restart != RestartPolicy::always) {
        report(cfg_, Severity::error, limit_line, gi, "restart_limit",
               "0 (no limit) is only allowed with restart = \"always\"");
    } else if (!bad(Field::restart) && g.restart == RestartPolicy::never) {
        uint32_t first = 0;
        Field which = Field::count;
        for (Field f : kRestartTuning) {
            uint32_t l = g.line_of(f);
            if (l != 0 && !bad(f) && (first == 0 || l < first)) {
                first = l;
                which = f;
            }
        }
        if (which != Field::count)
            report(cfg_, Severity::warning, first, gi, field_name(which), "has no effect with restart = \"never\"");
    }
}

void Parser::key_value(Cursor c) {
    int32_t guest = scope();
    char first = c.peek();
    if (first == '"' || first == '\'') {
        error(guest, nullptr, "quoted keys are not supported");
        return;
    }
    if (!is_key_char(first)) {
        char shown[8];
        if (first >= 0x21 && first <= 0x7e)
            format(shown, sizeof shown, "'%c'", first);
        else
            format(shown, sizeof shown, "0x%02x", static_cast<unsigned>(static_cast<uint8_t>(first)));
        error(guest, nullptr, "unexpected %s: expected 'key = value', a [[guest]] header or a comment", shown);
        return;
    }
    const char* key = c.p;
    while (!c.done() && is_key_char(*c.p)) ++c.p;
    size_t key_len = static_cast<size_t>(c.p - key);
    c.skip_ws();
    if (c.peek() == '.') {
        error_key(guest, key, key_len, "dotted keys are not supported");
        return;
    }
    if (c.peek() != '=') {
        error_key(guest, key, key_len, "expected '=' after the key");
        return;
    }
    ++c.p;
    c.skip_ws();
    if (section_ == Section::root)
        root_key(key, key_len, c);
    else if (section_ == Section::guest)
        guest_key(key, key_len, c);
    else
        value_and_end(c, key, key_len, guest);  // [[guest.port]]: syntax only
}

// Parses the value into value_ and checks nothing follows it but a comment.
bool Parser::value_and_end(Cursor& c, const char* key, size_t key_len, int32_t guest) {
    SyntaxError err;
    if (c.done() || c.peek() == '#') {
        error_key(guest, key, key_len, "missing value after '='");
        return false;
    }
    if (!parse_value(c, value_, err)) {
        error_key(guest, key, key_len, err.text);
        return false;
    }
    if (!c.at_line_end()) {
        fail_char(err, "after the value", c.peek());
        error_key(guest, key, key_len, err.text);
        return false;
    }
    return true;
}

void Parser::root_key(const char* key, size_t key_len, Cursor& c) {
    if (!equals(key, key_len, "version")) {
        bool is_guest_key = false;
        for (const char* name : kFieldNames) is_guest_key |= equals(key, key_len, name);
        error_key(
            kNoGuest, key, key_len,
            is_guest_key ? "unknown key at the top level (guest keys go after a [[guest]] header)" : "unknown key");
        return;
    }
    if (version_line_ != 0) {
        error(kNoGuest, "version", "duplicate key (first set on line %u)", version_line_);
        return;
    }
    version_line_ = line_;
    // Without a readable version nothing else can be trusted to mean what it says.
    if (!value_and_end(c, key, key_len, kNoGuest)) {
        cfg_.fatal = true;
        return;
    }
    if (value_.kind != Kind::integer) {
        error(kNoGuest, "version", "must be an integer, not %s (version = 1)", kind_name(value_.kind));
        cfg_.fatal = true;
        return;
    }
    if (value_.negative || value_.num != kSupportedVersion) {
        error(kNoGuest, "version", "unsupported version %s%llu (this hypervisor reads version %u)",
              value_.negative ? "-" : "", static_cast<unsigned long long>(value_.num), kSupportedVersion);
        cfg_.fatal = true;
        stop_ = true;  // a newer format: its other keys would only produce noise
        return;
    }
    cfg_.version = kSupportedVersion;
}

void Parser::guest_key(const char* key, size_t key_len, Cursor& c) {
    GuestConfig& g = cfg_.guests[guest_];
    Field f = Field::count;
    for (size_t i = 0; i < static_cast<size_t>(Field::count); ++i)
        if (equals(key, key_len, kFieldNames[i])) f = static_cast<Field>(i);
    if (f == Field::count) {
        error_key(guest_, key, key_len,
                  equals(key, key_len, "version") ? "unknown key in a guest (version goes before the first [[guest]])"
                                                  : "unknown key (known: name,image,cpus,memory,mode,restart,"
                                                    "restart_delay_ms,restart_delay_max_ms,restart_limit)");
        return;
    }
    size_t fi = static_cast<size_t>(f);
    if (g.field_line[fi] != 0) {
        error(guest_, field_name(f), "duplicate key (first set on line %u)", g.field_line[fi]);
        return;
    }
    g.field_line[fi] = line_;
    if (!value_and_end(c, key, key_len, guest_)) {
        field_bad_[fi] = true;
        return;
    }
    size_t before = cfg_.error_count;
    apply(g, f);
    if (cfg_.error_count != before) field_bad_[fi] = true;
}

// Unsigned 32-bit key.
bool Parser::apply_u32(Field f, uint32_t& out, uint32_t minimum) {
    const char* name = field_name(f);
    if (value_.kind != Kind::integer) {
        error(guest_, name, "must be an integer, not %s", kind_name(value_.kind));
        return false;
    }
    if (value_.negative && value_.num != 0) {
        error(guest_, name, "must not be negative");
        return false;
    }
    if (value_.num > std::numeric_limits<uint32_t>::max()) {
        error(guest_, name, "%llu is too large (at most %u)", static_cast<unsigned long long>(value_.num),
              std::numeric_limits<uint32_t>::max());
        return false;
    }
    if (value_.num < minimum) {
        error(guest_, name, "must be at least %u", minimum);
        return false;
    }
    out = static_cast<uint32_t>(value_.num);
    return true;
}

// "64M": decimal digits and an optional binary suffix K, M or G.
bool parse_size(const char* s, size_t n, uint64_t& out, char* problem, size_t cap) {
    if (n == 0) {
        format(problem, cap, "must not be empty (e.g. \"64M\")");
        return false;
    }
    char shown[kSnippetLen + 4];
    snippet(shown, sizeof shown, s, n);
    size_t i = 0;
    uint64_t v = 0;
    bool overflow = false;
    while (i < n && is_digit(s[i])) {
        if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, static_cast<uint64_t>(s[i] - '0'), &v))
            overflow = true;
        ++i;
    }
    if (i == 0) {
        format(problem, cap, "'%s' is not a size (a number with an optional K, M or G suffix)", shown);
        return false;
    }
    unsigned shift = 0;
    if (i < n) {
        char suffix = s[i];
        if (suffix == 'K')
            shift = 10;
        else if (suffix == 'M')
            shift = 20;
        else if (suffix == 'G')
            shift = 30;
        if (shift == 0 || i + 1 != n) {
            format(problem, cap, "'%s' has an unknown size suffix (use K, M or G)", shown);
            return false;
        }
    }
    if (overflow || (shift != 0 && v > (std::numeric_limits<uint64_t>::max() >> shift))) {
        format(problem, cap, "'%s' is too large (at most 4G)", shown);
        return false;
    }
    out = v << shift;
    return true;
}

void Parser::apply(GuestConfig& g, Field f) {
    const char* name = field_name(f);
    const Value& v = value_;
    switch (f) {
        case Field::name: {
            if (v.kind != Kind::string) {
                error(guest_, name, "must be a string, not %s", kind_name(v.kind));
                return;
            }
            if (v.str_len == 0) {
                error(guest_, name, "must not be empty");
                return;
            }
            if (v.str_len > kMaxNameLen) {
                error(guest_, name, "is %zu characters long, at most %zu", v.str_len, kMaxNameLen);
                return;
            }
            for (size_t i = 0; i < v.str_len; ++i) {
                if (!is_name_char(v.str[i])) {
                    char shown[kSnippetLen + 4];
                    snippet(shown, sizeof shown, v.str, v.str_len);
                    error(guest_, name, "'%s' has a character outside a-z 0-9 _ -", shown);
                    return;
                }
            }
            copy_text(g.name, sizeof g.name, v.str, v.str_len);
            return;
        }
        case Field::image: {
            if (v.kind != Kind::string) {
                error(guest_, name, "must be a string (a boot module name), not %s", kind_name(v.kind));
                return;
            }
            if (v.str_len == 0) {
                error(guest_, name, "must not be empty");
                return;
            }
            if (v.str_len > kMaxImageLen) {
                error(guest_, name, "is %zu characters long, at most %zu", v.str_len, kMaxImageLen);
                return;
            }
            for (size_t i = 0; i < v.str_len; ++i) {
                if (v.str[i] < 0x21 || v.str[i] > 0x7e) {
                    error(guest_, name, "module names have no spaces or control characters");
                    return;
                }
            }
            copy_text(g.image, sizeof g.image, v.str, v.str_len);
            return;
        }
        case Field::cpus: {
            if (v.kind != Kind::array) {
                error(guest_, name, "must be an array of CPU indices like [1, 2], not %s", kind_name(v.kind));
                return;
            }
            if (v.item_count == 0) {
                error(guest_, name, "must list at least one CPU");
                return;
            }
            if (v.item_count > kMaxGuestCpus) {
                error(guest_, name, "lists %zu CPUs, at most %zu", v.item_count, kMaxGuestCpus);
                return;
            }
            for (size_t i = 0; i < v.item_count; ++i) {
                if (v.item_negative[i] && v.items[i] != 0) {
                    error(guest_, name, "CPU index -%llu is negative", static_cast<unsigned long long>(v.items[i]));
                    return;
                }
                if (v.items[i] > std::numeric_limits<uint32_t>::max()) {
                    error(guest_, name, "CPU index %llu is too large", static_cast<unsigned long long>(v.items[i]));
                    return;
                }
                for (size_t j = 0; j < i; ++j) {
                    if (v.items[j] == v.items[i]) {
                        error(guest_, name, "CPU %llu is listed twice", static_cast<unsigned long long>(v.items[i]));
                        return;
                    }
                }
            }
            for (size_t i = 0; i < v.item_count; ++i) g.cpus[i] = static_cast<uint32_t>(v.items[i]);
            g.cpu_count = v.item_count;
            return;
        }
        case Field::memory: {
            uint64_t bytes = 0;
            if (v.kind == Kind::string) {
                char problem[sizeof(Diagnostic::message)];
                if (!parse_size(v.str, v.str_len, bytes, problem, sizeof problem)) {
                    error(guest_, name, "%s", problem);
                    return;
                }
            } else if (v.kind == Kind::integer) {
                if (v.negative && v.num != 0) {
                    error(guest_, name, "must not be negative");
                    return;
                }
                bytes = v.num;
            } else {
                error(guest_, name, "must be a size like \"64M\", not %s", kind_name(v.kind));
                return;
            }
            char size[24];
            format_size(size, sizeof size, bytes);
            if (bytes < kMemoryGranule) {
                error(guest_, name, "%s is less than the 2M minimum", size);
                return;
            }
            if (bytes > kMaxGuestMemory) {
                error(guest_, name, "%s is more than the 4G maximum", size);
                return;
            }
            if (bytes % kMemoryGranule != 0) {
                error(guest_, name, "%s is not a multiple of 2M", size);
                return;
            }
            g.memory_bytes = bytes;
            return;
        }
        case Field::restart: {
            if (v.kind != Kind::string) {
                error(guest_, name, "must be a string (never, on-failure or always), not %s", kind_name(v.kind));
                return;
            }
            for (size_t i = 0; i < sizeof kPolicyNames / sizeof kPolicyNames[0]; ++i) {
                if (equals(v.str, v.str_len, kPolicyNames[i])) {
                    g.restart = static_cast<RestartPolicy>(i);
                    return;
                }
            }
            char shown[kSnippetLen + 4];
            snippet(shown, sizeof shown, v.str, v.str_len);
            error(guest_, name, "unknown policy '%s' (never, on-failure or always)", shown);
            return;
        }
        // The back-off doubles from restart_delay_ms, so 0 would mean a busy loop.
        case Field::restart_delay_ms: apply_u32(f, g.restart_delay_ms, 1); return;
        case Field::restart_delay_max_ms: apply_u32(f, g.restart_delay_max_ms, 1); return;
        case Field::restart_limit: apply_u32(f, g.restart_limit, 0); return;
        case Field::mode: {
            if (v.kind != Kind::string) {
                error(guest_, name, "must be a string (long64, protected32 or real16), not %s", kind_name(v.kind));
                return;
            }
            for (size_t i = 0; i < sizeof kModeNames / sizeof kModeNames[0]; ++i) {
                if (equals(v.str, v.str_len, kModeNames[i])) {
                    g.mode = static_cast<StartMode>(i);
                    return;
                }
            }
            char shown[kSnippetLen + 4];
            snippet(shown, sizeof shown, v.str, v.str_len);
            error(guest_, name, "unknown mode '%s' (long64, protected32 or real16)", shown);
            return;
        }
        case Field::count: return;
    }
}

// Appends to out at *len, keeping the NUL terminator; never overflows.
__attribute__((format(printf, 4, 5))) void appendf(char* out, size_t cap, size_t* len, const char* fmt, ...) {
    if (*len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    *len += vformat(out + *len, cap - *len, fmt, ap);
    va_end(ap);
}

}  // namespace

const char* start_mode_name(StartMode m) {
    auto i = static_cast<size_t>(m);
    return i < sizeof kModeNames / sizeof kModeNames[0] ? kModeNames[i] : "unknown";
}

const char* restart_policy_name(RestartPolicy p) {
    size_t i = static_cast<size_t>(p);
    return i < sizeof kPolicyNames / sizeof kPolicyNames[0] ? kPolicyNames[i] : "?";
}

const char* field_name(Field f) {
    size_t i = static_cast<size_t>(f);
    return i < static_cast<size_t>(Field::count) ? kFieldNames[i] : "?";
}

size_t Config::valid_guest_count() const {
    if (fatal) return 0;
    size_t n = 0;
    for (size_t i = 0; i < guest_count && i < kMaxGuests; ++i)
        if (guests[i].valid) ++n;
    return n;
}

void parse(const char* text, size_t len, Config& out) {
    __builtin_memset(&out, 0, sizeof out);  // Config is trivial; no 9 KiB temporary on the stack
    if (text == nullptr) len = 0;
    Parser parser(text, len, out);
    parser.run();
    // fatal means no guest starts, whatever each section looked like.
    if (out.fatal)
        for (size_t i = 0; i < out.guest_count; ++i) out.guests[i].valid = false;
}

void validate(Config& cfg, const MachineFacts& facts) {
    if (cfg.fatal) return;
    uint64_t left = facts.free_memory_bytes;
    for (size_t i = 0; i < cfg.guest_count && i < kMaxGuests; ++i) {
        GuestConfig& g = cfg.guests[i];
        if (!g.valid) continue;
        int32_t gi = static_cast<int32_t>(i);
        auto reject = [&](Field f) { return g.line_of(f) ? g.line_of(f) : g.line; };

        for (size_t j = 0; j < i; ++j) {
            if (cfg.guests[j].name[0] != '\0' && cstr_equal(cfg.guests[j].name, g.name)) {
                report(cfg, Severity::error, reject(Field::name), gi, "name",
                       "'%s' is already the name of the guest on line %u", g.name, cfg.guests[j].line);
                break;
            }
        }

        for (size_t k = 0; k < g.cpu_count && k < kMaxGuestCpus; ++k) {
            uint32_t cpu = g.cpus[k];
            if (cpu >= facts.cpu_count) {
                if (facts.cpu_count == 0)
                    report(cfg, Severity::error, reject(Field::cpus), gi, "cpus", "CPU %u does not exist", cpu);
                else
                    report(cfg, Severity::error, reject(Field::cpus), gi, "cpus",
                           "CPU %u does not exist (this machine has CPUs 0-%u)", cpu, facts.cpu_count - 1);
                continue;
            }
            if (cpu == 0) {
                report(cfg, Severity::error, reject(Field::cpus), gi, "cpus", "CPU 0 is reserved for the hypervisor");
                continue;
            }
            if (facts.cpu_online != nullptr && !facts.cpu_online[cpu]) {
                report(cfg, Severity::error, reject(Field::cpus), gi, "cpus",
                       "CPU %u is not online (see hv.cpu in the boot log)", cpu);
                continue;
            }
            // Guests before this one that are still valid own their CPUs.
            for (size_t j = 0; j < i; ++j) {
                const GuestConfig& other = cfg.guests[j];
                if (!other.valid) continue;
                bool taken = false;
                for (size_t m = 0; m < other.cpu_count && m < kMaxGuestCpus; ++m) taken |= other.cpus[m] == cpu;
                if (taken) {
                    report(cfg, Severity::error, reject(Field::cpus), gi, "cpus",
                           "CPU %u is already assigned to guest '%s' (line %u)", cpu, other.name, other.line);
                    break;
                }
            }
        }

        if (!facts.accept_any_module) {
            bool found = false;
            for (size_t m = 0; m < facts.module_count && facts.module_names != nullptr; ++m) {
                const char* mod = facts.module_names[m];
                if (mod != nullptr && cstr_equal(mod, g.image)) found = true;
            }
            if (!found) {
                // Name what was loaded, cut to fit: the usual mistake is a typo.
                char list[64];
                size_t n = 0;
                list[0] = '\0';
                for (size_t m = 0; m < facts.module_count && facts.module_names != nullptr; ++m) {
                    if (facts.module_names[m] == nullptr) continue;
                    char shown[kSnippetLen + 4];
                    snippet(shown, sizeof shown, facts.module_names[m], cstr_len(facts.module_names[m]));
                    appendf(list, sizeof list, &n, "%s%s", n ? ", " : "", shown);
                }
                if (n == 0)
                    report(cfg, Severity::error, reject(Field::image), gi, "image",
                           "no boot module named '%s' (no modules were loaded)", g.image);
                else
                    report(cfg, Severity::error, reject(Field::image), gi, "image",
                           "no boot module named '%s' (loaded: %s)", g.image, list);
            }
        }

        if (g.memory_bytes > left) {
            char want[24], have[24], total[24];
            format_size(want, sizeof want, g.memory_bytes);
            format_size(have, sizeof have, left);
            format_size(total, sizeof total, facts.free_memory_bytes);
            report(cfg, Severity::error, reject(Field::memory), gi, "memory",
                   "%s does not fit: %s of %s free memory is left", want, have, total);
        }

        // A rejected guest claims nothing (its CPUs were never marked; see above).
        if (g.valid) left -= g.memory_bytes;
    }
}

size_t format_diagnostic(const Diagnostic& d, const Config& cfg, const char* file, char* out, size_t cap) {
    if (out == nullptr || cap == 0) return 0;
    size_t n = 0;
    out[0] = '\0';
    bool have_file = file != nullptr && file[0] != '\0';
    if (have_file && d.line != 0)
        appendf(out, cap, &n, "%s:%u: ", file, d.line);
    else if (have_file)
        appendf(out, cap, &n, "%s: ", file);
    else if (d.line != 0)
        appendf(out, cap, &n, "line %u: ", d.line);
    if (d.severity == Severity::warning) appendf(out, cap, &n, "warning: ");
    if (d.guest >= 0 && static_cast<size_t>(d.guest) < cfg.guest_count && static_cast<size_t>(d.guest) < kMaxGuests) {
        const GuestConfig& g = cfg.guests[d.guest];
        if (g.name[0] != '\0')
            appendf(out, cap, &n, "guest '%s': ", g.name);
        else
            appendf(out, cap, &n, "guest #%d: ", static_cast<int>(d.guest) + 1);
    }
    if (d.field[0] != '\0') appendf(out, cap, &n, "field '%s': ", d.field);
    appendf(out, cap, &n, "%s", d.message);
    return n;
}

}  // namespace hv::config
