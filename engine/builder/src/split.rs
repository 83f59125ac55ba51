//! Tree surgery for compose and script: filtering a tree by split-rule
//! domains, and placing a tree under a directory.

use globset::{Glob, GlobSet, GlobSetBuilder};

use cas_store::{Entry, EntryKind, Store, Tree, TreeDigest};

use crate::error::{BuildError, Result};

/// The split rules of one element: domain → compiled patterns.
pub struct Domains {
    domains: Vec<(String, GlobSet)>,
}

impl Domains {
    pub fn new(
        element: &str,
        rules: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<Domains> {
        let mut domains = Vec::new();
        for (domain, patterns) in rules {
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                let glob =
                    Glob::new(p.trim_end_matches('/')).map_err(|e| BuildError::SplitRule {
                        element: element.to_owned(),
                        pattern: p.clone(),
                        message: e.to_string(),
                    })?;
                b.add(glob);
            }
            let set = b.build().map_err(|e| BuildError::SplitRule {
                element: element.to_owned(),
                pattern: domain.clone(),
                message: e.to_string(),
            })?;
            domains.push((domain.clone(), set));
        }
        Ok(Domains { domains })
    }

    /// The domains an absolute path (`/usr/include/x.h`) belongs to.
    fn of(&self, path: &str) -> Vec<&str> {
        self.domains
            .iter()
            .filter(|(_, s)| s.is_match(path))
            .map(|(d, _)| d.as_str())
            .collect()
    }

    /// Whether a path is kept by `include` (empty: all domains), `exclude`
    /// and `include_orphans`.
    pub fn keeps(
        &self,
        path: &str,
        include: &[String],
        exclude: &[String],
        include_orphans: bool,
    ) -> bool {
        let ds = self.of(path);
        if ds.is_empty() {
            return include_orphans;
        }
        if ds.iter().any(|d| exclude.iter().any(|e| e == d)) {
            return false;
        }
        include.is_empty() || ds.iter().any(|d| include.iter().any(|i| i == d))
    }
}

/// A new tree holding the entries of `tree` for which `keep(path)` is true
/// (paths absolute, `/`-separated). A directory is kept if it matches or
/// holds something kept.
pub fn filter(store: &Store, tree: &TreeDigest, keep: &dyn Fn(&str) -> bool) -> Result<TreeDigest> {
    Ok(filter_at(store, tree, "", keep)?.unwrap_or_else(TreeDigest::empty))
}

fn filter_at(
    store: &Store,
    tree: &TreeDigest,
    prefix: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Option<TreeDigest>> {
    let t = store.get_tree(tree)?;
    let mut out = Vec::new();
    for e in t.entries {
        let path = format!("{prefix}/{}", String::from_utf8_lossy(&e.name));
        match &e.kind {
            EntryKind::Dir { digest } => {
                let sub = filter_at(store, digest, &path, keep)?;
                match sub {
                    Some(d) => out.push(Entry::dir(e.name.clone(), e.mode, d)),
                    None if keep(&path) => {
                        out.push(Entry::dir(e.name.clone(), e.mode, TreeDigest::empty()));
                    }
                    None => {}
                }
            }
            _ => {
                if keep(&path) {
                    out.push(e);
                }
            }
        }
    }
    if out.is_empty() && !prefix.is_empty() {
        return Ok(None);
    }
    Ok(Some(store.put_tree(&Tree::new(out)?)?))
}

/// `tree` placed at `dest` (an absolute path; `/` is the tree itself).
pub fn place_under(store: &Store, tree: TreeDigest, dest: &str) -> Result<TreeDigest> {
    let mut digest = tree;
    for component in dest
        .split('/')
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let t = Tree::new(vec![Entry::dir(
            component.as_bytes().to_vec(),
            0o755,
            digest,
        )])?;
        digest = store.put_tree(&t)?;
    }
    Ok(digest)
}
