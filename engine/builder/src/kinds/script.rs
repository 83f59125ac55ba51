//! `script`: the build dependencies laid out per `layout` (each at its
//! destination; empty: all at `/`), `commands` run over that root
//! (read-only or a private writable copy), the output is the directory
//! `output`.

use std::collections::BTreeMap;

use cas_format::{Data, Element, ElementId, Error, LoadCheck, Loaded};
use cas_store::{IngestMode, Method, TreeDigest};

use super::{Caps, Commands, KeyCx, Kind, Root, Stage};
use crate::error::Result;
use crate::split;
use crate::sysroot::Layer;

pub struct Script;

/// Where a script element stages one of its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutEntry {
    /// `None`: the entry only creates `destination`.
    pub element: Option<ElementId>,
    pub destination: String,
}

/// A layout entry as written (element name, destination), or what is
/// wrong with it (its index in the list, the message).
type Written = std::result::Result<(usize, Option<String>, String), (usize, String)>;

/// `layout` as written: each entry's element name (if any) and
/// destination, or what is wrong with it; empty entries (`- ~`) are skipped.
fn written(el: &Element) -> Vec<Written> {
    let items = match el.config.data("layout") {
        None | Some(Data::Null) => return Vec::new(),
        Some(Data::List(items)) => items,
        Some(_) => return vec![Err((0, "`layout`: expected a list".into()))],
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if *item == Data::Null {
            continue;
        }
        let Data::Map(m) = item else {
            out.push(Err((
                i,
                "a layout entry is a mapping of `element` and `destination`".into(),
            )));
            continue;
        };
        if let Some((k, _)) = m.iter().find(|(k, _)| k != "element" && k != "destination") {
            out.push(Err((
                i,
                format!("unknown key `{k}` in a layout entry (expected element, destination)"),
            )));
            continue;
        }
        let get = |key: &str| m.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let element = match get("element") {
            None | Some(Data::Null) => None,
            Some(Data::Str(s)) => Some(s.clone()),
            Some(_) => {
                out.push(Err((i, "`element`: expected an element name".into())));
                continue;
            }
        };
        match get("destination") {
            Some(Data::Str(d)) => out.push(Ok((i, element, d.clone()))),
            Some(_) => out.push(Err((i, "`destination`: expected a path".into()))),
            None => out.push(Err((i, "a layout entry needs `destination`".into()))),
        }
    }
    out
}

/// `layout`, its elements resolved (an entry naming no element of the
/// load only creates its destination).
pub fn layout(loaded: &Loaded, el: &Element) -> Vec<LayoutEntry> {
    written(el)
        .into_iter()
        .filter_map(std::result::Result::ok)
        .map(|(_, e, destination)| LayoutEntry {
            element: e.and_then(|n| loaded.find(&n)),
            destination,
        })
        .collect()
}

/// `output`: the directory whose content is the output.
pub fn output(el: &Element) -> String {
    let default = el
        .variables
        .get("install-root")
        .map_or("/install", String::as_str);
    el.config.str_or("output", default)
}

impl Kind for Script {
    fn name(&self) -> &'static str {
        "script"
    }
    /// `layout`: a list of `{element, destination}`.
    fn structured_config(&self) -> &'static [&'static str] {
        &["layout"]
    }
    fn caps(&self) -> Caps {
        Caps {
            runs_commands: true,
            merges_staged: true,
            makes_binaries: true,
            has_output: true,
            ..Caps::default()
        }
    }

    /// Each `layout` entry's element must be one of its build dependencies
    /// (build-depends, depends), and each entry needs a destination.
    fn check(&self, load: &mut LoadCheck<'_>, id: ElementId, errors: &mut Vec<Error>) {
        let el = load.element(id);
        let at = |i: usize| el.config.span("layout", i).unwrap_or(el.origin.kind_span);
        for entry in written(el) {
            match entry {
                Err((i, message)) => {
                    errors.push(load.error(at(i), message, "in `layout`"));
                }
                Ok((i, Some(name), _)) => {
                    let span = at(i);
                    let found = load.find(&name);
                    if !found
                        .is_some_and(|d| el.build_depends.contains(&d) || el.depends.contains(&d))
                    {
                        errors.push(load.error(
                            span,
                            format!("layout: `{name}` is not a build dependency of this element"),
                            "not in build-depends or depends",
                        ));
                    }
                }
                Ok((_, None, _)) => {}
            }
        }
    }

    /// `output`, `root-read-only` and `layout` (each entry as the staging
    /// position of its element and its destination; spec/keys.md).
    fn key_config(&self, cx: &KeyCx<'_>, config: &mut BTreeMap<String, Vec<String>>) {
        config.insert("output".into(), vec![output(cx.el)]);
        let read_only = cx.el.config.bool_or("root-read-only", false);
        config.insert("root-read-only".into(), vec![read_only.to_string()]);
        let pos = |e| cx.staged.iter().position(|(s, _)| *s == e);
        config.insert(
            "layout".into(),
            layout(cx.loaded, cx.el)
                .iter()
                .map(|l| match l.element.and_then(pos) {
                    Some(i) => format!("{i}\t{}", l.destination),
                    None => format!("-\t{}", l.destination),
                })
                .collect(),
        );
    }

    fn assemble(&self, stage: &mut dyn Stage) -> Result<TreeDigest> {
        let el = stage.element();
        let read_only = el.config.bool_or("root-read-only", false);
        let output = output(el);
        let layout: Vec<(Option<ElementId>, String)> = written(el)
            .into_iter()
            .filter_map(std::result::Result::ok)
            .map(|(_, name, dest)| (name.and_then(|n| stage.find(&n)), dest))
            .collect();
        let root_trees = if layout.is_empty() {
            stage.layers()
        } else {
            let mut placed = Vec::new();
            for (element, destination) in &layout {
                let found =
                    element.and_then(|e| stage.staged().iter().find(|(s, _)| *s == e).copied());
                let mut layer = match found {
                    Some((e, t)) => stage.layer(e, t),
                    None => Layer::new("layout", stage.store().empty_tree()?),
                };
                layer.tree = split::place_under(stage.store(), layer.tree, destination)?;
                // The whitelist names paths of the element's own tree: placed too.
                let dest = destination.trim_end_matches('/');
                for p in &mut layer.whitelist {
                    *p = format!("{dest}/{}", p.trim_start_matches('/'));
                }
                placed.push(layer);
            }
            placed
        };
        stage.stage_sources()?;
        let out_dir = if read_only {
            stage.run(Root::ReadOnly(&root_trees), Commands::Phases)?;
            stage.output_dir(&output, None)?
        } else {
            let root_tree = stage.merge(&root_trees)?;
            let rootfs = stage.scratch();
            stage
                .store()
                .materialize(&root_tree, &rootfs, Method::ReflinkOrCopy)?;
            stage.run(Root::Writable(&rootfs), Commands::Phases)?;
            stage.output_dir(&output, Some(&rootfs))?
        };
        if !out_dir.exists() {
            return Ok(stage.store().empty_tree()?);
        }
        Ok(stage.store().ingest(&out_dir, IngestMode::Move)?.tree)
    }

    /// Its output holds a dependency's when it outputs `/`, or when the
    /// dependency is laid out elsewhere than `/` (an image's tree; the
    /// ones at `/` are its tools).
    fn contains(&self, loaded: &Loaded, el: &Element, dep: ElementId) -> bool {
        output(el).trim_end_matches('/').is_empty()
            || layout(loaded, el)
                .iter()
                .any(|l| l.element == Some(dep) && !l.destination.trim_end_matches('/').is_empty())
    }
}
