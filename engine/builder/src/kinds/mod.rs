//! Kinds: one file per behaviour, each owning the fields it puts into the
//! key and the way it assembles its output, side by side:
//!
//! - [`import`]: no sandbox; the output is the staged sources (`source`
//!   directory placed at `target`).
//! - [`sandboxed`]: the phases in a sandbox over the staged sysroot; the
//!   output is `%{install-root}`.
//! - [`compose`]: the staged outputs filtered by split rules and merged;
//!   integration commands on a private copy.
//! - [`script`]: commands over a root laid out from the dependencies; the
//!   output is one directory.
//! - [`stack`]: no output.
//!
//! The element's [`Config`] carries the behaviour and its configuration as
//! one value, so the dispatch below is total: no behaviour without its
//! configuration.

pub mod compose;
pub mod filter;
pub mod import;
pub mod sandboxed;
pub mod script;
pub mod stack;

use std::collections::BTreeMap;
use std::fs::File;

use cas_format::{Config, Element, ElementId, Loaded};
use cas_store::TreeDigest;

use crate::builddir::BuildDir;
use crate::error::Result;
use crate::keys::KeyInputs;

use crate::step::Engine;

/// The behaviour-specific part of an element's key inputs (`config` in
/// spec/keys.md), given what it stages.
pub(crate) fn key_config(
    loaded: &Loaded,
    el: &Element,
    staged: &[(ElementId, TreeDigest)],
) -> BTreeMap<String, Vec<String>> {
    let mut config = BTreeMap::new();
    match &el.config {
        Config::Import { source, target } => import::key_config(source, target, &mut config),
        Config::Compose {
            include,
            exclude,
            include_orphans,
            integrate,
            integrate_first,
        } => compose::key_config(
            loaded,
            compose::Settings {
                include,
                exclude,
                include_orphans: *include_orphans,
                integrate: *integrate,
                integrate_first: *integrate_first,
            },
            staged,
            &mut config,
        ),
        Config::Script {
            layout,
            root_read_only,
            output,
        } => script::key_config(layout, *root_read_only, output, staged, &mut config),
        Config::Filter {
            include,
            exclude,
            include_orphans,
            ..
        } => filter::key_config(
            loaded,
            el,
            filter::Settings {
                include,
                exclude,
                include_orphans: *include_orphans,
            },
            &mut config,
        ),
        Config::Sandbox | Config::Stack => {}
    }
    if !matches!(
        el.config,
        Config::Import { .. } | Config::Stack | Config::Filter { .. }
    ) {
        // the behaviours that merge what they stage
        overlap_key_config(loaded, staged, &mut config);
        if el.overlaps_allowed {
            // BuildStream's default: a later element replaces earlier files
            config.insert("overlaps".into(), vec!["allowed".into()]);
        }
    }
    if crate::checks::libraries_checked(el) && el.checks.libraries != cas_format::Severity::Warn {
        // the libraries check's setting, when not the default (spec/keys.md)
        config.insert(
            "check-libraries".into(),
            vec![el.checks.libraries.name().into()],
        );
    }
    if crate::checks::architecture_checked(el) {
        // the architecture check's setting, when not the default (spec/keys.md)
        if el.checks.architecture != cas_format::Severity::Error {
            config.insert(
                "check-architecture".into(),
                vec![el.checks.architecture.name().into()],
            );
        }
        if !el.checks.architecture_exempt.is_empty() {
            config.insert(
                "architecture-exempt".into(),
                el.checks.architecture_exempt.clone(),
            );
        }
    }
    if let Some(w) = &el.workdir {
        // only when the kind says where commands run (spec/keys.md)
        config.insert("workdir".into(), vec![w.clone()]);
    }
    config
}

/// `overlap-whitelist`: each staged element's whitelist entry as `i\tglob`
/// (its staging position), present only when one is declared, so that the
/// keys of projects without overlaps are unchanged (spec/keys.md).
fn overlap_key_config(
    loaded: &Loaded,
    staged: &[(ElementId, TreeDigest)],
    config: &mut BTreeMap<String, Vec<String>>,
) {
    let entries: Vec<String> = staged
        .iter()
        .enumerate()
        .flat_map(|(i, (d, _))| {
            loaded
                .element(*d)
                .public
                .overlap_whitelist
                .iter()
                .map(move |p| format!("{i}\t{p}"))
        })
        .collect();
    if !entries.is_empty() {
        config.insert("overlap-whitelist".into(), entries);
    }
}

/// Everything one step's assembly works with.
pub(crate) struct Work<'e, 'a> {
    pub engine: &'e Engine<'a>,
    pub el: &'e Element,
    pub inputs: &'e KeyInputs,
    pub staged: &'e [(ElementId, TreeDigest)],
    pub dir: &'e BuildDir,
    pub log: &'e mut File,
}

/// Assembles the output of a step whose key was a miss.
pub(crate) fn assemble(work: Work<'_, '_>) -> Result<TreeDigest> {
    match &work.el.config {
        Config::Stack => stack::assemble(work),
        Config::Import { source, target } => import::assemble(work, source, target),
        Config::Sandbox => sandboxed::assemble(work),
        Config::Filter {
            include,
            exclude,
            include_orphans,
            ..
        } => filter::assemble(
            work,
            filter::Settings {
                include,
                exclude,
                include_orphans: *include_orphans,
            },
        ),
        Config::Script {
            layout,
            root_read_only,
            output,
        } => script::assemble(work, layout, *root_read_only, output),
        Config::Compose {
            include,
            exclude,
            include_orphans,
            integrate,
            integrate_first,
        } => compose::assemble(
            work,
            compose::Settings {
                include,
                exclude,
                include_orphans: *include_orphans,
                integrate: *integrate,
                integrate_first: *integrate_first,
            },
        ),
    }
}
