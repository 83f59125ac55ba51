//! deb822 control stanzas: `Field: value` lines, continuation lines
//! starting with a space or tab, stanzas separated by blank lines.
//! Field names compare case-insensitively, as dpkg's do.

use crate::error::DebianError;

/// One stanza: fields in the order written (names as written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    pub fields: Vec<(String, String)>,
    /// 1-based line of the stanza's first field.
    pub line: usize,
}

impl Stanza {
    /// The value of `name` (case-insensitive), continuation lines joined by
    /// `\n`, surrounding whitespace trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse every stanza of `text`; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<Stanza>, DebianError> {
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, v)) = cur.fields.last_mut() else {
                return Err(DebianError::Syntax {
                    file: file.to_owned(),
                    line: n,
                    reason: "continuation line before any field".into(),
                });
            };
            v.push('\n');
            v.push_str(line.trim());
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(DebianError::Syntax {
                file: file.to_owned(),
                line: n,
                reason: format!("expected `Field: value`, found `{line}`"),
            });
        };
        if cur.fields.is_empty() {
            cur.line = n;
        }
        cur.fields.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Parse `text` as exactly one stanza (a package's own `control` file);
/// none, or a second one, is an error at its line.
pub fn parse_one(file: &str, text: &str) -> Result<Stanza, DebianError> {
    let mut stanzas = parse(file, text)?.into_iter();
    let Some(first) = stanzas.next() else {
        return Err(DebianError::Syntax {
            file: file.to_owned(),
            line: 1,
            reason: "no stanza (a package's control file holds one)".into(),
        });
    };
    if let Some(second) = stanzas.next() {
        return Err(DebianError::Syntax {
            file: file.to_owned(),
            line: second.line,
            reason: format!(
                "a second stanza{} (a package's control file holds one)",
                second
                    .get("Package")
                    .map(|p| format!(" (Package: {p})"))
                    .unwrap_or_default()
            ),
        });
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_fields_and_continuations() {
        let s = parse(
            "t",
            "Package: a\nDescription: one\n two\n .\n\n\nPackage: b\nversion: 1\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].get("description"), Some("one\ntwo\n."));
        assert_eq!(s[1].get("Version"), Some("1"));
        assert_eq!(s[1].line, 7);
        let e = parse("t", "Package: a\nbroken line\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t:2: expected `Field: value`, found `broken line`"
        );
    }

    #[test]
    fn a_package_control_file_is_one_stanza() {
        let one = parse_one("c", "\n# comment\nPackage: a\nVersion: 1\n\n\n").unwrap();
        assert_eq!(one.get("package"), Some("a"));
        let e = parse_one(
            "p.deb (control)",
            "Package: a\n\nPackage: libc6\nVersion: 9\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.deb (control):3: a second stanza (Package: libc6) (a package's control file holds one)"
        );
        let e = parse_one("c", "\n\n").unwrap_err();
        assert!(e.to_string().starts_with("c:1: no stanza"), "{e}");
    }
}
