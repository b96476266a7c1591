#!/usr/bin/env python3
"""Runs the network test guests on plain QEMU against its own virtio-net-pci
(modern, disable-legacy=on), as a check of the guest driver independent of
this hypervisor's device. Each guest is started by tests/guestnet/qemu_loader
(build: `ninja -C build hv_guestnet_qemu`). Two guests talk through a QEMU
socket netdev on 127.0.0.1; a single guest can ping QEMU's user-mode network
gateway (10.0.2.2).

With KVM (/dev/kvm usable) QEMU runs `-enable-kvm -cpu host`, which has an
x2APIC and TSC-deadline timer: the guests then use MSI-X interrupts and HLT
(mode=irq) and the scenarios check that interrupts arrived. Under TCG (QEMU
7.2 has no x2APIC there) mode=irq falls back to polling. The loader does not
know the TSC rate, so rtt_us and rates assume a 1 GHz TSC.

  tests/guestnet/run_qemu.py [--build DIR] [SCENARIO...]
Prints each guest's lines and `N passed, N failed`; exits non-zero on failure.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

GUEST_RE = re.compile(r"^(guest\.[a-z_.]+)((?: [a-z_]+=\S*)*)\s*$")


def parse_lines(text):
    events = []
    for line in text.splitlines():
        # The serial log also holds the firmware's screen; keep guest lines.
        i = line.find("guest.")
        if i < 0:
            continue
        m = GUEST_RE.match(line[i:].rstrip("\r"))
        if not m:
            continue
        kv = dict(p.split("=", 1) for p in m.group(2).split())
        events.append((m.group(1), kv))
    return events


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KVM = os.access("/dev/kvm", os.R_OK | os.W_OK) and os.environ.get("HV_GUESTNET_TCG") != "1"


class Guest:
    def __init__(self, qemu_dir, workdir, name, image, args, netdev, mac):
        self.name = name
        self.log = os.path.join(workdir, name + ".log")
        accel = ["-enable-kvm", "-cpu", "host"] if KVM else ["-cpu", "max"]
        cmd = ["qemu-system-x86_64", "-M", "pc"] + accel + ["-m", "128", "-display", "none",
               "-no-reboot", "-serial", "file:" + self.log,
               "-kernel", os.path.join(qemu_dir, "qemu_loader.elf"),
               "-initrd", os.path.join(qemu_dir, image + ".elf"),
               "-append", args,
               "-netdev", netdev,
               "-device", "virtio-net-pci,netdev=n0,disable-legacy=on,mac=" + mac,
               "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)

    def wait(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        # isa-debug-exit: status = code * 2 + 1
        rc = self.proc.returncode
        return (rc - 1) // 2 if rc % 2 == 1 else -rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def events(self):
        try:
            with open(self.log, errors="replace") as f:
                return parse_lines(f.read())
        except FileNotFoundError:
            return []


def first(events, name):
    for n, kv in events:
        if n == name:
            return kv
    return None


def pair(qemu_dir, workdir, a, b, timeout=60):
    """Starts guest a (listening) and b (connecting); a = (name, image, args)."""
    port = free_port()
    ga = Guest(qemu_dir, workdir, a[0], a[1], a[2], "socket,id=n0,listen=127.0.0.1:%d" % port,
               "52:54:00:00:00:0a")
    time.sleep(0.5)
    gb = Guest(qemu_dir, workdir, b[0], b[1], b[2], "socket,id=n0,connect=127.0.0.1:%d" % port,
               "52:54:00:00:00:0b")
    return ga, gb


def alone(qemu_dir, workdir, name, image, args):
    """Runs one guest on QEMU's user-mode network; returns its exit code and lines."""
    g = Guest(qemu_dir, workdir, name, image, args, "user,id=n0", "52:54:00:12:34:56")
    rc = g.wait(60)
    return rc, g.events()


def scenario_ping_gateway(qemu_dir, workdir):
    rc, ev = alone(qemu_dir, workdir, "ping", "ping", "ip=10.0.2.15 peer=10.0.2.2 count=5 mode=poll")
    done = first(ev, "guest.ping.done")
    ok = rc == 0 and done is not None and done["received"] == "5"
    return ok, {"ping": ev}, "rc=%s done=%s" % (rc, done)


def scenario_ping_echo(qemu_dir, workdir, extra=""):
    ga, gb = pair(qemu_dir, workdir,
                  ("echo", "netecho", "ip=10.0.0.1 duration_ms=60000 report_ms=0 " + extra),
                  ("ping", "ping", "ip=10.0.0.2 peer=10.0.0.1 count=20 interval_ms=5 size=1000 " + extra))
    rc = gb.wait(60)
    ga.kill()
    eb, ea = gb.events(), ga.events()
    done = first(eb, "guest.ping.done")
    up = first(eb, "guest.net.up")
    echo_up = first(ea, "guest.net.up")
    echo_stats = first(ea, "guest.netecho.done")
    ok = rc == 0 and done is not None and done["received"] == "20" and done["lost"] == "0"
    if "event_idx=no" in extra:
        ok = ok and up is not None and up["event_idx"] == "no" and up["mrg_rxbuf"] == "no"
    if KVM:
        # netecho sleeps in HLT between requests: every request must wake it
        # through an RX interrupt (it was killed before its done line, so
        # look at the ping side's counters instead when it has none).
        ok = ok and echo_up is not None and echo_up["mode"] == "irq"
        ping_counters = first(eb, "guest.ping.counters")
        ok = ok and ping_counters is not None and int(ping_counters["rx_interrupts"]) > 0
    return ok, {"echo": ea, "ping": eb}, "rc=%s done=%s echo=%s" % (rc, done, echo_stats)


def scenario_udp_echo(qemu_dir, workdir):
    # netecho echoes UDP port 7: trafgen aims at port 9 (sink), so use the
    # sink/trafgen pair for counting and check echo via the netecho counters.
    ga, gb = pair(qemu_dir, workdir,
                  ("sink", "sink", "ip=10.0.0.1 count=2000 duration_ms=30000"),
                  ("trafgen", "trafgen", "ip=10.0.0.2 peer=10.0.0.1 count=2000 size=256 pps=20000"))
    rb = gb.wait(60)
    ra = ga.wait(60)
    ea, eb = ga.events(), gb.events()
    total = first(ea, "guest.sink.total")
    done = first(eb, "guest.trafgen.done")
    ok = (ra == 0 and rb == 0 and total is not None and done is not None and done["sent"] == "2000" and
          total["packets"] == "2000" and total["bytes"] == str(2000 * 256))
    return ok, {"sink": ea, "trafgen": eb}, "rc=%s/%s total=%s done=%s" % (ra, rb, total, done)


def scenario_badring(qemu_dir, workdir, bad):
    rc, ev = alone(qemu_dir, workdir, "netbad_" + bad, "netbad", "ip=10.0.2.15 mode=badring bad=%s irq=no" % bad)
    st = first(ev, "guest.netbad.status")
    # QEMU's virtio core marks the device broken (virtio_error: NEEDS_RESET
    # with VERSION_1) for a descriptor loop and an avail.idx jump. A buffer
    # outside RAM it reads through a bounce buffer from unassigned memory, so
    # there the guest only has to survive; the hypervisor must mark it broken.
    ok = rc == 0 and st is not None and (bad == "oob" or st["needs_reset"] == "yes")
    return ok, {"netbad": ev}, "rc=%s status=%s" % (rc, st)


def scenario_spoof(qemu_dir, workdir):
    ga, gb = pair(qemu_dir, workdir,
                  ("sink", "sink", "ip=10.0.0.1 duration_ms=6000"),
                  ("netbad", "netbad", "ip=10.0.0.2 mode=spoof peer=10.0.0.1 count=10 irq=no"))
    rb = gb.wait(60)
    ra = ga.wait(60)
    ea, eb = ga.events(), gb.events()
    spoof = first(eb, "guest.netbad.spoof")
    total = first(ea, "guest.sink.total")
    # QEMU has no anti-spoofing: the sink sees both batches here. Under the
    # hypervisor's switch it must see only sent_own.
    ok = (rb == 0 and spoof is not None and spoof["sent_spoofed"] == "10" and spoof["sent_own"] == "10" and
          total is not None and total["packets"] == "20")
    return ok, {"sink": ea, "netbad": eb}, "rc=%s/%s spoof=%s total=%s" % (ra, rb, spoof, total)


def scenario_vlan(qemu_dir, workdir):
    # Both ends on one wire with VLAN interfaces: 10.0.0.x tagged 10, 10.0.1.x
    # untagged. The pinger also has 10.0.2.2 on VLAN 20, which the echo is not
    # on: its tagged ARP requests must be dropped (and counted) there. The
    # echo outlives the pinger (15 s at the assumed 1 GHz) to print its counters.
    ga, gb = pair(qemu_dir, workdir,
                  ("echo", "netecho", "ip=10.0.0.1 vlan=10 vif=0:10.0.1.1 duration_ms=15000 report_ms=0"),
                  ("ping", "ping", "ip=10.0.0.2 vlan=10 vif=0:10.0.1.2,20:10.0.2.2 "
                   "peer=10.0.0.1,10.0.1.1,10.0.2.1 count=5"))
    rb = gb.wait(60)
    ra = ga.wait(60)
    ea, eb = ga.events(), gb.events()
    done = {kv.get("peer"): kv for n, kv in eb if n == "guest.ping.done"}
    vlans = first(ea, "guest.net.vlans")
    arp20 = [kv for n, kv in eb if n == "guest.net.if" and kv.get("vlan") == "20"]
    ok = (rb == 1 and ra == 0 and len(done) == 3 and
          done["10.0.0.1"]["vlan"] == "10" and done["10.0.0.1"]["received"] == "5" and
          done["10.0.1.1"]["vlan"] == "0" and done["10.0.1.1"]["received"] == "5" and
          done["10.0.2.1"]["received"] == "0" and first(eb, "guest.ping.error") is not None and
          vlans is not None and arp20 and vlans["rx_vlan_dropped"] == arp20[0]["tx"] and int(arp20[0]["tx"]) > 0)
    return ok, {"echo": ea, "ping": eb}, "rc=%s/%s done=%s echo vlans=%s" % (ra, rb, done, vlans)


def scenario_vlan_out_of_range(qemu_dir, workdir):
    rc, ev = alone(qemu_dir, workdir, "ping_vlan4095", "ping", "ip=10.0.2.15 vlan=4095 peer=10.0.2.2")
    err = first(ev, "guest.args_error")
    ok = rc == 1 and err == {"key": "vlan", "what": "out_of_range", "min": "1", "max": "4094"}
    return ok, {"ping": ev}, "rc=%s error=%s" % (rc, err)


SCENARIOS = {
    "ping_gateway": scenario_ping_gateway,
    "ping_echo": scenario_ping_echo,
    "ping_echo_no_event_idx": lambda q, w: scenario_ping_echo(q, w, "event_idx=no mrg_rxbuf=no"),
    "trafgen_sink": scenario_udp_echo,
    "badring_oob": lambda q, w: scenario_badring(q, w, "oob"),
    "badring_loop": lambda q, w: scenario_badring(q, w, "loop"),
    "badring_jump": lambda q, w: scenario_badring(q, w, "jump"),
    "spoof": scenario_spoof,
    "vlan": scenario_vlan,
    "vlan_out_of_range": scenario_vlan_out_of_range,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "..", "build"))
    ap.add_argument("--keep", action="store_true", help="keep the serial logs")
    ap.add_argument("scenarios", nargs="*")
    opt = ap.parse_args()
    if not shutil.which("qemu-system-x86_64"):
        print("qemu-system-x86_64 not found")
        return 1
    qemu_dir = os.path.join(opt.build, "guests", "qemu")
    names = opt.scenarios or list(SCENARIOS)
    workdir = tempfile.mkdtemp(prefix="guestnet-qemu-")
    passed = failed = 0
    for name in names:
        ok, logs, detail = SCENARIOS[name](qemu_dir, os.path.join(workdir))
        print("%s %s: %s" % ("PASS" if ok else "FAIL", name, detail))
        if not ok:
            for who, ev in logs.items():
                for n, kv in ev:
                    print("  [%s] %s %s" % (who, n, " ".join("%s=%s" % i for i in kv.items())))
        passed += ok
        failed += not ok
    if not opt.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print("logs in", workdir)
    print("accelerator: %s" % ("kvm" if KVM else "tcg"))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
