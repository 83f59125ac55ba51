//! The identity of a source: the bytes that build keys hash. Computing it
//! never touches the network (and never the store: the engine passes the
//! tree digest of a local source). Mirrors and the resolved URL never enter
//! it. Specified byte for byte in spec/sources.md.

use std::path::Path;

use crate::checksum::blake3_file;
use crate::error::{Result, SourceError};
use crate::spec::{Checksum, Source, SourceKind};
use crate::stage::remote_filename;

/// The version tag that starts every identity.
pub const IDENTITY_TAG: &str = "cas-source-1";

/// The error type of the `local_tree` callback of [`identity`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The canonical identity encoding of `source`.
///
/// `local_tree` is called only for `kind: local` sources, with the source's
/// absolute path, and returns the blake3 tree digest that the store gives to
/// that file or directory once ingested.
pub fn identity(
    source: &Source,
    local_tree: impl FnOnce(&Path) -> Result<[u8; 32], BoxError>,
) -> Result<Vec<u8>> {
    let mut e = Encoder::default();
    e.str(IDENTITY_TAG);
    e.str(match source.kind {
        // A registered package stages more than its data: its own name, so
        // that the identity of a plain `deb` source stays what it was.
        SourceKind::Deb { database: true, .. } => "deb-dpkg",
        _ => source.kind.name(),
    });
    match &source.kind {
        SourceKind::Local { path } => {
            let digest = local_tree(path).map_err(|err| SourceError::LocalTree {
                path: path.clone(),
                message: err.to_string(),
            })?;
            e.raw(&digest);
        }
        SourceKind::Tar {
            url,
            checksum,
            base_dir,
        } => {
            e.str(&url.written);
            e.checksum(checksum);
            e.opt_str(base_dir.as_deref());
        }
        SourceKind::Remote {
            url,
            checksum,
            filename,
            executable,
        } => {
            e.str(&url.written);
            e.checksum(checksum);
            e.str(&remote_filename(url, filename.as_deref())?);
            e.bool(*executable);
        }
        SourceKind::Deb { url, checksum, .. } => {
            e.str(&url.written);
            e.checksum(checksum);
        }
        SourceKind::Git {
            url,
            commit,
            track: _,
            keep_git,
        } => {
            e.str(&url.written);
            e.str(commit);
            e.bool(*keep_git);
        }
        SourceKind::Patch { path, strip } => {
            e.raw(&blake3_file(path)?);
            e.u32(*strip);
        }
        SourceKind::Cargo {
            url,
            vendor_dir,
            crates,
        } => {
            e.str(&url.written);
            e.str(vendor_dir);
            e.u32(u32::try_from(crates.len()).unwrap_or(u32::MAX));
            for c in crates {
                e.str(&c.name);
                e.str(&c.version);
                e.checksum(&c.checksum);
            }
        }
    }
    e.opt_str(source.directory.as_deref());
    e.bool(source.keep_setuid);
    Ok(e.0)
}

/// blake3 of [`identity`]: a fixed-size digest, handy for display.
pub fn identity_digest(
    source: &Source,
    local_tree: impl FnOnce(&Path) -> Result<[u8; 32], BoxError>,
) -> Result<[u8; 32]> {
    Ok(*blake3::hash(&identity(source, local_tree)?).as_bytes())
}

/// The primitive encodings of spec/sources.md.
#[derive(Default)]
struct Encoder(Vec<u8>);

impl Encoder {
    /// u64 little-endian length, then the UTF-8 bytes.
    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u64).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn raw(&mut self, bytes: &[u8; 32]) {
        self.0.extend_from_slice(bytes);
    }
    fn bool(&mut self, b: bool) {
        self.0.push(b as u8);
    }
    fn u32(&mut self, n: u32) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }
    fn checksum(&mut self, c: &Checksum) {
        self.str(c.algorithm());
        self.str(c.hex());
    }
}
