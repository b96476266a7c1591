#!/usr/bin/env python3
"""Switch throughput side by side (tools/hv bench net), as ../shared/BENCH-PEERS.md.

One dpdk-testpmd generator (MAC forwarding, so a learning switch can learn)
owns two memif server ports and forwards on CPU 0. The switch under test is
the memif client of both ports and forwards on CPU 1:

  ours     our switch core (kernel/net/) in build/tests/bench/dpdk_switch --adapter hv:
           an unchanged frame leaves in the mbuf it arrived in, and memif TX
           makes the one copy into the receiver's ring (the hypervisor's one
           copy; memif RX and TX are the two port crossings every peer pays)
  ours-copy  the same with --adapter hv-copy: every frame is also copied once
           more by the switch into a new mbuf (three copies per frame)
  ref      the harness's own trivial learning bridge (dpdk_switch --adapter ref):
           proves the harness, shows its cost with next to no switching logic
  ovs      Open vSwitch 3.1, DPDK datapath, bridge br0, NORMAL action (MAC learning)
  testpmd  dpdk-testpmd io-forwarding: no logic, the harness limit

For each frame size the generator sends `start tx_first 8` once both links
are up; after a warm-up, `show port stats all` is read twice --seconds apart.
The packets the generator receives on port 1 are the switch's 0->1 direction,
those on port 0 its 1->0 direction. Cycles per packet are busy cycles of the
switch's forwarding core (OVS: pmd-stats-show over the sample; dpdk_switch:
its own counters over the sample; testpmd io: --record-core-cycles over its run).

Needs root (hugepages). Every step has a time limit; every process started
here is stopped (and killed if it must be), and the hugepage files, sockets
and OVS database of the run are removed, whatever happens.
"""

import argparse
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTPMD = "dpdk-testpmd"
OVS_VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
HUGEPAGES = 1024  # 2 MiB pages: generator 512 MiB + switch 512 MiB, with room
HUGE_DIR = "/dev/hugepages"
PREFIXES = ("hvbgen", "hvbsw", "hvbovs")  # DPDK --file-prefix of each process here
GEN_MACS = ("02:00:00:00:00:0a", "02:00:00:00:00:0b")
IMPLS = ("ours", "ours-copy", "ref", "ovs", "testpmd")
ADAPTERS = {"ours": "hv", "ours-copy": "hv-copy", "ref": "ref"}  # dpdk_switch --adapter
LABELS = {
    "ours": "ours (kernel/net switch)",
    "ours-copy": "ours, extra copy (hv-copy)",
    "ref": "ref bridge (harness check)",
    "ovs": "OVS-DPDK 3.1 NORMAL",
    "testpmd": "testpmd io (harness limit)",
}


class BenchError(Exception):
    pass


def log(msg):
    print(f"bench.net: {msg}", file=sys.stderr, flush=True)


def _die_with_parent():
    # A child of this script must not outlive it, even if the script is killed.
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class Proc:
    """A child process in its own process group, output to a log file and kept in memory."""

    nice = 0  # niceness for every process started here (main() sets it from --nice)

    def __init__(self, name, argv, logdir, env=None, stdin=True):
        if Proc.nice:
            argv = ["nice", "-n", str(Proc.nice)] + argv
        self.name = name
        self.quitting = False  # set once the process was told to exit
        self.log_path = os.path.join(logdir, f"{name}.log")
        self._log = open(self.log_path, "w")
        self._buf = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, bufsize=0,
                                  start_new_session=True, preexec_fn=_die_with_parent)
        if Proc.nice:
            # The process leads its own session, so with autogroup scheduling
            # (the default) it is its own scheduling group and `nice` alone
            # would weigh only against itself: set the group's niceness too.
            try:
                with open(f"/proc/{self.p.pid}/autogroup", "w") as f:
                    f.write(str(Proc.nice))
            except OSError:
                pass
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        # Character reads, not lines: testpmd's prompt has no newline.
        while True:
            try:
                chunk = os.read(self.p.stdout.fileno(), 65536)
            except OSError:
                break
            if not chunk:
                break
            text = chunk.decode(errors="replace")
            self._log.write(text)
            self._log.flush()
            with self._cond:
                self._buf.append(text)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def text(self):
        with self._lock:
            return "".join(self._buf)

    def alive(self):
        return self.p.poll() is None

    def send(self, line):
        if not self.alive():
            raise BenchError(f"{self.name} has exited (code {self.p.returncode})\n{self.tail()}")
        try:
            self.p.stdin.write((line + "\n").encode())
        except (BrokenPipeError, OSError) as e:
            raise BenchError(f"{self.name}: cannot send '{line}': {e}\n{self.tail()}")

    def wait_for(self, pattern, timeout, start=0, what=None):
        """Waits until `pattern` matches the output after offset `start`; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search("".join(self._buf), start)
                if m:
                    return m
                if self.p.poll() is not None and not self._reader.is_alive():
                    raise BenchError(f"{self.name} exited (code {self.p.returncode}) while waiting for "
                                     f"{what or pattern}\n{self._tail_locked()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{self.name}: no {what or pattern} after {timeout} s\n{self._tail_locked()}")
                self._cond.wait(min(left, 0.5))

    def _tail_locked(self, n=25):
        lines = "".join(self._buf).splitlines()[-n:]
        return f"--- last lines of {self.log_path} ---\n" + "\n".join("  " + ln for ln in lines)

    def tail(self, n=25):
        with self._lock:
            return self._tail_locked(n)

    def cpu_seconds(self):
        """User + system CPU time of all threads of the process so far (0 once it is gone)."""
        total = 0
        try:
            tasks = os.listdir(f"/proc/{self.p.pid}/task")
        except OSError:
            return 0.0
        for t in tasks:
            try:
                with open(f"/proc/{self.p.pid}/task/{t}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
            except (OSError, IndexError, ValueError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self):
        """Once asked to exit (self.quitting): waits up to 10 s for it. Then SIGTERM, then SIGKILL.

        Signals go to the process's own group (start_new_session), and only
        while the process is not yet reaped, so its pid cannot have been reused.
        """
        if self.p.poll() is None and self.quitting:
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if self.p.poll() is not None:
                break
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.p.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        if self.p.poll() is None:
            log(f"{self.name} (pid {self.p.pid}) did not die")
        self._reader.join(2)
        try:
            if self.p.stdin:
                self.p.stdin.close()
        except OSError:
            pass
        self._log.close()


class Testpmd(Proc):
    """An interactive dpdk-testpmd driven over stdin; each command waits for the next prompt."""

    PROMPT = "testpmd> "

    def __init__(self, name, argv, logdir):
        # Line-buffered stdout so command output arrives before the prompt that follows it.
        super().__init__(name, ["stdbuf", "-oL"] + argv, logdir)

    def wait_prompt(self, timeout):
        self.wait_for(re.escape(self.PROMPT), timeout, what="testpmd prompt")

    def command(self, cmd, timeout=15):
        start = len(self.text())
        self.send(cmd)
        m = self.wait_for(re.escape(self.PROMPT), timeout, start=start + 1, what=f"prompt after '{cmd}'")
        return self.text()[start:m.start()]


def parse_port_stats(out):
    stats = {}
    for m in re.finditer(r"NIC statistics for port (\d+).*?RX-packets:\s*(\d+).*?RX-bytes:\s*(\d+)"
                         r".*?TX-packets:\s*(\d+).*?TX-bytes:\s*(\d+)", out, re.S):
        stats[int(m.group(1))] = dict(rx=int(m.group(2)), rx_bytes=int(m.group(3)), tx=int(m.group(4)),
                                      tx_bytes=int(m.group(5)))
    if set(stats) != {0, 1}:
        raise BenchError(f"generator: cannot read port statistics from:\n{out}")
    return stats


def kv_line(text, event):
    """The last `event k=v ...` line in text, as a dict."""
    lines = [ln for ln in text.splitlines() if ln.startswith(event + " ")]
    if not lines:
        return None
    return dict(kv.split("=", 1) for kv in lines[-1].split()[1:] if "=" in kv)


class Hugepages:
    """1024 x 2 MiB hugepages mounted on /dev/hugepages for the run; the previous state is restored after."""

    def __init__(self):
        self.old_nr = None
        self.mounted = False

    def setup(self):
        path = "/proc/sys/vm/nr_hugepages"
        with open(path) as f:
            nr = int(f.read())
        if nr < HUGEPAGES:
            self.old_nr = nr
            with open(path, "w") as f:
                f.write(str(HUGEPAGES))
            with open(path) as f:
                got = int(f.read())
            if got < HUGEPAGES // 2:
                raise BenchError(f"only {got} hugepages could be reserved (need {HUGEPAGES})")
        os.makedirs(HUGE_DIR, exist_ok=True)
        if not self._is_mounted():
            subprocess.run(["mount", "-t", "hugetlbfs", "nodev", HUGE_DIR], check=True, timeout=10)
            self.mounted = True
        remove_hugepage_files()

    @staticmethod
    def _is_mounted():
        with open("/proc/mounts") as f:
            return any(ln.split()[1] == HUGE_DIR and ln.split()[2] == "hugetlbfs" for ln in f)

    def cleanup(self):
        remove_hugepage_files()
        if self.mounted:
            subprocess.run(["umount", HUGE_DIR], timeout=10, check=False)
            self.mounted = False
        if self.old_nr is not None:
            try:
                with open("/proc/sys/vm/nr_hugepages", "w") as f:
                    f.write(str(self.old_nr))
            except OSError as e:
                log(f"could not restore nr_hugepages={self.old_nr}: {e}")
            self.old_nr = None


def remove_hugepage_files():
    # Only the files of this bench's own file prefixes (BENCH-PEERS.md: remove
    # /dev/hugepages/<prefix>map_* after testpmd exits), and their runtime dirs.
    if os.path.isdir(HUGE_DIR):
        for name in os.listdir(HUGE_DIR):
            if any(name.startswith(p + "map_") for p in PREFIXES):
                try:
                    os.unlink(os.path.join(HUGE_DIR, name))
                except OSError:
                    pass
    for p in PREFIXES:
        shutil.rmtree(os.path.join("/var/run/dpdk", p), ignore_errors=True)


class Run:
    """One implementation at one frame size: generator + switch under test, sampled, torn down."""

    def __init__(self, impl, size, args, workdir, rnd=0):
        self.impl = impl
        self.size = size
        self.args = args
        self.dir = os.path.join(workdir, f"{impl}-{size}-r{rnd + 1}")
        os.makedirs(self.dir)
        tag = f"hvb{os.getpid()}"
        self.socks = [f"/run/{tag}-m{i}.sock" for i in range(2)]  # abstract sockets (memif default)
        self.procs = []
        self.ovs_dir = None

    def start(self, proc):
        self.procs.append(proc)
        return proc

    # -- generator -------------------------------------------------------------------------------
    def start_generator(self):
        cmd = [TESTPMD, "-l", "1,0", "--main-lcore", "1", "-n", "1", "--no-pci", f"--file-prefix={PREFIXES[0]}",
               "-m", "512"]
        for i in range(2):
            cmd.append(f"--vdev=net_memif{i},role=server,socket={self.socks[i]},id=0,mac={GEN_MACS[i]}")
        cmd += ["--", "-i", "--forward-mode=mac", f"--eth-peer=0,{GEN_MACS[1]}", f"--eth-peer=1,{GEN_MACS[0]}",
                f"--txpkts={self.size}", "--nb-cores=1", "--rxq=2", "--txq=2", "--total-num-mbufs=32768"]
        self.gen = self.start(Testpmd("generator", cmd, self.dir))
        self.gen.wait_prompt(60)

    def wait_links(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            out = self.gen.command("show port info all")
            if len(re.findall(r"Link status:\s*up", out)) == 2:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"memif links not up after {timeout} s\n{self.gen.tail()}\n" + self.sut_tail())
            self.check_sut()
            time.sleep(0.5)

    # -- switch under test -----------------------------------------------------------------------
    def eal_client(self, prefix):
        cmd = ["-l", "0,1", "--main-lcore", "0", "-n", "1", "--no-pci", f"--file-prefix={prefix}", "-m", "512"]
        for i in range(2):
            cmd.append(f"--vdev=net_memif{i},role=client,socket={self.socks[i]},id=0")
        return cmd

    def start_sut(self):
        if self.impl == "testpmd":
            cmd = ([TESTPMD] + self.eal_client(PREFIXES[1]) +
                   ["--", "--forward-mode=io", "--nb-cores=1", "--rxq=2", "--txq=2", "--total-num-mbufs=32768",
                    "--record-core-cycles"])
            # Not interactive: it forwards at once and stops at the first line on stdin.
            self.sut = self.start(Proc("testpmd-io", ["stdbuf", "-oL"] + cmd, self.dir))
            self.sut.wait_for(r"Press enter to exit", 60, what="testpmd io start")
        elif self.impl in ADAPTERS:
            binary = os.path.join(self.args.build, "tests", "bench", "dpdk_switch")
            cmd = ([binary] + self.eal_client(PREFIXES[1]) +
                   ["--", "--adapter", ADAPTERS[self.impl], "--rxq", "2", "--txq", "2"])
            self.sut = self.start(Proc("dpdk_switch", cmd, self.dir))
            self.sut.wait_for(r"dpdk_switch\.ready", 60, what="dpdk_switch.ready")
        elif self.impl == "ovs":
            self.start_ovs()

    def sut_tail(self):
        return self.sut.tail() if getattr(self, "sut", None) else ""

    def check_sut(self):
        sut = getattr(self, "sut", None)
        if sut is not None and not sut.alive():
            raise BenchError(f"{sut.name} exited (code {sut.p.returncode})\n{sut.tail()}")

    # -- Open vSwitch ----------------------------------------------------------------------------
    def ovs_env(self):
        env = dict(os.environ)
        for k in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR", "OVS_PKGDATADIR"):
            env.pop(k, None)
        env.update(OVS_RUNDIR=self.ovs_dir, OVS_LOGDIR=self.ovs_dir, OVS_DBDIR=self.ovs_dir)
        return env

    def vsctl(self, *a, timeout=20):
        cmd = ["ovs-vsctl", f"--db=unix:{self.ovs_dir}/db.sock", f"--timeout={timeout}"] + list(a)
        r = subprocess.run(cmd, env=self.ovs_env(), capture_output=True, text=True, timeout=timeout + 5)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed: {r.stderr.strip()}\n" + self.sut_tail())
        return r.stdout.strip()

    def appctl(self, *a, timeout=20):
        cmd = ["ovs-appctl", "-t", f"{self.ovs_dir}/ovs-vswitchd.ctl", f"--timeout={timeout}"] + list(a)
        r = subprocess.run(cmd, env=self.ovs_env(), capture_output=True, text=True, timeout=timeout + 5)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed: {r.stderr.strip()}\n" + self.sut_tail())
        return r.stdout

    def start_ovs(self):
        if not os.access(OVS_VSWITCHD, os.X_OK):
            raise BenchError(f"{OVS_VSWITCHD} missing (package openvswitch-switch-dpdk)")
        # A private database and run directory: the machine's own OVS, if any, is not touched.
        self.ovs_dir = tempfile.mkdtemp(prefix="hv-bench-ovs.")
        db = os.path.join(self.ovs_dir, "conf.db")
        subprocess.run(["ovsdb-tool", "create", db, OVS_SCHEMA], check=True, timeout=20, env=self.ovs_env())
        d = self.ovs_dir
        self.ovsdb = self.start(Proc("ovsdb-server", [
            "ovsdb-server", db, f"--remote=punix:{d}/db.sock", f"--unixctl={d}/ovsdb-server.ctl",
            f"--pidfile={d}/ovsdb-server.pid", "--log-file=" + os.path.join(self.dir, "ovsdb-server.file.log")],
            self.dir, env=self.ovs_env(), stdin=False))
        deadline = time.monotonic() + 20
        while not os.path.exists(f"{d}/db.sock"):
            if not self.ovsdb.alive() or time.monotonic() > deadline:
                raise BenchError(f"ovsdb-server did not start\n{self.ovsdb.tail()}")
            time.sleep(0.1)
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                   "other_config:dpdk-lcore-mask=0x1", "other_config:pmd-cpu-mask=0x2",
                   "other_config:dpdk-socket-mem=512",
                   f'other_config:dpdk-extra="-n 1 --no-pci --file-prefix={PREFIXES[2]}"')
        self.sut = self.start(Proc("ovs-vswitchd", [
            OVS_VSWITCHD, f"unix:{d}/db.sock", f"--unixctl={d}/ovs-vswitchd.ctl", f"--pidfile={d}/ovs-vswitchd.pid",
            "--log-file=" + os.path.join(self.dir, "ovs-vswitchd.file.log")], self.dir, env=self.ovs_env(),
            stdin=False))
        deadline = time.monotonic() + 60
        while self.vsctl("get", "Open_vSwitch", ".", "dpdk_initialized") != "true":
            self.check_sut()
            if time.monotonic() > deadline:
                raise BenchError("ovs-vswitchd: DPDK not initialized after 60 s\n" + self.sut.tail())
            time.sleep(0.5)
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
        for i in range(2):
            self.vsctl("add-port", "br0", f"p{i}", "--", "set", "Interface", f"p{i}", "type=dpdk",
                       f"options:dpdk-devargs=net_memif{i},role=client,socket={self.socks[i]},id=0",
                       "options:n_rxq=2")
        for i in range(2):
            err = self.vsctl("--if-exists", "get", "Interface", f"p{i}", "error")
            if err not in ("", "[]"):
                raise BenchError(f"OVS port p{i}: {err}\n" + self.sut.tail())

    def ovs_cycles_per_packet(self, text):
        m = re.search(r"avg processing cycles per packet:\s*([0-9.]+)", text)
        return float(m.group(1)) if m else None

    # -- measurement -----------------------------------------------------------------------------
    def sut_snapshot(self):
        if self.impl in ADAPTERS:
            start = len(self.sut.text())
            self.sut.send("stats")
            self.sut.wait_for(r"dpdk_switch\.stats [^\n]*\n", 10, start=start, what="dpdk_switch.stats")
            return kv_line(self.sut.text()[start:], "dpdk_switch.stats")
        if self.impl == "ovs":
            return self.appctl("dpif-netdev/pmd-stats-show")
        return None

    def measure(self):
        self.start_generator()
        self.start_sut()
        self.wait_links()
        self.gen.command("start tx_first 8")
        time.sleep(self.args.warmup)
        self.check_sut()
        if self.impl == "ovs":
            self.appctl("dpif-netdev/pmd-stats-clear")
        snap1 = self.sut_snapshot()
        cpu1 = sum(p.cpu_seconds() for p in self.procs)
        s1 = parse_port_stats(self.gen.command("show port stats all"))
        t1 = time.monotonic()
        time.sleep(self.args.seconds)
        s2 = parse_port_stats(self.gen.command("show port stats all"))
        t2 = time.monotonic()
        cpu2 = sum(p.cpu_seconds() for p in self.procs)
        snap2 = self.sut_snapshot()
        self.check_sut()
        dt = t2 - t1
        r = dict(impl=self.impl, size=self.size, seconds=round(dt, 3))
        # Port 1 receives what the switch forwarded from port 0, and the other way round.
        r["mpps_0to1"] = (s2[1]["rx"] - s1[1]["rx"]) / dt / 1e6
        r["mpps_1to0"] = (s2[0]["rx"] - s1[0]["rx"]) / dt / 1e6
        r["mpps"] = (r["mpps_0to1"] + r["mpps_1to0"]) / 2
        # Both forwarding cores poll all the time: together they should get 2
        # CPUs' worth of time. Less means other work on the machine took CPU
        # from the generator or the switch, and the figure is low by that much.
        r["cpu_share"] = min(1.0, (cpu2 - cpu1) / (2 * dt))
        r["cycles_per_packet"] = None
        if self.impl in ADAPTERS and snap1 and snap2:
            rx = int(snap2["rx"]) - int(snap1["rx"])
            busy = int(snap2["busy_cycles"]) - int(snap1["busy_cycles"])
            r["cycles_per_packet"] = busy / rx if rx else None
            bursts = int(snap2["bursts"]) - int(snap1["bursts"])
            r["mean_burst"] = round(rx / bursts, 1) if bursts else None
            r["drops"] = (int(snap2["drop_tx"]) - int(snap1["drop_tx"]) + int(snap2["drop_nobuf"]) -
                          int(snap1["drop_nobuf"]))
        elif self.impl == "ovs":
            r["cycles_per_packet"] = self.ovs_cycles_per_packet(snap2)
            if self.args.verbose:
                log("pmd-stats-show:\n" + snap2)
        self.gen.command("stop", timeout=30)
        self.stop_sut(r)
        self.gen.quitting = True
        self.gen.send("quit")
        return r

    def stop_sut(self, r):
        if self.impl == "testpmd":
            start = len(self.sut.text())
            self.sut.quitting = True
            self.sut.send("")
            try:
                self.sut.wait_for(r"Bye", 30, start=start, what="testpmd io exit")
            except BenchError as e:
                log(str(e))
            m = re.search(r"CPU cycles/packet=([0-9.]+)", self.sut.text()[start:])
            if m:
                r["cycles_per_packet"] = float(m.group(1))
                r["cycles_note"] = "whole run"
        elif self.impl in ADAPTERS:
            self.sut.quitting = True
            self.sut.send("quit")
            try:
                self.sut.wait_for(r"dpdk_switch\.adapter [^\n]*\n", 30, what="dpdk_switch exit")
                a = kv_line(self.sut.text(), "dpdk_switch.adapter")
                r["switch_dropped"] = int(a["dropped"])
            except BenchError as e:
                log(str(e))
        elif self.impl == "ovs":
            try:
                self.sut.quitting = True
                self.appctl("exit", "--cleanup", timeout=30)
            except (BenchError, subprocess.TimeoutExpired) as e:
                log(f"ovs-vswitchd exit: {e}")

    def cleanup(self):
        # Reverse order: the switch under test, then OVS's database, then the generator.
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                log(f"stopping {p.name}: {e}")
        self.procs = []
        remove_hugepage_files()
        if self.ovs_dir:
            shutil.rmtree(self.ovs_dir, ignore_errors=True)
            self.ovs_dir = None


def run_switch_bench(build):
    """The pure-core figure (Google Benchmark tests/bench/switch_bench), when this tree has it."""
    binary = os.path.join(build, "tests", "bench", "switch_bench")
    if not os.access(binary, os.X_OK):
        return None
    r = subprocess.run([binary, "--benchmark_format=json"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise BenchError(f"switch_bench failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    try:
        rows = json.loads(r.stdout)["benchmarks"]
    except (ValueError, KeyError) as e:
        raise BenchError(f"switch_bench: unreadable output ({e}):\n{r.stdout[-3000:]}")
    return [b for b in rows if b.get("run_type", "iteration") == "iteration"]


def fmt(v, spec=".2f"):
    return "n/a" if v is None else format(v, spec)


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def summarize(results):
    """One figure per (impl, size): the median over the rounds that did not fail."""
    out = {}
    for key, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            out[key] = dict(error=runs[-1]["error"])
            continue
        r = dict(ok[0])
        for k in ("mpps", "mpps_0to1", "mpps_1to0", "seconds", "cpu_share"):
            r[k] = median([x[k] for x in ok])
        cyc = [x["cycles_per_packet"] for x in ok if x.get("cycles_per_packet") is not None]
        r["cycles_per_packet"] = median(cyc) if cyc else None
        for k in ("drops", "switch_dropped"):
            if k in r:
                r[k] = sum(x.get(k, 0) for x in ok)
        r["rounds"] = len(ok)
        r["failed_rounds"] = len(runs) - len(ok)
        r["mpps_all"] = [round(x["mpps"], 3) for x in ok]
        r["cpu_share_all"] = [round(x["cpu_share"], 2) for x in ok]
        out[key] = r
    return out


def report(results, sizes, impls, seconds, rounds):
    print(f"Switch throughput, 2 memif ports, {seconds:g} s samples x {rounds} round(s): generator dpdk-testpmd "
          "mac-forwarding on CPU 0, switch under test on CPU 1")
    print("Mpps per direction (mean of 0->1 and 1->0; median over rounds), busy cycles per packet of the switch core")
    head = f"{'under test':<28}" + "".join(f" | {f'{s} B Mpps':>10} {'0->1':>6} {'1->0':>6} {'cyc/pkt':>8}"
                                           for s in sizes)
    print(head)
    print("-" * len(head))
    for impl in impls:
        row = f"{LABELS[impl]:<28}"
        for s in sizes:
            r = results.get((impl, s))
            if r is None or "error" in r:
                row += f" | {'failed' if r else 'n/a':>10} {'':>6} {'':>6} {'':>8}"
            else:
                row += (f" | {r['mpps']:>10.2f} {r['mpps_0to1']:>6.2f} {r['mpps_1to0']:>6.2f} "
                        f"{fmt(r['cycles_per_packet'], '.1f'):>8}")
        print(row)
    lines = []
    for s in sizes:
        for num in ("ours", "ours-copy", "ref"):
            for den in ("ovs", "testpmd"):
                a, b = results.get((num, s)), results.get((den, s))
                if a and b and "error" not in a and "error" not in b and b["mpps"] > 0:
                    lines.append((num, den, s, a["mpps"] / b["mpps"]))
    busy = sorted({f"{LABELS[i]} {s} B ({r['cpu_share']:.0%})" for (i, s), r in results.items()
                   if "error" not in r and r["cpu_share"] < 0.9})
    if busy:
        print("WARNING: the machine was busy: the forwarding cores got less than 90% of their CPUs for: " +
              ", ".join(busy) + ". Those figures are low; run again on an idle machine.")
    if lines:
        print("Ratios (Mpps per direction): " + "; ".join(f"{n}/{d} {s} B = {v:.2f}" for n, d, s, v in lines))
    for (impl, s), r in sorted(results.items(), key=lambda kv: (kv[0][1], IMPLS.index(kv[0][0]))):
        if "error" in r:
            print(f"bench.net impl={impl} size={s} status=failed")
            continue
        extra = f" cpu_share={r['cpu_share']:.2f}"
        extra += "".join(f" {k}={r[k]}" for k in ("drops", "switch_dropped", "mean_burst", "rounds", "failed_rounds") if k in r)
        if len(r.get("mpps_all", [])) > 1:
            extra += " mpps_rounds=" + ",".join(f"{x:.3f}" for x in r["mpps_all"])
            extra += " cpu_share_rounds=" + ",".join(f"{x:.2f}" for x in r["cpu_share_all"])
        print(f"bench.net impl={impl} size={s} mpps={r['mpps']:.3f} mpps_0to1={r['mpps_0to1']:.3f} "
              f"mpps_1to0={r['mpps_1to0']:.3f} cycles_per_packet={fmt(r['cycles_per_packet'], '.1f')} "
              f"seconds={r['seconds']:.3f}{extra}")
    for n, d, s, v in lines:
        print(f"bench.net ratio={n}/{d} size={s} value={v:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=float, default=10, help="sample length (default 10)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every implementation this many times, interleaved; the median is reported")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of traffic before the sample (default 3)")
    ap.add_argument("--sizes", default="64,1500", help="frame sizes in bytes, comma-separated (default 64,1500)")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(IMPLS))
    ap.add_argument("--nice", type=int, default=-10,
                    help="niceness of the generator and the switch under test (default -10: a busy-polling "
                         "forwarding core still loses time to other work, but much less; 0 to run as others)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the run's logs (their directory is printed)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    if not 1 <= a.seconds <= 600 or not 0 <= a.warmup <= 120 or not 1 <= a.rounds <= 20:
        ap.error("--seconds must be 1..600, --warmup 0..120, --rounds 1..20")
    if not -20 <= a.nice <= 19:
        ap.error("--nice must be -20..19")
    Proc.nice = a.nice
    try:
        sizes = [int(s) for s in a.sizes.split(",") if s]
    except ValueError:
        ap.error("--sizes: comma-separated integers")
    if not sizes or any(not 60 <= s <= 1514 for s in sizes):
        ap.error("--sizes: each between 60 and 1514 (no FCS; MTU 1500)")
    impls = [i for i in a.only.split(",") if i] or list(IMPLS)
    if any(i not in IMPLS for i in impls):
        ap.error(f"--only: choose from {', '.join(IMPLS)}")
    if os.geteuid() != 0:
        raise SystemExit("bench.net: needs root (hugepages, DPDK); run it through tools/hv bench net")
    if os.cpu_count() < 2:
        raise SystemExit("bench.net: needs 2 CPUs (generator on CPU 0, switch on CPU 1)")

    dpdk_switch = os.path.join(a.build, "tests", "bench", "dpdk_switch")
    skipped = {}
    if any(i in ADAPTERS for i in impls) and not os.access(dpdk_switch, os.X_OK):
        for i in ADAPTERS:
            skipped[i] = f"{dpdk_switch} not built (pkg-config libdpdk missing at configure?)"
    if any(i in ADAPTERS and i not in skipped for i in impls):
        probe = subprocess.run([dpdk_switch, "--list-adapters"], capture_output=True, text=True, timeout=20)
        for i in ("ours", "ours-copy"):
            if ADAPTERS[i] not in probe.stdout.split():
                skipped[i] = f"this tree has no kernel/net/switch.hpp: adapter {ADAPTERS[i]} compiled out"
    for i, why in skipped.items():
        log(f"skipping {i}: {why}")
    impls_run = [i for i in impls if i not in skipped]

    # One run at a time: the DPDK file prefixes and the CPUs are shared.
    lock = open("/run/hv-bench-net.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise SystemExit("bench.net: another tools/hv bench net is running")

    workdir = tempfile.mkdtemp(prefix="hv-bench-net.")
    huge = Hugepages()
    results = {}
    runs = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    failed = False
    try:
        huge.setup()
        # Rounds interleave the implementations, so that a burst of load from
        # elsewhere on the machine does not hit one of them only.
        for rnd in range(a.rounds):
            for s in sizes:
                for impl in impls_run:
                    log(f"round {rnd + 1}/{a.rounds}: {impl}, {s} B frames: {a.warmup:g} s warm-up, "
                        f"{a.seconds:g} s sample")
                    run = Run(impl, s, a, workdir, rnd)
                    runs.append(run)
                    try:
                        results.setdefault((impl, s), []).append(run.measure())
                    except Exception as e:  # noqa: BLE001 - one failed peer must not stop the others
                        failed = True
                        results.setdefault((impl, s), []).append(dict(error=str(e)))
                        if not isinstance(e, (BenchError, subprocess.SubprocessError, OSError)):
                            log(traceback.format_exc())
                        log(f"{impl} at {s} B failed: {e}")
                    finally:
                        run.cleanup()
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        for run in runs:
            run.cleanup()
        huge.cleanup()
        if a.keep_logs or failed:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report(summarize(results), sizes, impls, a.seconds, a.rounds)
    for i, why in skipped.items():
        print(f"bench.net impl={i} status=skipped reason=\"{why}\"")
    try:
        core = run_switch_bench(a.build)
    except (BenchError, subprocess.SubprocessError) as e:
        core = None
        failed = True
        log(str(e))
    if core is None:
        print("Pure core (no DPDK): skipped, this tree has no tests/bench/switch_bench")
        print('bench.net impl=core status=skipped reason="no switch_bench in this tree"')
    else:
        print("Pure core (no DPDK, one core, receivers copy_out() into RX buffers), Google Benchmark switch_bench:")
        print(f"  {'benchmark':<40} {'Mpps':>8} {'cycles/packet':>14}")
        for b in core:
            mpps = b.get("items_per_second", 0) / 1e6
            cyc = b.get("tsc_per_pkt")
            print(f"  {b['name']:<40} {mpps:>8.2f} {fmt(cyc, '.1f'):>14}")
        for b in core:
            print(f"bench.net impl=core name={b['name']} mpps={b.get('items_per_second', 0) / 1e6:.3f} "
                  f"cycles_per_packet={fmt(b.get('tsc_per_pkt'), '.1f')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
