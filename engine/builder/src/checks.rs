//! Checks of built outputs, after the steps of a run: the libraries check
//! (crate `cas-linkcheck`). Its verdict depends on the element's output and
//! on the outputs of its runtime closure, some of which (`runtime-depends`)
//! are not staged and so not in its key: the verdict is therefore recorded
//! as a note of the element's result with what it was computed *against*,
//! and computed again when that changes (spec/store.md, notes).

use std::collections::{HashMap, HashSet};

use cas_format::{Element, ElementId, Loaded, Severity};
use cas_linkcheck::{Found, Indexes, Inputs, Labelled, Verdict};
use cas_store::{ActionKey, Store, TreeDigest};

use crate::error::Result;

/// The note a verdict is recorded under.
pub const LIBRARIES_NOTE: &str = "libraries";

/// Whether an element's output goes through the libraries check: the
/// behaviours that make new files from what they stage.
pub fn libraries_checked(el: &Element) -> bool {
    crate::kinds::of(el).caps().makes_binaries
}

/// Whether an element has a libraries verdict: checked, and not turned off.
pub fn has_verdict(el: &Element) -> bool {
    libraries_checked(el) && el.checks.libraries != Severity::Off
}

/// A verdict's recorded note: read from the store when it is needed, or
/// read beforehand with those of other elements (`Store::notes_get`).
#[derive(Clone, Copy, Debug)]
pub enum Recorded<'a> {
    Read,
    Given(Option<&'a [u8]>),
}

/// Whether an element's output goes through the architecture check: the
/// behaviours that make files by running commands.
pub fn architecture_checked(el: &Element) -> bool {
    crate::kinds::of(el).caps().runs_commands
}

/// The ELF machine and class of a cas architecture name.
fn machine_of(arch: &str) -> Option<(u16, bool)> {
    let canonical = match arch {
        "i386" | "i486" | "i586" | "x86" => "i686",
        "arm" | "armhf" | "armv7l" => "armv7",
        "arm64" => "aarch64",
        "amd64" => "x86_64",
        a => a,
    };
    cas_sandbox::emulator::MACHINES
        .iter()
        .find(|(_, _, n)| *n == canonical)
        .map(|(m, b, _)| (*m, *b))
}

/// The ELF files of `tree` that are not of `arch` (path, what they are),
/// except those `exempt` matches; empty when `arch` is not one cas knows.
pub fn architecture_problems(
    store: &Store,
    tree: &TreeDigest,
    arch: &str,
    exempt: &[String],
) -> Result<Vec<(String, String)>> {
    use std::io::Read;
    let Some((machine, is_64)) = machine_of(arch) else {
        return Ok(Vec::new());
    };
    let mut globs = globset::GlobSetBuilder::new();
    for g in exempt {
        if let Ok(g) = globset::Glob::new(g.trim_start_matches('/')) {
            globs.add(g);
        }
    }
    let globs = globs.build().unwrap_or_else(|_| globset::GlobSet::empty());
    let mut out = Vec::new();
    for (path, e) in store.walk(tree)? {
        let cas_store::EntryKind::File { digest, size } = e.kind else {
            continue;
        };
        if size < 20 {
            continue;
        }
        let mut head = [0u8; 20];
        let Ok(mut f) = std::fs::File::open(store.blob_path(&digest)) else {
            continue;
        };
        if f.read_exact(&mut head).is_err() || !head.starts_with(b"\x7fELF") {
            continue;
        }
        let rel = String::from_utf8_lossy(&path).into_owned();
        if globs.is_match(&rel) {
            continue;
        }
        let file_64 = head[4] == 2;
        let m = if head[5] == 1 {
            u16::from_le_bytes([head[18], head[19]])
        } else {
            u16::from_be_bytes([head[18], head[19]])
        };
        if m != machine || file_64 != is_64 {
            let what = cas_sandbox::emulator::elf_arch(&head).map_or_else(
                || format!("ELF machine {m} ({}-bit)", if file_64 { 64 } else { 32 }),
                str::to_string,
            );
            out.push((format!("/{rel}"), what));
        }
    }
    Ok(out)
}

/// One element's verdict, and a provider named for each missing library.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LibrariesReport {
    pub severity: Severity,
    pub checked: u64,
    pub problems: Vec<ProblemReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProblemReport {
    pub file: String,
    pub library: String,
    pub interpreter: bool,
    /// `build-only` or `missing`.
    pub found: &'static str,
    /// The build dependency that has it (`build-only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_dependency: Option<String>,
    /// Elements of the loaded closure whose output has a file of that name
    /// (`missing`): what could be declared.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provided_by: Vec<String>,
    /// One line saying all of it.
    pub message: String,
}

/// The inputs of `id`'s check, when every output it needs is known and in the store.
fn inputs_of(
    loaded: &Loaded,
    id: ElementId,
    outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    present: &dyn Fn(&TreeDigest) -> bool,
) -> Option<Inputs> {
    let el = loaded.element(id);
    let own = outputs(id)?;
    let label = |d: ElementId| -> Option<Labelled> {
        let tree = outputs(d)?;
        present(&tree).then(|| Labelled {
            name: loaded.element(d).name.clone(),
            tree,
        })
    };
    if !present(&own) {
        return None;
    }
    if crate::kinds::of(el).caps().whole_root {
        // a compose is a whole root: its own output is all there is
        return Some(Inputs {
            own,
            runtime: Vec::new(),
            build_only: Vec::new(),
        });
    }
    let rt = loaded.runtime_closure(id);
    let rt_set: HashSet<ElementId> = rt.iter().copied().collect();
    let runtime = rt.into_iter().map(label).collect::<Option<Vec<_>>>()?;
    let build_only = loaded
        .staged(id)
        .into_iter()
        .filter(|d| !rt_set.contains(d))
        .map(label)
        .collect::<Option<Vec<_>>>()?;
    Some(Inputs {
        own,
        runtime,
        build_only,
    })
}

/// A verdict, and whether it was computed now (and is to be recorded).
pub struct Checked {
    pub verdict: Verdict,
    pub new: bool,
}

/// The verdict of `id` (key `key`): the recorded one when it was computed
/// against the same inputs, else (with `compute`) computed now; the caller
/// records new verdicts (as the note [`LIBRARIES_NOTE`]).
pub fn libraries_verdict(
    store: &Store,
    indexes: &Indexes,
    loaded: &Loaded,
    id: ElementId,
    key: &ActionKey,
    outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    compute: bool,
) -> Result<Option<Checked>> {
    let present = |t: &TreeDigest| store.has_tree(t);
    libraries_verdict_with(
        store,
        indexes,
        loaded,
        id,
        key,
        outputs,
        &present,
        Recorded::Read,
        compute,
    )
}

/// [`libraries_verdict`] where `present` says which trees are in the store
/// (a caller that has just checked every output, as `cas show` has, need
/// not `lstat` each again per element that stages it) and `recorded` may
/// be the note read beforehand.
#[allow(clippy::too_many_arguments)]
pub fn libraries_verdict_with(
    store: &Store,
    indexes: &Indexes,
    loaded: &Loaded,
    id: ElementId,
    key: &ActionKey,
    outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    present: &dyn Fn(&TreeDigest) -> bool,
    recorded: Recorded<'_>,
    compute: bool,
) -> Result<Option<Checked>> {
    let el = loaded.element(id);
    if !has_verdict(el) {
        return Ok(None);
    }
    let Some(inputs) = inputs_of(loaded, id, outputs, present) else {
        return Ok(None);
    };
    let against = inputs.against();
    let read;
    let note = match recorded {
        Recorded::Given(note) => note,
        Recorded::Read => {
            read = store.note_get(key, LIBRARIES_NOTE)?;
            read.as_deref()
        }
    };
    if let Some(bytes) = note {
        if let Ok(v) = Verdict::decode(bytes) {
            if v.against == against {
                return Ok(Some(Checked {
                    verdict: v,
                    new: false,
                }));
            }
        }
    }
    if !compute {
        return Ok(None);
    }
    let v =
        cas_linkcheck::check(store, indexes, &inputs).map_err(|e| crate::BuildError::Other {
            element: el.name.clone(),
            message: format!("libraries check: {e}"),
        })?;
    Ok(Some(Checked {
        verdict: v,
        new: true,
    }))
}

/// A verdict as reports show it, with providers looked for among `closure`.
pub fn report(
    store: &Store,
    indexes: &Indexes,
    loaded: &Loaded,
    id: ElementId,
    verdict: &Verdict,
    closure: &[ElementId],
    outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
) -> LibrariesReport {
    // each output of the closure walked once, for every missing library
    let _ = indexes;
    let missing: HashSet<&str> = verdict
        .problems
        .iter()
        .filter(|p| p.found == Found::Missing)
        .map(|p| p.library.as_str())
        .collect();
    let mut providers: HashMap<String, Vec<String>> = HashMap::new();
    if !missing.is_empty() {
        let base = |l: &str| l.rsplit('/').next().unwrap_or(l).to_string();
        for d in closure.iter().filter(|d| **d != id) {
            let Some(tree) = outputs(*d) else { continue };
            let Ok(walked) = store.walk(&tree) else {
                continue;
            };
            let names: HashSet<&[u8]> = walked
                .iter()
                .map(|(k, _)| k.rsplit(|b| *b == b'/').next().unwrap_or(k))
                .collect();
            for lib in &missing {
                if names.contains(base(lib).as_bytes()) {
                    providers
                        .entry((*lib).to_string())
                        .or_default()
                        .push(loaded.element(*d).name.clone());
                }
            }
        }
    }
    LibrariesReport {
        severity: loaded.element(id).checks.libraries,
        checked: verdict.checked,
        problems: verdict
            .problems
            .iter()
            .map(|p| {
                let provided_by = providers.get(&p.library).cloned().unwrap_or_default();
                let mut message = p.describe();
                if !provided_by.is_empty() {
                    message += &format!(" ({} has it)", provided_by.join(", "));
                }
                ProblemReport {
                    file: p.file.clone(),
                    library: p.library.clone(),
                    interpreter: p.interpreter,
                    found: match p.found {
                        Found::BuildOnly(_) => "build-only",
                        Found::Missing => "missing",
                    },
                    build_dependency: match &p.found {
                        Found::BuildOnly(e) => Some(e.clone()),
                        Found::Missing => None,
                    },
                    provided_by,
                    message,
                }
            })
            .collect(),
    }
}
