// Unit tests for the appliance configuration (kernel/config): the TOML subset,
// every per-field check, the containment rule (a bad guest never takes the others
// down), the fatal cases, the machine checks of validate() and the exact text of
// diagnostics. Every expected diagnostic is matched on line, guest and field.

#include "kernel/config/config.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using hv::config::Config;
using hv::config::Diagnostic;
using hv::config::Field;
using hv::config::GuestConfig;
using hv::config::kMaxDiagnostics;
using hv::config::kMaxGuests;
using hv::config::MachineFacts;
using hv::config::RestartPolicy;
using hv::config::Severity;

// Config is ~9 KiB; keep it off the test's stack.
std::unique_ptr<Config> parse_text(const std::string& text) {
    auto cfg = std::make_unique<Config>();
    hv::config::parse(text.data(), text.size(), *cfg);
    return cfg;
}

std::string fmt_diag(const Config& cfg, size_t i, const char* file = "hv.toml") {
    char buf[256];
    hv::config::format_diagnostic(cfg.diags[i], cfg, file, buf, sizeof buf);
    return buf;
}

std::string dump(const Config& cfg) {
    std::string s;
    for (size_t i = 0; i < cfg.diag_count; ++i) s += "  " + fmt_diag(cfg, i) + "\n";
    return s.empty() ? "  (no diagnostics)\n" : s;
}

// One diagnostic with exactly this severity, line, guest and field whose message
// contains `text`.
::testing::AssertionResult has_diag(const Config& cfg, Severity sev, uint32_t line, int32_t guest, const char* field,
                                    const char* text) {
    for (size_t i = 0; i < cfg.diag_count; ++i) {
        const Diagnostic& d = cfg.diags[i];
        if (d.severity == sev && d.line == line && d.guest == guest && std::strcmp(d.field, field) == 0 &&
            std::strstr(d.message, text) != nullptr)
            return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "no " << (sev == Severity::error ? "error" : "warning") << " at line "
                                         << line << " guest " << guest << " field '" << field << "' containing '"
                                         << text << "'; got:\n"
                                         << dump(cfg);
}

::testing::AssertionResult has_error(const Config& cfg, uint32_t line, int32_t guest, const char* field,
                                     const char* text) {
    return has_diag(cfg, Severity::error, line, guest, field, text);
}

// The only error in the file is this one.
::testing::AssertionResult only_error(const Config& cfg, uint32_t line, int32_t guest, const char* field,
                                      const char* text) {
    if (cfg.error_count != 1)
        return ::testing::AssertionFailure() << cfg.error_count << " errors, expected 1:\n" << dump(cfg);
    return has_error(cfg, line, guest, field, text);
}

// A file with one guest. Lines: 1 version, 2 blank, 3 [[guest]], 4 name, 5 image,
// 6 cpus, 7 memory, then the added keys from line 8. An override replaces the
// value of a base key in place; "" removes it but keeps a comment line there, so
// line numbers never move.
std::string one_guest(const std::vector<std::pair<std::string, std::string>>& overrides = {}) {
    std::vector<std::pair<std::string, std::string>> keys = {
        {"name", "\"web\""}, {"image", "\"hello\""}, {"cpus", "[1, 2]"}, {"memory", "\"64M\""}};
    std::vector<std::pair<std::string, std::string>> extra;
    for (const auto& [k, v] : overrides) {
        bool replaced = false;
        for (auto& base : keys) {
            if (base.first == k) {
                base.second = v;
                replaced = true;
            }
        }
        if (!replaced) extra.emplace_back(k, v);
    }
    std::string s = "version = 1\n\n[[guest]]\n";
    for (const auto& [k, v] : keys) s += v.empty() ? "# (" + k + " removed)\n" : k + " = " + v + "\n";
    for (const auto& [k, v] : extra) s += k + " = " + v + "\n";
    return s;
}

// One guest whose single key `key = value` sits on line 8.
std::unique_ptr<Config> with_key(const std::string& key, const std::string& value) {
    return parse_text(one_guest({{key, value}}));
}

const char* const kModules[] = {"hello", "db", "web"};

MachineFacts facts(uint32_t cpus = 4, uint64_t memory = 1ull << 30) {
    MachineFacts f{cpus, memory, kModules, 3};
    return f;
}

const char kFullExample[] = R"(# hv appliance configuration
version = 1                      # required, must be 1

[[guest]]
name = "web"                     # required
image = "hello"                  # required
cpus = [1, 2]                    # required
memory = "64M"                   # required
restart = "on-failure"           # optional, default "never"
restart_delay_ms = 250           # optional, default 100
restart_delay_max_ms = 20000     # optional, default 10000
restart_limit = 7                # optional, default 5

[[guest]]
name = "db"
image = "db"
cpus = [3]
memory = "1G"
)";

// ------------------------------------------------------------------ good input

TEST(ConfigParse, FullExample) {
    auto cfg = parse_text(kFullExample);
    ASSERT_EQ(cfg->diag_count, 0u) << dump(*cfg);
    EXPECT_FALSE(cfg->fatal);
    EXPECT_EQ(cfg->version, 1u);
    ASSERT_EQ(cfg->guest_count, 2u);
    EXPECT_EQ(cfg->valid_guest_count(), 2u);

    const GuestConfig& web = cfg->guests[0];
    EXPECT_STREQ(web.name, "web");
    EXPECT_STREQ(web.image, "hello");
    ASSERT_EQ(web.cpu_count, 2u);
    EXPECT_EQ(web.cpus[0], 1u);
    EXPECT_EQ(web.cpus[1], 2u);
    EXPECT_EQ(web.memory_bytes, 64ull << 20);
    EXPECT_EQ(web.restart, RestartPolicy::on_failure);
    EXPECT_EQ(web.restart_delay_ms, 250u);
    EXPECT_EQ(web.restart_delay_max_ms, 20000u);
    EXPECT_EQ(web.restart_limit, 7u);
    EXPECT_EQ(web.line, 4u);
    EXPECT_EQ(web.line_of(Field::memory), 8u);
    EXPECT_EQ(web.line_of(Field::restart_limit), 12u);
    EXPECT_TRUE(web.valid);

    const GuestConfig& db = cfg->guests[1];
    EXPECT_STREQ(db.name, "db");
    EXPECT_EQ(db.memory_bytes, 1ull << 30);
    EXPECT_EQ(db.line, 14u);
    // Defaults.
    EXPECT_EQ(db.restart, RestartPolicy::never);
    EXPECT_EQ(db.restart_delay_ms, 100u);
    EXPECT_EQ(db.restart_delay_max_ms, 10000u);
    EXPECT_EQ(db.restart_limit, 5u);
    EXPECT_EQ(db.line_of(Field::restart), 0u);

    hv::config::validate(*cfg, facts(4, 2ull << 30));
    EXPECT_EQ(cfg->diag_count, 0u) << dump(*cfg);
    EXPECT_EQ(cfg->valid_guest_count(), 2u);
}

TEST(ConfigParse, PolicyNames) {
    EXPECT_STREQ(hv::config::restart_policy_name(RestartPolicy::never), "never");
    EXPECT_STREQ(hv::config::restart_policy_name(RestartPolicy::on_failure), "on-failure");
    EXPECT_STREQ(hv::config::restart_policy_name(RestartPolicy::always), "always");
    EXPECT_STREQ(hv::config::field_name(Field::restart_delay_max_ms), "restart_delay_max_ms");
}

TEST(ConfigParse, CommentsWhitespaceCrlfAndBom) {
    auto cfg = parse_text(
        "\xef\xbb\xbf# comment\r\n"
        "\t version\t=\t1 # trailing comment\r\n"
        "\r\n"
        "  [[ guest ]]   # header comment\r\n"
        "name=\"a-b_9\"\r\n"
        "image = \"x\\\\y\\\"z\"\r\n"
        "cpus = [ 1 ,2, ]\r\n"
        "memory = 4_194_304\r\n"
        "restart = \"always\"\r\n"
        "restart_limit = 0");  // no final newline
    ASSERT_EQ(cfg->diag_count, 0u) << dump(*cfg);
    ASSERT_EQ(cfg->guest_count, 1u);
    const GuestConfig& g = cfg->guests[0];
    EXPECT_EQ(g.line, 4u);
    EXPECT_STREQ(g.name, "a-b_9");
    EXPECT_STREQ(g.image, "x\\y\"z");
    EXPECT_EQ(g.cpu_count, 2u);
    EXPECT_EQ(g.memory_bytes, 4ull << 20);
    EXPECT_EQ(g.restart, RestartPolicy::always);
    EXPECT_EQ(g.restart_limit, 0u);
    EXPECT_EQ(g.line_of(Field::restart_limit), 10u);
    EXPECT_TRUE(g.valid);
}

TEST(ConfigParse, MemoryForms) {
    const std::pair<const char*, uint64_t> cases[] = {
        {"\"2M\"", 2ull << 20},      {"\"2048K\"", 2ull << 20}, {"\"4G\"", 4ull << 30},     {"\"4096M\"", 4ull << 30},
        {"\"6291456\"", 6ull << 20}, {"2097152", 2ull << 20},   {"+8_388_608", 8ull << 20},
    };
    for (const auto& [text, bytes] : cases) {
        auto cfg = with_key("memory", text);
        EXPECT_EQ(cfg->error_count, 0u) << text << "\n" << dump(*cfg);
        EXPECT_EQ(cfg->guests[0].memory_bytes, bytes) << text;
    }
}

TEST(ConfigParse, NoGuestsIsAWarningNotAnError) {
    auto cfg = parse_text("version = 1\n");
    EXPECT_FALSE(cfg->fatal);
    EXPECT_EQ(cfg->error_count, 0u);
    EXPECT_EQ(cfg->warning_count, 1u);
    EXPECT_TRUE(has_diag(*cfg, Severity::warning, 0, -1, "", "nothing to start"));
}

TEST(ConfigParse, RestartTuningWithNeverIsAWarning) {
    auto cfg = with_key("restart_delay_ms", "200");
    EXPECT_EQ(cfg->error_count, 0u) << dump(*cfg);
    EXPECT_TRUE(has_diag(*cfg, Severity::warning, 8, 0, "restart_delay_ms", "has no effect"));
    EXPECT_TRUE(cfg->guests[0].valid);
}

// ------------------------------------------------------------------ per-field errors

TEST(ConfigField, MissingRequiredKeys) {
    for (const char* key : {"name", "image", "cpus", "memory"}) {
        auto cfg = parse_text(one_guest({{key, ""}}));
        EXPECT_TRUE(only_error(*cfg, 3, 0, key, "required key is missing")) << key;
        EXPECT_FALSE(cfg->guests[0].valid) << key;
        EXPECT_FALSE(cfg->fatal);
    }
    // All four at once, each named.
    auto cfg = parse_text("version = 1\n[[guest]]\n");
    EXPECT_EQ(cfg->error_count, 4u) << dump(*cfg);
    for (const char* key : {"name", "image", "cpus", "memory"}) EXPECT_TRUE(has_error(*cfg, 2, 0, key, "missing"));
}

TEST(ConfigField, WrongTypes) {
    struct Case {
        const char* key;
        const char* value;
        const char* text;
    } cases[] = {
        {"name", "1", "must be a string, not an integer"},
        {"image", "[1]", "must be a string (a boot module name), not an array"},
        {"cpus", "\"1\"", "must be an array of CPU indices like [1, 2], not a string"},
        {"cpus", "1", "not an integer"},
        {"memory", "true", "must be a size like \"64M\", not a boolean"},
        {"restart", "1", "must be a string (never, on-failure or always), not an integer"},
        {"restart_limit", "\"5\"", "must be an integer, not a string"},
        {"restart_delay_ms", "false", "must be an integer, not a boolean"},
        {"restart_delay_max_ms", "[1]", "must be an integer, not an array"},
    };
    for (const auto& c : cases) {
        auto cfg = parse_text(one_guest({{c.key, c.value}}));
        // Base keys stay on their line (4..7); others are added on line 8.
        uint32_t expect_line = std::strcmp(c.key, "name") == 0     ? 4
                               : std::strcmp(c.key, "image") == 0  ? 5
                               : std::strcmp(c.key, "cpus") == 0   ? 6
                               : std::strcmp(c.key, "memory") == 0 ? 7
                                                                   : 8;
        EXPECT_TRUE(has_error(*cfg, expect_line, 0, c.key, c.text)) << c.key << " = " << c.value;
        EXPECT_FALSE(cfg->guests[0].valid);
    }
}

TEST(ConfigField, NameCharactersAndLength) {
    auto upper = with_key("name", "\"Web\"");
    EXPECT_TRUE(only_error(*upper, 4, 0, "name", "'Web' has a character outside a-z 0-9 _ -"));
    EXPECT_STREQ(upper->guests[0].name, "");

    auto space = with_key("name", "\"my web\"");
    EXPECT_TRUE(only_error(*space, 4, 0, "name", "'my web' has a character outside"));

    auto newline = with_key("name", "\"a\\nb\"");
    EXPECT_TRUE(only_error(*newline, 4, 0, "name", "'a?b' has a character outside"));

    auto empty = with_key("name", "\"\"");
    EXPECT_TRUE(only_error(*empty, 4, 0, "name", "must not be empty"));

    auto at_limit = with_key("name", "\"" + std::string(31, 'a') + "\"");
    EXPECT_EQ(at_limit->error_count, 0u) << dump(*at_limit);
    EXPECT_EQ(std::strlen(at_limit->guests[0].name), 31u);

    auto too_long = with_key("name", "\"" + std::string(32, 'a') + "\"");
    EXPECT_TRUE(only_error(*too_long, 4, 0, "name", "is 32 characters long, at most 31"));
}

TEST(ConfigField, ImageLengthAndCharacters) {
    auto too_long = with_key("image", "\"" + std::string(64, 'm') + "\"");
    EXPECT_TRUE(only_error(*too_long, 5, 0, "image", "is 64 characters long, at most 63"));
    auto spaced = with_key("image", "\"hello world\"");
    EXPECT_TRUE(only_error(*spaced, 5, 0, "image", "no spaces"));
    auto empty = with_key("image", "\"\"");
    EXPECT_TRUE(only_error(*empty, 5, 0, "image", "must not be empty"));
}

TEST(ConfigField, BadSizeSuffix) {
    const std::pair<const char*, const char*> cases[] = {
        {"\"64MB\"", "'64MB' has an unknown size suffix (use K, M or G)"},
        {"\"64m\"", "'64m' has an unknown size suffix"},
        {"\"64 M\"", "'64 M' has an unknown size suffix"},
        {"\"64T\"", "'64T' has an unknown size suffix"},
        {"\"M\"", "'M' is not a size"},
        {"\"-2M\"", "'-2M' is not a size"},
        {"\"\"", "must not be empty"},
    };
    for (const auto& [value, text] : cases) {
        auto cfg = with_key("memory", value);
        EXPECT_TRUE(only_error(*cfg, 7, 0, "memory", text)) << value;
    }
}

TEST(ConfigField, MemoryGranularityAndLimits) {
    const std::pair<const char*, const char*> cases[] = {
        {"\"3M\"", "3M is not a multiple of 2M"},       {"\"2049K\"", "2049K is not a multiple of 2M"},
        {"2097153", "2097153 is not a multiple of 2M"}, {"\"1M\"", "1M is less than the 2M minimum"},
        {"0", "0 is less than the 2M minimum"},         {"\"4098M\"", "4098M is more than the 4G maximum"},
        {"\"8G\"", "8G is more than the 4G maximum"},   {"\"99999999999G\"", "'99999999999G' is too large"},
        {"\"99999999999999999999\"", "is too large"},   {"-2097152", "must not be negative"},
    };
    for (const auto& [value, text] : cases) {
        auto cfg = with_key("memory", value);
        EXPECT_TRUE(only_error(*cfg, 7, 0, "memory", text)) << value;
        EXPECT_FALSE(cfg->guests[0].valid);
    }
}

TEST(ConfigField, RestartPolicyUnknown) {
    auto cfg = with_key("restart", "\"sometimes\"");
    EXPECT_TRUE(only_error(*cfg, 8, 0, "restart", "unknown policy 'sometimes' (never, on-failure or always)"));
    auto bare = with_key("restart", "always");
    EXPECT_TRUE(only_error(*bare, 8, 0, "restart", "unquoted text 'always' (strings need double quotes)"));
}

TEST(ConfigField, DelayMaxBelowDelay) {
    auto cfg = parse_text(
        one_guest({{"restart", "\"always\""}, {"restart_delay_ms", "500"}, {"restart_delay_max_ms", "100"}}));
    EXPECT_TRUE(only_error(*cfg, 10, 0, "restart_delay_max_ms", "100 is less than restart_delay_ms (500)"));
    EXPECT_FALSE(cfg->guests[0].valid);

    // Without an explicit maximum the delay itself is blamed, against the default.
    auto dflt = parse_text(one_guest({{"restart", "\"always\""}, {"restart_delay_ms", "20000"}}));
    EXPECT_TRUE(only_error(*dflt, 9, 0, "restart_delay_ms", "20000 is more than restart_delay_max_ms (default 10000)"));

    // Equal is fine.
    auto equal = parse_text(
        one_guest({{"restart", "\"always\""}, {"restart_delay_ms", "100"}, {"restart_delay_max_ms", "100"}}));
    EXPECT_EQ(equal->error_count, 0u) << dump(*equal);
}

TEST(ConfigField, DelayZeroRejected) {
    auto cfg = parse_text(one_guest({{"restart", "\"always\""}, {"restart_delay_ms", "0"}}));
    EXPECT_TRUE(only_error(*cfg, 9, 0, "restart_delay_ms", "must be at least 1"));
}

TEST(ConfigField, LimitZeroOnlyWithAlways) {
    for (const char* policy : {"\"on-failure\"", "\"never\""}) {
        auto cfg = parse_text(one_guest({{"restart", policy}, {"restart_limit", "0"}}));
        EXPECT_TRUE(only_error(*cfg, 9, 0, "restart_limit", "0 (no limit) is only allowed with restart = \"always\""))
            << policy;
    }
    // restart omitted means "never".
    auto dflt = with_key("restart_limit", "0");
    EXPECT_TRUE(only_error(*dflt, 8, 0, "restart_limit", "only allowed with restart = \"always\""));

    auto ok = parse_text(one_guest({{"restart", "\"always\""}, {"restart_limit", "0"}}));
    EXPECT_EQ(ok->error_count, 0u) << dump(*ok);
    EXPECT_TRUE(ok->guests[0].valid);
}

TEST(ConfigField, OverflowingIntegers) {
    auto u32 = with_key("restart_limit", "4294967296");
    EXPECT_TRUE(only_error(*u32, 8, 0, "restart_limit", "4294967296 is too large (at most 4294967295)"));
    auto u32_max = parse_text(one_guest({{"restart", "\"always\""}, {"restart_limit", "4294967295"}}));
    EXPECT_EQ(u32_max->error_count, 0u) << dump(*u32_max);
    EXPECT_EQ(u32_max->guests[0].restart_limit, 4294967295u);

    auto u64 = with_key("restart_delay_ms", "18446744073709551616");
    EXPECT_TRUE(only_error(*u64, 8, 0, "restart_delay_ms", "integer is too large (more than 64 bits)"));
    auto huge = with_key("restart_delay_max_ms", "99999999999999999999999999999999999999999");
    EXPECT_TRUE(only_error(*huge, 8, 0, "restart_delay_max_ms", "integer is too large"));

    auto cpu_u64 = with_key("cpus", "[1, 18446744073709551616]");
    EXPECT_TRUE(only_error(*cpu_u64, 6, 0, "cpus", "integer is too large"));
    auto cpu_u32 = with_key("cpus", "[4294967296]");
    EXPECT_TRUE(only_error(*cpu_u32, 6, 0, "cpus", "CPU index 4294967296 is too large"));
    auto memory = with_key("memory", "18446744073709551615");
    EXPECT_TRUE(only_error(*memory, 7, 0, "memory", "is more than the 4G maximum"));
}

TEST(ConfigField, NegativeIntegers) {
    auto limit = with_key("restart_limit", "-1");
    EXPECT_TRUE(only_error(*limit, 8, 0, "restart_limit", "must not be negative"));
    auto cpu = with_key("cpus", "[1, -2]");
    EXPECT_TRUE(only_error(*cpu, 6, 0, "cpus", "CPU index -2 is negative"));
}

TEST(ConfigField, CpuLists) {
    auto empty = with_key("cpus", "[]");
    EXPECT_TRUE(only_error(*empty, 6, 0, "cpus", "must list at least one CPU"));
    auto twice = with_key("cpus", "[1, 2, 1]");
    EXPECT_TRUE(only_error(*twice, 6, 0, "cpus", "CPU 1 is listed twice"));
    std::string many = "[";
    for (int i = 1; i <= 17; ++i) many += std::to_string(i) + ", ";
    many += "]";
    auto too_many = with_key("cpus", many);
    EXPECT_TRUE(only_error(*too_many, 6, 0, "cpus", "lists 17 CPUs, at most 16"));
    std::string sixteen = "[";
    for (int i = 1; i <= 16; ++i) sixteen += std::to_string(i) + (i < 16 ? ", " : "");
    sixteen += "]";
    auto full = with_key("cpus", sixteen);
    EXPECT_EQ(full->error_count, 0u) << dump(*full);
    EXPECT_EQ(full->guests[0].cpu_count, 16u);
    EXPECT_EQ(full->guests[0].cpus[15], 16u);
}

TEST(ConfigField, DuplicateKeys) {
    std::string text = one_guest() + "memory = \"128M\"\n";
    auto dup = parse_text(text);
    EXPECT_TRUE(only_error(*dup, 8, 0, "memory", "duplicate key (first set on line 7)"));
    EXPECT_EQ(dup->guests[0].memory_bytes, 64ull << 20);  // the first value is kept

    auto version =
        parse_text("version = 1\nversion = 1\n[[guest]]\nname=\"a\"\nimage=\"a\"\ncpus=[1]\nmemory=\"2M\"\n");
    EXPECT_TRUE(only_error(*version, 2, -1, "version", "duplicate key (first set on line 1)"));
    EXPECT_TRUE(version->guests[0].valid);
}

TEST(ConfigField, UnknownKeys) {
    auto cfg = with_key("colour", "\"blue\"");
    EXPECT_TRUE(only_error(*cfg, 8, 0, "colour",
                           "unknown key (known: name,image,cpus,memory,mode,restart,restart_delay_ms,restart_delay_max_ms,restart_limit)"));
    EXPECT_FALSE(cfg->guests[0].valid);

    auto version_in_guest = with_key("version", "1");
    EXPECT_TRUE(only_error(*version_in_guest, 8, 0, "version", "version goes before the first [[guest]]"));

    auto top = parse_text("version = 1\ncolour = 1\nname = \"x\"\n");
    EXPECT_EQ(top->error_count, 2u) << dump(*top);
    EXPECT_TRUE(has_error(*top, 2, -1, "colour", "unknown key"));
    EXPECT_TRUE(has_error(*top, 3, -1, "name", "guest keys go after a [[guest]] header"));
    EXPECT_FALSE(top->fatal);

    // A very long unknown key is cut in the field, never overflowing it.
    auto long_key = with_key(std::string(200, 'k'), "1");
    ASSERT_EQ(long_key->diag_count, 1u);
    EXPECT_EQ(std::strlen(long_key->diags[0].field), 31u);
    EXPECT_STREQ(long_key->diags[0].field + 28, "...");
}

TEST(ConfigTable, UnknownTables) {
    auto table = parse_text(one_guest() + "[server]\nport = 80\n");
    EXPECT_TRUE(only_error(*table, 8, -1, "", "unknown table [server] (only [[guest]] and [[guest.port]])"));
    EXPECT_TRUE(table->guests[0].valid);  // the keys under [server] are not the guest's

    auto array = parse_text(one_guest() + "[[server]]\n");
    EXPECT_TRUE(only_error(*array, 8, -1, "", "unknown table [[server]]"));

    auto single = parse_text("version = 1\n[guest]\nname = \"web\"\n");
    EXPECT_TRUE(only_error(*single, 2, -1, "", "[guest] is a single table; declare each guest with [[guest]]"));
    EXPECT_EQ(single->guest_count, 0u);

    auto sub = parse_text(one_guest() + "[guest.disk]\nsize = 1\n");
    EXPECT_TRUE(only_error(*sub, 8, 0, "", "unknown table [guest.disk]"));
    EXPECT_FALSE(sub->guests[0].valid);

    auto malformed = parse_text(one_guest() + "[[guest]\nname = \"x\"\n");
    EXPECT_TRUE(only_error(*malformed, 8, -1, "", "expected ']]' to close the header"));
    EXPECT_EQ(malformed->guest_count, 1u);
    EXPECT_TRUE(malformed->guests[0].valid);

    auto quoted = parse_text("version = 1\n[[\"guest\"]]\n");
    EXPECT_TRUE(only_error(*quoted, 2, -1, "", "quoted table names are not supported"));
    auto empty = parse_text("version = 1\n[]\n");
    EXPECT_TRUE(only_error(*empty, 2, -1, "", "expected a table name"));
    auto trailing = parse_text("version = 1\n[[guest]] x\n");
    EXPECT_TRUE(only_error(*trailing, 2, -1, "", "unexpected text after the header"));
}

TEST(ConfigTable, GuestPortIsReserved) {
    auto cfg = parse_text(one_guest() + "\n[[guest.port]]\nswitch = \"lan\"\nmac = \"02:00:00:00:00:01\"\n");
    EXPECT_TRUE(only_error(*cfg, 9, 0, "port", "network ports are not supported yet"));
    EXPECT_FALSE(cfg->guests[0].valid);
    EXPECT_EQ(cfg->guest_count, 1u);

    // Lines inside it are still checked for syntax, against the guest.
    auto syntax = parse_text(one_guest() + "[[guest.port]]\nswitch = \"lan\n");
    EXPECT_TRUE(has_error(*syntax, 9, 0, "switch", "unterminated string"));

    auto orphan = parse_text("version = 1\n[[guest.port]]\n");
    EXPECT_TRUE(only_error(*orphan, 2, -1, "", "[[guest.port]] must follow a [[guest]] header"));

    // A port of the first guest does not affect the second.
    auto two = parse_text(one_guest() +
                          "[[guest.port]]\n[[guest]]\nname = \"b\"\nimage = \"b\"\ncpus = [3]\nmemory = \"2M\"\n");
    EXPECT_FALSE(two->guests[0].valid);
    EXPECT_TRUE(two->guests[1].valid);
}

// ------------------------------------------------------------------ syntax errors

TEST(ConfigSyntax, Strings) {
    auto unterminated = with_key("name", "\"web");
    EXPECT_TRUE(only_error(*unterminated, 4, 0, "name", "unterminated string (strings end on the same line)"));
    auto escape = with_key("name", "\"w\\eb\"");
    EXPECT_TRUE(only_error(*escape, 4, 0, "name", "unsupported escape '\\e' (only \\\" \\\\ \\n \\t)"));
    auto unicode = with_key("image", "\"\\u0041\"");
    EXPECT_TRUE(only_error(*unicode, 5, 0, "image", "unsupported escape '\\u'"));
    auto dangling = with_key("image", "\"abc\\");
    EXPECT_TRUE(only_error(*dangling, 5, 0, "image", "unterminated string"));
    auto literal = with_key("image", "'hello'");
    EXPECT_TRUE(only_error(*literal, 5, 0, "image", "literal strings ('...') are not supported"));
    auto multi = with_key("image", "\"\"\"hello\"\"\"");
    EXPECT_TRUE(only_error(*multi, 5, 0, "image", "multi-line strings are not supported"));
}

TEST(ConfigSyntax, LineShapes) {
    auto garbage = parse_text(one_guest() + "%%% garbage\n");
    EXPECT_TRUE(
        only_error(*garbage, 8, 0, "", "unexpected '%': expected 'key = value', a [[guest]] header or a comment"));
    auto high = parse_text(one_guest() + "\xc3\xa9t\xc3\xa9 = 1\n");
    EXPECT_TRUE(only_error(*high, 8, 0, "", "unexpected 0xc3"));
    auto no_equals = parse_text(one_guest() + "restart \"always\"\n");
    EXPECT_TRUE(only_error(*no_equals, 8, 0, "restart", "expected '=' after the key"));
    auto no_value = parse_text(one_guest() + "restart =   # nothing\n");
    EXPECT_TRUE(only_error(*no_value, 8, 0, "restart", "missing value after '='"));
    auto trailing = parse_text(one_guest() + "restart = \"always\" \"never\"\n");
    EXPECT_TRUE(only_error(*trailing, 8, 0, "restart", "unexpected '\"' after the value"));
    auto dotted = parse_text(one_guest() + "restart.policy = 1\n");
    EXPECT_TRUE(only_error(*dotted, 8, 0, "restart", "dotted keys are not supported"));
    auto quoted = parse_text(one_guest() + "\"restart\" = 1\n");
    EXPECT_TRUE(only_error(*quoted, 8, 0, "", "quoted keys are not supported"));
    auto bare_word = parse_text(one_guest() + "restart = on-failure\n");
    EXPECT_TRUE(only_error(*bare_word, 8, 0, "restart", "unquoted text 'on-failure'"));
}

TEST(ConfigSyntax, UnsupportedValues) {
    struct Case {
        const char* value;
        const char* text;
    } cases[] = {
        {"1.5", "floating-point values are not supported"},
        {"1e3", "floating-point values are not supported"},
        {"inf", "floating-point values are not supported"},
        {"-nan", "floating-point values are not supported"},
        {"1979-05-27", "dates and times are not supported"},
        {"07:32:00", "leading zeros are not allowed"},
        {"12:30:00", "dates and times are not supported"},
        {"0x10", "only decimal integers are supported"},
        {"0b1", "only decimal integers are supported"},
        {"010", "leading zeros are not allowed"},
        {"1__0", "'_' in a number must sit between two digits"},
        {"10_", "'_' in a number must sit between two digits"},
        {"10abc", "unexpected 'a' after a number"},
        {"{ a = 1 }", "inline tables are not supported"},
        {"[1,", "arrays must end on the same line"},
        {"[1, 2 # comment", "arrays must end on the same line"},
        {"[\"a\"]", "arrays may only hold integers"},
        {"[[1]]", "arrays may only hold integers"},
        {"[true]", "arrays may only hold integers"},
        {"[1 2]", "unexpected '2' in an array (expected ',' or ']')"},
        {"[,]", "expected a number"},
        {"truex", "unquoted text 'truex'"},
        {"@", "unexpected '@' where a value should start"},
    };
    for (const auto& c : cases) {
        auto cfg = with_key("restart_limit", c.value);
        EXPECT_TRUE(only_error(*cfg, 8, 0, "restart_limit", c.text)) << c.value;
        EXPECT_FALSE(cfg->guests[0].valid) << c.value;
    }
    // Booleans parse (no key takes one yet, so they are a type error).
    auto boolean = with_key("restart_limit", "true");
    EXPECT_TRUE(only_error(*boolean, 8, 0, "restart_limit", "must be an integer, not a boolean"));
}

TEST(ConfigSyntax, LineLengthLimit) {
    std::string comment_1024 = "#" + std::string(1023, 'x') + "\n";
    auto ok = parse_text(comment_1024 + one_guest());
    EXPECT_EQ(ok->error_count, 0u) << dump(*ok);

    // An over-long line in a guest rejects that guest (its content is unknown).
    auto long_value = parse_text(one_guest() + "restart = \"" + std::string(1020, 'a') + "\"\n");
    EXPECT_TRUE(only_error(*long_value, 8, 0, "", "line is 1032 characters long, more than 1024"));
    EXPECT_FALSE(long_value->guests[0].valid);

    auto top = parse_text("version = 1\n#" + std::string(5000, 'x') + "\n");
    EXPECT_TRUE(only_error(*top, 2, -1, "", "line is 5001 characters long"));
    EXPECT_FALSE(top->fatal);
}

TEST(ConfigSyntax, OneDiagnosticPerLine) {
    auto cfg = with_key("restart_limit", "\"unterminated \\q");
    EXPECT_EQ(cfg->diag_count, 1u) << dump(*cfg);
}

// ------------------------------------------------------------------ containment

TEST(ConfigGuests, OneBadGuestAmongThree) {
    const char* text = R"(version = 1
[[guest]]
name = "a"
image = "hello"
cpus = [1]
memory = "64M"
[[guest]]
name = "b"
image = "hello"
cpus = [2]
memory = "65M"
[[guest]]
name = "c"
image = "hello"
cpus = [3]
memory = "64M"
)";
    auto cfg = parse_text(text);
    EXPECT_TRUE(only_error(*cfg, 11, 1, "memory", "65M is not a multiple of 2M"));
    ASSERT_EQ(cfg->guest_count, 3u);
    EXPECT_TRUE(cfg->guests[0].valid);
    EXPECT_FALSE(cfg->guests[1].valid);
    EXPECT_TRUE(cfg->guests[2].valid);
    EXPECT_EQ(cfg->valid_guest_count(), 2u);
    EXPECT_FALSE(cfg->fatal);
    hv::config::validate(*cfg, facts());
    EXPECT_EQ(cfg->error_count, 1u) << dump(*cfg);
    EXPECT_EQ(cfg->valid_guest_count(), 2u);
    EXPECT_EQ(fmt_diag(*cfg, 0), "hv.toml:11: guest 'b': field 'memory': 65M is not a multiple of 2M");
}

// ------------------------------------------------------------------ fatal cases

TEST(ConfigFatal, MissingVersion) {
    auto cfg = parse_text("[[guest]]\nname = \"web\"\nimage = \"hello\"\ncpus = [1]\nmemory = \"64M\"\n");
    EXPECT_TRUE(cfg->fatal);
    EXPECT_TRUE(only_error(*cfg, 0, -1, "version", "required key is missing (the file must start with version = 1)"));
    EXPECT_EQ(cfg->guest_count, 1u);
    EXPECT_FALSE(cfg->guests[0].valid);
    EXPECT_EQ(cfg->valid_guest_count(), 0u);

    auto empty = parse_text("");
    EXPECT_TRUE(empty->fatal);
    EXPECT_TRUE(has_error(*empty, 0, -1, "version", "required key is missing"));

    Config nothing;
    hv::config::parse(nullptr, 100, nothing);
    EXPECT_TRUE(nothing.fatal);
}

TEST(ConfigFatal, UnsupportedVersion) {
    auto cfg = parse_text("version = 2\n[[guest]]\nname = \"Bad Name\"\nwhatever = 1\n");
    EXPECT_TRUE(cfg->fatal);
    // Parsing stops at the version: a newer format is not reported key by key.
    EXPECT_TRUE(only_error(*cfg, 1, -1, "version", "unsupported version 2 (this hypervisor reads version 1)"));
    EXPECT_EQ(cfg->guest_count, 0u);

    auto zero = parse_text("version = 0\n");
    EXPECT_TRUE(zero->fatal);
    EXPECT_TRUE(has_error(*zero, 1, -1, "version", "unsupported version 0"));
    auto negative = parse_text("version = -1\n");
    EXPECT_TRUE(has_error(*negative, 1, -1, "version", "unsupported version -1"));
    auto string = parse_text("version = \"1\"\n");
    EXPECT_TRUE(string->fatal);
    EXPECT_TRUE(only_error(*string, 1, -1, "version", "must be an integer, not a string (version = 1)"));
    auto broken = parse_text("version = 1.0\n" + one_guest().substr(12));
    EXPECT_TRUE(broken->fatal);
    EXPECT_TRUE(only_error(*broken, 1, -1, "version", "floating-point values are not supported"));
    EXPECT_EQ(broken->valid_guest_count(), 0u);
    EXPECT_FALSE(broken->guests[0].valid);
}

TEST(ConfigFatal, BinaryData) {
    std::string nul = one_guest();
    nul.insert(nul.find("memory"), 1, '\0');
    auto cfg = parse_text(nul);
    EXPECT_TRUE(cfg->fatal);
    EXPECT_TRUE(only_error(*cfg, 7, -1, "", "NUL byte at offset"));
    EXPECT_EQ(cfg->guest_count, 0u);

    auto control = parse_text("version = 1\n\x01\x02\x03");
    EXPECT_TRUE(control->fatal);
    EXPECT_TRUE(only_error(*control, 2, -1, "", "control byte 0x01 at offset 12: not a text file"));

    auto lone_cr = parse_text("version = 1\rname = 1\n");
    EXPECT_TRUE(lone_cr->fatal);
    EXPECT_TRUE(has_error(*lone_cr, 1, -1, "", "control byte 0x0d"));

    // An ELF header where the config should be.
    const char elf[] =
        "\x7f"
        "ELF\x02\x01\x01\x00\x00\x00";
    auto binary = parse_text(std::string(elf, sizeof elf - 1));
    EXPECT_TRUE(binary->fatal);
    EXPECT_EQ(binary->diag_count, 1u) << dump(*binary);
}

TEST(ConfigFatal, FileSizeLimit) {
    std::string exact = one_guest();
    exact += std::string(hv::config::kMaxFileSize - exact.size() - 1, '#') + "\n";
    // Comment lines must stay below 1024 characters: break the padding into lines.
    for (size_t i = one_guest().size() + 1000; i < exact.size(); i += 1000) exact[i] = '\n';
    ASSERT_EQ(exact.size(), hv::config::kMaxFileSize);
    auto ok = parse_text(exact);
    EXPECT_EQ(ok->error_count, 0u) << dump(*ok);
    EXPECT_EQ(ok->valid_guest_count(), 1u);

    auto big = parse_text(exact + "\n");
    EXPECT_TRUE(big->fatal);
    EXPECT_TRUE(only_error(*big, 0, -1, "", "file is 65537 bytes, more than the 65536-byte limit"));

    // 10 MB is rejected without being read.
    std::string huge(10u << 20, 'a');
    auto h = parse_text(huge);
    EXPECT_TRUE(h->fatal);
    EXPECT_EQ(h->diag_count, 1u);
}

TEST(ConfigFatal, TooManyGuests) {
    std::string text = "version = 1\n";
    for (size_t i = 0; i < kMaxGuests + 2; ++i)
        text += "[[guest]]\nname = \"g" + std::to_string(i) + "\"\nimage = \"hello\"\ncpus = [" +
                std::to_string(i + 1) + "]\nmemory = \"2M\"\n[[guest.port]]\n";
    auto cfg = parse_text(text);
    EXPECT_FALSE(cfg->fatal);
    EXPECT_EQ(cfg->guest_count, kMaxGuests);
    // Guest 17 starts on line 2 + 16 * 6 = 98, guest 18 on 104; their ports are skipped.
    EXPECT_TRUE(has_error(*cfg, 98, -1, "", "too many guests: this one is ignored (at most 16)"));
    EXPECT_TRUE(has_error(*cfg, 104, -1, "", "too many guests"));
    EXPECT_EQ(cfg->error_count, kMaxGuests + 2) << dump(*cfg);  // 16 ports + 2 extra guests
    EXPECT_STREQ(cfg->guests[kMaxGuests - 1].name, "g15");
}

// ------------------------------------------------------------------ diagnostics

TEST(ConfigDiagnostics, CapacityOverflowIsCounted) {
    std::string text = "version = 1\n[[guest]]\nname = \"a\"\nimage = \"a\"\ncpus = [1]\nmemory = \"2M\"\n";
    for (int i = 0; i < 40; ++i) text += "bad" + std::to_string(i) + " = 1\n";
    auto cfg = parse_text(text);
    EXPECT_EQ(cfg->diag_count, kMaxDiagnostics);
    EXPECT_EQ(cfg->diags_dropped, 40u - kMaxDiagnostics);
    EXPECT_EQ(cfg->error_count, 40u);
    EXPECT_TRUE(has_error(*cfg, 7, 0, "bad0", "unknown key"));
    EXPECT_TRUE(has_error(*cfg, 38, 0, "bad31", "unknown key"));
    EXPECT_FALSE(cfg->guests[0].valid);
    // Errors past the capacity still reject their guest.
    text = "version = 1\n";
    for (int i = 0; i < 40; ++i) text += "junk" + std::to_string(i) + " = 1\n";
    text += "[[guest]]\nname = \"late\"\nimage = \"a\"\ncpus = [1]\nmemory = \"2M\"\nbad = 1\n";
    auto late = parse_text(text);
    EXPECT_EQ(late->diag_count, kMaxDiagnostics);
    EXPECT_EQ(late->error_count, 41u);
    EXPECT_FALSE(late->guests[0].valid);
}

TEST(ConfigDiagnostics, FormatExactStrings) {
    auto cfg = parse_text(one_guest({{"memory", "\"3M\""}, {"restart", "\"sometimes\""}}) + "[server]\n");
    ASSERT_EQ(cfg->diag_count, 3u) << dump(*cfg);
    EXPECT_EQ(fmt_diag(*cfg, 0), "hv.toml:7: guest 'web': field 'memory': 3M is not a multiple of 2M");
    EXPECT_EQ(fmt_diag(*cfg, 1),
              "hv.toml:8: guest 'web': field 'restart': unknown policy 'sometimes' (never, on-failure or always)");
    EXPECT_EQ(fmt_diag(*cfg, 2), "hv.toml:9: unknown table [server] (only [[guest]] and [[guest.port]])");
    EXPECT_EQ(fmt_diag(*cfg, 2, nullptr), "line 9: unknown table [server] (only [[guest]] and [[guest.port]])");

    auto unnamed =
        parse_text("version = 1\n[[guest]]\nname = \"BAD\"\nimage = \"hello\"\ncpus = [1]\nmemory = \"2M\"\n");
    EXPECT_EQ(fmt_diag(*unnamed, 0), "hv.toml:3: guest #1: field 'name': 'BAD' has a character outside a-z 0-9 _ -");

    auto missing = parse_text("[[guest]]\nname = \"web\"\nimage = \"hello\"\ncpus = [1]\nmemory = \"2M\"\n");
    EXPECT_EQ(fmt_diag(*missing, 0),
              "hv.toml: field 'version': required key is missing (the file must start with version = 1)");

    auto warn = with_key("restart_limit", "3");
    EXPECT_EQ(fmt_diag(*warn, 0),
              "hv.toml:8: warning: guest 'web': field 'restart_limit': has no effect with restart = \"never\"");

    // Truncation: always terminated, never past cap, and the length is what was written.
    char small[16];
    std::memset(small, 'Z', sizeof small);
    size_t n = hv::config::format_diagnostic(cfg->diags[0], *cfg, "hv.toml", small, 10);
    EXPECT_EQ(n, 9u);
    EXPECT_STREQ(small, "hv.toml:7");
    EXPECT_EQ(small[10], 'Z');
    EXPECT_EQ(hv::config::format_diagnostic(cfg->diags[0], *cfg, "hv.toml", small, 0), 0u);
    EXPECT_EQ(small[0], 'h');
}

// ------------------------------------------------------------------ validate()

std::string two_guests(const char* cpus_a, const char* cpus_b, const char* mem_a = "64M", const char* mem_b = "64M",
                       const char* name_b = "db", const char* image_b = "db") {
    // Lines: 2 [[guest]] a, 3 name, 4 image, 5 cpus, 6 memory, 7 [[guest]] b, 8 name, 9 image, 10 cpus, 11 memory.
    return std::string("version = 1\n[[guest]]\nname = \"web\"\nimage = \"hello\"\ncpus = ") + cpus_a +
           "\nmemory = \"" + mem_a + "\"\n[[guest]]\nname = \"" + name_b + "\"\nimage = \"" + image_b +
           "\"\ncpus = " + cpus_b + "\nmemory = \"" + mem_b + "\"\n";
}

TEST(ConfigValidate, CpuOutOfRange) {
    auto cfg = parse_text(two_guests("[1, 4]", "[2]"));
    hv::config::validate(*cfg, facts(4));
    EXPECT_TRUE(only_error(*cfg, 5, 0, "cpus", "CPU 4 does not exist (this machine has CPUs 0-3)"));
    EXPECT_FALSE(cfg->guests[0].valid);
    EXPECT_TRUE(cfg->guests[1].valid);

    auto none = parse_text(two_guests("[1]", "[2]"));
    hv::config::validate(*none, facts(0));
    EXPECT_TRUE(has_error(*none, 5, 0, "cpus", "CPU 1 does not exist"));
    EXPECT_EQ(none->valid_guest_count(), 0u);
}

TEST(ConfigValidate, CpuZeroIsTheHypervisors) {
    auto cfg = parse_text(two_guests("[0, 1]", "[2]"));
    hv::config::validate(*cfg, facts());
    EXPECT_TRUE(only_error(*cfg, 5, 0, "cpus", "CPU 0 is reserved for the hypervisor"));
    EXPECT_EQ(cfg->valid_guest_count(), 1u);
}

TEST(ConfigValidate, CpuNotOnline) {
    auto cfg = parse_text(two_guests("[1]", "[2, 3]"));
    const bool online[] = {true, true, true, false};
    MachineFacts f = facts();
    f.cpu_online = online;
    hv::config::validate(*cfg, f);
    EXPECT_TRUE(only_error(*cfg, 10, 1, "cpus", "CPU 3 is not online (see hv.cpu in the boot log)"));
}

TEST(ConfigValidate, CpuOverlapNamesTheEarlierGuest) {
    auto cfg = parse_text(two_guests("[1, 2]", "[3, 2]"));
    hv::config::validate(*cfg, facts());
    EXPECT_TRUE(only_error(*cfg, 10, 1, "cpus", "CPU 2 is already assigned to guest 'web' (line 2)"));
    EXPECT_TRUE(cfg->guests[0].valid);
    EXPECT_FALSE(cfg->guests[1].valid);
    EXPECT_EQ(fmt_diag(*cfg, 0),
              "hv.toml:10: guest 'db': field 'cpus': CPU 2 is already assigned to guest 'web' (line 2)");
}

TEST(ConfigValidate, RejectedGuestClaimsNothing) {
    // "web" is rejected for its image, so "db" may have CPU 2 and the memory.
    auto cfg =
        parse_text(std::string("version = 1\n[[guest]]\nname = \"web\"\nimage = \"nope\"\ncpus = [2]\nmemory = "
                               "\"1G\"\n[[guest]]\nname = \"db\"\nimage = \"db\"\ncpus = [2]\nmemory = \"1G\"\n"));
    hv::config::validate(*cfg, facts());
    EXPECT_TRUE(only_error(*cfg, 4, 0, "image", "no boot module named 'nope' (loaded: hello, db, web)"));
    EXPECT_TRUE(cfg->guests[1].valid);
}

TEST(ConfigValidate, MissingModule) {
    auto cfg = parse_text(two_guests("[1]", "[2]", "64M", "64M", "db", "dbx"));
    hv::config::validate(*cfg, facts());
    EXPECT_TRUE(only_error(*cfg, 9, 1, "image", "no boot module named 'dbx' (loaded: hello, db, web)"));

    auto none = parse_text(two_guests("[1]", "[2]"));
    MachineFacts f{4, 1ull << 30, nullptr, 0};
    hv::config::validate(*none, f);
    EXPECT_TRUE(has_error(*none, 4, 0, "image", "no boot module named 'hello' (no modules were loaded)"));
    EXPECT_EQ(none->valid_guest_count(), 0u);

    auto any = parse_text(two_guests("[1]", "[2]", "64M", "64M", "db", "whatever"));
    MachineFacts f_any{4, 1ull << 30, nullptr, 0};
    f_any.accept_any_module = true;
    hv::config::validate(*any, f_any);
    EXPECT_EQ(any->error_count, 0u) << dump(*any);
}

TEST(ConfigValidate, MemoryIsCumulativeInFileOrder) {
    const char* text = R"(version = 1
[[guest]]
name = "a"
image = "hello"
cpus = [1]
memory = "512M"
[[guest]]
name = "b"
image = "hello"
cpus = [2]
memory = "768M"
[[guest]]
name = "c"
image = "hello"
cpus = [3]
memory = "256M"
)";
    auto cfg = parse_text(text);
    hv::config::validate(*cfg, facts(4, 1ull << 30));
    // a takes 512M, b (768M) no longer fits and is rejected, c fits in what b did not take.
    EXPECT_TRUE(only_error(*cfg, 11, 1, "memory", "768M does not fit: 512M of 1G free memory is left"));
    EXPECT_TRUE(cfg->guests[0].valid);
    EXPECT_FALSE(cfg->guests[1].valid);
    EXPECT_TRUE(cfg->guests[2].valid);
}

TEST(ConfigValidate, DuplicateNames) {
    auto cfg = parse_text(two_guests("[1]", "[2]", "64M", "64M", "web"));
    hv::config::validate(*cfg, facts());
    EXPECT_TRUE(only_error(*cfg, 8, 1, "name", "'web' is already the name of the guest on line 2"));
    EXPECT_TRUE(cfg->guests[0].valid);
    EXPECT_FALSE(cfg->guests[1].valid);
}

TEST(ConfigValidate, FatalConfigIsLeftAlone) {
    auto cfg = parse_text("version = 3\n");
    size_t before = cfg->diag_count;
    hv::config::validate(*cfg, facts());
    EXPECT_EQ(cfg->diag_count, before);
    EXPECT_EQ(cfg->valid_guest_count(), 0u);
}

// ------------------------------------------------------------------ example files

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The files hv-check is run on (tools/CMakeLists.txt) agree with the library:
// good-*.toml have no errors on a 4-CPU, 1 GiB machine; bad-*.toml have some.
TEST(ConfigFiles, ExampleFiles) {
    const std::string dir = std::string(HV_TEST_DATA) + "/config/";
    for (const char* name : {"good-full.toml", "good-minimal.toml", "good-always.toml"}) {
        std::string text = read_file(dir + name);
        ASSERT_FALSE(text.empty()) << name;
        auto cfg = parse_text(text);
        MachineFacts f{4, 1ull << 30, kModules, 3};
        hv::config::validate(*cfg, f);
        EXPECT_EQ(cfg->error_count, 0u) << name << "\n" << dump(*cfg);
        EXPECT_GT(cfg->valid_guest_count(), 0u) << name;
    }
    for (const char* name :
         {"bad-memory.toml", "bad-unknown-key.toml", "bad-missing-field.toml", "bad-cpu-overlap.toml", "bad-port.toml",
          "bad-version.toml", "bad-syntax.toml", "bad-restart-limit.toml"}) {
        std::string text = read_file(dir + name);
        ASSERT_FALSE(text.empty()) << name;
        auto cfg = parse_text(text);
        MachineFacts f{4, 1ull << 30, kModules, 3};
        hv::config::validate(*cfg, f);
        EXPECT_GT(cfg->error_count, 0u) << name;
    }
}

// ------------------------------------------------------------------ hostile input

// Deterministic garbage built from config fragments: nothing may crash, overflow
// or leave an inconsistent result (ASan/UBSan watch the rest).
TEST(ConfigHostile, MutatedInputsStayConsistent) {
    const char* pieces[] = {"version = 1\n",
                            "[[guest]]\n",
                            "[[guest.port]]\n",
                            "name = \"a\"\n",
                            "cpus = [1,2,",
                            "memory = \"2M\"\n",
                            "\"",
                            "\\",
                            "[",
                            "]",
                            "=",
                            "#",
                            "\n",
                            "99999999999999999999999",
                            "restart = \"always\"\n",
                            "\xff",
                            "\t",
                            "_",
                            "image = \"hello\"\n",
                            "[x]\n",
                            "-",
                            "0x"};
    uint64_t seed = 0x243f6a8885a308d3ull;
    auto next = [&] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        return seed;
    };
    for (int round = 0; round < 3000; ++round) {
        std::string text;
        size_t parts = next() % 60;
        for (size_t i = 0; i < parts; ++i) text += pieces[next() % (sizeof pieces / sizeof pieces[0])];
        auto cfg = parse_text(text);
        MachineFacts f = facts();
        hv::config::validate(*cfg, f);
        ASSERT_LE(cfg->guest_count, kMaxGuests);
        ASSERT_LE(cfg->diag_count, kMaxDiagnostics);
        ASSERT_EQ(cfg->diag_count + cfg->diags_dropped, cfg->error_count + cfg->warning_count);
        if (cfg->fatal) {
            ASSERT_EQ(cfg->valid_guest_count(), 0u);
        }
        for (size_t i = 0; i < cfg->guest_count; ++i) {
            const GuestConfig& g = cfg->guests[i];
            ASSERT_LT(std::strlen(g.name), sizeof g.name);
            ASSERT_LE(g.cpu_count, hv::config::kMaxGuestCpus);
            if (g.valid) {
                ASSERT_GE(g.memory_bytes, 2ull << 20);
                ASSERT_NE(g.name[0], '\0');
            }
        }
        for (size_t i = 0; i < cfg->diag_count; ++i) {
            std::string s = fmt_diag(*cfg, i);
            ASSERT_FALSE(s.empty());
            ASSERT_EQ(s.find('\n'), std::string::npos) << s;
        }
    }
}

}  // namespace

TEST(ConfigField, StartModes) {
    EXPECT_EQ(parse_text(one_guest())->guests[0].mode, hv::config::StartMode::long64);
    auto real = with_key("mode", "\"real16\"");
    ASSERT_TRUE(real->guests[0].valid) << dump(*real);
    EXPECT_EQ(real->guests[0].mode, hv::config::StartMode::real16);
    auto prot = with_key("mode", "\"protected32\"");
    EXPECT_EQ(prot->guests[0].mode, hv::config::StartMode::protected32);
    auto bad = with_key("mode", "\"vm86\"");
    EXPECT_TRUE(only_error(*bad, 8, 0, "mode", "unknown mode 'vm86' (long64, protected32 or real16)"));
    EXPECT_FALSE(bad->guests[0].valid);
    auto number = with_key("mode", "16");
    EXPECT_TRUE(only_error(*number, 8, 0, "mode", "must be a string (long64, protected32 or real16)"));
    EXPECT_STREQ(hv::config::start_mode_name(hv::config::StartMode::protected32), "protected32");
}
