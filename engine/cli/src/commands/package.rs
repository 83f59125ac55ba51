//! `cas checkout --format deb|ipk ELEMENT DIR [--deps]`: binary packages of
//! built outputs (crate `cas-package`, spec/cli.md). Each element is one
//! package: its name from the variable `package-name` (default: the element
//! name, `a/b.yaml` → `a-b`), its version from `package-version`, else
//! `version`, else `0+cas.` and 12 hex digits of its key; `Depends` names
//! its runtime dependencies (through stacks, which have no output) at their
//! exact versions. With `--deps`, the element and its whole runtime closure,
//! and a `Packages` index: a feed.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use cas_format::{ElementId, Loaded};
use cas_package::{Control, Format};
use cas_store::{ActionKey, EntryKind, Store, TreeDigest};

use crate::commands::checkout::CheckoutArgs;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::failed(miette::miette!("{e}"))
}

/// The elements `id` depends on at run time, stacks replaced by theirs.
fn runtime_deps(loaded: &Loaded, id: ElementId, out: &mut Vec<ElementId>) {
    let e = loaded.element(id);
    for d in e.depends.iter().chain(&e.runtime_depends) {
        if !cas_builder::kinds::of(loaded.element(*d)).caps().has_output {
            runtime_deps(loaded, *d, out);
        } else if !out.contains(d) {
            out.push(*d);
        }
    }
}

/// Whether any file of the tree is an ELF file (else the package is `all`).
fn has_elf(store: &Store, tree: &TreeDigest) -> Result<bool, Failure> {
    use std::io::Read;
    for (_, e) in store.walk(tree).map_err(failed)? {
        if let EntryKind::File { digest, size } = e.kind {
            if size < 4 {
                continue;
            }
            let mut head = [0u8; 4];
            let mut f = std::fs::File::open(store.blob_path(&digest)).map_err(failed)?;
            if f.read_exact(&mut head).is_ok() && head == *b"\x7fELF" {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

struct Built {
    key: ActionKey,
    output: TreeDigest,
}

fn control(
    store: &Store,
    loaded: &Loaded,
    id: ElementId,
    built: &HashMap<ElementId, Built>,
    format: Format,
) -> Result<Control, Failure> {
    let e = loaded.element(id);
    let b = &built[&id];
    let var = |n: &str| e.variables.get(n).filter(|v| !v.is_empty()).cloned();
    let package =
        var("package-name").unwrap_or_else(|| cas_package::control::package_name(&e.name));
    let version = var("package-version")
        .or_else(|| var("version"))
        .unwrap_or_else(|| cas_package::control::default_version(&b.key.to_hex()));
    let problem = |what: String| {
        Failure::failed(miette::miette!(
            help = "set the element's variables `package-name` / `package-version`",
            "{}: {what}",
            e.name
        ))
    };
    cas_package::control::check_name(&package).map_err(|x| problem(x.to_string()))?;
    cas_package::control::check_version(&version).map_err(|x| problem(x.to_string()))?;
    let architecture = if has_elf(store, &b.output)? {
        match format {
            Format::Deb => cas_package::control::debian_arch(&e.sandbox.build_arch),
            Format::Ipk => e.sandbox.build_arch.clone(),
        }
    } else {
        "all".into()
    };
    let mut deps = Vec::new();
    runtime_deps(loaded, id, &mut deps);
    let depends = deps
        .iter()
        .map(|d| {
            let c = control(store, loaded, *d, built, format)?;
            Ok((c.package, c.version))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok(Control {
        package,
        version,
        architecture,
        maintainer: var("package-maintainer").unwrap_or_else(|| "cas <root@localhost>".into()),
        installed_size: cas_package::write::installed_size(store, &b.output).map_err(failed)?,
        depends,
        summary: e
            .description
            .clone()
            .unwrap_or_else(|| format!("{}, built by cas", e.name)),
        details: vec![
            format!("Element {} of project {}.", e.name, loaded.project.name),
            format!("Action key {}.", b.key.to_hex()),
        ],
    })
}

pub(crate) fn run(global: &Session, args: &CheckoutArgs, format: Format) -> CmdResult {
    let loaded = crate::commands::load::load_or_report(global, std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    let plan = cas_builder::states(
        &store,
        &loaded,
        &loaded.targets,
        &global.mirrors(&loaded.project)?,
        cas_builder::record::Lookup::Use,
    )
    .map_err(failed)?;
    let target = loaded.targets[0];
    let mut wanted = vec![target];
    if args.deps {
        for d in loaded.runtime_closure(target) {
            if cas_builder::kinds::of(loaded.element(d)).caps().has_output {
                wanted.push(d);
            }
        }
    }
    // every element a package names must be built: the packaged ones and their Depends
    let mut built = HashMap::new();
    let mut needed = wanted.clone();
    let mut i = 0;
    while i < needed.len() {
        let mut deps = Vec::new();
        runtime_deps(&loaded, needed[i], &mut deps);
        for d in deps {
            if !needed.contains(&d) {
                needed.push(d);
            }
        }
        i += 1;
    }
    for id in &needed {
        let p = plan.iter().find(|p| p.id == *id).expect("planned");
        let name = &loaded.element(*id).name;
        let (Some(key), Some(output)) = (p.key, p.output) else {
            return Err(Failure::failed(miette::miette!(
                help = format!("run `cas build {}` first", loaded.element(target).name),
                "{name} is not built (state: {})",
                p.state.name()
            )));
        };
        if wanted.contains(id) {
            crate::commands::remotes::ensure_local(global, &args.remote.flags(), &store, &output)?;
        }
        built.insert(*id, Built { key, output });
    }
    if args.dir.exists()
        && std::fs::read_dir(&args.dir)
            .map_err(failed)?
            .next()
            .is_some()
    {
        return Err(Failure::invalid(miette::miette!(
            "{} exists and is not empty",
            args.dir.display()
        )));
    }
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", args.dir.display())))?;
    let dir = std::fs::canonicalize(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let mut written = Vec::new();
    for id in &wanted {
        let c = control(&store, &loaded, *id, &built, format)?;
        let file = c.file_name(format);
        let path = dir.join(&file);
        let bytes =
            cas_package::package(&store, &built[id].output, &c, format, &path).map_err(failed)?;
        write_file(&path, &bytes)?;
        written.push((loaded.element(*id).name.clone(), c, file, bytes));
    }
    let index = if args.deps {
        let list: Vec<(&Control, &str, &[u8])> = written
            .iter()
            .map(|(_, c, f, b)| (c, f.as_str(), b.as_slice()))
            .collect();
        let text = cas_package::feed::index(format, &list);
        write_file(&dir.join("Packages"), text.as_bytes())?;
        write_file(&dir.join("Packages.gz"), &cas_package::feed::gzip(&text))?;
        Some(dir.join("Packages"))
    } else {
        None
    };
    if global.json {
        let packages: Vec<serde_json::Value> = written
            .iter()
            .map(|(name, c, file, bytes)| {
                serde_json::json!({"element": name, "package": c.package, "version": c.version,
                    "architecture": c.architecture, "file": dir.join(file), "size": bytes.len()})
            })
            .collect();
        crate::json::print(
            &serde_json::json!({"format": format.extension(), "packages": packages, "index": index}),
        )?;
    } else {
        for (name, c, file, _) in &written {
            eprintln!(
                "{name}: {} {} → {}",
                c.package,
                c.version,
                dir.join(file).display()
            );
        }
        if let Some(i) = index {
            eprintln!("index: {}", i.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
}
