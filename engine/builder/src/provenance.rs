//! What a compose was made of, recorded with its result as the note
//! `compose` (spec/store.md): every staged element (name, key, output) in
//! staging order, and for every non-directory path of the output the
//! element it came from, or `-` when the integration commands wrote it.
//! `cas owns` reads it; `cas diff` of two composes lists the packages
//! (elements) added, removed and changed between them.
//!
//! ```text
//! cas-compose 1
//! element <key hex> <output hex> <name>
//! path <element index|-> <path>
//! ```
//!
//! In a name or path, a backslash, tab and newline are written `\\`, `\t`, `\n`
//! (crate::escape).

use std::collections::HashSet;

use cas_format::{Element, ElementId};
use cas_store::{ActionKey, Digest, EntryKind, TreeDigest};

use crate::error::{BuildError, Result};
use crate::escape::{escape, unescape};
use crate::step::Engine;

/// The note a compose's provenance is recorded under.
pub const COMPOSE_NOTE: &str = "compose";

/// One staged element of a compose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub key: ActionKey,
    pub output: TreeDigest,
}

/// A compose's parts and where each path came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provenance {
    pub parts: Vec<Part>,
    /// (path relative to the root, index into `parts` or `None` for integration).
    pub paths: Vec<(String, Option<usize>)>,
}

const MAGIC: &str = "cas-compose 1";

impl Provenance {
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("{MAGIC}\n");
        for p in &self.parts {
            s += &format!(
                "element {} {} {}\n",
                p.key.to_hex(),
                p.output.to_hex(),
                escape(&p.name)
            );
        }
        for (path, owner) in &self.paths {
            let o = owner.map_or_else(|| "-".to_string(), |i| i.to_string());
            s += &format!("path {o} {}\n", escape(path));
        }
        s.into_bytes()
    }

    /// Strict: what [`Provenance::encode`] writes, nothing else.
    pub fn decode(bytes: &[u8]) -> Option<Provenance> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.split_terminator('\n');
        if lines.next()? != MAGIC {
            return None;
        }
        let mut p = Provenance::default();
        for l in lines {
            if let Some(rest) = l.strip_prefix("element ") {
                let (key, rest) = rest.split_once(' ')?;
                let (out, name) = rest.split_once(' ')?;
                p.parts.push(Part {
                    name: unescape(name)?,
                    key: ActionKey::from_hex(key).ok()?,
                    output: TreeDigest(Digest::from_hex(out).ok()?),
                });
            } else if let Some(rest) = l.strip_prefix("path ") {
                let (o, path) = rest.split_once(' ')?;
                let owner = if o == "-" {
                    None
                } else {
                    let i: usize = o.parse().ok()?;
                    (i < p.parts.len()).then_some(i)?;
                    Some(i)
                };
                p.paths.push((unescape(path)?, owner));
            } else {
                return None;
            }
        }
        (p.encode() == bytes).then_some(p)
    }

    /// The part `path` (relative or absolute) came from: `Some(None)` for
    /// integration, `None` when the path is not in the output.
    pub fn owner(&self, path: &str) -> Option<Option<&Part>> {
        let rel = path.trim_start_matches('/');
        self.paths
            .iter()
            .find(|(p, _)| p == rel)
            .map(|(_, o)| o.map(|i| &self.parts[i]))
    }
}

impl Engine<'_> {
    /// The provenance of a compose just made: the same filtering as its
    /// assembly, the later part winning (spec/format.md, compose).
    pub(crate) fn compose_provenance(
        &self,
        el: &Element,
        staged: &[(ElementId, TreeDigest)],
        output: &TreeDigest,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    ) -> Result<Provenance> {
        let Some(crate::kinds::Parts {
            include,
            exclude,
            include_orphans,
            ..
        }) = crate::kinds::of(el).parts(self.loaded, el.id)
        else {
            return Ok(Provenance::default());
        };
        let (include, exclude, include_orphans) = (&include, &exclude, &include_orphans);
        let mut parts = Vec::new();
        let mut sets: Vec<HashSet<Vec<u8>>> = Vec::new();
        for (dep, tree) in staged {
            let d = self.element(*dep);
            let key = self
                .planner
                .key(*dep, outputs)?
                .ok_or_else(|| BuildError::Other {
                    element: el.name.clone(),
                    message: format!("the key of {} is not known", d.name),
                })?
                .key;
            parts.push(Part {
                name: d.name.clone(),
                key,
                output: *tree,
            });
            let domains = crate::split::Domains::new(&d.name, &d.public.split_rules)?;
            let keep = |p: &str| domains.keeps(p, include, exclude, *include_orphans);
            let kept = crate::split::filter(self.store, tree, &keep)?;
            sets.push(
                self.store
                    .walk(&kept)?
                    .into_iter()
                    .filter(|(_, e)| !matches!(e.kind, EntryKind::Dir { .. }))
                    .map(|(p, _)| p)
                    .collect(),
            );
        }
        let paths = self
            .store
            .walk(output)?
            .into_iter()
            .filter(|(_, e)| !matches!(e.kind, EntryKind::Dir { .. }))
            .map(|(p, _)| {
                let owner = sets.iter().rposition(|s| s.contains(&p));
                (String::from_utf8_lossy(&p).into_owned(), owner)
            })
            .collect();
        Ok(Provenance { parts, paths })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_encoding_round_trips_and_is_strict() {
        let p = Provenance {
            parts: vec![Part {
                name: "odd\nname.yaml".into(),
                key: ActionKey::of_manifest(b"k"),
                output: TreeDigest(Digest::of_bytes(b"o")),
            }],
            paths: vec![
                ("usr/bin/a".into(), Some(0)),
                ("etc/ld.so.cache".into(), None),
            ],
        };
        let text = String::from_utf8(p.encode()).unwrap();
        assert_eq!(
            text,
            format!(
                "cas-compose 1\nelement {} {} odd\\nname.yaml\npath 0 usr/bin/a\npath - etc/ld.so.cache\n",
                Digest::of_bytes(b"k").to_hex(),
                Digest::of_bytes(b"o").to_hex()
            )
        );
        assert_eq!(Provenance::decode(text.as_bytes()), Some(p.clone()));
        assert_eq!(
            p.owner("/usr/bin/a").unwrap().unwrap().name,
            "odd\nname.yaml"
        );
        assert_eq!(p.owner("etc/ld.so.cache"), Some(None));
        assert_eq!(p.owner("/nope"), None);
        for bad in [
            text.replace("path 0", "path 1"),
            text.replace("cas-compose 1", "cas-compose 2"),
            format!("{text}junk\n"),
        ] {
            assert_eq!(Provenance::decode(bad.as_bytes()), None, "{bad}");
        }
    }
}
