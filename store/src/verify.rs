//! Verify: re-hash every object and variant in parallel, then find the action
//! results, pins and source entries that reference corrupt or missing objects.
//! `repair` deletes those results and source entries (one transaction), then the
//! corrupt files, then unused views (they may share a corrupt inode).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::blob::{hash_file, OBJECT_MODE};
use crate::digest::{ActionKey, Digest, TreeDigest};
use crate::error::{IoContext, Result};
use crate::lock;
use crate::store::Store;
use crate::tree::EntryKind;
use crate::view::remove_tree;

/// What verify found (and, with repair, did).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub objects_checked: u64,
    pub bytes_checked: u64,
    /// Objects whose content does not match their name.
    pub corrupt: Vec<String>,
    /// Objects referenced by a result, pin or source entry but absent (or corrupt).
    pub missing: Vec<String>,
    /// Mode variants that do not match their object or their mode.
    pub bad_variants: Vec<PathBuf>,
    /// Canonical objects whose mode is not 0444.
    pub bad_modes: Vec<PathBuf>,
    pub broken_results: Vec<ActionKey>,
    /// `--deep`: results whose manifest does not hash to their key (a result
    /// recorded under a key it does not belong to).
    pub mismatched_results: Vec<ActionKey>,
    pub broken_pins: Vec<String>,
    pub broken_sources: Vec<String>,
    pub repaired: bool,
}

impl VerifyReport {
    /// True when nothing is wrong (after repair: nothing is left wrong).
    pub fn is_consistent(&self) -> bool {
        if self.repaired {
            self.broken_pins.is_empty()
        } else {
            self.corrupt.is_empty()
                && self.missing.is_empty()
                && self.bad_variants.is_empty()
                && self.bad_modes.is_empty()
                && self.broken_results.is_empty()
                && self.mismatched_results.is_empty()
                && self.broken_pins.is_empty()
                && self.broken_sources.is_empty()
        }
    }
}

enum Check {
    Ok(u64),
    Corrupt(Digest, u64),
    BadVariant(PathBuf),
    BadMode(PathBuf),
}

struct Reach<'a> {
    store: &'a Store,
    present: &'a HashSet<Digest>,
    memo: HashMap<Digest, bool>,
    missing: HashSet<Digest>,
}

impl Reach<'_> {
    fn blob_ok(&mut self, d: &Digest) -> bool {
        if self.present.contains(d) {
            true
        } else {
            self.missing.insert(*d);
            false
        }
    }

    fn tree_ok(&mut self, t: &TreeDigest) -> bool {
        if let Some(&ok) = self.memo.get(&t.0) {
            return ok;
        }
        let ok = if self.blob_ok(&t.0) {
            match self.store.get_tree(t) {
                Err(_) => {
                    self.missing.insert(t.0);
                    false
                }
                Ok(tree) => {
                    let mut ok = true;
                    for e in tree.entries {
                        ok &= match e.kind {
                            EntryKind::File { digest, .. } => self.blob_ok(&digest.0),
                            EntryKind::Dir { digest } => self.tree_ok(&digest),
                            EntryKind::Symlink { .. } => true,
                        };
                    }
                    ok
                }
            }
        } else {
            false
        };
        self.memo.insert(t.0, ok);
        ok
    }
}

impl Store {
    /// Re-hash everything; report (and with `repair`, remove) what is broken.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport> {
        self.verify_with(repair, false)
    }

    /// [`Store::verify`]; `deep` also re-checks every action result against
    /// its manifest: the manifest must hash to the result's key (spec/keys.md).
    pub fn verify_with(&self, repair: bool, deep: bool) -> Result<VerifyReport> {
        let _lock = if repair {
            self.lock_exclusive()?
        } else {
            self.lock_shared()?
        };
        // The rows first, then the objects: a row is recorded only after
        // its objects are in place, and gc cannot run meanwhile (the lock),
        // so every object a row read here names is in the inventory taken
        // after it. The other order called results that a concurrent build
        // recorded during the scan "broken" (they were complete).
        let results = self.db.results()?;
        let pins = self.pins()?;
        let sources = self.db.sources()?;
        let inv = self.inventory()?;
        let mut jobs: Vec<(Digest, PathBuf, Option<u32>, u32)> = Vec::new();
        for (d, files) in &inv.objects {
            if let Some((p, _, mode)) = &files.canonical {
                jobs.push((*d, p.clone(), None, *mode));
            }
            for (p, m, _) in &files.variants {
                jobs.push((*d, p.clone(), Some(*m), 0));
            }
        }
        let checks: Vec<Check> = jobs
            .par_iter()
            .map(|(d, p, variant, mode)| -> Result<Check> {
                let mut f = match File::open(p) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Check::Ok(0)),
                    Err(e) => return Err(e).ctx("open object", p),
                };
                let (actual, size) = hash_file(&mut f).ctx("read object", p)?;
                let meta_mode = f.metadata().map_or(0, |m| m.permissions().mode() & 0o7777);
                Ok(match variant {
                    Some(m) if actual != *d || meta_mode != *m => Check::BadVariant(p.clone()),
                    Some(_) => Check::Ok(size),
                    None if actual != *d => Check::Corrupt(*d, size),
                    None if *mode != OBJECT_MODE => Check::BadMode(p.clone()),
                    None => Check::Ok(size),
                })
            })
            .collect::<Result<_>>()?;
        let mut report = VerifyReport::default();
        let mut corrupt = HashSet::new();
        for c in checks {
            match c {
                Check::Ok(size) => {
                    report.objects_checked += 1;
                    report.bytes_checked += size;
                }
                Check::Corrupt(d, size) => {
                    report.objects_checked += 1;
                    report.bytes_checked += size;
                    corrupt.insert(d);
                }
                Check::BadVariant(p) => report.bad_variants.push(p),
                Check::BadMode(p) => report.bad_modes.push(p),
            }
        }
        let present: HashSet<Digest> = inv
            .objects
            .iter()
            .filter(|(d, f)| f.canonical.is_some() && !corrupt.contains(*d))
            .map(|(d, _)| *d)
            .chain(std::iter::once(TreeDigest::empty().0))
            .collect();
        let mut reach = Reach {
            store: self,
            present: &present,
            memo: HashMap::new(),
            missing: HashSet::new(),
        };
        for r in results {
            let a = reach.tree_ok(&r.result.output);
            let b = reach.blob_ok(&r.result.log.0);
            let c = reach.blob_ok(&r.result.manifest.0);
            if !(a && b && c) {
                report.broken_results.push(r.key);
            } else if deep {
                let path = self.object_path(&r.result.manifest.0);
                let bytes = fs::read(&path).ctx("read manifest", &path)?;
                if Digest::of_bytes(&bytes) != *r.key.digest() {
                    report.mismatched_results.push(r.key);
                }
            }
        }
        for (name, t) in pins {
            if !reach.tree_ok(&t) {
                report.broken_pins.push(name);
            }
        }
        for (id, blob, _) in sources {
            if !reach.blob_ok(&blob.0) {
                report.broken_sources.push(id);
            }
        }
        let mut c: Vec<String> = corrupt.iter().map(super::digest::Digest::to_hex).collect();
        c.sort();
        report.corrupt = c;
        let mut m: Vec<String> = reach
            .missing
            .iter()
            .map(super::digest::Digest::to_hex)
            .collect();
        m.sort();
        report.missing = m;
        report.broken_results.sort();
        report.mismatched_results.sort();
        report.broken_sources.sort();

        if repair {
            report.repaired = true;
            let mut results = report.broken_results.clone();
            results.extend(report.mismatched_results.iter().copied());
            self.db.delete_rows(&results, &report.broken_sources)?;
            for d in &corrupt {
                if let Some(files) = inv.objects.get(d) {
                    for (p, _, _) in &files.variants {
                        let _ = fs::remove_file(p);
                    }
                    if let Some((p, _, _)) = &files.canonical {
                        fs::remove_file(p).ctx("remove corrupt object", p)?;
                    }
                }
            }
            for p in &report.bad_variants {
                fs::remove_file(p).ctx("remove bad variant", p)?;
            }
            for p in &report.bad_modes {
                fs::set_permissions(p, fs::Permissions::from_mode(OBJECT_MODE)).ctx("chmod", p)?;
            }
            if !corrupt.is_empty() || !report.bad_variants.is_empty() {
                // Views share inodes with objects: drop every view not in use.
                let views = self.views_dir();
                for e in fs::read_dir(&views).ctx("read directory", &views)? {
                    let e = e.ctx("read directory", &views)?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.ends_with(".lock") {
                        continue;
                    }
                    if let Some(_guard) = lock::try_lock(&views.join(format!("{name}.lock")), true)?
                    {
                        remove_tree(&e.path())?;
                    }
                }
            }
        }
        Ok(report)
    }
}
