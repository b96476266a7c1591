#!/usr/bin/env python3
"""Turns tests/data/insn/cases.txt into the C++ table insn_cases.inc.

Each assembly line is assembled on its own by the GNU assembler (`as`, binutils),
so the bytes and the instruction lengths in the table are the assembler's, not the
decoder's. The expected decoded fields are the hand-written columns of cases.txt.

    python3 tests/data/insn/gen.py     # from anywhere; rewrites insn_cases.inc
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases.txt")
OUT = os.path.join(HERE, "insn_cases.inc")

MODES = {
    "real16": (".code16", "--32"),
    "protected16": (".code16", "--32"),
    "protected32": (".code32", "--32"),
    "long64": (".code64", "--64"),
}

OPS = {"load", "store", "load_zero_extend", "load_sign_extend", "rmw_and", "rmw_or", "rmw_xor",
       "rmw_add", "rmw_sub", "cmp", "test", "xchg"}
SEGMENTS = {"es": "ES", "cs": "CS", "ss": "SS", "ds": "DS", "fs": "FS", "gs": "GS"}
ERRCS = {"unsupported", "malformed", "truncated", "invalid_argument"}

_LEGACY = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"]
REGS = {}
for i, n in enumerate(_LEGACY):
    REGS["r" + n] = (i, False)
    REGS["e" + n] = (i, False)
    REGS[n] = (i, False)
for i, n in enumerate(["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"]):
    REGS[n] = (i, False)
for i, n in enumerate(["ah", "ch", "dh", "bh"]):
    REGS[n] = (i, True)
for i in range(8, 16):
    for suffix in ("", "d", "w", "b"):
        REGS["r%d%s" % (i, suffix)] = (i, False)

# The register file the `ea=` expressions are evaluated over (see cases.txt).
GPR_NAMES = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + ["r%d" % i for i in range(8, 16)]
EA_ENV = {name: 0xA5A5A5A500000000 | ((i + 1) << 16) | ((i + 1) << 4) for i, name in enumerate(GPR_NAMES)}
EA_ENV["rip"] = 0x1000


def assemble(mode, text, tmp):
    directive, as_mode = MODES[mode]
    src = os.path.join(tmp, "t.s")
    obj = os.path.join(tmp, "t.o")
    binf = os.path.join(tmp, "t.bin")
    with open(src, "w") as f:
        f.write("%s\n%s\n" % (directive, text))
    r = subprocess.run(["as", as_mode, src, "-o", obj], capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        sys.exit("as failed on %r (%s): %s" % (text, mode, r.stderr.strip()))
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", obj, binf], check=True)
    with open(binf, "rb") as f:
        return f.read()


def c_bytes(b):
    return "{" + ", ".join("0x%02x" % x for x in b) + "}"


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_int(s):
    return int(s, 0)


def main():
    valid, reject = [], []
    with tempfile.TemporaryDirectory() as tmp, open(CASES) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            cols = [c.strip() for c in line.split("|")]
            where = "cases.txt:%d" % lineno
            mode, text = cols[0], cols[1]
            if mode not in MODES:
                sys.exit("%s: bad mode %r" % (where, mode))
            code = assemble(mode, text, tmp)
            cpp_mode = "CpuMode::" + mode
            if cols[2] == "reject":
                _, _, _, errc, value, detail = cols
                if errc not in ERRCS:
                    sys.exit("%s: bad errc %r" % (where, errc))
                reject.append("    {%s, %s, %s, %d, Errc::%s, 0x%x, %s},  // %s" % (
                    cpp_mode, c_string(text), c_bytes(code), len(code), errc, parse_int(value),
                    c_string(detail), where))
                continue
            if len(cols) != 8:
                sys.exit("%s: expected 8 columns, got %d" % (where, len(cols)))
            _, _, op, access, operand, reg, imm, extras = cols
            if op not in OPS:
                sys.exit("%s: bad op %r" % (where, op))
            if len(code) > 15:
                sys.exit("%s: %d bytes, longer than an instruction can be" % (where, len(code)))
            regno, high = (0xFF, False) if reg == "-" else REGS[reg]
            has_imm = imm != "-"
            immv = parse_int(imm) if has_imm else 0
            regdst = lock = ovr = False
            seg = "DS"
            has_ea, ea = False, 0
            for tok in extras.split():
                if tok == "regdst":
                    regdst = True
                elif tok == "lock":
                    lock = True
                elif tok == "ovr":
                    ovr = True
                elif tok.startswith("seg="):
                    seg = SEGMENTS[tok[4:]]
                elif tok.startswith("ea="):
                    has_ea = True
                    ea = eval(tok[3:], {"__builtins__": {}}, EA_ENV) & (2**64 - 1)
                else:
                    sys.exit("%s: bad extra %r" % (where, tok))
            b = lambda v: "true" if v else "false"
            valid.append(
                "    {%s, %s, %s, %d, MmioOp::%s, %d, %d, 0x%02x, %s, %s, 0x%x, %s, %s, Segment::%s, %s, %s, 0x%x},"
                "  // %s" % (cpp_mode, c_string(text), c_bytes(code), len(code), op, int(access), int(operand),
                             regno, b(high), b(has_imm), immv, b(regdst), b(lock), seg, b(ovr), b(has_ea), ea,
                             where))
    with open(OUT, "w") as f:
        f.write("// Generated by tests/data/insn/gen.py from tests/data/insn/cases.txt: do not edit.\n")
        f.write("// Bytes and lengths come from the GNU assembler; regenerate with\n")
        f.write("//     python3 tests/data/insn/gen.py\n")
        f.write("// clang-format off\n")
        f.write("// {mode, text, bytes, length, op, access, operand, reg, high, has_imm, imm, reg_destination,\n")
        f.write("//  lock, segment, segment_override, has_ea, ea}\n")
        f.write("inline const InsnCase kInsnCases[] = {\n")
        f.write("\n".join(valid) + "\n};\n\n")
        f.write("// {mode, text, bytes, length, code, value, detail}\n")
        f.write("inline const RejectCase kRejectCases[] = {\n")
        f.write("\n".join(reject) + "\n};\n")
        f.write("// clang-format on\n")
    print("%s: %d accepted, %d rejected" % (OUT, len(valid), len(reject)))


if __name__ == "__main__":
    main()
