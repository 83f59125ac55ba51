//! What the load says once: a plugin kind cas does not implement, at its
//! first use.

use crate::diagnostics::Error;

/// A plugin kind that cas does not implement is said once, at its first use.
pub(super) fn dedupe_plugin_errors(errors: &mut Vec<Error>) {
    errors.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| !e.message.contains("comes from a plugin") || seen.insert(e.message.clone()));
}
