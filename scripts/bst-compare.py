#!/usr/bin/env python3
"""Compare how cas loads BuildStream projects against a recorded BuildStream oracle.

The oracle (JSON lines, one per (project, options, target)) is recorded by
running BuildStream 2.8.1's `bst show --deps none --format ...` on every
fixture project of BuildStream's source tree.  This script runs cas on the
same (project, options, target) and compares field by field:

    /work/bst-venv/bin/python scripts/bst-compare.py \
        --oracle /work/bst-oracle/oracle.jsonl --bst-src /work/bst-src \
        --cas target/debug/cas [--only SUBSTR] [--json OUT]

Fields compared: name kind state deps build-deps runtime-deps vars env public
config, from `cas show --deps none --json` (parsed values) and, where cas
supports it, from `cas show --deps none --format FMT` (raw text, byte for
byte; reported as raw:FIELD).  Needs only python3 (PyYAML optional).
"""
import argparse, collections, json, os, re, subprocess, sys

FIELDS = ["name", "kind", "state", "deps", "build-deps", "runtime-deps", "vars", "env", "public", "config"]
BEGIN, END = "@@BST-ORACLE-ELEMENT@@", "@@BST-ORACLE-END@@"
FMT = BEGIN + "\n" + "".join("@@F:%s@@\n%%{%s}\n" % (f, f) for f in FIELDS) + END
# cas JSON keys per field, newest first (older cas used the long names)
ALIASES = {"vars": ["vars", "variables"], "env": ["env", "environment"]}


def run(cmd, cwd):
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return "timeout", e.stdout or "", e.stderr or ""


def split_format(out):
    """bst-style --format output with the oracle's delimiters -> [{field: raw}]"""
    elements = []
    for chunk in out.split(BEGIN + "\n")[1:]:
        chunk = chunk.split("\n" + END)[0]
        names = re.findall(r"^@@F:([a-z-]+)@@\n", chunk, flags=re.M)
        parts = re.split(r"(?:^|\n)@@F:[a-z-]+@@\n", chunk)[1:]
        elements.append(dict(zip(names, parts)))
    return elements


def cas_fields(el):
    """One element object of `cas show --json` -> {field: value}, plus notes."""
    out, notes = {}, []
    for f in FIELDS:
        for key in ALIASES.get(f, [f]):
            if key in el:
                out[f] = el[key]
                if key != f:
                    notes.append("cas JSON has %r, not %r" % (key, f))
                break
    if "deps" not in out and any(k in el for k in ("depends", "build-depends", "runtime-depends")):
        # Older cas: deps by declaration keyword; derive bst's three scopes.
        b, d, r = el.get("build-depends", []), el.get("depends", []), el.get("runtime-depends", [])
        uniq = lambda xs: list(dict.fromkeys(xs))
        out["deps"], out["build-deps"], out["runtime-deps"] = uniq(b + d + r), uniq(b + d), uniq(d + r)
        notes.append("deps derived from cas depends/build-depends/runtime-depends")
    return out, notes


def normalise(v):
    """bst renders every scalar as a string; numbers from cas compare as strings."""
    if isinstance(v, dict):
        return {str(k): normalise(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normalise(x) for x in v]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return v


def short(v, n=100):
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= n else s[: n - 3] + "..."


def diff_value(field, path, bst, cas, out):
    """Append (group, detail) for each difference between bst and cas values."""
    if isinstance(bst, dict) and isinstance(cas, dict):
        for k in bst:
            if k not in cas:
                out.append(("%s: key %s only in bst" % (field, path + k), short(bst[k])))
        for k in cas:
            if k not in bst:
                out.append(("%s: key %s only in cas" % (field, path + k), short(cas[k])))
        for k in bst:
            if k in cas:
                diff_value(field, path + k + ".", bst[k], cas[k], out)
        if not out and list(bst) != list(cas):
            out.append(("(order only) %s: key order differs at %s" % (field, path or "top"), ""))
    elif field.endswith("deps") and isinstance(bst, list) and isinstance(cas, list):
        for x in bst:
            if x not in cas:
                out.append(("%s: dep only in bst" % field, x))
        for x in cas:
            if x not in bst:
                out.append(("%s: dep only in cas" % field, x))
        if not out and bst != cas:
            out.append(("%s: order differs" % field, "bst %s cas %s" % (short(bst), short(cas))))
    elif bst != cas:
        where = path.rstrip(".") or "value"
        if type(bst) is not type(cas):
            out.append(("%s: %s type %s in bst, %s in cas" % (field, where, type(bst).__name__, type(cas).__name__),
                        "bst %s cas %s" % (short(bst, 60), short(cas, 60))))
        elif field in ("state", "kind"):
            out.append(("%s: bst %r, cas %r" % (field, bst, cas), ""))
        else:
            out.append(("%s: %s differs" % (field, where), "bst %s cas %s" % (short(bst, 60), short(cas, 60))))


def raw_diff(field, bst, cas):
    """(group, detail) for two renderings of one field: the first line that differs."""
    if cas is None:
        return "raw:%s: missing from cas --format" % field, ""
    bl, cl = bst.split("\n"), cas.split("\n")
    what = "same lines, other order" if sorted(bl) == sorted(cl) else "text differs"
    i = next((i for i, (x, y) in enumerate(zip(bl, cl)) if x != y), min(len(bl), len(cl)))
    line = lambda ls: short(ls[i], 70) if i < len(ls) else "(end)"
    return "raw:%s: %s" % (field, what), "line %d: bst %s cas %s" % (i + 1, line(bl), line(cl))


def first_line(msg):
    """The headline of an error: cas's miette `× ...` with its `│` wrapped
    continuation lines joined, else the first non-blank line."""
    lines = [l for l in (msg or "").strip().splitlines() if l.strip()]
    for i, l in enumerate(lines):
        if l.lstrip().startswith("×"):
            text = l.lstrip()[1:].strip()
            for cont in lines[i + 1:]:
                if not cont.lstrip().startswith("│"):
                    break
                text += ("" if text.endswith("-") else " ") + cont.lstrip()[1:].strip()
            return text
    return lines[0] if lines else ""


def pattern(msg):
    """An error headline with its quoted names blanked, for grouping."""
    return re.sub(r"`[^`]*`|'[^']*'", "`…`", first_line(msg))


class Cas:
    def __init__(self, binary, store, bst_src):
        self.binary, self.store, self.bst_src = binary, store, bst_src
        helptext = run([binary, "show", "--help"], "/")[1]
        self.has_format = "--format" in helptext

    def cmd(self, options, extra, targets):
        c = [self.binary, "show", "--deps", "none", "--store", self.store]
        for k, v in options:
            c += ["-o", k, v]
        return c + extra + list(targets)

    def show(self, project, options, targets):
        """-> {target: (ok, fields|None, raw|None, message, notes)}

        All targets in one call when cas prints exactly one element per
        target, matched by name (cas may print them in another order than
        given); else (a target fails, or a link's element has another name)
        one call per target."""
        cwd = os.path.join(self.bst_src, project)
        rc, out, err = run(self.cmd(options, ["--json"], targets), cwd)
        elements = None
        if rc == 0:
            try:
                elements = json.loads(out)["elements"]
            except (ValueError, KeyError, TypeError) as e:
                err, rc = "unparsable cas --json output: %s" % e, "bad-json"
        matched = match(targets, elements or [], lambda el: el.get("name") if isinstance(el, dict) else None)
        if matched is None:
            if len(targets) > 1:  # go one by one
                res = {}
                for t in targets:
                    res.update(self.show(project, options, [t]))
                return res
            msg = (err or out).strip() or "exit %s" % rc
            if rc == 0:
                msg = "cas printed %d elements for 1 target" % len(elements)
            return {targets[0]: (False, None, None, msg, [])}
        raws = [None] * len(targets)
        if self.has_format:
            raws = self.show_format(cwd, options, targets)
        res = {}
        for t, el, raw in zip(targets, matched, raws):
            fields, notes = cas_fields(el)
            res[t] = (True, fields, raw, "", notes)
        return res

    def show_format(self, cwd, options, targets):
        frc, fout, _ = run(self.cmd(options, ["--format", FMT], targets), cwd)
        raws = match(targets, split_format(fout) if frc == 0 else [], lambda raw: raw.get("name"))
        if raws is None and len(targets) > 1:
            return [self.show_format(cwd, options, [t])[0] for t in targets]
        return raws or [None]


def match(targets, items, name_of):
    """items in the order of targets: by name, or (one target) the only item."""
    if len(items) != len(targets):
        return None
    if len(targets) == 1:
        return items
    by_name = {name_of(it): it for it in items}
    if all(t in by_name for t in targets):
        return [by_name[t] for t in targets]
    return None


def group_by(items, key):
    out = collections.defaultdict(list)
    for it in items:
        out[key(it)].append(it)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--oracle", default="/work/bst-oracle/oracle.jsonl")
    ap.add_argument("--bst-src", default="/work/bst-src")
    ap.add_argument("--cas", default="target/debug/cas")
    ap.add_argument("--store", default="/work/bst-tmp/cas-store")
    ap.add_argument("--only", help="only projects whose path contains this substring")
    ap.add_argument("--json", help="write every difference and rejection here")
    ap.add_argument("--groups", type=int, default=25, help="difference groups to print")
    a = ap.parse_args()

    if not os.access(a.cas, os.X_OK):
        sys.exit("no cas binary at %s (build it: cargo build)" % a.cas)
    cas = Cas(os.path.abspath(a.cas), a.store, a.bst_src)
    cases = collections.OrderedDict()  # (project, options) -> [records]
    for line in open(a.oracle):
        r = json.loads(line)
        if r.get("target") is None or (a.only and a.only not in r["project"]):
            continue
        cases.setdefault((r["project"], tuple(map(tuple, r["options"]))), []).append(r)

    agree = collections.Counter()
    total = collections.Counter()
    groups = collections.defaultdict(list)  # group -> [(project, options, target, detail)]
    bst_only, cas_only, both_reject, notes_seen = [], [], [], collections.Counter()
    full = []
    for n, ((project, options), recs) in enumerate(cases.items(), 1):
        print("[%d/%d] %s %s" % (n, len(cases), project, " ".join("-o %s %s" % o for o in options)),
              file=sys.stderr, flush=True)
        results = cas.show(project, options, [r["target"] for r in recs])
        for r in recs:
            t = r["target"]
            ok, fields, raw, msg, notes = results[t]
            for note in notes:
                notes_seen[note] += 1
            where = {"project": project, "options": [list(o) for o in options], "target": t}
            total["accepted"] += 1
            agree["accepted"] += ok == r["ok"]
            bst_err = r.get("error") or {}
            bst_msg = bst_err.get("message") or first_line(bst_err.get("stderr_tail"))
            if r["ok"] and not ok:
                cas_only.append(dict(where, cas_error=msg, kind=r["fields"].get("kind")))
            elif ok and not r["ok"]:
                bst_only.append(dict(where, bst_error=bst_msg, domain=bst_err.get("domain"),
                                     reason=bst_err.get("reason")))
            elif not ok and not r["ok"]:
                both_reject.append(dict(where, cas_error=msg, bst_error=bst_msg, domain=bst_err.get("domain"),
                                        reason=bst_err.get("reason")))
            if not (ok and r["ok"]):
                continue
            diffs = []
            for f in FIELDS:
                total[f] += 1
                if f not in fields:
                    d = [("%s: missing from cas --json" % f, "")]
                else:
                    d = []
                    diff_value(f, "", r["fields"].get(f), normalise(fields[f]), d)
                # JSON objects are unordered: key order alone is reported, not
                # counted (the raw:FIELD comparison catches it where it matters)
                agree[f] += all(g.startswith("(order only)") for g, _ in d)
                diffs += d
                if cas.has_format:
                    total["raw:" + f] += 1
                    braw, craw = r["raw"].get(f), (raw or {}).get(f)
                    if braw == craw:
                        agree["raw:" + f] += 1
                    else:
                        diffs.append(raw_diff(f, braw, craw))
            for g, detail in diffs:
                groups[g].append((project, options, t, detail))
            if diffs:
                full.append(dict(where, differences=[{"group": g, "detail": d} for g, d in diffs]))

    # ---- report ----
    print("\n== agreement (targets where both accepted, per field) ==")
    if not cas.has_format:
        print("(cas show has no --format: raw text comparison skipped)")
    for f in ["accepted"] + FIELDS + ["raw:" + f for f in FIELDS]:
        if total[f]:
            print("  %-18s %6d / %-6d %5.1f%%" % (f, agree[f], total[f], 100.0 * agree[f] / total[f]))
    for note, c in notes_seen.most_common():
        print("  note: %s (%d elements)" % (note, c))

    def listing(title, items, key):
        print("\n== %s: %d ==" % (title, len(items)))
        for it in items:
            print("  %s %s%s" % (it["project"], it["target"],
                                 "".join(" -o %s %s" % tuple(o) for o in it["options"])))
            print("      " + key(it))

    print("\n== both reject: %d (messages in --json) ==" % len(both_reject))
    for reason, c in collections.Counter("%s/%s" % (b["domain"], b["reason"]) for b in both_reject).most_common():
        print("  %5d  bst %s" % (c, reason))
    listing("bst rejects, cas accepts", bst_only,
            lambda it: "bst [%s/%s]: %s" % (it["domain"], it["reason"], first_line(it["bst_error"])))
    print("\n== bst accepts, cas rejects, by cas message: %d ==" % len(cas_only))
    for (pat, kind), hits in sorted(group_by(cas_only, lambda it: (pattern(it["cas_error"]), it["kind"])).items(),
                                    key=lambda kv: -len(kv[1])):
        print("  %5d  %s   (bst kind %s)" % (len(hits), pat[:150], kind))
        for it in hits[:3]:
            print("           %s %s" % (it["project"], it["target"]))

    print("\n== difference groups (%d), most common first ==" % len(groups))
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    for g, hits in ranked[: a.groups]:
        print("  %5d  %s" % (len(hits), g))
        for project, options, t, detail in hits[:3]:
            opt = "".join(" -o %s %s" % o for o in options)
            print("           %s %s%s%s" % (project, t, opt, "   " + detail if detail else ""))
    if len(ranked) > a.groups:
        print("  ... %d more groups (--groups N, or --json OUT)" % (len(ranked) - a.groups))

    listing("bst accepts, cas rejects (all)", cas_only,
            lambda it: "cas: %s   (bst kind %s)" % (first_line(it["cas_error"]), it["kind"]))

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"agreement": {k: [agree[k], total[k]] for k in total},
                       "bst_rejects_cas_accepts": bst_only, "bst_accepts_cas_rejects": cas_only,
                       "both_reject": both_reject,
                       "groups": {g: [{"project": p, "options": o, "target": t, "detail": d}
                                      for p, o, t, d in hits] for g, hits in ranked},
                       "elements": full}, f, indent=1)


if __name__ == "__main__":
    main()
