//! The only module that touches YAML. It turns `saphyr-parser` events into a
//! small spanned tree (`Node`): mappings keep their key order and the span of
//! every key, scalars keep their span and quoting style. Duplicate keys, tabs
//! used for indentation, anchors/aliases, tags, several documents and deep
//! nesting are rejected here with a located error. See spec/format.md.

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::diagnostics::{Error, FileId, SourceFile, Span};

/// Deeper nesting than this is an error (no element needs more than a few levels).
pub const MAX_DEPTH: usize = 64;
/// More nodes than this in one file is an error.
pub const MAX_NODES: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub struct Map {
    pub entries: Vec<(Key, Node)>,
}

impl Map {
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }
    pub fn get_entry(&self, name: &str) -> Option<(&Key, &Node)> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(k, v)| (k, v))
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Node)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    /// `~`, `null`, or nothing at all.
    Null,
    Scalar(String, Style),
    Seq(Vec<Node>),
    Map(Map),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

impl Node {
    /// What the node is, for "expected X, found Y".
    pub fn describe(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing (null)",
            Value::Scalar(s, Style::Plain) if s == "true" || s == "false" => "a boolean",
            Value::Scalar(s, Style::Plain) if s.parse::<f64>().is_ok() => "a number",
            Value::Scalar(..) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s, _) => Some(s),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }
}

enum Frame {
    Seq {
        start: Span,
        items: Vec<Node>,
    },
    Map {
        start: Span,
        map: Map,
        key: Option<Key>,
    },
}

/// Converts the parser's character indices into byte offsets.
struct Offsets<'a> {
    text: &'a str,
    /// byte offset of each char (only when the text is not ASCII)
    table: Option<Vec<u32>>,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        let table = if text.is_ascii() {
            None
        } else {
            let mut t: Vec<u32> = text.char_indices().map(|(i, _)| i as u32).collect();
            t.push(text.len() as u32);
            Some(t)
        };
        Offsets { text, table }
    }
    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.text.len()),
            Some(t) => t
                .get(char_index)
                .copied()
                .map_or(self.text.len(), |b| b as usize),
        }
    }
}

/// Parse one file into a node tree. An empty document (only comments, or
/// nothing) gives `Ok(None)`. Structural problems end the parse (one error);
/// duplicate keys are all reported.
pub fn parse(file: &SourceFile, id: FileId) -> Result<Option<Node>, Vec<Error>> {
    let text: &str = &file.text;
    let off = Offsets::new(text);
    let span_of =
        |s: saphyr_parser::Span| Span::new(id, off.byte(s.start.index()), off.byte(s.end.index()));
    let mut errors = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;
    let fail = |errors: &mut Vec<Error>, span: Span, msg: &str, label: &str| {
        errors.push(Error::at(file, span, msg, label));
    };

    // YAML allows no control characters but tab, line feed and carriage
    // return: say so at the first one (the scanner's own message for a NUL
    // is about tabs or an unterminated scalar).
    if let Some((at, c)) = text.char_indices().find(|&(_, c)| {
        (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{85}'))
            || c == '\u{FFFE}'
            || c == '\u{FFFF}'
    }) {
        let name = match c {
            '\0' => " (NUL)".to_string(),
            '\u{1b}' => " (ESC)".to_string(),
            _ => String::new(),
        };
        errors.push(
            Error::at(
                file,
                Span::new(id, at, at + c.len_utf8()),
                format!("control character U+{:04X}{name} in the file", c as u32),
                "control character",
            )
            .with_help(
                "YAML files are text: remove the character (a binary file or an editor mishap?)",
            ),
        );
        return Err(errors);
    }
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, raw_span) = match parser.next_event() {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                errors.push(scan_error(file, id, &off, &e));
                return Err(errors);
            }
        };
        let span = span_of(raw_span);
        nodes += 1;
        if nodes > MAX_NODES {
            fail(
                &mut errors,
                span,
                "file too large: too many YAML nodes",
                "here",
            );
            return Err(errors);
        }
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    fail(
                        &mut errors,
                        span,
                        "more than one YAML document in this file",
                        "a second document starts here",
                    );
                    return Err(errors);
                }
                continue;
            }
            Event::Alias(_) => {
                fail(
                    &mut errors,
                    span,
                    "YAML aliases (`*name`) are not supported",
                    "alias",
                );
                if let Some(e) = errors.last_mut() {
                    e.help = Some(
                        "write the value out; anchors and aliases are rejected (see spec/format.md)"
                            .into(),
                    );
                }
                return Err(errors);
            }
            Event::Scalar(value, style, anchor, tag) => {
                if anchor != 0 {
                    fail(
                        &mut errors,
                        span,
                        "YAML anchors (`&name`) are not supported",
                        "anchor",
                    );
                    return Err(errors);
                }
                if tag.is_some() {
                    fail(
                        &mut errors,
                        span,
                        "YAML tags (`!tag`) are not supported",
                        "tagged value",
                    );
                    return Err(errors);
                }
                let value = match style {
                    ScalarStyle::Plain
                        if matches!(&*value, "" | "~" | "null" | "Null" | "NULL") =>
                    {
                        Value::Null
                    }
                    ScalarStyle::Plain => Value::Scalar(value.into_owned(), Style::Plain),
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                        Value::Scalar(value.into_owned(), Style::Quoted)
                    }
                    ScalarStyle::Literal | ScalarStyle::Folded => {
                        Value::Scalar(value.into_owned(), Style::Block)
                    }
                };
                Node { span, value }
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag)
                if anchor != 0 || tag.is_some() =>
            {
                let what = if anchor != 0 {
                    "YAML anchors (`&name`) are not supported"
                } else {
                    "YAML tags (`!tag`) are not supported"
                };
                fail(&mut errors, span, what, "here");
                return Err(errors);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if let Some(Frame::Map { key: None, .. }) = stack.last() {
                    fail(
                        &mut errors,
                        span,
                        "mapping keys must be strings",
                        "complex key",
                    );
                    return Err(errors);
                }
                if stack.len() >= MAX_DEPTH {
                    fail(&mut errors, span, "nesting too deep", "too deep");
                    return Err(errors);
                }
                let is_seq = matches!(event, Event::SequenceStart(..));
                stack.push(if is_seq {
                    Frame::Seq {
                        start: span,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        start: span,
                        map: Map::default(),
                        key: None,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { start, items }) => Node {
                    span: Span::new(id, start.start as usize, span.end.max(start.start) as usize),
                    value: Value::Seq(items),
                },
                Some(Frame::Map { start, map, .. }) => {
                    let end = map
                        .entries
                        .last()
                        .map_or(span.end, |(_, v)| v.span.end)
                        .max(start.end);
                    Node {
                        span: Span::new(id, start.start as usize, end as usize),
                        value: Value::Map(map),
                    }
                }
                None => continue,
            },
        };
        // attach `node` to its parent
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { map, key, .. }) => match key.take() {
                None => {
                    let name = match node.value {
                        Value::Scalar(s, _) => s,
                        Value::Null => String::new(),
                        _ => {
                            fail(
                                &mut errors,
                                node.span,
                                "mapping keys must be strings",
                                "complex key",
                            );
                            return Err(errors);
                        }
                    };
                    if let Some((first, _)) = map.entries.iter().find(|(k, _)| k.name == name) {
                        let (l, _) = file.line_col(first.span.start);
                        let e = Error::at(
                            file,
                            node.span,
                            format!("duplicate key `{name}`"),
                            "defined again here",
                        )
                        .with_help(format!(
                            "`{name}` is already defined on line {l}; keep one of them"
                        ));
                        errors.push(e);
                    }
                    *key = Some(Key {
                        name,
                        span: node.span,
                    });
                }
                Some(k) => {
                    if !map.entries.iter().any(|(e, _)| e.name == k.name) {
                        map.entries.push((k, node));
                    }
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(root)
    } else {
        Err(errors)
    }
}

fn scan_error(file: &SourceFile, id: FileId, off: &Offsets, e: &saphyr_parser::ScanError) -> Error {
    let at = off.byte(e.marker().index());
    let info = e.info();
    if info.contains("tab") {
        // point at the offending tab: the first tab in the leading whitespace
        // of the error's line, or of an earlier line
        let text: &str = &file.text;
        let line_start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
        let mut pos = None;
        for (i, line) in text[..line_start.max(at).min(text.len())]
            .split_inclusive('\n')
            .scan(0usize, |o, l| {
                let s = *o;
                *o += l.len();
                Some((s, l))
            })
        {
            let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
            if let Some(t) = line[..lead].find('\t') {
                pos = Some(i + t);
            }
        }
        let tab = pos.or_else(|| {
            text.get(line_start..)
                .and_then(|l| l.find('\t'))
                .map(|t| line_start + t)
        });
        let at = tab.unwrap_or(at);
        return Error::at(
            file,
            Span::new(id, at, at + 1),
            "tab character in indentation",
            "tab",
        )
        .with_help("YAML indentation must use spaces; replace the tab with spaces");
    }
    Error::at(
        file,
        Span::new(id, at, at),
        format!("invalid YAML: {info}"),
        info.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn p(s: &str) -> Result<Option<Node>, Vec<Error>> {
        let f = SourceFile::new(PathBuf::from("t.yaml"), "t.yaml".into(), s.into());
        parse(&f, FileId(0))
    }

    #[test]
    fn spans_and_order() {
        let n = p("kind: manual\nb: [x, \"y\"]\na:\n  c: 1\n")
            .unwrap()
            .unwrap();
        let m = n.as_map().unwrap();
        let keys: Vec<_> = m.iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(keys, ["kind", "b", "a"]);
        assert_eq!(m.entries[1].0.span.start, 13);
        assert_eq!(m.get("kind").unwrap().span.start, 6);
    }

    #[test]
    fn duplicates_and_errors() {
        let e = p("a: 1\na: 2\n").unwrap_err();
        assert!(e[0].message.contains("duplicate key `a`"));
        assert!(p("").unwrap().is_none());
        assert!(p("# only a comment\n").unwrap().is_none());
        assert!(p("a: &x 1\nb: *x\n").is_err());
        assert!(p("a: [\n").is_err());
        let t = p("a:\n\tb: 1\n").unwrap_err();
        assert!(t[0].message.contains("tab"), "{}", t[0].message);
        let deep = "[".repeat(10_000);
        assert!(p(&deep).is_err());
        let nul = p("kind: ma\0nual\n").unwrap_err();
        assert!(
            nul[0].message.contains("U+0000 (NUL)"),
            "{}",
            nul[0].message
        );
        assert_eq!(nul[0].location.as_ref().map(|l| (l.1, l.2)), Some((1, 9)));
        let nonascii = p("a: é\nb: [x\n").unwrap_err();
        assert!(nonascii[0].location.is_some());
    }
}
