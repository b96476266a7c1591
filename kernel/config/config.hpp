#pragma once
// The appliance configuration: which guests exist, their CPUs, memory, boot
// image and restart policy. The file is a small TOML subset (docs/config.md).
//
// parse() and validate() are pure: they run in the hypervisor on the file GRUB
// loaded as a module and on the host in `hv-check`, the unit tests and the
// fuzzer. The input is hostile: every byte is checked, nothing is allocated,
// and every capacity is fixed with overflow reported as a diagnostic.
//
// Failure is contained per guest (STYLE.md §10): a problem inside a [[guest]]
// section rejects that guest only. Only file-level problems (no usable
// version, an oversize or binary file) are fatal, i.e. no guest starts.

#include <stddef.h>
#include <stdint.h>

namespace hv::config {

constexpr size_t kMaxGuests = 16;
constexpr size_t kMaxGuestCpus = 16;
constexpr size_t kMaxNameLen = 31;
constexpr size_t kMaxImageLen = 63;
constexpr size_t kMaxDiagnostics = 32;
constexpr size_t kMaxLineLen = 1024;        // characters, without the line break
constexpr size_t kMaxFileSize = 64 * 1024;  // bytes

constexpr uint64_t kMemoryGranule = 2ull << 20;  // guests get whole 2 MiB EPT pages
constexpr uint64_t kMaxGuestMemory = 4ull << 30;

constexpr uint32_t kDefaultRestartDelayMs = 100;
constexpr uint32_t kDefaultRestartDelayMaxMs = 10000;
constexpr uint32_t kDefaultRestartLimit = 5;

enum class RestartPolicy : uint8_t { never, on_failure, always };
// The CPU mode a guest starts in (docs/guest-abi.md "Start states"):
// long64 at the ELF entry with paging; protected32 flat, paging off; real16.
enum class StartMode : uint8_t { long64, protected32, real16 };
const char* start_mode_name(StartMode m);
const char* restart_policy_name(RestartPolicy p);

// The keys of a [[guest]] section; indexes GuestConfig::field_line.
enum class Field : uint8_t {
    name,
    image,
    cpus,
    memory,
    restart,
    restart_delay_ms,
    restart_delay_max_ms,
    restart_limit,
    mode,
    count,
};
const char* field_name(Field f);

struct GuestConfig {
    char name[kMaxNameLen + 1];  // "" when missing or invalid
    char image[kMaxImageLen + 1];
    uint32_t cpus[kMaxGuestCpus];
    size_t cpu_count;
    uint64_t memory_bytes;
    RestartPolicy restart;
    StartMode mode;
    uint32_t restart_delay_ms, restart_delay_max_ms, restart_limit;
    uint32_t line;  // line of its [[guest]] header
    // Line where each key was set (0 = not set), so later checks name the line.
    uint32_t field_line[static_cast<size_t>(Field::count)];
    bool valid;

    uint32_t line_of(Field f) const { return field_line[static_cast<size_t>(f)]; }
};

enum class Severity : uint8_t { error, warning };

struct Diagnostic {
    Severity severity;
    uint32_t line;   // 0 when it concerns the whole file
    int32_t guest;   // index into Config::guests, -1 for file-level
    char field[32];  // "" when not about one key
    char message[112];
};

struct Config {
    uint32_t version;
    GuestConfig guests[kMaxGuests];
    size_t guest_count;
    Diagnostic diags[kMaxDiagnostics];
    size_t diag_count;
    size_t diags_dropped;  // reported after diags[] was full (still counted below)
    size_t error_count;    // every error, kept or dropped
    size_t warning_count;  // every warning, kept or dropped
    bool fatal;            // nothing usable: no guests start (then no guest is valid)

    size_t valid_guest_count() const;
};

// Syntax + per-field checks. A problem inside a [[guest]] marks THAT guest
// invalid (valid=false) with a diagnostic; other guests are unaffected.
// File-level problems (missing/invalid version, oversize file, NUL bytes or
// other binary data) set fatal; guests past kMaxGuests are rejected with a
// diagnostic. Unknown keys and missing required fields are errors naming the key.
// `out` is fully overwritten; `text` need not be NUL-terminated.
void parse(const char* text, size_t len, Config& out);

// What the running machine offers. CPU indices are the dense `hv.cpu index=`
// numbers of the boot log.
struct MachineFacts {
    uint32_t cpu_count;
    uint64_t free_memory_bytes;
    const char* const* module_names;  // boot module names (GRUB: the words after the path)
    size_t module_count;
    const bool* cpu_online = nullptr;  // cpu_count entries; nullptr: every CPU is online
    bool accept_any_module = false;    // hv-check without --module: images are not checked
};

// Checks the guests that passed parse() against the machine, in file order:
// duplicate names, CPUs that do not exist or are not online, CPU 0 (the
// hypervisor's), a CPU already given to an earlier guest, a missing image
// module, and memory beyond what is left of free_memory_bytes. A rejected guest
// claims nothing, so the guests after it can still use its CPUs and memory.
void validate(Config& cfg, const MachineFacts& facts);

// "FILE:LINE: guest 'NAME': field 'FIELD': MESSAGE", parts omitted when not
// applicable (no file, line 0, file-level, no field); warnings carry
// "warning: " before the message. A guest without a valid name is "guest #N"
// (1-based, file order). Always NUL-terminates when cap > 0; returns the length.
size_t format_diagnostic(const Diagnostic& d, const Config& cfg, const char* file, char* out, size_t cap);

}  // namespace hv::config
