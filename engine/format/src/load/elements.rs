//! Element files, wave by wave from the targets through the dependencies
//! they name, each wave read, parsed and decoded in parallel.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::junctions::{ensure_junction, ProjectCx, Projects};
use super::{display_name, read_source_seen};
use crate::bst::{self, Includes, WithIncludes};
use crate::diagnostics::{Error, FileId, Files, SourceFile};
use crate::element::{normalise_name, RawElement};
use crate::read::Reader;
use crate::yaml;

/// Reads and decodes the element files, wave by wave from the targets
/// through the dependencies they name (each wave in parallel; the
/// junctions a wave names are loaded before it). Returns the decoded
/// elements and the names of every element file that exists (or whose
/// junction failed, which was reported).
pub(super) fn read_elements(
    files: &mut Files,
    projects: &mut Projects,
    cwd: &Path,
    target_names: &[String],
    shown_junctions: bool,
    includes: &Includes,
    errors: &mut Vec<Error>,
) -> (Vec<RawElement>, Vec<String>) {
    let mut raws: Vec<RawElement> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut existing: Vec<String> = Vec::new();
    let mut wave: Vec<String> = target_names.to_vec();
    for n in &wave {
        seen.insert(n.clone());
    }
    // where each name was first depended on, for errors about its junction
    let mut named_at: std::collections::HashMap<String, crate::diagnostics::Span> =
        std::collections::HashMap::new();
    // names replaced by a junction's `overrides` → what replaces them
    let mut aliases: HashMap<String, String> = HashMap::new();
    // what `show` shows even if it is a junction: its targets, and what a
    // link among them points to
    let mut shown_names: std::collections::HashSet<String> = target_names.iter().cloned().collect();
    while !wave.is_empty() {
        let mut now = Vec::new();
        for name in std::mem::take(&mut wave) {
            let canon = projects.canonical(&name);
            if canon != name {
                aliases.insert(name, canon.clone());
                if seen.insert(canon.clone()) {
                    wave.push(canon);
                }
                continue;
            }
            if let Some((j, _)) = name.rsplit_once(':') {
                let before = errors.len();
                if ensure_junction(files, projects, j, cwd, includes, errors).is_none() {
                    // an error about the junction itself has no place in a
                    // file: it is shown where the element was depended on
                    if let Some(span) = named_at.get(&name) {
                        for e in &mut errors[before..] {
                            if e.file().is_none() {
                                let located =
                                    files.error(*span, e.message.clone(), "through this junction");
                                let help = e.help.take();
                                *e = match help {
                                    Some(h) => located.with_help(h),
                                    None => located,
                                };
                            }
                        }
                    }
                    existing.push(name); // its junction's error stands for it
                    continue;
                }
                // the junction just loaded may override it
                let canon = projects.canonical(&name);
                if canon != name {
                    aliases.insert(name, canon.clone());
                    if seen.insert(canon.clone()) {
                        wave.push(canon);
                    }
                    continue;
                }
            }
            now.push(name);
        }
        let current = now;
        let base = files.next_id().0;
        let roots = junction_roots(projects);
        let projects_ref = &*projects;
        let results: Vec<Read> = current
            .par_iter()
            .enumerate()
            .map(|(i, name)| {
                let id = FileId(base + i as u32);
                let shown = shown_junctions && shown_names.contains(name);
                read_one(name, id, projects_ref, &roots, includes, cwd, shown)
            })
            .collect();
        let mut next = Vec::new();
        let mut retry = Vec::new();
        for (i, read) in results.into_iter().enumerate() {
            let Read {
                name,
                file,
                raw,
                wanted,
                broken_deps,
            } = read;
            let path = PathBuf::from(&name);
            let id = files
                .add(file.unwrap_or_else(|| SourceFile::new(path, name.clone(), String::new())));
            debug_assert_eq!(id.0, base + i as u32);
            if !wanted.is_empty() {
                // includes through junctions not loaded yet: load them, read it again
                let mut all = true;
                for j in &wanted {
                    all &= ensure_junction(files, projects, j, cwd, includes, errors).is_some();
                }
                if all {
                    retry.push(name);
                } else {
                    existing.push(name);
                }
                continue;
            }
            match raw {
                Ok(raw) => {
                    if raw.bst.as_ref().is_some_and(|b| b.link) && shown_names.contains(&name) {
                        shown_names.extend(raw.deps.iter().map(|(_, d)| d.value.clone()));
                    }
                    existing.push(name);
                    for (_, dep) in &raw.deps {
                        if !seen.contains(&dep.value) {
                            seen.insert(dep.value.clone());
                            named_at.insert(dep.value.clone(), dep.span);
                            next.push(dep.value.clone());
                        }
                    }
                    raws.push(raw);
                }
                Err(es) if es.is_empty() => {} // missing: reported where it is named
                Err(es) => {
                    existing.push(name);
                    errors.extend(es);
                    for dep in broken_deps {
                        if seen.insert(dep.clone()) {
                            next.push(dep);
                        }
                    }
                }
            }
        }
        retry.append(&mut next);
        wave.append(&mut retry);
    }
    // what depends on an overridden element depends on what replaces it
    if !aliases.is_empty() {
        for raw in &mut raws {
            for (_, dep) in &mut raw.deps {
                let mut n = 0;
                while let Some(to) = aliases.get(&dep.value) {
                    dep.value.clone_from(to);
                    n += 1;
                    if n > 16 {
                        break;
                    }
                }
            }
        }
    }

    (raws, existing)
}

/// One element file read and decoded.
struct Read {
    name: String,
    /// The file (`None`: there is no such file; reported where it is named).
    file: Option<SourceFile>,
    raw: Result<RawElement, Vec<Error>>,
    /// Junctions its includes go through that are not loaded yet (full
    /// names): the element is read again once they are.
    wanted: Vec<String>,
    /// The dependencies of an element that failed to decode, read still.
    broken_deps: Vec<String>,
}

/// The junctions loaded so far, per project (by index): a junction's name
/// as that project writes it → its project's directory and option values,
/// for includes through them.
pub(super) type Roots = HashMap<String, (PathBuf, BTreeMap<String, bst::expr::Value>)>;

pub(super) fn junction_roots(projects: &Projects) -> Vec<Roots> {
    projects
        .list
        .iter()
        .map(|from| {
            projects
                .by_junction
                .iter()
                .filter_map(|(j, i)| {
                    let local = j.strip_prefix(&from.prefix)?;
                    let p = &projects.list[(*i)?].project;
                    let opts = p.bst.as_ref().map(|b| b.values.clone()).unwrap_or_default();
                    Some((local.to_string(), (p.root.clone(), opts)))
                })
                .collect()
        })
        .collect()
}

/// Read, parse and decode the element `name` (a full name) as file `id`.
fn read_one(
    name: &str,
    id: FileId,
    projects: &Projects,
    roots: &[Roots],
    includes: &Includes,
    cwd: &Path,
    shown_junction: bool,
) -> Read {
    let mut read = Read {
        name: name.to_string(),
        file: None,
        raw: Err(vec![]),
        wanted: vec![],
        broken_deps: vec![],
    };
    let Some((pidx, local)) = projects.of(name) else {
        return read;
    };
    let pcx = &projects.list[pidx];
    let project = &pcx.project;
    let path = project.element_path.join(&local);
    // a path that is not a regular file is never opened (it may be a
    // device): that element does not exist
    let meta = match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        _ => return read,
    };
    let f = match read_source_seen(&path, display_name(&path, cwd), Ok(meta)) {
        Ok(f) => f,
        Err((f, e)) => {
            read.file = Some(f);
            read.raw = Err(vec![e]);
            return read;
        }
    };
    let wanted = std::sync::Mutex::new(Vec::new());
    let deps_of_broken = std::sync::Mutex::new(Vec::new());
    let raw = match (yaml::parse(&f, id), &project.bst) {
        (Err(es), _) => Err(es),
        (Ok(root), None) => decode_cas(&f, id, name, root.as_ref(), project, &pcx.kinds.kinds),
        (Ok(root), Some(b)) => decode_bst(
            &f,
            id,
            name,
            &local,
            root,
            pcx,
            b,
            includes,
            cwd,
            bst::JunctionRoots {
                roots: &roots[pidx],
                wanted: &wanted,
                deps_of_broken: &deps_of_broken,
            },
            shown_junction,
        ),
    };
    read.raw = raw.map(|mut r| {
        r.project = pidx;
        r
    });
    read.wanted = wanted
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|j| format!("{}{j}", pcx.prefix))
        .collect();
    read.broken_deps = deps_of_broken.into_inner().unwrap_or_default();
    read.file = Some(f);
    read
}

/// Decode one element of a cas project (BuildStream's directives named as such).
fn decode_cas(
    f: &SourceFile,
    id: FileId,
    name: &str,
    root: Option<&yaml::Node>,
    project: &crate::project::Project,
    kinds: &std::collections::BTreeMap<String, crate::kind::Kind>,
) -> Result<RawElement, Vec<Error>> {
    let mut r = Reader::new(f);
    if let Some(root) = root {
        bst::reject_in_cas_project(&mut r, root);
    }
    let failed = |mut es: Vec<Error>, r: &mut Reader<SourceFile>| {
        es.append(&mut r.errors);
        // every error of the file at once: an unknown kind too, which the
        // element's resolution (that an error here skips) would have said
        if let Some(k) = root
            .and_then(|n| n.as_map())
            .and_then(|m| m.get("kind"))
            .filter(|k| k.as_str().is_some_and(|v| !kinds.contains_key(v)))
        {
            let v = k.as_str().unwrap_or_default();
            let help = match crate::diagnostics::suggest(v, kinds.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => {
                    "kinds are the built-in ones and the files in the project's `kinds` directory"
                        .into()
                }
            };
            es.push(
                crate::read::Locate::error(
                    f,
                    k.span,
                    format!("unknown kind `{v}`"),
                    "unknown kind",
                )
                .with_help(help),
            );
        }
        es
    };
    match crate::element::decode(f, &f.path, id, name.to_string(), root, project) {
        Ok(_) if !r.errors.is_empty() => Err(failed(Vec::new(), &mut r)),
        Ok(raw) => Ok(raw),
        Err(es) => Err(failed(es, &mut r)),
    }
}

/// Decode one `.bst` element: directives, translation, then the decoder
/// every element goes through.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument distinct"
)]
fn decode_bst(
    f: &SourceFile,
    id: FileId,
    name: &str,
    local: &str,
    root: Option<yaml::Node>,
    pcx: &ProjectCx,
    b: &bst::BstProject,
    includes: &Includes,
    cwd: &Path,
    junctions: bst::JunctionRoots,
    shown_junction: bool,
) -> Result<RawElement, Vec<Error>> {
    let project = &pcx.project;
    let loc = WithIncludes { file: f, includes };
    let Some(root) = root else {
        return crate::element::decode(&loc, &f.path, id, name.to_string(), None, project);
    };
    let deps_of_broken = junctions.deps_of_broken;
    let inc = bst::include_fn(&project.root, includes, &loc, cwd, Some(junctions));
    let mut r = Reader::new(&loc);
    let (node, is_junction, mut extra) =
        bst::translate(&mut r, &loc, b, local, &pcx.prefix, root, &inc);
    if is_junction && shown_junction {
        // a junction as a target of `show`: shown as BuildStream shows
        // it (its variables and its config), never built
        let mut m = yaml::Map::default();
        let source = node.as_map().cloned().unwrap_or_default();
        for k in ["kind", "description", "variables"] {
            if let Some((kk, v)) = source.get_entry(k) {
                m.entries.push((kk.clone(), v.clone()));
            }
        }
        extra.junction_config = source.get("config").cloned();
        extra.junction = true;
        let shown = yaml::Node {
            span: node.span,
            value: yaml::Value::Map(m),
        };
        let decoded =
            crate::element::decode(&loc, &f.path, id, name.to_string(), Some(&shown), project);
        return match decoded {
            Ok(mut raw) if r.errors.is_empty() => {
                raw.bst = Some(extra);
                Ok(raw)
            }
            Ok(_) => Err(r.errors),
            Err(mut es) => {
                r.errors.append(&mut es);
                Err(r.errors)
            }
        };
    }
    if is_junction {
        let span = node
            .as_map()
            .and_then(|m| m.get("kind"))
            .map_or(node.span, |k| k.span);
        r.err_help(
            span,
            format!("`{name}` is a junction: it is not an element to depend on"),
            "junction",
            format!("depend on an element of its project: `{name}:element.bst` (or `filename: element.bst` with `junction: {name}`)"),
        );
        return Err(r.errors);
    }
    let decoded = crate::element::decode(&loc, &f.path, id, name.to_string(), Some(&node), project);
    let result = match decoded {
        Ok(mut raw) if r.errors.is_empty() => {
            raw.bst = Some(extra);
            Ok(raw)
        }
        Ok(_) => Err(r.errors),
        Err(mut es) => {
            r.errors.append(&mut es);
            Err(r.errors)
        }
    };
    if result.is_err() {
        // the elements behind a broken one are still read (and checked)
        let mut out = deps_of_broken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in ["depends", "build-depends", "runtime-depends"] {
            if let Some(yaml::Value::Seq(items)) =
                node.as_map().and_then(|m| m.get(key)).map(|n| &n.value)
            {
                out.extend(
                    items
                        .iter()
                        .filter_map(|i| i.as_str())
                        .filter_map(normalise_name),
                );
            }
        }
    }
    result
}
