//! Garbage collection under the exclusive lock.
//!
//! Roots: pins, views in use, the empty tree, and every action result and
//! source-index entry that survives the quota. With `max_size`, results and
//! source entries are evicted least recently used first (except those younger
//! than the horizon) until the objects still reachable fit. Rows are deleted
//! in one committed transaction *before* any object is unlinked, so a crash at
//! any moment leaves rows pointing only at present objects. Results remembered
//! from remotes without their objects (`remote_results`) are not roots; gc
//! drops those recorded before the horizon.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::time::Duration;

use crate::action_cache::{now_ms, now_secs};
use crate::digest::{ActionKey, Digest, TreeDigest};
use crate::error::{IoContext, Result, StoreError};
use crate::lock;
use crate::store::Store;
use crate::tree::EntryKind;
use crate::view::remove_tree;

/// What `gc` may do.
#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Evict least recently used results until the objects fit in this many bytes.
    pub max_size: Option<u64>,
    /// Results created (source entries used) more recently than this are never evicted.
    pub keep_younger_than: Option<Duration>,
    /// Only report what would go.
    pub dry_run: bool,
}

/// What `gc` did (or would do, with `dry_run`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub results_removed: Vec<ActionKey>,
    pub sources_removed: Vec<String>,
    pub objects_removed: u64,
    pub bytes_freed: u64,
    pub views_removed: u64,
    /// Remembered answers of remotes (`remote_results`) dropped.
    pub remote_answers_removed: u64,
    pub tmp_removed: u64,
    /// Directories of failed builds (kept for `cas shell --failed`) removed.
    pub builds_removed: u64,
    /// Their size, in bytes (not part of `bytes_freed`, which counts objects).
    pub bytes_freed_builds: u64,
    pub size_before: u64,
    pub size_after: u64,
}

/// Bytes used by the files under `path` (never following a link).
fn du(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        total += m.blocks() * 512;
        if m.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

/// Parse a size: `1024`, `500M`, `10G`, `1.5G`, `2KiB`, `3TB` (binary multiples).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let bad = || StoreError::Invalid(format!("not a size: {s:?} (examples: 1024, 500M, 10G)"));
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(bad);
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let v = f * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

impl Store {
    /// Closure of a tree, tolerating missing or corrupt trees (gc keeps what it can).
    pub(crate) fn closure_lenient(&self, tree: &TreeDigest, seen: &mut HashSet<Digest>) {
        let mut stack = vec![*tree];
        while let Some(t) = stack.pop() {
            if !seen.insert(t.0) {
                continue;
            }
            if let Ok(tree) = self.get_tree(&t) {
                for e in tree.entries {
                    match e.kind {
                        EntryKind::File { digest, .. } => {
                            seen.insert(digest.0);
                        }
                        EntryKind::Dir { digest } => stack.push(digest),
                        EntryKind::Symlink { .. } => {}
                    }
                }
            }
        }
    }

    /// Collect garbage. Takes the exclusive lock (waits for running builds).
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let _lock = self.lock_exclusive()?;
        let mut report = GcReport {
            dry_run: opts.dry_run,
            ..Default::default()
        };
        // 0. Space first, before anything needs the database (which cannot
        // even open its journal on a full file system): the directories of
        // failed builds and temporary files. Nobody holds the shared lock,
        // so no build is using any of them.
        if !opts.dry_run {
            for dir in [self.layout().builds(), self.tmp_dir()] {
                let Ok(entries) = fs::read_dir(&dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    if dir.ends_with("builds") && (!is_dir || name.starts_with('.')) {
                        // the last failure's record stays until its
                        // directory is gone; `.sysroot` is a mount point
                        continue;
                    }
                    if dir.ends_with("builds") && name != "failed" {
                        report.builds_removed += 1;
                        report.bytes_freed_builds += du(&e.path());
                    } else {
                        report.tmp_removed += 1;
                    }
                    remove_tree(&e.path())?;
                }
            }
        } else if let Ok(entries) = fs::read_dir(self.layout().builds()) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    report.builds_removed += 1;
                    report.bytes_freed_builds += du(&e.path());
                }
            }
        }
        let inv = self.inventory()?;
        report.size_before = inv.total_size();
        let size_of = |d: &Digest| {
            inv.objects
                .get(d)
                .map_or(0, super::inventory::ObjectFiles::size)
        };

        // Views: in use (someone holds the view lock) → root; else a candidate for removal.
        let views = self.views_dir();
        let mut view_trees: Vec<(TreeDigest, bool, Option<lock::StoreLock>)> = Vec::new();
        let mut seen_views = HashSet::new();
        for e in fs::read_dir(&views).ctx("read directory", &views)? {
            let e = e.ctx("read directory", &views)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.strip_suffix(".lock").unwrap_or(&name).to_string();
            if !seen_views.insert(hex.clone()) {
                continue;
            }
            let Ok(d) = TreeDigest::from_hex(&hex) else {
                continue;
            };
            match lock::try_lock(&views.join(format!("{hex}.lock")), true)? {
                None => view_trees.push((d, true, None)),
                Some(l) => view_trees.push((d, false, Some(l))),
            }
        }

        // Permanent roots.
        let mut permanent = HashSet::new();
        permanent.insert(TreeDigest::empty().0);
        for (_, t) in self.pins()? {
            self.closure_lenient(&t, &mut permanent);
        }
        for (t, in_use, _) in &view_trees {
            if *in_use {
                self.closure_lenient(t, &mut permanent);
            }
        }

        // Evictable roots, least recently used first.
        enum Root {
            Result(ActionKey),
            Source(String),
        }
        let now = now_ms();
        let horizon_ms = opts.keep_younger_than.map(|d| d.as_millis() as i64);
        let mut roots: Vec<(i64, bool, Root, HashSet<Digest>)> = Vec::new();
        let notes = self.db.all_notes()?;
        for r in self.db.results()? {
            let mut c = HashSet::new();
            self.closure_lenient(&r.result.output, &mut c);
            c.insert(r.result.log.0);
            c.insert(r.result.manifest.0);
            // notes live and die with their result
            for b in notes.get(&r.key).into_iter().flatten() {
                c.insert(b.0);
            }
            let protected = horizon_ms.is_some_and(|h| r.result.created * 1000 > now - h);
            roots.push((r.accessed_ms, protected, Root::Result(r.key), c));
        }
        for (id, blob, accessed) in self.db.sources()? {
            let protected = horizon_ms.is_some_and(|h| accessed > now - h);
            roots.push((
                accessed,
                protected,
                Root::Source(id),
                HashSet::from([blob.0]),
            ));
        }
        roots.sort_by_key(|r| r.0);

        let mut count: HashMap<Digest, u32> = HashMap::new();
        for d in &permanent {
            *count.entry(*d).or_default() += 1;
        }
        for (_, _, _, c) in &roots {
            for d in c {
                *count.entry(*d).or_default() += 1;
            }
        }
        let mut live_size: u64 = count.keys().map(size_of).sum();
        let mut evicted = vec![false; roots.len()];
        if let Some(max) = opts.max_size {
            for (i, (_, protected, _, closure)) in roots.iter().enumerate() {
                if live_size <= max {
                    break;
                }
                if *protected {
                    continue;
                }
                evicted[i] = true;
                for d in closure {
                    if let Some(n) = count.get_mut(d) {
                        *n -= 1;
                        if *n == 0 {
                            live_size -= size_of(d);
                        }
                    }
                }
            }
        }
        for (i, (_, _, root, _)) in roots.iter().enumerate() {
            if evicted[i] {
                match root {
                    Root::Result(k) => report.results_removed.push(*k),
                    Root::Source(s) => report.sources_removed.push(s.clone()),
                }
            }
        }
        let live: HashSet<Digest> = count
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(d, _)| d)
            .collect();

        // 1. Rows first (committed), then files.
        if !opts.dry_run
            && (!report.results_removed.is_empty() || !report.sources_removed.is_empty())
        {
            self.db
                .delete_rows(&report.results_removed, &report.sources_removed)?;
        }
        // Memos are an optimisation that each binary and working directory
        // adds to: gc forgets them (their hits counted first).
        if !opts.dry_run {
            self.db.forget_memos()?;
        }
        // Remembered remote answers are a cache of lookups, never roots: those
        // older than the horizon (all, without one) go; a later build asks again.
        let before = horizon_ms.map_or(i64::MAX, |h| now - h);
        report.remote_answers_removed = self.remote_results_prune(before, opts.dry_run)?;
        // 2. Views that are not in use and whose tree is no longer live.
        for (t, in_use, guard) in view_trees {
            if in_use || live.contains(&t.0) {
                continue;
            }
            report.views_removed += 1;
            if !opts.dry_run {
                // Out of views/ in one rename first: a view that exists is
                // always complete, even if gc dies halfway through removing
                // it (what is left in tmp/ goes with the next gc).
                let path = views.join(t.to_hex());
                let trash = self.tmp_path("gc-view");
                // moving a directory to another parent rewrites its `..`:
                // the view's read-only root must be writable first (a
                // view with that mode is still a complete view)
                let _ =
                    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700));
                match fs::rename(&path, &trash) {
                    Ok(()) => remove_tree(&trash)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).ctx("move view out of views/", &path),
                }
                let _ = fs::remove_file(views.join(format!("{}.lock", t.to_hex())));
            }
            drop(guard);
        }
        // 3. Unreachable objects (variants first: they are derived from the object).
        for (d, files) in &inv.objects {
            if live.contains(d) {
                continue;
            }
            report.objects_removed += 1;
            report.bytes_freed += files.size();
            if !opts.dry_run {
                for (p, _, _) in &files.variants {
                    let _ = fs::remove_file(p);
                }
                if let Some((p, _, _)) = &files.canonical {
                    match fs::remove_file(p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e).ctx("remove object", p),
                    }
                }
            }
        }
        // Variants whose canonical object is gone are derivable from nothing: remove.
        for (d, files) in &inv.objects {
            if live.contains(d) && files.canonical.is_none() && !opts.dry_run {
                for (p, _, _) in &files.variants {
                    let _ = fs::remove_file(p);
                }
            }
        }
        // 4. Stale temporary files: nobody holds the shared lock, so nothing in tmp/ is in use.
        let tmp = self.tmp_dir();
        for e in fs::read_dir(&tmp).ctx("read directory", &tmp)? {
            let e = e.ctx("read directory", &tmp)?;
            report.tmp_removed += 1;
            if !opts.dry_run {
                remove_tree(&e.path())?;
            }
        }
        report.size_after = report.size_before - report.bytes_freed.min(report.size_before);
        let _ = now_secs();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("10X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }
}
