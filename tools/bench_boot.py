#!/usr/bin/env python3
"""Boot figures for the README and the issue notes (tools/hv bench boot).

Bochs with `clock: sync=none` advances the TSC with executed instructions (one
tick per instruction and CPU step at the configured ips), so the hypervisor's
own `boot_tsc_ticks` (TSC at the summary minus TSC at the first instruction of
boot/entry.asm) is a deterministic instruction count of the boot CPU. Wall
times are host seconds between the first and the summary console line, as the
harness saw them appear (20 ms polling), and are noisy.
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration"))
import hvtest  # noqa: E402


def boot_once(emulator, boot, cpus, mem, build):
    case = dict(name=f"bench-{emulator}-{cpus}", emulator=emulator, boot=boot, cpus=cpus, mem=mem, timeout=300)
    console, workdir = hvtest.run_emulator(case, build, verbose=False)
    s = console.one("hv.summary")
    if s["status"] != "ok" or s["cpus_online"] != str(cpus):
        raise SystemExit(f"bench: boot failed ({workdir}): {s}")
    t = console.one("hv.time")
    entry_to_summary = console.marks["hv.summary"] - console.marks["hv.boot"]
    return dict(ticks=int(s["boot_tsc_ticks"]), boot_us=int(s["boot_us"]), tsc_hz=int(t["tsc_hz"]),
                wall_entry_to_summary=entry_to_summary, wall_total=console.wall)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(hvtest.ROOT, "build"))
    ap.add_argument("--runs", type=int, default=3, help="wall-time samples per configuration")
    a = ap.parse_args()
    build = os.path.abspath(a.build)

    elf = os.path.join(build, "kernel", "hv.elf")
    iso = os.path.join(build, "hv-appliance.iso")
    print("image:")
    print(f"  hv.elf file size           {os.path.getsize(elf):>10} bytes (with debug info)")
    # Loaded size: what multiboot copies and zeroes (PT_LOAD memsz).
    loaded = 0
    with open(elf, "rb") as f:
        data = f.read()
    import struct
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _flags, _off, _vaddr, _paddr, filesz, memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 1:
            loaded += memsz
    print(f"  hv.elf loaded (PT_LOAD)    {loaded:>10} bytes")
    print(f"  appliance ISO              {os.path.getsize(iso):>10} bytes (GRUB BIOS+UEFI included)")

    print("\nBochs 2.7, corei7_skylake_x, ips=%d, clock sync=none (deterministic):" % hvtest.BOCHS_IPS)
    print("  cpus  entry->summary instructions (BSP TSC ticks)  emulated ms  wall s entry->summary (median of %d)" % a.runs)
    for cpus in (1, 4):
        runs = [boot_once("bochs", "iso", cpus, 256, build) for _ in range(a.runs)]
        ticks = {r["ticks"] for r in runs}
        wall = statistics.median(r["wall_entry_to_summary"] for r in runs)
        det = "" if len(ticks) == 1 else "  (NOT deterministic: %s)" % sorted(ticks)
        print(f"  {cpus:>4}  {runs[0]['ticks']:>44}  {runs[0]['boot_us'] / 1000:>11.1f}  {wall:>6.2f}{det}")

    print("\nQEMU 7.2 TCG (-cpu max), -kernel (multiboot 1):")
    print("  cpus  emulated ms entry->summary  wall s entry->summary (median of %d)" % a.runs)
    for cpus in (1, 4, 8):
        runs = [boot_once("qemu", "kernel", cpus, 512, build) for _ in range(a.runs)]
        print(f"  {cpus:>4}  {statistics.median(r['boot_us'] for r in runs) / 1000:>27.1f}  "
              f"{statistics.median(r['wall_entry_to_summary'] for r in runs):>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
