//! `cas workspace open|list|reset|close`: edit an element's sources in
//! place (spec/cli.md, "Workspaces"). The state is the project's
//! `.cas/workspaces.json` (crate cas-format, `workspaces`); builds of an
//! element with an open workspace take its directory as the sources and
//! keep their build directory between builds (crate cas-builder,
//! `workspace`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cas_format::workspaces::{Workspace, Workspaces};
use cas_format::Loaded;
use cas_store::Store;

use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum WorkspaceCommand {
    /// Stage an element's sources (patches applied) into DIR, writable, and build from there
    Open {
        /// Element file or element name
        element: PathBuf,
        /// Where [default: workspaces/<element name> in the project]
        dir: Option<PathBuf>,
    },
    /// The open workspaces of the project
    List {
        /// An element of the project, or a directory in it [default: .]
        #[arg(default_value = ".")]
        project: PathBuf,
    },
    /// Stage the element's sources into its workspace again (edits are lost), and forget its build directory
    Reset { element: PathBuf },
    /// Build the element from its sources again
    Close {
        element: PathBuf,
        /// Also delete the workspace directory
        #[arg(long)]
        remove_dir: bool,
    },
}

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::failed(miette::miette!("{e}"))
}

/// Load the element with every element's own sources (its workspace set
/// aside: reset and close work even when the directory is gone), and the
/// project's workspaces.
fn load(global: &Session, element: &Path) -> Result<(Loaded, Workspaces, String), Failure> {
    let loaded = crate::commands::load::load_ignoring_workspaces(global, &[element.to_path_buf()])?;
    let ws = Workspaces::read(&loaded.project.root).map_err(|e| {
        eprintln!("{:?}", miette::Report::new(e));
        Failure::Silent(2)
    })?;
    let name = loaded.element(loaded.targets[0]).name.clone();
    Ok((loaded, ws, name))
}

/// Fetch the element's sources and stage them into `dir`.
fn stage(
    global: &Session,
    store: &Store,
    loaded: &Loaded,
    sources: &[cas_builder::sources::Source],
    dir: &Path,
) -> Result<(), Failure> {
    let mirrors = global.mirrors(&loaded.project)?;
    let fetcher = cas_builder::run::fetcher_for(store, &mirrors).map_err(failed)?;
    let cache = cas_builder::sources::StoreSourceCache { store };
    for s in sources {
        cas_builder::sources::fetch_once(
            s,
            &fetcher,
            &cache,
            false,
            &cas_builder::sources::NoProgress,
        )
        .map_err(|e| failed(format!("{}: {e}", cas_builder::sources::describe(s))))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    let git = cas_builder::sources::git_dir(store);
    for s in sources {
        cas_builder::sources::stage_source(s, &cache, &git, dir).map_err(|e| {
            failed(format!(
                "cannot stage {} into {}: {e}",
                cas_builder::sources::describe(s),
                dir.display()
            ))
        })?;
    }
    // writable by its owner: the user edits these files
    make_writable(dir).map_err(|e| failed(format!("cannot make {} writable: {e}", dir.display())))
}

fn make_writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(dir) {
        let e = e.map_err(std::io::Error::other)?;
        if e.file_type().is_symlink() {
            continue;
        }
        let mode = e
            .metadata()
            .map_err(std::io::Error::other)?
            .permissions()
            .mode();
        if mode & 0o200 == 0 {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode | 0o200))?;
        }
    }
    Ok(())
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

fn forget_build_dir(store: &Store, loaded: &Loaded, name: &str) {
    let state = cas_builder::workspace::state_dir(store.root(), &loaded.project.root, name);
    let _ = cas_builder::builddir::remove_all(&state);
}

pub(crate) fn run(global: &Session, cmd: WorkspaceCommand) -> CmdResult {
    match cmd {
        WorkspaceCommand::Open { element, dir } => open(global, &element, dir),
        WorkspaceCommand::List { project } => list(global, &project),
        WorkspaceCommand::Reset { element } => reset(global, &element),
        WorkspaceCommand::Close {
            element,
            remove_dir,
        } => close(global, &element, remove_dir),
    }
}

fn open(global: &Session, element: &Path, dir: Option<PathBuf>) -> CmdResult {
    let (loaded, mut ws, name) = load(global, element)?;
    if let Some(w) = ws.workspaces.get(&name) {
        return Err(Failure::invalid(miette::miette!(
            help = format!("`cas workspace close {name}` first, or `cas workspace reset {name}` to start it over"),
            "{name} already has a workspace: {}",
            w.path.display()
        )));
    }
    let sources = loaded.element(loaded.targets[0]).sources.clone();
    if sources.is_empty() {
        return Err(Failure::invalid(miette::miette!(
            "{name} has no sources: there is nothing to edit"
        )));
    }
    let cwd = std::env::current_dir().map_err(failed)?;
    let dir = match dir {
        Some(d) => cwd.join(d),
        None => loaded
            .project
            .root
            .join("workspaces")
            .join(name.trim_end_matches(".yaml").trim_end_matches(".bst")),
    };
    if dir.exists() && !is_empty_dir(&dir) {
        return Err(Failure::invalid(miette::miette!(
            help = "give an empty or new directory",
            "{} exists and is not empty",
            dir.display()
        )));
    }
    let store = global.store()?;
    stage(global, &store, &loaded, &sources, &dir)?;
    let dir = std::fs::canonicalize(&dir).map_err(failed)?;
    forget_build_dir(&store, &loaded, &name);
    ws.workspaces
        .insert(name.clone(), Workspace { path: dir.clone() });
    ws.write(&loaded.project.root).map_err(|e| {
        failed(format!(
            "cannot write {}: {e}",
            Workspaces::file(&loaded.project.root).display()
        ))
    })?;
    if global.json {
        crate::json::print(&serde_json::json!({"element": name, "path": dir}))?;
    } else {
        eprintln!("{name}: workspace open at {}", dir.display());
        eprintln!("  edit its files, then `cas build` anything above it; `cas workspace close {name}` when done");
    }
    Ok(ExitCode::SUCCESS)
}

fn list(global: &Session, project: &Path) -> CmdResult {
    let start = if project.is_file() {
        project.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        project.to_path_buf()
    };
    let cwd = std::env::current_dir().map_err(failed)?;
    let file = cas_format::project::find_project_file(&cwd.join(&start)).ok_or_else(|| {
        Failure::invalid(miette::miette!(
            "no project.yaml or project.conf in {} or above",
            start.display()
        ))
    })?;
    let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let ws = Workspaces::read(&root).map_err(|e| {
        eprintln!("{:?}", miette::Report::new(e));
        Failure::Silent(2)
    })?;
    if global.json {
        let rows: Vec<serde_json::Value> = ws
            .workspaces
            .iter()
            .map(|(n, w)| serde_json::json!({"element": n, "path": w.path, "exists": w.path.is_dir()}))
            .collect();
        crate::json::print(&serde_json::json!({ "workspaces": rows }))?;
    } else {
        for (n, w) in &ws.workspaces {
            let gone = if w.path.is_dir() { "" } else { "  (gone)" };
            println!("{n}  {}{gone}", w.path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The workspace of `name`, or an error saying there is none.
fn open_one<'a>(ws: &'a Workspaces, name: &str) -> Result<&'a Workspace, Failure> {
    ws.workspaces.get(name).ok_or_else(|| {
        Failure::invalid(miette::miette!(
            help = format!("`cas workspace open {name}` opens one"),
            "{name} has no open workspace"
        ))
    })
}

fn reset(global: &Session, element: &Path) -> CmdResult {
    let (loaded, ws, name) = load(global, element)?;
    let w = open_one(&ws, &name)?.clone();
    let store = global.store()?;
    if w.path.exists() {
        cas_builder::builddir::remove_all(&w.path)
            .map_err(|e| failed(format!("cannot empty {}: {e}", w.path.display())))?;
    }
    let sources = loaded.element(loaded.targets[0]).sources.clone();
    stage(global, &store, &loaded, &sources, &w.path)?;
    forget_build_dir(&store, &loaded, &name);
    eprintln!(
        "{name}: workspace {} staged from its sources again",
        w.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn close(global: &Session, element: &Path, remove_dir: bool) -> CmdResult {
    let (loaded, mut ws, name) = load(global, element)?;
    let w = open_one(&ws, &name)?.clone();
    ws.workspaces.remove(&name);
    ws.write(&loaded.project.root).map_err(|e| {
        failed(format!(
            "cannot write {}: {e}",
            Workspaces::file(&loaded.project.root).display()
        ))
    })?;
    let store = global.store()?;
    forget_build_dir(&store, &loaded, &name);
    if remove_dir && w.path.exists() {
        cas_builder::builddir::remove_all(&w.path)
            .map_err(|e| failed(format!("cannot remove {}: {e}", w.path.display())))?;
    }
    eprintln!(
        "{name}: workspace closed{}",
        if remove_dir {
            " and its directory removed"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
