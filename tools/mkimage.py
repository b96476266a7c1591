#!/usr/bin/env python3
"""Make an appliance ISO: the hypervisor, its configuration and guest images.

  mkimage.py --kernel hv.elf --config hv.toml --out hv.iso
             [--guest-dir DIR]... [--module NAME=PATH]... [--cmdline "hv.x=1 ..."]

Every `image = "NAME"` in the configuration becomes a boot module named NAME,
taken from --module NAME=PATH or else DIR/NAME.elf in the first --guest-dir
that has it. The configuration itself is the module named `config`. GRUB's
menu boots multiboot2 (BIOS and UEFI) with a multiboot 1 fallback entry; the
ISO is a grub-mkrescue hybrid. The configuration is not validated here: the
hypervisor does that at boot (and `tools/hv check` does it on the host).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

IMAGE_RE = re.compile(r'^\s*image\s*=\s*"([^"\\]*)"\s*(#.*)?$')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--guest-dir", action="append", default=[])
    ap.add_argument("--module", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--cmdline", default="")
    a = ap.parse_args()

    explicit = {}
    for m in a.module:
        if "=" not in m:
            sys.exit(f"mkimage: --module wants NAME=PATH, got {m!r}")
        name, path = m.split("=", 1)
        explicit[name] = path
    try:
        text = open(a.config, encoding="utf-8", errors="replace").read()
    except OSError as e:
        sys.exit(f"mkimage: cannot read configuration {a.config}: {e.strerror}")
    names = []
    for line in text.splitlines():
        m = IMAGE_RE.match(line)
        if m and m.group(1) not in names:
            names.append(m.group(1))

    modules = []
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", name):
            sys.exit(f"mkimage: {a.config}: image name {name!r} is not a valid module name")
        path = explicit.get(name)
        if not path:
            for d in a.guest_dir:
                cand = os.path.join(d, name + ".elf")
                if os.path.exists(cand):
                    path = cand
                    break
        if not path or not os.path.exists(path):
            # Left out on purpose: the hypervisor reports the missing module and
            # still boots the other guests.
            print(f"mkimage: warning: no file for image {name!r}; the guest will be rejected at boot", file=sys.stderr)
            continue
        modules.append((name, path))

    work = tempfile.mkdtemp(prefix="hv-iso-")
    try:
        boot = os.path.join(work, "boot")
        os.makedirs(os.path.join(boot, "grub"))
        shutil.copy(a.kernel, os.path.join(boot, "hv.elf"))
        shutil.copy(a.config, os.path.join(boot, "hv.toml"))
        for name, path in modules:
            shutil.copy(path, os.path.join(boot, name + ".elf"))
        lines2 = ["    module2 /boot/hv.toml config"] + [f"    module2 /boot/{n}.elf {n}" for n, _ in modules]
        lines1 = ["    module /boot/hv.toml config"] + [f"    module /boot/{n}.elf {n}" for n, _ in modules]
        cfg = "\n".join([
            "serial --unit=0 --speed=115200",
            "terminal_input serial console",
            "terminal_output serial console",
            "set timeout=0",
            "set default=0",
            'menuentry "hv appliance (multiboot2)" {',
            f"    multiboot2 /boot/hv.elf {a.cmdline}".rstrip(),
            *lines2,
            "    boot",
            "}",
            'menuentry "hv appliance (multiboot 1)" {',
            f"    multiboot /boot/hv.elf {a.cmdline}".rstrip(),
            *lines1,
            "    boot",
            "}",
            "",
        ])
        with open(os.path.join(boot, "grub", "grub.cfg"), "w") as f:
            f.write(cfg)
        r = subprocess.run(["grub-mkrescue", "-o", a.out, work], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"mkimage: grub-mkrescue failed:\n{r.stderr}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
