//! Relationship fields (`Depends`, `Pre-Depends`, `Provides`): comma
//! separated groups of `|`-separated alternatives, each
//! `name[:arch] [(op version)] [[archs]] [<profiles>]`. Architecture
//! qualifiers (`:any`, `:native`) are dropped: one architecture is resolved
//! at a time; architecture lists and build profiles only appear in source
//! packages and are ignored.

use crate::version::{Op, Version};

/// One alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    pub constraint: Option<(Op, Version)>,
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({} {v})", op.as_str())?;
        }
        Ok(())
    }
}

/// Groups of alternatives, as written. Unreadable alternatives are errors
/// naming them.
pub fn parse(field: &str) -> Result<Vec<Vec<Relation>>, String> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        let group = group.trim();
        if group.is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in group.split('|') {
            alts.push(parse_one(alt.trim())?);
        }
        groups.push(alts);
    }
    Ok(groups)
}

fn parse_one(s: &str) -> Result<Relation, String> {
    // Drop `[arch list]` and `<profiles>` (a `<` inside parentheses is an
    // operator).
    let mut text = String::with_capacity(s.len());
    let (mut paren, mut skip) = (false, None::<char>);
    for c in s.chars() {
        match (skip, c) {
            (Some(end), _) if c == end => skip = None,
            (Some(_), _) => {}
            (None, '(') => {
                paren = true;
                text.push(c);
            }
            (None, ')') => {
                paren = false;
                text.push(c);
            }
            (None, '[') => skip = Some(']'),
            (None, '<') if !paren => skip = Some('>'),
            (None, _) => text.push(c),
        }
    }
    let text = text.trim();
    let (name, rest) = match text.find(|c: char| c.is_whitespace() || c == '(') {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    };
    let name = name.split(':').next().unwrap_or(name);
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    {
        return Err(format!("`{s}` is not a package relation"));
    }
    let constraint = if rest.is_empty() {
        None
    } else {
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("`{s}`: expected `(op version)` after the name"))?
            .trim();
        let split = inner
            .find(|c: char| !matches!(c, '<' | '>' | '='))
            .ok_or_else(|| format!("`{s}`: no version"))?;
        let op = Op::parse(inner[..split].trim())
            .ok_or_else(|| format!("`{s}`: unknown operator `{}`", &inner[..split]))?;
        let v = inner[split..].trim();
        if v.is_empty() {
            return Err(format!("`{s}`: no version"));
        }
        Some((op, Version::parse(v)))
    };
    Ok(Relation {
        name: name.to_owned(),
        constraint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_alternatives_and_constraints() {
        let g = parse("libc6 (>= 2.34), awk | mawk:any, perl:any, foo (<< 2~) [amd64] <!nocheck>")
            .unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g[0][0].to_string(), "libc6 (>= 2.34)");
        assert_eq!(
            g[1].iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["awk", "mawk"]
        );
        assert_eq!(g[2][0].name, "perl");
        assert_eq!(g[3][0].to_string(), "foo (<< 2~)");
        assert!(parse("Foo").is_err());
        assert!(parse("foo (>= )").is_err());
        assert!(parse("foo (=> 1)").is_err());
        assert_eq!(parse(" , ").unwrap().len(), 0);
    }
}
