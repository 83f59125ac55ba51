//! The `Store` handle: opening and creating the on-disk layout, paths of objects.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::action_cache::Db;
use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::lock::{self, StoreLock};

/// The content of the `layout` file; a store with another layout is refused.
pub const LAYOUT: &str = "cas-store layout 1\n";

/// A content store rooted at a directory. `Sync`: share it between threads.
pub struct Store {
    root: PathBuf,
    pub(crate) db: Db,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Open the store at `root`, creating the layout if the directory is new or empty.
    pub fn open(root: &Path) -> Result<Store> {
        fs::create_dir_all(root).ctx("create store directory", root)?;
        let root = fs::canonicalize(root).ctx("resolve store directory", root)?;
        let paths = crate::Layout::new(&root);
        let layout = paths.version_file();
        match fs::read_to_string(&layout) {
            Ok(s) if s == LAYOUT => {}
            Ok(s) => {
                return Err(StoreError::Layout {
                    path: root.clone(),
                    reason: format!(
                        "unsupported layout {:?} (this cas reads {:?})",
                        s.trim(),
                        LAYOUT.trim()
                    ),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut entries = fs::read_dir(&root).ctx("read store directory", &root)?;
                if entries.next().is_some() && !paths.objects().is_dir() {
                    return Err(StoreError::Layout {
                        path: root.clone(),
                        reason: "directory is not empty and is not a cas store".into(),
                    });
                }
            }
            Err(e) => return Err(e).ctx("read", &layout),
        }
        for d in [paths.objects(), paths.tmp(), paths.views(), paths.locks()] {
            fs::create_dir_all(&d).ctx("create", &d)?;
        }
        if !paths.objects().join("ff").is_dir() {
            for i in 0..=255u8 {
                let d = paths.objects().join(format!("{i:02x}"));
                fs::create_dir_all(&d).ctx("create", &d)?;
            }
        }
        if !layout.exists() {
            // A new store is its owner's only (spec/store.md): failed builds'
            // directories keep what steps made, setuid files included. A
            // store meant to be shared is made so by its owner (chmod).
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).ctx("chmod", &root)?;
            // A name of its own: two processes may create the same store at once.
            let tmp = paths.tmp().join(format!(
                "layout.{}.{}",
                std::process::id(),
                TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            fs::write(&tmp, LAYOUT).ctx("write", &tmp)?;
            fs::rename(&tmp, &layout).ctx("rename into place", &layout)?;
        }
        let db = Db::new(&paths.database());
        let store = Store { root, db };
        // The empty tree is always present (trees of empty directories point at it).
        store.put_bytes_inner(&crate::tree::Tree::default().encode())?;
        Ok(store)
    }

    /// The store's root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The paths of every directory in it.
    pub fn layout(&self) -> crate::Layout<'_> {
        crate::Layout::new(&self.root)
    }

    /// Scratch space on the store's file system (`tmp/`).
    pub fn tmp_dir(&self) -> PathBuf {
        self.layout().tmp()
    }

    pub(crate) fn views_dir(&self) -> PathBuf {
        self.layout().views()
    }

    /// Where the view of `tree` lives (`views/<hex>`), built or not: see
    /// [`Store::view`].
    pub fn view_path(&self, tree: &crate::digest::TreeDigest) -> PathBuf {
        self.views_dir().join(tree.to_hex())
    }

    pub(crate) fn objects_dir(&self) -> PathBuf {
        self.layout().objects()
    }

    /// `objects/ab/cdef…`: the canonical (mode 0444) object file.
    pub fn object_path(&self, d: &Digest) -> PathBuf {
        let h = d.to_hex();
        self.objects_dir().join(&h[..2]).join(&h[2..])
    }

    /// A fresh, unused path in `tmp/` (same filesystem as the objects).
    pub(crate) fn tmp_path(&self, what: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        self.layout()
            .tmp()
            .join(format!("{what}-{}-{n}-{nanos}", std::process::id()))
    }

    /// Hold the store shared: gc cannot run until the lock is dropped. Builds hold
    /// it from staging their inputs until their result is recorded.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        lock::lock(&self.layout().lock(), false)
    }

    /// The build lock of `key` (`locks/<hex>`): see [`lock::KeyLock`].
    /// `waiting` is called once if another builder holds it.
    pub fn lock_key(
        &self,
        key: &crate::digest::ActionKey,
        waiting: &dyn Fn(),
    ) -> Result<lock::KeyLock> {
        lock::KeyLock::acquire(&self.layout().locks(), &key.to_hex(), waiting)
    }

    /// Hold the store exclusively (gc, verify --repair).
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        lock::lock(&self.layout().lock(), true)
    }
}
