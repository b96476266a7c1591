// The boot parsers over data captured from real emulator boots (tests/data/*.dump,
// made by tools/capture-data; format in tests/data/README.md). Each capture holds
// the multiboot info, memory map buffers, RSDP, BDA and ACPI tables exactly as the
// firmware and loader left them, at their physical addresses, so these tests run
// the same bytes the hypervisor parsed at boot. The second half corrupts that real
// data in the ways broken firmware does and checks the parsers fail cleanly.
//
// The expected values in kSources come from the captures; if a capture is
// regenerated with another emulator or firmware version, update them here.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kernel/acpi/acpi.hpp"
#include "kernel/boot/multiboot.hpp"
#include "kernel/lib/bytes.hpp"
#include "kernel/mm/memory_map.hpp"
#include "tests/unit/support/dump_reader.hpp"
#include "vmx/vmx_caps.hpp"

namespace {

using hv::Errc;
using hv::boot::BootInfo;
using hv::boot::MemRegion;
using hv::boot::MemType;
using hv::mm::MemoryMap;
using hv::mm::Range;
using hv::test::DumpReader;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kLapicBase = 0xFEE00000;   // architectural default (SDM Vol. 3A §11.4.1)
constexpr uint64_t kIoApicBase = 0xFEC00000;  // PC chipset default, what all three firmwares report

// What each capture is known to contain. Numbers are as the emulator produced them.
struct Source {
    const char* name;  // tests/data/<name>.dump
    uint8_t protocol;  // multiboot 1 or 2
    bool legacy_bios;  // SeaBIOS / Bochs BIOS rather than UEFI
    size_t cpus;
    uint64_t mem_mib;
    const char* loader_prefix;
    size_t raw_regions;     // entries in the loader's memory map
    uint64_t usable_bytes;  // MemoryMap::total_usable() of that map
    uint8_t rsdp_revision;
    bool xsdt;
    size_t tables;  // valid tables referenced by the RSDT/XSDT
    uint8_t ioapic_id;
    size_t vmx_msr_lines;  // only Bochs emulates VMX (QEMU TCG does not)
};

const Source kSources[] = {
    {"qemu-mb1", 1, true, 2, 256, "qemu", 7, 267910144, 0, false, 4, 0, 0},
    {"qemu-bios-mb2", 2, true, 4, 512, "GRUB 2.", 7, 536345600, 0, false, 4, 0, 0},
    {"qemu-uefi-mb2", 2, false, 2, 1024, "GRUB 2.", 17, 1066950656, 2, true, 5, 0, 0},
    {"bochs-mb2", 2, true, 4, 256, "GRUB 2.", 6, 267972608, 0, false, 4, 4, 4 * 13},
};

void PrintTo(const Source& s, std::ostream* os) {
    *os << s.name;
}

std::string test_name(const testing::TestParamInfo<Source>& info) {
    std::string n = info.param.name;
    std::replace(n.begin(), n.end(), '-', '_');
    return n;
}

std::string file_of(const Source& s) {
    return std::string(s.name) + ".dump";
}

// ------------------------------------------------------------ capture file text

std::vector<std::string> read_lines(const std::string& file) {
    std::ifstream f(std::string(HV_TEST_DATA) + "/" + file);
    EXPECT_TRUE(f.good()) << "cannot open " << file;
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(f, line)) lines.push_back(line);
    return lines;
}

// Value of `key` in any hv.dump.meta line, honouring the console's quoting
// ("..." with \" and \\ escapes), which a whitespace split would cut at the space in
// e.g. loader="GRUB 2.06-13+deb12u2".
std::optional<std::string> meta_field(const std::vector<std::string>& lines, const std::string& key) {
    for (const auto& line : lines) {
        if (line.rfind("hv.dump.meta ", 0) != 0) continue;
        size_t at = line.find(" " + key + "=");
        if (at == std::string::npos) continue;
        size_t i = at + key.size() + 2;
        std::string v;
        if (i < line.size() && line[i] == '"') {
            for (++i; i < line.size() && line[i] != '"'; ++i) {
                if (line[i] == '\\' && i + 1 < line.size()) ++i;
                v += line[i];
            }
        } else {
            while (i < line.size() && line[i] != ' ') v += line[i++];
        }
        return v;
    }
    return std::nullopt;
}

// hv.vmx.msr cpu=N msr=0x... value=0x... -> {cpu: {msr: value}}
std::map<uint32_t, std::map<uint32_t, uint64_t>> vmx_msrs(const std::vector<std::string>& lines) {
    std::map<uint32_t, std::map<uint32_t, uint64_t>> out;
    for (const auto& line : lines) {
        if (line.rfind("hv.vmx.msr ", 0) != 0) continue;
        unsigned cpu = 0;
        unsigned msr = 0;
        unsigned long long value = 0;
        EXPECT_EQ(std::sscanf(line.c_str(), "hv.vmx.msr cpu=%u msr=%x value=%llx", &cpu, &msr, &value), 3) << line;
        EXPECT_EQ(out[cpu].count(msr), 0u) << "MSR listed twice: " << line;
        out[cpu][msr] = value;
    }
    return out;
}

// ------------------------------------------------------------ parsing helpers

// Bytes readable from `phys` on in the capture (the dumped chunk it lies in).
uint64_t readable_extent(const DumpReader& r, uint64_t phys) {
    uint64_t n = 0;
    while (n < kMiB && r.view(phys, n + 1) != nullptr) ++n;
    return n;
}

BootInfo parse_boot(const DumpReader& r) {
    BootInfo bi;
    auto res = hv::boot::parse_boot_info(r, static_cast<uint32_t>(r.meta_number("magic").value_or(0)),
                                         r.meta_number("mbi").value_or(0), bi);
    EXPECT_TRUE(res.ok()) << res.error().detail << " value=" << res.error().value;
    return bi;
}

// The RSDP the way the hypervisor finds it: the multiboot2 ACPI tag's copy, or for
// multiboot 1 the BIOS-area RSDP whose address the capture recorded.
hv::Result<hv::acpi::Rsdp> rsdp_of(const DumpReader& r, const BootInfo& bi) {
    if (bi.rsdp_copy_len != 0) return hv::acpi::parse_rsdp_copy(bi.rsdp_copy, bi.rsdp_copy_len, 0);
    return hv::acpi::parse_rsdp(r, r.meta_number("rsdp").value_or(0));
}

hv::acpi::Directory directory_of(const DumpReader& r);

// The MADT's directory entry in the unmodified capture (all captures have one).
hv::acpi::TableRef madt_ref(const DumpReader& r);

hv::acpi::Directory directory_of(const DumpReader& r) {
    BootInfo bi = parse_boot(r);
    auto rsdp = rsdp_of(r, bi);
    EXPECT_TRUE(rsdp.ok()) << rsdp.error().detail;
    if (!rsdp.ok()) return {};
    auto dir = hv::acpi::load_directory(r, *rsdp);
    EXPECT_TRUE(dir.ok()) << dir.error().detail;
    return dir.ok() ? *dir : hv::acpi::Directory{};
}

hv::acpi::TableRef madt_ref(const DumpReader& r) {
    hv::acpi::Directory dir = directory_of(r);
    const hv::acpi::TableRef* t = dir.find("APIC");
    EXPECT_NE(t, nullptr) << "no MADT in the capture";
    return t ? *t : hv::acpi::TableRef{};
}

void set_u32(DumpReader& r, uint64_t phys, uint32_t v) {
    uint8_t* p = r.mutable_view(phys, 4);
    ASSERT_NE(p, nullptr) << std::hex << phys;
    for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t get_u32(const DumpReader& r, uint64_t phys) {
    const uint8_t* p = r.view(phys, 4);
    EXPECT_NE(p, nullptr) << std::hex << phys;
    return p ? hv::load_u32(p) : 0;
}

// Offset in the multiboot2 info at `mbi` of the first tag of `type`, or 0.
uint64_t mb2_tag(const DumpReader& r, uint64_t mbi, uint32_t type) {
    const uint32_t total = get_u32(r, mbi);
    for (uint64_t off = 8; off + 8 <= total;) {
        const uint32_t size = get_u32(r, mbi + off + 4);
        if (get_u32(r, mbi + off) == type) return off;
        if (size < 8) break;
        off = hv::align_up(off + size, 8);
    }
    return 0;
}

MemoryMap build_map(const BootInfo& bi) {
    MemoryMap m;
    auto res = m.build(bi.regions, bi.region_count);
    EXPECT_TRUE(res.ok()) << res.error().detail;
    return m;
}

// ============================================================ every capture

class CapturedBoot : public testing::TestWithParam<Source> {};

TEST_P(CapturedBoot, CaptureFileHasHeaderAndMeta) {
    const Source& s = GetParam();
    auto lines = read_lines(file_of(s));
    ASSERT_GE(lines.size(), 10u);
    EXPECT_EQ(lines[0].rfind("# " + std::string(s.name) + ":", 0), 0u) << lines[0];
    size_t header = 0;
    while (header < lines.size() && lines[header].rfind("#", 0) == 0) ++header;
    std::string head;
    for (size_t i = 0; i < header; ++i) head += lines[i] + "\n";
    EXPECT_NE(head.find("tools/capture-data " + std::string(s.name)), std::string::npos) << head;
    EXPECT_NE(head.find("# Emulator: "), std::string::npos) << head;
    EXPECT_NE(head.find("# Date: "), std::string::npos) << head;

    EXPECT_EQ(meta_field(lines, "source"), s.name);
    EXPECT_EQ(meta_field(lines, "cpus"), std::to_string(s.cpus));
    EXPECT_EQ(meta_field(lines, "mem_mib"), std::to_string(s.mem_mib));
    // Every BIOS boot has the firmware's RSDP in the BIOS area (dumped even when
    // multiboot2 also hands over a copy); UEFI has no BIOS area.
    EXPECT_EQ(meta_field(lines, "rsdp").has_value(), s.legacy_bios);
    size_t msr_lines = 0;
    for (const auto& l : lines) msr_lines += l.rfind("hv.vmx.msr ", 0) == 0;
    EXPECT_EQ(msr_lines, s.vmx_msr_lines);
}

TEST_P(CapturedBoot, BootInfoHasProtocolLoaderAndMemoryMap) {
    const Source& s = GetParam();
    DumpReader r = DumpReader::load(file_of(s));
    auto lines = read_lines(file_of(s));
    BootInfo bi = parse_boot(r);

    EXPECT_EQ(bi.protocol, s.protocol);
    EXPECT_EQ(r.meta_number("protocol"), s.protocol);
    EXPECT_EQ(r.meta_number("magic"), s.protocol == 1 ? hv::boot::kMultiboot1Magic : hv::boot::kMultiboot2Magic);
    EXPECT_EQ(bi.info_phys, r.meta_number("mbi"));
    EXPECT_EQ(std::string(bi.loader_name).rfind(s.loader_prefix, 0), 0u) << bi.loader_name;
    EXPECT_EQ(meta_field(lines, "loader"), std::string(bi.loader_name));
    // The command line tools/capture-data booted with (QEMU -kernel puts the image
    // name in front).
    EXPECT_NE(std::string(bi.cmdline).find("hv.test_exit=1 hv.dump=acpi,mbi,vmx"), std::string::npos) << bi.cmdline;
    EXPECT_FALSE(bi.cmdline_truncated);
    EXPECT_EQ(bi.region_count, s.raw_regions);
    EXPECT_EQ(bi.regions_dropped, 0u);
    EXPECT_EQ(bi.module_count, 0u);
    EXPECT_TRUE(bi.has_basic_meminfo);
    EXPECT_GE(bi.mem_lower_kib, 630u);
    EXPECT_LE(bi.mem_lower_kib, 640u);
    // The whole structure was dumped: MB2 up to total_size, MB1 the 116-byte info.
    EXPECT_GE(readable_extent(r, bi.info_phys), bi.info_size);
    if (s.protocol == 2) {
        EXPECT_EQ(bi.loader_data_count, 0u);
        EXPECT_EQ(bi.rsdp_copy_len, s.rsdp_revision >= 2 ? 36u : 20u);
    } else {
        EXPECT_EQ(bi.info_size, 116u);
        EXPECT_EQ(bi.rsdp_copy_len, 0u);
        // mmap buffer, cmdline and loader name, each dumped.
        EXPECT_EQ(bi.loader_data_count, 3u);
        for (size_t i = 0; i < bi.loader_data_count; ++i)
            EXPECT_NE(r.view(bi.loader_data[i].base, bi.loader_data[i].end - bi.loader_data[i].base), nullptr) << i;
    }

    MemoryMap m = build_map(bi);
    EXPECT_EQ(m.overlaps(), 0u);
    EXPECT_EQ(m.invalid(), 0u);
    EXPECT_EQ(m.total_usable(), s.usable_bytes);
    const uint64_t configured = s.mem_mib * kMiB;
    EXPECT_GE(m.total_usable(), configured * 9 / 10);
    EXPECT_LE(m.total_usable(), configured);
    // All RAM sits below the 32-bit PCI hole at these sizes; the last usable byte is
    // within the configured size.
    EXPECT_LE(m.highest_usable_end(), configured);
    EXPECT_GE(m.highest_usable_end(), configured * 9 / 10);
}

TEST_P(CapturedBoot, MemoryMapIsSortedDisjointAndMerged) {
    DumpReader r = DumpReader::load(file_of(GetParam()));
    BootInfo bi = parse_boot(r);
    MemoryMap m = build_map(bi);
    ASSERT_GE(m.count(), 4u);
    EXPECT_LE(m.count(), bi.region_count);
    for (size_t i = 0; i < m.count(); ++i) {
        EXPECT_GT(m[i].length, 0u) << i;
        if (i == 0) continue;
        const uint64_t prev_end = m[i - 1].base + m[i - 1].length;
        EXPECT_LE(prev_end, m[i].base) << "entries " << i - 1 << " and " << i << " overlap or are unsorted";
        EXPECT_FALSE(prev_end == m[i].base && m[i - 1].type == m[i].type)
            << "entries " << i - 1 << "," << i << " should have been merged";
    }
    // Every raw usable byte is still usable, every raw non-usable byte is not.
    for (size_t i = 0; i < bi.region_count; ++i) {
        const MemRegion& raw = bi.regions[i];
        for (uint64_t probe : {raw.base, raw.base + raw.length - 1}) {
            bool found = false;
            for (size_t j = 0; j < m.count(); ++j) {
                if (probe >= m[j].base && probe < m[j].base + m[j].length) {
                    EXPECT_EQ(m[j].type, raw.type) << std::hex << probe;
                    found = true;
                }
            }
            EXPECT_TRUE(found) << std::hex << probe;
        }
    }
}

TEST_P(CapturedBoot, FreeRangesLeaveOutReservations) {
    DumpReader r = DumpReader::load(file_of(GetParam()));
    BootInfo bi = parse_boot(r);
    MemoryMap m = build_map(bi);
    // As the kernel reserves: page 0, the boot information, and a 1 MiB "image".
    const Range reserved[] = {{0, kPage}, {bi.info_phys, bi.info_phys + bi.info_size}, {kMiB, 2 * kMiB}};
    Range out[64];
    auto n = m.free_ranges(reserved, 3, out, 64);
    ASSERT_TRUE(n.ok()) << n.error().detail;
    ASSERT_GE(*n, 2u);

    uint64_t free_bytes = 0;
    for (size_t i = 0; i < *n; ++i) {
        SCOPED_TRACE(testing::Message() << "range " << i << " [0x" << std::hex << out[i].base << ", 0x" << out[i].end
                                        << ")");
        EXPECT_LT(out[i].base, out[i].end);
        EXPECT_EQ(out[i].base % kPage, 0u);
        EXPECT_EQ(out[i].end % kPage, 0u);
        if (i > 0) {
            EXPECT_LE(out[i - 1].end, out[i].base);
        }
        for (const Range& res : reserved) EXPECT_TRUE(out[i].end <= res.base || res.end <= out[i].base);
        bool inside_usable = false;
        for (size_t j = 0; j < m.count(); ++j)
            inside_usable |=
                m[j].type == MemType::usable && m[j].base <= out[i].base && out[i].end <= m[j].base + m[j].length;
        EXPECT_TRUE(inside_usable);
        free_bytes += out[i].end - out[i].base;
    }
    // All three captures have usable RAM from 0 and from 1 MiB on: the free memory
    // starts right after page 0 and resumes right after the 1-2 MiB reservation.
    EXPECT_EQ(out[0].base, kPage);
    bool resumes_at_2m = false;
    for (size_t i = 0; i < *n; ++i) resumes_at_2m |= out[i].base == 2 * kMiB;
    EXPECT_TRUE(resumes_at_2m);
    // 1 MiB + page 0 are taken out for sure; at most the boot info (rounded out to
    // pages) and a partial page at each end of each usable range more.
    const uint64_t upper = m.total_usable() - kMiB - kPage;
    EXPECT_LE(free_bytes, upper);
    EXPECT_GE(free_bytes, upper - hv::align_up(bi.info_size, kPage) - kPage - 2 * kPage * m.count());

    // Too small an output array is an error, not an overflow.
    Range one[1];
    auto small = m.free_ranges(reserved, 3, one, 1);
    ASSERT_FALSE(small.ok());
    EXPECT_EQ(small.error().code, Errc::no_memory);
}

TEST_P(CapturedBoot, RsdpIsValid) {
    const Source& s = GetParam();
    DumpReader r = DumpReader::load(file_of(s));
    BootInfo bi = parse_boot(r);
    auto rsdp = rsdp_of(r, bi);
    ASSERT_TRUE(rsdp.ok()) << rsdp.error().detail;
    EXPECT_EQ(rsdp->revision, s.rsdp_revision);
    EXPECT_STREQ(rsdp->oem_id, "BOCHS ");  // SeaBIOS, OVMF and the Bochs BIOS all say so
    EXPECT_NE(rsdp->rsdt, 0u);
    EXPECT_EQ(rsdp->xsdt != 0, s.xsdt);
    // A multiboot2 copy has no address of its own.
    EXPECT_EQ(rsdp->phys, s.protocol == 1 ? r.meta_number("rsdp").value_or(1) : 0u);
}

TEST_P(CapturedBoot, FindRsdpBiosFindsTheDumpedRsdp) {
    const Source& s = GetParam();
    DumpReader r = DumpReader::load(file_of(s));
    if (!s.legacy_bios) {
        // UEFI: no legacy BIOS area holds an RSDP, so the capture has none; the
        // hypervisor must rely on the multiboot2 ACPI tag's copy, which parses.
        EXPECT_FALSE(r.meta_number("rsdp").has_value());
        BootInfo bi = parse_boot(r);
        ASSERT_GT(bi.rsdp_copy_len, 0u);
        EXPECT_TRUE(hv::acpi::parse_rsdp_copy(bi.rsdp_copy, bi.rsdp_copy_len, 0).ok());
        return;
    }
    ASSERT_TRUE(r.meta_number("rsdp").has_value()) << "BIOS capture without the firmware RSDP";
    ASSERT_NE(r.view(0x40E, 2), nullptr) << "BDA not dumped";
    auto found = hv::acpi::find_rsdp_bios(r);
    ASSERT_TRUE(found.ok()) << found.error().detail;
    EXPECT_EQ(*found, r.meta_number("rsdp"));
    EXPECT_EQ(*found % 16, 0u);
    EXPECT_GE(*found, 0xE0000u);
    EXPECT_LT(*found, 0x100000u);
}

TEST_P(CapturedBoot, DirectoryHasMadtAndFadt) {
    const Source& s = GetParam();
    DumpReader r = DumpReader::load(file_of(s));
    hv::acpi::Directory dir = directory_of(r);
    EXPECT_EQ(dir.count, s.tables);
    EXPECT_EQ(dir.rejected, 0u);
    EXPECT_EQ(dir.duplicates, 0u);
    EXPECT_EQ(dir.dropped, 0u);
    EXPECT_EQ(dir.root_trailing_bytes, 0u);
    EXPECT_EQ(dir.used_xsdt, s.xsdt);
    const hv::acpi::TableRef* apic = dir.find("APIC");
    const hv::acpi::TableRef* facp = dir.find("FACP");
    ASSERT_NE(apic, nullptr);
    ASSERT_NE(facp, nullptr);
    EXPECT_STREQ(apic->signature, "APIC");
    EXPECT_GE(apic->length, 44u + 8u * s.cpus);  // fixed fields + one Local APIC entry per CPU
    EXPECT_EQ(facp->length, 116u);               // FADT revision 1 (ACPI 1.0) on all of these
    EXPECT_EQ(dir.find("XSDT"), nullptr);
    EXPECT_EQ(dir.find("DSDT"), nullptr);  // referenced from the FADT, not the root table
}

TEST_P(CapturedBoot, MadtMatchesTheEmulatedMachine) {
    const Source& s = GetParam();
    DumpReader r = DumpReader::load(file_of(s));
    hv::acpi::Directory dir = directory_of(r);
    const hv::acpi::TableRef* apic = dir.find("APIC");
    ASSERT_NE(apic, nullptr);
    auto madt = hv::acpi::parse_madt(r, *apic);
    ASSERT_TRUE(madt.ok()) << madt.error().detail;

    EXPECT_EQ(madt->usable_cpu_count(), r.meta_number("cpus"));
    EXPECT_EQ(madt->usable_cpu_count(), s.cpus);
    EXPECT_EQ(madt->cpu_count, s.cpus);
    std::set<uint32_t> ids;
    for (size_t i = 0; i < madt->cpu_count; ++i) {
        EXPECT_TRUE(madt->cpus[i].enabled) << i;
        EXPECT_FALSE(madt->cpus[i].x2apic_entry) << i;
        EXPECT_EQ(madt->cpus[i].apic_id, i) << i;  // the emulators number them 0..n-1
        ids.insert(madt->cpus[i].apic_id);
    }
    EXPECT_EQ(ids.size(), s.cpus) << "APIC IDs not distinct";
    EXPECT_EQ(madt->lapic_address, kLapicBase);
    EXPECT_TRUE(madt->pcat_compat);
    ASSERT_EQ(madt->ioapic_count, 1u);
    EXPECT_EQ(madt->ioapics[0].address, kIoApicBase);
    EXPECT_EQ(madt->ioapics[0].gsi_base, 0u);
    EXPECT_EQ(madt->ioapics[0].id, s.ioapic_id);
    // ISA IRQ 0 (PIT) is wired to GSI 2 on every PC chipset emulated here.
    ASSERT_GE(madt->override_count, 1u);
    EXPECT_EQ(madt->overrides[0].source_irq, 0u);
    EXPECT_EQ(madt->overrides[0].gsi, 2u);
    EXPECT_EQ(madt->dropped_entries, 0u);
    EXPECT_EQ(madt->skipped_entries, 0u);
}

// ------------------------------------------------------------ corrupted real data

TEST_P(CapturedBoot, FlippedMadtByteIsRejectedAndCountedWhileFadtLoads) {
    const Source& s = GetParam();
    DumpReader r = DumpReader::load(file_of(s));
    const hv::acpi::TableRef apic = madt_ref(r);
    uint8_t* p = r.mutable_view(apic.phys, apic.length);
    ASSERT_NE(p, nullptr);
    const uint8_t before = p[apic.length / 2];
    p[apic.length / 2] ^= 0x5A;  // inside the entries
    // The table summed to 0; now it sums to the change of that one byte.
    const uint8_t sum = static_cast<uint8_t>(p[apic.length / 2] - before);
    ASSERT_NE(sum, 0u);

    hv::acpi::Directory dir = directory_of(r);
    EXPECT_EQ(dir.rejected, 1u);
    EXPECT_EQ(dir.first_reject.code, Errc::bad_checksum);
    EXPECT_EQ(dir.first_reject.value, sum);
    EXPECT_STREQ(dir.first_reject_sig, "APIC");
    EXPECT_EQ(dir.first_reject_phys, apic.phys);
    EXPECT_EQ(dir.count, s.tables - 1);
    EXPECT_EQ(dir.find("APIC"), nullptr);
    ASSERT_NE(dir.find("FACP"), nullptr);

    auto madt = hv::acpi::parse_madt(r, apic);
    ASSERT_FALSE(madt.ok());
    EXPECT_EQ(madt.error().code, Errc::bad_checksum);
    EXPECT_EQ(madt.error().value, sum);
}

TEST_P(CapturedBoot, MadtLengthPastDumpedBytesIsRejectedAsTruncated) {
    const Source& s = GetParam();
    DumpReader r = DumpReader::load(file_of(s));
    const hv::acpi::TableRef apic = madt_ref(r);
    const uint64_t extent = readable_extent(r, apic.phys);
    ASSERT_GE(extent, apic.length);
    // One byte more than the capture holds from there on (the tables may sit next to
    // each other, so the readable extent can run past the MADT itself).
    set_u32(r, apic.phys + 4, static_cast<uint32_t>(extent + 1));

    hv::acpi::Directory dir = directory_of(r);
    EXPECT_EQ(dir.rejected, 1u);
    EXPECT_EQ(dir.first_reject.code, Errc::truncated);
    EXPECT_EQ(dir.first_reject.value, extent + 1);
    EXPECT_STREQ(dir.first_reject_sig, "APIC");
    EXPECT_EQ(dir.count, s.tables - 1);
    EXPECT_NE(dir.find("FACP"), nullptr);
    auto madt = hv::acpi::parse_madt(r, apic);
    ASSERT_FALSE(madt.ok());
    EXPECT_EQ(madt.error().code, Errc::truncated);

    // A length of 4 GiB - 1 is refused before anything is viewed.
    set_u32(r, apic.phys + 4, 0xFFFFFFFF);
    dir = directory_of(r);
    EXPECT_EQ(dir.rejected, 1u);
    EXPECT_EQ(dir.first_reject.code, Errc::malformed);
    EXPECT_EQ(dir.first_reject.value, 0xFFFFFFFFu);
}

TEST_P(CapturedBoot, RootTableLengthPastDumpedBytesFailsTheDirectory) {
    const Source& s = GetParam();
    DumpReader r = DumpReader::load(file_of(s));
    const uint64_t root = directory_of(r).root_phys;
    const uint64_t extent = readable_extent(r, root);
    set_u32(r, root + 4, static_cast<uint32_t>(extent + 1));
    BootInfo bi = parse_boot(r);
    auto rsdp = rsdp_of(r, bi);
    ASSERT_TRUE(rsdp.ok());
    auto dir = hv::acpi::load_directory(r, *rsdp);
    ASSERT_FALSE(dir.ok());
    EXPECT_EQ(dir.error().code, Errc::truncated);
    EXPECT_EQ(dir.error().value, extent + 1);
    EXPECT_STREQ(dir.error().detail, s.xsdt ? "XSDT extends past readable memory (length field)"
                                            : "RSDT extends past readable memory (length field)");
}

TEST_P(CapturedBoot, CorruptRsdpChecksumFailsParse) {
    const Source& s = GetParam();
    DumpReader r = DumpReader::load(file_of(s));
    if (s.protocol == 1) {
        const uint64_t at = r.meta_number("rsdp").value_or(0);
        uint8_t* p = r.mutable_view(at, 20);
        ASSERT_NE(p, nullptr);
        p[8] ^= 0x01;  // the ACPI 1.0 checksum byte
        auto rsdp = hv::acpi::parse_rsdp(r, at);
        ASSERT_FALSE(rsdp.ok());
        EXPECT_EQ(rsdp.error().code, Errc::bad_checksum);
        // The scan now sees one candidate with the signature that fails validation.
        auto found = hv::acpi::find_rsdp_bios(r);
        ASSERT_FALSE(found.ok());
        EXPECT_EQ(found.error().code, Errc::not_found);
        EXPECT_EQ(found.error().value, 1u);
        return;
    }
    // Multiboot2: corrupt the RSDP copy inside the ACPI tag in the captured info
    // itself; the loader parser copies it unchecked, the ACPI parser must refuse it.
    // GRUB under UEFI passes both tags; the new one (type 15) is the one used.
    constexpr uint32_t kAcpiOld = 14;
    constexpr uint32_t kAcpiNew = 15;
    const uint64_t mbi = r.meta_number("mbi").value_or(0);
    const uint64_t old_tag = mb2_tag(r, mbi, kAcpiOld);
    const uint64_t new_tag = mb2_tag(r, mbi, kAcpiNew);
    ASSERT_NE(old_tag, 0u);
    ASSERT_EQ(new_tag != 0, s.rsdp_revision >= 2);
    const uint64_t at = mbi + (new_tag != 0 ? new_tag : old_tag) + 8;
    ASSERT_NE(r.view(at, 8), nullptr);
    ASSERT_EQ(std::memcmp(r.view(at, 8), "RSD PTR ", 8), 0);
    if (new_tag != 0) {
        // Breaking the old tag's copy changes nothing while the new tag is intact.
        DumpReader c = DumpReader::load(file_of(s));
        uint8_t* old_copy = c.mutable_view(mbi + old_tag + 8, 20);
        ASSERT_NE(old_copy, nullptr);
        old_copy[8] ^= 0x01;
        BootInfo cbi = parse_boot(c);
        auto rsdp = hv::acpi::parse_rsdp_copy(cbi.rsdp_copy, cbi.rsdp_copy_len, 0);
        ASSERT_TRUE(rsdp.ok()) << rsdp.error().detail;
        EXPECT_EQ(rsdp->revision, s.rsdp_revision);
    }
    for (size_t checksum_off : s.rsdp_revision >= 2 ? std::vector<size_t>{8, 32} : std::vector<size_t>{8}) {
        SCOPED_TRACE(checksum_off);
        DumpReader c = DumpReader::load(file_of(s));
        uint8_t* p = c.mutable_view(at, checksum_off + 1);
        ASSERT_NE(p, nullptr);
        p[checksum_off] ^= 0x01;
        BootInfo cbi = parse_boot(c);
        ASSERT_EQ(cbi.rsdp_copy_len, s.rsdp_revision >= 2 ? 36u : 20u);
        auto rsdp = hv::acpi::parse_rsdp_copy(cbi.rsdp_copy, cbi.rsdp_copy_len, 0);
        ASSERT_FALSE(rsdp.ok());
        EXPECT_EQ(rsdp.error().code, Errc::bad_checksum);
        EXPECT_STREQ(rsdp.error().detail,
                     checksum_off == 8 ? "RSDP checksum (first 20 bytes) mismatch" : "RSDP extended checksum mismatch");
    }
}

TEST_P(CapturedBoot, OverlappingRegionsResolveToTheRestrictiveType) {
    DumpReader r = DumpReader::load(file_of(GetParam()));
    BootInfo bi = parse_boot(r);
    const MemoryMap clean = build_map(bi);
    ASSERT_EQ(clean.overlaps(), 0u);

    // A reserved 1 MiB strictly inside the first usable region above 1 MiB that
    // has room for it, as firmware reporting an MMIO hole inside RAM would.
    const MemRegion* host = nullptr;
    for (size_t i = 0; i < bi.region_count && !host; ++i)
        if (bi.regions[i].type == MemType::usable && bi.regions[i].base >= kMiB && bi.regions[i].length >= 3 * kMiB)
            host = &bi.regions[i];
    ASSERT_NE(host, nullptr);
    const uint64_t hole = host->base + kMiB;

    std::vector<MemRegion> regions(bi.regions, bi.regions + bi.region_count);
    regions.push_back({hole, kMiB, MemType::reserved});
    MemoryMap m;
    ASSERT_TRUE(m.build(regions.data(), regions.size()).ok());
    EXPECT_EQ(m.overlaps(), 1u);
    EXPECT_EQ(m.count(), clean.count() + 2);  // the usable range split around the hole
    EXPECT_EQ(m.total_usable(), clean.total_usable() - kMiB);
    bool hole_found = false;
    for (size_t i = 0; i < m.count(); ++i)
        hole_found |= m[i].base == hole && m[i].length == kMiB && m[i].type == MemType::reserved;
    EXPECT_TRUE(hole_found);

    // The other way round: "usable" claimed over the first reserved range below
    // 4 GiB must not turn it into RAM.
    const MemRegion* res = nullptr;
    for (size_t i = 0; i < bi.region_count && !res; ++i)
        if (bi.regions[i].type == MemType::reserved && bi.regions[i].base < (1ull << 32)) res = &bi.regions[i];
    ASSERT_NE(res, nullptr);
    regions.assign(bi.regions, bi.regions + bi.region_count);
    regions.push_back({res->base, res->length, MemType::usable});
    ASSERT_TRUE(m.build(regions.data(), regions.size()).ok());
    EXPECT_EQ(m.overlaps(), 1u);
    EXPECT_EQ(m.count(), clean.count());
    EXPECT_EQ(m.total_usable(), clean.total_usable());
}

INSTANTIATE_TEST_SUITE_P(Captures, CapturedBoot, testing::ValuesIn(kSources), test_name);

// ============================================================ multiboot2 captures

class CapturedMb2 : public testing::TestWithParam<Source> {
  protected:
    void SetUp() override {
        r_ = DumpReader::load(file_of(GetParam()));
        mbi_ = r_.meta_number("mbi").value_or(0);
        total_ = get_u32(r_, mbi_);
    }
    hv::Result<void> parse() { return hv::boot::parse_boot_info(r_, hv::boot::kMultiboot2Magic, mbi_, bi_); }

    DumpReader r_;
    uint64_t mbi_ = 0;
    uint32_t total_ = 0;
    BootInfo bi_;
};

TEST_P(CapturedMb2, TotalSizePastDumpedBytesIsUnmapped) {
    const uint64_t extent = readable_extent(r_, mbi_);
    ASSERT_GE(extent, total_);
    const uint32_t bad = static_cast<uint32_t>(hv::align_up(extent + 1, 8));
    set_u32(r_, mbi_, bad);
    auto res = parse();
    ASSERT_FALSE(res.ok());
    EXPECT_EQ(res.error().code, Errc::unmapped);
    EXPECT_EQ(res.error().value, bad);
}

TEST_P(CapturedMb2, TotalSizeBelowMinimumOrAboveLimitIsMalformed) {
    for (uint32_t bad : {0u, 8u, 15u, (1u << 20) + 8}) {
        SCOPED_TRACE(bad);
        set_u32(r_, mbi_, bad);
        auto res = parse();
        ASSERT_FALSE(res.ok());
        EXPECT_EQ(res.error().code, Errc::malformed);
        EXPECT_EQ(res.error().value, bad);
    }
}

TEST_P(CapturedMb2, TotalSizeCuttingOffTheEndTagIsMalformed) {
    ASSERT_EQ(get_u32(r_, mbi_ + total_ - 8), 0u);  // end tag: type 0 ...
    ASSERT_EQ(get_u32(r_, mbi_ + total_ - 4), 8u);  // ... size 8
    set_u32(r_, mbi_, total_ - 8);
    auto res = parse();
    ASSERT_FALSE(res.ok());
    EXPECT_EQ(res.error().code, Errc::malformed);
    EXPECT_STREQ(res.error().detail, "multiboot2 info has no end tag (type 0) before total_size");
    EXPECT_EQ(res.error().value, total_ - 8);
}

TEST_P(CapturedMb2, TagSizeBelowHeaderIsMalformed) {
    for (uint32_t bad : {0u, 7u}) {
        SCOPED_TRACE(bad);
        set_u32(r_, mbi_ + 12, bad);  // size of the first tag (offset 8)
        auto res = parse();
        ASSERT_FALSE(res.ok());
        EXPECT_EQ(res.error().code, Errc::malformed);
        EXPECT_STREQ(res.error().detail, "multiboot2 tag size below 8 at offset");
        EXPECT_EQ(res.error().value, 8u);
    }
}

TEST_P(CapturedMb2, TagSizeRunningPastTotalSizeIsTruncated) {
    set_u32(r_, mbi_ + 12, total_ - 8 + 1);
    auto res = parse();
    ASSERT_FALSE(res.ok());
    EXPECT_EQ(res.error().code, Errc::truncated);
    EXPECT_EQ(res.error().value, 8u);
}

TEST_P(CapturedMb2, MmapTagEntrySizeCorruptionIsMalformed) {
    // The real memory map tag (type 6) with its entry_size broken.
    const uint64_t off = mb2_tag(r_, mbi_, 6);
    ASSERT_NE(off, 0u) << "no mmap tag";
    ASSERT_EQ(get_u32(r_, mbi_ + off + 8), 24u);
    set_u32(r_, mbi_ + off + 8, 20);
    auto res = parse();
    ASSERT_FALSE(res.ok());
    EXPECT_EQ(res.error().code, Errc::malformed);
    EXPECT_EQ(res.error().value, 20u);
}

INSTANTIATE_TEST_SUITE_P(Captures, CapturedMb2, testing::Values(kSources[1], kSources[2], kSources[3]), test_name);

// ============================================================ multiboot 1 capture

TEST(CapturedMb1, QemuMmapCorruptionIsCaught) {
    DumpReader r = DumpReader::load("qemu-mb1.dump");
    const uint64_t mbi = r.meta_number("mbi").value_or(0);
    const uint32_t mmap_length = get_u32(r, mbi + 44);
    const uint32_t mmap_addr = get_u32(r, mbi + 48);
    EXPECT_EQ(mmap_length, 7u * 24u);  // seven 20-byte entries plus their size fields

    BootInfo bi;
    set_u32(r, mmap_addr, 4);  // first entry's size below 20
    auto res = hv::boot::parse_boot_info(r, hv::boot::kMultiboot1Magic, mbi, bi);
    ASSERT_FALSE(res.ok());
    EXPECT_EQ(res.error().code, Errc::malformed);
    EXPECT_EQ(res.error().value, 0u);

    set_u32(r, mmap_addr, 20);
    set_u32(r, mbi + 44, static_cast<uint32_t>(readable_extent(r, mmap_addr) + 4));  // past the dump
    res = hv::boot::parse_boot_info(r, hv::boot::kMultiboot1Magic, mbi, bi);
    ASSERT_FALSE(res.ok());
    EXPECT_EQ(res.error().code, Errc::unmapped);
    EXPECT_EQ(res.error().value, mmap_addr);
}

// ============================================================ Bochs VMX MSRs

using hv::vmx::Msr;

uint32_t num(Msr m) {
    return static_cast<uint32_t>(m);
}

// RawCaps the way vmx_probe.cpp fills it, from the captured MSR values.
hv::vmx::RawCaps raw_caps(const std::map<uint32_t, uint64_t>& msr) {
    auto get = [&msr](Msr m) {
        auto it = msr.find(num(m));
        EXPECT_NE(it, msr.end()) << "MSR 0x" << std::hex << num(m) << " not captured";
        return it == msr.end() ? 0 : it->second;
    };
    hv::vmx::RawCaps raw{};
    raw.cpuid_vmx = true;  // the hypervisor dumps VMX MSRs only after CPUID.1:ECX.VMX said yes
    raw.feature_control = get(Msr::IA32_FEATURE_CONTROL);
    raw.basic = get(Msr::IA32_VMX_BASIC);
    raw.pinbased = get(Msr::IA32_VMX_PINBASED_CTLS);
    raw.procbased = get(Msr::IA32_VMX_PROCBASED_CTLS);
    raw.exit = get(Msr::IA32_VMX_EXIT_CTLS);
    raw.entry = get(Msr::IA32_VMX_ENTRY_CTLS);
    raw.misc = get(Msr::IA32_VMX_MISC);
    raw.procbased2 = get(Msr::IA32_VMX_PROCBASED_CTLS2);
    raw.ept_vpid = get(Msr::IA32_VMX_EPT_VPID_CAP);
    raw.true_pinbased = get(Msr::IA32_VMX_TRUE_PINBASED_CTLS);
    raw.true_procbased = get(Msr::IA32_VMX_TRUE_PROCBASED_CTLS);
    raw.true_exit = get(Msr::IA32_VMX_TRUE_EXIT_CTLS);
    raw.true_entry = get(Msr::IA32_VMX_TRUE_ENTRY_CTLS);
    return raw;
}

TEST(CapturedVmx, BochsCpu0HasEptVpidAndUnrestrictedGuest) {
    auto msrs = vmx_msrs(read_lines("bochs-mb2.dump"));
    ASSERT_EQ(msrs.count(0), 1u);
    const hv::vmx::VmxCaps c = hv::vmx::decode(raw_caps(msrs[0]));
    EXPECT_TRUE(c.vmx);
    EXPECT_TRUE(c.ept);
    EXPECT_TRUE(c.vpid);
    EXPECT_TRUE(c.unrestricted_guest);
    EXPECT_TRUE(c.preemption_timer);
    EXPECT_TRUE(c.ept_2m);
    EXPECT_TRUE(c.ept_1g);
    EXPECT_TRUE(c.ept_wb);
    EXPECT_TRUE(c.ept_4level);
    EXPECT_TRUE(c.invept);
    EXPECT_TRUE(c.invvpid);
    EXPECT_TRUE(c.true_ctls);
    EXPECT_TRUE(c.secondary_ctls);
    EXPECT_TRUE(c.msr_bitmaps);
    EXPECT_TRUE(c.io_bitmaps);
    // IA32_VMX_BASIC 0x00d810000000002b: revision 0x2b, 4 KiB regions, WB.
    EXPECT_EQ(c.vmcs_revision, 0x2Bu);
    EXPECT_EQ(c.vmcs_size, 4096u);
    EXPECT_EQ(c.vmcs_memory_type, hv::vmx::kMemoryTypeWriteBack);
    EXPECT_TRUE(c.memory_type_wb);
    EXPECT_EQ(c.preemption_timer_rate, 0u);
}

TEST(CapturedVmx, BochsAllFourCpusReportIdenticalValues) {
    auto msrs = vmx_msrs(read_lines("bochs-mb2.dump"));
    ASSERT_EQ(msrs.size(), 4u);
    for (uint32_t cpu = 0; cpu < 4; ++cpu) {
        ASSERT_EQ(msrs.count(cpu), 1u) << cpu;
        EXPECT_EQ(msrs[cpu].size(), 13u) << cpu;  // FEATURE_CONTROL + 12 VMX MSRs, as vmx_probe dumps them
        EXPECT_EQ(msrs[cpu], msrs[0]) << "cpu " << cpu << " differs from cpu 0";
    }
    for (uint32_t cpu = 0; cpu < 4; ++cpu) {
        const hv::vmx::VmxCaps c = hv::vmx::decode(raw_caps(msrs[cpu]));
        EXPECT_TRUE(c.vmx && c.ept && c.vpid && c.unrestricted_guest && c.preemption_timer && c.ept_2m && c.ept_1g &&
                    c.ept_wb)
            << "cpu " << cpu;
        EXPECT_EQ(c.vmcs_revision, 0x2Bu) << cpu;
    }
}

TEST(CapturedVmx, BochsFeatureControlIsEnabledAndLocked) {
    auto msrs = vmx_msrs(read_lines("bochs-mb2.dump"));
    for (uint32_t cpu = 0; cpu < 4; ++cpu) {
        SCOPED_TRACE(cpu);
        const uint64_t fc = msrs[cpu][num(Msr::IA32_FEATURE_CONTROL)];
        EXPECT_EQ(fc, hv::vmx::kFeatureControlLock | hv::vmx::kFeatureControlVmxOutsideSmx);
        const auto d = hv::vmx::decide_feature_control(fc);
        EXPECT_EQ(d.state, hv::vmx::FeatureControlState::enabled_locked);
        EXPECT_EQ(d.value_to_write, 0u);
    }
}

}  // namespace
