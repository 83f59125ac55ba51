//! `cas store ...`: low-level content store operations (spec/store.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cas_store::{
    parse_size, ActionKey, ActionResult, BlobDigest, GcOptions, IngestMode, Method, Store,
    StoreError, TreeDigest,
};

use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum StoreCommand {
    /// Store a directory; print its tree digest
    Ingest {
        dir: PathBuf,
        /// Move the files into the store instead of copying (the directory is consumed)
        #[arg(long = "move")]
        move_files: bool,
    },
    /// Write a tree into a directory (copies or reflinks)
    Checkout {
        digest: String,
        dir: PathBuf,
        /// Hardlink into the store's read-only objects (write bits are dropped)
        #[arg(long)]
        hardlinks: bool,
    },
    /// Write a tree as a deterministic tar (.tar.xz/.txz: compressed)
    Export {
        digest: String,
        file: PathBuf,
        /// mtime of every entry (unix seconds)
        #[arg(long, default_value_t = 0)]
        mtime: u64,
    },
    /// Store the content of a tar or tar.xz; print its tree digest
    Import { file: PathBuf },
    /// Re-hash every object; report what is corrupt or missing (exit 1 if problems remain)
    Verify {
        /// Remove corrupt objects and the results that reference them
        #[arg(long)]
        repair: bool,
        /// Also re-check every action result against its manifest (it must hash to the key)
        #[arg(long)]
        deep: bool,
    },
    /// Remove what nothing references; evict least recently used results beyond a quota
    Gc {
        /// Size quota, e.g. 10G, 500M, 1024
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        /// Never evict results created less than this many seconds ago
        #[arg(long, value_name = "SECONDS")]
        keep_younger_than: Option<u64>,
        /// Only say what would go
        #[arg(long)]
        dry_run: bool,
    },
    /// Print store statistics
    Stats,
    /// List every recorded action result: key, output, log, manifest
    Results,
    /// Protect a tree from gc under a name
    Pin { name: String, digest: String },
    /// Remove a pin
    Unpin { name: String },
    /// List pins
    Pins,
    /// Merge trees (LABEL=DIGEST, in order) into one; print the merged digest
    Merge {
        #[arg(required = true, value_name = "LABEL=DIGEST")]
        trees: Vec<String>,
    },
    /// Materialise the read-only view of a tree; print its path
    View { digest: String },
    /// List the entries of a tree
    Ls { digest: String },
    /// Record an action result (for tests and tools)
    #[command(hide = true)]
    ActionPut {
        key: String,
        output: String,
        #[arg(long)]
        log: Option<String>,
    },
    /// Look up an action result (for tests and tools)
    #[command(hide = true)]
    ActionGet { key: String },
}

fn failed(e: StoreError) -> Failure {
    Failure::error(e)
}

fn invalid(msg: String) -> Failure {
    Failure::invalid(miette::miette!("{msg}"))
}

fn tree_arg(s: &str) -> Result<TreeDigest, Failure> {
    s.parse::<TreeDigest>().map_err(|e| invalid(format!("{e}")))
}

/// A tree digest that must be in the store (exit 2 when it is not).
fn existing_tree(store: &Store, s: &str) -> Result<TreeDigest, Failure> {
    let d = tree_arg(s)?;
    match store.get_tree(&d) {
        Ok(_) => Ok(d),
        Err(StoreError::Missing { .. }) => Err(invalid(format!(
            "tree {d} is not in the store {}",
            store.root().display()
        ))),
        Err(StoreError::MalformedTree { .. }) => Err(invalid(format!("{d} is not a tree"))),
        Err(e) => Err(failed(e)),
    }
}

fn existing_dir(dir: &Path) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(invalid(format!("{}: no such directory", dir.display())));
    }
    Ok(())
}

fn print_json(v: &serde_json::Value) {
    // stdout is gone when this fails: nothing more to say
    let _ = crate::json::print(v);
}

pub(crate) fn run(global: &Session, cmd: StoreCommand) -> CmdResult {
    match cmd {
        StoreCommand::Ingest { dir, move_files } => ingest(global, dir, move_files),
        StoreCommand::Checkout {
            digest,
            dir,
            hardlinks,
        } => checkout(global, digest, dir, hardlinks),
        StoreCommand::Export {
            digest,
            file,
            mtime,
        } => export(global, digest, file, mtime),
        StoreCommand::Import { file } => import(global, file),
        StoreCommand::Verify { repair, deep } => verify(global, repair, deep),
        StoreCommand::Gc {
            max_size,
            keep_younger_than,
            dry_run,
        } => gc(global, max_size, keep_younger_than, dry_run),
        StoreCommand::Results => results(global),
        StoreCommand::Stats => stats(global),
        StoreCommand::Pin { name, digest } => pin(global, name, digest),
        StoreCommand::Unpin { name } => unpin(global, name),
        StoreCommand::Pins => pins(global),
        StoreCommand::Merge { trees } => merge(global, trees),
        StoreCommand::View { digest } => view(global, digest),
        StoreCommand::Ls { digest } => ls(global, digest),
        StoreCommand::ActionPut { key, output, log } => action_put(global, key, output, log),
        StoreCommand::ActionGet { key } => action_get(global, key),
    }
}

fn ingest(global: &Session, dir: PathBuf, move_files: bool) -> CmdResult {
    existing_dir(&dir)?;
    let store = global.store()?;
    let mode = if move_files {
        IngestMode::Move
    } else {
        IngestMode::Copy
    };
    let r = store.ingest(&dir, mode).map_err(failed)?;
    if global.json {
        print_json(&serde_json::json!(r));
    } else {
        println!("{}", r.tree);
        eprintln!(
            "{} files, {} bytes, {} new objects",
            r.files, r.bytes, r.new_objects
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn checkout(global: &Session, digest: String, dir: PathBuf, hardlinks: bool) -> CmdResult {
    let store = global.store()?;
    let d = existing_tree(&store, &digest)?;
    if dir.exists() && !(dir.is_dir() && dir.read_dir().is_ok_and(|mut r| r.next().is_none())) {
        return Err(invalid(format!(
            "{}: exists and is not an empty directory",
            dir.display()
        )));
    }
    let method = if hardlinks {
        Method::Hardlink
    } else {
        Method::ReflinkOrCopy
    };
    let used = store.materialize(&d, &dir, method).map_err(failed)?;
    if global.json {
        print_json(&serde_json::json!({"tree": d, "dir": dir, "method": used}));
    } else {
        eprintln!("checked out {d} into {} ({used})", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn export(global: &Session, digest: String, file: PathBuf, mtime: u64) -> CmdResult {
    let store = global.store()?;
    let d = existing_tree(&store, &digest)?;
    store
        .export_tar_with_mtime(&d, &file, mtime)
        .map_err(failed)?;
    if global.json {
        print_json(&serde_json::json!({"tree": d, "file": file}));
    }
    Ok(ExitCode::SUCCESS)
}

fn import(global: &Session, file: PathBuf) -> CmdResult {
    if !file.is_file() {
        return Err(invalid(format!("{}: no such file", file.display())));
    }
    let store = global.store()?;
    let d = store.import_tar(&file).map_err(failed)?;
    if global.json {
        print_json(&serde_json::json!({"tree": d}));
    } else {
        println!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(global: &Session, repair: bool, deep: bool) -> CmdResult {
    let store = global.store()?;
    let r = store.verify_with(repair, deep).map_err(failed)?;
    if global.json {
        print_json(&serde_json::json!(r));
    } else {
        for c in &r.corrupt {
            println!(
                "corrupt object {c}{}",
                if repair { " (removed)" } else { "" }
            );
        }
        // an object found corrupt is said once (with --repair it is removed,
        // and then also missing for what references it)
        for m in r.missing.iter().filter(|m| !r.corrupt.contains(m)) {
            println!("missing object {m}");
        }
        for p in &r.bad_variants {
            println!("bad mode variant {}", p.display());
        }
        for p in &r.bad_modes {
            println!("object with a wrong mode {}", p.display());
        }
        for k in &r.broken_results {
            println!(
                "broken action result {k}{}",
                if repair { " (removed)" } else { "" }
            );
        }
        for k in &r.mismatched_results {
            println!(
                "action result {k} does not match its manifest{}",
                if repair { " (removed)" } else { "" }
            );
        }
        for p in &r.broken_pins {
            println!("broken pin {p}");
        }
        for s in &r.broken_sources {
            println!(
                "broken source entry {s}{}",
                if repair { " (removed)" } else { "" }
            );
        }
        eprintln!(
            "{} objects ({}) checked: {}",
            r.objects_checked,
            human_size(r.bytes_checked),
            match (r.is_consistent(), repair) {
                (true, true) if !(r.corrupt.is_empty()
                    && r.missing.is_empty()
                    && r.broken_results.is_empty()
                    && r.mismatched_results.is_empty()
                    && r.broken_sources.is_empty()) =>
                    "repaired as said above: store is consistent",
                (true, _) => "store is consistent",
                (false, true) => "problems found; what could be repaired was",
                (false, false) =>
                    "problems found (`cas store verify --repair` removes what is corrupt and the results that use it; they build or pull again)",
            }
        );
    }
    Ok(if r.is_consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn gc(
    global: &Session,
    max_size: Option<String>,
    keep_younger_than: Option<u64>,
    dry_run: bool,
) -> CmdResult {
    let max_size = match max_size {
        Some(s) => Some(parse_size(&s).map_err(|e| invalid(e.to_string()))?),
        None => None,
    };
    let store = global.store()?;
    let opts = GcOptions {
        max_size,
        keep_younger_than: keep_younger_than.map(std::time::Duration::from_secs),
        dry_run,
    };
    let r = store.gc(&opts).map_err(failed)?;
    if global.json {
        print_json(&serde_json::json!(r));
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        for k in &r.results_removed {
            println!("{verb} result {k}");
        }
        for s in &r.sources_removed {
            println!("{verb} source {s}");
        }
        println!(
            "{verb} {} objects ({}), {} views, {} failed build directories ({}), {} temporary files, {} remembered remote answers; objects {} -> {}",
            r.objects_removed,
            human_size(r.bytes_freed),
            r.views_removed,
            r.builds_removed,
            human_size(r.bytes_freed_builds),
            r.tmp_removed,
            r.remote_answers_removed,
            human_size(r.size_before),
            // what the objects would come to, dry run or not
            human_size(r.size_before.saturating_sub(r.bytes_freed))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn results(global: &Session) -> CmdResult {
    let store = global.store()?;
    let rows = store.action_list().map_err(failed)?;
    if global.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(k, r)| {
                serde_json::json!({"key": k, "output": r.output, "log": r.log,
                    "manifest": r.manifest, "created": r.created, "duration_ms": r.duration_ms})
            })
            .collect();
        print_json(&serde_json::json!({ "results": list }));
    } else {
        for (k, r) in &rows {
            println!("{k} {}", r.output);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(global: &Session) -> CmdResult {
    let store = global.store()?;
    let s = store.stats().map_err(failed)?;
    if global.json {
        print_json(&serde_json::json!(s));
    } else {
        println!("store      {}", store.root().display());
        println!("objects    {} ({} mode variants)", s.objects, s.variants);
        println!("bytes      {} ({})", human_size(s.bytes), s.bytes);
        println!("results    {}", s.results);
        println!("pins       {}", s.pins);
        println!("sources    {}", s.sources);
        println!("views      {}", s.views);
        println!("tmp        {}", s.tmp_entries);
    }
    Ok(ExitCode::SUCCESS)
}

fn pin(global: &Session, name: String, digest: String) -> CmdResult {
    let store = global.store()?;
    let d = existing_tree(&store, &digest)?;
    store.pin(&name, &d).map_err(failed)?;
    Ok(ExitCode::SUCCESS)
}

fn unpin(global: &Session, name: String) -> CmdResult {
    let store = global.store()?;
    if !store.unpin(&name).map_err(failed)? {
        return Err(invalid(format!("no pin named {name:?}")));
    }
    Ok(ExitCode::SUCCESS)
}

fn pins(global: &Session) -> CmdResult {
    let store = global.store()?;
    let pins = store.pins().map_err(failed)?;
    if global.json {
        let v: Vec<_> = pins
            .iter()
            .map(|(n, d)| serde_json::json!({"name": n, "tree": d}))
            .collect();
        print_json(&serde_json::json!(v));
    } else {
        for (n, d) in pins {
            println!("{d} {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn merge(global: &Session, trees: Vec<String>) -> CmdResult {
    let store = global.store()?;
    let mut list = Vec::new();
    for t in &trees {
        let Some((label, digest)) = t.split_once('=') else {
            return Err(invalid(format!("{t:?}: expected LABEL=DIGEST")));
        };
        list.push((label.to_string(), existing_tree(&store, digest)?));
    }
    let refs: Vec<(&str, TreeDigest)> = list.iter().map(|(l, d)| (l.as_str(), *d)).collect();
    let d = store.merge(&refs).map_err(failed)?;
    if global.json {
        print_json(&serde_json::json!({"tree": d}));
    } else {
        println!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}

fn view(global: &Session, digest: String) -> CmdResult {
    let store = global.store()?;
    let d = existing_tree(&store, &digest)?;
    let v = store.view(&d).map_err(failed)?;
    if global.json {
        print_json(&serde_json::json!({"tree": d, "path": v.path(), "built_with": v.built_with()}));
    } else {
        println!("{}", v.path().display());
        if let Some(m) = v.built_with() {
            eprintln!("built with {m}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ls(global: &Session, digest: String) -> CmdResult {
    let store = global.store()?;
    let d = existing_tree(&store, &digest)?;
    let entries = store.walk(&d).map_err(failed)?;
    for (path, e) in entries {
        let p = String::from_utf8_lossy(&path);
        match e.kind {
            cas_store::EntryKind::File { digest, size } => {
                println!("{:04o} file {digest} {size} {p:?}", e.mode);
            }
            cas_store::EntryKind::Dir { digest } => {
                println!("{:04o} dir  {digest} {p:?}", e.mode);
            }
            cas_store::EntryKind::Symlink { target } => {
                println!(
                    "{:04o} link {p:?} -> {:?}",
                    e.mode,
                    String::from_utf8_lossy(&target)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn action_put(global: &Session, key: String, output: String, log: Option<String>) -> CmdResult {
    let store = global.store()?;
    let key = key
        .parse::<ActionKey>()
        .map_err(|e| invalid(e.to_string()))?;
    let output = existing_tree(&store, &output)?;
    let log = match log {
        Some(l) => l
            .parse::<BlobDigest>()
            .map_err(|e| invalid(e.to_string()))?,
        None => store.put_bytes(b"").map_err(failed)?,
    };
    let manifest = store.put_bytes(b"").map_err(failed)?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let result = ActionResult {
        output,
        log,
        duration_ms: 0,
        created,
        manifest,
    };
    cas_builder::record::put_now(&store, &[(key, result)], &[]).map_err(Failure::error)?;
    Ok(ExitCode::SUCCESS)
}

fn action_get(global: &Session, key: String) -> CmdResult {
    let store = global.store()?;
    let key = key
        .parse::<ActionKey>()
        .map_err(|e| invalid(e.to_string()))?;
    match store.action_get(&key).map_err(failed)? {
        Some(r) => {
            print_json(&serde_json::json!(r));
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::from(1)),
    }
}

/// A size for people: `12.3 MiB` (binary units), `512 B`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
