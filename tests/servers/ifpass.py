#!/usr/bin/env python3
"""snmpd `pass` script: serves IF-MIB ifTable rows from counters.json beside it.

The tests write counters.json to move Counter32 values (and wrap them) between
polls; snmpd's own interface module is disabled (-I -ifTable,...).
"""

import json
import sys
from pathlib import Path

BASE = (1, 3, 6, 1, 2, 1, 2, 2, 1)
COLUMNS = {2: ("string", "descr"), 3: ("integer", "type"), 5: ("gauge", "speed"), 8: ("integer", "oper"),
           10: ("counter", "in"), 16: ("counter", "out")}


def rows():
    data = json.loads((Path(__file__).parent / "counters.json").read_text())
    out = []
    for col, (typ, key) in sorted(COLUMNS.items()):
        for idx in sorted(int(i) for i in data):
            out.append(((*BASE, col, idx), typ, data[str(idx)][key]))
    return out


def main():
    mode, oid_s = sys.argv[1], sys.argv[2]
    oid = tuple(int(x) for x in oid_s.strip(".").split("."))
    table = rows()
    hit = None
    if mode == "-g":
        hit = next((r for r in table if r[0] == oid), None)
    elif mode == "-n":
        hit = next((r for r in table if r[0] > oid), None)
    if hit:
        print("." + ".".join(map(str, hit[0])))
        print(hit[1])
        print(hit[2])


main()
