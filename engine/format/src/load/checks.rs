//! Checks that need every element resolved.

use crate::diagnostics::{Error, Files};
use crate::element::{Element, ElementId};
use crate::graph;

/// Filter elements, once every element is resolved: their domains must be
/// those of the element they filter, and with `pass-integration` they carry
/// its integration commands (filters of filters in dependency order).
pub(super) fn filters(files: &Files, elements: &mut [Element]) -> Vec<Error> {
    use crate::element::Config;
    let mut errors = Vec::new();
    let ids: Vec<ElementId> = elements
        .iter()
        .filter(|e| matches!(e.config, Config::Filter { .. }))
        .map(|e| e.id)
        .collect();
    let order = graph::topo_order(elements, &ids.iter().copied().collect());
    for id in order {
        let Config::Filter {
            include,
            exclude,
            pass_integration,
            ..
        } = elements[id.index()].config.clone()
        else {
            continue;
        };
        let Some(&dep) = elements[id.index()].build_depends.first() else {
            continue;
        };
        let dep_public = elements[dep.index()].public.clone();
        let e = &elements[id.index()];
        for d in include.iter().chain(&exclude) {
            if !dep_public.split_rules.contains_key(d) {
                errors.push(
                    files
                        .error(
                            e.origin.kind_span,
                            format!(
                                "filter `{}`: `{}` has no split-rule domain `{d}`",
                                e.name,
                                elements[dep.index()].name
                            ),
                            "unknown domain",
                        )
                        .with_help(format!(
                            "its domains: {}",
                            dep_public
                                .split_rules
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                );
            }
        }
        if pass_integration {
            let e = &mut elements[id.index()];
            let mut ic = dep_public.integration_commands.clone();
            ic.append(&mut e.public.integration_commands);
            e.public.integration_commands = ic;
        }
    }
    errors
}

/// A plugin kind that cas does not implement is said once, at its first use.
pub(super) fn dedupe_plugin_errors(errors: &mut Vec<Error>) {
    errors.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| !e.message.contains("comes from a plugin") || seen.insert(e.message.clone()));
}
