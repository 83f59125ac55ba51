//! Every `--json` document: one JSON object on stdout whose first member is
//! `"schema": N`, the version of that command's document (spec/cli.md,
//! "JSON documents"). A change that removes or renames a field, or changes
//! a field's meaning, bumps it; added fields do not.

use serde::Serialize;

use crate::exit::Failure;

/// The version of every `--json` document today.
pub(crate) const SCHEMA: u32 = 1;

/// `v` as JSON with `"schema"` first (serialised once, member order kept).
pub(crate) fn to_string(v: &impl Serialize, pretty: bool) -> Result<String, Failure> {
    let s = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .map_err(Failure::error)?;
    Ok(match s.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"schema\":{SCHEMA}}}"),
        Some(rest) => format!("{{\"schema\":{SCHEMA},{rest}"),
        // every document is an object; anything else is wrapped
        None => format!("{{\"schema\":{SCHEMA},\"value\":{s}}}"),
    })
}

/// Print `v` (one line) on stdout.
#[allow(
    clippy::print_stdout,
    reason = "the one place --json documents are printed"
)]
pub(crate) fn print(v: &impl Serialize) -> Result<(), Failure> {
    println!("{}", to_string(v, false)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_comes_first_and_order_is_kept() {
        let v = serde_json::json!({"b": 1, "a": [2]});
        let s = super::to_string(&v, false).ok().unwrap();
        assert!(s.starts_with("{\"schema\":1,"), "{s}");
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["a"][0], 2);
        assert_eq!(
            super::to_string(&serde_json::json!({}), false)
                .ok()
                .unwrap(),
            "{\"schema\":1}"
        );
        let p = super::to_string(&v, true).ok().unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&p).is_ok(), "{p}");
    }
}
