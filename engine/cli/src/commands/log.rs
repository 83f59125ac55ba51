//! `cas log`: the build log stored with an element's result.

use std::path::PathBuf;
use std::process::ExitCode;

use cas_builder::builddir::FailedBuild;

use crate::commands::checkout::cached_output;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// Element file or element name (its result's log, or the log of its
    /// last failed build with the same key)
    #[arg(required_unless_present = "failed", conflicts_with = "failed")]
    pub target: Option<PathBuf>,
    /// The log of the last build that failed, whatever the element
    #[arg(long)]
    pub failed: bool,
    /// Follow the log of the element's build while it runs (another `cas
    /// build`): wait for it to start, print its lines as they come, end
    /// when it ends (exit 0 when it built, 1 when it failed)
    #[arg(long, short = 'f', conflicts_with = "failed")]
    pub follow: bool,
}

/// Prints a failed build's kept log, with a line saying what it is.
fn print_failed(failed: &FailedBuild) -> CmdResult {
    let log = std::fs::read(&failed.log).map_err(|e| {
        Failure::failed(miette::miette!("cannot read {}: {e}", failed.log.display()))
    })?;
    eprintln!(
        "{}: the log of its failed build (key {}), kept in {}",
        failed.element,
        &failed.key[..12.min(failed.key.len())],
        failed.dir.display()
    );
    let text = cas_builder::builddir::log_for_people(&String::from_utf8_lossy(&log));
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_log(global: &Session, args: LogArgs) -> CmdResult {
    if let (true, Some(target)) = (args.follow, &args.target) {
        return follow(global, target);
    }
    let Some(target) = args.target else {
        let store = global.store()?;
        let failed = FailedBuild::load(store.root())
            .filter(|f| f.log.is_file())
            .ok_or_else(|| {
                Failure::failed(miette::miette!("no failed build is kept in this store"))
            })?;
        return print_failed(&failed);
    };
    let (store, loaded, row) =
        match cached_output(global, &target, cas_builder::record::Lookup::Look) {
            Ok(found) => found,
            Err(not_built) => {
                // not built: the log of its last failed build with this key, if kept
                let loaded =
                    crate::commands::load::load_or_report(global, std::slice::from_ref(&target))?;
                let store = global.store()?;
                let plan = cas_builder::states(
                    &store,
                    &loaded,
                    &loaded.targets,
                    &global.mirrors(&loaded.project)?,
                    cas_builder::record::Lookup::Look,
                )
                .map_err(Failure::error)?;
                let id = loaded.targets[0];
                let failed = plan
                    .iter()
                    .find(|p| p.id == id)
                    .and_then(|p| p.key)
                    .and_then(|k| FailedBuild::of_key(store.root(), &k.to_hex()));
                return match failed {
                    Some(f) => print_failed(&f),
                    None => Err(not_built),
                };
            }
        };
    let key = row.key.expect("cached rows have keys");
    let result = store
        .action_peek(&key)
        .map_err(Failure::error)?
        .ok_or_else(|| {
            Failure::failed(miette::miette!(
                "no result for {}",
                loaded.element(row.id).name
            ))
        })?;
    let log = store.read_blob(&result.log).map_err(Failure::error)?;
    use std::io::Write;
    let _ = std::io::stdout().write_all(&log);
    Ok(ExitCode::SUCCESS)
}

/// `cas log -f X`: the key of X (once what it stages is built), then the
/// log of the running step with that key (`STORE/builds/<X>-<key>-...`),
/// printed as it grows, until the step ends.
fn follow(global: &Session, target: &std::path::Path) -> CmdResult {
    use std::io::{Read, Seek, Write};
    let loaded = crate::commands::load::load_or_report(global, &[target.to_path_buf()])?;
    let store = global.store()?;
    let mirrors = global.mirrors(&loaded.project)?;
    let id = loaded.targets[0];
    let name = loaded.element(id).name.clone();
    let err = |e: &dyn std::fmt::Display| Failure::failed(miette::miette!("{e}"));
    let tick = std::time::Duration::from_millis(200);
    let mut said_waiting = false;
    // its key is known once everything it stages is built
    let key = loop {
        let plan = cas_builder::states(
            &store,
            &loaded,
            &loaded.targets,
            &mirrors,
            cas_builder::record::Lookup::Look,
        )
        .map_err(|e| err(&e))?;
        if let Some(k) = plan.iter().find(|p| p.id == id).and_then(|p| p.key) {
            break k;
        }
        if !said_waiting {
            eprintln!("{name}: waiting for what it stages to be built (Ctrl-C to stop)");
            said_waiting = true;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    let hex = key.to_hex();
    let prefix = format!(
        "{}-{}-",
        cas_builder::builddir::safe_name(&name),
        &hex[..16]
    );
    let builds = store.layout().builds();
    let running = || -> Option<PathBuf> {
        std::fs::read_dir(&builds)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            .map(|e| e.path())
    };
    let mut out = std::io::stdout();
    let mut printed: u64 = 0;
    let mut following: Option<PathBuf> = None;
    loop {
        if following.is_none() {
            following = running();
            if following.is_some() {
                eprintln!("{name}: following its build (key {})", &hex[..12]);
            }
        }
        match &following {
            Some(dir) => {
                if let Ok(mut f) = std::fs::File::open(dir.join("build.log")) {
                    if f.seek(std::io::SeekFrom::Start(printed)).is_ok() {
                        let mut buf = Vec::new();
                        if let Ok(n) = f.read_to_end(&mut buf) {
                            printed += n as u64;
                            let _ = out.write_all(&buf);
                            let _ = out.flush();
                        }
                    }
                }
                if !dir.exists()
                    || FailedBuild::of_key(store.root(), &hex).is_some_and(|f| f.dir == *dir)
                {
                    break;
                }
            }
            None if cas_builder::record::hit(&store, &key, false)
                .map_err(|e| err(&e))?
                .is_some() =>
            {
                break;
            }
            None if !said_waiting => {
                eprintln!("{name}: waiting for its build to start (Ctrl-C to stop)");
                said_waiting = true;
            }
            None => {}
        }
        std::thread::sleep(tick);
    }
    // how it ended: a result (recorded in the background, a moment after
    // its directory went), or a failure
    let mut result = None;
    for _ in 0..50 {
        result = cas_builder::record::hit(&store, &key, false).map_err(|e| err(&e))?;
        if result.is_some() || FailedBuild::of_key(store.root(), &hex).is_some() {
            break;
        }
        std::thread::sleep(tick);
    }
    if let Some(r) = result {
        // the stored log: what was not read before its directory went
        let log = store.read_blob(&r.log).map_err(|e| err(&e))?;
        let from = if following.is_some() {
            usize::try_from(printed).unwrap_or(usize::MAX)
        } else {
            0
        };
        let _ = out.write_all(log.get(from..).unwrap_or_default());
        eprintln!("{name}: built");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(f) = FailedBuild::of_key(store.root(), &hex) {
        // what the failed build wrote after the last read
        if let Ok(log) = std::fs::read(&f.log) {
            let rest = log
                .get(usize::try_from(printed).unwrap_or(usize::MAX)..)
                .unwrap_or_default();
            let _ = out.write_all(rest);
        }
        eprintln!(
            "{name}: its build failed (`cas log {}` shows the whole log)",
            target.display()
        );
        return Ok(ExitCode::from(1));
    }
    eprintln!("{name}: its build ended without a result (interrupted)");
    Ok(ExitCode::from(1))
}
