//! BuildStream's directives over the YAML tree: `(@)` includes, `(?)`
//! conditionals and the composition rules they share (`(=)` `(<)` `(>)` on
//! lists). Spans are kept: an error in an included file points into it.

use std::collections::BTreeMap;

use super::expr::{self, Value as OptValue};
use crate::diagnostics::{Error, Span};
use crate::read::{Locate, Reader, Spanned};
use crate::yaml::{Key, Map, Node, Value};

/// A mapping made only of list directives (`(=)`, `(<)`, `(>)`).
pub(crate) fn is_directive(m: &Map) -> bool {
    !m.entries.is_empty()
        && m.entries
            .iter()
            .all(|(k, _)| matches!(k.name.as_str(), "(=)" | "(<)" | "(>)"))
}

fn items(n: Option<&Node>) -> Vec<Node> {
    match n.map(|n| &n.value) {
        Some(Value::Seq(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => n.cloned().into_iter().collect(),
    }
}

/// Apply list directives `d` to `base`.
pub(crate) fn apply(base: &[Node], d: &Map) -> Vec<Node> {
    let mut out = match d.get("(=)") {
        Some(n) => items(Some(n)),
        None => base.to_vec(),
    };
    let mut pre = items(d.get("(<)"));
    pre.append(&mut out);
    out = pre;
    out.extend(items(d.get("(>)")));
    out
}

/// Composite `over` onto `base`, BuildStream's way: mappings merge key by
/// key, list directives apply to the list below them (or stay, to apply to
/// a list composed later), anything else replaces.
pub(crate) fn composite(base: &mut Map, over: Map) {
    for (k, v) in over.entries {
        match base.entries.iter_mut().find(|(bk, _)| bk.name == k.name) {
            None => base.entries.push((k, v)),
            // conditionals not evaluated yet (the first pass over
            // project.conf) all apply: the included ones, then the includer's
            Some((_, b)) if k.name == "(?)" => match (&mut b.value, v.value) {
                (Value::Seq(bl), Value::Seq(ol)) => bl.extend(ol),
                (_, ov) => b.value = ov,
            },
            Some((_, b)) => composite_node(b, v),
        }
    }
}

/// Composite `under` beneath `target`, BuildStream's `_composite_under`:
/// `target`'s values win; its own keys keep their places and `under`'s
/// other keys follow; inside, mappings are `under`'s with `target`'s over
/// them (their keys in `under`'s order first).
pub(crate) fn composite_under(target: &mut Map, under: Map) {
    let order: Vec<String> = target.entries.iter().map(|(k, _)| k.name.clone()).collect();
    let mut merged = under;
    composite(&mut merged, std::mem::take(target));
    let mut out = Map::default();
    for name in order {
        if let Some(pos) = merged.entries.iter().position(|(k, _)| k.name == name) {
            out.entries.push(merged.entries.remove(pos));
        }
    }
    out.entries.append(&mut merged.entries);
    *target = out;
}

fn composite_node(base: &mut Node, over: Node) {
    match (&mut base.value, over.value) {
        (Value::Seq(b), Value::Map(o)) if is_directive(&o) => {
            *b = apply(b, &o);
        }
        (Value::Map(b), Value::Map(o)) if is_directive(b) && is_directive(&o) => {
            if o.get("(=)").is_some() {
                *b = o;
            } else {
                let mut merged = Map::default();
                if let Some((k, v)) = b.get_entry("(=)") {
                    merged.entries.push((k.clone(), v.clone()));
                }
                for key in ["(<)", "(>)"] {
                    let (bk, bv) = (b.get_entry(key), o.get_entry(key));
                    let k = match (bk, bv) {
                        (Some((k, _)), _) | (None, Some((k, _))) => k.clone(),
                        (None, None) => continue,
                    };
                    let list = if key == "(<)" {
                        let mut l = items(bv.map(|(_, v)| v));
                        l.extend(items(bk.map(|(_, v)| v)));
                        l
                    } else {
                        let mut l = items(bk.map(|(_, v)| v));
                        l.extend(items(bv.map(|(_, v)| v)));
                        l
                    };
                    merged.entries.push((
                        k.clone(),
                        Node {
                            span: k.span,
                            value: Value::Seq(list),
                        },
                    ));
                }
                *b = merged;
            }
        }
        (Value::Map(b), Value::Map(o)) if !is_directive(b) && !is_directive(&o) => {
            composite(b, o);
        }
        (_, v) => {
            base.value = v;
            base.span = over.span;
        }
    }
}

/// Replace every list directive left in `node` (nothing below it to apply
/// to) by the list it describes.
pub(crate) fn resolve_lists(node: &mut Node) {
    match &mut node.value {
        Value::Map(m) if is_directive(m) => {
            let list = apply(&[], m);
            node.value = Value::Seq(list);
            resolve_lists(node);
        }
        Value::Map(m) => {
            for (_, v) in &mut m.entries {
                resolve_lists(v);
            }
        }
        Value::Seq(items) => {
            for i in items {
                resolve_lists(i);
            }
        }
        _ => {}
    }
}

/// In a cas project, `(@)` and `(?)` are BuildStream's: said plainly at
/// each, never taken for a key (a variable named `(@)`).
pub(crate) fn reject_in_cas_project<L: Locate>(r: &mut Reader<L>, node: &Node) {
    match &node.value {
        Value::Map(m) => {
            for (k, v) in m.iter() {
                let what = match k.name.as_str() {
                    "(@)" => Some("includes"),
                    "(?)" => Some("conditionals"),
                    _ => None,
                };
                if let Some(what) = what {
                    r.err_help(
                        k.span,
                        format!("`{}` ({what}) is read in BuildStream projects only", k.name),
                        "not in a cas project",
                        "cas projects (project.yaml) do not support it yet; a BuildStream project (project.conf) reads it",
                    );
                }
                reject_in_cas_project(r, v);
            }
        }
        Value::Seq(items) => {
            for i in items {
                reject_in_cas_project(r, i);
            }
        }
        _ => {}
    }
}

/// What an include reads: the file's canonical name, its parsed root, the
/// options its conditionals see when they are not the includer's (a file
/// of a junction's project sees that project's options), and the junction
/// it came through (its own includes are that project's files).
pub(crate) type Included = (
    String,
    Node,
    Option<BTreeMap<String, OptValue>>,
    Option<String>,
);

/// Reads an included file, or `None` after reporting why not.
pub(crate) type IncludeFn<'a> = dyn Fn(&Spanned, &mut Vec<Error>) -> Option<Included> + 'a;

/// Processes `(@)` and `(?)` over a tree.
pub(crate) struct Processor<'a, L: Locate> {
    pub r: Reader<'a, L>,
    /// `None`: leave conditionals in place (the first pass over project.conf,
    /// before the options are known).
    pub options: Option<BTreeMap<String, OptValue>>,
    pub include: &'a IncludeFn<'a>,
    stack: Vec<String>,
    /// The junctions of the files being included, innermost last.
    within: Vec<String>,
}

impl<'a, L: Locate> Processor<'a, L> {
    pub(crate) fn new(
        loc: &'a L,
        options: Option<&'a BTreeMap<String, OptValue>>,
        include: &'a IncludeFn<'a>,
    ) -> Self {
        Processor {
            r: Reader::new(loc),
            options: options.cloned(),
            include,
            stack: Vec::new(),
            within: Vec::new(),
        }
    }

    pub(crate) fn process(&mut self, node: Node) -> Node {
        let span = node.span;
        match node.value {
            Value::Map(m) => Node {
                span,
                value: Value::Map(self.process_map(m, span)),
            },
            Value::Seq(items) => Node {
                span,
                value: Value::Seq(items.into_iter().map(|i| self.process(i)).collect()),
            },
            v => Node { span, value: v },
        }
    }

    fn process_map(&mut self, m: Map, span: Span) -> Map {
        let mut includes: Option<Node> = None;
        let mut conditions: Option<(Key, Node)> = None;
        let mut rest = Map::default();
        for (k, v) in m.entries {
            match k.name.as_str() {
                "(@)" => includes = Some(v),
                "(?)" if self.options.is_some() => conditions = Some((k, v)),
                _ => rest.entries.push((k, v)),
            }
        }
        let mut included: Vec<Map> = Vec::new();
        if let Some(inc) = includes {
            let names = match &inc.value {
                Value::Scalar(s, _) => vec![Spanned {
                    value: s.clone(),
                    span: inc.span,
                }],
                _ => self.r.strings(&inc, "(@)"),
            };
            for name in names {
                // inside a file from a junction, a path is that project's
                let name = match self.within.last() {
                    Some(j) if !name.value.contains(':') => Spanned {
                        value: format!("{j}:{}", name.value),
                        span: name.span,
                    },
                    _ => name,
                };
                let mut errors = Vec::new();
                let loaded = (self.include)(&name, &mut errors);
                self.r.errors.extend(errors);
                let Some((key, root, their_options, through)) = loaded else {
                    continue;
                };
                if self.stack.contains(&key) {
                    self.r.err(
                        name.span,
                        format!("include cycle: {} → {}", self.stack.join(" → "), name.value),
                        "includes a file that includes this one",
                    );
                    continue;
                }
                let root = match root.value {
                    Value::Map(_) => root,
                    Value::Null => continue,
                    _ => {
                        self.r.err(
                            name.span,
                            format!("`{}`: an included file must be a mapping", name.value),
                            "not a mapping",
                        );
                        continue;
                    }
                };
                self.stack.push(key);
                // a file from a junction is read with its project's options
                // (even in project.conf's first pass, which has none yet)
                let saved = their_options.map(|o| self.options.replace(o));
                let inside = through.is_some();
                self.within.extend(through);
                let processed = self.process(root);
                if inside {
                    self.within.pop();
                }
                if let Some(previous) = saved {
                    self.options = previous;
                }
                self.stack.pop();
                if let Value::Map(pm) = processed.value {
                    included.push(pm);
                }
            }
        }
        // BuildStream composites each include under the including mapping,
        // the last one first (the includer's values win, its keys keep their
        // places, the included ones follow), and only then processes the
        // mapping's values: a nested include sees what a file included
        // here added (an `(>)` over a list a nested include sets)
        let mut out = rest;
        for pm in included.into_iter().rev() {
            composite_under(&mut out, pm);
        }
        for (_, v) in &mut out.entries {
            let node = std::mem::replace(
                v,
                Node {
                    span: v.span,
                    value: Value::Null,
                },
            );
            *v = self.process(node);
        }
        if let Some((k, conds)) = conditions {
            self.conditions(&mut out, &k, conds);
        }
        // `(!)`: the project says this combination is an error
        if self.options.is_some() {
            if let Some(pos) = out.entries.iter().position(|(k, _)| k.name == "(!)") {
                let (k, v) = out.entries.remove(pos);
                let text = v.as_str().unwrap_or_default().trim().to_string();
                self.r.err(
                    v.span,
                    format!("assertion (`(!)`): {text}"),
                    "asserted here",
                );
                let _ = k;
            }
        }
        let _ = span;
        out
    }

    fn conditions(&mut self, out: &mut Map, key: &Key, conds: Node) {
        let Some(options) = self.options.clone() else {
            return;
        };
        let Value::Seq(items) = conds.value else {
            self.r.err(
                conds.span,
                "`(?)`: expected a list of `condition: {...}` entries",
                "expected a list",
            );
            return;
        };
        let _ = key;
        for item in items {
            let Value::Map(m) = item.value else {
                self.r.err(
                    item.span,
                    "`(?)`: each entry is one `condition: {...}` mapping",
                    "expected a mapping",
                );
                continue;
            };
            if m.entries.len() != 1 {
                self.r.err(
                    item.span,
                    "`(?)`: each entry has exactly one condition",
                    "one condition per entry",
                );
                continue;
            }
            let Some((cond, value)) = m.entries.into_iter().next() else {
                continue;
            };
            match expr::evaluate(&cond.name, &options) {
                Ok(true) => {
                    let value = self.process(value);
                    match value.value {
                        Value::Map(vm) => composite(out, vm),
                        Value::Null => {}
                        _ => self.r.err(
                            value.span,
                            "`(?)`: what a condition applies is a mapping",
                            "expected a mapping",
                        ),
                    }
                }
                Ok(false) => {}
                Err(e) => self.r.err(
                    cond.span,
                    format!("`(?)` condition `{}`: {e}", cond.name),
                    "invalid condition",
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{FileId, SourceFile};

    fn parse(text: &str) -> Node {
        let f = SourceFile::new("t.bst".into(), "t.bst".into(), text.into());
        crate::yaml::parse(&f, FileId(0)).unwrap().unwrap()
    }

    fn strings(n: &Node) -> Vec<String> {
        match &n.value {
            Value::Seq(i) => i.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            _ => panic!("not a list"),
        }
    }

    #[test]
    fn conditionals_composite_and_directives_apply() {
        let f = SourceFile::new("t.bst".into(), "t.bst".into(), String::new());
        let text = "a: [1, 2]\nb: {x: 1}\n(?):\n- debug:\n    a:\n      (>): [3]\n    b: {y: 2}\n- not debug:\n    a: [9]\nc:\n  (<): [0]\n";
        let mut opts = BTreeMap::new();
        opts.insert("debug".to_string(), OptValue::Bool(true));
        let none: &IncludeFn = &|_, _| None;
        let mut p = Processor::new(&f, Some(&opts), none);
        let mut out = p.process(parse(text));
        assert!(p.r.errors.is_empty());
        resolve_lists(&mut out);
        let m = out.as_map().unwrap();
        assert_eq!(strings(m.get("a").unwrap()), ["1", "2", "3"]);
        let b = m.get("b").unwrap().as_map().unwrap();
        assert_eq!(b.entries.len(), 2);
        assert_eq!(strings(m.get("c").unwrap()), ["0"]);
    }

    #[test]
    fn conditionals_of_an_include_and_its_includer_both_apply() {
        let mut base = parse("(?):\n- a: {x: 1}\n").as_map().unwrap().clone();
        let over = parse("(?):\n- b: {y: 2}\n").as_map().unwrap().clone();
        composite(&mut base, over);
        match &base.get("(?)").unwrap().value {
            Value::Seq(items) => assert_eq!(items.len(), 2),
            _ => panic!("not a list"),
        }
    }

    #[test]
    fn directive_maps_merge_in_order() {
        let mut base = parse("k:\n  (>): [a]\n  (<): [p]\n")
            .as_map()
            .unwrap()
            .clone();
        let over = parse("k:\n  (>): [b]\n  (<): [q]\n")
            .as_map()
            .unwrap()
            .clone();
        composite(&mut base, over);
        let mut n = Node {
            span: Span::new(FileId(0), 0, 0),
            value: Value::Map(base),
        };
        resolve_lists(&mut n);
        assert_eq!(
            strings(n.as_map().unwrap().get("k").unwrap()),
            ["q", "p", "a", "b"]
        );
    }
}
