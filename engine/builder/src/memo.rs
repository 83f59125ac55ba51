//! The no-op memo of `cas build` (spec/cli.md, "No-op builds"): when
//! the same targets were built from the same working directory by the same
//! `cas` binary, and no file that load read has changed since (element and
//! project files, project kinds, local sources and patches, by identity:
//! device, inode, size, mtime, ctime, of what a file read through its path
//! leads to; a file the loader read whole whose identity changed holds if
//! its bytes are those it read), the keys are those recorded then. If
//! every one still has its result in the store, that is the build: it
//! stats (and reads again a file touched since, to compare its bytes; the
//! memo's row then takes its new identity) and reads one row of the
//! store's memo table, and reports them
//! `cached` with the outputs recorded then. The store keeps that answer
//! true: it records the memo only while every result is there, and says
//! whether any result row was removed or replaced since
//! ([`cas_store::MemoHit::results_intact`]); if one was, each result is
//! looked up again (row and output tree). Anything else (a changed file, a
//! missing result, remotes) takes the full path, which records the memo
//! again when it ran no step. What a load read comes from the loader
//! ([`Loaded::inputs`]), never from a list kept here.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cas_format::{Loaded, Read};

use crate::run::{BuildReport, ElementReport};
use cas_store::memo::{Seen, Watched};
use cas_store::{ActionKey, Digest, Store, TreeDigest};

const TAG: &str = "cas-build-memo-2";

/// The memo key of building `targets` (as written) from the working
/// directory with this very binary.
pub fn key(targets: &[PathBuf], options: &[(String, String)]) -> Option<Digest> {
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&exe).ok()?;
    let cwd = std::env::current_dir().ok()?;
    let mut b = Vec::new();
    let mut put = |bytes: &[u8]| {
        b.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        b.extend_from_slice(bytes);
    };
    put(TAG.as_bytes());
    put(exe.as_os_str().as_bytes());
    for v in [meta.dev(), meta.ino(), meta.size()] {
        put(&v.to_le_bytes());
    }
    put(&meta.mtime().to_le_bytes());
    put(&meta.mtime_nsec().to_le_bytes());
    put(cwd.as_os_str().as_bytes());
    put(cas_format::host_arch().as_bytes());
    for t in targets {
        put(t.as_os_str().as_bytes());
    }
    // `-o NAME VALUE`: the options change the graph and the keys
    put(&(options.len() as u64).to_le_bytes());
    for (k, v) in options {
        put(k.as_bytes());
        put(v.as_bytes());
    }
    Some(Digest::of_bytes(&b))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Recorded {
    /// The targets' element names.
    targets: Vec<String>,
    /// Every element of the closure, in build order: name, key and output.
    elements: Vec<(String, String, String)>,
}

/// The report of a no-op build and the targets' names, if the memo holds
/// and every result is here.
pub fn try_noop(store: &Store, key: &Digest) -> Option<(BuildReport, Vec<String>)> {
    let memo = store.memo_get(key).ok()??;
    let recorded: Recorded = serde_json::from_slice(&memo.payload).ok()?;
    let outputs: Vec<String> = if memo.results_intact {
        recorded
            .elements
            .iter()
            .map(|(_, _, o)| o.clone())
            .collect()
    } else {
        // a result row was removed or replaced somewhere in the store since:
        // each is looked up (row and output tree), and reported as found;
        // if every one is as the memo recorded it, the memo stands for them
        // again (the store checks the rows against the recorded outputs)
        let recorded_results: Vec<(ActionKey, TreeDigest)> = recorded
            .elements
            .iter()
            .map(|(_, k, o)| Some((ActionKey::from_hex(k).ok()?, TreeDigest::from_hex(o).ok()?)))
            .collect::<Option<_>>()?;
        let keys: Vec<ActionKey> = recorded_results.iter().map(|(k, _)| *k).collect();
        let found: Vec<TreeDigest> = crate::record::hits(store, &keys)
            .ok()?
            .into_iter()
            .map(|r| r.map(|r| r.output))
            .collect::<Option<_>>()?;
        if found
            .iter()
            .zip(&recorded_results)
            .all(|(f, (_, o))| f == o)
        {
            let _ = store.memo_revalidate(key, &recorded_results);
        }
        found.iter().map(TreeDigest::to_hex).collect()
    };
    let mut elements = Vec::with_capacity(recorded.elements.len());
    for ((name, hex, _), output) in recorded.elements.into_iter().zip(outputs) {
        elements.push(ElementReport {
            key: Some(hex),
            output: Some(output),
            ..ElementReport::new(name, crate::ElementStatus::Cached)
        });
    }
    let report = BuildReport {
        cached: elements.len(),
        elements,
        built: 0,
        pulled: 0,
        failed: 0,
        skipped: 0,
        remote: None,
    };
    Some((report, recorded.targets))
}

/// Records the memo of a successful build that ran no step (everything was
/// cached or pulled) and whose load started at `started`. A build that ran
/// steps records nothing: walking large local sources for their identities
/// would cost every such build (a 20,000-file local source: ~10 ms per step
/// of a 30-step build), while the first no-op after it pays that walk once
/// (it walks them for their digests anyway).
pub fn record(
    store: &Store,
    key: &Digest,
    loaded: &Loaded,
    targets: &[PathBuf],
    config: Option<&Path>,
    report: &BuildReport,
    started: SystemTime,
) {
    if report.failed > 0 || report.skipped > 0 || report.built > 0 {
        return;
    }
    let Some(elements) = report
        .elements
        .iter()
        .map(|e| Some((e.name.clone(), e.key.clone()?, e.output.clone()?)))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let Some(results) = elements
        .iter()
        .map(|(_, k, o)| Some((ActionKey::from_hex(k).ok()?, TreeDigest::from_hex(o).ok()?)))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let names = loaded
        .targets
        .iter()
        .map(|t| loaded.element(*t).name.clone())
        .collect();
    let Ok(payload) = serde_json::to_vec(&Recorded {
        targets: names,
        elements,
    }) else {
        return;
    };
    // Best effort: a memo that cannot be written only costs the next no-op
    // its full load.
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut files: Vec<Watched> = loaded
        .inputs(targets, &cwd)
        .into_iter()
        .map(|i| match i.read {
            Read::Entry => Watched::entry(i.path),
            // a patch: the keys hashed it, so it was there
            Read::File => Watched {
                path: i.path,
                follow: true,
                content: None,
                seen: None,
                existed: true,
            },
            Read::Text { text, seen } => Watched {
                path: i.path,
                follow: true,
                content: Some(Digest::of_bytes(text.as_bytes())),
                // a file that changed while it was read is never trusted
                seen: Some(seen.map_or(Seen::CHANGED, |s| Seen {
                    dev: s.dev,
                    ino: s.ino,
                    size: s.size,
                    mtime_ns: s.mtime_ns,
                    ctime_ns: s.ctime_ns,
                })),
                existed: true,
            },
        })
        .collect();
    // the user configuration sets project options (BuildStream projects)
    files.extend(config.map(|c| Watched {
        path: c.to_path_buf(),
        follow: true,
        content: None,
        seen: None,
        existed: false,
    }));
    let _ = store.memo_put(key, &files, started, &payload, &results);
}
