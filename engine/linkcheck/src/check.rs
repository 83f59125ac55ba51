//! The check: every ELF file of an output, every library it needs, looked
//! for in the runtime closure, then in the build-only dependencies.

use std::io::Read;

use cas_store::{EntryKind, Store, TreeDigest};

use crate::elf;
use crate::tree::{Indexes, Union};
use crate::verdict::{Found, Problem, Verdict};
use crate::LinkCheckError;

/// An output tree and the element it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub name: String,
    pub tree: TreeDigest,
}

/// What one element's check looks at.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The element's own output (whose ELF files are checked).
    pub own: TreeDigest,
    /// Its runtime closure (outputs of its runtime dependencies, transitively),
    /// in staging order.
    pub runtime: Vec<Labelled>,
    /// What it staged for the build and is not in its runtime closure.
    pub build_only: Vec<Labelled>,
}

impl Inputs {
    /// blake3 of everything the verdict depends on, explicitly encoded:
    /// the check's version, the own output, then each list as
    /// count, (name length, name, tree digest)...
    pub fn against(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"cas-libraries-check 1\0");
        h.update(self.own.0.as_bytes());
        for list in [&self.runtime, &self.build_only] {
            h.update(&(list.len() as u64).to_le_bytes());
            for l in list {
                h.update(&(l.name.len() as u64).to_le_bytes());
                h.update(l.name.as_bytes());
                h.update(l.tree.0.as_bytes());
            }
        }
        *h.finalize().as_bytes()
    }
}

/// Files smaller than an ELF header are not looked at.
const MIN_ELF: u64 = 52;

/// Check `inputs` (indexes read through `indexes`, shared across checks).
pub fn check(store: &Store, indexes: &Indexes, inputs: &Inputs) -> Result<Verdict, LinkCheckError> {
    // Runtime: the closure under the element's own output.
    let mut rt_layers: Vec<TreeDigest> = inputs.runtime.iter().map(|l| l.tree).collect();
    rt_layers.push(inputs.own);
    // Everything staged: build-only first, so a runtime file wins.
    let build_len = inputs.build_only.len();
    let mut all_layers: Vec<TreeDigest> = inputs.build_only.iter().map(|l| l.tree).collect();
    all_layers.extend(rt_layers.iter().copied());
    let rt = Union {
        store,
        indexes,
        layers: rt_layers,
    };
    let all = Union {
        store,
        indexes,
        layers: all_layers,
    };
    let conf_dirs = ld_so_conf(store, &rt);
    let own = store.walk(&inputs.own)?;

    let mut verdict = Verdict {
        against: inputs.against(),
        checked: 0,
        problems: Vec::new(),
    };
    for (path, entry) in &own {
        let EntryKind::File { digest, size } = &entry.kind else {
            continue;
        };
        if *size < MIN_ELF {
            continue;
        }
        let file = store.blob_path(digest);
        let Some(data) = read_if_elf(&file)? else {
            continue;
        };
        let Some(d) = elf::dynamic(&data) else {
            continue;
        };
        verdict.checked += 1;
        let abs = format!("/{}", String::from_utf8_lossy(path));
        let dir = abs
            .rsplit_once('/')
            .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
        let mut search: Vec<String> = d
            .runpath
            .iter()
            .filter(|p| !p.contains("$PLATFORM"))
            .map(|p| {
                p.replace("$ORIGIN", dir)
                    .replace("${ORIGIN}", dir)
                    .replace("$LIB", if d.is_64 { "lib64" } else { "lib" })
            })
            .collect();
        search.extend(conf_dirs.iter().cloned());
        search.extend(default_dirs(&d));
        let classify = |candidates: &[String]| -> Option<Found> {
            if candidates.iter().any(|c| rt.resolve_file(c).is_some()) {
                return None;
            }
            let in_build = candidates
                .iter()
                .find_map(|c| all.resolve_file(c))
                .filter(|r| r.layer < build_len);
            Some(match in_build {
                Some(r) => Found::BuildOnly(inputs.build_only[r.layer].name.clone()),
                None => Found::Missing,
            })
        };
        if let Some(interp) = &d.interpreter {
            if let Some(found) = classify(std::slice::from_ref(interp)) {
                verdict.problems.push(Problem {
                    file: abs.clone(),
                    library: interp.clone(),
                    interpreter: true,
                    found,
                });
            }
        }
        for lib in &d.needed {
            let candidates: Vec<String> = if lib.contains('/') {
                vec![if lib.starts_with('/') {
                    lib.clone()
                } else {
                    format!("{dir}/{lib}")
                }]
            } else {
                search.iter().map(|s| format!("{s}/{lib}")).collect()
            };
            if let Some(found) = classify(&candidates) {
                verdict.problems.push(Problem {
                    file: abs.clone(),
                    library: lib.clone(),
                    interpreter: false,
                    found,
                });
            }
        }
    }
    Ok(verdict)
}

/// The whole file when it starts with the ELF magic.
fn read_if_elf(path: &std::path::Path) -> Result<Option<Vec<u8>>, LinkCheckError> {
    let io = |source| LinkCheckError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut head = [0u8; 4];
    if f.read_exact(&mut head).is_err() || !elf::is_elf(&head) {
        return Ok(None);
    }
    let mut data = head.to_vec();
    f.read_to_end(&mut data).map_err(io)?;
    Ok(Some(data))
}

/// The directories the loader always searches (glibc's, Debian's multiarch
/// ones, musl's).
fn default_dirs(d: &elf::Dynamic) -> Vec<String> {
    let mut v = vec!["/lib".to_string(), "/usr/lib".to_string()];
    if d.is_64 {
        v.push("/lib64".into());
        v.push("/usr/lib64".into());
    }
    if let Some(t) = elf::multiarch(d.machine, d.is_64) {
        v.push(format!("/lib/{t}"));
        v.push(format!("/usr/lib/{t}"));
    }
    v.push("/usr/local/lib".into());
    v
}

/// The directories `/etc/ld.so.conf` of the closure names (with its
/// `include`s of `DIR/*.conf`), read from the store.
fn ld_so_conf(store: &Store, u: &Union<'_>) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut files = vec!["/etc/ld.so.conf".to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(f) = files.pop() {
        if !seen.insert(f.clone()) || seen.len() > 256 {
            continue;
        }
        let Some(r) = u.resolve_file(&f) else {
            continue;
        };
        let Ok(bytes) = store.read_blob(&r.digest) else {
            continue;
        };
        for line in String::from_utf8_lossy(&bytes).lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Some(pat) = line.strip_prefix("include") {
                for pat in pat.split_whitespace() {
                    let (d, name) = pat.rsplit_once('/').unwrap_or(("/etc", pat));
                    let (pre, suf) = name.split_once('*').unwrap_or((name, ""));
                    let mut found: Vec<String> = u
                        .list(d)
                        .into_iter()
                        .filter(|n| n.starts_with(pre) && n.ends_with(suf))
                        .map(|n| format!("{d}/{n}"))
                        .collect();
                    found.reverse();
                    files.extend(found);
                }
            } else if line.starts_with('/') {
                dirs.push(line.trim_end_matches('/').to_string());
            }
        }
    }
    dirs
}
