//! `cas source add` and `cas source track`: maintaining an element's
//! sources (spec/cli.md, spec/sources.md); and the helpers `cas fetch`
//! shares (a fetcher with the user's mirrors, how a source is named).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cas_builder::sources::StoreSourceCache;
use cas_builder::sources::{Algorithm, Fetcher, Mirrors, Source, SourceError, SourceKind, Tracked};
use cas_store::{IngestMode, Store};

use crate::commands::fetch::Out;
use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SourceCommand {
    /// Put files into the source cache by hand (for machines without network); prints their checksums
    Add(AddArgs),
    /// Ask upstream for the current checksum (tar, remote, deb) or commit (git) and write it into the element file
    Track(TrackArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// Files to add
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TrackArgs {
    /// Element file or element name
    pub target: PathBuf,
    /// Only this source (1 is the first of `sources:`) [default: every source with an upstream]
    #[arg(long, value_name = "N")]
    pub source: Option<usize>,
}

// ---------------------------------------------------------------- configuration

pub(crate) fn fetcher(store: &Store, mirrors: &Mirrors) -> Result<Fetcher, Failure> {
    cas_builder::run::fetcher_for(store, mirrors).map_err(Failure::error)
}

// ---------------------------------------------------------------- what to fetch

/// A short description of a source: kind and URL as written (or path).
pub(crate) fn describe(s: &Source) -> String {
    cas_builder::sources::describe(s)
}

// ---------------------------------------------------------------- parallel fetching

fn run_add(global: &Session, args: AddArgs) -> CmdResult {
    let store = global.store()?;
    let mut rows = Vec::new();
    for file in &args.files {
        if !file.is_file() {
            return Err(Failure::invalid(miette::miette!(
                "{}: not a file",
                file.display()
            )));
        }
        let sha =
            cas_builder::sources::hash_file(Algorithm::Sha256, file).map_err(Failure::error)?;
        let (blob, size) = store.put_file(file, IngestMode::Copy).map_err(|e| {
            Failure::failed(miette::miette!(
                "cannot add {} to the store: {e}",
                file.display()
            ))
        })?;
        let b3 = blob.to_hex();
        for id in [format!("sha256:{}", sha.hex()), format!("blake3:{b3}")] {
            store.source_put(&id, &blob).map_err(|e| {
                Failure::failed(miette::miette!(
                    "cannot index {} as {id}: {e}",
                    file.display()
                ))
            })?;
        }
        if !global.json {
            println!(
                "{}\n  sha256: {}\n  blake3: {b3}",
                file.display(),
                sha.hex()
            );
        }
        rows.push(
            serde_json::json!({"file": file, "size": size, "sha256": sha.hex(), "blake3": b3}),
        );
    }
    if global.json {
        crate::json::print(&serde_json::json!({ "files": rows }))?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- cas source track

/// The YAML key that pins a source, and its current value.
fn pinned(s: &Source) -> Option<(&'static str, String)> {
    match &s.kind {
        SourceKind::Tar { checksum, .. }
        | SourceKind::Remote { checksum, .. }
        | SourceKind::Deb { checksum, .. } => {
            Some((checksum.algorithm(), checksum.hex().to_owned()))
        }
        SourceKind::Git { commit, .. } => Some(("ref", commit.clone())),
        // a crate list is pinned crate by crate (not tracked)
        SourceKind::Local { .. } | SourceKind::Patch { .. } | SourceKind::Cargo { .. } => None,
    }
}

/// The new pinned value of `s`, keeping its checksum algorithm.
fn track_one(
    s: &Source,
    fetcher: &Fetcher,
    cache: &StoreSourceCache,
    out: &Out,
) -> Result<String, SourceError> {
    let bar = out.bar(&describe(s));
    let result = match &s.kind {
        SourceKind::Tar {
            url, checksum: c, ..
        }
        | SourceKind::Remote {
            url, checksum: c, ..
        }
        | SourceKind::Deb {
            url, checksum: c, ..
        } if c.algorithm() == "blake3" => {
            let download = fetcher.fetch_unverified(url, Algorithm::Blake3, &bar)?;
            cas_builder::sources::SourceCache::insert(cache, &download.checksum, download.path())?;
            Ok(download.checksum.hex().to_owned())
        }
        _ => match cas_builder::sources::track(s, fetcher, Some(cache), &bar)? {
            Tracked::Checksum(c) => Ok(c.hex().to_owned()),
            Tracked::Commit(c) => Ok(c),
        },
    };
    bar.finish_and_clear();
    result
}

fn run_track(global: &Session, args: TrackArgs) -> CmdResult {
    let loaded = load_or_report(global, std::slice::from_ref(&args.target))?;
    if loaded.project.dialect == cas_format::Dialect::BuildStream {
        // its sources as written are not cas's (`ref`, patch queues,
        // project.refs): editing them by cas's rules could change another one
        return Err(Failure::invalid(miette::miette!(
            help =
                "BuildStream's own `bst source track` updates its refs; cas reads them as they are",
            "cas source track does not edit BuildStream elements ({})",
            loaded.element(loaded.targets[0]).name
        )));
    }
    let mirrors = global.mirrors(&loaded.project)?;
    let store = global.store()?;
    let fetcher = fetcher(&store, &mirrors)?;
    let cache = StoreSourceCache { store: &store };
    let el = loaded.element(loaded.targets[0]);
    let indices: Vec<usize> = match args.source {
        Some(0) => {
            return Err(Failure::invalid(miette::miette!(
                "--source counts from 1 (the first source)"
            )))
        }
        Some(n) if n > el.sources.len() => {
            return Err(Failure::invalid(miette::miette!(
                "{} has {} source(s); there is no source {n}",
                el.name,
                el.sources.len()
            )))
        }
        Some(n) => {
            let s = &el.sources[n - 1];
            if matches!(s.kind, SourceKind::Local { .. } | SourceKind::Patch { .. }) {
                return Err(Failure::invalid(miette::miette!(
                    "source {n} of {} ({}) has nothing to track",
                    el.name,
                    describe(s)
                )));
            }
            vec![n - 1]
        }
        None => (0..el.sources.len())
            .filter(|&i| match &el.sources[i].kind {
                SourceKind::Tar { .. } | SourceKind::Remote { .. } | SourceKind::Deb { .. } => true,
                SourceKind::Git { track, .. } => track.is_some(),
                _ => false,
            })
            .collect(),
    };
    if indices.is_empty() {
        eprintln!(
            "{}: no source to track (tar, remote, deb, or git with `track:`)",
            el.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    let text = std::fs::read_to_string(&el.file)
        .map_err(|e| Failure::failed(miette::miette!("cannot read {}: {e}", el.file.display())))?;
    let out = Out::new();
    let mut new_text = text.clone();
    let mut changes = Vec::new();
    let mut failed = 0;
    for i in indices {
        let s = &el.sources[i];
        let Some((key, old)) = pinned(s) else {
            continue;
        };
        match track_one(s, &fetcher, &cache, &out) {
            Ok(new) => {
                if new != old {
                    let edited =
                        cas_format::edit::set_source_field(&el.file, &new_text, i, key, &new)
                            .map_err(|e| Failure::failed(miette::Report::new(*e)))?;
                    new_text = edited.text;
                }
                if !global.json {
                    let verb = if new == old { "unchanged" } else { "updated" };
                    println!(
                        "{}: source {} ({}): {key} {old} → {new} ({verb})",
                        el.name,
                        i + 1,
                        describe(s)
                    );
                }
                changes
                    .push(serde_json::json!({"source": i + 1, "key": key, "old": old, "new": new}));
            }
            Err(e) => {
                failed += 1;
                eprintln!(
                    "error: {}: source {} ({}): {e}",
                    el.name,
                    i + 1,
                    describe(s)
                );
            }
        }
    }
    if new_text != text {
        write_atomically(&el.file, &new_text).map_err(|e| {
            Failure::failed(miette::miette!("cannot write {}: {e}", el.file.display()))
        })?;
    }
    if global.json {
        crate::json::print(
            &serde_json::json!({"element": el.name, "file": el.file, "sources": changes}),
        )?;
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Replace `path` with `text` through a temporary file in the same directory
/// (keeping the file's permissions), so that a crash never leaves half a file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let perms = std::fs::metadata(path)?.permissions();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.cas-track-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, perms)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn run_source(global: &Session, cmd: SourceCommand) -> CmdResult {
    match cmd {
        SourceCommand::Add(args) => run_add(global, args),
        SourceCommand::Track(args) => run_track(global, args),
    }
}
