#!/usr/bin/env python3
"""snmpd `pass_persist` script: serves IF-MIB ifTable rows from counters.json beside it.

The tests write counters.json to move Counter32 values (and wrap them) between
polls; snmpd's own interface modules are disabled (-I -ifTable,...). One
long-lived process (pass_persist), so walks cost no fork per varbind.
"""

import json
import sys
from pathlib import Path

BASE = (1, 3, 6, 1, 2, 1, 2, 2, 1)
COLUMNS = {2: ("string", "descr"), 3: ("integer", "type"), 5: ("gauge", "speed"), 8: ("integer", "oper"),
           10: ("counter", "in"), 16: ("counter", "out")}
COUNTERS = Path(__file__).parent / "counters.json"


def rows():
    try:
        data = json.loads(COUNTERS.read_text())
    except (OSError, ValueError):
        data = {}
    out = []
    for col, (typ, key) in sorted(COLUMNS.items()):
        for idx in sorted(int(i) for i in data):
            out.append(((*BASE, col, idx), typ, data[str(idx)][key]))
    return out


def answer(mode, oid_s):
    oid = tuple(int(x) for x in oid_s.strip(".").split("."))
    table = rows()
    if mode == "get":
        hit = next((r for r in table if r[0] == oid), None)
    else:
        hit = next((r for r in table if r[0] > oid), None)
    if hit is None:
        return "NONE\n"
    return "." + ".".join(map(str, hit[0])) + f"\n{hit[1]}\n{hit[2]}\n"


def main():
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "PING":
            out = "PONG\n"
        elif cmd in ("get", "getnext"):
            out = answer(cmd, sys.stdin.readline())
        elif cmd == "set":
            sys.stdin.readline()
            sys.stdin.readline()
            out = "not-writable\n"
        elif not cmd:
            return
        else:
            out = "NONE\n"
        sys.stdout.write(out)
        sys.stdout.flush()


main()
