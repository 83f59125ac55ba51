#!/usr/bin/env python3
"""Where a cold cas step's wall time goes, from `strace -f -ttt -T -o TRACE
cas -j 1 build ...` (bench/step-profile.sh runs it). Prints Markdown.

Each sandboxed step is found by its driver (`/bin/sh -c ... cas-step`); its
process chain, from the cas thread's clone of the first process to the wait
that reaps it, is split at the exec of bwrap (with CAS_SANDBOX=bwrap), the
exec of the driver and the driver's exit (cas's own sandbox: the cloned
process is the driver). What cas's own threads do outside those chains is grouped by
system call (views, build directories, SQLite, fsync, other file calls), and
the rest of the builder thread's time is user space (keys, hashing,
scheduling, serialisation).
Usage: step-profile.py TRACE
"""
import re
import sys
from collections import defaultdict

LINE = re.compile(r"^(\d+)\s+(\d+\.\d+) (.*)$")
CALL = re.compile(r"^(\w+)\((.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
RET = re.compile(r".*\)\s+= (-?\d+|\?|0x[0-9a-f]+)[^<]*(?:<(\d+\.\d+)>)?$")

calls = []  # (pid, start, dur, name, text, ret)
pending = {}
exits = {}
for raw in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = LINE.match(raw.rstrip("\n"))
    if not m:
        continue
    pid, ts, rest = int(m.group(1)), float(m.group(2)), m.group(3)
    if rest.startswith("+++ exited") or rest.startswith("+++ killed"):
        exits[pid] = ts
        continue
    if rest.startswith("---"):
        continue
    r = RESUMED.match(rest)
    if r:
        name = r.group(1)
        start, text = pending.pop(pid, (ts, ""))
        text += r.group(2)
        rm = RET.match(")" + r.group(2) if r.group(2).startswith(" =") else r.group(2))
        dur = float(rm.group(2)) if rm and rm.group(2) else ts - start
        ret = rm.group(1) if rm else "?"
        calls.append((pid, start, max(dur, ts - start), name, text, ret))
        continue
    c = CALL.match(rest)
    if not c:
        continue
    name = c.group(1)
    if rest.endswith("<unfinished ...>"):
        pending[pid] = (ts, rest)
        continue
    rm = RET.match(rest)
    dur = float(rm.group(2)) if rm and rm.group(2) else 0.0
    ret = rm.group(1) if rm else "?"
    calls.append((pid, ts, dur, name, rest, ret))

calls.sort(key=lambda c: c[1])
root = calls[0][0]
tgid = {root: root}
parent = {}
clone_at = {}
execs = {}
seen = {c[0] for c in calls}
# Inside bwrap's PID namespace, clone returns the namespace's pid, not the
# one strace names the child by: such a child is the first unknown pid to
# appear after the clone.
unresolved = []
for pid, start, dur, name, text, ret in calls:
    if pid not in tgid:
        if unresolved:
            at, who, thread = unresolved.pop(0)
            if thread:
                tgid[pid] = tgid[who]
            else:
                tgid[pid] = pid
                parent[pid] = tgid[who]
                clone_at[pid] = (at, who)
        else:
            tgid[pid] = pid
    if name in ("clone", "clone3", "fork", "vfork") and ret not in ("?",) and not ret.startswith("0x") and int(ret) > 0:
        child = int(ret)
        if child not in seen or child in tgid:
            unresolved.append((start, pid, "CLONE_THREAD" in text))
            continue
        if "CLONE_THREAD" in text:
            tgid[child] = tgid[pid]
        else:
            tgid[child] = child
            parent[child] = tgid[pid]
            clone_at[child] = (start, pid)
    elif name == "execve" and ret == "0":
        execs.setdefault(tgid[pid], []).append((start, text))

cas = tgid[root]


def chain(p):
    out = [p]
    while p in parent:
        p = parent[p]
        out.append(p)
    return out


# reaped: pid -> end of the wait4 that returned it
reaped = {}
for pid, start, dur, name, text, ret in calls:
    if name in ("wait4", "waitid") and ret not in ("?", "-1") and not ret.startswith("0x") and int(ret) > 0:
        reaped.setdefault(int(ret), start + dur)

drivers = [p for p, ex in execs.items() if any("cas-step" in t for _, t in ex)]
steps = []
for d in drivers:
    ch = chain(d)
    if cas not in ch:
        continue
    helper = ch[ch.index(cas) - 1]
    a, builder = clone_at[helper]
    bw = [p for p in ch[: ch.index(cas)] if any("/bwrap" in t.split(",")[0] for _, t in execs.get(p, []))]
    b = min(execs[p][0][0] for p in bw) if bw else a
    c = execs[d][0][0]
    dend = exits.get(d, c)
    e = reaped.get(helper, dend)
    steps.append((a, b, c, dend, e, builder, helper))
steps.sort()
if not steps:
    sys.exit("no sandboxed step found in the trace")
S = len(steps)
builders = {s[5] for s in steps}
windows = [(s[0], s[4]) for s in steps]
step_helpers = {s[6] for s in steps}


def inside(t):
    return any(a <= t < e for a, e in windows)


first = steps[0][0]
end = exits.get(root, calls[-1][1])
total = end - first

# other child process trees of cas (probes): clone -> reap
other_children = 0.0
for child, (start, who) in clone_at.items():
    if parent.get(child) == cas and child not in step_helpers and start >= first:
        other_children += reaped.get(child, exits.get(child, start)) - start


def group(name, text):
    if name in ("fsync", "fdatasync", "syncfs"):
        return "fsync, fdatasync, syncfs"
    if "view-" in text or "/views/" in text:
        return "view materialisation (mkdir, symlink, link, utimensat under the store's views)"
    if "/builds/" in text or name in ("unlinkat", "rmdir", "unlink"):
        return "build directory and temporaries (create, remove: unlinkat)"
    if name in ("pread64", "pwrite64", "fcntl", "flock") or ".db" in text or "-wal" in text:
        return "SQLite (pread, pwrite, locks)"
    if name in ("clone", "clone3", "wait4", "waitid", "execve", "pipe2", "kill"):
        return "processes outside the step chains (probes)"
    if name in ("futex", "poll", "ppoll", "epoll_wait", "sched_yield", "nanosleep", "clock_nanosleep"):
        return "waiting for another thread"
    return "other file system calls (open, read, write, rename, stat, readdir: ingest, logs)"


busy = defaultdict(float)
count = defaultdict(int)
other_threads = defaultdict(float)
for pid, start, dur, name, text, ret in calls:
    if tgid.get(pid) != cas or start < first or inside(start):
        continue
    if pid in builders:
        if name in ("wait4", "waitid"):
            continue  # a probe's lifetime: counted in its own row
        busy[group(name, text)] += dur
        count[group(name, text)] += 1
    else:
        other_threads[group(name, text)] += dur

sandboxed = sum(s[4] - s[0] for s in steps)
outside = total - sandboxed - other_children
builder_sys = sum(busy.values())
per = lambda x: x * 1000 / S  # noqa: E731

print(f"| per sandboxed step ({S} steps, `-j 1`, under strace) | ms | share | calls |")
print("| --- | ---: | ---: | ---: |")
rows = [
    ("**whole build, first step's sandbox to exit, / steps**", total),
    ("sandbox chain: with bwrap (CAS_SANDBOX=bwrap), cas's helper until bwrap's exec (fork, user + mount namespace, overlay mount)", sum(s[1] - s[0] for s in steps)),
    ("sandbox chain: the sandbox's setup until the driver's exec (cas's own: one clone into the namespaces, binds, pivot_root; bwrap: its own setup)", sum(s[2] - s[1] for s in steps)),
    ("sandbox chain: the commands (driver `sh` and one `sh -e -c` per command)", sum(s[3] - s[2] for s in steps)),
    ("sandbox chain: teardown until cas reaps the helper", sum(s[4] - s[3] for s in steps)),
    ("probes run once per fresh store (bwrap, overlay)", other_children),
]
for k, v in sorted(busy.items(), key=lambda kv: -kv[1]):
    rows.append((f"cas builder thread, outside the chain: {k}", v, count[k]))
rows.append(("cas builder thread, outside the chain: user space (keys, hashing, scheduling, the rest)", outside - builder_sys))
for label, v, *n in rows:
    calls_col = f"{n[0] / S:.0f}" if n else ""
    print(f"| {label} | {per(v):.2f} | {v * 100 / total:.0f} % | {calls_col} |")
print()
print(
    "Other cas threads outside the chains (off the step's path: the recorder commits results "
    "with one syncfs and one transaction per batch): "
    + "; ".join(f"{k} {per(v):.2f} ms" for k, v in sorted(other_threads.items(), key=lambda kv: -kv[1]))
    + "."
)
procs = sum(1 for p in tgid if tgid[p] == p and p != cas and cas in chain(p))
mounts = sum(1 for c in calls if c[3] in ("mount", "pivot_root", "umount2") and c[1] >= first)
print()
print(f"Processes per step: {procs / S:.1f} (every process cas started, probes included); "
      f"mount, umount2 and pivot_root calls per step: {mounts / S:.1f}.")
