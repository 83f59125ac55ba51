//! Plain data as BuildStream shows an element's configuration, public
//! data, variables and environment (`bst show --format '%{config}'`):
//! every scalar a string, mappings in the order written. [`Data::to_yaml`]
//! renders it as BuildStream's YAML dumper does (block style, plain
//! scalars where YAML allows them, single quotes otherwise, double quotes
//! for what single quotes cannot hold); JSON renders it as strings,
//! arrays and objects.

use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// A string, a list or a mapping (keys in order, each once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// `~` or nothing, written `null`.
    Null,
    Str(String),
    List(Vec<Data>),
    Map(Vec<(String, Data)>),
}

impl Default for Data {
    fn default() -> Self {
        Data::Map(Vec::new())
    }
}

impl serde::Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Null => s.serialize_none(),
            Data::Str(v) => s.serialize_str(v),
            Data::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Data::Map(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl Data {
    /// A mapping of strings.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Data {
        Data::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), Data::Str(v.to_string())))
                .collect(),
        )
    }

    /// A list of strings.
    pub fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Data {
        Data::List(
            items
                .into_iter()
                .map(|s| Data::Str(s.as_ref().to_string()))
                .collect(),
        )
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Data> {
        match self {
            Data::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Set `key` in a mapping (replacing its value in place, or last).
    pub fn set(&mut self, key: &str, value: Data) {
        if let Data::Map(m) = self {
            match m.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => m.push((key.to_string(), value)),
            }
        }
    }

    /// Apply `f` to every string (values only, not keys).
    pub fn map_strings(&mut self, f: &mut impl FnMut(&str) -> String) {
        let mut todo = vec![self];
        while let Some(d) = todo.pop() {
            match d {
                Data::Str(s) => *s = f(s),
                Data::Null => {}
                Data::List(items) => todo.extend(items.iter_mut()),
                Data::Map(m) => todo.extend(m.iter_mut().map(|(_, v)| v)),
            }
        }
    }

    /// The YAML document BuildStream prints for this value (ending with a
    /// newline): `{}` and `[]` when empty.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        match self {
            Data::Map(m) if m.is_empty() => out.push_str("{}\n"),
            Data::List(l) if l.is_empty() => out.push_str("[]\n"),
            Data::Str(s) => {
                out.push_str(&scalar(s, false));
                out.push('\n');
            }
            Data::Null => out.push_str("null\n"),
            _ => block(self, 0, &mut out),
        }
        out
    }
}

/// A mapping or a list in block style at `indent`, each entry on its own
/// line; the first line starts at the current position (after `- ` for a
/// list item), the others at `indent`.
fn block(d: &Data, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let mut first = true;
    let mut line = |out: &mut String| {
        if !std::mem::take(&mut first) {
            out.push_str(&pad);
        }
    };
    match d {
        Data::Map(m) => {
            for (k, v) in m {
                line(out);
                out.push_str(&scalar(k, true));
                out.push(':');
                value(v, indent, indent + 2, false, out);
            }
        }
        Data::List(items) => {
            for v in items {
                line(out);
                out.push('-');
                match v {
                    Data::Map(m) if !m.is_empty() => {
                        out.push(' ');
                        block(v, indent + 2, out);
                    }
                    Data::List(l) if !l.is_empty() => {
                        out.push(' ');
                        block(v, indent + 2, out);
                    }
                    _ => value(v, indent, indent + 2, true, out),
                }
            }
        }
        Data::Str(s) => {
            out.push_str(&scalar(s, false));
            out.push('\n');
        }
        Data::Null => out.push_str("null\n"),
    }
}

/// What follows `key:` or `-`: a scalar or empty collection on the same
/// line, else the collection on the next lines (a list under a key is not
/// indented, as BuildStream's dumper writes it).
fn value(v: &Data, parent: usize, child: usize, item: bool, out: &mut String) {
    match v {
        // an empty string is written as nothing at all
        Data::Null => out.push_str(" null\n"),
        Data::Str(s) if s.is_empty() && item => out.push_str(" \n"),
        Data::Str(s) if s.is_empty() => out.push('\n'),
        Data::Str(s) => {
            out.push(' ');
            out.push_str(&scalar(s, false));
            out.push('\n');
        }
        Data::Map(m) if m.is_empty() => out.push_str(" {}\n"),
        Data::List(l) if l.is_empty() => out.push_str(" []\n"),
        Data::Map(_) => {
            out.push('\n');
            out.push_str(&" ".repeat(child));
            block(v, child, out);
        }
        Data::List(_) => {
            out.push('\n');
            out.push_str(&" ".repeat(parent));
            block(v, parent, out);
        }
    }
}

/// Whether YAML can hold `s` as a plain scalar in block context.
fn plain_ok(s: &str, key: bool) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    if s.contains(['\n', '\r', '\t']) || s.chars().any(char::is_control) {
        return false;
    }
    if first == b' ' || b[b.len() - 1] == b' ' {
        return false;
    }
    let followed_by_space = |i: usize| b.get(i + 1).is_none_or(|c| *c == b' ');
    if b"#,[]{}&*!|>'\"%@`".contains(&first) {
        return false;
    }
    if matches!(first, b'-' | b'?' | b':') && followed_by_space(0) {
        return false;
    }
    if key && matches!(first, b'?' | b':') {
        return false;
    }
    for i in 0..b.len() {
        if b[i] == b':' && followed_by_space(i) {
            return false;
        }
        if b[i] == b'#' && i > 0 && b[i - 1] == b' ' {
            return false;
        }
        if key && b",[]{}".contains(&b[i]) {
            return false;
        }
    }
    true
}

/// One scalar (a mapping's key with `key`).
fn scalar(s: &str, key: bool) -> String {
    if plain_ok(s, key) {
        return s.to_string();
    }
    // BuildStream's dumper writes a string with a line break, or a
    // control character, on one line between double quotes
    // (and one with a `'`, which BuildStream's dumper never single-quotes)
    let double = s.is_empty() && key || s.chars().any(char::is_control) || s.contains('\'');
    if double {
        return double_quoted(s);
    }
    single_quoted(s)
}

/// Single quotes (`'` doubled), for a one-line string.
fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::Data;

    fn s(v: &str) -> Data {
        Data::Str(v.to_string())
    }

    #[test]
    fn renders_block_yaml_as_buildstream_prints_it() {
        let d = Data::Map(vec![
            ("a".into(), s("/usr/bin")),
            ("empty".into(), s("")),
            ("pct".into(), s("%{x}")),
            ("list".into(), Data::List(vec![s("one"), s("two: three")])),
            (
                "nested".into(),
                Data::Map(vec![("k".into(), Data::List(vec![]))]),
            ),
            ("m".into(), Data::Map(vec![])),
        ]);
        assert_eq!(
            d.to_yaml(),
            "a: /usr/bin\nempty:\npct: '%{x}'\nlist:\n- one\n- 'two: three'\nnested:\n  k: []\nm: {}\n"
        );
        assert_eq!(Data::List(vec![]).to_yaml(), "[]\n");
        assert_eq!(Data::default().to_yaml(), "{}\n");
    }

    #[test]
    fn multi_line_strings_are_double_quoted_on_one_line() {
        let d = Data::Map(vec![("c".into(), s("a \\\n--b\n\nc's \"x\""))]);
        assert_eq!(d.to_yaml(), "c: \"a \\\\\\n--b\\n\\nc's \\\"x\\\"\"\n");
        let d = Data::Map(vec![("c".into(), s("make "))]);
        assert_eq!(d.to_yaml(), "c: 'make '\n");
        let d = Data::List(vec![Data::Map(vec![
            ("x".into(), s("1")),
            ("y".into(), Data::List(vec![s("z")])),
        ])]);
        assert_eq!(d.to_yaml(), "- x: 1\n  y:\n  - z\n");
    }
}
