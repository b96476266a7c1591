// libFuzzer target for the appliance configuration (kernel/config): parse(),
// validate() against a fixed machine and format_diagnostic() on every diagnostic,
// with ASan and UBSan. Besides memory errors it traps on broken invariants: the
// parser must never report more than it holds or start a guest it rejected, and
// what a valid guest's ports say must be what the switch can rely on (unicast
// unique MACs, VLAN maps within 1-4094, mirror bits of valid mirrors only).
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

void check_port(const config::Config& cfg, const config::PortConfig& p) {
    check_string(p.name, sizeof p.name);
    check(p.name[0] != '\0');
    check((p.mac[0] & 1) == 0);  // unicast, which also excludes broadcast
    bool zero = true;
    for (uint8_t b : p.mac) zero &= b == 0;
    check(!zero);
    check(!p.carries(0) && !p.carries(4095));
    size_t vlans = 0;
    for (uint64_t w : p.allowed_vlans) vlans += static_cast<size_t>(__builtin_popcountll(w));
    if (p.vlan_mode == config::VlanMode::access) {
        check(p.vlan >= config::kMinVlan && p.vlan <= config::kMaxVlan);
        check(vlans == 1 && p.carries(p.vlan) && p.native_vlan == 0);
    } else {
        check(p.vlan_mode == config::VlanMode::trunk && p.vlan == 0 && vlans >= 1);
        check(p.native_vlan == 0 || p.carries(p.native_vlan));
    }
    check(p.rate_bits_per_sec == 0 ||
          (p.rate_bits_per_sec >= config::kMinRateBitsPerSec && p.rate_bits_per_sec <= config::kMaxRateBitsPerSec));
    check(p.burst_bytes >= config::kMinBurstBytes && p.burst_bytes <= config::kMaxBurstBytes);
    for (size_t m = 0; m < 8; ++m)
        if (p.mirror_mask & (1u << m)) check(m < cfg.mirror_count && cfg.mirrors[m].valid);
    check(p.index < config::kMaxPorts);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Static: 52 KiB that the hypervisor also keeps out of its stacks.
    static config::Config cfg;
    config::parse(reinterpret_cast<const char*>(data), size, cfg);

    check(cfg.guest_count <= config::kMaxGuests);
    check(cfg.diag_count <= config::kMaxDiagnostics);
    check(cfg.diag_count + cfg.diags_dropped == cfg.error_count + cfg.warning_count);
    size_t ports = 0;
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
            check_string(g.args, sizeof g.args);
            for (size_t k = 0; g.args[k]; ++k) check(g.args[k] >= 0x20 && g.args[k] <= 0x7e);
            for (size_t k = 0; k < g.port_count; ++k) check_port(cfg, g.ports[k]);
        }
        check(g.port_count <= config::kMaxPortsPerGuest);
        ports += g.port_count;
    }
    check(ports <= config::kMaxPorts);
    check(cfg.mirror_count <= config::kMaxMirrors);
    for (size_t m = 0; m < cfg.mirror_count; ++m) {
        const config::MirrorConfig& mc = cfg.mirrors[m];
        check_string(mc.name, sizeof mc.name);
        if (!mc.valid) continue;
        check(mc.name[0] != '\0');
        check(mc.snaplen >= config::kMinSnaplen && mc.snaplen <= config::kMaxSnaplen);
        check(mc.buffer_bytes >= config::kMinMirrorBuffer && mc.buffer_bytes <= config::kMaxMirrorBuffer);
        check(mc.buffer_bytes % config::kMirrorBufferGranule == 0);
        for (size_t j = 0; j < m; ++j) check(!cfg.mirrors[j].valid || strcmp(cfg.mirrors[j].name, mc.name) != 0);
    }
    const config::SwitchConfig& sw = cfg.switch_config;
    check(sw.mac_ageing_s >= config::kMinMacAgeingS && sw.mac_ageing_s <= config::kMaxMacAgeingS);
    check(sw.fdb_size >= config::kMinFdbSize && sw.fdb_size <= config::kMaxFdbSize);
    check((sw.fdb_size & (sw.fdb_size - 1)) == 0);
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
        if (g.port_count != 0) check(g.memory_bytes <= config::kPciWindowStart);
        // MACs are unique among the ports of all guests that start.
        for (size_t k = 0; k < g.port_count; ++k)
            for (size_t j = 0; j <= i; ++j) {
                const config::GuestConfig& o = cfg.guests[j];
                if (!o.valid) continue;
                for (size_t m = 0; m < (j == i ? k : o.port_count); ++m)
                    check(memcmp(o.ports[m].mac, g.ports[k].mac, sizeof g.ports[k].mac) != 0);
            }
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
        check(d.port < 0 || (d.guest >= 0 && static_cast<size_t>(d.port) < config::kMaxPortsPerGuest));
        check(d.mirror < 0 || static_cast<size_t>(d.mirror) < cfg.mirror_count);
        size_t n = config::format_diagnostic(d, cfg, "fuzz.toml", line, sizeof line);
        check(n < sizeof line && line[n] == '\0' && strlen(line) == n);
        check(memchr(line, '\n', n) == nullptr);  // one diagnostic, one console line
        n = config::format_diagnostic(d, cfg, nullptr, tiny, sizeof tiny);
        check(n < sizeof tiny && tiny[n] == '\0');
    }
    return 0;
}
