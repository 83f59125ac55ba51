//! Typed reading of the YAML tree: every accessor checks the type and reports
//! a located error ("expected a list of strings, found a mapping"); unknown
//! keys get a suggestion; BuildStream's list composition lives here too.

use crate::diagnostics::{suggest, Error, Files, SourceFile, Span};
use crate::yaml::{Map, Node, Style, Value};

/// Anything that can turn a span into a located error.
pub(crate) trait Locate {
    fn error(&self, span: Span, message: String, label: &str) -> Error;
}

impl Locate for Files {
    fn error(&self, span: Span, message: String, label: &str) -> Error {
        Files::error(self, span, message, label)
    }
}

impl Locate for SourceFile {
    fn error(&self, span: Span, message: String, label: &str) -> Error {
        Error::at(self, span, message, label)
    }
}

/// A string with the span of the scalar it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spanned {
    pub value: String,
    pub span: Span,
}

/// Collects errors while reading one file (or one element).
pub(crate) struct Reader<'a, L: Locate> {
    pub loc: &'a L,
    pub errors: Vec<Error>,
}

impl<'a, L: Locate> Reader<'a, L> {
    pub(crate) fn new(loc: &'a L) -> Self {
        Reader {
            loc,
            errors: Vec::new(),
        }
    }

    pub(crate) fn err(&mut self, span: Span, message: impl Into<String>, label: &str) {
        let e = self.loc.error(span, message.into(), label);
        self.errors.push(e);
    }

    pub(crate) fn err_help(
        &mut self,
        span: Span,
        message: impl Into<String>,
        label: &str,
        help: impl Into<String>,
    ) {
        let e = self.loc.error(span, message.into(), label).with_help(help);
        self.errors.push(e);
    }

    fn type_err(&mut self, node: &Node, what: &str, key: &str) {
        let found = node.describe();
        self.err(
            node.span,
            format!("`{key}`: expected {what}, found {found}"),
            &format!("expected {what}"),
        );
    }

    /// Report every key of `map` that is not in `allowed`, with a suggestion.
    pub(crate) fn check_keys(&mut self, map: &Map, allowed: &[&str], context: &str) {
        for (k, _) in map.iter() {
            if !allowed.contains(&k.name.as_str()) {
                self.unknown_key(k.span, &k.name, allowed.iter().copied(), context);
            }
        }
    }

    pub(crate) fn unknown_key<'c>(
        &mut self,
        span: Span,
        name: &str,
        allowed: impl IntoIterator<Item = &'c str> + Clone,
        context: &str,
    ) {
        if let Some(s) = suggest(name, allowed.clone()) {
            self.err_help(
                span,
                format!("unknown key `{name}`; did you mean `{s}`?"),
                "unknown key",
                format!("replace `{name}` with `{s}`"),
            );
        } else {
            let list: Vec<&str> = allowed.into_iter().collect();
            self.err_help(
                span,
                format!("unknown key `{name}` in {context}"),
                "unknown key",
                format!("the keys allowed here are: {}", list.join(", ")),
            );
        }
    }

    /// A mapping (null = empty).
    pub(crate) fn map<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n Map> {
        match &node.value {
            Value::Map(m) => Some(m),
            Value::Null => None,
            _ => {
                self.type_err(node, "a mapping", key);
                None
            }
        }
    }

    /// A string: any scalar (`1` and `"1"` are both the string "1"); null is an error.
    pub(crate) fn string(&mut self, node: &Node, key: &str) -> Option<Spanned> {
        if let Value::Scalar(s, _) = &node.value {
            Some(Spanned {
                value: s.clone(),
                span: node.span,
            })
        } else {
            self.type_err(node, "a string", key);
            None
        }
    }

    /// `true` or `false` (plain or quoted; also `True`/`False`, as
    /// BuildStream reads them).
    pub(crate) fn bool(&mut self, node: &Node, key: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar(s, Style::Plain | Style::Quoted) if s == "true" || s == "True" => {
                Some(true)
            }
            Value::Scalar(s, Style::Plain | Style::Quoted) if s == "false" || s == "False" => {
                Some(false)
            }
            _ => {
                self.type_err(node, "`true` or `false`", key);
                None
            }
        }
    }

    /// An unsigned 32-bit integer.
    pub(crate) fn u32(&mut self, node: &Node, key: &str) -> Option<u32> {
        match &node.value {
            Value::Scalar(s, _) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(v) = s.parse::<u32>() {
                    Some(v)
                } else {
                    self.err(
                        node.span,
                        format!("`{key}`: {s} is too large (at most {})", u32::MAX),
                        "too large",
                    );
                    None
                }
            }
            _ => {
                self.type_err(node, "a non-negative integer", key);
                None
            }
        }
    }

    /// A list of strings (null = empty).
    pub(crate) fn strings(&mut self, node: &Node, key: &str) -> Vec<Spanned> {
        match &node.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match &item.value {
                        Value::Scalar(s, _) => out.push(Spanned {
                            value: s.clone(),
                            span: item.span,
                        }),
                        _ => self.type_err(item, "a string", key),
                    }
                }
                out
            }
            _ => {
                self.type_err(node, "a list of strings", key);
                Vec::new()
            }
        }
    }

    /// A mapping of string to string, in order (null = empty).
    pub(crate) fn string_map(&mut self, node: &Node, key: &str) -> Vec<(Spanned, Spanned)> {
        let Some(map) = self.map(node, key) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.entries.len());
        for (k, v) in map.iter() {
            if let Some(s) = self.string(v, &k.name) {
                out.push((
                    Spanned {
                        value: k.name.clone(),
                        span: k.span,
                    },
                    s,
                ));
            }
        }
        out
    }

    /// BuildStream list composition: `over` is either a list (replaces
    /// `base`) or a mapping with `(=)` (replace), `(<)` (prepend) and `(>)`
    /// (append).
    pub(crate) fn compose(&mut self, base: &[Spanned], over: &Node, key: &str) -> Vec<Spanned> {
        match &over.value {
            Value::Map(m) => {
                let mut out = base.to_vec();
                for (k, v) in m.iter() {
                    match k.name.as_str() {
                        "(=)" | "(<)" | "(>)" => {}
                        other => self.unknown_key(
                            k.span,
                            other,
                            ["(=)", "(<)", "(>)"],
                            "a list composition",
                        ),
                    }
                    let _ = v;
                }
                if let Some(v) = m.get("(=)") {
                    out = self.strings(v, key);
                }
                if let Some(v) = m.get("(<)") {
                    let mut pre = self.strings(v, key);
                    pre.extend(out);
                    out = pre;
                }
                if let Some(v) = m.get("(>)") {
                    out.extend(self.strings(v, key));
                }
                out
            }
            _ => self.strings(over, key),
        }
    }
}
