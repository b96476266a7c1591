#include "kernel/config/config.hpp"

#include <limits>

#include "kernel/lib/format.hpp"  // also brings va_list (<stdarg.h>, a freestanding header)

namespace hv::config {

namespace {

constexpr const char* kFieldNames[] = {
    "name",          "image", "cpus", "memory", "restart", "restart_delay_ms", "restart_delay_max_ms",
    "restart_limit", "mode",  "args",
};
static_assert(sizeof kFieldNames / sizeof kFieldNames[0] == static_cast<size_t>(Field::count));

constexpr const char* kPortFieldNames[] = {
    "name",       "mac",        "vlan_mode", "vlan",   "allowed_vlans",    "native_vlan", "protected",
    "anti_spoof", "rate_limit", "burst",     "mirror", "mirror_direction", "max_macs",
};
static_assert(sizeof kPortFieldNames / sizeof kPortFieldNames[0] == static_cast<size_t>(PortField::count));

constexpr const char* kMirrorFieldNames[] = {"name", "snaplen", "buffer"};
static_assert(sizeof kMirrorFieldNames / sizeof kMirrorFieldNames[0] == static_cast<size_t>(MirrorField::count));

constexpr const char* kSwitchFieldNames[] = {"mac_ageing_s", "fdb_size"};
static_assert(sizeof kSwitchFieldNames / sizeof kSwitchFieldNames[0] == static_cast<size_t>(SwitchField::count));

constexpr const char* kPolicyNames[] = {"never", "on-failure", "always"};
constexpr const char* kModeNames[] = {"long64", "protected32", "real16"};
constexpr const char* kVlanModeNames[] = {"access", "trunk"};
constexpr const char* kDirectionNames[] = {"both", "rx", "tx"};
constexpr Field kRequiredFields[] = {Field::name, Field::image, Field::cpus, Field::memory};
constexpr Field kRestartTuning[] = {Field::restart_delay_ms, Field::restart_delay_max_ms, Field::restart_limit};

static_assert(kMaxMirrors <= 8, "PortConfig::mirror_mask has 8 bits");
static_assert(kMaxPorts <= std::numeric_limits<uint16_t>::max(), "PortConfig::index is 16 bits");

constexpr uint32_t kSupportedVersion = 1;
constexpr int32_t kNoGuest = -1;       // before the first [[guest]]
constexpr int32_t kIgnoredGuest = -2;  // a [[guest]] past kMaxGuests
constexpr size_t kSnippetLen = 24;     // user text echoed in a message is cut to this

template <size_t N>
constexpr size_t count_of(const char* const (&)[N]) {
    return N;
}

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

// Index of the key in a name table, or N when it is not there.
template <size_t N>
size_t find_name(const char* const (&names)[N], const char* key, size_t key_len) {
    for (size_t i = 0; i < N; ++i)
        if (equals(key, key_len, names[i])) return i;
    return N;
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
int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Appends to out at *len, keeping the NUL terminator; never overflows.
__attribute__((format(printf, 4, 5))) void appendf(char* out, size_t cap, size_t* len, const char* fmt, ...) {
    if (*len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    *len += vformat(out + *len, cap - *len, fmt, ap);
    va_end(ap);
}

// "a, b or c" from a name table, for messages that list the choices.
template <size_t N>
void choice_list(const char* const (&names)[N], char* out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N; ++i) appendf(out, cap, &n, "%s%s", i == 0 ? "" : i + 1 == N ? " or " : ", ", names[i]);
}

// "known: a,b,c" from a name table, for unknown-key messages.
template <size_t N>
void key_list(const char* const (&names)[N], char* out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N; ++i) appendf(out, cap, &n, "%s%s", i == 0 ? "known: " : ",", names[i]);
}

// ---------------------------------------------------------------------------
// Diagnostics. The single place that records a problem; an error inside a guest
// (or one of its ports) also rejects that guest, and an error inside a mirror
// drops that mirror.

struct Owner {
    int32_t guest = -1;   // index into Config::guests; negative: none
    int32_t port = -1;    // index into that guest's ports
    int32_t mirror = -1;  // index into Config::mirrors
};

__attribute__((format(printf, 7, 0))) void vreport(Config& cfg, Severity sev, uint32_t line, Owner who,
                                                   const char* field, size_t field_len, const char* fmt, va_list ap) {
    if (sev == Severity::error)
        ++cfg.error_count;
    else
        ++cfg.warning_count;
    if (sev == Severity::error && who.guest >= 0 && static_cast<size_t>(who.guest) < cfg.guest_count)
        cfg.guests[who.guest].valid = false;
    if (sev == Severity::error && who.mirror >= 0 && static_cast<size_t>(who.mirror) < cfg.mirror_count)
        cfg.mirrors[who.mirror].valid = false;
    if (cfg.diag_count >= kMaxDiagnostics) {
        ++cfg.diags_dropped;
        return;
    }
    Diagnostic& d = cfg.diags[cfg.diag_count++];
    d.severity = sev;
    d.line = line;
    d.guest = who.guest >= 0 ? who.guest : -1;
    d.port = d.guest >= 0 && who.port >= 0 ? who.port : -1;
    d.mirror = who.mirror >= 0 ? who.mirror : -1;
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

__attribute__((format(printf, 6, 7))) void report(Config& cfg, Severity sev, uint32_t line, Owner who,
                                                  const char* field, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(cfg, sev, line, who, field ? field : "", field ? cstr_len(field) : 0, fmt, ap);
    va_end(ap);
}

// The same, for a field given by pointer and length (a key as written in the file).
__attribute__((format(printf, 6, 7))) void report_key(Config& cfg, uint32_t line, Owner who, const char* key,
                                                      size_t key_len, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(cfg, Severity::error, line, who, key, key_len, fmt, ap);
    va_end(ap);
}

Owner guest_owner(int32_t guest) {
    Owner o;
    o.guest = guest;
    return o;
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

// An array element: an integer or a string (TOML arrays may mix them).
struct Item {
    uint64_t num;      // integer: magnitude
    const char* raw;   // string: where its characters start in the file
    uint16_t str_off;  // string: decoded text at Value::str + str_off
    uint16_t str_len;
    Kind kind;
    bool negative;
};
constexpr size_t kMaxItems = 64;  // kept per array; more are counted, and every key allows fewer

struct Value {
    Kind kind;
    // A decoded string, or the strings of an array back to back. Decoding never
    // makes text longer, so this holds everything one line can carry.
    char str[kMaxLineLen + 1];
    size_t str_len;
    const char* raw;  // string: where its characters start in the file
    uint64_t num;     // magnitude
    bool negative;
    bool boolean;
    Item items[kMaxItems];
    size_t item_count;  // all items on the line; only the first kMaxItems are kept
};
static_assert(kMaxLineLen < std::numeric_limits<uint16_t>::max(), "Item offsets are 16 bits");
static_assert(kMaxGuestCpus <= kMaxItems && kMaxMirrors <= kMaxItems);

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

// A basic string "...", decoded and appended to v.str (v.str_len grows).
// Returns where its characters start in the file.
bool parse_string(Cursor& c, Value& v, const char*& raw, SyntaxError& err) {
    if (c.peek(1) == '"' && c.peek(2) == '"') return fail(err, "multi-line strings are not supported");
    ++c.p;  // opening quote
    raw = c.p;
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
        // Decoded text is never longer than the line, which fits str[].
        if (v.str_len < kMaxLineLen) v.str[v.str_len++] = ch;
    }
    v.str[v.str_len] = '\0';
    return true;
}

// One line of integers and strings, e.g. [1, 2] or [10, "100-199"].
bool parse_array(Cursor& c, Value& v, SyntaxError& err) {
    ++c.p;  // '['
    v.kind = Kind::array;
    v.item_count = 0;
    v.str_len = 0;
    for (;;) {
        c.skip_ws();
        if (c.done() || c.peek() == '#') return fail(err, "arrays must end on the same line (no multi-line arrays)");
        if (c.peek() == ']') {
            ++c.p;
            return true;
        }
        char first = c.peek();
        if (first == '\'') return fail(err, "literal strings ('...') are not supported; use \"...\"");
        if (first == '[' || first == '{' || first == 't' || first == 'f')
            return fail(err, "arrays may only hold integers and strings");
        Item item{};
        if (first == '"') {
            size_t start = v.str_len;
            if (!parse_string(c, v, item.raw, err)) return false;
            item.kind = Kind::string;
            item.str_off = static_cast<uint16_t>(start);
            item.str_len = static_cast<uint16_t>(v.str_len - start);
        } else {
            item.kind = Kind::integer;
            if (!parse_integer(c, item.num, item.negative, err)) return false;
        }
        if (v.item_count < kMaxItems) v.items[v.item_count] = item;
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
    if (ch == '"') {
        v.kind = Kind::string;
        v.str_len = 0;
        return parse_string(c, v, v.raw, err);
    }
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
// Text forms of values, checked without reporting: the caller names the field.

// Decimal digits and an optional suffix K, M or G, worth unit, unit^2, unit^3
// (1024 for sizes in bytes, 1000 for rates in bits per second). `what` is
// "size" or "rate", `example` a good value for the message.
bool parse_scaled(const char* s, size_t n, uint64_t unit, const char* what, const char* example, uint64_t& out,
                  char* problem, size_t cap) {
    if (n == 0) {
        format(problem, cap, "must not be empty (e.g. \"%s\")", example);
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
        format(problem, cap, "'%s' is not a %s (a number with an optional K, M or G suffix)", shown, what);
        return false;
    }
    uint64_t factor = 1;
    if (i < n) {
        char suffix = s[i];
        unsigned power = suffix == 'K' ? 1 : suffix == 'M' ? 2 : suffix == 'G' ? 3 : 0;
        if (power == 0 || i + 1 != n) {
            format(problem, cap, "'%s' has an unknown %s suffix (use K, M or G)", shown, what);
            return false;
        }
        for (unsigned k = 0; k < power; ++k) factor *= unit;
    }
    if (overflow || __builtin_mul_overflow(v, factor, &out)) {
        format(problem, cap, "'%s' is too large", shown);
        return false;
    }
    return true;
}

// "02:00:00:00:00:01": six pairs of hex digits (either case) separated by ':'.
bool parse_mac(const char* s, size_t n, uint8_t (&mac)[kMacLen]) {
    if (n != kMacLen * 3 - 1) return false;
    for (size_t i = 0; i < kMacLen; ++i) {
        int hi = hex_value(s[i * 3]);
        int lo = hex_value(s[i * 3 + 1]);
        if (hi < 0 || lo < 0) return false;
        if (i + 1 < kMacLen && s[i * 3 + 2] != ':') return false;
        mac[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}

// "100" or "100-199" (decimal, no spaces); false when it is neither.
bool parse_vlan_range(const char* s, size_t n, uint64_t& first, uint64_t& last) {
    size_t i = 0;
    auto number = [&](uint64_t& out) {
        size_t start = i;
        out = 0;
        // More than 5 digits is out of range anyway; stop before it can overflow.
        while (i < n && is_digit(s[i]) && i - start < 6) out = out * 10 + static_cast<uint64_t>(s[i++] - '0');
        return i > start;
    };
    if (!number(first)) return false;
    last = first;
    if (i < n && s[i] == '-') {
        ++i;
        if (!number(last)) return false;
    }
    return i == n;
}

// Sets VLANs first..last (both in 1..4094); returns the first one that was
// already set, or 0.
uint32_t add_vlans(uint64_t (&bits)[kVlanWords], uint32_t first, uint32_t last) {
    uint32_t clash = 0;
    for (uint32_t w = first / 64; w <= last / 64; ++w) {
        uint32_t lo = w * 64 < first ? first % 64 : 0;
        uint32_t hi = w * 64 + 63 > last ? last % 64 : 63;
        uint64_t mask = (hi == 63 ? ~0ull : ((1ull << (hi + 1)) - 1)) & ~((1ull << lo) - 1);
        uint64_t both = bits[w] & mask;
        if (both != 0 && clash == 0) clash = w * 64 + static_cast<uint32_t>(__builtin_ctzll(both));
        bits[w] |= mask;
    }
    return clash;
}

bool mac_is_zero(const uint8_t (&mac)[kMacLen]) {
    for (uint8_t b : mac)
        if (b != 0) return false;
    return true;
}

// ---------------------------------------------------------------------------
// The parser: one pass over the lines, with the current section as state.

enum class Section : uint8_t {
    root,          // before the first header: only `version`
    guest,         // inside a [[guest]]
    port,          // inside a [[guest.port]] of the current guest
    mirror,        // inside a [[mirror]]
    switch_table,  // inside the [switch] table
    skip,          // after a rejected header: lines ignored until the next header
};

// The mirror names one port gave, resolved once the whole file is read (a port
// may name a mirror defined after it). Names point into the file: a valid name
// has no escapes, so its text there is exactly the decoded name.
struct MirrorRefs {
    int32_t guest;
    int32_t port;
    uint32_t count;
    uint32_t offset[kMaxMirrors];
    uint8_t length[kMaxMirrors];
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
    void port_key(const char* key, size_t key_len, Cursor& c);
    void mirror_key(const char* key, size_t key_len, Cursor& c);
    void switch_key(const char* key, size_t key_len, Cursor& c);
    bool value_and_end(Cursor& c, const char* key, size_t key_len, int32_t guest);
    template <size_t N>
    size_t known_key(const char* const (&names)[N], uint32_t (&lines)[N], bool* bad, const char* key, size_t key_len,
                     Cursor& c, const char* hint);
    void apply(GuestConfig& g, Field f);
    void apply_port(PortConfig& p, PortField f);
    void apply_port_mac(PortConfig& p, const char* name);
    void apply_allowed_vlans(PortConfig& p, const char* name);
    void apply_port_mirrors(const char* name);
    void apply_mirror(MirrorConfig& m, MirrorField f);
    void apply_switch(SwitchConfig& s, SwitchField f);
    bool apply_u32(Field f, uint32_t& out, uint32_t minimum);
    bool name_text(const char* field, const char* s, size_t n);
    bool name_value(const char* field, char (&out)[kMaxNameLen + 1]);
    bool size_value(const char* field, const char* example, uint64_t& out);
    bool size_limits(const char* field, uint64_t bytes, uint64_t min, uint64_t max, uint64_t granule,
                     const char* min_reason);
    bool int_value(const char* field, uint64_t lo, uint64_t hi, uint64_t& out);
    bool bool_value(const char* field, bool& out);
    template <size_t N>
    bool choice_value(const char* field, const char* const (&names)[N], const char* noun, size_t& out);
    void start_guest();
    void finish_guest();
    void start_port();
    void finish_port();
    void start_mirror();
    void finish_mirror();
    void start_switch();
    void resolve_mirrors();
    bool prescan();

    int32_t scope() const { return (section_ == Section::guest || section_ == Section::port) ? guest_ : kNoGuest; }
    // Who a problem on the current line belongs to: the guest given (and the
    // port being read, if any), or the mirror being read.
    Owner owner(int32_t guest) const {
        Owner o = guest_owner(guest);
        if (guest >= 0 && section_ == Section::port) o.port = port_;
        if (guest < 0 && section_ == Section::mirror) o.mirror = mirror_;
        return o;
    }
    __attribute__((format(printf, 4, 5))) void error(int32_t guest, const char* field, const char* fmt, ...);
    void error_key(int32_t guest, const char* key, size_t key_len, const char* msg);

    const char* text_;
    size_t len_;
    Config& cfg_;
    uint32_t line_ = 0;
    Section section_ = Section::root;
    int32_t guest_ = kNoGuest;
    int32_t port_ = -1;    // the port being read, an index into the guest's ports
    int32_t mirror_ = -1;  // the mirror being read, an index into cfg_.mirrors
    size_t ports_seen_ = 0;
    bool field_bad_[static_cast<size_t>(Field::count)] = {};
    bool port_field_bad_[static_cast<size_t>(PortField::count)] = {};
    MirrorRefs refs_[kMaxPorts] = {};
    size_t ref_count_ = 0;
    uint32_t version_line_ = 0;
    bool stop_ = false;
    Value value_{};
};

void Parser::error(int32_t guest, const char* field, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(cfg_, Severity::error, line_, owner(guest), field ? field : "", field ? cstr_len(field) : 0, fmt, ap);
    va_end(ap);
}

// The key as written is the field (keys are [A-Za-z0-9_-]; vreport cuts long ones).
void Parser::error_key(int32_t guest, const char* key, size_t key_len, const char* msg) {
    report_key(cfg_, line_, owner(guest), key, key_len, "%s", msg);
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
            report(cfg_, Severity::error, line, Owner{}, nullptr, "NUL byte at offset %zu: not a text file", i);
            cfg_.fatal = true;
            return false;
        }
        if (b < 0x20 || b == 0x7f) {
            report(cfg_, Severity::error, line, Owner{}, nullptr, "control byte 0x%02x at offset %zu: not a text file",
                   static_cast<unsigned>(b), i);
            cfg_.fatal = true;
            return false;
        }
    }
    return true;
}

void Parser::run() {
    SwitchConfig& sw = cfg_.switch_config;
    sw.mac_ageing_s = kDefaultMacAgeingS;
    sw.fdb_size = kDefaultFdbSize;
    if (len_ > kMaxFileSize) {
        report(cfg_, Severity::error, 0, Owner{}, nullptr, "file is %zu bytes, more than the %zu-byte limit", len_,
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
    finish_port();
    finish_mirror();
    finish_guest();
    section_ = Section::skip;
    resolve_mirrors();

    if (version_line_ == 0) {
        report(cfg_, Severity::error, 0, Owner{}, "version",
               "required key is missing (the file must start with version = 1)");
        cfg_.fatal = true;
    }
    if (cfg_.guest_count == 0 && !cfg_.fatal)
        report(cfg_, Severity::warning, 0, Owner{}, nullptr, "no [[guest]] sections: there is nothing to start");
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

    bool named = ok && !path_cut;
    auto is = [&](bool want_array, const char* name) { return named && array == want_array && cstr_equal(path, name); };
    bool is_port = is(true, "guest.port");
    bool in_guest = ok && path_len > 6 && equals(path, 6, "guest.");

    // Every header ends the port or mirror before it. A new [[guest]] (or a
    // header that cannot belong to the current guest) also ends the guest;
    // [[guest.port]] and [guest.x] stay inside it.
    finish_port();
    finish_mirror();
    if (!is_port && !in_guest) finish_guest();
    section_ = Section::skip;  // until the header is accepted below

    if (!ok) {
        error(kNoGuest, nullptr, "%s", problem);
        return;
    }
    char shown[kSnippetLen + 4];
    snippet(shown, sizeof shown, path, path_len);
    if (is(true, "guest")) {
        start_guest();
    } else if (is_port) {
        if (guest_ == kNoGuest)
            error(kNoGuest, nullptr, "[[guest.port]] must follow a [[guest]] header");
        else if (guest_ != kIgnoredGuest)
            start_port();
    } else if (is(true, "mirror")) {
        start_mirror();
    } else if (is(false, "switch")) {
        start_switch();
    } else if (in_guest && guest_ >= 0) {
        if (is(false, "guest.port"))
            error(guest_, nullptr, "[guest.port] is a single table; declare each port with [[guest.port]]");
        else
            error(guest_, nullptr, array ? "unknown table [[%s]]" : "unknown table [%s]", shown);
    } else if (in_guest && guest_ == kIgnoredGuest) {
        // Part of a guest that is already reported as ignored.
    } else if (is(false, "guest")) {
        error(kNoGuest, nullptr, "[guest] is a single table; declare each guest with [[guest]]");
    } else if (is(false, "mirror")) {
        error(kNoGuest, nullptr, "[mirror] is a single table; declare each mirror with [[mirror]]");
    } else if (is(true, "switch")) {
        error(kNoGuest, nullptr, "[[switch]] is an array of tables; the switch has one table, [switch]");
    } else {
        error(kNoGuest, nullptr,
              array ? "unknown table [[%s]] (only [[guest]], [[guest.port]], [[mirror]] and [switch])"
                    : "unknown table [%s] (only [[guest]], [[guest.port]], [[mirror]] and [switch])",
              shown);
    }
}

void Parser::start_guest() {
    if (cfg_.guest_count >= kMaxGuests) {
        error(kNoGuest, nullptr, "too many guests: this one is ignored (at most %zu)", kMaxGuests);
        guest_ = kIgnoredGuest;
        return;
    }
    guest_ = static_cast<int32_t>(cfg_.guest_count++);
    GuestConfig& g = cfg_.guests[guest_];
    __builtin_memset(&g, 0, sizeof g);  // no 3 KiB GuestConfig{} temporary on the stack
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
    Owner who = guest_owner(gi);
    for (Field f : kRequiredFields) {
        if (g.line_of(f) == 0) report(cfg_, Severity::error, g.line, who, field_name(f), "required key is missing");
    }
    auto bad = [&](Field f) { return field_bad_[static_cast<size_t>(f)]; };
    uint32_t delay_line = g.line_of(Field::restart_delay_ms);
    uint32_t max_line = g.line_of(Field::restart_delay_max_ms);
    uint32_t limit_line = g.line_of(Field::restart_limit);
    if (!bad(Field::restart_delay_ms) && !bad(Field::restart_delay_max_ms) &&
        g.restart_delay_max_ms < g.restart_delay_ms) {
        if (max_line != 0)
            report(cfg_, Severity::error, max_line, who, "restart_delay_max_ms",
                   "%u is less than restart_delay_ms (%u)", g.restart_delay_max_ms, g.restart_delay_ms);
        else
            report(cfg_, Severity::error, delay_line, who, "restart_delay_ms",
                   "%u is more than restart_delay_max_ms (default %u)", g.restart_delay_ms, g.restart_delay_max_ms);
    }
    if (!bad(Field::restart) && !bad(Field::restart_limit) && g.restart_limit == 0 &&
        g.restart != RestartPolicy::always) {
        report(cfg_, Severity::error, limit_line, who, "restart_limit",
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
            report(cfg_, Severity::warning, first, who, field_name(which), "has no effect with restart = \"never\"");
    }
}

void Parser::start_port() {
    GuestConfig& g = cfg_.guests[guest_];
    if (g.port_count >= kMaxPortsPerGuest) {
        error(guest_, nullptr, "too many ports: at most %zu per guest", kMaxPortsPerGuest);
        return;
    }
    if (ports_seen_ >= kMaxPorts) {
        error(guest_, nullptr, "too many ports: at most %zu in all guests together", kMaxPorts);
        return;
    }
    port_ = static_cast<int32_t>(g.port_count++);
    PortConfig& p = g.ports[port_];
    __builtin_memset(&p, 0, sizeof p);
    format(p.name, sizeof p.name, "eth%d", static_cast<int>(port_));
    p.vlan_mode = VlanMode::access;
    p.vlan = kMinVlan;
    p.anti_spoof = true;
    p.burst_bytes = kDefaultBurstBytes;
    p.max_macs = kDefaultMaxMacs;
    p.mirror_direction = MirrorDirection::both;
    p.index = static_cast<uint16_t>(ports_seen_++);
    p.line = line_;
    for (bool& b : port_field_bad_) b = false;
    section_ = Section::port;
}

// Required keys and the checks between keys of one port, once it is complete.
void Parser::finish_port() {
    int32_t pi = port_;
    port_ = -1;
    if (pi < 0 || guest_ < 0) return;
    GuestConfig& g = cfg_.guests[guest_];
    PortConfig& p = g.ports[pi];
    Owner who = guest_owner(guest_);
    who.port = pi;
    auto bad = [&](PortField f) { return port_field_bad_[static_cast<size_t>(f)]; };
    auto given = [&](PortField f) { return p.line_of(f) != 0; };
    auto fail_at = [&](PortField f, Severity sev, const char* msg) {
        report(cfg_, sev, p.line_of(f), who, port_field_name(f), "%s", msg);
    };

    if (!given(PortField::mac)) report(cfg_, Severity::error, p.line, who, "mac", "required key is missing");

    if (p.name[0] != '\0') {
        for (int32_t j = 0; j < pi; ++j) {
            if (!cstr_equal(g.ports[j].name, p.name)) continue;
            if (given(PortField::name))
                report(cfg_, Severity::error, p.line_of(PortField::name), who, "name",
                       "'%s' is already the name of the port on line %u", p.name, g.ports[j].line);
            else
                report(cfg_, Severity::error, p.line, who, "name",
                       "the default name '%s' is already the name of the port on line %u; give this port a name",
                       p.name, g.ports[j].line);
            break;
        }
    }

    // VLAN keys that do not fit the mode are errors: they show that the port was
    // meant to be something else (an access port where a trunk was meant, or
    // the reverse), and guessing would put frames on the wrong VLAN.
    if (!bad(PortField::vlan_mode)) {
        if (p.vlan_mode == VlanMode::trunk) {
            if (given(PortField::vlan))
                fail_at(PortField::vlan, Severity::error,
                        "only applies to an access port (a trunk takes allowed_vlans and native_vlan)");
            if (!given(PortField::allowed_vlans)) add_vlans(p.allowed_vlans, kMinVlan, kMaxVlan);
            if (!bad(PortField::allowed_vlans) && !bad(PortField::native_vlan) && p.native_vlan != 0 &&
                !p.carries(p.native_vlan))
                report(cfg_, Severity::error, p.line_of(PortField::native_vlan), who, "native_vlan",
                       "VLAN %u is not in allowed_vlans (line %u)", p.native_vlan, p.line_of(PortField::allowed_vlans));
            p.vlan = 0;
        } else {
            constexpr PortField kTrunkOnly[] = {PortField::allowed_vlans, PortField::native_vlan};
            for (PortField f : kTrunkOnly)
                if (given(f)) fail_at(f, Severity::error, "only applies to a trunk port (vlan_mode = \"trunk\")");
            __builtin_memset(p.allowed_vlans, 0, sizeof p.allowed_vlans);
            add_vlans(p.allowed_vlans, p.vlan, p.vlan);
            p.native_vlan = 0;
        }
    }

    // Keys that do nothing without another one: a warning, as for restart tuning
    // with restart = "never"; the port works as written.
    if (given(PortField::burst) && !bad(PortField::burst) && !bad(PortField::rate_limit) && p.rate_bits_per_sec == 0)
        fail_at(PortField::burst, Severity::warning,
                given(PortField::rate_limit) ? "has no effect with rate_limit = 0 (unlimited)"
                                             : "has no effect without a rate_limit");
    if (given(PortField::mirror_direction) && !bad(PortField::mirror_direction) && !given(PortField::mirror))
        fail_at(PortField::mirror_direction, Severity::warning, "has no effect without a mirror");
    if (given(PortField::max_macs) && !bad(PortField::max_macs) && !bad(PortField::anti_spoof) && p.anti_spoof)
        fail_at(PortField::max_macs, Severity::warning,
                "has no effect with anti_spoof = true (the port sends only from its own mac, which is not learned)");
}

void Parser::start_mirror() {
    if (cfg_.mirror_count >= kMaxMirrors) {
        error(kNoGuest, nullptr, "too many mirrors: this one is ignored (at most %zu)", kMaxMirrors);
        return;
    }
    mirror_ = static_cast<int32_t>(cfg_.mirror_count++);
    MirrorConfig& m = cfg_.mirrors[mirror_];
    __builtin_memset(&m, 0, sizeof m);
    m.snaplen = kDefaultSnaplen;
    m.buffer_bytes = kDefaultMirrorBuffer;
    m.line = line_;
    m.valid = true;
    section_ = Section::mirror;
}

void Parser::finish_mirror() {
    int32_t mi = mirror_;
    mirror_ = -1;
    if (mi < 0) return;
    const MirrorConfig& m = cfg_.mirrors[mi];
    Owner who;
    who.mirror = mi;
    if (m.line_of(MirrorField::name) == 0)
        report(cfg_, Severity::error, m.line, who, "name", "required key is missing");
}

void Parser::start_switch() {
    SwitchConfig& s = cfg_.switch_config;
    if (s.line != 0) {
        error(kNoGuest, nullptr, "duplicate table [switch] (first on line %u); its keys are ignored", s.line);
        return;
    }
    s.line = line_;
    section_ = Section::switch_table;
}

// Ports name mirrors; now that every [[mirror]] is known, turn the names into
// mirror_mask bits. Then a valid mirror that no port names gets a warning.
void Parser::resolve_mirrors() {
    bool used[kMaxMirrors] = {};
    for (size_t r = 0; r < ref_count_; ++r) {
        const MirrorRefs& ref = refs_[r];
        PortConfig& p = cfg_.guests[ref.guest].ports[ref.port];
        Owner who = guest_owner(ref.guest);
        who.port = ref.port;
        for (uint32_t k = 0; k < ref.count; ++k) {
            const char* name = text_ + ref.offset[k];
            size_t len = ref.length[k];
            size_t m = 0;
            while (m < cfg_.mirror_count && !equals(name, len, cfg_.mirrors[m].name)) ++m;
            char shown[kSnippetLen + 4];
            snippet(shown, sizeof shown, name, len);
            if (m == cfg_.mirror_count) {
                report(cfg_, Severity::error, p.line_of(PortField::mirror), who, "mirror",
                       "unknown mirror '%s' (no [[mirror]] has that name)", shown);
            } else if (!cfg_.mirrors[m].valid) {
                report(cfg_, Severity::error, p.line_of(PortField::mirror), who, "mirror",
                       "unknown mirror '%s' (the [[mirror]] on line %u has errors)", shown, cfg_.mirrors[m].line);
            } else {
                p.mirror_mask = static_cast<uint8_t>(p.mirror_mask | (1u << m));
                used[m] = true;
            }
        }
    }
    for (size_t m = 0; m < cfg_.mirror_count; ++m) {
        if (!cfg_.mirrors[m].valid || used[m]) continue;
        Owner who;
        who.mirror = static_cast<int32_t>(m);
        report(cfg_, Severity::warning, cfg_.mirrors[m].line, who, nullptr,
               "no port uses it (add mirror = \"%s\" to a [[guest.port]])", cfg_.mirrors[m].name);
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
    switch (section_) {
        case Section::root: root_key(key, key_len, c); return;
        case Section::guest: guest_key(key, key_len, c); return;
        case Section::port: port_key(key, key_len, c); return;
        case Section::mirror: mirror_key(key, key_len, c); return;
        case Section::switch_table: switch_key(key, key_len, c); return;
        case Section::skip: return;
    }
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
        const char* msg = "unknown key";
        if (find_name(kFieldNames, key, key_len) < count_of(kFieldNames))
            msg = "unknown key at the top level (guest keys go after a [[guest]] header)";
        else if (find_name(kPortFieldNames, key, key_len) < count_of(kPortFieldNames))
            msg = "unknown key at the top level (port keys go after a [[guest.port]] header)";
        else if (find_name(kMirrorFieldNames, key, key_len) < count_of(kMirrorFieldNames))
            msg = "unknown key at the top level (mirror keys go after a [[mirror]] header)";
        else if (find_name(kSwitchFieldNames, key, key_len) < count_of(kSwitchFieldNames))
            msg = "unknown key at the top level (switch keys go after a [switch] header)";
        error_key(kNoGuest, key, key_len, msg);
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

// What every key goes through, in any section: is it a key of this section,
// was it given before, does its value parse? Returns its index in `names`, or
// N when the line was reported. `hint` replaces the list of known keys in the
// message for a key that belongs to another section.
template <size_t N>
size_t Parser::known_key(const char* const (&names)[N], uint32_t (&lines)[N], bool* bad, const char* key,
                         size_t key_len, Cursor& c, const char* hint) {
    int32_t guest = scope();
    size_t fi = find_name(names, key, key_len);
    if (fi == N) {
        char known[sizeof(Diagnostic::message)], msg[sizeof known];
        key_list(names, known, sizeof known);
        if (hint == nullptr) format(msg, sizeof msg, "unknown key (%s)", known);
        error_key(guest, key, key_len, hint != nullptr ? hint : msg);
        return N;
    }
    if (lines[fi] != 0) {
        error(guest, names[fi], "duplicate key (first set on line %u)", lines[fi]);
        return N;
    }
    lines[fi] = line_;
    if (!value_and_end(c, key, key_len, guest)) {
        if (bad != nullptr) bad[fi] = true;
        return N;
    }
    return fi;
}

void Parser::guest_key(const char* key, size_t key_len, Cursor& c) {
    GuestConfig& g = cfg_.guests[guest_];
    const char* hint = nullptr;
    if (equals(key, key_len, "version"))
        hint = "unknown key in a guest (version goes before the first [[guest]])";
    else if (find_name(kPortFieldNames, key, key_len) < count_of(kPortFieldNames))
        hint = "unknown key in a guest (port keys go after a [[guest.port]] header)";
    size_t fi = known_key(kFieldNames, g.field_line, field_bad_, key, key_len, c, hint);
    if (fi == count_of(kFieldNames)) return;
    size_t before = cfg_.error_count;
    apply(g, static_cast<Field>(fi));
    if (cfg_.error_count != before) field_bad_[fi] = true;
}

void Parser::port_key(const char* key, size_t key_len, Cursor& c) {
    PortConfig& p = cfg_.guests[guest_].ports[port_];
    const char* hint = nullptr;
    if (find_name(kFieldNames, key, key_len) < count_of(kFieldNames))
        hint = "unknown key in a port (guest keys go before the guest's first [[guest.port]])";
    size_t fi = known_key(kPortFieldNames, p.field_line, port_field_bad_, key, key_len, c, hint);
    if (fi == count_of(kPortFieldNames)) return;
    size_t before = cfg_.error_count;
    apply_port(p, static_cast<PortField>(fi));
    if (cfg_.error_count != before) port_field_bad_[fi] = true;
}

void Parser::mirror_key(const char* key, size_t key_len, Cursor& c) {
    MirrorConfig& m = cfg_.mirrors[mirror_];
    size_t fi = known_key(kMirrorFieldNames, m.field_line, nullptr, key, key_len, c, nullptr);
    if (fi != count_of(kMirrorFieldNames)) apply_mirror(m, static_cast<MirrorField>(fi));
}

void Parser::switch_key(const char* key, size_t key_len, Cursor& c) {
    SwitchConfig& s = cfg_.switch_config;
    size_t fi = known_key(kSwitchFieldNames, s.field_line, nullptr, key, key_len, c, nullptr);
    if (fi != count_of(kSwitchFieldNames)) apply_switch(s, static_cast<SwitchField>(fi));
}

// ---------------------------------------------------------------------------
// Value checks shared by the sections. Each reports against the current line
// and section, and returns false after reporting.

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

// A guest, port or mirror name: 1 to 31 characters of a-z 0-9 _ -.
bool Parser::name_text(const char* field, const char* s, size_t n) {
    if (n == 0) {
        error(scope(), field, "must not be empty");
        return false;
    }
    if (n > kMaxNameLen) {
        error(scope(), field, "is %zu characters long, at most %zu", n, kMaxNameLen);
        return false;
    }
    for (size_t i = 0; i < n; ++i) {
        if (!is_name_char(s[i])) {
            char shown[kSnippetLen + 4];
            snippet(shown, sizeof shown, s, n);
            error(scope(), field, "'%s' has a character outside a-z 0-9 _ -", shown);
            return false;
        }
    }
    return true;
}

bool Parser::name_value(const char* field, char (&out)[kMaxNameLen + 1]) {
    if (value_.kind != Kind::string) {
        error(scope(), field, "must be a string, not %s", kind_name(value_.kind));
        return false;
    }
    if (!name_text(field, value_.str, value_.str_len)) return false;
    copy_text(out, sizeof out, value_.str, value_.str_len);
    return true;
}

// A size in bytes: "64M" (binary K, M, G) or a plain integer.
bool Parser::size_value(const char* field, const char* example, uint64_t& out) {
    const Value& v = value_;
    if (v.kind == Kind::string) {
        char problem[sizeof(Diagnostic::message)];
        if (!parse_scaled(v.str, v.str_len, 1024, "size", example, out, problem, sizeof problem)) {
            error(scope(), field, "%s", problem);
            return false;
        }
        return true;
    }
    if (v.kind == Kind::integer) {
        if (v.negative && v.num != 0) {
            error(scope(), field, "must not be negative");
            return false;
        }
        out = v.num;
        return true;
    }
    error(scope(), field, "must be a size like \"%s\", not %s", example, kind_name(v.kind));
    return false;
}

// Bounds of a size, named in the file's units; min_reason may be "".
bool Parser::size_limits(const char* field, uint64_t bytes, uint64_t min, uint64_t max, uint64_t granule,
                         const char* min_reason) {
    char size[24], limit[24];
    format_size(bytes, size, sizeof size);
    if (bytes < min) {
        format_size(min, limit, sizeof limit);
        error(scope(), field, "%s is less than the %s minimum%s", size, limit, min_reason);
        return false;
    }
    if (bytes > max) {
        format_size(max, limit, sizeof limit);
        error(scope(), field, "%s is more than the %s maximum", size, limit);
        return false;
    }
    if (bytes % granule != 0) {
        format_size(granule, limit, sizeof limit);
        error(scope(), field, "%s is not a multiple of %s", size, limit);
        return false;
    }
    return true;
}

bool Parser::int_value(const char* field, uint64_t lo, uint64_t hi, uint64_t& out) {
    const Value& v = value_;
    if (v.kind != Kind::integer) {
        error(scope(), field, "must be an integer, not %s", kind_name(v.kind));
        return false;
    }
    if ((v.negative && v.num != 0) || v.num < lo || v.num > hi) {
        error(scope(), field, "%s%llu is out of range (%llu to %llu)", v.negative && v.num != 0 ? "-" : "",
              static_cast<unsigned long long>(v.num), static_cast<unsigned long long>(lo),
              static_cast<unsigned long long>(hi));
        return false;
    }
    out = v.num;
    return true;
}

bool Parser::bool_value(const char* field, bool& out) {
    if (value_.kind != Kind::boolean) {
        error(scope(), field, "must be true or false, not %s", kind_name(value_.kind));
        return false;
    }
    out = value_.boolean;
    return true;
}

// One of a few words; `noun` names what it is in the message ("policy").
template <size_t N>
bool Parser::choice_value(const char* field, const char* const (&names)[N], const char* noun, size_t& out) {
    char list[64];
    choice_list(names, list, sizeof list);
    if (value_.kind != Kind::string) {
        error(scope(), field, "must be a string (%s), not %s", list, kind_name(value_.kind));
        return false;
    }
    size_t i = find_name(names, value_.str, value_.str_len);
    if (i == N) {
        char shown[kSnippetLen + 4];
        snippet(shown, sizeof shown, value_.str, value_.str_len);
        error(scope(), field, "unknown %s '%s' (%s)", noun, shown, list);
        return false;
    }
    out = i;
    return true;
}

// ---------------------------------------------------------------------------
// The keys of each section.

void Parser::apply(GuestConfig& g, Field f) {
    const char* name = field_name(f);
    const Value& v = value_;
    switch (f) {
        case Field::name: name_value(name, g.name); return;
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
                const Item& it = v.items[i];
                if (it.kind != Kind::integer) {
                    char shown[kSnippetLen + 4];
                    snippet(shown, sizeof shown, v.str + it.str_off, it.str_len);
                    error(guest_, name, "\"%s\" is a string; CPU indices are integers like [1, 2]", shown);
                    return;
                }
                if (it.negative && it.num != 0) {
                    error(guest_, name, "CPU index -%llu is negative", static_cast<unsigned long long>(it.num));
                    return;
                }
                if (it.num > std::numeric_limits<uint32_t>::max()) {
                    error(guest_, name, "CPU index %llu is too large", static_cast<unsigned long long>(it.num));
                    return;
                }
                for (size_t j = 0; j < i; ++j) {
                    if (v.items[j].num == it.num) {
                        error(guest_, name, "CPU %llu is listed twice", static_cast<unsigned long long>(it.num));
                        return;
                    }
                }
            }
            for (size_t i = 0; i < v.item_count; ++i) g.cpus[i] = static_cast<uint32_t>(v.items[i].num);
            g.cpu_count = v.item_count;
            return;
        }
        case Field::memory: {
            uint64_t bytes = 0;
            if (size_value(name, "64M", bytes) &&
                size_limits(name, bytes, kMemoryGranule, kMaxGuestMemory, kMemoryGranule, ""))
                g.memory_bytes = bytes;
            return;
        }
        case Field::restart: {
            size_t i = 0;
            if (choice_value(name, kPolicyNames, "policy", i)) g.restart = static_cast<RestartPolicy>(i);
            return;
        }
        // The back-off doubles from restart_delay_ms, so 0 would mean a busy loop.
        case Field::restart_delay_ms: apply_u32(f, g.restart_delay_ms, 1); return;
        case Field::restart_delay_max_ms: apply_u32(f, g.restart_delay_max_ms, 1); return;
        case Field::restart_limit: apply_u32(f, g.restart_limit, 0); return;
        case Field::mode: {
            size_t i = 0;
            if (choice_value(name, kModeNames, "mode", i)) g.mode = static_cast<StartMode>(i);
            return;
        }
        case Field::args: {
            // Passed verbatim in BootInfo.args; the guest parses it. Printable
            // ASCII only, so it can be shown on the console as it is.
            if (v.kind != Kind::string) {
                error(guest_, name, "must be a string, not %s", kind_name(v.kind));
                return;
            }
            if (v.str_len > kMaxArgsLen) {
                error(guest_, name, "is %zu characters long, at most %zu", v.str_len, kMaxArgsLen);
                return;
            }
            for (size_t i = 0; i < v.str_len; ++i) {
                if (v.str[i] < 0x20 || v.str[i] > 0x7e) {
                    error(guest_, name, "character %zu is not printable ASCII (no tabs, newlines or other controls)",
                          i + 1);
                    return;
                }
            }
            copy_text(g.args, sizeof g.args, v.str, v.str_len);
            return;
        }
        case Field::count: return;
    }
}

void Parser::apply_port(PortConfig& p, PortField f) {
    const char* name = port_field_name(f);
    const Value& v = value_;
    switch (f) {
        case PortField::name:
            if (!name_value(name, p.name)) p.name[0] = '\0';  // shown as "port #N", not under the default
            return;
        case PortField::mac: apply_port_mac(p, name); return;
        case PortField::vlan_mode: {
            size_t i = 0;
            if (choice_value(name, kVlanModeNames, "VLAN mode", i)) p.vlan_mode = static_cast<VlanMode>(i);
            return;
        }
        case PortField::vlan: {
            uint64_t vid = 0;
            if (int_value(name, kMinVlan, kMaxVlan, vid)) p.vlan = static_cast<uint16_t>(vid);
            return;
        }
        case PortField::allowed_vlans: apply_allowed_vlans(p, name); return;
        case PortField::native_vlan: {
            uint64_t vid = 0;  // 0: untagged frames are not accepted
            if (int_value(name, 0, kMaxVlan, vid)) p.native_vlan = static_cast<uint16_t>(vid);
            return;
        }
        case PortField::is_protected: bool_value(name, p.is_protected); return;
        case PortField::anti_spoof: bool_value(name, p.anti_spoof); return;
        case PortField::rate_limit: {
            uint64_t rate = 0;
            if (v.kind == Kind::string) {
                char problem[sizeof(Diagnostic::message)];
                if (!parse_scaled(v.str, v.str_len, 1000, "rate", "100M", rate, problem, sizeof problem)) {
                    error(guest_, name, "%s", problem);
                    return;
                }
            } else if (v.kind == Kind::integer) {
                if (v.negative && v.num != 0) {
                    error(guest_, name, "must not be negative");
                    return;
                }
                rate = v.num;
            } else {
                error(guest_, name, "must be a rate like \"100M\" (bits per second) or 0, not %s", kind_name(v.kind));
                return;
            }
            char shown[24], limit[24];
            format_rate(rate, shown, sizeof shown);
            if (rate != 0 && rate < kMinRateBitsPerSec) {
                format_rate(kMinRateBitsPerSec, limit, sizeof limit);
                error(guest_, name, "%s is less than the %s minimum (0 means unlimited)", shown, limit);
                return;
            }
            if (rate > kMaxRateBitsPerSec) {
                format_rate(kMaxRateBitsPerSec, limit, sizeof limit);
                error(guest_, name, "%s is more than the %s maximum", shown, limit);
                return;
            }
            p.rate_bits_per_sec = rate;
            return;
        }
        case PortField::burst: {
            uint64_t bytes = 0;
            if (size_value(name, "64K", bytes) &&
                size_limits(name, bytes, kMinBurstBytes, kMaxBurstBytes, 1, " (one full frame)"))
                p.burst_bytes = bytes;
            return;
        }
        case PortField::mirror: apply_port_mirrors(name); return;
        case PortField::mirror_direction: {
            size_t i = 0;
            if (choice_value(name, kDirectionNames, "direction", i))
                p.mirror_direction = static_cast<MirrorDirection>(i);
            return;
        }
        case PortField::max_macs: {
            uint64_t n = 0;
            if (int_value(name, 0, kMaxMaxMacs, n)) p.max_macs = static_cast<uint32_t>(n);
            return;
        }
        case PortField::count: return;
    }
}

void Parser::apply_port_mac(PortConfig& p, const char* name) {
    const Value& v = value_;
    if (v.kind != Kind::string) {
        error(guest_, name, "must be a string like \"02:00:00:00:00:01\", not %s", kind_name(v.kind));
        return;
    }
    uint8_t mac[kMacLen];
    if (!parse_mac(v.str, v.str_len, mac)) {
        char shown[kSnippetLen + 4];
        snippet(shown, sizeof shown, v.str, v.str_len);
        error(guest_, name, "'%s' is not a MAC address like \"02:00:00:00:00:01\" (6 hex pairs and ':')", shown);
        return;
    }
    char text[24];
    format_mac(mac, text, sizeof text);
    bool broadcast = true;
    for (uint8_t b : mac) broadcast &= b == 0xff;
    // IEEE 802 §8.2: bit 0 of the first octet is the individual/group bit.
    if (broadcast) {
        error(guest_, name, "%s is the broadcast address; a port needs a unicast address", text);
        return;
    }
    if ((mac[0] & 1) != 0) {
        error(guest_, name, "%s is a multicast address (bit 0 of the first octet is set); a port needs a unicast one",
              text);
        return;
    }
    if (mac_is_zero(mac)) {
        error(guest_, name, "%s is not a usable address", text);
        return;
    }
    // Unique in the whole file: the switch learns and anti-spoofs by MAC, so two
    // ports with one address would steal each other's frames. Every earlier
    // port is complete, and a port keeps a MAC only once it passed these checks.
    for (size_t gi = 0; gi <= static_cast<size_t>(guest_); ++gi) {
        const GuestConfig& other = cfg_.guests[gi];
        size_t ports = gi == static_cast<size_t>(guest_) ? static_cast<size_t>(port_) : other.port_count;
        for (size_t j = 0; j < ports; ++j) {
            const PortConfig& q = other.ports[j];
            if (mac_is_zero(q.mac) || __builtin_memcmp(q.mac, mac, kMacLen) != 0) continue;
            char who[2 * kMaxNameLen + 32];
            size_t n = 0;
            who[0] = '\0';
            if (other.name[0] != '\0')
                appendf(who, sizeof who, &n, "guest '%s'", other.name);
            else
                appendf(who, sizeof who, &n, "guest #%zu", gi + 1);
            if (q.name[0] != '\0')
                appendf(who, sizeof who, &n, " port '%s'", q.name);
            else
                appendf(who, sizeof who, &n, " port #%zu", j + 1);
            error(guest_, name, "%s is already the address of %s (line %u)", text, who, q.line_of(PortField::mac));
            return;
        }
    }
    __builtin_memcpy(p.mac, mac, kMacLen);
}

// [10, 20, "100-199"]: VLAN IDs and ranges, each VLAN at most once.
void Parser::apply_allowed_vlans(PortConfig& p, const char* name) {
    const Value& v = value_;
    if (v.kind != Kind::array) {
        error(guest_, name, "must be an array of VLANs and ranges like [10, \"100-199\"], not %s", kind_name(v.kind));
        return;
    }
    if (v.item_count == 0) {
        error(guest_, name, "must list at least one VLAN");
        return;
    }
    if (v.item_count > kMaxItems) {
        error(guest_, name, "lists %zu entries, at most %zu (use ranges like \"100-199\")", v.item_count, kMaxItems);
        return;
    }
    uint64_t bits[kVlanWords] = {};
    for (size_t i = 0; i < v.item_count; ++i) {
        const Item& it = v.items[i];
        uint64_t first = 0, last = 0;
        char shown[kSnippetLen + 4];
        if (it.kind == Kind::integer) {
            if ((it.negative && it.num != 0) || it.num < kMinVlan || it.num > kMaxVlan) {
                error(guest_, name, "VLAN %s%llu is out of range (%u to %u)", it.negative && it.num ? "-" : "",
                      static_cast<unsigned long long>(it.num), kMinVlan, kMaxVlan);
                return;
            }
            first = last = it.num;
        } else {
            snippet(shown, sizeof shown, v.str + it.str_off, it.str_len);
            if (!parse_vlan_range(v.str + it.str_off, it.str_len, first, last)) {
                error(guest_, name, "'%s' is not a VLAN range like \"100-199\"", shown);
                return;
            }
            const uint64_t ends[] = {first, last};
            for (uint64_t vid : ends) {
                if (vid < kMinVlan || vid > kMaxVlan) {
                    error(guest_, name, "'%s': VLAN %llu is out of range (%u to %u)", shown,
                          static_cast<unsigned long long>(vid), kMinVlan, kMaxVlan);
                    return;
                }
            }
            if (first > last) {
                error(guest_, name, "'%s' runs backwards (write \"%llu-%llu\")", shown,
                      static_cast<unsigned long long>(last), static_cast<unsigned long long>(first));
                return;
            }
        }
        uint32_t clash = add_vlans(bits, static_cast<uint32_t>(first), static_cast<uint32_t>(last));
        if (clash != 0) {
            error(guest_, name, "VLAN %u is listed twice", clash);
            return;
        }
    }
    __builtin_memcpy(p.allowed_vlans, bits, sizeof bits);
}

// mirror = "cap" or ["cap", "ids"]: checked here, resolved at the end of the file.
void Parser::apply_port_mirrors(const char* name) {
    const Value& v = value_;
    MirrorRefs ref{};
    ref.guest = guest_;
    ref.port = port_;
    auto add = [&](const char* decoded, size_t n, const char* raw) {
        if (!name_text(name, decoded, n)) return false;
        for (uint32_t k = 0; k < ref.count; ++k) {
            if (ref.length[k] == n && __builtin_memcmp(text_ + ref.offset[k], raw, n) == 0) {
                char shown[kSnippetLen + 4];
                snippet(shown, sizeof shown, decoded, n);
                error(guest_, name, "mirror '%s' is listed twice", shown);
                return false;
            }
        }
        ref.offset[ref.count] = static_cast<uint32_t>(raw - text_);
        ref.length[ref.count] = static_cast<uint8_t>(n);
        ++ref.count;
        return true;
    };
    if (v.kind == Kind::string) {
        if (!add(v.str, v.str_len, v.raw)) return;
    } else if (v.kind == Kind::array) {
        if (v.item_count == 0) {
            error(guest_, name, "must name at least one mirror");
            return;
        }
        if (v.item_count > kMaxMirrors) {
            error(guest_, name, "names %zu mirrors, at most %zu", v.item_count, kMaxMirrors);
            return;
        }
        for (size_t i = 0; i < v.item_count; ++i) {
            const Item& it = v.items[i];
            if (it.kind != Kind::string) {
                error(guest_, name, "must hold mirror names (strings), not %s", kind_name(it.kind));
                return;
            }
            if (!add(v.str + it.str_off, it.str_len, it.raw)) return;
        }
    } else {
        error(guest_, name, "must be a mirror name or an array of names, not %s", kind_name(v.kind));
        return;
    }
    // One `mirror` key per port (duplicates are refused before this), so at
    // most one entry per kept port.
    if (ref_count_ < kMaxPorts) refs_[ref_count_++] = ref;
}

void Parser::apply_mirror(MirrorConfig& m, MirrorField f) {
    const char* name = mirror_field_name(f);
    switch (f) {
        case MirrorField::name: {
            if (!name_value(name, m.name)) return;
            for (int32_t j = 0; j < mirror_; ++j) {
                if (cstr_equal(cfg_.mirrors[j].name, m.name)) {
                    error(kNoGuest, name, "'%s' is already the name of the mirror on line %u", m.name,
                          cfg_.mirrors[j].line);
                    return;
                }
            }
            return;
        }
        case MirrorField::snaplen: {
            uint64_t n = 0;
            if (int_value(name, kMinSnaplen, kMaxSnaplen, n)) m.snaplen = static_cast<uint32_t>(n);
            return;
        }
        case MirrorField::buffer: {
            uint64_t bytes = 0;
            if (size_value(name, "256K", bytes) &&
                size_limits(name, bytes, kMinMirrorBuffer, kMaxMirrorBuffer, kMirrorBufferGranule, ""))
                m.buffer_bytes = bytes;
            return;
        }
        case MirrorField::count: return;
    }
}

// A bad value leaves the default in place (the error says so in docs/config.md).
void Parser::apply_switch(SwitchConfig& s, SwitchField f) {
    const char* name = switch_field_name(f);
    uint64_t n = 0;
    switch (f) {
        case SwitchField::mac_ageing_s:
            if (int_value(name, kMinMacAgeingS, kMaxMacAgeingS, n)) s.mac_ageing_s = static_cast<uint32_t>(n);
            return;
        case SwitchField::fdb_size:
            if (!int_value(name, kMinFdbSize, kMaxFdbSize, n)) return;
            // The hash picks a bucket by its top bits: whole powers of two only.
            if ((n & (n - 1)) != 0) {
                error(kNoGuest, name, "%llu is not a power of two (256, 512, ... 65536)",
                      static_cast<unsigned long long>(n));
                return;
            }
            s.fdb_size = static_cast<uint32_t>(n);
            return;
        case SwitchField::count: return;
    }
}

}  // namespace

namespace {

template <size_t N>
const char* name_at(const char* const (&names)[N], size_t i) {
    return i < N ? names[i] : "?";
}

}  // namespace

const char* start_mode_name(StartMode m) {
    auto i = static_cast<size_t>(m);
    return i < sizeof kModeNames / sizeof kModeNames[0] ? kModeNames[i] : "unknown";
}

const char* restart_policy_name(RestartPolicy p) {
    return name_at(kPolicyNames, static_cast<size_t>(p));
}

const char* field_name(Field f) {
    return name_at(kFieldNames, static_cast<size_t>(f));
}

const char* port_field_name(PortField f) {
    return name_at(kPortFieldNames, static_cast<size_t>(f));
}

const char* mirror_field_name(MirrorField f) {
    return name_at(kMirrorFieldNames, static_cast<size_t>(f));
}

const char* switch_field_name(SwitchField f) {
    return name_at(kSwitchFieldNames, static_cast<size_t>(f));
}

const char* vlan_mode_name(VlanMode m) {
    return name_at(kVlanModeNames, static_cast<size_t>(m));
}

const char* mirror_direction_name(MirrorDirection d) {
    return name_at(kDirectionNames, static_cast<size_t>(d));
}

size_t Config::valid_guest_count() const {
    if (fatal) return 0;
    size_t n = 0;
    for (size_t i = 0; i < guest_count && i < kMaxGuests; ++i)
        if (guests[i].valid) ++n;
    return n;
}

void parse(const char* text, size_t len, Config& out) {
    __builtin_memset(&out, 0, sizeof out);  // Config is trivial; no 52 KiB temporary on the stack
    if (text == nullptr) len = 0;
    Parser parser(text, len, out);
    parser.run();
    // fatal means nothing starts, whatever each section looked like.
    if (out.fatal) {
        for (size_t i = 0; i < out.guest_count; ++i) out.guests[i].valid = false;
        for (size_t i = 0; i < out.mirror_count; ++i) out.mirrors[i].valid = false;
    }
}

void validate(Config& cfg, const MachineFacts& facts) {
    if (cfg.fatal) return;
    uint64_t left = facts.free_memory_bytes;
    for (size_t i = 0; i < cfg.guest_count && i < kMaxGuests; ++i) {
        GuestConfig& g = cfg.guests[i];
        if (!g.valid) continue;
        Owner who = guest_owner(static_cast<int32_t>(i));
        auto reject = [&](Field f) { return g.line_of(f) ? g.line_of(f) : g.line; };

        for (size_t j = 0; j < i; ++j) {
            if (cfg.guests[j].name[0] != '\0' && cstr_equal(cfg.guests[j].name, g.name)) {
                report(cfg, Severity::error, reject(Field::name), who, "name",
                       "'%s' is already the name of the guest on line %u", g.name, cfg.guests[j].line);
                break;
            }
        }

        for (size_t k = 0; k < g.cpu_count && k < kMaxGuestCpus; ++k) {
            uint32_t cpu = g.cpus[k];
            if (cpu >= facts.cpu_count) {
                if (facts.cpu_count == 0)
                    report(cfg, Severity::error, reject(Field::cpus), who, "cpus", "CPU %u does not exist", cpu);
                else
                    report(cfg, Severity::error, reject(Field::cpus), who, "cpus",
                           "CPU %u does not exist (this machine has CPUs 0-%u)", cpu, facts.cpu_count - 1);
                continue;
            }
            if (cpu == 0) {
                report(cfg, Severity::error, reject(Field::cpus), who, "cpus", "CPU 0 is reserved for the hypervisor");
                continue;
            }
            if (facts.cpu_online != nullptr && !facts.cpu_online[cpu]) {
                report(cfg, Severity::error, reject(Field::cpus), who, "cpus",
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
                    report(cfg, Severity::error, reject(Field::cpus), who, "cpus",
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
                    report(cfg, Severity::error, reject(Field::image), who, "image",
                           "no boot module named '%s' (no modules were loaded)", g.image);
                else
                    report(cfg, Severity::error, reject(Field::image), who, "image",
                           "no boot module named '%s' (loaded: %s)", g.image, list);
            }
        }

        // A guest's PCI devices (its ports' virtio-pci BARs) live in a fixed
        // guest-physical window that its RAM must not overlap.
        bool window = g.port_count != 0 && g.memory_bytes > kPciWindowStart;
        if (window) {
            char want[24], most[24];
            format_size(g.memory_bytes, want, sizeof want);
            format_size(kPciWindowStart, most, sizeof most);
            report(cfg, Severity::error, reject(Field::memory), who, "memory",
                   "%s is more than %s: a guest with ports keeps 0x%llx-0x%llx free for its PCI devices", want, most,
                   static_cast<unsigned long long>(kPciWindowStart), static_cast<unsigned long long>(kPciWindowEnd));
        }

        if (!window && g.memory_bytes > left) {
            char want[24], have[24], total[24];
            format_size(g.memory_bytes, want, sizeof want);
            format_size(left, have, sizeof have);
            format_size(facts.free_memory_bytes, total, sizeof total);
            report(cfg, Severity::error, reject(Field::memory), who, "memory",
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
        if (d.port >= 0 && static_cast<size_t>(d.port) < g.port_count &&
            static_cast<size_t>(d.port) < kMaxPortsPerGuest) {
            const PortConfig& p = g.ports[d.port];
            if (p.name[0] != '\0')
                appendf(out, cap, &n, "port '%s': ", p.name);
            else
                appendf(out, cap, &n, "port #%d: ", static_cast<int>(d.port) + 1);
        }
    }
    if (d.mirror >= 0 && static_cast<size_t>(d.mirror) < cfg.mirror_count &&
        static_cast<size_t>(d.mirror) < kMaxMirrors) {
        const MirrorConfig& m = cfg.mirrors[d.mirror];
        if (m.name[0] != '\0')
            appendf(out, cap, &n, "mirror '%s': ", m.name);
        else
            appendf(out, cap, &n, "mirror #%d: ", static_cast<int>(d.mirror) + 1);
    }
    if (d.field[0] != '\0') appendf(out, cap, &n, "field '%s': ", d.field);
    appendf(out, cap, &n, "%s", d.message);
    return n;
}

namespace {

// "N" followed by the largest suffix that divides v exactly: sizes and rates in
// messages read like the file.
size_t format_scaled(uint64_t v, uint64_t unit, char* out, size_t cap) {
    if (out == nullptr || cap == 0) return 0;
    const char suffixes[] = {'G', 'M', 'K'};
    uint64_t factor = unit * unit * unit;
    for (char suffix : suffixes) {
        if (v != 0 && v % factor == 0)
            return format(out, cap, "%llu%c", static_cast<unsigned long long>(v / factor), suffix);
        factor /= unit;
    }
    return format(out, cap, "%llu", static_cast<unsigned long long>(v));
}

}  // namespace

size_t format_size(uint64_t bytes, char* out, size_t cap) {
    return format_scaled(bytes, 1024, out, cap);
}

size_t format_rate(uint64_t bits_per_sec, char* out, size_t cap) {
    return format_scaled(bits_per_sec, 1000, out, cap);
}

size_t format_mac(const uint8_t (&mac)[kMacLen], char* out, size_t cap) {
    if (out == nullptr || cap == 0) return 0;
    return format(out, cap, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

size_t format_vlans(const PortConfig& p, char* out, size_t cap) {
    if (out == nullptr || cap == 0) return 0;
    size_t n = 0;
    out[0] = '\0';
    uint32_t vid = kMinVlan;
    auto next_from = [&](uint32_t v) {
        while (v <= kMaxVlan && !p.carries(v)) ++v;
        return v;
    };
    vid = next_from(vid);
    if (vid > kMaxVlan) return format(out, cap, "none");
    while (vid <= kMaxVlan) {
        uint32_t last = vid;
        while (last < kMaxVlan && p.carries(last + 1)) ++last;
        char piece[16];
        size_t len = last == vid ? format(piece, sizeof piece, "%s%u", n ? "," : "", vid)
                                 : format(piece, sizeof piece, "%s%u-%u", n ? "," : "", vid, last);
        uint32_t after = next_from(last + 1);
        // The piece must fit, and if more follows, so must a closing "...".
        bool fits = after > kMaxVlan ? n + len < cap : n + len + 3 < cap;
        if (!fits) {
            appendf(out, cap, &n, "...");
            return n;
        }
        appendf(out, cap, &n, "%s", piece);
        vid = after;
    }
    return n;
}

}  // namespace hv::config
