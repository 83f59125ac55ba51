//! Results and their markdown rendering.

use crate::util::{stats, Machine, Stats};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    Ms,
    KiB,
    Count,
}

/// One measured quantity.
#[derive(Clone, Debug)]
pub struct Row {
    pub label: String,
    pub samples: Vec<f64>,
    pub unit: Unit,
    /// Index of the row in the same case this one is compared with.
    pub baseline: Option<usize>,
    pub note: String,
}

impl Row {
    pub fn stats(&self) -> Option<Stats> {
        stats(&self.samples)
    }
}

/// A goal and whether it was met.
#[derive(Clone, Debug)]
pub struct Goal {
    pub text: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub id: String,
    pub title: String,
    pub what: String,
    pub rows: Vec<Row>,
    pub goals: Vec<Goal>,
    pub commands: Vec<String>,
    pub notes: Vec<String>,
}

impl Case {
    pub fn new(id: &str, title: &str, what: &str) -> Case {
        Case {
            id: id.into(),
            title: title.into(),
            what: what.into(),
            rows: vec![],
            goals: vec![],
            commands: vec![],
            notes: vec![],
        }
    }

    pub fn row(
        &mut self,
        label: impl Into<String>,
        samples: Vec<f64>,
        unit: Unit,
        baseline: Option<usize>,
    ) -> usize {
        self.rows.push(Row {
            label: label.into(),
            samples,
            unit,
            baseline,
            note: String::new(),
        });
        self.rows.len() - 1
    }

    pub fn note_row(&mut self, i: usize, note: impl Into<String>) {
        self.rows[i].note = note.into();
    }

    pub fn median(&self, i: usize) -> f64 {
        self.rows[i].stats().map_or(f64::NAN, |s| s.median)
    }

    pub fn goal(&mut self, text: impl Into<String>, measured: impl Into<String>, met: bool) {
        self.goals.push(Goal {
            text: text.into(),
            measured: measured.into(),
            met,
        });
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub mode: String,
    pub command: String,
    pub date: String,
    pub revision: String,
    pub machine: Machine,
    pub cas: String,
    pub duration_s: f64,
    pub cases: Vec<Case>,
    pub pending: Vec<(String, String)>,
    pub shared_note: bool,
    /// Hand-written analysis appended verbatim (bench/NOTES.md).
    pub notes: Option<String>,
}

fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms => {
            if v >= 10_000.0 {
                format!("{:.2} s", v / 1000.0)
            } else if v >= 100.0 {
                format!("{v:.0} ms")
            } else if v >= 10.0 {
                format!("{v:.1} ms")
            } else {
                format!("{v:.2} ms")
            }
        }
        Unit::KiB => format!("{:.1} MiB", v / 1024.0),
        Unit::Count => format!("{v:.0}"),
    }
}

pub fn fmt_ms(v: f64) -> String {
    fmt_value(v, Unit::Ms)
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|")
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        m.push_str("# Benchmarks\n\n");
        m.push_str(&format!(
            "Regenerate with:\n\n```sh\n{}\n```\n\n\
             (`--quick` for fewer repetitions; `--smoke` is what the test suite runs.) \
             This file: mode **{}**, taken {} at revision `{}`, {:.0} s in all, with `{}`.\n\n",
            self.command, self.mode, self.date, self.revision, self.duration_s, self.cas
        ));
        m.push_str(
            "What the cases need (Debian 12, as root): `apt-get install bubblewrap rsync b3sum \
             busybox-static` for cas's own cases and baselines; `bst` installs BuildStream 2.8.1 \
             from PyPI into a venv of its work directory (or set `CAS_BENCH_BST` to a `bst`); \
             `peers` needs `apt-get install nix-bin bazel-bootstrap` (Nix 2.8 and Bazel 4.2.3; \
             neither downloads anything when it runs). A case whose tool is missing measures \
             nothing and says so in the summary. To show that nothing is fetched, run the built \
             binaries in a network namespace with loopback only: `cargo build --release -p cas \
             -p cas-bench && unshare -n sh -c 'ip link set lo up && target/release/cas-bench \
             --cas target/release/cas --out FILE'` (with `CAS_BENCH_BST` set: PyPI is out of \
             reach there).\n\n",
        );
        m.push_str(
            "Every case runs a warm-up, then several repetitions; the tables give the median \
             and the range (min–max). Each baseline is measured in the same run, interleaved with \
             cas, so the ratios hold on a noisy machine even when absolute figures move. \
             cas is driven as a black box: the release binary, a fresh process per measurement.\n\n",
        );
        let md = &self.machine;
        m.push_str("## Machine\n\n| | |\n| --- | --- |\n");
        m.push_str(&format!("| CPU | {} |\n", esc(&md.cpu)));
        m.push_str(&format!("| cores (nproc) | {} |\n", md.nproc));
        m.push_str(&format!("| memory | {} |\n", md.memory));
        m.push_str(&format!(
            "| OS, kernel | {} , Linux {} |\n",
            esc(&md.os),
            md.kernel
        ));
        m.push_str(&format!(
            "| filesystem (work dir, store) | {} |\n",
            esc(&md.filesystem)
        ));
        m.push_str(&format!(
            "| load average before / after | {} / {} |\n",
            md.load_before, md.load_after
        ));
        for (t, v) in &md.tools {
            m.push_str(&format!("| {t} | {} |\n", esc(v)));
        }
        if self.shared_note {
            m.push_str(
                "\n**Shared machine.** These figures were taken while other engineers were compiling \
                 and testing on the same 2 cores (see the load average): absolute times are noisy, \
                 and the same-run ratios are the figures to read.\n",
            );
        }
        m.push_str("\n## Summary\n\n| case | goal | measured | |\n| --- | --- | --- | --- |\n");
        for c in &self.cases {
            for g in &c.goals {
                m.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    c.id,
                    esc(&g.text),
                    esc(&g.measured),
                    if g.met { "met" } else { "**missed**" }
                ));
            }
        }
        // A case that could not run says so here: a skip is never a pass.
        for c in self.cases.iter().filter(|c| c.goals.is_empty()) {
            let why = c.notes.first().map_or("no goal measured", String::as_str);
            m.push_str(&format!("| {} | — | {} | — |\n", c.id, esc(why)));
        }
        for (id, why) in &self.pending {
            m.push_str(&format!("| {id} | — | pending: {} | — |\n", esc(why)));
        }
        for c in &self.cases {
            m.push_str(&format!("\n## {}: {}\n\n{}\n\n", c.id, c.title, c.what));
            m.push_str("| # | measurement | median | min – max | runs | vs baseline | note |\n");
            m.push_str("| ---: | --- | ---: | ---: | ---: | --- | --- |\n");
            for (k, r) in c.rows.iter().enumerate() {
                let (med, range, n) = match r.stats() {
                    Some(s) => (
                        fmt_value(s.median, r.unit),
                        format!(
                            "{} – {}",
                            fmt_value(s.min, r.unit),
                            fmt_value(s.max, r.unit)
                        ),
                        s.n.to_string(),
                    ),
                    None => ("n/a".into(), "n/a".into(), "0".into()),
                };
                let ratio = match r.baseline {
                    Some(b) => {
                        let base = c.median(b);
                        let me = r.stats().map_or(f64::NAN, |s| s.median);
                        format!("{:.2}× #{}", me / base, b + 1)
                    }
                    None => String::new(),
                };
                m.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    k + 1,
                    esc(&r.label),
                    med,
                    range,
                    n,
                    ratio,
                    esc(&r.note)
                ));
            }
            if !c.goals.is_empty() {
                m.push_str("\n| goal | measured | |\n| --- | --- | --- |\n");
                for g in &c.goals {
                    m.push_str(&format!(
                        "| {} | {} | {} |\n",
                        esc(&g.text),
                        esc(&g.measured),
                        if g.met { "met" } else { "**missed**" }
                    ));
                }
            }
            for n in &c.notes {
                m.push_str(&format!("\n{n}\n"));
            }
            if !c.commands.is_empty() {
                m.push_str("\nExact commands (`$W` is the case's work directory, `$CAS` the cas binary):\n\n```sh\n");
                for cmd in &c.commands {
                    m.push_str(cmd);
                    m.push('\n');
                }
                m.push_str("```\n");
            }
        }
        if let Some(notes) = &self.notes {
            m.push('\n');
            m.push_str(notes.trim_end());
            m.push('\n');
        }
        if !self.pending.is_empty() {
            m.push_str("\n## Pending cases\n\n");
            for (id, why) in &self.pending {
                m.push_str(&format!("- **{id}**: {why}\n"));
            }
        }
        m
    }
}
