// hv-check: checks an appliance configuration on the host with exactly the code
// the hypervisor runs at boot (kernel/config), against a described machine.
//
//   hv-check [--cpus N] [--memory SIZE] [--module NAME]... CONFIG
//
// Prints each diagnostic; for a file without errors, the switch settings, the
// mirror sessions and every port with its effective values; then a summary.
//
// Exit status: 0 no errors, 1 errors, 2 usage error or unreadable file.

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "kernel/config/config.hpp"

namespace {

namespace config = hv::config;

constexpr int kExitOk = 0;
constexpr int kExitErrors = 1;
constexpr int kExitUsage = 2;

// Enough to see that a file is far past the 64 KiB limit, without trying to read
// /dev/zero or a disk image to the end.
constexpr size_t kReadCap = 16u << 20;

void usage(FILE* out) {
    fprintf(out,
            "usage: hv-check [--cpus N] [--memory SIZE] [--module NAME]... CONFIG\n"
            "\n"
            "Checks an hv appliance configuration (docs/config.md) with the hypervisor's own\n"
            "parser, against a machine with N CPUs (index 0 is the hypervisor's), SIZE of\n"
            "free memory and the given boot modules.\n"
            "\n"
            "  --cpus N        CPUs of the machine, as counted by hv.cpu index= (default 4)\n"
            "  --memory SIZE   free memory for guests: bytes or a K/M/G suffix (default 1G)\n"
            "  --module NAME   a boot module name (GRUB: module2 /boot/x.elf NAME); repeat\n"
            "                  for each. Without any, every image name is accepted.\n"
            "  CONFIG          the file, or - for standard input\n"
            "\n"
            "Exit status: 0 no errors, 1 errors, 2 usage error or unreadable file.\n");
}

[[noreturn]] __attribute__((format(printf, 1, 2))) void usage_error(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hv-check: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    exit(kExitUsage);
}

bool parse_u64(const char* s, uint64_t& out, bool size_suffix) {
    if (!*s) return false;
    uint64_t v = 0;
    const char* p = s;
    for (; *p >= '0' && *p <= '9'; ++p)
        if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, static_cast<uint64_t>(*p - '0'), &v))
            return false;
    if (p == s) return false;
    unsigned shift = 0;
    if (size_suffix && *p) {
        if (*p == 'K')
            shift = 10;
        else if (*p == 'M')
            shift = 20;
        else if (*p == 'G')
            shift = 30;
        else
            return false;
        ++p;
    }
    if (*p) return false;
    if (shift && v > (UINT64_MAX >> shift)) return false;
    out = v << shift;
    return true;
}

// What a valid file sets up besides the guests' CPUs and memory: the switch,
// the mirror sessions and every port, with the keys of the file as names, so
// the defaults a file relies on are visible before it is booted.
void print_network(const char* label, const config::Config& cfg) {
    char a[64], b[64];
    const config::SwitchConfig& sw = cfg.switch_config;
    printf("%s: switch mac_ageing_s=%u fdb_size=%u\n", label, sw.mac_ageing_s, sw.fdb_size);
    for (size_t m = 0; m < cfg.mirror_count; ++m) {
        const config::MirrorConfig& mc = cfg.mirrors[m];
        if (!mc.valid) continue;
        config::format_size(mc.buffer_bytes, a, sizeof a);
        printf("%s: mirror %s snaplen=%u buffer=%s line=%u\n", label, mc.name, mc.snaplen, a, mc.line);
    }
    for (size_t i = 0; i < cfg.guest_count; ++i) {
        const config::GuestConfig& g = cfg.guests[i];
        if (!g.valid) continue;
        if (g.args[0] != '\0') printf("%s: guest %s args=\"%s\"\n", label, g.name, g.args);
        for (size_t k = 0; k < g.port_count; ++k) {
            const config::PortConfig& p = g.ports[k];
            std::string line = std::string(label) + ": port " + g.name + "/" + p.name;
            config::format_mac(p.mac, a, sizeof a);
            line += std::string(" mac=") + a + " vlan_mode=" + config::vlan_mode_name(p.vlan_mode);
            if (p.vlan_mode == config::VlanMode::access) {
                line += " vlan=" + std::to_string(p.vlan);
            } else {
                std::vector<char> vlans(config::kMaxVlan * 6);
                config::format_vlans(p, vlans.data(), vlans.size());
                line += std::string(" allowed_vlans=") + vlans.data() +
                        " native_vlan=" + (p.native_vlan ? std::to_string(p.native_vlan) : std::string("none"));
            }
            line += std::string(" protected=") + (p.is_protected ? "yes" : "no") +
                    " anti_spoof=" + (p.anti_spoof ? "yes" : "no");
            // The limit matters only where the port learns: without anti-spoofing.
            if (!p.anti_spoof)
                line += " max_macs=" + (p.max_macs ? std::to_string(p.max_macs) : std::string("unlimited"));
            if (p.rate_bits_per_sec != 0) {
                config::format_rate(p.rate_bits_per_sec, a, sizeof a);
                config::format_size(p.burst_bytes, b, sizeof b);
                line += std::string(" rate_limit=") + a + " burst=" + b;
            } else {
                line += " rate_limit=unlimited";
            }
            std::string mirrors;
            for (size_t m = 0; m < cfg.mirror_count; ++m)
                if (p.mirror_mask & (1u << m))
                    mirrors += (mirrors.empty() ? "" : ",") + std::string(cfg.mirrors[m].name);
            if (!mirrors.empty())
                line += " mirror=" + mirrors + " mirror_direction=" + config::mirror_direction_name(p.mirror_direction);
            line += " line=" + std::to_string(p.line);
            printf("%s\n", line.c_str());
        }
    }
}

// Reads the whole file (up to kReadCap + 1 bytes). Returns false with errno set.
bool read_all(FILE* f, std::string& data) {
    char buf[1 << 16];
    for (;;) {
        size_t n = fread(buf, 1, sizeof buf, f);
        data.append(buf, n);
        if (data.size() > kReadCap) return true;
        if (n < sizeof buf) return !ferror(f);
    }
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t cpus = 4;
    uint64_t memory = 1ull << 30;
    std::vector<const char*> modules;
    const char* path = nullptr;

    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&](const char* name) -> const char* {
            std::string prefix = std::string(name) + "=";
            if (arg.compare(0, prefix.size(), prefix) == 0) return argv[i] + prefix.size();
            if (i + 1 >= argc) usage_error("%s needs a value", name);
            return argv[++i];
        };
        auto is = [&](const char* name) { return arg == name || arg.rfind(std::string(name) + "=", 0) == 0; };
        if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return kExitOk;
        } else if (is("--cpus")) {
            const char* v = value("--cpus");
            if (!parse_u64(v, cpus, false) || cpus == 0 || cpus > UINT32_MAX)
                usage_error("--cpus: '%s' is not a CPU count (1 or more)", v);
        } else if (is("--memory")) {
            const char* v = value("--memory");
            if (!parse_u64(v, memory, true)) usage_error("--memory: '%s' is not a size (e.g. 1G, 512M)", v);
        } else if (is("--module")) {
            const char* v = value("--module");
            if (!*v) usage_error("--module: the name is empty");
            modules.push_back(v);
        } else if (arg.size() > 1 && arg[0] == '-') {
            usage_error("unknown option '%s'", argv[i]);
        } else if (path != nullptr) {
            usage_error("more than one CONFIG given ('%s')", argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (path == nullptr) usage_error("no CONFIG file given");

    bool from_stdin = strcmp(path, "-") == 0;
    const char* label = from_stdin ? "<stdin>" : path;
    FILE* f = from_stdin ? stdin : fopen(path, "rb");
    if (f == nullptr) {
        fprintf(stderr, "hv-check: cannot open %s: %s\n", path, strerror(errno));
        return kExitUsage;
    }
    std::string data;
    errno = 0;
    bool ok = read_all(f, data);
    int read_errno = errno;
    if (!from_stdin) fclose(f);
    if (!ok) {
        fprintf(stderr, "hv-check: cannot read %s: %s\n", label, strerror(read_errno ? read_errno : EIO));
        return kExitUsage;
    }

    auto cfg = std::make_unique<config::Config>();
    config::parse(data.data(), data.size(), *cfg);

    config::MachineFacts facts{static_cast<uint32_t>(cpus), memory, modules.data(), modules.size()};
    if (modules.empty()) {
        facts.accept_any_module = true;
        printf("hv-check: note: no --module given, so every image name is accepted\n");
    }
    config::validate(*cfg, facts);

    char line[512];
    for (size_t i = 0; i < cfg->diag_count; ++i) {
        config::format_diagnostic(cfg->diags[i], *cfg, label, line, sizeof line);
        printf("%s\n", line);
    }
    if (cfg->diags_dropped != 0)
        printf("%s: %zu more diagnostics not shown (at most %zu are kept)\n", label, cfg->diags_dropped,
               config::kMaxDiagnostics);
    if (cfg->error_count == 0) print_network(label, *cfg);
    printf("%s: %zu guests, %zu valid, %zu errors", label, cfg->guest_count, cfg->valid_guest_count(),
           cfg->error_count);
    if (cfg->warning_count != 0) printf(", %zu warnings", cfg->warning_count);
    printf("\n");
    return cfg->error_count == 0 ? kExitOk : kExitErrors;
}
