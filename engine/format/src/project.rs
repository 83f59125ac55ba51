//! `project.yaml`: the project's name, where its elements live, URL aliases,
//! project-wide variables and environment, and its own kinds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diagnostics::{Error, FileId, SourceFile};
use crate::read::{Locate, Reader, Spanned};
use crate::yaml::{Map, Node};

pub const PROJECT_FILE: &str = "project.yaml";
/// A BuildStream project's file (spec/format.md, "From BuildStream").
pub const BST_PROJECT_FILE: &str = "project.conf";

/// Which format a project is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// `project.yaml` and `.yaml` elements (spec/format.md).
    #[default]
    Cas,
    /// `project.conf` and `.bst` elements, read as BuildStream 2 reads them.
    BuildStream,
}
const KEYS: &[&str] = &[
    "name",
    "element-path",
    "aliases",
    "variables",
    "environment",
    "kinds",
    "checks",
];

#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// The directory holding `project.yaml` (or the element's directory for an implicit project).
    pub root: PathBuf,
    /// Absolute directory that element names are relative to.
    pub element_path: PathBuf,
    pub aliases: BTreeMap<String, String>,
    /// Project variables as written (not expanded).
    pub variables: BTreeMap<String, String>,
    /// Project environment as written (not expanded).
    pub environment: BTreeMap<String, String>,
    /// Absolute directory of project-defined kinds, if any.
    pub kinds_dir: Option<PathBuf>,
    /// `project.yaml`, or `None` for an implicit project.
    pub file: Option<PathBuf>,
    pub(crate) raw_variables: Vec<(Spanned, Spanned)>,
    pub(crate) raw_environment: Vec<(Spanned, Spanned)>,
    /// How many of the last `raw_variables` are a BuildStream project's
    /// options exported as variables (shown after `max-jobs`).
    pub(crate) exported_variables: usize,
    /// A BuildStream project whose project.conf includes through junctions:
    /// its variables without those includes (BuildStream's first pass,
    /// which is what its junctions see and show).
    pub(crate) first_pass_variables: Option<Vec<(Spanned, Spanned)>>,
    pub dialect: Dialect,
    /// Mirrors the project declares (BuildStream's `mirrors:`): alias →
    /// base URLs, tried after the user's own.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Whether files of a later-staged element may replace those of an
    /// earlier one without a whitelist (BuildStream's default, unless
    /// `fatal-warnings` lists `overlaps`).
    pub overlaps_allowed: bool,
    /// The project's `checks:` (each element may override them).
    pub checks: crate::element::Checks,
    pub(crate) bst: Option<std::sync::Arc<crate::bst::BstProject>>,
}

/// The nearest `project.yaml` (or BuildStream's `project.conf`) in `dir`
/// or its ancestors; in one directory, `project.yaml` is the one read.
pub fn find_project_file(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find_map(|d| {
        [PROJECT_FILE, BST_PROJECT_FILE]
            .iter()
            .map(|f| d.join(f))
            .find(|p| p.is_file())
    })
}

impl Project {
    /// The implicit project of an element file with no `project.yaml` above it.
    pub fn implicit(dir: &Path) -> Project {
        let name = dir
            .file_name()
            .map_or_else(|| "project".into(), |n| n.to_string_lossy().into_owned());
        Project {
            name,
            root: dir.to_path_buf(),
            element_path: dir.to_path_buf(),
            aliases: BTreeMap::new(),
            variables: BTreeMap::new(),
            environment: BTreeMap::new(),
            kinds_dir: None,
            file: None,
            raw_variables: vec![],
            raw_environment: vec![],
            exported_variables: 0,
            first_pass_variables: None,
            dialect: Dialect::Cas,
            mirrors: BTreeMap::new(),
            overlaps_allowed: false,
            checks: crate::element::Checks::default(),
            bst: None,
        }
    }

    /// Decode a parsed `project.yaml`.
    pub(crate) fn decode(
        file: &SourceFile,
        _id: FileId,
        node: Option<&Node>,
    ) -> Result<Project, Vec<Error>> {
        let root = file
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut p = Project::implicit(&root);
        p.file = Some(file.path.clone());
        let Some(node) = node else { return Ok(p) };
        let mut r = Reader::new(file);
        let Some(map) = r.map(node, "project") else {
            if !node.is_null() {
                return Err(r.errors);
            }
            return Ok(p);
        };
        r.check_keys(map, KEYS, "project.yaml");
        crate::bst::reject_in_cas_project(&mut r, node);
        p.read_common(&mut r, map, &root);
        if let Some(node) = map.get("kinds") {
            p.kinds_dir = directory(&mut r, node, "kinds", &root);
        }
        if let Some(node) = map.get("checks") {
            let mut raw = crate::element::RawChecks::default();
            crate::element::read_checks(&mut r, node, &mut raw);
            p.checks = raw.over(&crate::element::Checks::default());
        }
        if r.errors.is_empty() {
            Ok(p)
        } else {
            Err(r.errors)
        }
    }
}

impl Project {
    /// The keys both formats share (`project.yaml`, `project.conf`): `name`,
    /// `element-path`, `aliases`, `variables`, `environment`.
    pub(crate) fn read_common<L: Locate>(&mut self, r: &mut Reader<L>, map: &Map, root: &Path) {
        if let Some(n) = map.get("name").and_then(|n| r.string(n, "name")) {
            if n.value.is_empty() || n.value.contains(['/', '\0']) {
                r.err(
                    n.span,
                    "`name`: a project name must be non-empty and contain no `/`",
                    "invalid name",
                );
            }
            self.name = n.value;
        }
        if let Some(node) = map.get("element-path") {
            if let Some(dir) = directory(r, node, "element-path", root) {
                self.element_path = dir;
            }
        }
        if let Some(node) = map.get("aliases") {
            for (k, v) in r.string_map(node, "aliases") {
                if k.value.is_empty() || k.value.contains([':', '/']) {
                    r.err(
                        k.span,
                        format!(
                            "alias `{}` must not be empty or contain `:` or `/`",
                            k.value
                        ),
                        "invalid alias",
                    );
                }
                self.aliases.insert(k.value, v.value);
            }
        }
        if let Some(node) = map.get("variables") {
            self.set_variables(r.string_map(node, "variables"));
        }
        if let Some(node) = map.get("environment") {
            self.raw_environment = r.string_map(node, "environment");
            self.environment = as_map(&self.raw_environment);
        }
    }

    /// Every element file of the project: the files under `element-path` with
    /// its format's extension (`.yaml`, `.bst`), as element names, sorted;
    /// the project file, the kinds directory and hidden directories are not
    /// elements.
    pub fn element_names(&self) -> Vec<String> {
        let ext = match self.dialect {
            Dialect::Cas => "yaml",
            Dialect::BuildStream => "bst",
        };
        let mut out = Vec::new();
        let mut stack = vec![self.element_path.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let path = e.path();
                let name = e.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                let Ok(t) = e.file_type() else { continue };
                if t.is_dir() {
                    if Some(&path) != self.kinds_dir.as_ref() {
                        stack.push(path);
                    }
                } else if t.is_file()
                    && path.extension().is_some_and(|x| x == ext)
                    && Some(&path) != self.file.as_ref()
                {
                    if let Ok(rel) = path.strip_prefix(&self.element_path) {
                        out.push(rel.to_string_lossy().into_owned());
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// The project's variables as written (with their spans).
    pub(crate) fn set_variables(&mut self, raw: Vec<(Spanned, Spanned)>) {
        self.raw_variables = raw;
        self.variables = as_map(&self.raw_variables);
    }
}

fn as_map(raw: &[(Spanned, Spanned)]) -> BTreeMap<String, String> {
    raw.iter()
        .map(|(k, v)| (k.value.clone(), v.value.clone()))
        .collect()
}

/// A directory of the project named by `key` (relative, inside it, existing).
fn directory<L: Locate>(r: &mut Reader<L>, node: &Node, key: &str, root: &Path) -> Option<PathBuf> {
    let v = r.string(node, key)?;
    let Some(rel) = relative_inside(&v.value) else {
        r.err(
            v.span,
            format!("`{key}` must be a relative path inside the project"),
            "not inside the project",
        );
        return None;
    };
    let dir = root.join(rel);
    if !dir.is_dir() {
        r.err(
            v.span,
            format!("`{key}`: directory `{}` does not exist", v.value),
            "no such directory",
        );
    }
    Some(dir)
}

/// `s` as a normalised relative path that stays inside its base directory
/// (no absolute path, no `..` escaping). `.` and empty give an empty path.
pub fn relative_inside(s: &str) -> Option<PathBuf> {
    if s.starts_with('/') || s.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.iter().collect())
}
