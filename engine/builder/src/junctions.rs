//! Junctions whose subproject comes from fetched sources (a tar or git
//! source, with patches): BuildStream projects reach most of their
//! subprojects this way. The loader asks for the subproject's directory;
//! its sources are fetched when the command may (build, fetch), staged
//! once per identity under `<store>/junctions/<digest>/`, and reused by
//! every later load. A command that may not fetch (show) names the one that
//! does.

use std::path::PathBuf;

use cas_format::JunctionSources;
use cas_sources::{fetch_source, identity_digest, stage_source, Mirrors, NoProgress, Source};
use cas_store::Store;

use crate::run::fetcher_for;
use crate::sources::{git_dir, LocalDigests, StoreSourceCache};

const TAG: &[u8] = b"cas-junction-1\0";

/// The store's junction directories.
pub struct StoreJunctions {
    pub store_root: PathBuf,
    /// The user's mirrors (the project's are added per junction).
    pub mirrors: Mirrors,
    /// Fetch what is missing; otherwise say `fetch_hint`.
    pub may_fetch: bool,
    /// The command that fetches them, for the message (`cas fetch hello.bst`).
    pub fetch_hint: String,
}

impl JunctionSources for StoreJunctions {
    fn directory(
        &self,
        junction: &str,
        sources: &[Source],
        project_mirrors: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<PathBuf, String> {
        let store = Store::open(&self.store_root).map_err(|e| e.to_string())?;
        let mut mirrors = self.mirrors.clone();
        for (alias, bases) in project_mirrors {
            for base in bases {
                mirrors.add(alias.clone(), base.clone());
            }
        }
        let fetcher = fetcher_for(&store, &mirrors).map_err(|e| e.to_string())?;
        let cache = StoreSourceCache { store: &store };
        let locals = LocalDigests::default();
        let mut h = blake3::Hasher::new();
        h.update(TAG);
        for s in sources {
            let id = identity_digest(s, |p| {
                locals
                    .digest(&store, p)
                    .map(|t| *t.digest().as_bytes())
                    .map_err(|e| Box::new(e) as cas_sources::BoxError)
            })
            .map_err(|e| e.to_string())?;
            h.update(&id);
        }
        let hex = h.finalize().to_hex().to_string();
        let base = cas_store::Layout::new(&self.store_root).junctions();
        let dir = base.join(&hex);
        if dir.is_dir() {
            return Ok(dir);
        }
        let missing: Vec<&Source> = sources
            .iter()
            .filter(|s| cas_sources::needs_fetch(s, &fetcher, &cache))
            .collect();
        if !missing.is_empty() {
            if !self.may_fetch {
                return Err(format!(
                    "its sources are not fetched yet; `{}` fetches them",
                    self.fetch_hint
                ));
            }
            for s in missing {
                fetch_source(s, &fetcher, &cache, false, &NoProgress)
                    .map_err(|e| format!("cannot fetch its sources: {e}"))?;
            }
        }
        // staged beside, then renamed: a killed load leaves no half directory
        let tmp = base.join(format!(".tmp-{}-{hex}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        for s in sources {
            stage_source(s, &cache, &git_dir(&store), &tmp)
                .map_err(|e| format!("cannot stage its sources: {e}"))?;
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir),
            // another process staged it first: theirs is the same
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dir)
            }
            Err(e) => Err(format!(
                "cannot move the subproject of {junction} into {}: {e}",
                dir.display()
            )),
        }
    }
}
