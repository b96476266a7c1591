#!/usr/bin/env python3
"""Boot the hypervisor in an emulator and check what its console prints.

Each case in CASES is one ctest entry (`hvtest.py run CASE`). A run:
  * starts QEMU or Bochs with the serial console going to a file,
  * stops it after `timeout` seconds at the latest (a hang fails the case and
    the console log is printed),
  * parses the `hv.*` event lines (docs/console.md) and applies the case's checks.
Only the Python standard library is used.
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# ---------------------------------------------------------------------------
# Console parsing

# One event line: `<prefix>.<event>` then key=value fields. The hypervisor's
# prefix is `hv`; guests print `guest.<event>` lines in the same format.
EVENT_RE = {prefix: re.compile(r'^(' + prefix + r'\.[A-Za-z0-9_.]+)((?: [A-Za-z0-9_]+=(?:"(?:[^"\\]|\\.)*"|\S*))*)\s*$')
            for prefix in ("hv", "guest")}
FIELD_RE = re.compile(r' ([A-Za-z0-9_]+)=("(?:[^"\\]|\\.)*"|\S*)')


def unquote(v):
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        v = v[1:-1]
        v = re.sub(r'\\x([0-9a-f]{2})', lambda m: chr(int(m.group(1), 16)), v)
        v = re.sub(r'\\(.)', r'\1', v)
    return v


def parse_events(text, prefix="hv"):
    """Returns [(event, {key: value})] for every well-formed `<prefix>.*` line."""
    events = []
    for raw in text.splitlines():
        line = raw.rstrip('\r')
        m = EVENT_RE[prefix].match(line)
        if not m:
            continue
        fields = {k: unquote(v) for k, v in FIELD_RE.findall(m.group(2))}
        events.append((m.group(1), fields))
    return events


class Console:
    def __init__(self, text, exit_code, timed_out, wall, marks):
        self.text = text
        self.events = parse_events(text)
        self.exit_code = exit_code
        self.timed_out = timed_out
        self.wall = wall          # seconds the emulator ran
        self.marks = marks        # {event: seconds after start when first seen}

    def all(self, name, **match):
        return [f for e, f in self.events if e == name and all(f.get(k) == str(v) for k, v in match.items())]

    def guest_lines(self, guest):
        """[(index, event, fields)] of what `guest` printed on its UART, in console order."""
        out = []
        for i, (e, f) in enumerate(self.events):
            if e == "hv.guest.console" and f.get("guest") == guest:
                for ge, gf in parse_events(f.get("text", ""), prefix="guest"):
                    out.append((i, ge, gf))
        return out

    def one(self, name, **match):
        found = self.all(name, **match)
        if not found:
            raise CheckFailed(f"no {name} line matching {match}")
        return found[-1]


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


# ---------------------------------------------------------------------------
# Emulators

def find_ovmf():
    for code, vars_ in [("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
                        ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd")]:
        if os.path.exists(code) and os.path.exists(vars_):
            return code, vars_
    return None, None


def qemu_command(case, build, workdir, serial):
    cmd = ["qemu-system-x86_64", "-machine", "pc", "-cpu", case.get("cpu", "max"),
           "-smp", case.get("smp", str(case["cpus"])), "-m", f"{case['mem']}M",
           "-display", "none", "-monitor", "none", "-no-reboot",
           "-serial", f"file:{serial}",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
    boot = case["boot"]
    if boot == "kernel":
        cmd += ["-kernel", os.path.join(build, "kernel", "hv.elf"),
                "-append", " ".join(([] if case.get("idle") else ["hv.test_exit=1"]) + case.get("append", []))]
    elif boot in ("iso", "uefi"):
        cmd += ["-cdrom", case.get("iso_path") or os.path.join(build, case.get("iso", "hv-test.iso"))]
        if boot == "uefi":
            code, vars_ = find_ovmf()
            if not code:
                raise CheckFailed("OVMF firmware not installed (Debian package ovmf)")
            vars_copy = os.path.join(workdir, "OVMF_VARS.fd")
            shutil.copy(vars_, vars_copy)
            cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={code}",
                    "-drive", f"if=pflash,format=raw,file={vars_copy}"]
    else:
        raise ValueError(boot)
    return cmd


BOCHSRC = """\
megs: {mem}
cpu: model={model}, count={cpus}, ips={ips}, reset_on_triple_fault=0
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path={iso}, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev={serial}
clock: sync=none, time0=946684800
display_library: term
log: {log}
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
"""

# Bochs instructions per emulated second. With clock sync=none the emulated
# time (and RDTSC) advance with executed instructions only, so runs are
# deterministic; this sets how many instructions one emulated second is.
BOCHS_IPS = 50_000_000
# The CPU model with VMX, EPT, VPID and unrestricted guest (DESIGN.md).
BOCHS_MODEL = "corei7_skylake_x"


def bochs_command(case, build, workdir, serial):
    rc = os.path.join(workdir, "bochsrc")
    with open(rc, "w") as f:
        f.write(BOCHSRC.format(mem=case["mem"], cpus=case["cpus"], ips=BOCHS_IPS, model=case.get("model", BOCHS_MODEL),
                               iso=case.get("iso_path") or os.path.join(build, "hv-test.iso"), serial=serial,
                               log=os.path.join(workdir, "bochs.log")))
    cmds = os.path.join(workdir, "bochs.cmds")
    with open(cmds, "w") as f:
        f.write("c\n")  # Debian's Bochs has the debugger built in: just continue
    return ["bochs", "-q", "-f", rc, "-rc", cmds]


def run_emulator(case, build, verbose=True):
    workdir = tempfile.mkdtemp(prefix=f"hvtest-{case['name']}-")
    serial = os.path.join(workdir, "serial.log")
    open(serial, "w").close()
    if case.get("config"):
        # An appliance image for this case: hypervisor, configuration, guests.
        iso = os.path.join(workdir, "appliance.iso")
        cmdline = f"hv.test_exit=1 hv.test_duration_ms={case.get('duration_ms', 1500)}"
        if case.get("actions"):
            cmdline += f" hv.test_actions={case['actions']}"
        cmdline += "".join(" " + a for a in case.get("append", []))
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "mkimage.py"),
                            "--kernel", os.path.join(build, "kernel", "hv.elf"),
                            "--config", os.path.join(HERE, "configs", case["config"]),
                            "--guest-dir", os.path.join(build, "guests"), "--cmdline", cmdline, "--out", iso],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise CheckFailed(f"mkimage failed: {r.stderr}")
        case = dict(case, iso_path=iso)
    if case["emulator"] == "qemu":
        cmd = qemu_command(case, build, workdir, serial)
    else:
        cmd = bochs_command(case, build, workdir, serial)
    env = dict(os.environ, TERM=os.environ.get("TERM") or "xterm")
    if verbose:
        print("+", " ".join(shlex.quote(c) for c in cmd), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=open(os.path.join(workdir, "stdout.log"), "w"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    marks = {}
    timed_out = False
    pos = 0
    pending = ""
    while True:
        try:
            code = proc.wait(timeout=0.02)
            break
        except subprocess.TimeoutExpired:
            pass
        with open(serial, "r", errors="replace") as f:
            f.seek(pos)
            chunk = f.read()
            pos = f.tell()
        pending += chunk
        now = time.monotonic() - start
        for line in pending.split("\n")[:-1]:
            ev = line.split(" ", 1)[0].strip()
            if ev.startswith("hv.") and ev not in marks:
                marks[ev] = now
        pending = pending.split("\n")[-1]
        if now > case["timeout"]:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
            break
    wall = time.monotonic() - start
    with open(serial, "r", errors="replace") as f:
        text = f.read()
    for line in text.splitlines():
        ev = line.split(" ", 1)[0].strip()
        if ev.startswith("hv.") and ev not in marks:
            marks[ev] = wall
    return Console(text, code, timed_out, wall, marks), workdir


# ---------------------------------------------------------------------------
# Checks

def check_summary(c, case):
    expect(not c.timed_out, f"emulator did not end within {case['timeout']} s")
    s = c.one("hv.summary")
    loader = c.one("hv.boot.loader")
    protocol = case.get("protocol", 1 if case["boot"] == "kernel" else 2)
    expect(loader["protocol"] == str(protocol), f"booted with multiboot {loader['protocol']}, expected {protocol}")
    cpus = case["cpus"]
    expect(s["cpus_online"] == str(cpus), f"cpus_online={s['cpus_online']}, expected {cpus}")
    expect(s["cpus_listed"] == str(cpus), f"cpus_listed={s['cpus_listed']}, expected {cpus}")
    expect(s["cpus_failed"] == "0", f"cpus_failed={s['cpus_failed']}")
    expect(s["status"] == "ok", f"status={s['status']} errors={s['errors']}")
    online = c.all("hv.cpu", state="online")
    expect(len(online) == cpus, f"{len(online)} hv.cpu state=online lines, expected {cpus}")
    expect(sorted(int(f["index"]) for f in online) == list(range(cpus)), "CPU indices not 0..n-1")
    # Memory: usable RAM as reported must be close to what the emulator was given
    # (firmware keeps a few hundred KiB to a few MiB; QEMU's PCI hole only moves RAM).
    mem_kib = case["mem"] * 1024
    usable = int(s["mem_usable_kib"])
    expect(0.90 * mem_kib <= usable <= mem_kib, f"mem_usable_kib={usable}, expected ~{mem_kib}")
    expect(int(s["mem_free_kib"]) < usable, "free memory not below usable memory")
    expect(c.one("hv.exit")["status"] == "success", "exit status not success")
    if case["emulator"] == "qemu":
        expect(c.exit_code == 1, f"QEMU exit code {c.exit_code}, expected 1 (isa-debug-exit status 0)")
    return s


def check_no_vmx(c, case):
    s = check_summary(c, case)
    expect(s["vmx_cpus"] == "0", "QEMU TCG reported VMX")
    for i in range(case["cpus"]):
        v = c.one("hv.vmx", cpu=i)
        expect(v["vmx"] == "no" and v["reason"] == "cpuid_no_vmx", f"cpu {i}: {v}")


def check_vmx(c, case):
    s = check_summary(c, case)
    n = str(case["cpus"])
    for k in ("vmx_cpus", "ept_cpus", "vpid_cpus", "ug_cpus"):
        expect(s[k] == n, f"{k}={s[k]}, expected {n}")
    for i in range(case["cpus"]):
        v = c.one("hv.vmx", cpu=i)
        for k in ("vmx", "usable", "ept", "vpid", "unrestricted_guest", "preemption_timer", "ept_2m"):
            expect(v.get(k) == "yes", f"cpu {i}: {k}={v.get(k)}")
        expect(v["feature_control"] == "enabled", f"cpu {i}: feature_control={v['feature_control']}")


def check_bad_madt(c, case):
    expect(not c.timed_out, "emulator hung")
    err = c.one("hv.error", component="acpi", what="table rejected")
    expect(err["sig"] == "APIC" and err["code"] == "bad_checksum", f"wrong rejection: {err}")
    s = c.one("hv.summary")
    expect(s["status"] == "degraded", f"status={s['status']}")
    expect(int(s["errors"]) >= 2, f"errors={s['errors']}")  # the rejection + 'no valid MADT'
    expect(s["cpus_online"] == "1", "boot CPU should still run alone")
    expect(c.one("hv.exit")["status"] == "failure", "degraded boot must end with failure status")
    expect(c.exit_code == 3, f"QEMU exit code {c.exit_code}, expected 3 (status 1)")


def check_mmap_overlap(c, case):
    check_summary(c, case)
    m = c.one("hv.mem")
    expect(m["overlaps"] == "1", f"overlaps={m['overlaps']}")
    w = [f for f in c.all("hv.log", level="warn", component="mem") if "overlapping" in f["msg"]]
    expect(w, "no warning about the overlapping memory map")


def check_exception(vector, name, cr2=None):
    def check(c, case):
        expect(not c.timed_out, "CPU exception was not reported: emulator hung")
        e = c.one("hv.exception")
        expect(e["vector"] == str(vector) and e["name"] == name, f"wrong exception: {e}")
        expect(e["cpu"] == "0", "exception on the wrong CPU")
        if cr2 is not None:
            expect(int(e["cr2"], 16) == cr2, f"cr2={e['cr2']}")
        regs = c.all("hv.regs", cpu=0)
        expect(len(regs) == 2 and "rax" in regs[0] and "r15" in regs[1], "register dump missing")
        bt = c.all("hv.backtrace", cpu=0)
        expect(len(bt) >= 2, f"backtrace has {len(bt)} frames, expected the faulting RIP and callers")
        expect(bt[0]["rip"] == e["rip"], "backtrace frame 0 is not the faulting RIP")
        expect(c.one("hv.cpu.halted")["reason"] == "exception", "CPU not reported halted")
        expect(c.one("hv.exit")["status"] == "failure", "exit status not failure")
        expect(c.exit_code == 3, f"QEMU exit code {c.exit_code}, expected 3")
    return check


def check_unknown_option(c, case):
    check_summary(c, case)
    w = [f for f in c.all("hv.log", level="warn", component="cmdline") if "hv.bogus_option" in f["msg"]]
    expect(w, "unknown hv.* option not reported")


def check_max_cpus(c, case):
    expect(not c.timed_out, "emulator hung")
    s = c.one("hv.summary")
    expect(s["cpus_listed"] == str(case["cpus"]), f"cpus_listed={s['cpus_listed']}")
    expect(s["cpus_online"] == "2", f"hv.max_cpus=2 but cpus_online={s['cpus_online']}")
    expect(len(c.all("hv.cpu", state="online")) == 2, "wrong number of hv.cpu lines")
    expect(s["status"] == "ok", f"status={s['status']}")
    w = [f for f in c.all("hv.log", level="warn", component="cmdline") if "hv.max_cpus" in f["msg"]]
    expect(not w, "valid hv.max_cpus was warned about")


def check_ap_hang(c, case):
    expect(not c.timed_out, "a CPU that never starts hung the boot")
    last = case["cpus"] - 1
    f = c.one("hv.cpu", index=last)
    expect(f["state"] == "failed" and f["reason"] == "timeout", f"CPU {last}: {f}")
    expect(len(c.all("hv.cpu", state="online")) == case["cpus"] - 1, "the other CPUs should be online")
    s = c.one("hv.summary")
    expect(s["cpus_failed"] == "1" and s["cpus_online"] == str(case["cpus"] - 1), f"summary: {s}")
    expect(s["status"] == "degraded", f"status={s['status']}")
    expect([f for f in c.all("hv.log", level="error", component="smp") if "did not start" in f["msg"]],
           "no error line for the CPU that did not start")
    expect(c.exit_code == 3, f"QEMU exit code {c.exit_code}, expected 3")


def check_hotplug_slots(c, case):
    # -smp 2,maxcpus=4: QEMU lists 4 CPUs in the MADT, 2 of them disabled
    # (hot-plug slots). Those must not be started or counted as failed.
    check_summary(c, case)
    m = c.one("hv.acpi.madt")
    expect(m["cpus"] == "4" and m["usable_cpus"] == "2", f"madt: {m}")


def check_hang_detected(c, case):
    # Without hv.test_exit the hypervisor idles forever after its summary: the
    # harness must notice, kill the emulator and say so.
    expect(c.timed_out, "the emulator should still have been running")
    expect(c.one("hv.idle"), "no idle line")


def guest_events(c, guest, name):
    return [(i, f) for i, e, f in c.guest_lines(guest) if e == name]


def check_partitions_end(c, case, errors=0):
    expect(not c.timed_out, f"emulator did not end within {case['timeout']} s")
    end = c.one("hv.partitions.end")
    expect(int(end["errors"]) == errors, f"hypervisor errors={end['errors']}, expected {errors}")
    s = c.one("hv.summary")
    expect(s["cpus_online"] == str(case["cpus"]), f"cpus_online={s['cpus_online']}")


def check_heartbeats(c, guests, at_least=3):
    spans = {}
    for g in guests:
        hello = guest_events(c, g, "guest.hello")
        expect(hello and hello[0][1]["name"] == g, f"{g}: no guest.hello naming it")
        beats = guest_events(c, g, "guest.heartbeat")
        expect(len(beats) >= at_least, f"{g}: {len(beats)} heartbeats, expected at least {at_least}")
        expect([int(f["n"]) for _, f in beats] == list(range(1, len(beats) + 1)), f"{g}: heartbeats out of order")
        spans[g] = (beats[0][0], beats[-1][0])
    return spans


def check_three_guests(c, case):
    check_partitions_end(c, case)
    spans = check_heartbeats(c, ["alpha", "beta", "gamma"])
    # Concurrency: every guest's heartbeats overlap every other guest's in time.
    for a in spans:
        for b in spans:
            if a != b:
                expect(spans[a][0] < spans[b][1], f"{a} and {b} did not run concurrently")
    for g in ("alpha", "beta", "gamma"):
        start = c.one("hv.guest.start", guest=g)
        expect(start["mem_mib"] == "8" and start["ept_tables"] == "3", f"{g}: {start}")
        run = c.one("hv.guest.running", guest=g)
        expect(int(run["ticks_from_hv_entry"]) > 0, "no entry-to-guest figure")
        st = c.one("hv.guest.stats", guest=g)
        expect(st["console_dropped"] == "0", f"{g} lost console lines")


def check_probe(c, case):
    check_partitions_end(c, case)
    checks = guest_events(c, "probe", "guest.check")
    failed = [f for _, f in checks if f["result"] != "pass"]
    expect(not failed, f"probe checks failed: {failed}")
    names = {f["name"] for _, f in checks}
    for n in ("cpuid1_ecx_vmx_clear", "cpuid1_ecx_hypervisor_set", "cpuid_hv_signature", "cpuid_hv_abi_version",
              "hc_unknown_call", "hc_console_write_beyond_ram", "pio_unknown_port_reads_ff", "msr_feature_control_gp",
              "cr4_set_vmxe_gp", "cr4_vmxe_hidden", "cr4_set_osfxsr", "cr8_roundtrip", "cr8_above_15_gp",
              "xsetbv_valid", "xsetbv_no_x87_gp"):
        expect(n in names, f"probe did not run check {n}: {sorted(names)}")
    p = guest_events(c, "probe", "guest.probe")
    expect(p and p[-1][1]["failed"] == "0" and int(p[-1][1]["passed"]) >= 10, f"probe result: {p}")
    stop = c.one("hv.guest.stop", guest="probe")
    expect(stop["reason"] == "exit" and stop["code"] == "0" and stop["failure"] == "no", f"probe stop: {stop}")
    st = c.one("hv.guest.stats", guest="probe")
    expect(int(st["msr_denied"]) >= 1 and int(st["io_unknown_in"]) >= 1 and int(st["hypercall_errors"]) >= 1,
           f"probe's denied accesses were not counted: {st}")
    expect(st["console_dropped"] == "0", "the probe polls LSR, so none of its lines may be lost")
    check_heartbeats(c, ["beat"])


def check_hostile(c, case):
    check_partitions_end(c, case)
    mem = 8 << 20
    expected = {  # attack n -> (stop reason, gpa or exit code)
        0: ("ept_violation", mem + (1 << 30)),
        1: ("ept_violation", 0xFEE00000),
        2: ("ept_violation", mem),
        3: ("exit", 100 + 13),  # #GP injected for WRMSR IA32_APIC_BASE
        4: ("exit", 0),         # PCI config ports: dropped/all-ones, it survives
    }
    stops = c.all("hv.guest.stop", guest="hostile")
    attacks = guest_events(c, "hostile", "guest.attack")
    expect(len(stops) >= 5 and len(attacks) >= 5, f"{len(attacks)} attacks, {len(stops)} stops")
    for n, (reason, value) in expected.items():
        a = attacks[n][1]
        expect(a["n"] == str(n), f"attack order: {a}")
        s = stops[n]
        expect(s["reason"] == reason, f"attack {n} ({a['name']}): stop {s}")
        if reason == "ept_violation":
            expect(int(s["gpa"], 16) == value, f"attack {n}: gpa {s['gpa']}, expected {value:#x}")
        else:
            expect(int(s["code"]) == value, f"attack {n}: exit code {s['code']}, expected {value}")
    restarts = [int(f["restart"]) for f in c.all("hv.guest.restart", guest="hostile")]
    expect(restarts == list(range(1, 5)), f"restart counts {restarts}")
    expect(c.one("hv.guest.gave_up", guest="hostile")["limit"] == "4", "no gave_up at the limit")
    spans = check_heartbeats(c, ["beat1", "beat2"])
    last_stop = max(i for i, (e, f) in enumerate(c.events) if e == "hv.guest.stop" and f.get("guest") == "hostile")
    for g, (first, last) in spans.items():
        expect(last > last_stop, f"{g} stopped printing when the hostile guest was stopped")
    st = c.one("hv.guest.stats", guest="hostile")
    expect(int(st["msr_denied"]) >= 1, "denied WRMSR not counted")


def check_crash(c, case):
    check_partitions_end(c, case)
    stops = c.all("hv.guest.stop", guest="crasher")
    expect(len(stops) == 3 and all(s["reason"] == "triple_fault" and s["failure"] == "yes" for s in stops),
           f"crasher stops: {stops}")
    expect([s["restarts"] for s in stops] == ["0", "1", "2"], f"restart counts in stop records: {stops}")
    expect([f["restart"] for f in c.all("hv.guest.restart", guest="crasher")] == ["1", "2"], "restarts")
    delays = [int(f["delay_ms"]) for f in c.all("hv.guest.restart_scheduled", guest="crasher")]
    expect(delays == [20, 40], f"back-off delays {delays}, expected [20, 40]")
    g = c.one("hv.guest.gave_up", guest="crasher")
    expect(g["restarts"] == "2" and g["limit"] == "2", f"gave_up: {g}")
    crashes = guest_events(c, "crasher", "guest.crash")
    expect([f["restart"] for _, f in crashes] == ["0", "1", "2"], f"guest saw restart counts {crashes}")
    check_heartbeats(c, ["beat"])


def check_bad_guest(c, case):
    check_partitions_end(c, case, errors=1)
    diag = c.one("hv.config.diag", guest="broken")
    expect(diag["severity"] == "error" and diag["field"] == "colour" and diag["line"] == "16", f"diag: {diag}")
    expect("unknown key" in diag["msg"], f"diag message: {diag['msg']}")
    expect(c.one("hv.guest.rejected", guest="broken")["line"] == "11", "rejected guest's line")
    cfg = c.one("hv.config")
    expect(cfg["guests"] == "3" and cfg["started"] == "2", f"config: {cfg}")
    check_heartbeats(c, ["good1", "good3"])
    expect(not c.guest_lines("broken"), "the broken guest ran")


def check_spin(c, case):
    check_partitions_end(c, case)
    a = guest_events(c, "spin_cli", "guest.attack")
    expect(a and a[0][1]["name"] == "spin_cli", f"spin attack not announced: {a}")
    stop = c.one("hv.guest.stop", guest="spin_cli")
    expect(stop["reason"] == "stopped_by_hypervisor", f"spinning guest: {stop}")
    st = c.one("hv.guest.stats", guest="spin_cli")
    expect(int(st["timer_ticks"]) >= 10, f"preemption timer ticks {st['timer_ticks']}")
    check_heartbeats(c, ["beat"])


def check_modes(c, case):
    check_partitions_end(c, case)
    real = guest_events(c, "real", "guest.real16")
    expect(real and real[0][1]["pe"] == "0" and real[0][1]["cs"] == "0x1100", f"real-mode guest: {real}")
    prot = guest_events(c, "prot", "guest.prot32")
    expect(prot and prot[0][1]["pe"] == "1" and prot[0][1]["pg"] == "0", f"protected-mode guest: {prot}")
    for g, mode in (("real", "real16"), ("prot", "protected32"), ("long", "long64")):
        expect(c.one("hv.guest.start", guest=g)["mode"] == mode, f"{g}: wrong mode")
    for g in ("real", "prot"):
        s = c.one("hv.guest.stop", guest=g)
        expect(s["reason"] == "exit" and s["code"] == "0", f"{g} stop: {s}")
    check_heartbeats(c, ["long"])


def check_smp(c, case):
    check_partitions_end(c, case)
    start = c.one("hv.guest.start", guest="smp")
    expect(start["vcpus"] == "2", f"smp guest start: {start}")
    aps = guest_events(c, "smp", "guest.smp.ap")
    expect([(f["index"], f["apic_id"]) for _, f in aps] == [("1", "1")], f"application vCPUs: {aps}")
    done = guest_events(c, "smp", "guest.smp.done")
    expect(done and done[0][1]["ok"] == "yes" and done[0][1]["checked_in"] == "1", f"smp result: {done}")
    stop = c.one("hv.guest.stop", guest="smp")
    expect(stop["reason"] == "exit" and stop["code"] == "0", f"smp stop: {stop}")
    check_heartbeats(c, ["beat"])


def check_smp_crash(c, case):
    check_partitions_end(c, case)
    stops = c.all("hv.guest.stop", guest="smp")
    expect(stops and stops[0]["reason"] == "triple_fault" and stops[0]["vcpu"] == "1",
           f"the first stop should be vCPU 1's triple fault: {stops}")
    expect(len(stops) >= 2 and stops[1]["reason"] == "exit" and stops[1]["code"] == "0",
           f"the restarted guest should finish cleanly: {stops}")
    expect(c.one("hv.guest.restart", guest="smp")["restart"] == "1", "no restart")
    done = guest_events(c, "smp", "guest.smp.done")
    expect(len(done) == 1 and done[0][1]["ok"] == "yes", f"after the restart both vCPUs should check in: {done}")
    aps = guest_events(c, "smp", "guest.smp.ap")
    expect(len(aps) == 2, f"vCPU 1 should have started in both runs: {aps}")
    check_heartbeats(c, ["beat"])


def check_smp_nmi(c, case):
    # guests/smp "nmi": every step passed, and the exact NMI count per vCPU
    # (vCPU 0: 2 self + broadcast; vCPU 1: 3 + 2 halts + held 2 + shorthand +
    # broadcast + logical; vCPU 2: shorthand + broadcast + logical).
    check_partitions_end(c, case)
    nmi = guest_events(c, "smp", "guest.smp.nmi")
    expect(len(nmi) == 1, f"expected one guest.smp.nmi line: {nmi}")
    f = nmi[0][1]
    steps = ("dropped", "ipi", "self", "halt", "halt_cli", "held", "coalesced", "others", "all", "logical")
    expect(all(f.get(k) == "yes" for k in steps) and f["nested"] == "0",
           f"NMI steps: {[k for k in steps if f.get(k) != 'yes']} failed: {f}")
    expect((f["vcpu0"], f["vcpu1"], f["vcpu2"], f["total"]) == ("3", "10", "3", "16"), f"NMIs taken per vCPU: {f}")
    # The target is kicked out of the guest (or its HLT) at once, not at its
    # next 10 ms tick. Not asserted for the "cli; hlt": Bochs 2.7 holds the
    # kick's VM exit while the guest has IF = 0 (the SDM does not), so there
    # the NMI comes in with the tick.
    expect(int(f["ipi_max_us"]) < 2000 and int(f["wake_us"]) < 2000, f"NMI latency: {f}")
    expect(f["ok"] == "yes", f"smp.nmi: {f}")
    done = guest_events(c, "smp", "guest.smp.done")
    expect(done and done[0][1]["ok"] == "yes" and done[0][1]["checked_in"] == "2", f"smp result: {done}")
    stop = c.one("hv.guest.stop", guest="smp")
    expect(stop["reason"] == "exit" and stop["code"] == "0", f"smp stop: {stop}")
    # The hypervisor's side: 16 NMIs injected, the one for the vCPU not yet
    # started dropped and counted, and none of the CPU's own NMIs involved.
    st = c.one("hv.guest.stats", guest="smp")
    expect(st["nmis_injected"] == "16" and st["nmis_dropped"] == "1" and st["nmis"] == "0", f"smp stats: {st}")


def check_ping(c, case):
    check_partitions_end(c, case)
    done = guest_events(c, "pinger", "guest.ping.done")
    expect(done and done[0][1]["sent"] == "10" and done[0][1]["received"] == "10" and done[0][1]["lost"] == "0",
           f"pinger: {done}")
    replies = guest_events(c, "pinger", "guest.ping.reply")
    expect([f["seq"] for _, f in replies] == [str(i) for i in range(1, 11)] or len(replies) == 10,
           f"pinger replies: {replies}")
    other = guest_events(c, "other", "guest.ping.done")
    expect(other and other[0][1]["received"] == "0", f"a guest on another VLAN got answers: {other}")
    # Counters on request (stats@2000) and at the end.
    stats = c.all("hv.port.stats", guest="other")
    expect(len(stats) == 2, f"expected port counters on request and at the end: {stats}")
    expect(all(s["tx_packets"] == "0" for s in stats), f"the guest on VLAN 20 saw VLAN 10 traffic: {stats}")
    echo = c.all("hv.port.stats", guest="echo")[-1]
    expect(echo["tx_packets"] == "11" and echo["rx_packets"] == "11", f"echo port: {echo}")
    for g in ("echo", "pinger", "other"):
        expect(guest_events(c, g, "guest.net.up"), f"{g}: no guest.net.up")


def port_stats(c, guest):
    return c.one("hv.port.stats", guest=guest)


def check_badring(c, case):
    check_partitions_end(c, case)
    done = guest_events(c, "pinger", "guest.ping.done")
    expect(done and done[0][1]["received"] == "20" and done[0][1]["lost"] == "0",
           f"the pingers must keep talking while a neighbour breaks its ring: {done}")
    status = guest_events(c, "bad", "guest.netbad.status")
    expect(status and status[0][1]["needs_reset"] == "yes", f"the bad guest's device should need a reset: {status}")
    bad = port_stats(c, "bad")
    expect(bad.get("bad_descriptor") == "1", f"bad guest's device should have been marked broken once: {bad}")
    expect(c.one("hv.guest.stop", guest="bad")["reason"] == "exit", "the bad guest itself runs on")


def mirror_rows(c, mirror, *fields):
    """The mirror session's pcap, rebuilt from the console and read by tshark: one row of `fields` per frame."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import hv_pcap
    data = hv_pcap.extract(c.text, mirror)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{mirror}.pcap")
        with open(path, "wb") as f:
            f.write(data)
        cmd = ["tshark", "-r", path, "-T", "fields"]
        for field in fields:
            cmd += ["-e", field]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        expect(out.returncode == 0, f"tshark could not read the capture: {out.stderr}")
    return [(line.split("\t") + [""] * len(fields))[:len(fields)] for line in out.stdout.splitlines()]


def check_spoof(c, case):
    check_partitions_end(c, case)
    sp = guest_events(c, "spoofer", "guest.netbad.spoof")
    expect(sp and sp[0][1]["sent_spoofed"] == "10" and sp[0][1]["sent_own"] == "10", f"spoofer: {sp}")
    own_mac, spoof_mac = sp[0][1]["own_mac"], sp[0][1]["spoof_mac"]
    st = port_stats(c, "spoofer")
    expect(st["spoofed"] == "10", f"the switch should drop and count 10 spoofed frames: {st}")
    total = guest_events(c, "sink", "guest.sink.total")
    expect(total and total[0][1]["packets"] == "10", f"the sink should get exactly the 10 honest frames: {total}")
    looper = guest_events(c, "looper", "guest.netbad.status")
    expect(looper and looper[0][1]["needs_reset"] == "yes", f"descriptor loop not contained: {looper}")
    expect(port_stats(c, "looper").get("chain_too_long") == "1", f"looper's port: {port_stats(c, 'looper')}")
    rows = mirror_rows(c, "cap", "eth.src", "udp.dstport")
    udp = [r for r in rows if len(r) > 1 and r[1] == "9"]
    expect(len(udp) == 10 and all(r[0] == own_mac for r in udp),
           f"the capture should hold the 10 honest UDP frames from {own_mac}: {rows}")
    expect(not any(r[0] == spoof_mac for r in rows), f"a spoofed frame reached the sink's port: {rows}")


def ping_done_by_peer(c, guest):
    return {f["peer"]: f for _, f in guest_events(c, guest, "guest.ping.done")}


def check_trunk(c, case):
    check_partitions_end(c, case)
    for g in ("trunk", "echo10", "echo20", "echo30", "hopper"):
        expect(guest_events(c, g, "guest.net.up"), f"{g}: no guest.net.up")
    # The trunk guest reaches each access guest on its VLAN, tagged 10 and 20,
    # and untagged for the native VLAN 30, with no loss.
    done = ping_done_by_peer(c, "trunk")
    for peer, vid in (("10.10.0.2", "10"), ("10.20.0.2", "20"), ("10.30.0.2", "0")):
        d = done.get(peer)
        expect(d and d["vlan"] == vid and d["sent"] == "10" and d["received"] == "10" and d["lost"] == "0",
               f"trunk -> {peer}: {d}")
    d = done.get("10.40.0.2")
    expect(d and d["vlan"] == "40" and d["sent"] == "0" and d["received"] == "0", f"VLAN 40 is not on the trunk: {d}")
    ifs = {f["vlan"]: f for _, f in guest_events(c, "trunk", "guest.net.if")}
    expect(sorted(ifs) == ["0", "10", "20", "40"], f"trunk interfaces: {ifs}")
    vlans = guest_events(c, "trunk", "guest.net.vlans")
    expect(vlans and vlans[-1][1]["rx_vlan_dropped"] == "0",
           f"the switch sent the trunk a VLAN it does not carry: {vlans}")
    # Every frame the trunk guest sent on VLAN 40 (its ARP requests) is dropped
    # at its port and counted; nothing else is.
    trunk = port_stats(c, "trunk")
    arp40 = int(ifs["40"]["tx"])
    expect(arp40 >= 3 and trunk["vlan_filtered"] == str(arp40),
           f"{arp40} frames on VLAN 40, trunk port: {trunk}")
    # Each access guest got exactly what the trunk guest sent on its VLAN: no
    # frame leaked from another VLAN or from the hopper.
    sent_to = 0
    for g, vid in (("echo10", "10"), ("echo20", "20"), ("echo30", "0")):
        st = port_stats(c, g)
        expect(st["tx_packets"] == ifs[vid]["tx"], f"{g} got {st['tx_packets']} frames, trunk sent {ifs[vid]}")
        sent_to += int(st["rx_packets"])
    expect(trunk["tx_packets"] == str(sent_to), f"the trunk got {trunk['tx_packets']} frames, its peers sent {sent_to}")
    # The hopper's tag stacks: VLAN 40, 10 with 20 behind it, a priority tag with 20 behind it.
    tagged = [(f["tags"], f["sent"]) for _, f in guest_events(c, "hopper", "guest.netbad.tagged")]
    expect(tagged == [("40", "5"), ("10.20", "5"), ("0.20", "5")], f"hopper: {tagged}")
    hop = port_stats(c, "hopper")
    expect(hop["rx_packets"] == "15" and hop["vlan_filtered"] == "15", f"hopper's frames must all be dropped: {hop}")
    # The trunk's mirror, read by tshark: every frame to or from VLAN 10 and 20
    # carries its tag, the native VLAN's go untagged, and nothing of VLAN 40
    # got in. Per VLAN: the ARP request and reply, 10 echo requests and replies.
    rows = mirror_rows(c, "trunk-tap", "vlan.id", "ip.src", "arp.src.proto_ipv4", "arp.dst.proto_ipv4", "icmp.type")
    per_vlan = {}
    for vlan, ip_src, arp_src, arp_dst, icmp_type in rows:
        addr = ip_src or arp_src
        subnet = addr.rsplit(".", 2)[0]
        want = {"10.10": "10", "10.20": "20", "10.30": ""}.get(subnet)
        expect(want is not None and "10.40." not in arp_dst, f"a frame of another VLAN in the capture: {rows}")
        expect(vlan == want, f"a frame from {addr} carried VLAN '{vlan}', expected '{want}'")
        per_vlan.setdefault(subnet, []).append("icmp" if icmp_type else "arp")
    expect({k: (v.count("arp"), v.count("icmp")) for k, v in per_vlan.items()} ==
           {"10.10": (2, 20), "10.20": (2, 20), "10.30": (2, 20)}, f"frames in the capture: {per_vlan}")


def check_protected(c, case):
    check_partitions_end(c, case)
    macs = {"p1": "02:00:00:00:02:02", "p2": "02:00:00:00:02:03"}
    for me, other in (("p1", "10.0.0.3"), ("p2", "10.0.0.2")):
        done = ping_done_by_peer(c, me)
        r = done.get("10.0.0.1")
        expect(r and r["received"] == "5" and r["lost"] == "0", f"{me} -> router: {r}")
        o = done.get(other)
        expect(o and o["sent"] == "5" and o["received"] == "0", f"{me} -> {other} (protected): {o}")
        st = port_stats(c, me)
        expect(st["protected_port"] == "5", f"{me}: 5 requests to a protected port must be dropped and counted: {st}")
    router = port_stats(c, "router")
    expect(router["protected_port"] == "0" and int(router["tx_packets"]) >= 12, f"router: {router}")
    # What both protected ports were given (mirror, tx): only the router's frames.
    rows = mirror_rows(c, "edge", "eth.src", "eth.dst")
    expect(len(rows) >= 12, f"the capture should hold the router's answers: {rows}")
    expect(all(src == "02:00:00:00:02:01" for src, dst in rows),
           f"a protected guest got a frame from the other: {rows}")
    expect({dst for src, dst in rows} == set(macs.values()), f"capture: {rows}")


def check_ratelimit(c, case):
    check_partitions_end(c, case)
    done = guest_events(c, "gen", "guest.trafgen.done")
    expect(done and done[0][1]["sent"] == "300", f"generator: {done}")
    gen = port_stats(c, "gen")
    limited, seen = int(gen["rate_limited"]), int(gen["rx_packets"]) - int(gen["floods"])  # less its ARP requests
    expect(seen == 300, f"the switch should have seen all 300 frames: {gen}")
    # The 2 KiB bucket holds 32 frames of 64 bytes; the rest of the 300 come
    # far faster than 1 Mbit/s refills it.
    expect(200 <= limited <= 268, f"rate limit: {limited} of 300 dropped: {gen}")
    total = guest_events(c, "sink", "guest.sink.total")
    expect(total and int(total[0][1]["packets"]) == seen - limited == int(port_stats(c, "sink")["tx_packets"]) - int(gen["floods"]),
           f"the sink should get exactly the {seen - limited} frames that passed: {total}")


def check_macflood(c, case):
    check_partitions_end(c, case)
    expect(c.one("hv.switch.start")["fdb_entries"] == "256", f"fdb_size = 256 not honoured: {c.one('hv.switch.start')}")
    fl = guest_events(c, "flooder", "guest.netbad.macflood")
    expect(fl and fl[0][1]["sent"] == "300", f"flooder: {fl}")
    # Counters on request (stats@), while the flooder still holds its port up
    # (at the end every guest is stopped and its MACs flushed).
    mid = c.all("hv.port.stats", guest="flooder")[0]
    expect(mid["rx_packets"] == "300" and mid["macs"] == "8" and mid["mac_limit"] == "292" and mid["floods"] == "8",
           f"the switch should learn 8 of the 300 invented MACs and drop the other 292: {mid}")
    sw = c.all("hv.switch.stats")[0]
    learned = sum(int(c.all("hv.port.stats", guest=g)[0]["macs"]) for g in ("flooder", "echo", "pinger"))
    expect(sw["fdb_capacity"] == "256" and sw["fdb_full"] == "0" and sw["fdb_entries"] == str(learned),
           f"the table should hold only the ports' learned MACs ({learned}) and never fill: {sw}")
    for g in ("echo", "pinger"):
        expect(c.all("hv.port.stats", guest=g)[0]["mac_limit"] == "0", f"{g} was limited")
    done = guest_events(c, "pinger", "guest.ping.done")
    expect(done and done[0][1]["sent"] == "10" and done[0][1]["received"] == "10",
           f"the neighbours should keep pinging: {done}")


def check_actions(c, case):
    # stop beta @300 ms, start it @700 ms, restart gamma @500 ms; alpha untouched.
    check_partitions_end(c, case)
    idx = {e: [i for i, (ev, f) in enumerate(c.events) if ev == e] for e in ("hv.guest.parked", "hv.guest.restart")}
    parked = c.all("hv.guest.parked")
    expect([f["guest"] for f in parked] == ["beta", "gamma"], f"parked: {parked}")
    stops = c.all("hv.guest.stop", guest="beta")
    expect(stops and stops[0]["reason"] == "stopped_by_hypervisor" and stops[0]["failure"] == "no", f"beta: {stops}")
    restarts = c.all("hv.guest.restart")
    expect([(f["guest"], f["restart"], f["by"]) for f in restarts] == [("gamma", "1", "operator"), ("beta", "1", "operator")],
           f"restarts: {restarts}")
    # beta printed nothing between its stop and its start, and said hello again after.
    beta_lines = [i for i, e, f in c.guest_lines("beta")]
    stop_i = idx["hv.guest.parked"][0]
    start_i = [i for i, (ev, f) in enumerate(c.events) if ev == "hv.guest.restart" and f.get("guest") == "beta"][0]
    expect(not [i for i in beta_lines if stop_i < i < start_i], "beta printed while stopped")
    hellos = guest_events(c, "beta", "guest.hello")
    expect([f["restart"] for _, f in hellos] == ["0", "1"], f"beta hellos: {hellos}")
    ghellos = guest_events(c, "gamma", "guest.hello")
    expect([f["restart"] for _, f in ghellos] == ["0", "1"], f"gamma hellos: {ghellos}")
    # alpha never stopped and kept counting across all of it.
    expect(not c.all("hv.guest.restart", guest="alpha") and len(c.all("hv.guest.stop", guest="alpha")) == 1, "alpha touched")
    spans = check_heartbeats(c, ["alpha"], at_least=8)
    expect(spans["alpha"][0] < stop_i and spans["alpha"][1] > start_i, "alpha did not run across the actions")
    expect(c.one("hv.guest.stats", guest="alpha")["restarts"] == "0", "alpha restarted")


def check_flood_halt_nmi(c, case):
    check_partitions_end(c, case)
    st = c.one("hv.guest.stats", guest="flood")
    expect(int(st["console_dropped"]) > 100, f"flooder's drops not counted: {st}")
    expect(len(guest_events(c, "flood", "guest.flood")) >= 5, "none of the flood reached the console")
    h = c.one("hv.guest.stop", guest="halter")
    expect(h["reason"] == "halted" and h["failure"] == "no" and h["exit"] == "HLT", f"halter: {h}")
    expect(guest_events(c, "halter", "guest.halt"), "halter printed nothing")
    b = c.one("hv.guest.stats", guest="beat")
    expect(b["nmis"] == "1", f"NMI to beat's CPU: {b}")
    # The flood did not slow the others: beat keeps its period.
    check_heartbeats(c, ["beat"], at_least=8)


def check_offline_cpu(c, case):
    # CPU 3 never starts (hv.inject=ap-hang): gamma, configured on it, is refused
    # by the configuration check with its line and field; alpha and beta run.
    expect(not c.timed_out, "emulator hung")
    expect(c.one("hv.cpu", index=3)["state"] == "failed", "CPU 3 should have failed to start")
    d = c.one("hv.config.diag", guest="gamma")
    expect(d["field"] == "cpus" and d["line"] == "19" and "not online" in d["msg"], f"diag: {d}")
    expect(c.one("hv.guest.rejected", guest="gamma")["reason"] == "configuration", "gamma not rejected")
    expect(c.one("hv.config")["started"] == "2", "alpha and beta should start")
    check_heartbeats(c, ["alpha", "beta"])
    expect(not c.guest_lines("gamma"), "gamma ran")


def check_penryn(c, case):
    # A CPU with VMX but without the preemption timer, EPT or unrestricted guest:
    # reported per CPU, and a guest on it is refused with the missing control.
    expect(not c.timed_out, "emulator hung")
    for i in range(case["cpus"]):
        v = c.one("hv.vmx", cpu=i)
        expect(v["vmx"] == "yes" and v["ept"] == "no" and v["unrestricted_guest"] == "no", f"cpu {i}: {v}")
    r = c.one("hv.guest.rejected", guest="one")
    expect(r["reason"] == "vmx_unsupported" and "preemption timer" in r["detail"], f"rejection: {r}")
    end = c.one("hv.partitions.end")
    expect(end["why"] == "no_guest_left" and end["errors"] == "1", f"end: {end}")


CASES = {}


def case(name, check, **kw):
    kw["name"] = name
    kw["check"] = check
    kw.setdefault("timeout", 60)
    CASES[name] = kw


# QEMU TCG: boot paths, CPU counts and memory sizes (issue #2).
case("qemu_iso_1cpu_128m", check_no_vmx, emulator="qemu", boot="iso", cpus=1, mem=128)
case("qemu_kernel_2cpu_1g", check_no_vmx, emulator="qemu", boot="kernel", cpus=2, mem=1024)
case("qemu_iso_8cpu_4g", check_no_vmx, emulator="qemu", boot="iso", cpus=8, mem=4096)
case("qemu_kernel_8cpu_128m_qemu64", check_no_vmx, emulator="qemu", boot="kernel", cpus=8, mem=128, cpu="qemu64")
case("qemu_uefi_2cpu_1g", check_no_vmx, emulator="qemu", boot="uefi", cpus=2, mem=1024, timeout=120)
case("qemu_uefi_1cpu_4g", check_no_vmx, emulator="qemu", boot="uefi", cpus=1, mem=4096, timeout=120)
# Broken input and failure paths.
case("qemu_bad_madt_checksum", check_bad_madt, emulator="qemu", boot="kernel", cpus=2, mem=256,
     append=["hv.inject=madt-checksum"])
case("qemu_mmap_overlap", check_mmap_overlap, emulator="qemu", boot="kernel", cpus=1, mem=256,
     append=["hv.inject=mmap-overlap"])
case("qemu_exception_ud", check_exception(6, "#UD"), emulator="qemu", boot="kernel", cpus=2, mem=256,
     append=["hv.inject=exception-ud"])
case("qemu_exception_pf", check_exception(14, "#PF", cr2=0x8), emulator="qemu", boot="kernel", cpus=1, mem=256,
     append=["hv.inject=exception-pf"])
case("qemu_unknown_option", check_unknown_option, emulator="qemu", boot="kernel", cpus=1, mem=128,
     append=["hv.bogus_option=1"])
case("qemu_max_cpus", check_max_cpus, emulator="qemu", boot="kernel", cpus=4, mem=128,
     append=["hv.max_cpus=2"])
case("qemu_ap_hang", check_ap_hang, emulator="qemu", boot="kernel", cpus=4, mem=128, append=["hv.inject=ap-hang"])
case("qemu_hotplug_slots", check_hotplug_slots, emulator="qemu", boot="kernel", cpus=2, mem=128, smp="2,maxcpus=4")
case("qemu_grub_multiboot1", check_no_vmx, emulator="qemu", boot="iso", iso="hv-test-mb1.iso", cpus=2, mem=256,
     protocol=1)
# Bochs, partitions (issue #3).
case("bochs_three_guests", check_three_guests, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="three_hello.toml", duration_ms=1500)
case("bochs_probe", check_probe, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300, config="probe.toml")
case("bochs_hostile", check_hostile, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="hostile.toml", duration_ms=2000)
case("bochs_crash_restart", check_crash, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="crash.toml", duration_ms=1500)
case("bochs_bad_guest", check_bad_guest, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="bad_guest.toml")
case("bochs_spin_stopped", check_spin, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="spin.toml", duration_ms=600)
case("bochs_start_modes", check_modes, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="modes.toml")
case("bochs_smp_guest", check_smp, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="smp.toml", duration_ms=1000)
case("bochs_smp_nmi", check_smp_nmi, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="smp_nmi.toml", duration_ms=3000)
case("bochs_smp_crash", check_smp_crash, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="smp_crash.toml", duration_ms=1000)
case("bochs_ping", check_ping, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="ping.toml", duration_ms=3000, actions="stats@2000")
case("bochs_net_badring", check_badring, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="net_badring.toml", duration_ms=2000)
case("bochs_net_spoof_mirror", check_spoof, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="net_spoof.toml", duration_ms=2000)
case("bochs_net_trunk", check_trunk, emulator="bochs", boot="iso", cpus=6, mem=256, timeout=300,
     config="net_trunk.toml", duration_ms=2500)
case("bochs_net_protected", check_protected, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="net_protected.toml", duration_ms=2000)
case("bochs_net_ratelimit", check_ratelimit, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="net_ratelimit.toml", duration_ms=1500)
case("bochs_net_macflood", check_macflood, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="net_macflood.toml", duration_ms=2000, actions="stats@1500")
case("bochs_guest_actions", check_actions, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="three_hello.toml", duration_ms=1500, actions="stop:beta@300,restart:gamma@500,start:beta@700")
case("bochs_flood_halt_nmi", check_flood_halt_nmi, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="flood_halt.toml", duration_ms=1500, actions="nmi:beat@500")
case("bochs_offline_cpu", check_offline_cpu, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=300,
     config="three_hello.toml", append=["hv.inject=ap-hang"])
case("bochs_penryn_refused", check_penryn, emulator="bochs", boot="iso", cpus=2, mem=256, timeout=300,
     config="one_guest.toml", model="core2_penryn_t9600")
# Bochs (VMX with EPT): every CPU online, VMX features present on each.
case("bochs_1cpu", check_vmx, emulator="bochs", boot="iso", cpus=1, mem=256, timeout=300)
case("bochs_4cpu", check_vmx, emulator="bochs", boot="iso", cpus=4, mem=256, timeout=400)


def harness_hang_case(build):
    c = dict(name="harness_detects_hang", emulator="qemu", boot="kernel", cpus=1, mem=128, timeout=8,
             check=check_hang_detected, idle=True)
    return c


def run_case(c, build, keep):
    try:
        console, workdir = run_emulator(c, build)
    except CheckFailed as e:
        print(f"FAIL {c['name']}: {e}")
        return 1
    summary = ", ".join(f"{k}={v:.2f}s" for k, v in sorted(console.marks.items(), key=lambda kv: kv[1])
                        if k in ("hv.boot", "hv.summary", "hv.exit"))
    print(f"emulator ran {console.wall:.2f}s, exit code {console.exit_code}, timed out: {console.timed_out}; {summary}")
    try:
        c["check"](console, c)
    except CheckFailed as e:
        print(f"FAIL {c['name']}: {e}\n--- console ({workdir}/serial.log) ---")
        print(console.text[-12000:])
        stdout = os.path.join(workdir, "stdout.log")
        if os.path.exists(stdout):
            print("--- emulator output (tail) ---")
            print(open(stdout, errors="replace").read()[-3000:])
        return 1
    print(f"PASS {c['name']}")
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="CMake build directory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory with the logs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the cases")
    b = sub.add_parser("bochsrc", help="print a Bochs configuration (used by tools/hv run)")
    b.add_argument("--cpus", type=int, default=1)
    b.add_argument("--mem", type=int, default=256)
    b.add_argument("--iso", required=True)
    b.add_argument("--serial", required=True)
    b.add_argument("--log", required=True)
    r = sub.add_parser("run", help="run one case")
    r.add_argument("case")
    a = ap.parse_args()
    cases = dict(CASES)
    hang = harness_hang_case(a.build)
    cases[hang["name"]] = hang
    if a.cmd == "bochsrc":
        print(BOCHSRC.format(mem=a.mem, cpus=a.cpus, ips=BOCHS_IPS, model=BOCHS_MODEL, iso=a.iso, serial=a.serial,
                             log=a.log), end="")
        return 0
    if a.cmd == "list":
        for n in cases:
            print(n)
        return 0
    if a.case not in cases:
        print(f"unknown case {a.case}; see 'list'")
        return 2
    return run_case(cases[a.case], os.path.abspath(a.build), a.keep)


if __name__ == "__main__":
    sys.exit(main())
