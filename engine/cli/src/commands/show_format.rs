//! `cas show --format`: one element per format string, with the fields of
//! `bst show --format` (BuildStream's names, its YAML for lists and
//! mappings, Python's `{name:>20}` padding), so that both tools can be
//! compared element by element.

use cas_format::{Data, DepScope, Loaded};

use crate::commands::show::ShowRow;

/// The format with every `%{field...}` of `row` substituted.
pub(crate) fn render(loaded: &Loaded, row: &ShowRow, fmt: &str, jobs: usize) -> String {
    let e = row.element;
    let jobs = e.max_jobs(jobs).to_string();
    let extra = |k: &str| {
        row.extra
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let deps = |scope| {
        let names: Vec<String> = loaded
            .shown_deps(e.id, scope)
            .into_iter()
            .map(|d| loaded.element(d).name.clone())
            .collect();
        Data::strings(names)
            .to_yaml()
            .trim_end_matches('\n')
            .to_string()
    };
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(i) = rest.find("%{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        // `%{name}` or `%{name:spec}`; anything else is left as written
        let Some(end) = after.find('}').filter(|&j| !after[..j].contains('%')) else {
            out.push_str("%{");
            rest = after;
            continue;
        };
        let inner = &after[..end];
        let (name, spec) = inner.split_once(':').unwrap_or((inner, ""));
        let value: Option<String> = match name {
            "name" => Some(e.name.clone()),
            "kind" => Some(if e.link {
                "link".into()
            } else {
                e.kind.clone()
            }),
            "description" => Some(
                e.description
                    .as_deref()
                    .unwrap_or_default()
                    .lines()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "key" => Some(extra("key").chars().take(8).collect()),
            "full-key" => Some(extra("key").to_string()),
            "state" => Some(match extra("state") {
                "fetch-needed" => "fetch needed".to_string(),
                "no-reference" => "no reference".to_string(),
                s => s.to_string(),
            }),
            "deps" => Some(deps(DepScope::All)),
            "build-deps" => Some(deps(DepScope::Build)),
            "runtime-deps" => Some(deps(DepScope::Run)),
            "vars" => Some(cas_format::shown_vars(e, &jobs).to_yaml()),
            "env" => Some(cas_format::shown_env(e, &jobs).to_yaml()),
            "config" => Some(cas_format::shown_config(e, &jobs).0.to_yaml()),
            "public" => Some(cas_format::shown_config(e, &jobs).1.to_yaml()),
            "workspaced" => Some(if e.workspace.is_some() {
                "(workspaced)".into()
            } else {
                String::new()
            }),
            "workspace-dirs" => Some(
                e.workspace
                    .as_ref()
                    .map(|w| format!("Workspace: {}", w.display()))
                    .unwrap_or_default(),
            ),
            _ => None,
        };
        if let Some(v) = value {
            out.push_str(&pad(&v, spec));
        } else {
            out.push_str("%{");
            out.push_str(inner);
            out.push('}');
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Python's `format` spec for a string: `[[fill]align][width]`, align one
/// of `<`, `>`, `^` (strings default to the left).
fn pad(v: &str, spec: &str) -> String {
    let mut chars: Vec<char> = spec.chars().collect();
    let is_align = |c: char| matches!(c, '<' | '>' | '^');
    let (fill, align) = match chars.as_slice() {
        [f, a, ..] if is_align(*a) => {
            let r = (*f, *a);
            chars.drain(..2);
            r
        }
        [a, ..] if is_align(*a) => {
            let r = (' ', *a);
            chars.drain(..1);
            r
        }
        _ => (' ', '<'),
    };
    let width: usize = chars.iter().collect::<String>().parse().unwrap_or_default();
    let len = v.chars().count();
    if len >= width {
        return v.to_string();
    }
    let gap = width - len;
    let fill_n = |n: usize| std::iter::repeat_n(fill, n).collect::<String>();
    match align {
        '>' => format!("{}{v}", fill_n(gap)),
        '^' => format!("{}{v}{}", fill_n(gap / 2), fill_n(gap - gap / 2)),
        _ => format!("{v}{}", fill_n(gap)),
    }
}

#[cfg(test)]
mod tests {
    use super::pad;

    #[test]
    fn pads_as_python_format_does() {
        assert_eq!(pad("ab", ""), "ab");
        assert_eq!(pad("ab", " >5"), "   ab");
        assert_eq!(pad("ab", "*^6"), "**ab**");
        assert_eq!(pad("ab", "^5"), " ab  ");
        assert_eq!(pad("abc", "2"), "abc");
    }
}
