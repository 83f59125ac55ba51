//! A built closure as cas recorded it: for each element its key, output
//! tree and result times, its edges in the graph, and the upstreams it was
//! made from. Nothing here comes from the clock or from guessing: a value
//! cas does not know is `None`, and the documents say NOASSERTION.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use cas_format::{ElementId, Loaded};
use cas_sources::{Checksum, Mirrors, SourceKind, SourceUrl};
use cas_store::{ActionKey, Store, TreeDigest};

use crate::debian::{self, Control};
use crate::error::SbomError;
use crate::legal::{self, License};

/// How an element relates to another one of the closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edge {
    /// Its output holds the other's files (a compose, stack or filter
    /// part; a script staging it at the root it outputs).
    Contains,
    /// Staged to build it, not part of its output (`build-depends`).
    BuildTool,
    /// Staged to build it and needed at run time (`depends`).
    Depends,
    /// Needed at run time only (`runtime-depends`).
    Runtime,
}

/// One element of the closure, built.
#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    /// Its file, relative to the project's root.
    pub file: String,
    pub kind: String,
    pub description: Option<String>,
    pub key: ActionKey,
    pub output: TreeDigest,
    /// When its result was recorded (unix seconds), and how long its step took.
    pub created: i64,
    pub duration_ms: u64,
    /// `package-version`, else `version`, else `0+cas.<12 hex of the key>`.
    pub version: String,
    /// The element's declared `license:` (an SPDX expression, checked).
    pub license: Option<String>,
    /// Edges to other elements (indices into [`Closure::elements`]), in
    /// the order written.
    pub edges: Vec<(Edge, usize)>,
    /// What its step staged (indices into [`Closure::elements`]), in
    /// staging order.
    pub staged: Vec<usize>,
    /// Its sources (indices into [`Closure::upstreams`]), in order.
    pub sources: Vec<usize>,
    /// Its output is its sources (an `import`): it contains them rather
    /// than being generated from them.
    pub imports: bool,
    /// Every variable it was built with, expanded: the result's note
    /// `variables` (spec/store.md), else the element's as loaded.
    pub variables: BTreeMap<String, String>,
}

/// A Debian package of a `deb` source.
#[derive(Debug, Clone)]
pub struct Deb {
    pub control: Control,
    /// `false` when the `.deb` is not in the source cache: name, version
    /// (without epoch) and architecture come from its file name.
    pub from_control: bool,
    pub copyright: Option<Vec<u8>>,
}

/// One source as fetched: a file (tar, remote, deb, crate) by checksum, a
/// git commit, or a file or directory of the project (local, patch).
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `tar`, `remote`, `deb`, `git`, `local`, `patch`, `crate`.
    pub kind: &'static str,
    /// The URL as written in the element (`alias:path`), or the path
    /// relative to the project's root.
    pub written: String,
    /// Where it is downloaded from: the URL through the project's aliases
    /// when that is absolute, else through the configured mirrors.
    pub download: Option<String>,
    pub checksum: Option<Checksum>,
    pub commit: Option<String>,
    /// local and patch: the blake3 tree digest of the path (its identity).
    pub tree: Option<TreeDigest>,
    /// The file name as fetched (`busybox_1.35.0.orig.tar.bz2`), or the
    /// path's last component.
    pub file_name: String,
    pub name: String,
    pub version: String,
    /// The file in the source cache, or the project path.
    pub path: Option<PathBuf>,
    pub deb: Option<Deb>,
    pub license: Option<License>,
}

/// The closure of one built element.
#[derive(Debug, Clone)]
pub struct Closure {
    pub project: String,
    pub project_root: PathBuf,
    /// The project's git commit when it is a clean git checkout (`-dirty`
    /// appended when files differ from it).
    pub revision: Option<String>,
    pub cas_version: String,
    /// Index of the target in `elements`.
    pub top: usize,
    /// Dependencies first, the target last.
    pub elements: Vec<Element>,
    pub upstreams: Vec<Upstream>,
    /// What the documents could not say exactly (a package not fetched ...).
    pub warnings: Vec<String>,
}

impl Closure {
    pub fn top(&self) -> &Element {
        &self.elements[self.top]
    }

    /// Which elements ship with the target: the target, and what it
    /// contains or depends on (at run time too), transitively; the others
    /// only build something (Buildroot's host packages).
    pub fn shipped(&self) -> Vec<bool> {
        let mut shipped = vec![false; self.elements.len()];
        let mut todo = vec![self.top];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut shipped[i], true) {
                continue;
            }
            for (edge, d) in &self.elements[i].edges {
                if *edge != Edge::BuildTool {
                    todo.push(*d);
                }
            }
        }
        shipped
    }
}

/// What reading the closure needs beyond the load.
pub struct Inputs<'a> {
    pub store: &'a Store,
    pub loaded: &'a Loaded,
    pub target: ElementId,
    pub mirrors: &'a Mirrors,
    pub cas_version: &'a str,
    /// Read each Debian package's copyright file (licences).
    pub copyrights: bool,
}

/// The closure of `inputs.target` as recorded; every element of it must
/// be built (else [`SbomError::NotBuilt`] names them).
pub fn closure(inputs: &Inputs<'_>) -> Result<Closure, SbomError> {
    let Inputs {
        store,
        loaded,
        target,
        mirrors,
        ..
    } = *inputs;
    let plan = cas_builder::states(
        store,
        loaded,
        &[target],
        mirrors,
        cas_builder::record::Lookup::Look,
    )
    .map_err(|e| SbomError::Engine(e.to_string()))?;
    let by_id: HashMap<ElementId, &cas_builder::Planned> = plan.iter().map(|p| (p.id, p)).collect();
    let ids = loaded.closure(&[target]);
    let top_name = loaded.element(target).name.clone();
    let mut unbuilt = Vec::new();
    let mut results = Vec::new();
    for &id in &ids {
        let p = by_id.get(&id);
        let found = match p.and_then(|p| p.key.zip(p.output)) {
            Some((key, output)) => store
                .action_peek(&key)?
                .map(|r| (key, output, r.created, r.duration_ms)),
            None => None,
        };
        match found {
            Some(f) => results.push(f),
            None => unbuilt.push(loaded.element(id).name.clone()),
        }
    }
    if !unbuilt.is_empty() {
        let elements = if unbuilt.len() == 1 {
            format!("{} is", unbuilt[0])
        } else {
            format!("{} are", unbuilt.join(", "))
        };
        return Err(SbomError::NotBuilt {
            elements,
            target: top_name,
        });
    }
    let index: HashMap<ElementId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut upstreams: Vec<Upstream> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut warnings = Vec::new();
    let locals = cas_builder::sources::LocalDigests::default();
    let mut elements = Vec::new();
    for (&id, (key, output, created, duration_ms)) in ids.iter().zip(results) {
        let el = loaded.element(id);
        // what its output holds: everything a compose, stack or filter
        // stages, and a script's root when it outputs `/`; a script's
        // element laid out elsewhere than `/` is what it packages (an
        // image's tree), the ones at `/` its tools
        let kind = cas_builder::kinds::of(el);
        let contains = |d: ElementId| kind.contains(loaded, el, d);
        let contains_staged = kind.caps().made_of_staged;
        let mut edges = Vec::new();
        for d in &el.build_depends {
            let e = if contains(*d) {
                Edge::Contains
            } else {
                Edge::BuildTool
            };
            edges.push((e, index[d]));
        }
        for d in &el.depends {
            let e = if contains_staged {
                Edge::Contains
            } else {
                Edge::Depends
            };
            edges.push((e, index[d]));
        }
        for d in &el.runtime_depends {
            edges.push((Edge::Runtime, index[d]));
        }
        let mut sources = Vec::new();
        for s in &el.sources {
            for up in upstreams_of(inputs, &locals, &el.name, &s.kind, &mut warnings)? {
                let id = identity(&up);
                let i = *seen.entry(id).or_insert_with(|| {
                    upstreams.push(up);
                    upstreams.len() - 1
                });
                sources.push(i);
            }
        }
        let var = |n: &str| el.variables.get(n).filter(|v| !v.is_empty()).cloned();
        let version = var("package-version")
            .or_else(|| var("version"))
            .unwrap_or_else(|| cas_package::control::default_version(&key.to_hex()));
        elements.push(Element {
            name: el.name.clone(),
            file: el
                .file
                .strip_prefix(&loaded.project.root)
                .unwrap_or(&el.file)
                .to_string_lossy()
                .into_owned(),
            kind: el.kind.clone(),
            description: el.description.clone(),
            key,
            output,
            created,
            duration_ms,
            version,
            license: el
                .license
                .as_deref()
                .map(|l| legal::check_declared(&el.name, l))
                .transpose()?,
            edges,
            staged: loaded.staged(id).iter().map(|d| index[d]).collect(),
            sources,
            imports: kind.name() == "import",
            // as recorded with the result (the note `variables`), else as loaded
            variables: store
                .note_get(&key, cas_builder::variables_note::VARIABLES_NOTE)?
                .and_then(|b| cas_builder::variables_note::decode(&b))
                .unwrap_or_else(|| el.variables.clone()),
        });
    }
    Ok(Closure {
        project: loaded.project.name.clone(),
        project_root: loaded.project.root.clone(),
        revision: revision(&loaded.project.root),
        cas_version: inputs.cas_version.to_string(),
        top: index[&target],
        elements,
        upstreams,
        warnings,
    })
}

/// What makes two upstreams the same: the checksum of a file, the commit
/// of a repository, the path of a project file.
fn identity(u: &Upstream) -> String {
    if let Some(c) = &u.checksum {
        return c.to_string();
    }
    if let Some(c) = &u.commit {
        return format!("git {} {c}", u.written);
    }
    format!("{} {}", u.kind, u.written)
}

fn download(url: &SourceUrl, mirrors: &Mirrors) -> Option<String> {
    if url.resolved.contains("://") {
        return Some(url.resolved.clone());
    }
    mirrors
        .candidates(url)
        .into_iter()
        .find(|c| c.contains("://"))
}

fn last_component(s: &str) -> String {
    s.trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(s)
        .to_string()
}

/// `NAME-VERSION.tar.gz`, `NAME_VERSION.orig.tar.xz`, `NAME-vVERSION.zip`:
/// the usual form of a release's file name; `None` for any other.
pub fn name_version(file: &str) -> Option<(String, String)> {
    const EXTS: [&str; 12] = [
        ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst", ".tar.lz", ".tar", ".tgz", ".tbz2", ".txz",
        ".zip", ".crate", ".gz",
    ];
    let stem = EXTS.iter().find_map(|e| file.strip_suffix(e))?;
    let stem = stem.strip_suffix(".orig").unwrap_or(stem);
    let bytes = stem.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b'-' || b == b'_') && i > 0 {
            let rest = &stem[i + 1..];
            let rest = rest.strip_prefix('v').unwrap_or(rest);
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                return Some((stem[..i].to_string(), rest.to_string()));
            }
        }
    }
    None
}

fn upstreams_of(
    inputs: &Inputs<'_>,
    locals: &cas_builder::sources::LocalDigests,
    element: &str,
    kind: &SourceKind,
    warnings: &mut Vec<String>,
) -> Result<Vec<Upstream>, SbomError> {
    let cache = cas_builder::sources::StoreSourceCache {
        store: inputs.store,
    };
    let root = &inputs.loaded.project.root;
    let relative = |p: &Path| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let file_upstream = |kind: &'static str, url: &SourceUrl, checksum: &Checksum, file: String| {
        let (name, version) = name_version(&file).unwrap_or_else(|| {
            (
                file.clone(),
                format!("{}:{}", checksum.algorithm(), checksum.hex()),
            )
        });
        Upstream {
            kind,
            written: url.written.clone(),
            download: download(url, inputs.mirrors),
            checksum: Some(checksum.clone()),
            commit: None,
            tree: None,
            file_name: file,
            name,
            version,
            path: cas_sources::SourceCache::lookup(&cache, checksum),
            deb: None,
            license: None,
        }
    };
    Ok(match kind {
        SourceKind::Tar { url, checksum, .. } => {
            vec![file_upstream(
                "tar",
                url,
                checksum,
                last_component(&url.written),
            )]
        }
        SourceKind::Remote {
            url,
            checksum,
            filename,
            ..
        } => {
            let file = filename
                .clone()
                .unwrap_or_else(|| last_component(&url.written));
            vec![file_upstream("remote", url, checksum, file)]
        }
        SourceKind::Deb { url, checksum, .. } => {
            let file = last_component(&url.written);
            let mut up = file_upstream("deb", url, checksum, file.clone());
            let deb = if let Some(p) = &up.path {
                let info = debian::read_deb(p, inputs.copyrights)?;
                Some(Deb {
                    control: info.control,
                    from_control: true,
                    copyright: info.copyright,
                })
            } else {
                {
                    warnings.push(format!(
                        "{element}: {} is not in the source cache: its name and version come from its file name (`cas fetch` it for its control fields and licence)",
                        url.written
                    ));
                    debian::from_file_name(&file).map(|(n, v, a)| Deb {
                        control: Control {
                            package: n.clone(),
                            version: v.clone(),
                            architecture: a,
                            source: n,
                            source_version: v,
                            maintainer: None,
                            homepage: None,
                            description: None,
                        },
                        from_control: false,
                        copyright: None,
                    })
                }
            };
            if let Some(d) = &deb {
                up.name.clone_from(&d.control.package);
                up.version.clone_from(&d.control.version);
                up.license = d
                    .copyright
                    .as_deref()
                    .and_then(|c| legal::from_dep5(&d.control.package, c));
            }
            up.deb = deb;
            vec![up]
        }
        SourceKind::Git { url, commit, .. } => {
            let name = last_component(&url.written);
            let name = name.strip_suffix(".git").unwrap_or(&name).to_string();
            vec![Upstream {
                kind: "git",
                written: url.written.clone(),
                download: download(url, inputs.mirrors),
                checksum: None,
                commit: Some(commit.clone()),
                tree: None,
                file_name: name.clone(),
                name,
                version: commit.clone(),
                path: {
                    let git_dir = cas_builder::sources::git_dir(inputs.store);
                    let mirror = cas_sources::git::mirror_path(&git_dir, url);
                    cas_sources::git::has_commit(&mirror, commit).then_some(mirror)
                },
                deb: None,
                license: None,
            }]
        }
        SourceKind::Local { path } | SourceKind::Patch { path, .. } => {
            let tree = locals.digest(inputs.store, path)?;
            let written = relative(path);
            vec![Upstream {
                kind: kind.name(),
                written: written.clone(),
                download: None,
                checksum: None,
                commit: None,
                tree: Some(tree),
                file_name: last_component(&written),
                name: written,
                version: format!("blake3:{}", tree.digest().to_hex()),
                path: Some(path.clone()),
                deb: None,
                license: None,
            }]
        }
        SourceKind::Cargo { url, crates, .. } => crates
            .iter()
            .map(|c| {
                let mut up = file_upstream(
                    "crate",
                    &c.url(url),
                    &c.checksum,
                    format!("{}-{}.crate", c.name, c.version),
                );
                up.name.clone_from(&c.name);
                up.version.clone_from(&c.version);
                up
            })
            .collect(),
    })
}

/// The project's git commit when its root is a git checkout (host git,
/// run as cas runs it on content it did not make); `-dirty` appended when
/// tracked files differ from it.
fn revision(root: &Path) -> Option<String> {
    let run = |args: &[&str]| {
        let out = cas_sources::host::git()
            .current_dir(root)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "--verify", "HEAD"])?;
    if commit.len() != 40 && commit.len() != 64 {
        return None;
    }
    let dirty = run(&["status", "--porcelain", "--untracked-files=no", "--", "."])
        .is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

#[cfg(test)]
mod tests {
    use super::name_version;

    #[test]
    fn release_file_names() {
        let nv = |f: &str| name_version(f).map(|(n, v)| format!("{n} {v}"));
        assert_eq!(
            nv("busybox_1.35.0.orig.tar.bz2").as_deref(),
            Some("busybox 1.35.0")
        );
        assert_eq!(
            nv("zlib_1.2.13.dfsg.orig.tar.bz2").as_deref(),
            Some("zlib 1.2.13.dfsg")
        );
        assert_eq!(
            nv("gcc-toolchain-v12.1.tar.xz").as_deref(),
            Some("gcc-toolchain 12.1")
        );
        assert_eq!(nv("hello-2.10.tar.gz").as_deref(), Some("hello 2.10"));
        assert_eq!(nv("data.bin"), None);
        assert_eq!(nv("snapshot.tar.gz"), None);
    }
}
