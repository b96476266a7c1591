#pragma once
// The appliance configuration: which guests exist, their CPUs, memory, boot
// image, restart policy and network ports, the mirror (capture) sessions and the
// switch settings. The file is a small TOML subset (docs/config.md).
//
// parse() and validate() are pure: they run in the hypervisor on the file GRUB
// loaded as a module and on the host in `hv-check`, the unit tests and the
// fuzzer. The input is hostile: every byte is checked, nothing is allocated,
// and every capacity is fixed with overflow reported as a diagnostic.
//
// Failure is contained per guest (STYLE.md §10): a problem inside a [[guest]]
// section or one of its [[guest.port]] sections rejects that guest only. A bad
// [[mirror]] is dropped (the ports naming it then fail), a bad [switch] key keeps
// its default. Only file-level problems (no usable version, an oversize or
// binary file) are fatal, i.e. no guest starts.
//
// Config is plain data (about 52 KiB): the hypervisor keeps it in .bss.

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

// BootInfo.args (kernel/abi/guest_abi.hpp) holds 128 bytes with the NUL.
constexpr size_t kMaxArgsLen = 127;

// Network ports (virtio-net devices on the switch) and mirror sessions.
constexpr size_t kMaxPortsPerGuest = 4;
constexpr size_t kMaxPorts = 32;  // all guests together: the switch's port table
constexpr size_t kMaxMirrors = 4;
constexpr size_t kMacLen = 6;
constexpr uint16_t kMinVlan = 1;     // IEEE 802.1Q reserved VIDs: 0 means "priority tag only"
constexpr uint16_t kMaxVlan = 4094;  // and 4095 is reserved
constexpr size_t kVlanWords = 4096 / 64;
// A guest with ports keeps this guest-physical window free for its PCI devices
// (virtio-pci BARs, MSI-X tables), so its RAM must end below it.
constexpr uint64_t kPciWindowStart = 0xE0000000;
constexpr uint64_t kPciWindowEnd = 0xF0000000;
constexpr uint64_t kMinRateBitsPerSec = 64'000;             // "64K"
constexpr uint64_t kMaxRateBitsPerSec = 1'000'000'000'000;  // "1000G"
constexpr uint64_t kDefaultBurstBytes = 64ull << 10;
constexpr uint64_t kMinBurstBytes = 2ull << 10;  // one full frame (1518 bytes) must fit
constexpr uint64_t kMaxBurstBytes = 16ull << 20;
constexpr uint32_t kMinSnaplen = 64;
constexpr uint32_t kMaxSnaplen = 65535;
constexpr uint32_t kDefaultSnaplen = 65535;
constexpr uint64_t kMirrorBufferGranule = 4ull << 10;  // whole pages
constexpr uint64_t kMinMirrorBuffer = 4ull << 10;
constexpr uint64_t kMaxMirrorBuffer = 16ull << 20;
constexpr uint64_t kDefaultMirrorBuffer = 256ull << 10;
// IEEE 802.1D ageing time: default 300 s, range 10 to 1,000,000 s.
constexpr uint32_t kMinMacAgeingS = 10;
constexpr uint32_t kMaxMacAgeingS = 1'000'000;
constexpr uint32_t kDefaultMacAgeingS = 300;
// MAC table entries: a power of two (the hash picks a bucket by its top bits);
// 65536 entries are 1 MiB of hypervisor memory.
constexpr uint32_t kMinFdbSize = 256;
constexpr uint32_t kMaxFdbSize = 65536;
constexpr uint32_t kDefaultFdbSize = 4096;
// Learned MACs per port (0 = no limit). The default lets 32 ports together
// fill at most half of the default table, so no guest can crowd out others.
constexpr uint32_t kDefaultMaxMacs = 64;
constexpr uint32_t kMaxMaxMacs = kMaxFdbSize;

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
    args,
    count,
};
const char* field_name(Field f);

enum class VlanMode : uint8_t { access, trunk };
// Which frames of a port a mirror session copies, as the switch sees them (the
// usual SPAN convention): rx = frames the switch receives on the port (sent by
// the guest), tx = frames the switch sends out of it (to the guest).
enum class MirrorDirection : uint8_t { both, rx, tx };
const char* vlan_mode_name(VlanMode m);
const char* mirror_direction_name(MirrorDirection d);

// The keys of a [[guest.port]] section; indexes PortConfig::field_line.
enum class PortField : uint8_t {
    name,
    mac,
    vlan_mode,
    vlan,
    allowed_vlans,
    native_vlan,
    is_protected,  // key `protected`
    anti_spoof,
    rate_limit,
    burst,
    mirror,
    mirror_direction,
    max_macs,
    count,
};
const char* port_field_name(PortField f);

struct PortConfig {
    char name[kMaxNameLen + 1];  // "eth<N>" (N = its place in the guest, from 0) unless set; "" if set invalid
    uint8_t mac[kMacLen];        // unicast, not zero, unique among all ports of the file
    VlanMode vlan_mode;
    uint16_t vlan;         // access: the port's VLAN; trunk: 0
    uint16_t native_vlan;  // trunk: VLAN of untagged frames, 0 = none (they are dropped); access: 0
    // Bit v (word v / 64, bit v % 64) set: VLAN v is carried. An access port has
    // exactly its `vlan`; a trunk its allowed_vlans (default 1-4094). Bits 0 and
    // 4095 are never set.
    uint64_t allowed_vlans[kVlanWords];
    bool is_protected;           // talks only to ports that are not protected
    bool anti_spoof;             // frames whose source MAC is not `mac` are dropped
    uint64_t rate_bits_per_sec;  // 0 = unlimited
    uint64_t burst_bytes;        // token-bucket depth; meaningful only with a rate
    uint8_t mirror_mask;         // bit i: frames are copied to Config::mirrors[i] (a valid one)
    MirrorDirection mirror_direction;
    uint32_t max_macs;  // learned source MACs the switch keeps for the port; 0 = no limit
    uint16_t index;     // place among all ports of the file, in file order (0 .. kMaxPorts - 1)
    uint32_t line;      // line of its [[guest.port]] header
    uint32_t field_line[static_cast<size_t>(PortField::count)];

    uint32_t line_of(PortField f) const { return field_line[static_cast<size_t>(f)]; }
    bool carries(uint32_t vlan_id) const {
        return vlan_id < 4096 && ((allowed_vlans[vlan_id / 64] >> (vlan_id % 64)) & 1) != 0;
    }
};

struct GuestConfig {
    char name[kMaxNameLen + 1];  // "" when missing or invalid
    char image[kMaxImageLen + 1];
    uint32_t cpus[kMaxGuestCpus];
    size_t cpu_count;
    uint64_t memory_bytes;
    RestartPolicy restart;
    StartMode mode;
    uint32_t restart_delay_ms, restart_delay_max_ms, restart_limit;
    char args[kMaxArgsLen + 1];  // printable ASCII, copied to BootInfo.args; "" when not set
    PortConfig ports[kMaxPortsPerGuest];
    size_t port_count;
    uint32_t line;  // line of its [[guest]] header
    // Line where each key was set (0 = not set), so later checks name the line.
    uint32_t field_line[static_cast<size_t>(Field::count)];
    bool valid;

    uint32_t line_of(Field f) const { return field_line[static_cast<size_t>(f)]; }
};

enum class MirrorField : uint8_t { name, snaplen, buffer, count };
const char* mirror_field_name(MirrorField f);

// A [[mirror]] session: a capture buffer in hypervisor memory that receives
// copies of the frames of the ports naming it, read out as a pcap file.
struct MirrorConfig {
    char name[kMaxNameLen + 1];  // "" when missing or invalid
    uint32_t snaplen;            // bytes kept of each frame
    uint64_t buffer_bytes;       // a multiple of 4K
    uint32_t line;               // line of its [[mirror]] header
    uint32_t field_line[static_cast<size_t>(MirrorField::count)];
    bool valid;  // false: dropped; no port's mirror_mask names it

    uint32_t line_of(MirrorField f) const { return field_line[static_cast<size_t>(f)]; }
};

enum class SwitchField : uint8_t { mac_ageing_s, fdb_size, count };
const char* switch_field_name(SwitchField f);

// The [switch] table; every value is valid (a bad key keeps its default).
struct SwitchConfig {
    uint32_t mac_ageing_s;  // a learned MAC is forgotten after this long unseen
    uint32_t fdb_size;      // learned-MAC table entries, a power of two
    uint32_t line;          // line of the [switch] header, 0 when there is none
    uint32_t field_line[static_cast<size_t>(SwitchField::count)];

    uint32_t line_of(SwitchField f) const { return field_line[static_cast<size_t>(f)]; }
};

enum class Severity : uint8_t { error, warning };

struct Diagnostic {
    Severity severity;
    uint32_t line;   // 0 when it concerns the whole file
    int32_t guest;   // index into Config::guests, -1 for file-level
    int32_t port;    // index into that guest's ports, -1 when not about one port
    int32_t mirror;  // index into Config::mirrors, -1 when not about one mirror
    char field[32];  // "" when not about one key
    char message[144];
};

struct Config {
    uint32_t version;
    GuestConfig guests[kMaxGuests];
    size_t guest_count;
    MirrorConfig mirrors[kMaxMirrors];
    size_t mirror_count;         // sections kept, valid or not
    SwitchConfig switch_config;  // defaults when the file has no [switch]
    Diagnostic diags[kMaxDiagnostics];
    size_t diag_count;
    size_t diags_dropped;  // reported after diags[] was full (still counted below)
    size_t error_count;    // every error, kept or dropped
    size_t warning_count;  // every warning, kept or dropped
    bool fatal;            // nothing usable: no guests start (then no guest is valid)

    size_t valid_guest_count() const;
};

// Syntax + per-field checks. A problem inside a [[guest]] or its [[guest.port]]
// sections marks THAT guest invalid (valid=false) with a diagnostic; other
// guests are unaffected. A problem inside a [[mirror]] marks that mirror invalid;
// a bad [switch] key keeps its default. Mirror names in ports are resolved at
// the end of the file (a port may name a mirror defined after it); duplicate
// MACs are checked across all guests. File-level problems (missing/invalid
// version, oversize file, NUL bytes or other binary data) set fatal; guests past
// kMaxGuests and ports past the limits are rejected with a diagnostic. Unknown
// keys and missing required fields are errors naming the key.
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
// module, memory reaching into the PCI window for a guest with ports, and memory
// beyond what is left of free_memory_bytes. A rejected guest claims nothing, so
// the guests after it can still use its CPUs and memory.
void validate(Config& cfg, const MachineFacts& facts);

// "FILE:LINE: guest 'NAME': port 'PORT': field 'FIELD': MESSAGE" (or "mirror
// 'NAME': " in place of guest and port), parts omitted when not applicable (no
// file, line 0, file-level, not about a port, no field); warnings carry
// "warning: " before the message. A guest, port or mirror without a valid name
// is "guest #N", "port #N", "mirror #N" (1-based, file order). Always
// NUL-terminates when cap > 0; returns the length.
size_t format_diagnostic(const Diagnostic& d, const Config& cfg, const char* file, char* out, size_t cap);

// "64M", "3G", "1536K" (binary units) or plain bytes: the largest suffix that
// divides exactly, as the file would say it.
size_t format_size(uint64_t bytes, char* out, size_t cap);
// The same in decimal units for rates in bits per second: "100M" = 100,000,000.
size_t format_rate(uint64_t bits_per_sec, char* out, size_t cap);

// "02:00:00:00:00:01" (lowercase). Always NUL-terminates when cap > 0; returns the length.
size_t format_mac(const uint8_t (&mac)[kMacLen], char* out, size_t cap);

// A port's VLANs: "10" for an access port, "1-4094" or "10,20-29,100" for a
// trunk. Cut with "..." when cap is too small. Always NUL-terminates when
// cap > 0; returns the length.
size_t format_vlans(const PortConfig& p, char* out, size_t cap);

}  // namespace hv::config
