#include "kernel/acpi/acpi.hpp"

#include "kernel/lib/bytes.hpp"

namespace hv::acpi {

namespace {

// RSDP layout (ACPI 6.5 §5.2.5.3, Table 5.3). The first 20 bytes are the ACPI 1.0
// structure with its own checksum; revision >= 2 appends Length, XsdtAddress and an
// extended checksum over `Length` bytes.
constexpr size_t kRsdpV1Length = 20;
constexpr size_t kRsdpV2Length = 36;
constexpr size_t kRsdpOemIdOffset = 9;
constexpr size_t kRsdpRevisionOffset = 15;
constexpr size_t kRsdpRsdtOffset = 16;
constexpr size_t kRsdpLengthOffset = 20;
constexpr size_t kRsdpXsdtOffset = 24;
constexpr uint8_t kRsdpFirstExtendedRevision = 2;
// The spec fixes the structure at 36 bytes; allow growth, but not a length that
// would have us checksum arbitrary memory.
constexpr uint32_t kMaxRsdpLength = 1024;
constexpr const char kRsdpSignature[] = "RSD PTR ";

// Legacy BIOS search areas (§5.2.5.1).
constexpr uint64_t kEbdaSegmentPointer = 0x40E;  // BDA word: EBDA real-mode segment
constexpr uint64_t kEbdaSearchLength = 1024;
constexpr uint64_t kBiosAreaStart = 0xE0000;
constexpr uint64_t kBiosAreaEnd = 0x100000;
constexpr uint64_t kRsdpAlignment = 16;

// System Description Table Header (§5.2.6, Table 5.4).
constexpr uint32_t kHeaderLength = 36;
constexpr size_t kHeaderLengthOffset = 4;
constexpr size_t kHeaderRevisionOffset = 8;
// Largest table we are willing to checksum. Real DSDTs are well under 1 MiB; a
// garbage length must not make us walk gigabytes of the direct map.
constexpr uint32_t kMaxTableLength = 16u << 20;
// Shown for a rejected table whose signature cannot be read.
constexpr uint8_t kUnknownSignature[4] = {'?', '?', '?', '?'};

// RSDT entries are 32-bit addresses (§5.2.7), XSDT entries 64-bit (§5.2.8), both
// starting right after the header; XSDT entries are therefore not 8-byte aligned.
constexpr size_t kRsdtEntrySize = 4;
constexpr size_t kXsdtEntrySize = 8;

// MADT (§5.2.12, Table 5.19): header, Local Interrupt Controller Address, Flags,
// then variable-length Interrupt Controller Structures {type, length, ...}.
constexpr size_t kMadtLapicAddressOffset = 36;
constexpr size_t kMadtFlagsOffset = 40;
constexpr size_t kMadtEntriesOffset = 44;
constexpr uint32_t kMadtPcatCompat = 1u << 0;
// Online Capable was defined in ACPI 6.3, whose MADT is revision 5; before that the
// bit is reserved and must not be interpreted (Linux does the same).
constexpr uint8_t kMadtOnlineCapableRevision = 5;

// Local APIC / x2APIC flags (§5.2.12.2, Table 5.23).
constexpr uint32_t kLapicEnabled = 1u << 0;
constexpr uint32_t kLapicOnlineCapable = 1u << 1;

enum class MadtType : uint8_t {
    LOCAL_APIC = 0x0,                  // §5.2.12.2
    IO_APIC = 0x1,                     // §5.2.12.3
    INTERRUPT_SOURCE_OVERRIDE = 0x2,   // §5.2.12.5
    LOCAL_APIC_NMI = 0x4,              // §5.2.12.7
    LOCAL_APIC_ADDRESS_OVERRIDE = 0x5, // §5.2.12.8
    LOCAL_X2APIC = 0x9,                // §5.2.12.12
    LOCAL_X2APIC_NMI = 0xA,            // §5.2.12.13
};

// Minimum lengths of the entries we decode (the spec fixes them; longer entries
// are accepted so a future revision that appends fields still parses).
constexpr uint8_t kLocalApicLength = 8;
constexpr uint8_t kIoApicLength = 12;
constexpr uint8_t kSourceOverrideLength = 10;
constexpr uint8_t kLocalApicNmiLength = 6;
constexpr uint8_t kAddressOverrideLength = 12;
constexpr uint8_t kLocalX2ApicLength = 16;
constexpr uint8_t kLocalX2ApicNmiLength = 12;
constexpr uint8_t kMadtEntryHeaderLength = 2;
constexpr uint8_t kLocalApicNmiAllProcessors = 0xFF;

// Messages for each way a table can fail, per table kind, so an error names the
// table instead of saying "some table".
struct TableMessages {
    const char* null_pointer;
    const char* unreadable;
    const char* too_short;
    const char* too_long;
    const char* truncated;
    const char* checksum;
};

constexpr TableMessages kAnyTableMessages{
    "ACPI table address is null",
    "ACPI table header not readable",
    "ACPI table length field smaller than its 36-byte header",
    "ACPI table length field implausibly large",
    "ACPI table extends past readable memory (length field)",
    "ACPI table checksum mismatch",
};
constexpr TableMessages kRsdtMessages{
    "RSDT address in RSDP is null",
    "RSDT header not readable",
    "RSDT length field smaller than its 36-byte header",
    "RSDT length field implausibly large",
    "RSDT extends past readable memory (length field)",
    "RSDT checksum mismatch",
};
constexpr TableMessages kXsdtMessages{
    "XSDT address in RSDP is null",
    "XSDT header not readable",
    "XSDT length field smaller than its 36-byte header",
    "XSDT length field implausibly large",
    "XSDT extends past readable memory (length field)",
    "XSDT checksum mismatch",
};
constexpr TableMessages kMadtMessages{
    "MADT address is null",
    "MADT header not readable",
    "MADT length field smaller than its 36-byte header",
    "MADT length field implausibly large",
    "MADT extends past readable memory (length field)",
    "MADT checksum mismatch",
};

// A whole table, viewable and checksummed.
struct RawTable {
    const uint8_t* bytes;
    uint32_t length;
};

// §5.2.6: read the header, bound the length, then view and checksum exactly
// `length` bytes. Every table goes through here before any field past the header
// is read.
Result<RawTable> view_table(const PhysReader& mem, uint64_t phys, const TableMessages& msg) {
    if (phys == 0) return make_error(Errc::malformed, msg.null_pointer, 0);
    const uint8_t* header = mem.view(phys, kHeaderLength);
    if (header == nullptr) return make_error(Errc::unmapped, msg.unreadable, phys);
    const uint32_t length = load_u32(header + kHeaderLengthOffset);
    if (length < kHeaderLength) return make_error(Errc::malformed, msg.too_short, length);
    if (length > kMaxTableLength) return make_error(Errc::malformed, msg.too_long, length);
    uint64_t end = 0;
    if (add_overflows(phys, length, &end)) return make_error(Errc::truncated, msg.truncated, length);
    const uint8_t* bytes = mem.view(phys, length);
    if (bytes == nullptr) return make_error(Errc::truncated, msg.truncated, length);
    const uint8_t sum = byte_sum(bytes, length);
    if (sum != 0) return make_error(Errc::bad_checksum, msg.checksum, sum);
    return RawTable{bytes, length};
}

// Signatures end up in log lines; keep them printable and NUL-terminated even when
// the firmware put garbage there.
void copy_signature(char (&out)[5], const uint8_t* sig) {
    for (size_t i = 0; i < 4; ++i) {
        const uint8_t c = sig[i];
        out[i] = (c >= 0x20 && c <= 0x7E) ? static_cast<char>(c) : '?';
    }
    out[4] = '\0';
}

// Everything after the first 20 bytes of an RSDP. `view(len)` returns the first
// `len` bytes of the candidate or nullptr; the caller has checked that 20 are there.
template <typename ViewFn>
Result<Rsdp> validate_rsdp(const ViewFn& view, uint64_t origin) {
    const uint8_t* v1 = view(kRsdpV1Length);
    if (v1 == nullptr) return make_error(Errc::truncated, "RSDP shorter than 20 bytes", origin);
    if (!bytes_equal(v1, kRsdpSignature, 8))
        return make_error(Errc::bad_signature, "RSDP signature is not 'RSD PTR '", load_u64(v1));
    const uint8_t sum = byte_sum(v1, kRsdpV1Length);
    if (sum != 0) return make_error(Errc::bad_checksum, "RSDP checksum (first 20 bytes) mismatch", sum);

    Rsdp rsdp{};
    rsdp.phys = origin;
    rsdp.revision = v1[kRsdpRevisionOffset];
    rsdp.rsdt = load_u32(v1 + kRsdpRsdtOffset);
    for (size_t i = 0; i < 6; ++i) rsdp.oem_id[i] = static_cast<char>(v1[kRsdpOemIdOffset + i]);
    rsdp.oem_id[6] = '\0';
    // Revision 0 is ACPI 1.0; 1 was never assigned. Like ACPICA, only >= 2 has the
    // extended fields.
    if (rsdp.revision < kRsdpFirstExtendedRevision) return rsdp;

    const uint8_t* v2 = view(kRsdpV2Length);
    if (v2 == nullptr)
        return make_error(Errc::truncated, "RSDP revision >= 2 but fewer than 36 bytes readable", rsdp.revision);
    const uint32_t length = load_u32(v2 + kRsdpLengthOffset);
    if (length < kRsdpV2Length) return make_error(Errc::malformed, "RSDP length field below 36", length);
    if (length > kMaxRsdpLength) return make_error(Errc::malformed, "RSDP length field implausibly large", length);
    const uint8_t* full = view(length);
    if (full == nullptr) return make_error(Errc::truncated, "RSDP extends past readable memory (length field)", length);
    const uint8_t ext_sum = byte_sum(full, length);
    if (ext_sum != 0) return make_error(Errc::bad_checksum, "RSDP extended checksum mismatch", ext_sum);
    rsdp.xsdt = load_u64(full + kRsdpXsdtOffset);
    return rsdp;
}

Result<void> add_cpu(Madt& madt, const MadtCpu& cpu) {
    // Two usable processors with one APIC ID would make INIT-SIPI and interrupt
    // routing ambiguous. Unusable entries (neither enabled nor online-capable) are
    // exempt: some firmware fills spare slots with placeholders that all carry ID 0xFF.
    if (cpu.enabled || cpu.online_capable) {
        for (size_t i = 0; i < madt.cpu_count; ++i) {
            const MadtCpu& other = madt.cpus[i];
            if ((other.enabled || other.online_capable) && other.apic_id == cpu.apic_id)
                return make_error(Errc::malformed, "MADT duplicate APIC ID among usable processors", cpu.apic_id);
        }
    }
    if (madt.cpu_count == kMaxCpus) {
        ++madt.dropped_entries;
        return ok_result();
    }
    madt.cpus[madt.cpu_count++] = cpu;
    return ok_result();
}

MadtCpu decode_cpu_flags(uint32_t apic_id, uint32_t uid, uint32_t flags, uint8_t revision, bool x2apic) {
    MadtCpu cpu{};
    cpu.apic_id = apic_id;
    cpu.acpi_uid = uid;
    cpu.enabled = (flags & kLapicEnabled) != 0;
    // Online Capable is reserved when Enabled is set (Table 5.23).
    cpu.online_capable = !cpu.enabled && revision >= kMadtOnlineCapableRevision && (flags & kLapicOnlineCapable) != 0;
    cpu.x2apic_entry = x2apic;
    return cpu;
}

void add_nmi(Madt& madt, uint32_t uid, uint16_t flags, uint8_t lint) {
    if (madt.nmi_count == kMaxNmis) {
        ++madt.dropped_entries;
        return;
    }
    madt.nmis[madt.nmi_count++] = MadtNmi{uid, flags, lint};
}

}  // namespace

Result<Rsdp> parse_rsdp(const PhysReader& mem, uint64_t phys) {
    if (mem.view(phys, kRsdpV1Length) == nullptr) return make_error(Errc::unmapped, "RSDP not readable", phys);
    auto view = [&mem, phys](uint64_t len) { return mem.view(phys, len); };
    return validate_rsdp(view, phys);
}

Result<Rsdp> parse_rsdp_copy(const uint8_t* bytes, size_t len, uint64_t origin) {
    if (bytes == nullptr) return make_error(Errc::invalid_argument, "RSDP copy pointer is null", origin);
    if (len < kRsdpV1Length) return make_error(Errc::truncated, "RSDP copy shorter than 20 bytes", len);
    auto view = [bytes, len](uint64_t want) -> const uint8_t* { return want <= len ? bytes : nullptr; };
    return validate_rsdp(view, origin);
}

Result<uint64_t> find_rsdp_bios(const PhysReader& mem) {
    size_t bad_candidates = 0;
    // Returns 0 when nothing validates; 0 is in neither search area.
    auto scan = [&mem, &bad_candidates](uint64_t start, uint64_t end) -> uint64_t {
        for (uint64_t addr = start; addr < end; addr += kRsdpAlignment) {
            const uint8_t* sig = mem.view(addr, 8);
            if (sig == nullptr || !bytes_equal(sig, kRsdpSignature, 8)) continue;
            // A stale or corrupt copy may precede the real one; keep looking.
            auto rsdp = parse_rsdp(mem, addr);
            if (rsdp.ok()) return addr;
            ++bad_candidates;
        }
        return 0;
    };

    if (const uint8_t* word = mem.view(kEbdaSegmentPointer, 2)) {
        // Segment << 4 is always 16-byte aligned and below 1 MiB + 64 KiB; segment 0
        // means "no EBDA" (it would point at the interrupt vector table).
        const uint64_t ebda = static_cast<uint64_t>(load_u16(word)) << 4;
        if (ebda != 0) {
            const uint64_t found = scan(ebda, ebda + kEbdaSearchLength);
            if (found != 0) return found;
        }
    }
    const uint64_t found = scan(kBiosAreaStart, kBiosAreaEnd);
    if (found != 0) return found;
    return make_error(Errc::not_found, "RSDP not found in EBDA or BIOS area 0xE0000-0xFFFFF", bad_candidates);
}

const TableRef* Directory::find(const char* sig4) const {
    if (sig4 == nullptr) return nullptr;
    for (size_t i = 0; i < count; ++i) {
        const TableRef& t = tables[i];
        if (t.signature[0] == sig4[0] && t.signature[1] == sig4[1] && t.signature[2] == sig4[2] &&
            t.signature[3] == sig4[3])
            return &t;
    }
    return nullptr;
}

Result<TableRef> check_table(const PhysReader& mem, uint64_t phys) {
    const RawTable raw = TRY(view_table(mem, phys, kAnyTableMessages));
    TableRef ref{};
    copy_signature(ref.signature, raw.bytes);
    ref.phys = phys;
    ref.length = raw.length;
    ref.revision = raw.bytes[kHeaderRevisionOffset];
    return ref;
}

Result<Directory> load_directory(const PhysReader& mem, const Rsdp& rsdp) {
    // §5.2.5.3: on revision >= 2 the XSDT supersedes the RSDT; an XSDT address of 0
    // is treated like its absence (as ACPICA does).
    const bool use_xsdt = rsdp.revision >= kRsdpFirstExtendedRevision && rsdp.xsdt != 0;
    const uint64_t root = use_xsdt ? rsdp.xsdt : rsdp.rsdt;
    if (root == 0) return make_error(Errc::not_found, "RSDP has neither an RSDT nor an XSDT address", rsdp.phys);

    const RawTable raw = TRY(view_table(mem, root, use_xsdt ? kXsdtMessages : kRsdtMessages));
    if (use_xsdt && !bytes_equal(raw.bytes, "XSDT", 4))
        return make_error(Errc::bad_signature, "XSDT signature is not 'XSDT'", load_u32(raw.bytes));
    if (!use_xsdt && !bytes_equal(raw.bytes, "RSDT", 4))
        return make_error(Errc::bad_signature, "RSDT signature is not 'RSDT'", load_u32(raw.bytes));

    Directory dir{};
    dir.used_xsdt = use_xsdt;
    dir.root_phys = root;
    const size_t entry_size = use_xsdt ? kXsdtEntrySize : kRsdtEntrySize;
    const size_t payload = raw.length - kHeaderLength;
    const size_t entries = payload / entry_size;
    // A length that is not header + n * entry_size leaves a partial entry. The
    // checksum covers it, so it is the firmware's deliberate (if wrong) length; use
    // the whole entries, as ACPICA does, and report the remainder.
    dir.root_trailing_bytes = static_cast<uint32_t>(payload % entry_size);

    for (size_t i = 0; i < entries; ++i) {
        if (i == kMaxRootEntries || dir.count == kMaxTables) {
            dir.dropped = entries - i;
            break;
        }
        const uint8_t* entry = raw.bytes + kHeaderLength + i * entry_size;
        const uint64_t addr = use_xsdt ? load_u64(entry) : load_u32(entry);

        bool duplicate = false;
        for (size_t j = 0; j < dir.count && !duplicate; ++j) duplicate = dir.tables[j].phys == addr;
        if (duplicate) {
            ++dir.duplicates;
            continue;
        }

        auto table = check_table(mem, addr);
        if (table.ok()) {
            dir.tables[dir.count++] = table.value();
            continue;
        }
        if (dir.rejected++ == 0) {
            dir.first_reject = table.error();
            dir.first_reject_phys = addr;
            const uint8_t* sig = addr != 0 ? mem.view(addr, 4) : nullptr;
            copy_signature(dir.first_reject_sig, sig != nullptr ? sig : kUnknownSignature);
        }
    }
    return dir;
}

size_t Madt::usable_cpu_count() const {
    size_t n = 0;
    for (size_t i = 0; i < cpu_count; ++i)
        if (cpus[i].enabled || cpus[i].online_capable) ++n;
    return n;
}

Result<void> parse_madt_into(const PhysReader& mem, const TableRef& table, Madt& out) {
    __builtin_memset(&out, 0, sizeof(out));
    // Only the address is taken from `table`; length and checksum are re-read so a
    // stale or forged TableRef cannot widen what we parse.
    const RawTable raw = TRY(view_table(mem, table.phys, kMadtMessages));
    if (!bytes_equal(raw.bytes, "APIC", 4))
        return make_error(Errc::bad_signature, "MADT signature is not 'APIC'", load_u32(raw.bytes));
    if (raw.length < kMadtEntriesOffset)
        return make_error(Errc::truncated, "MADT shorter than its fixed fields (44 bytes)", raw.length);

    const uint8_t revision = raw.bytes[kHeaderRevisionOffset];
    out.lapic_address = load_u32(raw.bytes + kMadtLapicAddressOffset);
    out.flags = load_u32(raw.bytes + kMadtFlagsOffset);
    out.pcat_compat = (out.flags & kMadtPcatCompat) != 0;
    bool seen_address_override = false;

    size_t off = kMadtEntriesOffset;
    while (off < raw.length) {
        const size_t left = raw.length - off;
        if (left < kMadtEntryHeaderLength)
            return make_error(Errc::truncated, "MADT entry header extends past table end", off);
        const uint8_t* e = raw.bytes + off;
        const uint8_t type = e[0];
        const uint8_t len = e[1];
        // A length below the 2-byte header would not advance the walk (length 0
        // loops forever on real firmware bugs).
        if (len < kMadtEntryHeaderLength)
            return make_error(Errc::malformed, "MADT entry length below 2", off);
        if (len > left) return make_error(Errc::truncated, "MADT entry extends past table end", off);

        switch (static_cast<MadtType>(type)) {
            case MadtType::LOCAL_APIC: {
                if (len < kLocalApicLength)
                    return make_error(Errc::malformed, "MADT Processor Local APIC entry shorter than 8 bytes", off);
                TRY(add_cpu(out, decode_cpu_flags(e[3], e[2], load_u32(e + 4), revision, false)));
                break;
            }
            case MadtType::IO_APIC: {
                if (len < kIoApicLength)
                    return make_error(Errc::malformed, "MADT I/O APIC entry shorter than 12 bytes", off);
                if (out.ioapic_count == kMaxIoApics) {
                    ++out.dropped_entries;
                    break;
                }
                out.ioapics[out.ioapic_count++] = MadtIoApic{e[2], load_u32(e + 4), load_u32(e + 8)};
                break;
            }
            case MadtType::INTERRUPT_SOURCE_OVERRIDE: {
                if (len < kSourceOverrideLength)
                    return make_error(Errc::malformed, "MADT Interrupt Source Override entry shorter than 10 bytes",
                                      off);
                if (out.override_count == kMaxOverrides) {
                    ++out.dropped_entries;
                    break;
                }
                out.overrides[out.override_count++] = MadtOverride{e[2], e[3], load_u32(e + 4), load_u16(e + 8)};
                break;
            }
            case MadtType::LOCAL_APIC_NMI: {
                if (len < kLocalApicNmiLength)
                    return make_error(Errc::malformed, "MADT Local APIC NMI entry shorter than 6 bytes", off);
                // UID 0xFF means all processors (§5.2.12.7); widen to the x2APIC form.
                const uint32_t uid = e[2] == kLocalApicNmiAllProcessors ? kAllProcessors : e[2];
                add_nmi(out, uid, load_u16(e + 3), e[5]);
                break;
            }
            case MadtType::LOCAL_APIC_ADDRESS_OVERRIDE: {
                if (len < kAddressOverrideLength)
                    return make_error(Errc::malformed, "MADT Local APIC Address Override entry shorter than 12 bytes",
                                      off);
                // §5.2.12.8: only one may be defined; two would leave the LAPIC
                // address ambiguous.
                if (seen_address_override)
                    return make_error(Errc::malformed, "MADT has more than one Local APIC Address Override", off);
                seen_address_override = true;
                out.lapic_address = load_u64(e + 4);
                break;
            }
            case MadtType::LOCAL_X2APIC: {
                if (len < kLocalX2ApicLength)
                    return make_error(Errc::malformed, "MADT Processor Local x2APIC entry shorter than 16 bytes", off);
                TRY(add_cpu(out, decode_cpu_flags(load_u32(e + 4), load_u32(e + 12), load_u32(e + 8), revision, true)));
                break;
            }
            case MadtType::LOCAL_X2APIC_NMI: {
                if (len < kLocalX2ApicNmiLength)
                    return make_error(Errc::malformed, "MADT Local x2APIC NMI entry shorter than 12 bytes", off);
                add_nmi(out, load_u32(e + 4), load_u16(e + 2), e[8]);
                break;
            }
            default:
                // NMI Source, SAPIC, GIC, wakeup mailbox, OEM types...: not needed
                // here, and the 2-byte header lets us step over them safely.
                ++out.skipped_entries;
                break;
        }
        off += len;
    }
    return ok_result();
}

Result<Madt> parse_madt(const PhysReader& mem, const TableRef& table) {
    Madt madt;
    TRY(parse_madt_into(mem, table, madt));
    return madt;
}

}  // namespace hv::acpi
