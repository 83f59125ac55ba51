//! Comment-preserving edits of element files (`cas source track`): the
//! scalar value of one key of the N-th source is replaced in the text, using
//! the spans of `yaml.rs`; every other byte (comments, quoting elsewhere,
//! key order, blank lines) is left as it was.

use std::path::Path;

use crate::diagnostics::{Error, FileId, SourceFile};
use crate::yaml::{self, Style, Value};

/// The result of [`set_source_field`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// The whole new text of the file.
    pub text: String,
    /// The value that was replaced.
    pub old: String,
}

/// Replace the value of `key` in source number `index` (0-based, in
/// `sources:` order) of the element file `path` whose content is `text`.
/// The new value keeps the old one's quotes (`'...'` or `"..."`), if any;
/// `value` must be a plain scalar (hex digits, a commit id...).
pub fn set_source_field(
    path: &Path,
    text: &str,
    index: usize,
    key: &str,
    value: &str,
) -> Result<Edited, Box<Error>> {
    set(path, text, index, key, value).map_err(Box::new)
}

#[allow(clippy::result_large_err)] // boxed by the public wrapper
fn set(path: &Path, text: &str, index: usize, key: &str, value: &str) -> Result<Edited, Error> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
    {
        return Err(Error::plain(format!(
            "cannot write `{value}` as a plain YAML value"
        )));
    }
    let file = SourceFile::new(
        path.to_path_buf(),
        path.display().to_string(),
        text.to_owned(),
    );
    let root = yaml::parse(&file, FileId(0))
        .map_err(|mut errors| errors.remove(0))?
        .ok_or_else(|| Error::plain(format!("{}: the file is empty", path.display())))?;
    let map = root.as_map().ok_or_else(|| {
        Error::at(
            &file,
            root.span,
            "an element file must be a mapping",
            "not a mapping",
        )
    })?;
    let (sources_key, sources) = map.get_entry("sources").ok_or_else(|| {
        Error::at(
            &file,
            root.span,
            "the element has no `sources:`",
            "no sources",
        )
    })?;
    let Value::Seq(items) = &sources.value else {
        return Err(Error::at(
            &file,
            sources_key.span,
            "`sources` is not a list",
            "expected a list",
        ));
    };
    let item = items.get(index).ok_or_else(|| {
        Error::at(
            &file,
            sources_key.span,
            format!(
                "the element has {} source(s), there is no source number {}",
                items.len(),
                index + 1
            ),
            "sources",
        )
    })?;
    let source = item.as_map().ok_or_else(|| {
        Error::at(
            &file,
            item.span,
            "this source is not a mapping",
            "not a mapping",
        )
    })?;
    let (k, node) = source.get_entry(key).ok_or_else(|| {
        Error::at(
            &file,
            item.span,
            format!("this source has no `{key}:` to update"),
            format!("add `{key}:` here"),
        )
    })?;
    let old = match &node.value {
        Value::Scalar(s, Style::Plain | Style::Quoted) => s.clone(),
        Value::Null => String::new(),
        _ => {
            return Err(Error::at(
                &file,
                node.span,
                format!("`{key}` must be a single-line scalar to be updated"),
                "not a plain value",
            ))
        }
    };
    let (start, end) = (node.span.start as usize, node.span.end as usize);
    #[allow(
        clippy::single_match_else,
        reason = "the empty value is the special case, written out first"
    )]
    let replacement = match &node.value {
        // An empty value (`sha256:` followed by nothing) has an empty span: write after the key.
        Value::Null => {
            let after_key = text[k.span.end as usize..]
                .find(':')
                .map(|i| k.span.end as usize + i + 1);
            let at = after_key.ok_or_else(|| {
                Error::at(&file, k.span, "cannot find the `:` after this key", "here")
            })?;
            let mut out = String::with_capacity(text.len() + value.len() + 1);
            out.push_str(&text[..at]);
            out.push(' ');
            out.push_str(value);
            let rest = &text[at..];
            // drop a literal `~` / `null` written as the value
            let trimmed = rest.trim_start_matches(' ');
            let skip = ["~", "null", "Null", "NULL"].iter().find(|w| {
                trimmed.starts_with(**w)
                    && trimmed[w.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| c.is_whitespace() || c == '#')
            });
            match skip {
                Some(w) => out.push_str(&rest[rest.len() - trimmed.len() + w.len()..]),
                None => out.push_str(rest),
            }
            return Ok(Edited { text: out, old });
        }
        _ => {
            let raw = text
                .get(start..end)
                .ok_or_else(|| Error::plain(format!("{}: bad span", path.display())))?;
            match raw.chars().next() {
                Some(q @ ('"' | '\'')) => format!("{q}{value}{q}"),
                _ => value.to_owned(),
            }
        }
    };
    // A quoted scalar's span may run past its closing quote (up to a
    // comment): end it at the closing quote.
    let end = match text[start..].chars().next() {
        Some(q @ ('"' | '\'')) => closing_quote(&text[start..], q).map_or(end, |i| start + i + 1),
        _ => end,
    };
    let mut out = String::with_capacity(text.len() + value.len());
    out.push_str(&text[..start]);
    out.push_str(&replacement);
    out.push_str(&text[end..]);
    // the result must still parse and hold the new value
    let check = SourceFile::new(path.to_path_buf(), path.display().to_string(), out.clone());
    let ok = yaml::parse(&check, FileId(0))
        .ok()
        .flatten()
        .is_some_and(|root| {
            root.as_map()
                .and_then(|m| m.get("sources"))
                .and_then(|s| match &s.value {
                    Value::Seq(items) => items.get(index),
                    _ => None,
                })
                .and_then(|s| s.as_map())
                .and_then(|m| m.get(key))
                .and_then(|n| n.as_str())
                == Some(value)
        });
    if !ok {
        return Err(Error::at(
            &file,
            node.span,
            format!("cannot rewrite `{key}` here without changing the file's structure"),
            "edit this value by hand",
        ));
    }
    Ok(Edited { text: out, old })
}

/// Byte index of the quote that closes the scalar opened by `q` at the start of `s`.
fn closing_quote(s: &str, q: char) -> Option<usize> {
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if q == '"' => {
                chars.next();
            }
            '\'' if q == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                chars.next();
            }
            c if c == q => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str, index: usize, key: &str, value: &str) -> Result<Edited, Box<Error>> {
        set_source_field(Path::new("e.yaml"), text, index, key, value)
    }

    const EL: &str = "# the element\nkind: import   # keep me\nsources:\n  # first\n  - kind: local\n    path: x\n  - kind: tar\n    url: upstream:a.tar.gz  # the tarball\n    sha256: 0000  # pinned\n    base-dir: ''\n  - {kind: git, url: 'file:///r', ref: \"aaaa\", track: main}\n";

    #[test]
    fn plain_quoted_flow() {
        let e = set(EL, 1, "sha256", "ffff").unwrap();
        assert_eq!(e.old, "0000");
        assert_eq!(
            e.text,
            EL.replace("sha256: 0000  # pinned", "sha256: ffff  # pinned")
        );
        let e = set(EL, 2, "ref", "bbbb").unwrap();
        assert_eq!(e.old, "aaaa");
        assert_eq!(e.text, EL.replace("ref: \"aaaa\"", "ref: \"bbbb\""));
        let single = EL.replace("sha256: 0000", "sha256: '0000'");
        let e = set(&single, 1, "sha256", "ffff").unwrap();
        assert_eq!(e.text, single.replace("'0000'", "'ffff'"));
    }

    #[test]
    fn empty_value_and_errors() {
        let t = "sources:\n  - kind: tar\n    sha256:   # fill me\n    url: x\n";
        let e = set(t, 0, "sha256", "ab").unwrap();
        assert_eq!(
            e.text,
            "sources:\n  - kind: tar\n    sha256: ab   # fill me\n    url: x\n"
        );
        let t = "sources:\n  - kind: tar\n    sha256: ~\n";
        assert_eq!(
            set(t, 0, "sha256", "ab").unwrap().text,
            "sources:\n  - kind: tar\n    sha256: ab\n"
        );
        assert!(set(EL, 5, "sha256", "ab").is_err());
        assert!(set(EL, 0, "sha256", "ab").is_err());
        assert!(set(EL, 1, "sha256", "a b").is_err());
        assert!(set("kind: x\n", 0, "sha256", "ab").is_err());
    }

    #[test]
    fn non_ascii_before() {
        let t = "description: héllo wörld\nsources:\n  - kind: tar\n    sha256: \"00\"\n";
        let e = set(t, 0, "sha256", "ff").unwrap();
        assert_eq!(e.text, t.replace("\"00\"", "\"ff\""));
    }
}
