#!/usr/bin/env python3
"""VT-x figures (tools/hv bench vmx), all from Bochs with clock sync=none.

There the TSC advances one tick per emulated instruction of a CPU, so tick
counts are deterministic instruction counts:
  * cost of a CPUID exit and of a VMCALL round trip: the bench guest times a
    loop of N exiting instructions and the same loop without them, and prints
    the difference per iteration (guest/bench);
  * hypervisor memory per guest besides its RAM: VMCS + EPT tables + the
    hypervisor's per-guest record (hv.guest.start overhead_bytes);
  * instructions from the hypervisor's first instruction to each guest's first
    instruction (hv.guest.running ticks_from_hv_entry).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration"))
import hvtest  # noqa: E402


def run(config, cpus, build, duration_ms=1500):
    case = dict(name=f"bench-{config}", emulator="bochs", boot="iso", cpus=cpus, mem=256, timeout=300,
                config=config, duration_ms=duration_ms)
    console, workdir = hvtest.run_emulator(case, build, verbose=False)
    if console.timed_out:
        raise SystemExit(f"bench: {config} did not finish ({workdir})")
    return console


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(hvtest.ROOT, "build"))
    a = ap.parse_args()
    build = os.path.abspath(a.build)

    c = run("bench.toml", 2, build, duration_ms=3000)
    rows = [f for _, e, f in c.guest_lines("bench") if e == "guest.bench"]
    if len(rows) < 2:
        raise SystemExit("bench: the bench guest printed no results:\n" + c.text[-3000:])
    print(f"Bochs 2.7 corei7_skylake_x, ips={hvtest.BOCHS_IPS}, clock sync=none (1 tick = 1 instruction):")
    print("  exit      iterations  per-exit ticks  loop ticks/iter  (guest's best of its runs)")
    for r in rows:
        iters = int(r["iterations"])
        print(f"  {r['name']:<8} {iters:>11}  {int(r['per_exit_ticks']):>14}  {int(r['loop_ticks']) / iters:>15.1f}")
    start = c.one("hv.guest.start", guest="bench")
    stats = c.one("hv.guest.stats", guest="bench")
    print(f"  exits taken by the bench guest: {stats['exits']}")

    c3 = run("three_hello.toml", 4, build)
    print("\nPer guest (three_hello.toml, 4 CPUs):")
    print("  guest   RAM MiB  EPT tables  hypervisor bytes besides RAM  instructions hv entry -> first guest instruction")
    for g in ("alpha", "beta", "gamma"):
        s = c3.one("hv.guest.start", guest=g)
        r = c3.one("hv.guest.running", guest=g)
        print(f"  {g:<7} {s['mem_mib']:>7}  {s['ept_tables']:>10}  {int(s['overhead_bytes']):>28}  {int(r['ticks_from_hv_entry']):>16}")
    print("  (overhead = VMCS page + EPT tables + the per-guest record, which includes its 5 KiB console ring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
