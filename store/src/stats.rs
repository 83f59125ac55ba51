//! Store statistics.

use std::fs;

use crate::error::{IoContext, Result};
use crate::store::Store;

/// Counts and sizes, for `cas store stats`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub objects: u64,
    pub variants: u64,
    /// Logical bytes of objects and variants.
    pub bytes: u64,
    pub results: u64,
    pub pins: u64,
    pub sources: u64,
    pub views: u64,
    pub tmp_entries: u64,
}

impl Store {
    pub fn stats(&self) -> Result<Stats> {
        let inv = self.inventory()?;
        let views = self.views_dir();
        let tmp = self.tmp_dir();
        Ok(Stats {
            objects: inv
                .objects
                .values()
                .filter(|o| o.canonical.is_some())
                .count() as u64,
            variants: inv.objects.values().map(|o| o.variants.len() as u64).sum(),
            bytes: inv.total_size(),
            results: self.db.results()?.len() as u64,
            pins: self.pins()?.len() as u64,
            sources: self.db.sources()?.len() as u64,
            views: fs::read_dir(&views)
                .ctx("read directory", &views)?
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".lock"))
                .count() as u64,
            tmp_entries: fs::read_dir(&tmp).ctx("read directory", &tmp)?.count() as u64,
        })
    }
}
