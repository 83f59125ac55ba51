//! BuildStream conformance: `cas show --deps none --format` against the
//! answers BuildStream 2.8.1 itself gave for the small projects of
//! `tests/bst-conformance/` (recorded by `tests/bst-conformance/record.py`
//! into `expected.json`; this test needs no BuildStream).
//!
//! For every recorded (project, options, target): when bst accepted the
//! target, cas must print every field (`%{name}` … `%{config}`) byte for
//! byte as bst did; when bst rejected it, cas must exit 2 (a load error)
//! and its message must name the same problem (BuildStream's error reason
//! mapped to words cas says, [`REASON_WORDS`]).
//!
//! Every difference is collected and the test fails once, listing them all.
//! Differences not fixed yet are listed in [`KNOWN_DIFFERENCES`]; for those
//! the test asserts that the difference still exists, so that fixing one
//! fails the test until its entry is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::ctx::{Ctx, Run};

/// Differences not fixed yet: (project, options as `name=value,…` or "",
/// target, fields, why). `fields` lists, space-separated, exactly the fields
/// that differ in that case: `%{field}` names, or `exit` (one side accepts
/// what the other rejects, or cas exits with another code than 2), or
/// `message` (cas rejects, but its message does not name bst's reason).
const KNOWN_DIFFERENCES: &[(&str, &str, &str, &str, &str)] = &[
    // none: every recorded case agrees with BuildStream 2.8.1
];

/// BuildStream's error reason → words (any one; compared lowercase) that
/// cas's message must contain when it rejects the same target. Not listed:
/// INVALID_DATA, BuildStream's catch-all (a wrong type, an unknown key, a
/// bad option value...), checked by the exit code alone.
const REASON_WORDS: &[(&str, &[&str])] = &[
    ("CIRCULAR_DEPENDENCY", &["dependency cycle", "circular"]),
    (
        "CIRCULAR_REFERENCE_VARIABLE",
        &["variable cycle", "circular"],
    ),
    ("UNRESOLVED_VARIABLE", &["undefined variable"]),
    (
        "MISSING_FILE",
        &["not found", "no element", "does not exist", "no such"],
    ),
    ("BAD_ELEMENT_SUFFIX", &[".bst"]),
    ("EXPRESSION_FAILED", &["condition", "expression"]),
    (
        "INVALID_YAML",
        &["yaml", "duplicate key", "expected a mapping"],
    ),
    ("UNSUPPORTED_PROJECT", &["needs buildstream", "version"]),
    ("USER_ASSERTION", &["assert"]),
    (
        "ILLEGAL_COMPOSITE",
        &["compos", "found a mapping", "conditionally"],
    ),
    (
        "TRAILING_LIST_DIRECTIVE",
        &["list directive", "no list", "nothing to"],
    ),
    ("INVALID_SYMBOL_NAME", &["name"]),
    ("LINK_FORBIDDEN_DEPENDENCIES", &["link"]),
    ("plugin-not-found", &["unknown kind"]),
    ("duplicate-plugin", &["more than one"]),
    ("stack-requires-build-and-run", &["stack"]),
    ("element-forbidden-sources", &["source"]),
    ("invalid-element-names", &[".bst"]),
];

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bst-conformance")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// The first CPU this process may run on: cas runs pinned to it, as bst
/// was when recording, so that `%{max-jobs}` is 1 on both sides.
fn first_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call only writes it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let r = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw mut set);
        assert_eq!(r, 0, "sched_getaffinity");
        (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .expect("some CPU is allowed")
    }
}

/// `cas ARGS` in `ctx`, pinned to one CPU.
fn cas_pinned(ctx: &Ctx, args: &[String], cpu: usize) -> Run {
    let (mut cmd, shown) = ctx.command(args);
    // SAFETY: the closure only builds a set on the stack and makes one
    // system call, both async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set)
                != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Run::from_output(shown, cmd.output().expect("run cas"))
}

/// `--format` output with the recording's delimiters → field → text, for
/// exactly one element.
fn split_fields(
    out: &str,
    begin: &str,
    end: &str,
    fields: &[String],
) -> Option<BTreeMap<String, String>> {
    let chunks: Vec<&str> = out.split(&format!("{begin}\n")).collect();
    if chunks.len() != 2 {
        return None;
    }
    let mut body = chunks[1].split(&format!("\n{end}\n")).next()?;
    if !chunks[1].contains(&format!("\n{end}\n")) {
        return None;
    }
    let mut map = BTreeMap::new();
    for (i, f) in fields.iter().enumerate() {
        body = body.strip_prefix(&format!("@@F:{f}@@\n"))?;
        if let Some(next) = fields.get(i + 1) {
            let sep = format!("\n@@F:{next}@@\n");
            let at = body.find(&sep)?;
            map.insert(f.clone(), body[..at].to_string());
            body = &body[at + 1..];
        } else {
            map.insert(f.clone(), body.to_string());
        }
    }
    Some(map)
}

/// "line N: bst «…» cas «…»" for the first line where two texts differ.
fn first_difference(bst: &str, cas: &str) -> String {
    let (b, c): (Vec<&str>, Vec<&str>) = (bst.split('\n').collect(), cas.split('\n').collect());
    let i = (0..b.len().max(c.len()))
        .find(|&i| b.get(i) != c.get(i))
        .unwrap_or(0);
    let show = |l: Option<&&str>| l.map_or("(end)".to_string(), |l| format!("{l:?}"));
    format!(
        "line {}: bst {} | cas {}",
        i + 1,
        show(b.get(i)),
        show(c.get(i))
    )
}

/// The headline of cas's error output: its `× …` line with the `│ …` lines
/// that continue it (miette wraps long messages), else its first non-blank
/// line. Only the headline is searched for [`REASON_WORDS`]: the rest shows
/// file names and source lines, which would match anything.
fn headline(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(start) = lines.iter().position(|l| l.starts_with('×')) else {
        return lines.first().copied().unwrap_or("").to_string();
    };
    let mut text = lines[start].trim_start_matches('×').trim().to_string();
    for l in &lines[start + 1..] {
        let Some(cont) = l.strip_prefix('│') else {
            break;
        };
        text.push(' ');
        text.push_str(cont.trim());
    }
    text
}

type Key = (String, String, String, String);
type Case = (String, String, String);

#[test]
fn cas_shows_what_buildstream_2_8_1_shows() {
    let dir = conformance_dir();
    let text = std::fs::read_to_string(dir.join("expected.json"))
        .expect("tests/bst-conformance/expected.json (record.py writes it)");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("expected.json is JSON");
    assert_eq!(doc["bst_version"], "2.8.1");
    assert_eq!(doc["max_jobs"], "1", "recorded with bst pinned to one CPU");
    let format = doc["format"].as_str().unwrap().to_string();
    let fields: Vec<String> = doc["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let begin = format.lines().next().unwrap().to_string();
    let end = format.lines().last().unwrap().to_string();
    let cases = doc["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 100,
        "expected.json holds {} cases",
        cases.len()
    );
    let cpu = first_cpu();
    let reason_words: BTreeMap<&str, &[&str]> = REASON_WORDS.iter().copied().collect();

    let mut found: BTreeMap<Key, String> = BTreeMap::new();
    let mut ctxs: BTreeMap<String, Ctx> = BTreeMap::new();
    let (mut accepted, mut rejected) = (0, 0);
    for case in cases {
        let project = case["project"].as_str().unwrap().to_string();
        let target = case["target"].as_str().unwrap().to_string();
        let options: Vec<(String, String)> = case["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o[0].as_str().unwrap().to_string(),
                    o[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let opts_text = options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        // One copy of each project (cas only reads it).
        let ctx = ctxs.entry(project.clone()).or_insert_with(|| {
            let ctx = Ctx::new();
            copy_tree(&dir.join(&project), &ctx.project());
            ctx
        });
        let mut args: Vec<String> = ["show", "--deps", "none", "--format", &format]
            .iter()
            .map(ToString::to_string)
            .collect();
        for (k, v) in &options {
            args.extend(["-o".to_string(), k.clone(), v.clone()]);
        }
        args.push(target.clone());
        let run = cas_pinned(ctx, &args, cpu);
        let mut diff = |field: &str, detail: String| {
            found.insert(
                (
                    project.clone(),
                    opts_text.clone(),
                    target.clone(),
                    field.to_string(),
                ),
                detail,
            );
        };
        if run.stderr.contains("panicked at") {
            diff("exit", format!("cas panicked: {}", headline(&run.stderr)));
            continue;
        }
        if case["ok"].as_bool().unwrap() {
            accepted += 1;
            if run.code != 0 {
                diff(
                    "exit",
                    format!(
                        "bst accepts; cas exits {}: {}",
                        run.code,
                        headline(&run.stderr)
                    ),
                );
                continue;
            }
            let Some(got) = split_fields(&run.stdout, &begin, &end, &fields) else {
                diff(
                    "exit",
                    format!("cas output is not one formatted element:\n{}", run.stdout),
                );
                continue;
            };
            for f in &fields {
                let want = case["fields"][f].as_str().unwrap();
                if got[f] != want {
                    diff(f, first_difference(want, &got[f]));
                }
            }
        } else {
            rejected += 1;
            let err = &case["error"];
            let reason = err["reason"].as_str().unwrap_or("?");
            let bst_says = format!(
                "{}/{}: {}",
                err["domain"].as_str().unwrap_or("?"),
                reason,
                err["message"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            );
            if run.code != 2 {
                diff(
                    "exit",
                    format!(
                        "bst rejects ({bst_says}); cas exits {} {}",
                        run.code,
                        headline(&run.stderr)
                    ),
                );
                continue;
            }
            if let Some(words) = reason_words.get(reason) {
                let msg = headline(&run.stderr).to_lowercase();
                if !words.iter().any(|w| msg.contains(w)) {
                    diff(
                        "message",
                        format!(
                            "bst: {bst_says}; cas says none of {words:?}: {}",
                            headline(&run.stderr)
                        ),
                    );
                }
            }
        }
    }

    // Per case: the fields that differ, against the fields known to differ.
    let mut by_case: BTreeMap<Case, BTreeMap<String, String>> = BTreeMap::new();
    for ((p, o, t, f), detail) in &found {
        by_case
            .entry((p.clone(), o.clone(), t.clone()))
            .or_default()
            .insert(f.clone(), detail.clone());
    }
    let mut known: BTreeMap<Case, (BTreeSet<String>, &str)> = BTreeMap::new();
    for &(p, o, t, fs, why) in KNOWN_DIFFERENCES {
        let prev = known.insert(
            (p.into(), o.into(), t.into()),
            (fs.split_whitespace().map(String::from).collect(), why),
        );
        assert!(
            prev.is_none(),
            "KNOWN_DIFFERENCES lists {p} [{o}] {t} twice"
        );
    }
    let no_diff = BTreeMap::new();
    let mut problems = Vec::new();
    let cases_seen: BTreeSet<&Case> = by_case.keys().chain(known.keys()).collect();
    for case in cases_seen {
        let diffs = by_case.get(case).unwrap_or(&no_diff);
        let (expected, why) = known
            .get(case)
            .map_or((BTreeSet::new(), ""), |(fs, why)| (fs.clone(), *why));
        for (f, detail) in diffs {
            if !expected.contains(f) {
                problems.push(format!(
                    "DIFFERS  {} [{}] {} {f}: {detail}",
                    case.0, case.1, case.2
                ));
            }
        }
        for f in &expected {
            if !diffs.contains_key(f) {
                problems.push(format!(
                    "FIXED    {} [{}] {} {f} (known: {why}): now agrees with bst; update KNOWN_DIFFERENCES",
                    case.0, case.1, case.2
                ));
            }
        }
    }
    eprintln!(
        "bst conformance: {} cases ({accepted} accepted, {rejected} rejected by bst), {} differences, {} known",
        cases.len(),
        found.len(),
        KNOWN_DIFFERENCES.len()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s) against BuildStream 2.8.1's recorded answers:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
