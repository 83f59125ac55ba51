//! Project options (`options:` of project.conf): their declarations, the
//! values given on the command line (`-o NAME VALUE`), in the user
//! configuration or by a junction, and the variables they export.

use std::collections::BTreeMap;

use super::expr::Value;
use crate::diagnostics::Span;
use crate::read::{Locate, Reader, Spanned};
use crate::yaml::Node;

/// The types BuildStream defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionType {
    Bool,
    Enum,
    Flags,
    Arch,
    Os,
    ElementMask,
}

impl OptionType {
    const ALL: [(&'static str, OptionType); 6] = [
        ("bool", OptionType::Bool),
        ("enum", OptionType::Enum),
        ("flags", OptionType::Flags),
        ("arch", OptionType::Arch),
        ("os", OptionType::Os),
        ("element-mask", OptionType::ElementMask),
    ];
}

/// One declared option.
#[derive(Debug, Clone)]
pub struct Declared {
    pub name: String,
    pub ty: OptionType,
    pub values: Vec<String>,
    pub default: Value,
    /// The variable that receives the value, if any.
    pub variable: Option<String>,
    pub span: Span,
}

/// This machine's architecture as `uname -m` spells it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "i686",
        "arm" => "armv7",
        "powerpc64" => "ppc64",
        a => a,
    }
}

/// BuildStream's canonical name of an architecture (its
/// `Platform.canonicalize_arch`, case-insensitive): `x86_64`, `amd64` and
/// `x86-64` are all `x86-64`; `None` for a name it does not know.
pub fn canonical_arch(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "aarch32" | "arm" => "aarch32",
        "aarch64" | "armv8l" => "aarch64",
        "aarch64-be" | "armv8b" => "aarch64-be",
        "amd64" | "x86-64" | "x86_64" => "x86-64",
        "i386" | "i486" | "i586" | "i686" | "x86-32" | "x86_32" => "x86-32",
        "power-isa-be" | "ppc64" => "power-isa-be",
        "power-isa-le" | "ppc64le" => "power-isa-le",
        "sparc" | "sparc64" | "sparc-v9" | "sun4v" => "sparc-v9",
        _ => return None,
    })
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "True" | "true" => Some(true),
        "False" | "false" => Some(false),
        _ => None,
    }
}

/// Decode the `options:` mapping of a project.
/// BuildStream's symbol names: letters, digits, `_` (and `-` where
/// allowed), not starting with a digit.
pub(crate) fn symbol_name(s: &str, dashes: bool) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (dashes && c == '-'))
}

pub(crate) fn declare<L: Locate>(r: &mut Reader<L>, node: &Node) -> Vec<Declared> {
    let mut out = Vec::new();
    let Some(map) = r.map(node, "options") else {
        return out;
    };
    for (k, v) in map.iter() {
        let Some(m) = r.map(v, &k.name) else { continue };
        // option names are evaluated in expressions: no dashes
        if !symbol_name(&k.name, false) {
            r.err_help(
                k.span,
                format!("invalid symbol name for option name: `{}`", k.name),
                "invalid option name",
                "option names use letters, digits and underscores, and do not start with a digit",
            );
            continue;
        }
        let Some(ty) = m.get("type").and_then(|n| r.string(n, "type")) else {
            r.err(
                k.span,
                format!("option `{}` has no `type`", k.name),
                "no `type:`",
            );
            continue;
        };
        let Some((_, ty_v)) = OptionType::ALL.iter().find(|(n, _)| *n == ty.value) else {
            let names: Vec<&str> = OptionType::ALL.iter().map(|(n, _)| *n).collect();
            r.err_help(
                ty.span,
                format!("unknown option type `{}`", ty.value),
                "unknown type",
                format!("option types: {}", names.join(", ")),
            );
            continue;
        };
        // the keys each type has (BuildStream's option classes)
        let keys: &[&str] = match ty_v {
            OptionType::Bool => &["type", "description", "variable", "default"],
            OptionType::Enum | OptionType::Flags => {
                &["type", "description", "variable", "default", "values"]
            }
            OptionType::ElementMask => &["type", "description", "variable", "default"],
            OptionType::Arch | OptionType::Os => &["type", "description", "variable", "values"],
        };
        r.check_keys(m, keys, &format!("option `{}`", k.name));
        if let Some(var) = m.get("variable").and_then(|n| n.as_str().map(|s| (n, s))) {
            if !symbol_name(var.1, true) {
                r.err_help(
                    var.0.span,
                    format!("invalid symbol name for variable name: `{}`", var.1),
                    "invalid variable name",
                    "variable names use letters, digits, underscores and dashes, and do not start with a digit",
                );
            }
        }
        if matches!(ty_v, OptionType::Enum | OptionType::Flags)
            && m.get("values").is_none_or(|n| {
                matches!(&n.value, crate::yaml::Value::Seq(l) if l.is_empty()) || n.is_null()
            })
        {
            r.err(
                m.get("values").map_or(k.span, |n| n.span),
                format!("no values specified for {} option `{}`", ty.value, k.name),
                "no values",
            );
            continue;
        }
        let values: Vec<String> = m
            .get("values")
            .map(|n| {
                r.strings(n, "values")
                    .into_iter()
                    .map(|s| s.value)
                    .collect()
            })
            .unwrap_or_default();
        let default_node = m.get("default");
        let default = match ty_v {
            OptionType::Bool => match default_node.and_then(|n| r.string(n, "default")) {
                None => Value::Bool(false),
                Some(s) => match parse_bool(&s.value) {
                    Some(b) => Value::Bool(b),
                    None => {
                        r.err(
                            s.span,
                            "a bool option's default is `True` or `False`",
                            "not a boolean",
                        );
                        continue;
                    }
                },
            },
            OptionType::Flags | OptionType::ElementMask => Value::List(
                default_node
                    .map(|n| {
                        r.strings(n, "default")
                            .into_iter()
                            .map(|s| s.value)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            // BuildStream's default: the first value that names this
            // machine's architecture in any spelling (`x86_64` for
            // `x86-64`), else the machine's canonical name, which is only an
            // error if no value is given for the option (checked in
            // `values`, after `-o`)
            OptionType::Arch => match default_node.and_then(|n| r.string(n, "default")) {
                Some(s) => Value::Str(s.value),
                None => {
                    let host = canonical_arch(host_arch()).unwrap_or(host_arch());
                    Value::Str(
                        values
                            .iter()
                            .find(|v| canonical_arch(v) == Some(host))
                            .cloned()
                            .unwrap_or_else(|| host.to_string()),
                    )
                }
            },
            OptionType::Os => match default_node.and_then(|n| r.string(n, "default")) {
                Some(s) => Value::Str(s.value),
                None => Value::Str("Linux".into()),
            },
            OptionType::Enum => match default_node.and_then(|n| r.string(n, "default")) {
                Some(s) => Value::Str(s.value),
                None => {
                    r.err(
                        k.span,
                        format!("enum option `{}` has no `default`", k.name),
                        "no `default:`",
                    );
                    continue;
                }
            },
        };
        let variable = m
            .get("variable")
            .and_then(|n| r.string(n, "variable"))
            .map(|s| s.value);
        let d = Declared {
            name: k.name.clone(),
            ty: *ty_v,
            values,
            default,
            variable,
            span: k.span,
        };
        // an arch option's default from this machine is checked in `values`
        let deferred = d.ty == OptionType::Arch && default_node.is_none();
        if let Err(e) = d
            .check(&d.default)
            .or_else(|e| if deferred { Ok(()) } else { Err(e) })
        {
            r.err(
                default_node.map_or(k.span, |n| n.span),
                format!("option `{}`: default {e}", d.name),
                "invalid default",
            );
        }
        out.push(d);
    }
    out
}

impl Declared {
    /// Parse a value given as text (`-o NAME VALUE`, the user configuration,
    /// a junction's `options`).
    pub fn parse(&self, text: &str) -> Result<Value, String> {
        let v = match self.ty {
            OptionType::Bool => Value::Bool(
                parse_bool(text).ok_or_else(|| format!("`{text}` is not `True` or `False`"))?,
            ),
            // BuildStream's: white space removed, split at commas, sorted;
            // an empty value is one empty flag (not one of the values)
            OptionType::Flags | OptionType::ElementMask => {
                let joined: String = text.split_whitespace().collect();
                let mut l: Vec<String> = joined.split(',').map(str::to_string).collect();
                l.sort();
                Value::List(l)
            }
            _ => Value::Str(text.to_string()),
        };
        self.check(&v)?;
        Ok(v)
    }

    fn check(&self, v: &Value) -> Result<(), String> {
        let allowed = |s: &str| self.values.is_empty() || self.values.iter().any(|x| x == s);
        match (self.ty, v) {
            (OptionType::Enum | OptionType::Arch | OptionType::Os, Value::Str(s))
                if !allowed(s) =>
            {
                Err(format!("`{s}` is not one of: {}", self.values.join(", ")))
            }
            (OptionType::Flags | OptionType::ElementMask, Value::List(l)) => {
                match l.iter().find(|s| !allowed(s)) {
                    Some(s) => Err(format!(
                        "flag `{s}` is not one of: {}",
                        self.values.join(", ")
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// The text an exported variable gets (BuildStream's: `1`/`0` for a bool,
    /// flags joined with `,`).
    pub fn variable_text(v: &Value) -> String {
        match v {
            Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            // a default in the order written; values given are sorted (parse)
            Value::List(l) => l.join(","),
        }
    }
}

/// Values given from outside the project: name → (text, where it was given).
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub values: Vec<(String, String, Option<Span>)>,
}

/// The value of every option: its default, then the given values in order.
/// A value for an undeclared option, or one that does not parse, is an
/// error (`where` names the source for values without a span).
pub(crate) fn values<L: Locate>(
    r: &mut Reader<L>,
    declared: &[Declared],
    given: &Given,
    project: &str,
) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = declared
        .iter()
        .map(|d| (d.name.clone(), d.default.clone()))
        .collect();
    // an arch option's default from this machine is checked only if nothing
    // overrides it (BuildStream's rule)
    for d in declared.iter().filter(|d| d.ty == OptionType::Arch) {
        if given.values.iter().any(|(n, _, _)| *n == d.name) {
            continue;
        }
        if let Err(e) = d.check(&d.default) {
            r.err_help(
                d.span,
                format!("option `{}`: this machine's architecture {e}", d.name),
                "no value for this machine",
                format!("choose one with `-o {} VALUE`", d.name),
            );
        }
    }
    for (name, text, span) in &given.values {
        let Some(d) = declared.iter().find(|d| d.name == *name) else {
            let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            let msg = format!("project `{project}` has no option `{name}`");
            let help = if names.is_empty() {
                "it declares no options".to_string()
            } else {
                format!("its options: {}", names.join(", "))
            };
            match span {
                Some(s) => r.err_help(*s, msg, "unknown option", help),
                None => r
                    .errors
                    .push(crate::diagnostics::Error::plain(msg).with_help(help)),
            }
            continue;
        };
        match d.parse(text) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => {
                let msg = format!("option `{name}`: {e}");
                match span {
                    Some(s) => r.err(*s, msg, "invalid value"),
                    None => r.errors.push(crate::diagnostics::Error::plain(msg)),
                }
            }
        }
    }
    out
}

/// Spanned helper for exported variables.
pub(crate) fn exported(
    declared: &[Declared],
    values: &BTreeMap<String, Value>,
) -> Vec<(Spanned, Spanned)> {
    declared
        .iter()
        .filter_map(|d| {
            let var = d.variable.as_ref()?;
            let v = values.get(&d.name)?;
            Some((
                Spanned {
                    value: var.clone(),
                    span: d.span,
                },
                Spanned {
                    value: Declared::variable_text(v),
                    span: d.span,
                },
            ))
        })
        .collect()
}

/// The values an `element-mask` option may take: every `.bst` file under
/// the element path, relative to it (BuildStream's), sorted.
pub(crate) fn element_files(dir: &std::path::Path) -> Vec<String> {
    const LIMIT: usize = 200_000;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            seen += 1;
            if seen > LIMIT {
                return out;
            }
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "bst") {
                if let Ok(rel) = p.strip_prefix(dir) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
    }
    out.sort();
    out
}
