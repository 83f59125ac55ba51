#!/usr/bin/env python3
"""Record BuildStream 2.8.1's answers for the conformance projects here.

    python3 tests/bst-conformance/record.py [--venv DIR] [--only SUBSTR]

Every directory beside this script holding a `project.conf` is a project.
Its cases are every (option set, target): the targets and option sets come
from its `cases.yaml` when it has one:

    targets: [a.bst, junction.bst:b.bst]     # default: every .bst under element-path
    option-sets:                             # default: [[]] (no options)
    - []
    - [[name, value], [other, value]]        # given as `-o name value` in this order

For each case it runs, in a copy of the project in a temporary directory,

    bst --config USERCONF --directory COPY [-o NAME VALUE]... \
        show --deps none --format FMT TARGET

with FMT printing every field between delimiter lines (so each field's text
is recovered exactly), and writes `expected.json` beside this script: per case
either `fields` (field -> the exact text bst printed for it) or `error`
(BuildStream's error domain, reason and message, as BuildStream's own tests
see them: bst runs in-process under this script with BST_TEST_SUITE=1).

BuildStream is taken from `--venv DIR` (a venv with buildstream==2.8.1 and
buildstream-plugins installed); without it a venv is made (once) under
~/.cache/cas-bst-conformance/ with `python3 -m venv` and pip's default index.
bst runs pinned to one CPU, so `%{max-jobs}` is 1 in every recording (the
test runs cas pinned the same way). The user configuration and caches are
throwaway files in a temporary directory.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BST_VERSION = "2.8.1"
FIELDS = ["name", "kind", "state", "deps", "build-deps", "runtime-deps", "vars", "env", "public", "config"]
BEGIN, END = "@@BST-CONFORMANCE-ELEMENT@@", "@@BST-CONFORMANCE-END@@"
FMT = BEGIN + "\n" + "".join("@@F:%s@@\n%%{%s}\n" % (f, f) for f in FIELDS) + END
PROJECT_PLACEHOLDER = "<PROJECT>"


def wrap_bst(argv):
    """Run bst in this process; on failure write the BstError's domain/reason
    (recorded by BuildStream when BST_TEST_SUITE is set) to $CONF_ERR_FILE."""
    os.environ.setdefault("BST_TEST_SUITE", "1")
    from buildstream._frontend.cli import cli
    from buildstream._exceptions import get_last_exception

    code = 0
    try:
        cli.main(args=argv, prog_name="bst")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    if code != 0 and os.environ.get("CONF_ERR_FILE"):
        exc = get_last_exception()
        info = {}
        if exc is not None:
            name = lambda v: None if v is None else str(getattr(v, "name", v))
            info = {"type": type(exc).__name__, "domain": name(exc.domain),
                    "reason": name(exc.reason), "message": str(exc)}
        with open(os.environ["CONF_ERR_FILE"], "w") as f:
            json.dump(info, f)
    sys.exit(code)


def ensure_venv(venv):
    if venv is None:
        venv = os.path.join(os.path.expanduser("~"), ".cache", "cas-bst-conformance", "venv-" + BST_VERSION)
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print("creating %s" % venv, file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([py, "-m", "pip", "install", "buildstream==" + BST_VERSION, "buildstream-plugins"])
    return os.path.abspath(venv), py


def projects(only):
    for d in sorted(os.listdir(HERE)):
        if os.path.isfile(os.path.join(HERE, d, "project.conf")) and (not only or only in d):
            yield d


def cases_of(project, yaml):
    path = os.path.join(HERE, project, "cases.yaml")
    spec = {}
    if os.path.exists(path):
        with open(path) as f:
            spec = yaml.load(f) or {}
    targets = spec.get("targets")
    if targets is None:
        with open(os.path.join(HERE, project, "project.conf")) as f:
            conf = yaml.load(f) or {}
        base = os.path.join(HERE, project, str(conf.get("element-path", ".")))
        targets = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.endswith(".bst"):
                    targets.append(os.path.relpath(os.path.join(dirpath, fn), base))
    option_sets = spec.get("option-sets") or [[]]
    for opts in option_sets:
        for t in targets:
            yield [[str(k), str(v)] for k, v in opts], str(t)


def split_fields(out):
    """The one element of bst's formatted output -> {field: text}, or None."""
    chunks = out.split(BEGIN + "\n")
    if len(chunks) != 2 or ("\n" + END + "\n") not in chunks[1]:
        return None
    body = chunks[1].split("\n" + END + "\n")[0]
    fields = {}
    for i, f in enumerate(FIELDS):
        head = "@@F:%s@@\n" % f
        if not body.startswith(head):
            return None
        body = body[len(head):]
        if i + 1 < len(FIELDS):
            nxt = "\n@@F:%s@@\n" % FIELDS[i + 1]
            if nxt not in body:
                return None
            fields[f], body = body.split(nxt, 1)
            body = "@@F:%s@@\n" % FIELDS[i + 1] + body
        else:
            fields[f] = body
    return fields


def main():
    ap = argparse.ArgumentParser(description="Record bst %s's answers for tests/bst-conformance" % BST_VERSION)
    ap.add_argument("--venv", help="a venv with buildstream==%s and buildstream-plugins" % BST_VERSION)
    ap.add_argument("--only", help="only projects whose directory name contains this (updates expected.json in place)")
    ap.add_argument("--out", default=os.path.join(HERE, "expected.json"))
    a = ap.parse_args()

    venv, py = ensure_venv(a.venv)
    if os.path.realpath(sys.prefix) != os.path.realpath(venv):
        # Re-run under the venv's python: it has ruamel.yaml (BuildStream's
        # YAML library) to read cases.yaml, and runs bst in-process.
        os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:] + (["--venv", venv] if not a.venv else []))

    from ruamel.yaml import YAML
    import buildstream

    version = buildstream.__version__
    if version != BST_VERSION:
        sys.exit("the venv has buildstream %s, not %s" % (version, BST_VERSION))
    yaml = YAML(typ="safe", pure=True)

    # One CPU: BuildStream's default max-jobs is the number of usable CPUs.
    first_cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {first_cpu})

    old = {}
    if a.only and os.path.exists(a.out):
        with open(a.out) as f:
            old = json.load(f)
    cases = [c for c in old.get("cases", []) if a.only and a.only not in c["project"]]

    tmp = tempfile.mkdtemp(prefix="bst-conformance-")
    try:
        conf = os.path.join(tmp, "user.conf")
        with open(conf, "w") as f:
            f.write("cachedir: %s/cache\nlogdir: %s/logs\nsourcedir: %s/sources\n" % (tmp, tmp, tmp))
        for project in projects(a.only):
            copy = os.path.join(tmp, "p", project)
            shutil.copytree(os.path.join(HERE, project), copy)
            for options, target in cases_of(project, yaml):
                cmd = [py, os.path.abspath(__file__), "--bst-wrap", "--config", conf, "--directory", copy,
                       "--no-colors"]
                for k, v in options:
                    cmd += ["-o", k, v]
                cmd += ["show", "--deps", "none", "--format", FMT, target]
                errfile = os.path.join(tmp, "err.json")
                if os.path.exists(errfile):
                    os.remove(errfile)
                env = dict(os.environ, CONF_ERR_FILE=errfile)
                p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
                case = {"project": project, "options": options, "target": target}
                if p.returncode == 0:
                    fields = split_fields(p.stdout)
                    if fields is None:
                        sys.exit("cannot split bst's output for %s %s:\n%s" % (project, target, p.stdout))
                    case.update(ok=True, fields=fields)
                else:
                    err = {}
                    if os.path.exists(errfile):
                        with open(errfile) as f:
                            err = json.load(f)
                    msg = err.get("message") or p.stderr.strip().splitlines()[-1:] or [""]
                    msg = msg if isinstance(msg, str) else msg[0]
                    case.update(ok=False, exit_code=p.returncode, error={
                        "domain": err.get("domain"), "reason": err.get("reason"),
                        "message": msg.replace(copy, PROJECT_PLACEHOLDER)})
                print("%-28s %-40s %s" % (project, target, "ok" if case["ok"] else
                                           "%s %s" % (case["error"]["domain"], case["error"]["reason"])),
                      " ".join("-o %s %s" % tuple(o) for o in options), file=sys.stderr, flush=True)
                cases.append(case)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cases.sort(key=lambda c: c["project"])  # stable: keeps each project's case order
    doc = {"bst_version": version, "max_jobs": "1", "format": FMT, "fields": FIELDS, "cases": cases}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("%d cases -> %s" % (len(cases), a.out), file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bst-wrap":
        wrap_bst(sys.argv[2:])
    else:
        main()
