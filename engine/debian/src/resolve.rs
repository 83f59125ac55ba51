//! The `Depends`/`Pre-Depends` closure of a set of requested packages over
//! one index, with every choice deterministic (spec/debian.md):
//!
//! - a relation already satisfied by a chosen package (by name, or by a
//!   `Provides:` of it) adds nothing;
//! - otherwise the first alternative, in the order written, that a real
//!   package satisfies wins, at its highest version;
//! - otherwise the first alternative that is provided: its providers in
//!   name order, the first that satisfies;
//! - otherwise it is an error naming the package and the relation.
//!
//! Requests and packages are processed first in, first out, so the result
//! depends only on the index and the request. `Conflicts`, `Breaks` and
//! `Recommends` are not followed.

use std::collections::{BTreeMap, VecDeque};

use crate::error::DebianError;
use crate::index::{Package, Packages};
use crate::relation::{self, Relation};
use crate::version::{Op, Version};

/// What to resolve.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Package names, optionally `name=version` or any relation
    /// (`name (>= 1.2)`).
    pub packages: Vec<String>,
    /// Also every package marked `Essential: yes` (what dpkg itself assumes
    /// is there).
    pub essential: bool,
    /// Only the requested packages, not their dependencies (a kernel or
    /// firmware package whose files are all that is wanted).
    pub no_deps: bool,
}

/// The chosen packages (one version each, sorted by name) and the choices
/// that were not forced (alternatives and virtual packages), as sentences.
#[derive(Debug, Clone)]
pub struct Resolution<'a> {
    pub packages: Vec<&'a Package>,
    pub choices: Vec<String>,
}

struct Resolver<'a> {
    by_name: BTreeMap<&'a str, Vec<&'a Package>>,
    providers: BTreeMap<&'a str, Vec<(&'a Package, Option<&'a Version>)>>,
    selected: BTreeMap<&'a str, &'a Package>,
    queue: VecDeque<&'a Package>,
    choices: Vec<String>,
}

fn allows(constraint: Option<&(Op, Version)>, v: &Version) -> bool {
    constraint.is_none_or(|(op, want)| op.holds(v, want))
}

impl<'a> Resolver<'a> {
    fn new(index: &'a Packages) -> Resolver<'a> {
        let mut by_name: BTreeMap<&str, Vec<&Package>> = BTreeMap::new();
        let mut providers: BTreeMap<&str, Vec<(&Package, Option<&Version>)>> = BTreeMap::new();
        for p in &index.packages {
            by_name.entry(&p.name).or_default().push(p);
            for v in &p.provides {
                let version = match &v.constraint {
                    Some((Op::Eq, ver)) => Some(ver),
                    _ => None,
                };
                providers.entry(&v.name).or_default().push((p, version));
            }
        }
        for list in by_name.values_mut() {
            list.sort_by(|a, b| b.version.cmp(&a.version));
        }
        for list in providers.values_mut() {
            list.sort_by(|(a, _), (b, _)| a.name.cmp(&b.name).then(b.version.cmp(&a.version)));
        }
        Resolver {
            by_name,
            providers,
            selected: BTreeMap::new(),
            queue: VecDeque::new(),
            choices: Vec::new(),
        }
    }

    /// Whether a chosen package satisfies `r`.
    fn satisfied(&self, r: &Relation) -> bool {
        if let Some(p) = self.selected.get(r.name.as_str()) {
            if allows(r.constraint.as_ref(), &p.version) {
                return true;
            }
        }
        self.providers.get(r.name.as_str()).is_some_and(|ps| {
            ps.iter().any(|(p, v)| {
                self.selected
                    .get(p.name.as_str())
                    .is_some_and(|s| std::ptr::eq(*s, *p))
                    && match (&r.constraint, v) {
                        (None, _) => true,
                        (Some((op, want)), Some(v)) => op.holds(v, want),
                        (Some(_), None) => false,
                    }
            })
        })
    }

    fn select(&mut self, p: &'a Package, by: &str, r: &str) -> Result<(), DebianError> {
        if let Some(have) = self.selected.get(p.name.as_str()) {
            if std::ptr::eq(*have, p) {
                return Ok(());
            }
            return Err(DebianError::Unsatisfiable {
                package: by.to_owned(),
                version: String::new(),
                relation: r.to_owned(),
                hint: format!(
                    " (it needs {} {}, but {} was chosen)",
                    p.name, p.version_text, have.version_text
                ),
            });
        }
        self.selected.insert(&p.name, p);
        self.queue.push_back(p);
        Ok(())
    }

    /// Satisfy one group of alternatives needed by `by` (`version`).
    fn group(&mut self, alts: &[Relation], by: &str, version: &str) -> Result<(), DebianError> {
        if alts.iter().any(|r| self.satisfied(r)) {
            return Ok(());
        }
        let written = alts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" | ");
        for (i, r) in alts.iter().enumerate() {
            let real = self.by_name.get(r.name.as_str()).and_then(|ps| {
                ps.iter()
                    .copied()
                    .find(|p| allows(r.constraint.as_ref(), &p.version))
            });
            if let Some(p) = real {
                if i > 0 {
                    self.choices.push(format!(
                        "{by} needs `{written}`: chose {} (the first alternative available)",
                        p.name
                    ));
                }
                return self.select(p, by, &written);
            }
        }
        for r in alts {
            let Some(ps) = self.providers.get(r.name.as_str()) else {
                continue;
            };
            let fits: Vec<&'a Package> = ps
                .iter()
                .filter(|(_, v)| match (&r.constraint, v) {
                    (None, _) => true,
                    (Some((op, want)), Some(v)) => op.holds(v, want),
                    (Some(_), None) => false,
                })
                .map(|(p, _)| *p)
                .collect();
            if let Some(p) = fits.first().copied() {
                let mut others: Vec<&str> = fits.iter().map(|p| p.name.as_str()).collect();
                others.dedup();
                self.choices.push(format!(
                    "{by} needs `{written}`: chose {} to provide {}{}",
                    p.name,
                    r.name,
                    if others.len() > 1 {
                        format!(" (providers: {}; name one to choose it)", others.join(", "))
                    } else {
                        String::new()
                    }
                ));
                return self.select(p, by, &written);
            }
        }
        let hint = match alts.first().and_then(|r| self.by_name.get(r.name.as_str())) {
            Some(ps) => format!(
                " (the index has {})",
                ps.iter()
                    .map(|p| format!("{} {}", p.name, p.version_text))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        Err(DebianError::Unsatisfiable {
            package: by.to_owned(),
            version: version.to_owned(),
            relation: written,
            hint,
        })
    }
}

/// The closure of `request` over `index`.
pub fn resolve<'a>(index: &'a Packages, request: &Request) -> Result<Resolution<'a>, DebianError> {
    let mut r = Resolver::new(index);
    let mut wanted: Vec<Vec<Relation>> = Vec::new();
    if request.essential {
        for (name, ps) in &r.by_name {
            if ps.first().is_some_and(|p| p.essential) {
                wanted.push(vec![Relation {
                    name: (*name).to_owned(),
                    constraint: None,
                }]);
            }
        }
    }
    for text in &request.packages {
        let text = match text.split_once('=') {
            Some((n, v)) if !n.contains('(') => format!("{n} (= {v})"),
            _ => text.clone(),
        };
        let groups = relation::parse(&text).map_err(|reason| DebianError::Unknown {
            name: text.clone(),
            hint: format!(": {reason}"),
        })?;
        for g in groups {
            for alt in &g {
                if !r.by_name.contains_key(alt.name.as_str())
                    && !r.providers.contains_key(alt.name.as_str())
                {
                    let close: Vec<&str> = r
                        .by_name
                        .keys()
                        .filter(|k| k.starts_with(&alt.name) || alt.name.starts_with(**k))
                        .take(5)
                        .copied()
                        .collect();
                    return Err(DebianError::Unknown {
                        name: alt.name.clone(),
                        hint: if close.is_empty() {
                            " in the index".into()
                        } else {
                            format!(" in the index (similar: {})", close.join(", "))
                        },
                    });
                }
            }
            wanted.push(g);
        }
    }
    for g in &wanted {
        r.group(g, "the request", "")?;
    }
    while let Some(p) = r.queue.pop_front() {
        if request.no_deps {
            continue;
        }
        for g in p.pre_depends.iter().chain(&p.depends) {
            r.group(g, &p.name, &p.version_text)?;
        }
    }
    Ok(Resolution {
        packages: r.selected.into_values().collect(),
        choices: r.choices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(stanzas: &[(&str, &str, &str)]) -> Packages {
        let mut text = String::new();
        for (i, (name, version, extra)) in stanzas.iter().enumerate() {
            text.push_str(&format!(
                "Package: {name}\nVersion: {version}\nFilename: pool/{name}_{version}.deb\nSHA256: {:064x}\n{extra}\n",
                i + 1
            ));
        }
        Packages::parse("Packages", &text).unwrap()
    }

    fn req(packages: &[&str], essential: bool, no_deps: bool) -> Request {
        Request {
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
            essential,
            no_deps,
        }
    }

    fn names(r: &Resolution) -> Vec<String> {
        r.packages
            .iter()
            .map(|p| format!("{}={}", p.name, p.version_text))
            .collect()
    }

    #[test]
    fn closure_alternatives_virtuals_and_versions() {
        let idx = index(&[
            ("libc6", "2.36-9", ""),
            ("libc6", "2.36-9+deb12u14", ""),
            (
                "mawk",
                "1.3.4-3",
                "Provides: awk\nDepends: libc6 (>= 2.34)\n",
            ),
            ("gawk", "5.2.1-2", "Provides: awk\n"),
            ("make", "4.3-4.1", "Depends: libc6 (>= 2.34)\n"),
            (
                "hello",
                "2.10-3",
                "Depends: libc6 (>= 2.34), awk, nonexistent | make\nPre-Depends: dpkg\n",
            ),
            (
                "dpkg",
                "1.21.22",
                "Essential: yes\nDepends: tar (>= 1.28-1)\n",
            ),
            ("tar", "1.34+dfsg-1.2", "Essential: yes\n"),
            ("old", "1.0", "Depends: libc6 (<< 2.30)\n"),
        ]);
        let r = resolve(&idx, &req(&["hello"], false, false)).unwrap();
        assert_eq!(
            names(&r),
            [
                "dpkg=1.21.22",
                "gawk=5.2.1-2",
                "hello=2.10-3",
                "libc6=2.36-9+deb12u14",
                "make=4.3-4.1",
                "tar=1.34+dfsg-1.2"
            ]
        );
        assert!(
            r.choices
                .iter()
                .any(|c| c.contains("chose gawk to provide awk (providers: gawk, mawk")),
            "{:?}",
            r.choices
        );
        assert!(
            r.choices
                .iter()
                .any(|c| c.contains("chose make (the first alternative available)")),
            "{:?}",
            r.choices
        );
        // Naming a provider chooses it.
        let r = resolve(&idx, &req(&["mawk", "hello"], false, false)).unwrap();
        assert!(names(&r).contains(&"mawk=1.3.4-3".to_string()));
        assert!(!names(&r).iter().any(|n| n.starts_with("gawk")));
        // Pinning a version.
        let r = resolve(&idx, &req(&["libc6=2.36-9"], true, false)).unwrap();
        assert_eq!(
            names(&r),
            ["dpkg=1.21.22", "libc6=2.36-9", "tar=1.34+dfsg-1.2"]
        );
        // Errors name what failed.
        let e = resolve(&idx, &req(&["old"], false, false)).unwrap_err();
        assert!(
            e.to_string().contains("old 1.0 needs `libc6 (<< 2.30)`"),
            "{e}"
        );
        let e = resolve(&idx, &req(&["helo"], false, false)).unwrap_err();
        assert!(e.to_string().contains("unknown package `helo`"), "{e}");
        let r = resolve(&idx, &req(&["hello"], false, true)).unwrap();
        assert_eq!(names(&r), ["hello=2.10-3"]);
        // Deterministic: the same request gives the same answer.
        let a = resolve(&idx, &req(&["hello"], true, false)).unwrap();
        let b = resolve(&idx, &req(&["hello"], true, false)).unwrap();
        assert_eq!(names(&a), names(&b));
    }
}
