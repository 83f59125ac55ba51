//! The projects of a load: the top one, and each junction's subproject
//! (BuildStream), loaded when an element name first goes through it
//! (`junction.bst:element.bst`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::kinds::{load_kinds, LoadedKinds};
use super::{display_name, read_and_parse};
use crate::bst::{self, Includes, WithIncludes};
use crate::diagnostics::{Error, Files};
use crate::project::{Project, BST_PROJECT_FILE};
use crate::read::Reader;
use crate::yaml;

/// The directory of a junction's subproject from its sources (a tar or git
/// source, patches), staged where the engine keeps such things. The loader
/// cannot fetch; this can.
pub trait JunctionSources: Send + Sync {
    /// `junction`: its full name (for messages); `mirrors`: the mirrors of
    /// the project the junction is in. `Err` is said at the junction.
    fn directory(
        &self,
        junction: &str,
        sources: &[cas_sources::Source],
        mirrors: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<PathBuf, String>;
}

/// One project of a load: the top one (index 0) and each junction's.
pub(super) struct ProjectCx {
    pub(super) project: Project,
    pub(super) kinds: LoadedKinds,
    /// The prefix of its element names (`junction.bst:`; empty for the top).
    pub(super) prefix: String,
}

/// The projects of a load and the junctions that lead to them.
pub(super) struct Projects {
    pub(super) list: Vec<ProjectCx>,
    pub(super) junction_sources: Option<std::sync::Arc<dyn JunctionSources>>,
    /// The behaviours kinds may name (LoadOptions::behaviours).
    pub(super) behaviours: Option<std::sync::Arc<dyn crate::settings::Behaviours>>,
    /// junction's full name → its project (`None`: it could not be loaded,
    /// which was reported once).
    pub(super) by_junction: HashMap<String, Option<usize>>,
    /// `--arch` (spec/format.md, Variables): `None` for this machine's.
    pub(super) target_arch: Option<String>,
    /// A junction's `config: overrides`: an element (or junction) of its
    /// subproject, by full name → what replaces it, by full name.
    pub(super) overrides: HashMap<String, String>,
}

impl Projects {
    /// The name an element is loaded under: its junctions, and then it,
    /// replaced by what overrides them (`config: overrides` of a junction).
    pub(super) fn canonical(&self, name: &str) -> String {
        let mut name = name.to_string();
        // overrides may chain; each step replaces a name by another one
        for _ in 0..16 {
            let mut next = None;
            for (i, _) in name.match_indices(':') {
                if let Some(o) = self.overrides.get(&name[..i]) {
                    next = Some(format!("{o}{}", &name[i..]));
                    break;
                }
            }
            if next.is_none() {
                next = self.overrides.get(&name).cloned();
            }
            match next {
                Some(n) if n != name => name = n,
                _ => break,
            }
        }
        name
    }

    /// The project and local name of a full element name (`j.bst:e.bst`).
    pub(super) fn of(&self, name: &str) -> Option<(usize, String)> {
        match name.rsplit_once(':') {
            None => Some((0, name.to_string())),
            Some((j, local)) => self
                .by_junction
                .get(j)
                .copied()
                .flatten()
                .map(|i| (i, local.to_string())),
        }
    }
}

/// Load the subproject of junction `j` (a full name) if not yet tried:
/// its element is read in its parent project, its one `local` source is the
/// subproject's directory, its `config: options` are the subproject's
/// option values.
pub(super) fn ensure_junction(
    files: &mut Files,
    projects: &mut Projects,
    j: &str,
    cwd: &Path,
    includes: &Includes,
    errors: &mut Vec<Error>,
) -> Option<usize> {
    let resolver = projects.junction_sources.clone();
    if let Some(r) = projects.by_junction.get(j) {
        return *r;
    }
    // a junction overridden by one of its parent's: that one's project
    let canon = projects.canonical(j);
    if canon != j {
        projects.by_junction.insert(j.to_string(), None);
        let r = ensure_junction(files, projects, &canon, cwd, includes, errors);
        projects.by_junction.insert(j.to_string(), r);
        return r;
    }
    projects.by_junction.insert(j.to_string(), None);
    let (parent, local) = match j.rsplit_once(':') {
        None => (0, j.to_string()),
        Some((pj, l)) => (
            ensure_junction(files, projects, pj, cwd, includes, errors)?,
            l.to_string(),
        ),
    };
    let parent_project = projects.list[parent].project.clone();
    let (parent_root, parent_prefix, parent_path) = (
        parent_project.root.clone(),
        projects.list[parent].prefix.clone(),
        parent_project.element_path.clone(),
    );
    let parent_bst = projects.list[parent].project.bst.clone();
    let path = parent_path.join(&local);
    if !path.is_file() {
        errors.push(Error::plain(format!(
            "junction `{j}` not found: no file {}",
            display_name(&path, cwd)
        )));
        return None;
    }
    let Some(b) = parent_bst else {
        errors.push(Error::plain(format!(
            "`{j}`: junctions belong to BuildStream projects"
        )));
        return None;
    };
    let before = errors.len();
    let (id, root) = read_and_parse(files, &path, display_name(&path, cwd), errors);
    let file = files.get(id)?.clone();
    let Some(root) = root else {
        if errors.len() == before {
            // an empty file parses to nothing, and says nothing
            errors.push(Error::at(
                &file,
                crate::diagnostics::Span { file: id, start: 0, end: 0 },
                format!("junction `{j}` is empty: a junction is an element with `kind: junction` and a source holding the subproject"),
                "empty file",
            ));
        }
        return None;
    };
    let loc = WithIncludes {
        file: &file,
        includes,
    };
    let inc = bst::include_fn(&parent_root, includes, &loc, cwd, None);
    let mut r = Reader::new(&loc);
    let (node, is_junction, extra) =
        bst::translate(&mut r, &loc, &b, &local, &parent_prefix, root, &inc);
    let kind_span = node
        .as_map()
        .and_then(|m| m.get("kind"))
        .map_or(node.span, |k| k.span);
    if extra.link && r.errors.is_empty() {
        // a link to a junction: its project is the junction's
        let target = node
            .as_map()
            .and_then(|m| m.get("depends"))
            .and_then(|d| match &d.value {
                yaml::Value::Seq(items) => items.first().and_then(|i| i.as_str()),
                _ => None,
            })
            .map(str::to_string);
        if let Some(t) = target {
            // elements through it are named through what it points to
            projects.overrides.insert(j.to_string(), t.clone());
            let res = ensure_junction(files, projects, &t, cwd, includes, errors);
            projects.by_junction.insert(j.to_string(), res);
            return res;
        }
    }
    if !is_junction {
        r.err(
            kind_span,
            format!("`{j}` is named as a junction (`{j}:...`) but is not `kind: junction`"),
            "not a junction",
        );
    }
    let map = node.as_map().cloned().unwrap_or_default();
    r.check_keys(
        &map,
        &["kind", "description", "sources", "config"],
        "a junction",
    );
    let mut sources = Vec::new();
    if let Some(yaml::Value::Seq(items)) = map.get("sources").map(|s| &s.value) {
        for item in items {
            sources.extend(crate::source::decode(&mut r, &parent_project, item));
        }
    }
    let mut dir = None;
    match sources.as_slice() {
        [] if r.errors.is_empty() => r.err(
            kind_span,
            format!("junction `{j}` needs a source: its subproject"),
            "no subproject",
        ),
        [] => {}
        [cas_sources::Source {
            kind: cas_sources::SourceKind::Local { path },
            directory: None,
            ..
        }] => dir = Some(path.clone()),
        _ => match &resolver {
            Some(res) => match res.directory(j, &sources, &parent_project.mirrors) {
                Ok(d) => dir = Some(d),
                Err(e) => r.err(kind_span, format!("junction `{j}`: {e}"), "subproject not here"),
            },
            None => r.err(
                kind_span,
                format!("junction `{j}`: its subproject comes from fetched sources, which this command does not read"),
                "subproject not here",
            ),
        },
    }
    let mut given = bst::Given::default();
    let mut overrides = Vec::new();
    if let Some(cfg) = map.get("config").and_then(|c| r.map(c, "config")) {
        r.check_keys(
            cfg,
            &[
                "options",
                "overrides",
                "aliases",
                "cache-junction-elements",
                "ignore-junction-remotes",
            ],
            "a junction's config",
        );
        if let Some(o) = cfg.get("options").and_then(|o| r.map(o, "options")) {
            for (k, v) in o.iter() {
                if let Some(s) = r.string(v, &k.name) {
                    // the junction's config is expanded with its project's
                    // variables (`animal: '%{animal}'`)
                    let value = expand_with(&s.value, &parent_project.variables);
                    given.values.push((k.name.clone(), value, Some(s.span)));
                }
            }
        }
        if let Some(o) = cfg.get("overrides").and_then(|o| r.map(o, "overrides")) {
            for (k, v) in o.iter() {
                if let Some(by) = r.string(v, &k.name) {
                    if by.value == local {
                        r.err(
                            by.span,
                            format!("`{}`: a junction cannot override a junction of its subproject with itself", k.name),
                            "itself",
                        );
                        continue;
                    }
                    overrides.push((
                        format!("{j}:{}", k.name),
                        format!("{parent_prefix}{}", by.value),
                    ));
                }
            }
        }
    }
    errors.append(&mut r.errors);
    let dir = dir?;
    if errors.len() > before {
        return None;
    }
    let pf = dir.join(BST_PROJECT_FILE);
    if !pf.is_file() {
        errors.push(
            files
                .error(
                    kind_span,
                    format!(
                        "junction `{j}`: {} has no project.conf",
                        display_name(&dir, cwd)
                    ),
                    "no project here",
                )
                .with_help("a junction's sources are a BuildStream project"),
        );
        return None;
    }
    let (pid, proot) = read_and_parse(files, &pf, display_name(&pf, cwd), errors);
    let pfile = files.get(pid)?.clone();
    // its project.conf may include through its own junctions: a first pass
    // names them, they are loaded, and a second pass reads the includes
    let no_roots = HashMap::new();
    let wanted = std::sync::Mutex::new(Vec::new());
    let no_broken = std::sync::Mutex::new(Vec::new());
    let decode = |files: &mut Files,
                  roots: &HashMap<
        String,
        (
            PathBuf,
            std::collections::BTreeMap<String, bst::expr::Value>,
        ),
    >,
                  errors: &mut Vec<Error>| {
        let project = bst::decode_project(
            &pfile,
            pid,
            proot.clone(),
            &given,
            &Default::default(),
            includes,
            cwd,
            Some(bst::JunctionRoots {
                roots,
                wanted: &wanted,
                deps_of_broken: &no_broken,
            }),
        );
        includes.hand_to(files);
        project.map_err(|es| errors.extend(es)).ok()
    };
    let project = decode(files, &no_roots, errors)?;
    let kinds = load_kinds(files, &project, cwd, projects.behaviours.as_deref(), errors);
    projects.list.push(ProjectCx {
        project,
        kinds,
        prefix: format!("{j}:"),
    });
    let idx = projects.list.len() - 1;
    projects.by_junction.insert(j.to_string(), Some(idx));
    projects.overrides.extend(overrides);
    let through: Vec<String> = std::mem::take(
        &mut *wanted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if !through.is_empty() {
        let before = errors.len();
        for sub in &through {
            ensure_junction(
                files,
                projects,
                &format!("{j}:{sub}"),
                cwd,
                includes,
                errors,
            );
        }
        if errors.len() > before {
            return None;
        }
        let prefix = format!("{j}:");
        let roots: HashMap<
            String,
            (
                PathBuf,
                std::collections::BTreeMap<String, bst::expr::Value>,
            ),
        > = projects
            .by_junction
            .iter()
            .filter_map(|(name, i)| {
                let local = name.strip_prefix(&prefix)?;
                let p = &projects.list[(*i)?].project;
                let opts = p.bst.as_ref().map(|b| b.values.clone()).unwrap_or_default();
                Some((local.to_string(), (p.root.clone(), opts)))
            })
            .collect();
        let mut project = decode(files, &roots, errors)?;
        project.first_pass_variables = Some(projects.list[idx].project.raw_variables.clone());
        let kinds = load_kinds(files, &project, cwd, projects.behaviours.as_deref(), errors);
        projects.list[idx].project = project;
        projects.list[idx].kinds = kinds;
    }
    Some(idx)
}

/// `%{name}` references in a junction's config, replaced by the values of
/// its project's variables (themselves expanded; an unknown name is left
/// as written, and the option's check says what is wrong).
fn expand_with(text: &str, vars: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for _ in 0..32 {
        let Some(i) = out.find("%{") else { break };
        let Some(len) = out[i..].find('}') else { break };
        let name = &out[i + 2..i + len];
        let Some(v) = vars.get(name) else { break };
        out = format!("{}{v}{}", &out[..i], &out[i + len + 1..]);
    }
    out
}
