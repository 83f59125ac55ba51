#!/usr/bin/env python3
"""Compare two `show --format` outputs (BuildStream's and cas's) per element and field.

Both outputs are made with the format that bench/gnome-build-meta.sh passes: each
element starts with a line `=====CMP-ELEMENT=====`, the next line is its name, and each
field starts with a line `=====CMP-FIELD <field>=====`; the field's text runs to the
next delimiter line.

A field agrees `exact` when the text is byte for byte the same, `parsed` when the two
texts load to the same YAML value (dependency lists: the same names in another order
count as `parsed`, as a set).

Usage: bst-compare-show.py BST_OUT CAS_OUT [--examples N] [--json FILE]
"""

import json
import sys
from collections import Counter, OrderedDict, defaultdict

import yaml

ELEM = "=====CMP-ELEMENT====="
FIELD = "=====CMP-FIELD "


def parse(path):
    elements = OrderedDict()
    cur = None
    field = None
    lines = None
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read().split("\n")
    i = 0
    while i < len(text):
        line = text[i]
        if line == ELEM:
            name = text[i + 1] if i + 1 < len(text) else ""
            cur = OrderedDict()
            elements[name] = cur
            field = None
            i += 2
            continue
        if line.startswith(FIELD) and line.endswith("=====") and cur is not None:
            field = line[len(FIELD):-5]
            lines = []
            cur[field] = lines
            i += 1
            continue
        if field is not None:
            lines.append(line)
        i += 1
    out = OrderedDict()
    for name, fields in elements.items():
        out[name] = OrderedDict((k, "\n".join(v).rstrip("\n")) for k, v in fields.items())
    return out


def load(text):
    try:
        return yaml.safe_load(text)
    except Exception:
        return ("unparsable", text)


def deps_set(v):
    if isinstance(v, list):
        return sorted(str(x) for x in v)
    return v


def diff_keys(a, b, prefix=""):
    """Paths of differing keys between two loaded YAML values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            p = prefix + "." + str(k) if prefix else str(k)
            if k not in a:
                out.append(("only-cas", p))
            elif k not in b:
                out.append(("only-bst", p))
            elif a[k] != b[k]:
                out.extend(diff_keys(a[k], b[k], p))
        return out
    return [("value", prefix or "<whole>")]


def short(v, n=160):
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 3] + "..."


def main():
    args = sys.argv[1:]
    nex = 3
    jpath = None
    if "--examples" in args:
        i = args.index("--examples")
        nex = int(args[i + 1])
        del args[i : i + 2]
    if "--json" in args:
        i = args.index("--json")
        jpath = args[i + 1]
        del args[i : i + 2]
    bst = parse(args[0])
    cas = parse(args[1])
    only_bst = [n for n in bst if n not in cas]
    only_cas = [n for n in cas if n not in bst]
    common = [n for n in bst if n in cas]
    fields = []
    for e in list(bst.values())[:1] + list(cas.values())[:1]:
        for f in e:
            if f not in fields:
                fields.append(f)

    print(f"elements: bst {len(bst)}, cas {len(cas)}, both {len(common)}, "
          f"only bst {len(only_bst)}, only cas {len(only_cas)}")
    for n in only_bst[:10]:
        print(f"  only in bst: {n}")
    for n in only_cas[:10]:
        print(f"  only in cas: {n}")
    all_same = sum(1 for n in common if bst[n] == cas[n])
    print(f"elements whose every field is byte-identical: {all_same} / {len(common)}")
    print()
    print("| field | exact | same value (parsed) | differ |")
    print("| --- | ---: | ---: | ---: |")
    summary = {}
    keydiffs = defaultdict(Counter)
    keyexamples = defaultdict(dict)
    for f in fields:
        exact = parsed = differ = 0
        for n in common:
            a = bst[n].get(f)
            b = cas[n].get(f)
            if a == b:
                exact += 1
                continue
            la, lb = load(a or ""), load(b or "")
            if f in ("deps", "build-deps", "runtime-deps"):
                la, lb = deps_set(la), deps_set(lb)
            if la == lb:
                parsed += 1
                continue
            differ += 1
            if f in ("deps", "build-deps", "runtime-deps"):
                sa = set(la or []) if isinstance(la, list) else set()
                sb = set(lb or []) if isinstance(lb, list) else set()
                for x in sorted(sa - sb):
                    keydiffs[f][("only-bst", x)] += 1
                    keyexamples[f].setdefault(("only-bst", x), (n, "", ""))
                for x in sorted(sb - sa):
                    keydiffs[f][("only-cas", x)] += 1
                    keyexamples[f].setdefault(("only-cas", x), (n, "", ""))
            else:
                for kind, p in diff_keys(la, lb):
                    keydiffs[f][(kind, p)] += 1
                    if (kind, p) not in keyexamples[f]:
                        va, vb = la, lb
                        for part in ([] if p == "<whole>" else p.split(".")):
                            va = va.get(part) if isinstance(va, dict) else None
                            vb = vb.get(part) if isinstance(vb, dict) else None
                        keyexamples[f][(kind, p)] = (n, va, vb)
        summary[f] = {"exact": exact, "parsed": parsed, "differ": differ}
        print(f"| {f} | {exact} | {parsed} | {differ} |")
    print()
    for f in fields:
        if not keydiffs[f]:
            continue
        print(f"{f}: most frequent differences (kind, key: elements)")
        for (kind, p), c in keydiffs[f].most_common(12):
            n, va, vb = keyexamples[f][(kind, p)]
            print(f"  {kind:9} {p}: {c}   e.g. {n}")
            if kind == "value" or (va is not None or vb is not None) and kind != "only-bst" and kind != "only-cas":
                print(f"      bst: {short(va)}")
                print(f"      cas: {short(vb)}")
            elif kind == "only-bst" and va not in (None, ""):
                print(f"      bst: {short(va)}")
            elif kind == "only-cas" and vb not in (None, ""):
                print(f"      cas: {short(vb)}")
        print()
    if jpath:
        with open(jpath, "w") as fo:
            json.dump({
                "bst": len(bst), "cas": len(cas), "both": len(common),
                "only_bst": only_bst, "only_cas": only_cas,
                "identical": all_same, "fields": summary,
                "top": {f: [[k[0], k[1], c] for k, c in keydiffs[f].most_common(30)] for f in fields},
            }, fo, indent=1)


if __name__ == "__main__":
    main()
