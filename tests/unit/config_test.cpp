// Unit tests for the appliance configuration (kernel/config): the TOML subset,
// every per-field check, the containment rule (a bad guest never takes the others
// down), the fatal cases, the machine checks of validate() and the exact text of
// diagnostics. Every expected diagnostic is matched on line, guest and field.

#include "kernel/config/config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
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
                           "unknown key (known: name,image,cpus,memory,restart,restart_delay_ms,restart_delay_max_ms,"
                           "restart_limit,mode,args)"));
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
    EXPECT_TRUE(only_error(*table, 8, -1, "",
                           "unknown table [server] (only [[guest]], [[guest.port]], [[mirror]] and [switch])"));
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

TEST(ConfigTable, GuestPortSections) {
    // Lines inside a port are checked for syntax, against the guest and the port.
    auto syntax = parse_text(one_guest() + "[[guest.port]]\nmac = \"02:00:00:00:00:01\nvlan = 2\n");
    EXPECT_TRUE(only_error(*syntax, 9, 0, "mac", "unterminated string"));
    EXPECT_EQ(syntax->diags[0].port, 0);
    EXPECT_FALSE(syntax->guests[0].valid);

    auto orphan = parse_text("version = 1\n[[guest.port]]\n");
    EXPECT_TRUE(only_error(*orphan, 2, -1, "", "[[guest.port]] must follow a [[guest]] header"));

    // A port belongs to the [[guest]] right above it: after a [[mirror]] there is none.
    auto after_mirror =
        parse_text(one_guest() + "[[mirror]]\nname = \"cap\"\n[[guest.port]]\nmac = \"02:00:00:00:00:01\"\n");
    EXPECT_TRUE(has_error(*after_mirror, 10, -1, "", "[[guest.port]] must follow a [[guest]] header"));
    EXPECT_TRUE(after_mirror->guests[0].valid);

    auto single = parse_text(one_guest() + "[guest.port]\nmac = \"02:00:00:00:00:01\"\n");
    EXPECT_TRUE(only_error(*single, 8, 0, "", "[guest.port] is a single table; declare each port with [[guest.port]]"));
    EXPECT_FALSE(single->guests[0].valid);

    // A bad port of the first guest does not affect the second.
    auto two = parse_text(one_guest() +
                          "[[guest.port]]\n[[guest]]\nname = \"b\"\nimage = \"b\"\ncpus = [3]\nmemory = \"2M\"\n");
    EXPECT_TRUE(only_error(*two, 8, 0, "mac", "required key is missing"));
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
        {"[[1]]", "arrays may only hold integers and strings"},
        {"[true]", "arrays may only hold integers and strings"},
        {"['a']", "literal strings ('...') are not supported"},
        {"[\"a]", "unterminated string"},
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
    EXPECT_EQ(fmt_diag(*cfg, 2),
              "hv.toml:9: unknown table [server] (only [[guest]], [[guest.port]], [[mirror]] and [switch])");
    EXPECT_EQ(fmt_diag(*cfg, 2, nullptr),
              "line 9: unknown table [server] (only [[guest]], [[guest.port]], [[mirror]] and [switch])");

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
    size_t good = 0, bad = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        std::string name = entry.path().filename().string();
        bool is_good = name.rfind("good-", 0) == 0, is_bad = name.rfind("bad-", 0) == 0;
        if (!is_good && !is_bad) continue;
        std::string text = read_file(entry.path().string());
        ASSERT_FALSE(text.empty()) << name;
        auto cfg = parse_text(text);
        MachineFacts f{4, 1ull << 30, kModules, 3};
        hv::config::validate(*cfg, f);
        if (is_good) {
            ++good;
            EXPECT_EQ(cfg->error_count, 0u) << name << "\n" << dump(*cfg);
            EXPECT_EQ(cfg->warning_count, 0u) << name << "\n" << dump(*cfg);
            EXPECT_GT(cfg->valid_guest_count(), 0u) << name;
        } else {
            ++bad;
            EXPECT_GT(cfg->error_count, 0u) << name;
            // The last line says what hv-check must print (tools/CMakeLists.txt); the
            // first diagnostic of the file is that one.
            size_t at = text.rfind("# expect: ");
            ASSERT_NE(at, std::string::npos) << name;
            ASSERT_GT(cfg->diag_count, 0u) << name;
            std::string line = name + ":" + std::to_string(cfg->diags[0].line) + ": ";
            EXPECT_NE(fmt_diag(*cfg, 0, name.c_str()).find(line), std::string::npos) << name;
        }
    }
    EXPECT_GE(good, 5u);
    EXPECT_GE(bad, 15u);
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
                            "0x",
                            "mac = \"02:00:00:00:00:01\"\n",
                            "mac = \"02:00:00:00:00:02\"\n",
                            "vlan_mode = \"trunk\"\n",
                            "allowed_vlans = [1, \"10-4094\"]\n",
                            "native_vlan = 10\n",
                            "vlan = 5\n",
                            "mirror = [\"m\", \"n\"]\n",
                            "[[mirror]]\n",
                            "name = \"m\"\n",
                            "[switch]\n",
                            "fdb_size = 512\n",
                            "rate_limit = \"1G\"\n",
                            "burst = \"2K\"\n",
                            "args = \"x\"\n"};
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
            ASSERT_LE(g.port_count, hv::config::kMaxPortsPerGuest);
            if (g.valid) {
                ASSERT_GE(g.memory_bytes, 2ull << 20);
                ASSERT_NE(g.name[0], '\0');
                for (size_t k = 0; k < g.port_count; ++k) {
                    const hv::config::PortConfig& p = g.ports[k];
                    ASSERT_EQ(p.mac[0] & 1, 0);
                    uint64_t any = 0;
                    for (uint64_t w : p.allowed_vlans) any |= w;
                    ASSERT_NE(any, 0u);
                    ASSERT_FALSE(p.carries(0));
                    ASSERT_FALSE(p.carries(4095));
                    ASSERT_LT(p.mirror_mask, 1u << cfg->mirror_count);
                }
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

// ------------------------------------------------------------------ args

TEST(ConfigField, Args) {
    auto cfg = with_key("args", "\"ip=10.0.0.1 peer=10.0.0.2\"");
    ASSERT_EQ(cfg->diag_count, 0u) << dump(*cfg);
    EXPECT_STREQ(cfg->guests[0].args, "ip=10.0.0.1 peer=10.0.0.2");
    EXPECT_EQ(cfg->guests[0].line_of(Field::args), 8u);
    EXPECT_STREQ(parse_text(one_guest())->guests[0].args, "");  // default: none

    auto empty = with_key("args", "\"\"");
    EXPECT_EQ(empty->error_count, 0u) << dump(*empty);
    auto escaped = with_key("args", "\"say \\\"hi\\\" \\\\o/\"");
    EXPECT_STREQ(escaped->guests[0].args, "say \"hi\" \\o/");

    std::string max(hv::config::kMaxArgsLen, 'x');
    auto at_limit = with_key("args", "\"" + max + "\"");
    EXPECT_EQ(at_limit->error_count, 0u) << dump(*at_limit);
    EXPECT_EQ(std::strlen(at_limit->guests[0].args), 127u);

    const std::pair<std::string, const char*> bad[] = {
        {"\"" + max + "y\"", "is 128 characters long, at most 127"},
        {"\"a\\tb\"", "character 2 is not printable ASCII (no tabs, newlines or other controls)"},
        {"\"\\n\"", "character 1 is not printable ASCII"},
        {"\"caf\xc3\xa9\"", "character 4 is not printable ASCII"},
        {"5", "must be a string, not an integer"},
        {"[\"a\"]", "must be a string, not an array"},
    };
    for (const auto& [value, text] : bad) {
        auto b = with_key("args", value);
        EXPECT_TRUE(only_error(*b, 8, 0, "args", text)) << value;
        EXPECT_FALSE(b->guests[0].valid) << value;
    }
}

// ------------------------------------------------------------------ ports

namespace {

using hv::config::kMaxPorts;
using hv::config::kMaxPortsPerGuest;
using hv::config::MirrorDirection;
using hv::config::PortConfig;
using hv::config::PortField;
using hv::config::VlanMode;

// one_guest() (lines 1-7), then line 8 [[guest.port]], line 9 its mac, and the
// given keys from line 10. An entry for "mac" replaces line 9 ("" drops it and
// leaves a comment, so lines never move).
std::string one_port(const std::vector<std::pair<std::string, std::string>>& keys = {}) {
    std::string mac = "\"02:00:00:00:00:01\"";
    std::string rest;
    for (const auto& [k, v] : keys) {
        if (k == "mac")
            mac = v;
        else
            rest += k + " = " + v + "\n";
    }
    return one_guest() + "[[guest.port]]\n" + (mac.empty() ? "# (mac removed)\n" : "mac = " + mac + "\n") + rest;
}

std::unique_ptr<Config> with_port(const std::vector<std::pair<std::string, std::string>>& keys) {
    return parse_text(one_port(keys));
}

size_t vlan_count(const PortConfig& p) {
    size_t n = 0;
    for (uint64_t w : p.allowed_vlans) n += static_cast<size_t>(__builtin_popcountll(w));
    return n;
}

std::string vlans_of(const PortConfig& p) {
    char buf[512];
    hv::config::format_vlans(p, buf, sizeof buf);
    return buf;
}

std::string mac_of(const PortConfig& p) {
    char buf[24];
    hv::config::format_mac(p.mac, buf, sizeof buf);
    return buf;
}

// A port error: on `line`, in guest 0 and its first port, the only error; the guest is rejected.
::testing::AssertionResult port_error(const Config& cfg, uint32_t line, const char* field, const char* text,
                                      int32_t port = 0) {
    auto r = only_error(cfg, line, 0, field, text);
    if (!r) return r;
    for (size_t i = 0; i < cfg.diag_count; ++i) {
        if (cfg.diags[i].severity == Severity::error && cfg.diags[i].port != port)
            return ::testing::AssertionFailure() << "error is on port " << cfg.diags[i].port << ", expected " << port;
    }
    if (cfg.guests[0].valid) return ::testing::AssertionFailure() << "the guest was not rejected";
    return ::testing::AssertionSuccess();
}

}  // namespace

TEST(ConfigPort, Defaults) {
    auto cfg = with_port({});
    ASSERT_EQ(cfg->diag_count, 0u) << dump(*cfg);
    const GuestConfig& g = cfg->guests[0];
    ASSERT_TRUE(g.valid);
    ASSERT_EQ(g.port_count, 1u);
    const PortConfig& p = g.ports[0];
    EXPECT_STREQ(p.name, "eth0");
    EXPECT_EQ(mac_of(p), "02:00:00:00:00:01");
    EXPECT_EQ(p.vlan_mode, VlanMode::access);
    EXPECT_EQ(p.vlan, 1u);
    EXPECT_EQ(vlan_count(p), 1u);  // an access port carries exactly its VLAN
    EXPECT_TRUE(p.carries(1));
    EXPECT_EQ(p.native_vlan, 0u);
    EXPECT_FALSE(p.is_protected);
    EXPECT_TRUE(p.anti_spoof);
    EXPECT_EQ(p.rate_bits_per_sec, 0u);
    EXPECT_EQ(p.burst_bytes, 64u << 10);
    EXPECT_EQ(p.mirror_mask, 0u);
    EXPECT_EQ(p.mirror_direction, MirrorDirection::both);
    EXPECT_EQ(p.max_macs, 64u);
    EXPECT_EQ(p.index, 0u);
    EXPECT_EQ(p.line, 8u);
    EXPECT_EQ(p.line_of(PortField::mac), 9u);
    EXPECT_EQ(p.line_of(PortField::vlan), 0u);
    // No [switch], no [[mirror]]: the switch defaults.
    EXPECT_EQ(cfg->mirror_count, 0u);
    EXPECT_EQ(cfg->switch_config.mac_ageing_s, 300u);
    EXPECT_EQ(cfg->switch_config.fdb_size, 4096u);
    EXPECT_EQ(cfg->switch_config.line, 0u);
}

TEST(ConfigPort, EveryKey) {
    auto cfg = parse_text(one_port({{"name", "\"lan\""},
                                    {"mac", "\"02:AB:cd:00:10:fe\""},
                                    {"vlan_mode", "\"trunk\""},
                                    {"allowed_vlans", "[10, \"100-199\", 4094]"},
                                    {"native_vlan", "100"},
                                    {"protected", "true"},
                                    {"anti_spoof", "false"},
                                    {"rate_limit", "\"250M\""},
                                    {"burst", "\"128K\""},
                                    {"mirror", "[\"cap\", \"ids\"]"},
                                    {"mirror_direction", "\"rx\""},
                                    {"max_macs", "200"}}) +
                          "[[mirror]]\nname = \"ids\"\n[[mirror]]\nname = \"cap\"\n");
    ASSERT_EQ(cfg->diag_count, 0u) << dump(*cfg);
    const PortConfig& p = cfg->guests[0].ports[0];
    EXPECT_STREQ(p.name, "lan");
    EXPECT_EQ(mac_of(p), "02:ab:cd:00:10:fe");
    EXPECT_EQ(p.vlan_mode, VlanMode::trunk);
    EXPECT_EQ(p.vlan, 0u);
    EXPECT_EQ(vlan_count(p), 102u);
    EXPECT_EQ(vlans_of(p), "10,100-199,4094");
    EXPECT_EQ(p.native_vlan, 100u);
    EXPECT_TRUE(p.is_protected);
    EXPECT_FALSE(p.anti_spoof);
    EXPECT_EQ(p.rate_bits_per_sec, 250'000'000u);
    EXPECT_EQ(p.burst_bytes, 128u << 10);
    EXPECT_EQ(p.mirror_mask, 0x3u);  // mirrors[0] is "ids", mirrors[1] "cap"
    EXPECT_EQ(p.mirror_direction, MirrorDirection::rx);
    EXPECT_EQ(p.line_of(PortField::mirror_direction), 19u);
    EXPECT_EQ(p.max_macs, 200u);
    EXPECT_EQ(p.line_of(PortField::max_macs), 20u);
    EXPECT_EQ(p.line_of(PortField::is_protected), 14u);
    EXPECT_STREQ(hv::config::port_field_name(PortField::is_protected), "protected");
    EXPECT_STREQ(hv::config::vlan_mode_name(VlanMode::trunk), "trunk");
    EXPECT_STREQ(hv::config::mirror_direction_name(MirrorDirection::tx), "tx");
}

TEST(ConfigPort, Names) {
    std::string two = one_port() +
                      "[[guest.port]]\nmac = \"02:00:00:00:00:02\"\n[[guest.port]]\nname = \"wan_1\"\n"
                      "mac = \"02:00:00:00:00:03\"\n";
    auto cfg = parse_text(two);
    ASSERT_EQ(cfg->diag_count, 0u) << dump(*cfg);
    ASSERT_EQ(cfg->guests[0].port_count, 3u);
    EXPECT_STREQ(cfg->guests[0].ports[1].name, "eth1");
    EXPECT_STREQ(cfg->guests[0].ports[2].name, "wan_1");
    EXPECT_EQ(cfg->guests[0].ports[2].index, 2u);

    auto upper = with_port({{"name", "\"Eth0\""}});
    EXPECT_TRUE(port_error(*upper, 10, "name", "'Eth0' has a character outside a-z 0-9 _ -"));
    EXPECT_EQ(fmt_diag(*upper, 0),
              "hv.toml:10: guest 'web': port #1: field 'name': 'Eth0' has a character outside a-z 0-9 _ -");
    EXPECT_TRUE(port_error(*with_port({{"name", "\"\""}}), 10, "name", "must not be empty"));
    EXPECT_TRUE(port_error(*with_port({{"name", "\"" + std::string(32, 'p') + "\""}}), 10, "name",
                           "is 32 characters long, at most 31"));
    EXPECT_TRUE(port_error(*with_port({{"name", "1"}}), 10, "name", "must be a string, not an integer"));

    // Unique within the guest: a given name, or a default one.
    auto dup =
        parse_text(one_port({{"name", "\"lan\""}}) + "[[guest.port]]\nname = \"lan\"\nmac = \"02:00:00:00:00:02\"\n");
    EXPECT_TRUE(port_error(*dup, 12, "name", "'lan' is already the name of the port on line 8", 1));
    auto dflt = parse_text(one_port({{"name", "\"eth1\""}}) + "[[guest.port]]\nmac = \"02:00:00:00:00:02\"\n");
    EXPECT_TRUE(port_error(*dflt, 11, "name",
                           "the default name 'eth1' is already the name of the port on line 8; give this port a name",
                           1));
    // Ports of different guests may share names.
    auto other = parse_text(one_port() +
                            "[[guest]]\nname = \"db\"\nimage = \"db\"\ncpus = [3]\nmemory = \"2M\"\n"
                            "[[guest.port]]\nmac = \"02:00:00:00:00:02\"\n");
    EXPECT_EQ(other->error_count, 0u) << dump(*other);
    EXPECT_STREQ(other->guests[1].ports[0].name, "eth0");
    EXPECT_EQ(other->guests[1].ports[0].index, 1u);
}

TEST(ConfigPort, MacForms) {
    const std::pair<const char*, const char*> good[] = {
        {"\"02:00:00:00:00:01\"", "02:00:00:00:00:01"},
        {"\"52:54:00:12:34:56\"", "52:54:00:12:34:56"},
        {"\"0A:1b:2C:3d:4E:5f\"", "0a:1b:2c:3d:4e:5f"},
        {"\"fe:ff:ff:ff:ff:ff\"", "fe:ff:ff:ff:ff:ff"},  // unicast: bit 0 of the first octet is clear
    };
    for (const auto& [value, shown] : good) {
        auto cfg = with_port({{"mac", value}});
        ASSERT_EQ(cfg->error_count, 0u) << value << "\n" << dump(*cfg);
        EXPECT_EQ(mac_of(cfg->guests[0].ports[0]), shown);
    }
    const std::pair<const char*, const char*> bad[] = {
        {"\"02:00:00:00:00\"",
         "'02:00:00:00:00' is not a MAC address like \"02:00:00:00:00:01\" (6 hex pairs and ':')"},
        {"\"02-00-00-00-00-01\"", "'02-00-00-00-00-01' is not a MAC address"},
        {"\"02:00:00:00:00:0g\"", "'02:00:00:00:00:0g' is not a MAC address"},
        {"\"2:0:0:0:0:1\"", "'2:0:0:0:0:1' is not a MAC address"},
        {"\"02:00:00:00:00:01:\"", "'02:00:00:00:00:01:' is not a MAC address"},
        {"\"0200.0000.0001\"", "is not a MAC address"},
        {"\"\"", "'' is not a MAC address"},
        {"\"ff:ff:ff:ff:ff:ff\"", "ff:ff:ff:ff:ff:ff is the broadcast address; a port needs a unicast address"},
        {"\"01:00:5e:00:00:01\"",
         "01:00:5e:00:00:01 is a multicast address (bit 0 of the first octet is set); a port needs a unicast one"},
        {"\"33:33:00:00:00:01\"", "33:33:00:00:00:01 is a multicast address"},
        {"\"03:00:00:00:00:00\"", "03:00:00:00:00:00 is a multicast address"},
        {"\"00:00:00:00:00:00\"", "00:00:00:00:00:00 is not a usable address"},
        {"2", "must be a string like \"02:00:00:00:00:01\", not an integer"},
    };
    for (const auto& [value, text] : bad) {
        auto cfg = with_port({{"mac", value}});
        EXPECT_TRUE(port_error(*cfg, 9, "mac", text)) << value;
    }
    auto missing = with_port({{"mac", ""}});
    EXPECT_TRUE(port_error(*missing, 8, "mac", "required key is missing"));
    EXPECT_EQ(fmt_diag(*missing, 0), "hv.toml:8: guest 'web': port 'eth0': field 'mac': required key is missing");
}

TEST(ConfigPort, DuplicateMacAcrossGuests) {
    const char* text = R"(version = 1
[[guest]]
name = "web"
image = "hello"
cpus = [1]
memory = "64M"
[[guest.port]]
mac = "02:00:00:00:00:0a"
[[guest]]
name = "db"
image = "db"
cpus = [2]
memory = "64M"
[[guest.port]]
mac = "02:00:00:00:00:0b"
[[guest.port]]
name = "backup"
mac = "02:00:00:00:00:0A"
[[guest]]
name = "log"
image = "hello"
cpus = [3]
memory = "64M"
[[guest.port]]
mac = "02:00:00:00:00:0c"
)";
    auto cfg = parse_text(text);
    // The later port is the one in error; its guest alone is rejected.
    EXPECT_TRUE(
        only_error(*cfg, 18, 1, "mac", "02:00:00:00:00:0a is already the address of guest 'web' port 'eth0' (line 8)"));
    EXPECT_EQ(cfg->diags[0].port, 1);
    EXPECT_EQ(fmt_diag(*cfg, 0),
              "hv.toml:18: guest 'db': port 'backup': field 'mac': 02:00:00:00:00:0a is already the address of guest "
              "'web' port 'eth0' (line 8)");
    EXPECT_TRUE(cfg->guests[0].valid);
    EXPECT_FALSE(cfg->guests[1].valid);
    EXPECT_TRUE(cfg->guests[2].valid);

    // Within one guest too.
    auto same = parse_text(one_port() + "[[guest.port]]\nmac = \"02:00:00:00:00:01\"\n");
    EXPECT_TRUE(port_error(*same, 11, "mac",
                           "02:00:00:00:00:01 is already the address of guest 'web' port 'eth0' (line 9)", 1));

    // A MAC that was refused does not count as taken.
    auto refused =
        parse_text(one_port({{"mac", "\"ff:ff:ff:ff:ff:ff\""}}) + "[[guest.port]]\nmac = \"02:00:00:00:00:01\"\n");
    EXPECT_EQ(refused->error_count, 1u) << dump(*refused);
}

TEST(ConfigPort, AccessVlan) {
    auto cfg = with_port({{"vlan", "4094"}});
    ASSERT_EQ(cfg->error_count, 0u) << dump(*cfg);
    const PortConfig& p = cfg->guests[0].ports[0];
    EXPECT_EQ(p.vlan, 4094u);
    EXPECT_EQ(vlan_count(p), 1u);
    EXPECT_TRUE(p.carries(4094));
    EXPECT_FALSE(p.carries(1));
    EXPECT_EQ(vlans_of(p), "4094");
    auto explicit_access = with_port({{"vlan_mode", "\"access\""}, {"vlan", "1"}});
    EXPECT_EQ(explicit_access->error_count, 0u) << dump(*explicit_access);

    const std::pair<const char*, const char*> bad[] = {
        {"0", "0 is out of range (1 to 4094)"},         {"4095", "4095 is out of range (1 to 4094)"},
        {"-1", "-1 is out of range (1 to 4094)"},       {"99999999999", "99999999999 is out of range"},
        {"\"10\"", "must be an integer, not a string"}, {"[10]", "must be an integer, not an array"},
    };
    for (const auto& [value, text] : bad)
        EXPECT_TRUE(port_error(*with_port({{"vlan", value}}), 10, "vlan", text)) << value;

    const std::pair<const char*, const char*> modes[] = {
        {"\"hybrid\"", "unknown VLAN mode 'hybrid' (access or trunk)"},
        {"\"Trunk\"", "unknown VLAN mode 'Trunk'"},
        {"1", "must be a string (access or trunk), not an integer"},
    };
    for (const auto& [value, text] : modes)
        EXPECT_TRUE(port_error(*with_port({{"vlan_mode", value}}), 10, "vlan_mode", text)) << value;

    // Trunk keys on an access port (the default mode) are errors, one per key.
    auto trunk_keys = with_port({{"allowed_vlans", "[10]"}, {"native_vlan", "10"}});
    EXPECT_EQ(trunk_keys->error_count, 2u) << dump(*trunk_keys);
    EXPECT_TRUE(has_error(*trunk_keys, 10, 0, "allowed_vlans", "only applies to a trunk port (vlan_mode = \"trunk\")"));
    EXPECT_TRUE(has_error(*trunk_keys, 11, 0, "native_vlan", "only applies to a trunk port"));
    EXPECT_FALSE(trunk_keys->guests[0].valid);
}

TEST(ConfigPort, Trunk) {
    auto all = with_port({{"vlan_mode", "\"trunk\""}});
    ASSERT_EQ(all->error_count, 0u) << dump(*all);
    const PortConfig& p = all->guests[0].ports[0];
    EXPECT_EQ(vlan_count(p), 4094u);  // default: every VLAN
    EXPECT_FALSE(p.carries(0));
    EXPECT_TRUE(p.carries(1));
    EXPECT_TRUE(p.carries(4094));
    EXPECT_FALSE(p.carries(4095));
    EXPECT_FALSE(p.carries(70000));
    EXPECT_EQ(vlans_of(p), "1-4094");
    EXPECT_EQ(p.native_vlan, 0u);  // default: untagged frames are dropped
    EXPECT_EQ(p.vlan, 0u);

    // Word boundaries of the bitmap (64 VLANs per word).
    auto edges = with_port({{"vlan_mode", "\"trunk\""}, {"allowed_vlans", "[\"63-64\", \"127-129\", 4094, \"1-1\"]"}});
    ASSERT_EQ(edges->error_count, 0u) << dump(*edges);
    const PortConfig& e = edges->guests[0].ports[0];
    EXPECT_EQ(vlan_count(e), 7u);
    EXPECT_EQ(vlans_of(e), "1,63-64,127-129,4094");
    EXPECT_EQ(e.allowed_vlans[0], (1ull << 63) | (1ull << 1));
    EXPECT_EQ(e.allowed_vlans[1], (1ull << 0) | (1ull << 63));
    EXPECT_EQ(e.allowed_vlans[2], 0x3ull);
    EXPECT_EQ(e.allowed_vlans[63], 1ull << 62);

    auto native = with_port({{"vlan_mode", "\"trunk\""}, {"allowed_vlans", "[\"100-199\"]"}, {"native_vlan", "150"}});
    ASSERT_EQ(native->error_count, 0u) << dump(*native);
    EXPECT_EQ(native->guests[0].ports[0].native_vlan, 150u);
    // native_vlan is checked against allowed_vlans whatever the order of the keys.
    auto outside = with_port({{"vlan_mode", "\"trunk\""}, {"native_vlan", "99"}, {"allowed_vlans", "[\"100-199\"]"}});
    EXPECT_TRUE(port_error(*outside, 11, "native_vlan", "VLAN 99 is not in allowed_vlans (line 12)"));
    auto dflt_all = with_port({{"vlan_mode", "\"trunk\""}, {"native_vlan", "4094"}});
    EXPECT_EQ(dflt_all->error_count, 0u) << dump(*dflt_all);

    const std::pair<const char*, const char*> natives[] = {
        {"4095", "4095 is out of range (0 to 4094)"},
        {"-1", "-1 is out of range (0 to 4094)"},
        {"\"1\"", "must be an integer, not a string"},
    };
    for (const auto& [value, text] : natives)
        EXPECT_TRUE(
            port_error(*with_port({{"vlan_mode", "\"trunk\""}, {"native_vlan", value}}), 11, "native_vlan", text))
            << value;

    // An access VLAN on a trunk: an error, whatever the key order.
    auto access_key = with_port({{"vlan", "10"}, {"vlan_mode", "\"trunk\""}});
    EXPECT_TRUE(port_error(*access_key, 10, "vlan",
                           "only applies to an access port (a trunk takes allowed_vlans and native_vlan)"));
}

TEST(ConfigPort, AllowedVlansErrors) {
    std::string many = "[";
    for (int i = 1; i <= 65; ++i) many += std::to_string(i) + ",";
    many += "]";
    const std::pair<std::string, const char*> bad[] = {
        {"[]", "must list at least one VLAN"},
        {"10", "must be an array of VLANs and ranges like [10, \"100-199\"], not an integer"},
        {"\"1-10\"", "must be an array of VLANs and ranges like [10, \"100-199\"], not a string"},
        {"[0]", "VLAN 0 is out of range (1 to 4094)"},
        {"[4095]", "VLAN 4095 is out of range (1 to 4094)"},
        {"[-3]", "VLAN -3 is out of range"},
        {"[\"100-\"]", "'100-' is not a VLAN range like \"100-199\""},
        {"[\"-100\"]", "'-100' is not a VLAN range"},
        {"[\"a-b\"]", "'a-b' is not a VLAN range"},
        {"[\"10 - 20\"]", "'10 - 20' is not a VLAN range"},
        {"[\"\"]", "'' is not a VLAN range"},
        {"[\"1-2-3\"]", "'1-2-3' is not a VLAN range"},
        {"[\"1234567\"]", "'1234567' is not a VLAN range"},
        {"[\"0-10\"]", "'0-10': VLAN 0 is out of range (1 to 4094)"},
        {"[\"10-5000\"]", "'10-5000': VLAN 5000 is out of range (1 to 4094)"},
        {"[\"20-10\"]", "'20-10' runs backwards (write \"10-20\")"},
        {"[10, 10]", "VLAN 10 is listed twice"},
        {"[\"1-100\", \"50-60\"]", "VLAN 50 is listed twice"},
        {"[\"64-127\", 127]", "VLAN 127 is listed twice"},
        {"[5, \"1-10\"]", "VLAN 5 is listed twice"},
        {"[true]", "arrays may only hold integers and strings"},
        {many, "lists 65 entries, at most 64 (use ranges like \"100-199\")"},
    };
    for (const auto& [value, text] : bad) {
        auto cfg = with_port({{"vlan_mode", "\"trunk\""}, {"allowed_vlans", value}});
        EXPECT_TRUE(port_error(*cfg, 11, "allowed_vlans", text)) << value;
    }
    std::string sixty_four = "[";
    for (int i = 1; i <= 64; ++i) sixty_four += std::to_string(i * 2) + ",";
    sixty_four += "]";
    auto full = with_port({{"vlan_mode", "\"trunk\""}, {"allowed_vlans", sixty_four}});
    EXPECT_EQ(full->error_count, 0u) << dump(*full);
    EXPECT_EQ(vlan_count(full->guests[0].ports[0]), 64u);
}

TEST(ConfigPort, Booleans) {
    auto cfg = with_port({{"protected", "true"}, {"anti_spoof", "false"}});
    ASSERT_EQ(cfg->error_count, 0u) << dump(*cfg);
    EXPECT_TRUE(cfg->guests[0].ports[0].is_protected);
    EXPECT_FALSE(cfg->guests[0].ports[0].anti_spoof);
    for (const char* key : {"protected", "anti_spoof"}) {
        EXPECT_TRUE(port_error(*with_port({{key, "\"yes\""}}), 10, key, "must be true or false, not a string")) << key;
        EXPECT_TRUE(port_error(*with_port({{key, "1"}}), 10, key, "must be true or false, not an integer")) << key;
        EXPECT_TRUE(port_error(*with_port({{key, "yes"}}), 10, key, "unquoted text 'yes'")) << key;
    }
}

TEST(ConfigPort, RateLimit) {
    const std::pair<const char*, uint64_t> good[] = {
        {"\"100M\"", 100'000'000},
        {"\"64K\"", 64'000},
        {"\"1G\"", 1'000'000'000},
        {"\"1000G\"", 1'000'000'000'000},
        {"\"250000\"", 250'000},
        {"64000", 64'000},
        {"0", 0},
        {"\"0\"", 0},
    };
    for (const auto& [value, bits] : good) {
        auto cfg = with_port({{"rate_limit", value}});
        ASSERT_EQ(cfg->error_count, 0u) << value << "\n" << dump(*cfg);
        EXPECT_EQ(cfg->guests[0].ports[0].rate_bits_per_sec, bits) << value;
    }
    const std::pair<const char*, const char*> bad[] = {
        {"63999", "63999 is less than the 64K minimum (0 means unlimited)"},
        {"\"1K\"", "1K is less than the 64K minimum"},
        {"\"1001G\"", "1001G is more than the 1000G maximum"},
        {"\"18446744073709551615\"", "18446744073709551615 is more than the 1000G maximum"},
        {"\"99999999999G\"", "'99999999999G' is too large"},
        {"\"100Mb\"", "'100Mb' has an unknown rate suffix (use K, M or G)"},
        {"\"100m\"", "'100m' has an unknown rate suffix"},
        {"\"1.5G\"", "'1.5G' has an unknown rate suffix"},
        {"\"M\"", "'M' is not a rate (a number with an optional K, M or G suffix)"},
        {"\"\"", "must not be empty (e.g. \"100M\")"},
        {"-5", "must not be negative"},
        {"true", "must be a rate like \"100M\" (bits per second) or 0, not a boolean"},
    };
    for (const auto& [value, text] : bad)
        EXPECT_TRUE(port_error(*with_port({{"rate_limit", value}}), 10, "rate_limit", text)) << value;
}

TEST(ConfigPort, Burst) {
    const std::pair<const char*, uint64_t> good[] = {
        {"\"2K\"", 2048}, {"\"16M\"", 16u << 20}, {"1518000", 1518000}, {"2048", 2048}, {"\"1M\"", 1u << 20}};
    for (const auto& [value, bytes] : good) {
        auto cfg = with_port({{"rate_limit", "\"10M\""}, {"burst", value}});
        ASSERT_EQ(cfg->error_count + cfg->warning_count, 0u) << value << "\n" << dump(*cfg);
        EXPECT_EQ(cfg->guests[0].ports[0].burst_bytes, bytes) << value;
    }
    const std::pair<const char*, const char*> bad[] = {
        {"\"1K\"", "1K is less than the 2K minimum (one full frame)"},
        {"2047", "2047 is less than the 2K minimum"},
        {"\"17M\"", "17M is more than the 16M maximum"},
        {"\"1G\"", "1G is more than the 16M maximum"},
        {"\"64k\"", "'64k' has an unknown size suffix (use K, M or G)"},
        {"\"\"", "must not be empty (e.g. \"64K\")"},
        {"-1", "must not be negative"},
        {"false", "must be a size like \"64K\", not a boolean"},
    };
    for (const auto& [value, text] : bad)
        EXPECT_TRUE(port_error(*with_port({{"rate_limit", "\"10M\""}, {"burst", value}}), 11, "burst", text)) << value;

    // Without a rate it does nothing: a warning, and the port works as written.
    auto alone = with_port({{"burst", "\"128K\""}});
    EXPECT_EQ(alone->error_count, 0u);
    EXPECT_TRUE(has_diag(*alone, Severity::warning, 10, 0, "burst", "has no effect without a rate_limit"));
    EXPECT_TRUE(alone->guests[0].valid);
    auto unlimited = with_port({{"rate_limit", "0"}, {"burst", "\"128K\""}});
    EXPECT_TRUE(
        has_diag(*unlimited, Severity::warning, 11, 0, "burst", "has no effect with rate_limit = 0 (unlimited)"));
    EXPECT_EQ(fmt_diag(*unlimited, 0),
              "hv.toml:11: warning: guest 'web': port 'eth0': field 'burst': has no effect with rate_limit = 0 "
              "(unlimited)");
}

TEST(ConfigPort, MaxMacs) {
    const std::pair<const char*, uint32_t> good[] = {{"0", 0}, {"1", 1}, {"64", 64}, {"4096", 4096}, {"65536", 65536}};
    for (const auto& [value, n] : good) {
        auto cfg = with_port({{"anti_spoof", "false"}, {"max_macs", value}});
        ASSERT_EQ(cfg->error_count + cfg->warning_count, 0u) << value << "\n" << dump(*cfg);
        EXPECT_EQ(cfg->guests[0].ports[0].max_macs, n) << value;
    }
    const std::pair<const char*, const char*> bad[] = {
        {"65537", "65537 is out of range (0 to 65536)"},
        {"-1", "-1 is out of range (0 to 65536)"},
        {"\"64\"", "must be an integer, not a string"},
        {"true", "must be an integer, not a boolean"},
    };
    for (const auto& [value, text] : bad) {
        auto cfg = with_port({{"anti_spoof", "false"}, {"max_macs", value}});
        EXPECT_TRUE(port_error(*cfg, 11, "max_macs", text)) << value;
    }
    EXPECT_EQ(fmt_diag(*with_port({{"anti_spoof", "false"}, {"max_macs", "100000"}}), 0),
              "hv.toml:11: guest 'web': port 'eth0': field 'max_macs': 100000 is out of range (0 to 65536)");
    // With anti-spoofing (the default) the port learns nothing: a warning, and the port works.
    auto spoof_safe = with_port({{"max_macs", "8"}});
    EXPECT_EQ(spoof_safe->error_count, 0u);
    EXPECT_TRUE(has_diag(*spoof_safe, Severity::warning, 10, 0, "max_macs", "has no effect with anti_spoof = true"));
    EXPECT_TRUE(spoof_safe->guests[0].valid);
    EXPECT_EQ(spoof_safe->guests[0].ports[0].max_macs, 8u);
    // A bad anti_spoof is its own error; no warning is guessed on top of it.
    auto bad_spoof = with_port({{"anti_spoof", "1"}, {"max_macs", "8"}});
    EXPECT_TRUE(port_error(*bad_spoof, 10, "anti_spoof", "must be true or false"));
    EXPECT_EQ(bad_spoof->warning_count, 0u);
}

TEST(ConfigPort, KeysAndSections) {
    auto unknown = with_port({{"speed", "1"}});
    EXPECT_TRUE(port_error(*unknown, 10, "speed",
                           "unknown key (known: name,mac,vlan_mode,vlan,allowed_vlans,native_vlan,protected,anti_spoof,"
                           "rate_limit,burst,mirror,mirror_direction,max_macs)"));
    auto guest_key = with_port({{"memory", "\"64M\""}});
    EXPECT_TRUE(port_error(*guest_key, 10, "memory",
                           "unknown key in a port (guest keys go before the guest's first [[guest.port]])"));
    auto port_key_in_guest = with_key("mac", "\"02:00:00:00:00:01\"");
    EXPECT_TRUE(only_error(*port_key_in_guest, 8, 0, "mac",
                           "unknown key in a guest (port keys go after a [[guest.port]] header)"));
    auto top = parse_text("version = 1\nvlan = 10\nsnaplen = 64\nfdb_size = 256\n");
    EXPECT_TRUE(has_error(*top, 2, -1, "vlan", "port keys go after a [[guest.port]] header"));
    EXPECT_TRUE(has_error(*top, 3, -1, "snaplen", "mirror keys go after a [[mirror]] header"));
    EXPECT_TRUE(has_error(*top, 4, -1, "fdb_size", "switch keys go after a [switch] header"));
    auto dup = with_port({{"vlan", "10"}, {"vlan", "20"}});
    EXPECT_TRUE(port_error(*dup, 11, "vlan", "duplicate key (first set on line 10)"));
    EXPECT_EQ(dup->guests[0].ports[0].vlan, 10u);
    auto sub = parse_text(one_port() + "[guest.port.x]\n");
    EXPECT_TRUE(only_error(*sub, 10, 0, "", "unknown table [guest.port.x]"));
    EXPECT_EQ(sub->diags[0].port, -1);  // about the guest, not the port before it
}

TEST(ConfigPort, Limits) {
    std::string text = one_guest();
    for (int i = 1; i <= 5; ++i) text += "[[guest.port]]\nmac = \"02:00:00:00:00:0" + std::to_string(i) + "\"\n";
    text += "vlan = 7\n";  // inside the refused fifth port: not read
    text +=
        "[[guest]]\nname = \"db\"\nimage = \"db\"\ncpus = [3]\nmemory = \"2M\"\n[[guest.port]]\nmac = "
        "\"02:00:00:00:01:00\"\n";
    auto cfg = parse_text(text);
    // Ports start on lines 8, 10, 12, 14, 16.
    EXPECT_TRUE(only_error(*cfg, 16, 0, "", "too many ports: at most 4 per guest"));
    EXPECT_EQ(cfg->diags[0].port, -1);
    EXPECT_EQ(cfg->guests[0].port_count, kMaxPortsPerGuest);
    EXPECT_FALSE(cfg->guests[0].valid);
    EXPECT_TRUE(cfg->guests[1].valid);
    EXPECT_EQ(cfg->guests[1].ports[0].index, 4u);

    // 32 ports in all: 8 guests of 4 ports, then a guest with 2: its first port is the 33rd, refused.
    std::string all = "version = 1\n";
    uint32_t line = 1, refused_line = 0;
    for (int gi = 0; gi < 9; ++gi) {
        all += "[[guest]]\nname = \"g" + std::to_string(gi) + "\"\nimage = \"hello\"\ncpus = [" +
               std::to_string(gi + 1) + "]\nmemory = \"2M\"\n";
        line += 5;
        for (int k = 0; k < (gi < 8 ? 4 : 2); ++k) {
            char mac[32];
            std::snprintf(mac, sizeof mac, "02:00:00:00:%02x:%02x", gi, k);
            all += "[[guest.port]]\nmac = \"" + std::string(mac) + "\"\n";
            if (gi * 4 + k == static_cast<int>(kMaxPorts)) refused_line = line + 1;
            line += 2;
        }
    }
    auto big = parse_text(all);
    EXPECT_EQ(big->error_count, 2u) << dump(*big);  // both ports of the ninth guest
    EXPECT_TRUE(has_error(*big, refused_line, 8, "", "too many ports: at most 32 in all guests together"));
    EXPECT_EQ(big->guests[8].port_count, 0u);
    EXPECT_EQ(big->valid_guest_count(), 8u);
    EXPECT_EQ(big->guests[7].ports[3].index, kMaxPorts - 1);
}

// ------------------------------------------------------------------ mirrors

TEST(ConfigMirror, ValuesAndDefaults) {
    auto cfg =
        parse_text(one_port({{"mirror", "\"cap\""}}) +
                   "[[mirror]]\nname = \"cap\"\n[[mirror]]\nname = \"full\"\nsnaplen = 64\nbuffer = \"16M\"\n" +
                   "[[guest.port]]\nmac = \"02:00:00:00:00:02\"\nmirror = [\"full\"]\nmirror_direction = \"tx\"\n");
    // The second port follows a [[mirror]]: it has no guest.
    EXPECT_TRUE(has_error(*cfg, 17, -1, "", "[[guest.port]] must follow a [[guest]] header"));
    ASSERT_EQ(cfg->mirror_count, 2u);
    EXPECT_STREQ(cfg->mirrors[0].name, "cap");
    EXPECT_EQ(cfg->mirrors[0].snaplen, 65535u);
    EXPECT_EQ(cfg->mirrors[0].buffer_bytes, 256u << 10);
    EXPECT_EQ(cfg->mirrors[0].line, 11u);
    EXPECT_TRUE(cfg->mirrors[0].valid);
    EXPECT_EQ(cfg->mirrors[1].snaplen, 64u);
    EXPECT_EQ(cfg->mirrors[1].buffer_bytes, 16u << 20);
    EXPECT_EQ(cfg->mirrors[1].line_of(hv::config::MirrorField::buffer), 16u);
    // "full" is named by no port (the one that named it was not read).
    EXPECT_TRUE(
        has_diag(*cfg, Severity::warning, 13, -1, "", "no port uses it (add mirror = \"full\" to a [[guest.port]])"));
    EXPECT_EQ(cfg->guests[0].ports[0].mirror_mask, 1u);
    EXPECT_TRUE(cfg->guests[0].valid);
}

TEST(ConfigMirror, FieldErrorsDropTheMirrorOnly) {
    const std::pair<const char*, const char*> bad[] = {
        {"snaplen = 63", "63 is out of range (64 to 65535)"},
        {"snaplen = 65536", "65536 is out of range (64 to 65535)"},
        {"snaplen = \"64\"", "must be an integer, not a string"},
        {"buffer = \"2K\"", "2K is less than the 4K minimum"},
        {"buffer = \"32M\"", "32M is more than the 16M maximum"},
        {"buffer = \"6K\"", "6K is not a multiple of 4K"},
        {"buffer = 1000", "1000 is less than the 4K minimum"},
        {"buffer = \"4KB\"", "'4KB' has an unknown size suffix"},
        {"buffer = true", "must be a size like \"256K\", not a boolean"},
        {"colour = 1", "unknown key (known: name,snaplen,buffer)"},
        {"snaplen = 1.5", "floating-point values are not supported"},
    };
    for (const auto& [line, text] : bad) {
        // Lines: 8 port, 9 mac, 10 mirror, 11 [[mirror]], 12 name, 13 the bad key.
        auto cfg = parse_text(one_port({{"mirror", "\"cap\""}}) + "[[mirror]]\nname = \"cap\"\n" + line + "\n");
        std::string key = std::string(line).substr(0, std::string(line).find(' '));
        EXPECT_TRUE(has_error(*cfg, 13, -1, key.c_str(), text)) << line;
        EXPECT_EQ(cfg->diags[0].mirror, 0) << line;
        EXPECT_FALSE(cfg->mirrors[0].valid) << line;
        // The port that names it then fails, and with it its guest.
        EXPECT_TRUE(has_error(*cfg, 10, 0, "mirror", "unknown mirror 'cap' (the [[mirror]] on line 11 has errors)"))
            << line;
        EXPECT_EQ(cfg->error_count, 2u) << line << "\n" << dump(*cfg);
        EXPECT_FALSE(cfg->guests[0].valid) << line;
    }
    // A mirror's errors alone reject no guest.
    auto lone = parse_text(one_guest() + "[[mirror]]\nname = \"cap\"\nsnaplen = 1\n");
    EXPECT_TRUE(only_error(*lone, 10, -1, "snaplen", "1 is out of range (64 to 65535)"));
    EXPECT_TRUE(lone->guests[0].valid);
    EXPECT_EQ(fmt_diag(*lone, 0), "hv.toml:10: mirror 'cap': field 'snaplen': 1 is out of range (64 to 65535)");
}

TEST(ConfigMirror, NamesAndLimits) {
    auto missing = parse_text(one_guest() + "[[mirror]]\nsnaplen = 100\n");
    EXPECT_TRUE(only_error(*missing, 8, -1, "name", "required key is missing"));
    EXPECT_EQ(fmt_diag(*missing, 0), "hv.toml:8: mirror #1: field 'name': required key is missing");
    EXPECT_FALSE(missing->mirrors[0].valid);
    EXPECT_TRUE(missing->guests[0].valid);

    auto bad_name = parse_text(one_guest() + "[[mirror]]\nname = \"Cap\"\n");
    EXPECT_TRUE(only_error(*bad_name, 9, -1, "name", "'Cap' has a character outside a-z 0-9 _ -"));

    // The second of two mirrors with one name is dropped; ports get the first.
    auto dup =
        parse_text(one_port({{"mirror", "\"cap\""}}) + "[[mirror]]\nname = \"cap\"\n[[mirror]]\nname = \"cap\"\n");
    EXPECT_TRUE(only_error(*dup, 14, -1, "name", "'cap' is already the name of the mirror on line 11"));
    EXPECT_EQ(dup->diags[0].mirror, 1);
    EXPECT_TRUE(dup->mirrors[0].valid);
    EXPECT_FALSE(dup->mirrors[1].valid);
    EXPECT_EQ(dup->guests[0].ports[0].mirror_mask, 1u);
    EXPECT_TRUE(dup->guests[0].valid);

    std::string five = one_port({{"mirror", "[\"m0\", \"m1\", \"m2\", \"m3\"]"}});
    for (int i = 0; i < 5; ++i) five += "[[mirror]]\nname = \"m" + std::to_string(i) + "\"\n";
    auto many = parse_text(five);
    // Mirrors on lines 11, 13, 15, 17, 19: the fifth is ignored, its name line skipped.
    EXPECT_TRUE(only_error(*many, 19, -1, "", "too many mirrors: this one is ignored (at most 4)"));
    EXPECT_EQ(many->mirror_count, 4u);
    EXPECT_EQ(many->guests[0].ports[0].mirror_mask, 0xfu);
    EXPECT_TRUE(many->guests[0].valid);

    auto single = parse_text(one_guest() + "[mirror]\nname = \"cap\"\n");
    EXPECT_TRUE(only_error(*single, 8, -1, "", "[mirror] is a single table; declare each mirror with [[mirror]]"));
    EXPECT_EQ(single->mirror_count, 0u);
}

TEST(ConfigMirror, PortReferences) {
    // A port may name a mirror defined later in the file.
    auto later = parse_text(one_port({{"mirror", "[\"b\", \"a\"]"}, {"mirror_direction", "\"tx\""}}) +
                            "[[mirror]]\nname = \"a\"\n[[mirror]]\nname = \"b\"\n");
    ASSERT_EQ(later->diag_count, 0u) << dump(*later);
    EXPECT_EQ(later->guests[0].ports[0].mirror_mask, 0x3u);
    EXPECT_EQ(later->guests[0].ports[0].mirror_direction, MirrorDirection::tx);

    auto unknown = parse_text(one_port({{"mirror", "[\"cap\", \"nope\"]"}}) + "[[mirror]]\nname = \"cap\"\n");
    EXPECT_TRUE(port_error(*unknown, 10, "mirror", "unknown mirror 'nope' (no [[mirror]] has that name)"));
    EXPECT_EQ(fmt_diag(*unknown, 0),
              "hv.toml:10: guest 'web': port 'eth0': field 'mirror': unknown mirror 'nope' (no [[mirror]] has that "
              "name)");

    const std::pair<const char*, const char*> bad[] = {
        {"[]", "must name at least one mirror"},
        {"[\"a\", \"b\", \"c\", \"d\", \"e\"]", "names 5 mirrors, at most 4"},
        {"[\"a\", \"a\"]", "mirror 'a' is listed twice"},
        {"[\"a\", 1]", "must hold mirror names (strings), not an integer"},
        {"\"A\"", "'A' has a character outside a-z 0-9 _ -"},
        {"[\"\"]", "must not be empty"},
        {"1", "must be a mirror name or an array of names, not an integer"},
        {"true", "must be a mirror name or an array of names, not a boolean"},
    };
    for (const auto& [value, text] : bad) {
        auto cfg = parse_text(one_port({{"mirror", value}}) + "[[mirror]]\nname = \"a\"\n");
        EXPECT_TRUE(has_error(*cfg, 10, 0, "mirror", text)) << value;
        EXPECT_EQ(cfg->error_count, 1u) << value << "\n" << dump(*cfg);
        EXPECT_FALSE(cfg->guests[0].valid) << value;
    }

    const std::pair<const char*, const char*> directions[] = {
        {"\"in\"", "unknown direction 'in' (both, rx or tx)"},
        {"2", "must be a string (both, rx or tx), not an integer"},
    };
    for (const auto& [value, text] : directions) {
        auto cfg =
            parse_text(one_port({{"mirror", "\"a\""}, {"mirror_direction", value}}) + "[[mirror]]\nname = \"a\"\n");
        EXPECT_TRUE(port_error(*cfg, 11, "mirror_direction", text)) << value;
    }
    auto no_mirror = with_port({{"mirror_direction", "\"rx\""}});
    EXPECT_EQ(no_mirror->error_count, 0u);
    EXPECT_TRUE(has_diag(*no_mirror, Severity::warning, 10, 0, "mirror_direction", "has no effect without a mirror"));

    // Unused: a warning on the mirror, nothing else.
    auto unused = parse_text(one_port() + "[[mirror]]\nname = \"idle\"\n");
    EXPECT_EQ(unused->error_count, 0u);
    EXPECT_TRUE(has_diag(*unused, Severity::warning, 10, -1, "", "no port uses it"));
    EXPECT_EQ(fmt_diag(*unused, 0),
              "hv.toml:10: warning: mirror 'idle': no port uses it (add mirror = \"idle\" to a [[guest.port]])");
    // Named by a port of a guest that is rejected for something else: still used.
    auto rejected = parse_text(one_port({{"mirror", "\"idle\""}, {"vlan", "0"}}) + "[[mirror]]\nname = \"idle\"\n");
    EXPECT_TRUE(only_error(*rejected, 11, 0, "vlan", "0 is out of range"));
    EXPECT_EQ(rejected->warning_count, 0u);
}

// ------------------------------------------------------------------ [switch]

TEST(ConfigSwitch, ValuesAndDefaults) {
    auto cfg = parse_text("version = 1\n[switch]\nmac_ageing_s = 10\nfdb_size = 65536\n" + one_guest().substr(12));
    ASSERT_EQ(cfg->diag_count, 0u) << dump(*cfg);
    EXPECT_EQ(cfg->switch_config.mac_ageing_s, 10u);
    EXPECT_EQ(cfg->switch_config.fdb_size, 65536u);
    EXPECT_EQ(cfg->switch_config.line, 2u);
    EXPECT_EQ(cfg->switch_config.line_of(hv::config::SwitchField::fdb_size), 4u);
    auto high = parse_text("version = 1\n[switch]\nmac_ageing_s = 1000000\nfdb_size = 256\n");
    EXPECT_EQ(high->error_count, 0u) << dump(*high);
    EXPECT_EQ(high->switch_config.mac_ageing_s, 1000000u);
    EXPECT_EQ(high->switch_config.fdb_size, 256u);
    EXPECT_STREQ(hv::config::switch_field_name(hv::config::SwitchField::mac_ageing_s), "mac_ageing_s");
    EXPECT_STREQ(hv::config::mirror_field_name(hv::config::MirrorField::snaplen), "snaplen");
}

TEST(ConfigSwitch, BadValuesKeepTheDefault) {
    const std::pair<const char*, const char*> bad[] = {
        {"mac_ageing_s = 9", "9 is out of range (10 to 1000000)"},
        {"mac_ageing_s = 1000001", "1000001 is out of range (10 to 1000000)"},
        {"mac_ageing_s = \"300\"", "must be an integer, not a string"},
        {"mac_ageing_s = -300", "-300 is out of range"},
        {"fdb_size = 128", "128 is out of range (256 to 65536)"},
        {"fdb_size = 131072", "131072 is out of range (256 to 65536)"},
        {"fdb_size = 1000", "1000 is not a power of two (256, 512, ... 65536)"},
        {"fdb_size = 4097", "4097 is not a power of two"},
        {"fdb_size = 4096 4096", "unexpected '4' after the value"},
        {"ports = 8", "unknown key (known: mac_ageing_s,fdb_size)"},
    };
    for (const auto& [line, text] : bad) {
        // The table after the guest: lines 8 [switch], 9 the key.
        auto cfg = parse_text(one_guest() + "[switch]\n" + line + "\n");
        std::string key = std::string(line).substr(0, std::string(line).find(' '));
        EXPECT_TRUE(only_error(*cfg, 9, -1, key.c_str(), text)) << line;
        EXPECT_EQ(cfg->switch_config.mac_ageing_s, 300u) << line;
        EXPECT_EQ(cfg->switch_config.fdb_size, 4096u) << line;
        EXPECT_TRUE(cfg->guests[0].valid) << line;
    }
    auto twice = parse_text("version = 1\n[switch]\nfdb_size = 512\n[switch]\nfdb_size = 1024\n");
    EXPECT_TRUE(only_error(*twice, 4, -1, "", "duplicate table [switch] (first on line 2); its keys are ignored"));
    EXPECT_EQ(twice->switch_config.fdb_size, 512u);
    auto dup_key = parse_text("version = 1\n[switch]\nfdb_size = 512\nfdb_size = 1024\n");
    EXPECT_TRUE(only_error(*dup_key, 4, -1, "fdb_size", "duplicate key (first set on line 3)"));
    auto array = parse_text("version = 1\n[[switch]]\n");
    EXPECT_TRUE(only_error(*array, 2, -1, "", "[[switch]] is an array of tables; the switch has one table, [switch]"));
    // After [switch] a guest starts normally.
    auto then_guest = parse_text("version = 1\n[switch]\n" + one_guest().substr(12));
    EXPECT_EQ(then_guest->error_count, 0u) << dump(*then_guest);
    EXPECT_EQ(then_guest->valid_guest_count(), 1u);
}

// ------------------------------------------------------------------ validate() with ports

TEST(ConfigValidate, PciWindowLimitsMemoryOfGuestsWithPorts) {
    MachineFacts big = facts(4, 16ull << 30);
    auto at_limit = parse_text(one_guest({{"memory", "\"3584M\""}}) + "[[guest.port]]\nmac = \"02:00:00:00:00:01\"\n");
    hv::config::validate(*at_limit, big);
    EXPECT_EQ(at_limit->error_count, 0u) << dump(*at_limit);

    auto over = parse_text(one_guest({{"memory", "\"3586M\""}}) + "[[guest.port]]\nmac = \"02:00:00:00:00:01\"\n" +
                           "[[guest]]\nname = \"db\"\nimage = \"db\"\ncpus = [3]\nmemory = \"4G\"\n");
    ASSERT_EQ(over->error_count, 0u) << dump(*over);
    hv::config::validate(*over, big);
    EXPECT_TRUE(only_error(*over, 7, 0, "memory",
                           "3586M is more than 3584M: a guest with ports keeps 0xe0000000-0xf0000000 free for its PCI "
                           "devices"));
    EXPECT_FALSE(over->guests[0].valid);
    EXPECT_TRUE(over->guests[1].valid);  // 4G without ports is fine, and the rejected guest claimed no memory
}

// ------------------------------------------------------------------ formatting helpers

TEST(ConfigFormat, SizesRatesMacsAndVlans) {
    char buf[64];
    EXPECT_EQ(hv::config::format_size(64ull << 20, buf, sizeof buf), 3u);
    EXPECT_STREQ(buf, "64M");
    hv::config::format_size(1536ull << 10, buf, sizeof buf);
    EXPECT_STREQ(buf, "1536K");
    hv::config::format_size(0, buf, sizeof buf);
    EXPECT_STREQ(buf, "0");
    hv::config::format_rate(100'000'000, buf, sizeof buf);
    EXPECT_STREQ(buf, "100M");
    hv::config::format_rate(1'500'000'000, buf, sizeof buf);
    EXPECT_STREQ(buf, "1500M");
    hv::config::format_rate(64'001, buf, sizeof buf);
    EXPECT_STREQ(buf, "64001");

    const uint8_t mac[6] = {0x02, 0xAB, 0, 0, 0, 0xff};
    EXPECT_EQ(hv::config::format_mac(mac, buf, sizeof buf), 17u);
    EXPECT_STREQ(buf, "02:ab:00:00:00:ff");
    char small[6];
    EXPECT_EQ(hv::config::format_mac(mac, small, sizeof small), 5u);
    EXPECT_STREQ(small, "02:ab");

    PortConfig p{};
    EXPECT_EQ(vlans_of(p), "none");
    for (uint32_t v = 2; v <= 40; v += 2) p.allowed_vlans[v / 64] |= 1ull << (v % 64);
    EXPECT_EQ(vlans_of(p), "2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40");
    // Cut with "..." when more follows and it does not fit; never past cap.
    char cut[12];
    std::memset(cut, 'Z', sizeof cut);
    size_t n = hv::config::format_vlans(p, cut, 10);
    EXPECT_STREQ(cut, "2,4,6...");  // "2,4,6,8..." would need 11 bytes
    EXPECT_EQ(n, 8u);
    EXPECT_EQ(cut[10], 'Z');
    char exact[8];
    PortConfig one{};
    one.allowed_vlans[4094 / 64] |= 1ull << (4094 % 64);
    hv::config::format_vlans(one, exact, 5);
    EXPECT_STREQ(exact, "4094");
    EXPECT_EQ(hv::config::format_vlans(one, exact, 0), 0u);
}
