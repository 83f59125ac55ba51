//! The kinds and defaults of one project: the built-in set of its format
//! (cas's `elements/`, BuildStream's `elements/bst/`), then its own kinds
//! (a `kinds` directory, or a BuildStream project's `elements:` defaults).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{display_name, read_and_parse};
use crate::bst;
use crate::diagnostics::{Error, Files};
use crate::kind::{
    builtin_file, decode_defaults, merge_public, resolve_kinds, Kind, Layer, RawKind, BST_BUILTIN,
    BUILTIN,
};
use crate::project::{Dialect, Project, BST_PROJECT_FILE};
use crate::read::Reader;
use crate::yaml;

/// The kinds of a load: the defaults layer, every kind resolved (built-in,
/// then the project's), and the project kinds that could not be (their file
/// names, for the elements that use them).
pub(super) struct LoadedKinds {
    pub(super) defaults: Layer,
    pub(super) kinds: BTreeMap<String, Kind>,
    pub(super) broken_kinds: BTreeMap<String, String>,
}

pub(super) fn load_kinds(
    files: &mut Files,
    project: &Project,
    cwd: &Path,
    behaviours: Option<&dyn crate::settings::Behaviours>,
    errors: &mut Vec<Error>,
) -> LoadedKinds {
    let mut builtin = Vec::new();
    let mut defaults_root = None;
    let (set, prefix) = match project.dialect {
        Dialect::Cas => (BUILTIN, ""),
        Dialect::BuildStream => (BST_BUILTIN, "bst/"),
    };
    // the kind files the behaviours bring (cas projects)
    let brought = match (project.dialect, behaviours) {
        (Dialect::Cas, Some(b)) => b.kind_files(),
        _ => Vec::new(),
    };
    for (name, text) in set.iter().chain(&brought) {
        let id = files.next_id();
        let f = builtin_file(&format!("{prefix}{name}"), text);
        let mut root = yaml::parse(&f, id).unwrap_or_else(|es| {
            errors.extend(es);
            None
        });
        if project.dialect == Dialect::BuildStream {
            if let Some(root) = &mut root {
                crate::bst::strip_scalars(root);
            }
        }
        let path = f.path.clone();
        files.add(f);
        if *name == "defaults" {
            defaults_root = root;
        } else {
            builtin.push(RawKind {
                broken: false,
                name: name.to_string(),
                file: id,
                path,
                root,
            });
        }
    }
    let mut defaults = decode_defaults(files, defaults_root.as_ref()).unwrap_or_else(|es| {
        errors.extend(es);
        Default::default()
    });
    let mut project_kinds = Vec::new();
    if let Some(b) = &project.bst {
        bst_layers(
            files,
            b,
            &builtin,
            &mut defaults,
            &mut project_kinds,
            errors,
        );
    }
    if let Some(dir) = &project.kinds_dir {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(std::result::Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        for p in paths {
            let Some(stem) = p.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            let before = errors.len();
            let (id, root) = read_and_parse(files, &p, display_name(&p, cwd), errors);
            project_kinds.push(RawKind {
                name: stem,
                file: id,
                path: p,
                root,
                broken: errors.len() > before,
            });
        }
    }
    let (kinds, kind_errors) = resolve_kinds(files, behaviours, &builtin, &project_kinds);
    errors.extend(kind_errors);
    // Project kinds that have errors of their own (reported above).
    let broken_kinds: BTreeMap<String, String> = project_kinds
        .iter()
        .filter(|k| !kinds.contains_key(&k.name))
        .map(|k| (k.name.clone(), display_name(&k.path, cwd)))
        .collect();

    LoadedKinds {
        defaults,
        kinds,
        broken_kinds,
    }
}

/// A BuildStream project's own layers: its `split-rules` over the defaults,
/// and its `elements:` overrides as kinds extending the built-in ones
/// (overrides of kinds cas does not have are left alone: using such a kind
/// is the error).
fn bst_layers(
    files: &Files,
    b: &bst::BstProject,
    builtin: &[RawKind],
    defaults: &mut Layer,
    project_kinds: &mut Vec<RawKind>,
    errors: &mut Vec<Error>,
) {
    let mut r = Reader::new(files);
    if let Some(n) = &b.split_rules {
        let mut m = yaml::Map::default();
        m.entries.push((
            yaml::Key {
                name: "split-rules".into(),
                span: n.span,
            },
            n.clone(),
        ));
        let public = yaml::Node {
            span: n.span,
            value: yaml::Value::Map(m),
        };
        merge_public(
            &mut r,
            &mut defaults.integration_commands,
            &mut defaults.split_rules,
            &mut defaults.overlap_whitelist,
            &public,
        );
    }
    for (k, v) in &b.element_overrides {
        if !builtin.iter().any(|raw| raw.name == k.name) {
            continue;
        }
        let mut m = yaml::Map::default();
        m.entries.push((
            yaml::Key {
                name: "extends".into(),
                span: k.span,
            },
            yaml::Node {
                span: k.span,
                value: yaml::Value::Scalar(k.name.clone(), yaml::Style::Quoted),
            },
        ));
        if let Some(over) = r.map(v, &k.name) {
            for (ok, ov) in over.iter() {
                if ok.name == "public" {
                    // a kind's public data other than BuildStream's own
                    // domain never reaches its elements (BuildStream keeps
                    // only the default split rules): other domains dropped
                    let mut p = ov.clone();
                    if let yaml::Value::Map(pm) = &mut p.value {
                        pm.entries
                            .retain(|(dk, _)| crate::kind::PUBLIC_KEYS.contains(&dk.name.as_str()));
                        // its split rules' list directives apply to the
                        // project's (BuildStream composes them there)
                        for (dk, dv) in &mut pm.entries {
                            if dk.name == "bst" {
                                compose_split_rules(dv, defaults);
                            }
                        }
                    }
                    m.entries.push((ok.clone(), p));
                } else if ["variables", "environment", "config"].contains(&ok.name.as_str()) {
                    m.entries.push((ok.clone(), ov.clone()));
                }
            }
        }
        project_kinds.push(RawKind {
            name: k.name.clone(),
            file: k.span.file,
            path: PathBuf::from(BST_PROJECT_FILE),
            root: Some(yaml::Node {
                span: v.span,
                value: yaml::Value::Map(m),
            }),
            broken: false,
        });
    }
    errors.extend(r.errors);
}

/// A kind override's `bst: split-rules:` with list directives, applied to
/// the project's split rules of the same domain (into plain lists).
fn compose_split_rules(bst: &mut yaml::Node, defaults: &Layer) {
    let Some(rules) = bst.as_map_mut().and_then(|m| m.get_mut("split-rules")) else {
        return;
    };
    let yaml::Value::Map(rm) = &mut rules.value else {
        return;
    };
    for (domain, v) in &mut rm.entries {
        let yaml::Value::Map(d) = &v.value else {
            continue;
        };
        if !bst::is_directive(d) {
            continue;
        }
        let base: Vec<yaml::Node> = defaults
            .split_rules
            .iter()
            .find(|(n, _)| *n == domain.name)
            .map(|(_, l)| {
                l.iter()
                    .map(|s| yaml::Node {
                        span: s.span,
                        value: yaml::Value::Scalar(s.value.clone(), yaml::Style::Quoted),
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.value = yaml::Value::Seq(bst::apply_list_directives(&base, d));
    }
}
