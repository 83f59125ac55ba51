//! The variables an element was built with, recorded with its result as the
//! note `variables` (spec/store.md), so that `cas explain` can name the
//! variable behind a changed command, not only the command:
//!
//! ```text
//! cas-variables 1
//! <name>\t<value>          one per variable, sorted by name
//! ```
//!
//! A backslash, tab and newline in a value are written `\\`, `\t`, `\n`.

use std::collections::BTreeMap;

use crate::escape::{escape, unescape};

/// The note's name.
pub const VARIABLES_NOTE: &str = "variables";

const MAGIC: &str = "cas-variables 1";

pub fn encode(vars: &BTreeMap<String, String>) -> Vec<u8> {
    let mut s = format!("{MAGIC}\n");
    for (k, v) in vars {
        s += &format!("{}\t{}\n", escape(k), escape(v));
    }
    s.into_bytes()
}

/// Strict: exactly what [`encode`] writes.
pub fn decode(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split_terminator('\n');
    if lines.next()? != MAGIC {
        return None;
    }
    let mut vars = BTreeMap::new();
    for l in lines {
        let (k, v) = l.split_once('\t')?;
        vars.insert(unescape(k)?, unescape(v)?);
    }
    (encode(&vars) == bytes).then_some(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_encoding_round_trips_and_is_strict() {
        let vars: BTreeMap<String, String> = [
            ("make-args".to_string(), "CC=cc\tV=1".to_string()),
            ("greeting".to_string(), "hello\nworld".to_string()),
        ]
        .into();
        let text = String::from_utf8(encode(&vars)).unwrap();
        assert_eq!(
            text,
            "cas-variables 1\ngreeting\thello\\nworld\nmake-args\tCC=cc\\tV=1\n"
        );
        assert_eq!(decode(text.as_bytes()), Some(vars));
        assert_eq!(decode(b"cas-variables 1\nb\t1\na\t2\n"), None, "not sorted");
        assert_eq!(decode(b"cas-variables 2\n"), None);
    }
}
