// The boot processor's path from boot/entry.asm to the boot summary.
//
// Order matters: exceptions are caught from the first C++ line; loader data and
// ACPI tables are parsed (through the boot map of the low 4 GiB) before any
// memory is allocated, so they can be reserved; then the kernel page tables
// replace the boot ones, the BSP moves to a guarded stack, and the APs start.

#include "drivers/lapic.hpp"
#include "drivers/tsc.hpp"
#include "kernel/acpi/acpi.hpp"
#include "kernel/boot/multiboot.hpp"
#include "kernel/cpu/percpu.hpp"
#include "kernel/cpu/smp.hpp"
#include "kernel/cpu/x86.hpp"
#include "kernel/guest/manager.hpp"
#include "kernel/lib/bytes.hpp"
#include "kernel/lib/cmdline.hpp"
#include "kernel/log.hpp"
#include "kernel/mm/kernel_memory.hpp"
#include "kernel/panic.hpp"
#include "kernel/version.hpp"
#include "vmx/vmx_probe.hpp"

extern "C" {
extern char __image_start[], __image_end[];
extern char boot_stack_top[];
extern uint64_t boot_tsc;
}

namespace hv {

namespace {

constexpr size_t kBootIstStack = 4096;
constexpr size_t kBootStackBytes = 16384;  // boot/entry.asm
alignas(16) constinit uint8_t g_boot_ist[3][kBootIstStack];

constinit boot::BootInfo g_boot{};
constinit acpi::Directory g_acpi_dir{};
constinit acpi::Madt g_madt{};
constinit bool g_have_madt = false;
constinit mm::Reservations g_reserved{};
constinit uint64_t g_trampoline = 0;
constinit uint32_t g_magic = 0;
constinit uint64_t g_info = 0;

// Keys this build understands (docs/cmdline.md). Anything else starting with
// "hv." is reported, so a typo does not silently change nothing.
constexpr const char* kKnownKeys[] = {"hv.test_exit", "hv.dump", "hv.inject", "hv.max_cpus", "hv.test_duration_ms",
                                      "hv.test_actions"};

void log_error(const char* component, const char* what, const Error& e) {
    Line l("error");
    l.s("component", component).s("what", what).s("code", errc_name(e.code)).s("detail", e.detail).x("value", e.value);
    log::emit(l);
    log::error(component, "%s: %s", what, e.detail);
}

bool starts_with(const char* s, size_t n, const char* prefix) {
    size_t i = 0;
    for (; prefix[i]; ++i)
        if (i >= n || s[i] != prefix[i]) return false;
    return true;
}

void check_cmdline(const Cmdline& cmd) {
    cmd.for_each([](const CmdlineToken& t) {
        if (!starts_with(t.key, t.key_len, "hv.")) return true;
        for (const char* k : kKnownKeys) {
            size_t n = 0;
            while (k[n]) ++n;
            if (n == t.key_len && starts_with(t.key, t.key_len, k)) return true;
        }
        char key[64];
        size_t n = t.key_len < sizeof key - 1 ? t.key_len : sizeof key - 1;
        __builtin_memcpy(key, t.key, n);
        key[n] = '\0';
        log::warn("cmdline", "unknown option %s ignored", key);
        return true;
    });
}

// hv.dump: raw bytes of what the hypervisor parsed, 64 per line, so real boots
// become unit-test data (tools/capture-data, tests/data/README.md).
void dump_bytes(const char* region, uint64_t phys, uint64_t len) {
    const uint8_t* p = mm::phys_reader().view(phys, len);
    if (!p) return;
    static const char kHex[] = "0123456789abcdef";
    for (uint64_t off = 0; off < len; off += 64) {
        uint64_t n = len - off < 64 ? len - off : 64;
        char hex[129];
        for (uint64_t i = 0; i < n; ++i) {
            hex[2 * i] = kHex[p[off + i] >> 4];
            hex[2 * i + 1] = kHex[p[off + i] & 15];
        }
        hex[2 * n] = '\0';
        Line l("dump");
        l.s("region", region).x("addr", phys + off).s("data", hex);
        log::emit(l);
    }
}

void report_memory_map() {
    static const char* const kTypes[] = {"?", "usable", "reserved", "acpi_reclaimable", "acpi_nvs", "bad"};
    for (size_t i = 0; i < g_boot.region_count; ++i) {
        const auto& r = g_boot.regions[i];
        auto t = static_cast<uint32_t>(r.type);
        Line l("mem.region");
        l.x("base", r.base).x("end", r.base + r.length).s("type", t < 6 ? kTypes[t] : "reserved");
        log::emit(l);
    }
    if (g_boot.regions_dropped)
        log::warn("mem", "memory map has %zu more entries than the %zu supported; they are ignored",
                  g_boot.regions_dropped, boot::kMaxRegions);
}

void reserve_boot_ranges() {
    g_reserved.add(0, 4096, "page0");  // real-mode IVT/BDA; also keeps null unmapped
    g_reserved.add(reinterpret_cast<uint64_t>(__image_start), reinterpret_cast<uint64_t>(__image_end), "image");
    g_reserved.add(g_boot.info_phys, g_boot.info_phys + g_boot.info_size, "boot_info");
    for (size_t i = 0; i < g_boot.loader_data_count; ++i)
        g_reserved.add(g_boot.loader_data[i].base, g_boot.loader_data[i].end, "loader_data");
    for (size_t i = 0; i < g_boot.module_count; ++i)
        g_reserved.add(g_boot.modules[i].start, g_boot.modules[i].end, "module");
}

// Test hook (hv.inject=madt-checksum): corrupt the firmware's MADT in memory
// before it is parsed, to prove that a bad table is caught and reported.
void inject_madt_corruption(const acpi::Rsdp& rsdp) {
    auto dir = acpi::load_directory(mm::phys_reader(), rsdp);
    if (!dir) return;
    const acpi::TableRef* t = dir->find("APIC");
    if (!t) return;
    auto* p = const_cast<uint8_t*>(mm::phys_reader().view(t->phys, t->length));
    if (p) p[t->length - 1] ^= 0x5A;
    log::warn("inject", "corrupted MADT at 0x%llx on request (hv.inject=madt-checksum)",
              static_cast<unsigned long long>(t->phys));
}

void parse_acpi(const Cmdline& cmd, bool dump) {
    Result<acpi::Rsdp> rsdp = make_error(Errc::not_found, "no RSDP");
    const char* source = "bios_scan";
    if (g_boot.rsdp_copy_len) {
        source = "multiboot2";
        rsdp = acpi::parse_rsdp_copy(g_boot.rsdp_copy, g_boot.rsdp_copy_len, 0);
    } else {
        auto at = acpi::find_rsdp_bios(mm::phys_reader());
        if (at) rsdp = acpi::parse_rsdp(mm::phys_reader(), *at);
        else rsdp = at.error();
    }
    if (!rsdp) {
        log_error("acpi", "RSDP not found or invalid; only the boot CPU will run", rsdp.error());
        return;
    }
    if (dump && rsdp->phys) dump_bytes("rsdp", rsdp->phys, rsdp->revision >= 2 ? 36 : 20);
    if (dump && !rsdp->phys) {
        // The loader passed a copy; for test data also dump the firmware's own RSDP
        // when a legacy BIOS area has one (absent under UEFI), so the BIOS scan is
        // tested on every BIOS capture.
        if (auto at = acpi::find_rsdp_bios(mm::phys_reader())) {
            if (auto bios = acpi::parse_rsdp(mm::phys_reader(), *at))
                dump_bytes("rsdp", *at, bios->revision >= 2 ? 36 : 20);
        }
    }
    if (dump) dump_bytes("bda", 0x400, 0x100);
    if (cmd.list_contains("hv.inject", "madt-checksum")) inject_madt_corruption(*rsdp);

    auto dir = acpi::load_directory(mm::phys_reader(), *rsdp);
    if (!dir) {
        log_error("acpi", rsdp->revision >= 2 ? "XSDT invalid" : "RSDT invalid", dir.error());
        return;
    }
    g_acpi_dir = *dir;
    Line l("acpi");
    l.s("rsdp_source", source).x("rsdp", rsdp->phys).u("revision", rsdp->revision).s("oem", rsdp->oem_id)
        .s("root", g_acpi_dir.used_xsdt ? "xsdt" : "rsdt").x("root_addr", g_acpi_dir.root_phys)
        .u("tables", g_acpi_dir.count).u("rejected", g_acpi_dir.rejected);
    log::emit(l);
    if (dump) {
        auto root = acpi::check_table(mm::phys_reader(), g_acpi_dir.root_phys);
        if (root) dump_bytes("acpi", root->phys, root->length);
    }
    for (size_t i = 0; i < g_acpi_dir.count; ++i) {
        const auto& t = g_acpi_dir.tables[i];
        Line tl("acpi.table");
        tl.s("sig", t.signature).x("addr", t.phys).u("len", t.length).u("rev", t.revision);
        log::emit(tl);
        g_reserved.add(t.phys, t.phys + t.length, "acpi_table");
        if (dump && t.length <= 16384) dump_bytes("acpi", t.phys, t.length);
    }
    g_reserved.add(g_acpi_dir.root_phys, g_acpi_dir.root_phys + 4096, "acpi_root");
    if (g_acpi_dir.rejected) {
        Line e("error");
        e.s("component", "acpi").s("what", "table rejected").s("sig", g_acpi_dir.first_reject_sig)
            .x("addr", g_acpi_dir.first_reject_phys).s("code", errc_name(g_acpi_dir.first_reject.code))
            .s("detail", g_acpi_dir.first_reject.detail).x("value", g_acpi_dir.first_reject.value);
        log::emit(e);
        log::error("acpi", "%zu table(s) rejected; first: %s", g_acpi_dir.rejected, g_acpi_dir.first_reject_sig);
    }
    const acpi::TableRef* apic = g_acpi_dir.find("APIC");
    if (!apic) {
        log::error("acpi", "no valid MADT (APIC table); only the boot CPU will run");
        return;
    }
    auto r = acpi::parse_madt_into(mm::phys_reader(), *apic, g_madt);
    if (!r) {
        log_error("acpi", "MADT invalid; only the boot CPU will run", r.error());
        return;
    }
    g_have_madt = true;
    Line m("acpi.madt");
    m.x("lapic", g_madt.lapic_address).u("cpus", g_madt.cpu_count).u("usable_cpus", g_madt.usable_cpu_count())
        .u("ioapics", g_madt.ioapic_count).u("overrides", g_madt.override_count).u("skipped", g_madt.skipped_entries);
    log::emit(m);
    if (g_madt.dropped_entries)
        log::warn("acpi", "MADT has %zu entries beyond our capacity; those CPUs/devices are ignored",
                  g_madt.dropped_entries);
}

[[noreturn]] void bsp_continue();

}  // namespace

extern "C" [[noreturn]] void kernel_main_bsp(uint32_t magic, uint64_t info) {
    log::init();
    g_magic = magic;
    g_info = info;

    cpu::PerCpu& bsp = cpu::add_cpu(0);
    bsp.is_bsp = true;
    bsp.state = cpu::CpuState::online;
    uint64_t boot_top = reinterpret_cast<uint64_t>(boot_stack_top);
    bsp.stacks = cpu::Stacks{boot_top, reinterpret_cast<uint64_t>(g_boot_ist[0] + kBootIstStack),
                             reinterpret_cast<uint64_t>(g_boot_ist[1] + kBootIstStack),
                             reinterpret_cast<uint64_t>(g_boot_ist[2] + kBootIstStack), boot_top - kBootStackBytes};
    cpu::load(bsp);

    Line b("boot");
    b.s("version", kVersion).x("magic", magic).x("info", info).x("image_start", reinterpret_cast<uint64_t>(__image_start))
        .x("image_end", reinterpret_cast<uint64_t>(__image_end)).u("entry_tsc", boot_tsc);
    log::emit(b);

    auto parsed = boot::parse_boot_info(mm::phys_reader(), magic, info, g_boot);
    if (!parsed) {
        log_error("boot", "boot information unusable", parsed.error());
        PANIC("cannot continue without a memory map");
    }
    Cmdline cmd(g_boot.cmdline);
    set_test_exit(cmd.flag("hv.test_exit"));
    Line bl("boot.loader");
    bl.u("protocol", g_boot.protocol).s("loader", g_boot.loader_name).s("cmdline", g_boot.cmdline)
        .u("modules", g_boot.module_count).u("regions", g_boot.region_count);
    log::emit(bl);
    if (g_boot.cmdline_truncated) log::warn("cmdline", "command line longer than %zu bytes was cut", sizeof g_boot.cmdline);
    check_cmdline(cmd);
    bool dump = cmd.list_contains("hv.dump", "acpi") || cmd.list_contains("hv.dump", "mbi");

    if (cmd.list_contains("hv.inject", "mmap-overlap") && g_boot.region_count < boot::kMaxRegions) {
        // Test hook: a reserved region overlapping usable RAM, as buggy firmware reports.
        g_boot.regions[g_boot.region_count++] = boot::MemRegion{0x100000, 0x100000, boot::MemType::reserved};
        log::warn("inject", "added overlapping reserved region 1-2 MiB on request (hv.inject=mmap-overlap)");
    }

    if (dump) {
        Line meta("dump.meta");
        meta.x("magic", magic).x("mbi", info).u("protocol", g_boot.protocol).s("loader", g_boot.loader_name);
        log::emit(meta);
        dump_bytes("mbi", g_boot.info_phys, g_boot.info_size);
        for (size_t i = 0; i < g_boot.loader_data_count; ++i)
            dump_bytes("mbi", g_boot.loader_data[i].base, g_boot.loader_data[i].end - g_boot.loader_data[i].base);
    }
    report_memory_map();
    reserve_boot_ranges();
    parse_acpi(cmd, dump);
    if (g_reserved.overflowed()) log::warn("mem", "too many reserved ranges; some boot data may be reused");

    bool gib_pages = (x86::cpuid(0x80000001).edx & (1u << 26)) != 0;
    auto mr = mm::init(g_boot, g_reserved, gib_pages, &g_trampoline);
    if (!mr) {
        log_error("mem", "memory setup failed", mr.error());
        PANIC("cannot continue without kernel page tables");
    }
    auto st = mm::stats();
    Line ml("mem");
    ml.u("usable_kib", st.usable_bytes / 1024).u("managed_kib", st.managed_bytes / 1024)
        .u("free_kib", st.free_bytes / 1024).u("direct_map_mib", st.direct_map_bytes >> 20)
        .u("page_tables", st.page_table_pages).b("gib_pages", gib_pages).u("overlaps", st.map_overlaps)
        .u("invalid", st.map_invalid).x("trampoline", g_trampoline);
    log::emit(ml);
    if (st.map_overlaps) log::warn("mem", "firmware memory map has %zu overlapping entries; kept the stricter type", st.map_overlaps);

    // Move to a stack with a guard page; the boot stack stays as it was.
    if (!cpu::allocate_stacks(bsp)) PANIC("no memory for the boot CPU's stacks");
    bsp.tss.ist[cpu::kIstNmi - 1] = bsp.stacks.nmi_top;
    bsp.tss.ist[cpu::kIstDoubleFault - 1] = bsp.stacks.double_fault_top;
    bsp.tss.ist[cpu::kIstMachineCheck - 1] = bsp.stacks.machine_check_top;
    bsp.tss.rsp[0] = bsp.stacks.kernel_top;
    asm volatile("mov %0, %%rsp\n xor %%ebp, %%ebp\n call *%1" ::"r"(bsp.stacks.kernel_top), "r"(&bsp_continue) : "memory");
    __builtin_unreachable();
}

namespace {

[[noreturn]] void bsp_continue() {
    Cmdline cmd(g_boot.cmdline);
    cpu::PerCpu& bsp = cpu::cpu(0);

    bool x2apic = (x86::cpuid(1).ecx & (1u << 21)) != 0;
    volatile uint32_t* mmio = nullptr;
    if (!x2apic) {
        auto m = mm::map_mmio(drv::Lapic::base_phys(), 4096);
        if (!m) PANIC("cannot map the local APIC");
        mmio = static_cast<volatile uint32_t*>(*m);
    }
    drv::Lapic::init_global(x2apic, mmio);
    drv::Lapic::enable_local();
    bsp.apic_id = drv::Lapic::id();

    auto tsc = drv::calibrate_tsc();
    Line tl("time");
    tl.u("tsc_hz", tsc.hz).s("source", tsc.source).s("apic_mode", x2apic ? "x2apic" : "xapic");
    log::emit(tl);
    if (!tsc.hz) log::warn("time", "TSC frequency unknown; timeouts use a 3 GHz guess");

    vmx::probe_this_cpu(bsp, cmd.list_contains("hv.dump", "vmx"));
    cpu::report_cpu(bsp, nullptr);
    vmx::report(bsp);

    char max_cpus_text[12] = {};
    uint64_t max_cpus = 0;
    if (cmd.get("hv.max_cpus", max_cpus_text, sizeof max_cpus_text) &&
        !parse_decimal(max_cpus_text, __builtin_strlen(max_cpus_text), 1'000'000, &max_cpus))
        log::warn("cmdline", "hv.max_cpus=%s is not a CPU count; starting all CPUs", max_cpus_text);

    cpu::SmpReport smp{1, 1, 0};
    if (g_have_madt) {
        bool listed_bsp = false;
        for (size_t i = 0; i < g_madt.cpu_count; ++i) listed_bsp |= g_madt.cpus[i].apic_id == bsp.apic_id;
        if (!listed_bsp) log::warn("smp", "boot CPU (APIC id %u) is not in the MADT", bsp.apic_id);
        smp = cpu::start_aps(g_madt, bsp.apic_id,
                             cpu::SmpOptions{g_trampoline, tsc.hz, cmd.list_contains("hv.dump", "vmx"),
                                             static_cast<uint32_t>(max_cpus),
                                             cmd.list_contains("hv.inject", "ap-hang")});
    }

    size_t vmx_cpus = 0, ept = 0, vpid = 0, ug = 0;
    for (size_t i = 0; i < cpu::cpu_count(); ++i) {
        const cpu::PerCpu& pc = cpu::cpu(i);
        if (pc.state != cpu::CpuState::online) continue;
        bool usable = pc.vmx.vmx && pc.feature_control == vmx::FeatureControlState::enabled_locked;
        vmx_cpus += usable;
        ept += usable && pc.vmx.ept;
        vpid += usable && pc.vmx.vpid;
        ug += usable && pc.vmx.unrestricted_guest;
    }

    uint64_t now = x86::rdtsc();
    uint64_t ticks = now - boot_tsc;
    auto st = mm::stats();
    uint32_t errors = log::error_count();
    bool ok = errors == 0 && smp.failed == 0;
    Line s("summary");
    s.u("cpus_listed", smp.listed).u("cpus_online", smp.online).u("cpus_failed", smp.failed)
        .u("vmx_cpus", vmx_cpus).u("ept_cpus", ept).u("vpid_cpus", vpid).u("ug_cpus", ug)
        .u("mem_usable_kib", st.usable_bytes / 1024).u("mem_free_kib", st.free_bytes / 1024)
        .u("errors", errors).u("warnings", log::warning_count())
        .u("boot_tsc_ticks", ticks).u("boot_us", tsc.hz ? ticks * 1000 / (tsc.hz / 1000) : 0)
        .s("status", ok ? "ok" : "degraded");
    log::emit(s);

    if (cmd.list_contains("hv.inject", "exception-ud")) asm volatile("ud2");
    if (cmd.list_contains("hv.inject", "exception-pf")) {
        // Page 0 is never mapped; the asm keeps the compiler from reasoning about it.
        uint64_t addr = 0x8, value;
        asm volatile("mov (%1), %0" : "=r"(value) : "r"(addr) : "memory");
        (void)value;
    }

    if (!guest::start_partitions(g_boot, tsc.hz)) {
        if (test_exit_enabled()) platform_exit(ok ? ExitStatus::success : ExitStatus::failure);
        Line idle("idle");
        idle.u("cpus", smp.online);
        log::emit(idle);
        x86::halt_forever();
    }

    // The management loop: guests' output, stops and restarts. Under test it
    // ends after hv.test_duration_ms (default 2000) of TSC time, or as soon as no
    // guest is left to run.
    uint64_t duration_ms = 2000;
    char dur[16] = {};
    if (cmd.get("hv.test_duration_ms", dur, sizeof dur) &&
        !parse_decimal(dur, __builtin_strlen(dur), 1'000'000'000, &duration_ms))
        log::warn("cmdline", "hv.test_duration_ms=%s is not a number of milliseconds; using 2000", dur);
    uint64_t hz = tsc.hz ? tsc.hz : 3'000'000'000ull;
    uint64_t deadline = x86::rdtsc() + hz / 1000 * duration_ms;
    char actions[200] = {};
    if (cmd.get("hv.test_actions", actions, sizeof actions)) {
        if (auto r = guest::schedule_test_actions(actions, x86::rdtsc()); !r)
            log::error("cmdline", "hv.test_actions=%s: %s", actions, r.error().detail);
    }
    for (;;) {
        uint64_t t = x86::rdtsc();
        bool alive = guest::poll_partitions(t);
        if (test_exit_enabled() && (t >= deadline || !alive)) {
            guest::stop_partitions(tsc.hz);
            guest::report_partitions();
            Line end("partitions.end");
            end.s("why", alive ? "duration" : "no_guest_left").u("errors", log::error_count())
                .u("warnings", log::warning_count());
            log::emit(end);
            platform_exit(log::error_count() == 0 ? ExitStatus::success : ExitStatus::failure);
        }
        x86::pause();
    }
}

}  // namespace

}  // namespace hv
