// libFuzzer target for the appliance configuration (kernel/config): parse(),
// validate() against a fixed machine and format_diagnostic() on every diagnostic,
// with ASan and UBSan. Besides memory errors it traps on broken invariants: the
// parser must never report more than it holds or start a guest it rejected.
//
// Built and run by tests/fuzz/CMakeLists.txt (ctest fuzz.config) when clang++
// with -fsanitize=fuzzer is available.

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/config/config.hpp"

namespace {

namespace config = hv::config;

const char* const kModules[] = {"hello", "db", "web", nullptr};
const bool kOnline[8] = {true, true, true, true, true, false, true, true};

void check(bool ok) {
    if (!ok) __builtin_trap();
}

void check_string(const char* s, size_t cap) {
    check(memchr(s, '\0', cap) != nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Static: 9 KiB that the hypervisor also keeps out of its stacks.
    static config::Config cfg;
    config::parse(reinterpret_cast<const char*>(data), size, cfg);

    check(cfg.guest_count <= config::kMaxGuests);
    check(cfg.diag_count <= config::kMaxDiagnostics);
    check(cfg.diag_count + cfg.diags_dropped == cfg.error_count + cfg.warning_count);
    for (size_t i = 0; i < cfg.guest_count; ++i) {
        const config::GuestConfig& g = cfg.guests[i];
        check_string(g.name, sizeof g.name);
        check_string(g.image, sizeof g.image);
        check(g.cpu_count <= config::kMaxGuestCpus);
        if (g.valid) {
            check(g.name[0] != '\0' && g.image[0] != '\0' && g.cpu_count > 0);
            check(g.memory_bytes >= config::kMemoryGranule && g.memory_bytes <= config::kMaxGuestMemory);
            check(g.memory_bytes % config::kMemoryGranule == 0);
            check(g.restart_delay_ms <= g.restart_delay_max_ms);
            check(g.restart_limit != 0 || g.restart == config::RestartPolicy::always);
        }
    }
    if (cfg.fatal) check(cfg.valid_guest_count() == 0);
    size_t errors_before = cfg.error_count;

    config::MachineFacts facts{8, 512ull << 20, kModules, 4};
    facts.cpu_online = kOnline;
    config::validate(cfg, facts);
    check(cfg.error_count >= errors_before);

    // Valid guests after validate() never share a CPU, never use CPU 0 or an
    // offline one, and fit in the memory together.
    uint64_t used = 0;
    for (size_t i = 0; i < cfg.guest_count; ++i) {
        const config::GuestConfig& g = cfg.guests[i];
        if (!g.valid || cfg.fatal) continue;
        used += g.memory_bytes;
        for (size_t k = 0; k < g.cpu_count; ++k) {
            check(g.cpus[k] != 0 && g.cpus[k] < 8 && kOnline[g.cpus[k]]);
            for (size_t j = 0; j < i; ++j) {
                const config::GuestConfig& o = cfg.guests[j];
                if (!o.valid) continue;
                for (size_t m = 0; m < o.cpu_count; ++m) check(o.cpus[m] != g.cpus[k]);
            }
        }
    }
    check(used <= facts.free_memory_bytes);

    char line[512];
    char tiny[7];
    for (size_t i = 0; i < cfg.diag_count; ++i) {
        const config::Diagnostic& d = cfg.diags[i];
        check_string(d.field, sizeof d.field);
        check_string(d.message, sizeof d.message);
        size_t n = config::format_diagnostic(d, cfg, "fuzz.toml", line, sizeof line);
        check(n < sizeof line && line[n] == '\0' && strlen(line) == n);
        check(memchr(line, '\n', n) == nullptr);  // one diagnostic, one console line
        n = config::format_diagnostic(d, cfg, nullptr, tiny, sizeof tiny);
        check(n < sizeof tiny && tiny[n] == '\0');
    }
    return 0;
}
