#!/usr/bin/env python3
"""Switch data path in Bochs (tools/hv bench net-bochs): deterministic costs.

Bochs with clock sync=none advances the TSC one tick per emulated instruction,
so the hypervisor's ticks are its instructions. Two runs:
  * low load: ping, one echo request and reply at a time (net_bench_low.toml);
  * full load: a generator sends 64-byte UDP frames as fast as it can to a sink
    (net_bench_full.toml).
For each: frames through the switch (the ports' rx_packets), and per frame the
hypervisor instructions spent in the exits that carry network work (MMIO: the
guests' notifications and device registers; HLT and wake-up interrupts;
interrupt windows; x2APIC MSRs: EOI and timer), the VM exits, and the
interrupts injected. Console output (UART exits) and the 100 Hz tick are
excluded: they do not depend on the traffic.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration"))
import hvtest  # noqa: E402

NET_REASONS = ("EPT_VIOLATION", "HLT", "EXTERNAL_INTERRUPT", "INTERRUPT_WINDOW", "RDMSR", "WRMSR")


def run(config, build, duration_ms):
    case = dict(name=f"bench-{config}", emulator="bochs", boot="iso", cpus=4, mem=256, timeout=600,
                config=config, duration_ms=duration_ms)
    console, workdir = hvtest.run_emulator(case, build, verbose=False)
    if console.timed_out:
        raise SystemExit(f"bench: {config} did not finish ({workdir})")
    return console


def profile(c, guests):
    exits = ticks = 0
    for g in guests:
        p = c.one("hv.guest.exit_profile", guest=g)
        for r in NET_REASONS:
            if r in p:
                n, t = (int(x) for x in p[r].split(":"))
                exits += n
                ticks += t
    interrupts = sum(int(c.one("hv.guest.stats", guest=g)["interrupts"]) for g in guests)
    frames = sum(int(c.one("hv.port.stats", guest=g)["rx_packets"]) for g in guests)
    return frames, exits, ticks, interrupts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(hvtest.ROOT, "build"))
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    print(f"Bochs 2.7 corei7_skylake_x, ips={hvtest.BOCHS_IPS}, clock sync=none (1 tick = 1 instruction)")
    print("  load  frames  hv instr/frame  exits/frame  interrupts/frame")
    for name, config, guests, ms in (("low", "net_bench_low.toml", ("echo", "pinger"), 2500),
                                     ("full", "net_bench_full.toml", ("gen", "sink"), 4000)):
        c = run(config, build, ms)
        frames, exits, ticks, irqs = profile(c, guests)
        if frames == 0:
            raise SystemExit(f"bench: no frames went through the switch in {config}:\n" + c.text[-3000:])
        print(f"  {name:<5} {frames:>6}  {ticks / frames:>14.0f}  {exits / frames:>11.2f}  {irqs / frames:>16.2f}")
        print(f"bench.net_bochs load={name} frames={frames} hv_instructions_per_frame={ticks // frames} "
              f"exits_per_frame={exits / frames:.3f} interrupts_per_frame={irqs / frames:.3f}")
        if name == "full":
            done = [f for _, e, f in c.guest_lines("gen") if e == "guest.trafgen.done"]
            total = [f for _, e, f in c.guest_lines("sink") if e == "guest.sink.total"]
            if done and total:
                print(f"  generator: {done[0]}\n  sink: {total[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
