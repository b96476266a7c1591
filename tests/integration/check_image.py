#!/usr/bin/env python3
"""Static checks of the built hypervisor image (ctest: image.*).

What a boot loader and our own rules require of hv.elf, checked on the file:
  headers    multiboot 1 (first 8 KiB, a.out-kludge fields consistent with the
             file) and multiboot 2 (first 32 KiB, tags well formed), checksums
  segments   PT_LOAD segments never both writable and executable (W^X), file
             offset - address constant (what the a.out kludge copies)
  runtime    no heap or C++ runtime symbols (operator new, malloc, atexit,
             guard variables), no undefined symbols, no static constructors
Usage: check_image.py ELF
"""

import struct
import subprocess
import sys

MB1_MAGIC = 0x1BADB002
MB2_MAGIC = 0xE85250D6
PT_LOAD = 1
PF_X, PF_W = 1, 2
FORBIDDEN = ["_Znwm", "_Znam", "_ZdlPv", "_ZdlPvm", "_ZdaPv", "malloc", "free", "calloc", "realloc",
             "__cxa_atexit", "atexit", "__cxa_guard_acquire", "__cxa_guard_release", "__stack_chk_fail",
             "__cxa_throw", "_Unwind_Resume"]

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def main(path):
    data = open(path, "rb").read()
    check(data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a little-endian ELF64 file")
    e_machine, = struct.unpack_from("<H", data, 0x12)
    check(e_machine == 62, f"e_machine {e_machine} is not x86-64")
    e_entry, e_phoff, e_shoff = struct.unpack_from("<QQQ", data, 0x18)
    e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHHHH", data, 0x36)

    segs = []
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == PT_LOAD:
            segs.append((p_flags, p_offset, p_vaddr, p_filesz, p_memsz))
    check(segs, "no PT_LOAD segments")
    for flags, off, vaddr, filesz, memsz in segs:
        check(not (flags & PF_W and flags & PF_X), f"segment at {vaddr:#x} is writable and executable")
    deltas = {vaddr - off for _, off, vaddr, _, _ in segs}
    check(len(deltas) == 1, f"file offset/address delta differs between segments: {sorted(hex(d) for d in deltas)}")
    text = [s for s in segs if s[0] & PF_X]
    check(any(v <= e_entry < v + m for _, _, v, _, m in text), f"entry {e_entry:#x} not in an executable segment")

    # Multiboot 1 (Multiboot 0.6.96 §3.1): 4-aligned in the first 8192 bytes.
    mb1 = None
    for off in range(0, min(8192, len(data)) - 12, 4):
        magic, flags, csum = struct.unpack_from("<III", data, off)
        if magic == MB1_MAGIC and (magic + flags + csum) & 0xFFFFFFFF == 0:
            mb1 = (off, flags)
            break
    check(mb1 is not None, "no valid multiboot 1 header in the first 8 KiB")
    if mb1:
        off, flags = mb1
        check(flags & (1 << 16), "multiboot 1 header lacks the address fields (QEMU -kernel refuses ELF64)")
        header_addr, load_addr, load_end, bss_end, entry = struct.unpack_from("<IIIII", data, off + 12)
        file_load = off - (header_addr - load_addr)
        check(file_load >= 0, "multiboot 1 load_addr lies before the start of the file")
        check(file_load + (load_end - load_addr) <= len(data), "multiboot 1 load_end_addr runs past the file")
        check(bss_end >= load_end, "multiboot 1 bss_end_addr below load_end_addr")
        check(entry == e_entry, f"multiboot 1 entry {entry:#x} != ELF entry {e_entry:#x}")
        check(header_addr - off == segs[0][2] - segs[0][1], "multiboot 1 header_addr does not match its file offset")

    # Multiboot 2 (Multiboot2 1.6 §3.1): 8-aligned in the first 32768 bytes.
    mb2 = None
    for off in range(0, min(32768, len(data)) - 16, 8):
        magic, arch, length, csum = struct.unpack_from("<IIII", data, off)
        if magic == MB2_MAGIC and (magic + arch + length + csum) & 0xFFFFFFFF == 0:
            mb2 = (off, arch, length)
            break
    check(mb2 is not None, "no valid multiboot 2 header in the first 32 KiB")
    if mb2:
        off, arch, length = mb2
        check(arch == 0, "multiboot 2 architecture is not i386 (0)")
        pos, end_seen = off + 16, False
        while pos < off + length:
            ttype, _tflags, tsize = struct.unpack_from("<HHI", data, pos)
            if ttype == 0:
                end_seen = tsize == 8
                break
            check(tsize >= 8, f"multiboot 2 tag {ttype} has size {tsize}")
            if tsize < 8:
                break
            pos += (tsize + 7) & ~7
        check(end_seen, "multiboot 2 header has no well-formed end tag")

    # Sections: no constructors arrays with content.
    shstr_off = struct.unpack_from("<Q", data, e_shoff + e_shstrndx * e_shentsize + 0x18)[0]
    for i in range(e_shnum):
        name_off, _t, _f, _a, _o, size = struct.unpack_from("<IIQQQQ", data, e_shoff + i * e_shentsize)
        name = data[shstr_off + name_off:data.index(b"\0", shstr_off + name_off)].decode()
        if name.startswith((".init_array", ".ctors", ".fini_array", ".dtors")):
            check(size == 0, f"section {name} has {size} bytes: static constructors/destructors")

    nm = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout.split("\n")
    defined = {l.split()[-1] for l in nm if len(l.split()) == 3}
    undefined = [l.split()[-1] for l in nm if len(l.split()) == 2 and l.split()[0] == "U"]
    check(not undefined, f"undefined symbols: {undefined}")
    bad = [s for s in FORBIDDEN if s in defined or s in undefined]
    check(not bad, f"heap/runtime symbols present: {bad}")

    if failures:
        for f in failures:
            print("FAIL:", f)
        return 1
    print(f"ok: {len(segs)} W^X segments, multiboot 1 at {mb1[0]:#x}, multiboot 2 at {mb2[0]:#x}, "
          f"entry {e_entry:#x}, no runtime symbols")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
