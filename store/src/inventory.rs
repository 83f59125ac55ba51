//! Listing what is in `objects/`: canonical objects, their mode variants, strays.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::store::Store;

/// One content digest's files.
#[derive(Debug, Default, Clone)]
pub(crate) struct ObjectFiles {
    /// The canonical object, if present: (path, size, mode bits).
    pub canonical: Option<(PathBuf, u64, u32)>,
    /// Variants: (path, mode from the name, size).
    pub variants: Vec<(PathBuf, u32, u64)>,
}

impl ObjectFiles {
    pub(crate) fn size(&self) -> u64 {
        self.canonical.as_ref().map_or(0, |c| c.1) + self.variants.iter().map(|v| v.2).sum::<u64>()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub objects: HashMap<Digest, ObjectFiles>,
    /// Files in `objects/` that are neither objects nor variants.
    pub strays: Vec<PathBuf>,
}

impl Inventory {
    pub(crate) fn total_size(&self) -> u64 {
        self.objects.values().map(ObjectFiles::size).sum()
    }
}

enum Item {
    Canonical(Digest, PathBuf, u64, u32),
    Variant(Digest, PathBuf, u32, u64),
    Stray(PathBuf),
}

impl Store {
    pub(crate) fn inventory(&self) -> Result<Inventory> {
        let objects = self.objects_dir();
        let mut fanouts = Vec::new();
        for e in fs::read_dir(&objects).ctx("read directory", &objects)? {
            let e = e.ctx("read directory", &objects)?;
            fanouts.push(e.path());
        }
        let items: Vec<Vec<Item>> = fanouts
            .par_iter()
            .map(|dir| -> Result<Vec<Item>> {
                let mut out = Vec::new();
                let prefix = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Ok(rd) = fs::read_dir(dir) else {
                    out.push(Item::Stray(dir.clone()));
                    return Ok(out);
                };
                for e in rd {
                    let e = e.ctx("read directory", dir)?;
                    let path = e.path();
                    // removed meanwhile: skipped
                    let Ok(meta) = fs::symlink_metadata(&path) else {
                        continue;
                    };
                    let name = e.file_name().to_string_lossy().into_owned();
                    let (base, suffix) = match name.split_once('.') {
                        Some((b, s)) => (b.to_string(), Some(s.to_string())),
                        None => (name.clone(), None),
                    };
                    let digest = if meta.is_file() && prefix.len() == 2 {
                        Digest::from_hex(&format!("{prefix}{base}")).ok()
                    } else {
                        None
                    };
                    match (digest, suffix) {
                        (Some(d), None) => {
                            out.push(Item::Canonical(d, path, meta.len(), meta.mode() & 0o7777));
                        }
                        (Some(d), Some(s)) => match u32::from_str_radix(&s, 8) {
                            Ok(m) if m <= 0o7777 => out.push(Item::Variant(d, path, m, meta.len())),
                            _ => out.push(Item::Stray(path)),
                        },
                        (None, _) => out.push(Item::Stray(path)),
                    }
                }
                Ok(out)
            })
            .collect::<Result<_>>()?;
        let mut inv = Inventory::default();
        for item in items.into_iter().flatten() {
            match item {
                Item::Canonical(d, p, size, mode) => {
                    inv.objects.entry(d).or_default().canonical = Some((p, size, mode));
                }
                Item::Variant(d, p, m, size) => inv
                    .objects
                    .entry(d)
                    .or_default()
                    .variants
                    .push((p, m, size)),
                Item::Stray(p) => inv.strays.push(p),
            }
        }
        Ok(inv)
    }
}
