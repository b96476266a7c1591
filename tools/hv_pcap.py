#!/usr/bin/env python3
"""Rebuild a mirror session's pcap file from a hypervisor console log.

The hypervisor prints a capture as text (docs/console.md):
    hv.pcap.begin mirror=NAME bytes=N records=R dropped=D
    hv.pcap.data mirror=NAME offset=O b64=...
    hv.pcap.end mirror=NAME bytes=N
This joins the data lines of the last complete capture of a session, checks
offsets and length, and writes the file tcpdump or tshark can open.

    tools/hv_pcap.py LOG MIRROR OUT.pcap
"""
import base64
import os
import sys

# The console's event format has one parser, the test harness's.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration"))
from hvtest import parse_events  # noqa: E402


def extract(text, mirror):
    """Bytes of the last complete capture of `mirror` in `text`; raises ValueError."""
    current, last = None, None
    for event, f in parse_events(text):
        if not event.startswith("hv.pcap.") or f.get("mirror") != mirror:
            continue
        if event == "hv.pcap.begin":
            current = {"bytes": int(f["bytes"]), "data": bytearray()}
        elif event == "hv.pcap.data" and current is not None:
            if int(f["offset"]) != len(current["data"]):
                raise ValueError(f"{mirror}: data at offset {f['offset']}, expected {len(current['data'])}")
            current["data"] += base64.b64decode(f["b64"], validate=True)
        elif event == "hv.pcap.end" and current is not None:
            if len(current["data"]) != current["bytes"] or int(f["bytes"]) != current["bytes"]:
                raise ValueError(f"{mirror}: {len(current['data'])} bytes, announced {current['bytes']}")
            last, current = bytes(current["data"]), None
    if last is None:
        raise ValueError(f"no complete capture of mirror '{mirror}' in the log")
    return last


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        data = extract(text, argv[2])
    except ValueError as e:
        print(f"hv_pcap: {e}", file=sys.stderr)
        return 1
    with open(argv[3], "wb") as f:
        f.write(data)
    print(f"{argv[3]}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
