//! The engine's side of sources: the source cache over the content store,
//! local-source identities, fetching and staging. The command line reaches
//! sources only through here (the types and operations re-exported below).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cas_sources::Checksum;
pub use cas_sources::{
    archive::decompress, checksum::hash_file, stage_source, track, Algorithm, Fetcher, Mirrors,
    NoProgress, Progress, Source, SourceCache, SourceError, SourceKind, SourceUrl, Tracked,
};
use cas_store::{Entry, IngestMode, Store, Tree, TreeDigest};

/// Where bare git mirrors live (spec/sources.md).
pub fn git_dir(store: &Store) -> PathBuf {
    store.layout().git_mirrors()
}

/// Downloaded sources kept in the content store: the store's source index
/// maps `algorithm:hex` to the blob holding the file.
pub struct StoreSourceCache<'a> {
    pub store: &'a Store,
}

fn index_id(c: &Checksum) -> String {
    format!("{}:{}", c.algorithm(), c.hex())
}

impl SourceCache for StoreSourceCache<'_> {
    fn lookup(&self, checksum: &Checksum) -> Option<PathBuf> {
        let blob = self.store.source_get(&index_id(checksum)).ok()??;
        self.store
            .has_blob(&blob)
            .then(|| self.store.blob_path(&blob))
    }

    fn insert(&self, checksum: &Checksum, file: &Path) -> cas_sources::Result<PathBuf> {
        let to_err = |e: cas_store::StoreError| cas_sources::SourceError::Io {
            what: "cannot add to the source cache",
            path: file.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        };
        let (blob, _) = self
            .store
            .put_file(file, IngestMode::Move)
            .map_err(to_err)?;
        self.store
            .source_put(&index_id(checksum), &blob)
            .map_err(to_err)?;
        Ok(self.store.blob_path(&blob))
    }
}

/// Tree digests of local sources, computed once per run.
#[derive(Default)]
pub struct LocalDigests {
    memo: Mutex<HashMap<PathBuf, TreeDigest>>,
}

impl LocalDigests {
    /// The tree digest of a local file or directory: a directory is ingested
    /// (copied, the project is left untouched); a file becomes a one-entry
    /// tree named after it.
    pub fn digest(&self, store: &Store, path: &Path) -> Result<TreeDigest, cas_store::StoreError> {
        if let Some(d) = self
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
        {
            return Ok(*d);
        }
        let meta = std::fs::symlink_metadata(path).map_err(|e| cas_store::StoreError::Io {
            op: "cannot read local source",
            path: path.to_path_buf(),
            source: e,
        })?;
        let name = || {
            path.file_name()
                .map(|n| n.as_encoded_bytes().to_vec())
                .unwrap_or_default()
        };
        let digest = if meta.is_dir() {
            store.ingest(path, IngestMode::Copy)?.tree
        } else if meta.file_type().is_symlink() {
            // The link itself, as it is staged (never followed).
            let target = std::fs::read_link(path).map_err(|e| cas_store::StoreError::Io {
                op: "cannot read symlink",
                path: path.to_path_buf(),
                source: e,
            })?;
            let tree = Tree::new(vec![Entry::symlink(
                name(),
                target.as_os_str().as_encoded_bytes().to_vec(),
            )])?;
            store.put_tree(&tree)?
        } else {
            use std::os::unix::fs::PermissionsExt;
            let (blob, size) = store.put_file(path, IngestMode::Copy)?;
            let tree = Tree::new(vec![Entry::file(
                name(),
                meta.permissions().mode() & 0o7777,
                blob,
                size,
            )])?;
            store.put_tree(&tree)?
        };
        self.memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.to_path_buf(), digest);
        Ok(digest)
    }
}

/// The identity bytes of every source of an element (spec/sources.md).
pub fn identities(
    store: &Store,
    locals: &LocalDigests,
    sources: &[Source],
) -> cas_sources::Result<Vec<Vec<u8>>> {
    sources
        .iter()
        .map(|s| {
            cas_sources::identity(s, |p| {
                locals
                    .digest(store, p)
                    .map(|d| *d.digest().as_bytes())
                    .map_err(|e| Box::new(e) as cas_sources::BoxError)
            })
        })
        .collect()
}

/// Whether any source of the element must be fetched before it can build.
pub fn needs_fetch(
    sources: &[Source],
    fetcher: &cas_sources::Fetcher,
    cache: &dyn SourceCache,
) -> bool {
    sources
        .iter()
        .any(|s| cas_sources::needs_fetch(s, fetcher, cache))
}

/// A short human description of a source, for messages.
pub fn describe(source: &Source) -> String {
    match &source.kind {
        SourceKind::Local { path } | SourceKind::Patch { path, .. } => {
            format!("{} {}", source.kind.name(), path.display())
        }
        SourceKind::Tar { url, .. }
        | SourceKind::Remote { url, .. }
        | SourceKind::Deb { url, .. }
        | SourceKind::Git { url, .. } => format!("{} {}", source.kind.name(), url.written),
        SourceKind::Cargo { url, crates, .. } => {
            format!("cargo {} ({} crates)", url.written, crates.len())
        }
    }
}

/// One download per source at a time in this process: steps running in
/// parallel that share a source (same [`cas_sources::fetch_identity`]) wait
/// for the first fetch, then find it in the cache.
static GATES: std::sync::OnceLock<Mutex<HashMap<String, std::sync::Arc<Mutex<()>>>>> =
    std::sync::OnceLock::new();

/// [`cas_sources::fetch_source`], at most once at a time per source.
pub fn fetch_once(
    source: &Source,
    fetcher: &cas_sources::Fetcher,
    cache: &dyn SourceCache,
    offline: bool,
    progress: &dyn cas_sources::Progress,
) -> cas_sources::Result<cas_sources::Fetched> {
    let Some(key) = cas_sources::fetch_identity(source) else {
        return cas_sources::fetch_source(source, fetcher, cache, offline, progress);
    };
    let gate = {
        let mut gates = GATES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.entry(key).or_default().clone()
    };
    let _held = gate
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cas_sources::fetch_source(source, fetcher, cache, offline, progress)
}

/// The distinct fetchable sources of `ids` (by fetch identity), in order,
/// with the names of the elements that use each.
pub fn distinct_sources(
    loaded: &cas_format::Loaded,
    ids: &[cas_format::ElementId],
) -> Vec<(Source, Vec<String>)> {
    let mut out: Vec<(Source, Vec<String>)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for &id in ids {
        let el = loaded.element(id);
        for s in &el.sources {
            let Some(key) = cas_sources::fetch_identity(s) else {
                continue;
            };
            if let Some(&i) = seen.get(&key) {
                if !out[i].1.contains(&el.name) {
                    out[i].1.push(el.name.clone());
                }
            } else {
                seen.insert(key, out.len());
                out.push((s.clone(), vec![el.name.clone()]));
            }
        }
    }
    out
}

/// Where a batch of fetches reports: a progress sink per download, and lines.
pub trait FetchReporter: Sync {
    /// A download of `what` starts.
    fn started(&self, what: &str) -> Box<dyn cas_sources::Progress + '_>;
    /// A line: `fetched …` or `failed  …`.
    fn line(&self, text: &str);
}

/// How a batch of fetches went.
#[derive(Default)]
pub struct FetchSummary {
    pub fetched: usize,
    pub cached: usize,
    /// Each failed source, the elements using it, and why.
    pub failures: Vec<(Source, Vec<String>, cas_sources::SourceError)>,
}

/// Fetch `sources` (distinct) with at most `jobs` downloads at once. Every
/// source is attempted; failures are collected, not fatal (`cas fetch`).
pub fn fetch_all(
    store: &Store,
    fetcher: &cas_sources::Fetcher,
    sources: &[(Source, Vec<String>)],
    jobs: usize,
    reporter: &dyn FetchReporter,
) -> FetchSummary {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let cache = StoreSourceCache { store };
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(FetchSummary::default());
    let workers = jobs.max(1).min(sources.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((source, users)) = sources.get(i) else {
                    break;
                };
                if !cas_sources::needs_fetch(source, fetcher, &cache) {
                    summary
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .cached += 1;
                    continue;
                }
                let what = describe(source);
                let result = {
                    let progress = reporter.started(&what);
                    fetch_once(source, fetcher, &cache, false, progress.as_ref())
                };
                let mut s = summary
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match result {
                    Ok(_) => {
                        reporter.line(&format!("fetched {what}"));
                        s.fetched += 1;
                    }
                    Err(e) => {
                        reporter.line(&format!("failed  {what}"));
                        s.failures.push((source.clone(), users.clone(), e));
                    }
                }
            });
        }
    });
    summary
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `cas build --offline`: the sources that the steps still to build need
/// and that are not in the source cache, with the elements using each
/// (empty: the build can run without the network). Cached steps need none.
pub fn missing_offline(
    store: &Store,
    loaded: &cas_format::Loaded,
    fetcher: &cas_sources::Fetcher,
) -> crate::error::Result<Vec<(Source, Vec<String>)>> {
    let cache = StoreSourceCache { store };
    // Cheap first: when every source of the closure is there, no need to plan.
    let closure = loaded.closure(&loaded.targets);
    if distinct_sources(loaded, &closure)
        .iter()
        .all(|(s, _)| !cas_sources::needs_fetch(s, fetcher, &cache))
    {
        return Ok(Vec::new());
    }
    // Only the steps without a local result need their sources.
    let planner = crate::plan::Planner::new(store, loaded);
    let steps = planner.walk(
        &loaded.targets,
        crate::plan::Walk::default(),
        &mut |asked| crate::record::outputs_of(store, asked, crate::record::Lookup::Use),
    )?;
    let todo: Vec<cas_format::ElementId> = steps
        .iter()
        .filter(|s| s.output.is_none())
        .map(|s| s.id)
        .collect();
    Ok(distinct_sources(loaded, &todo)
        .into_iter()
        .filter(|(s, _)| cas_sources::needs_fetch(s, fetcher, &cache))
        .collect())
}
