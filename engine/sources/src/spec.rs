//! The data model of sources, as written in element files. The format crate
//! parses YAML into these types (with spans for diagnostics); this crate
//! fetches, verifies, caches and stages them. See spec/format.md and
//! spec/keys.md for each kind's fields and its identity.

use std::path::PathBuf;

/// A checksum pinned in an element file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Checksum {
    /// `sha256: <64 lowercase hex>`
    Sha256(String),
    /// `blake3: <64 lowercase hex>`
    Blake3(String),
}

impl Checksum {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "sha256",
            Checksum::Blake3(_) => "blake3",
        }
    }
    pub fn hex(&self) -> &str {
        match self {
            Checksum::Sha256(h) | Checksum::Blake3(h) => h,
        }
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm(), self.hex())
    }
}

/// A URL as written in the element (`alias:path` or a full URL) and as
/// resolved through the project's aliases. Keys use `written`; fetching uses
/// `resolved` (after trying mirrors of `alias`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUrl {
    pub written: String,
    pub alias: Option<String>,
    pub resolved: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A file or directory of the project. `path` is absolute (resolved
    /// against the project root by the loader).
    Local { path: PathBuf },
    /// An archive (gz, xz, bz2, zstd or plain tar). `base_dir`: `None` strips
    /// the single top directory if there is one; `Some("")` strips nothing;
    /// `Some("dir")` stages only that member directory's content.
    Tar {
        url: SourceUrl,
        checksum: Checksum,
        base_dir: Option<String>,
    },
    /// A single file. `filename` defaults to the last URL path segment.
    Remote {
        url: SourceUrl,
        checksum: Checksum,
        filename: Option<String>,
        executable: bool,
    },
    /// A patch file of the project (absolute path) applied to the staged
    /// sources with `patch -p<strip>`.
    Patch { path: PathBuf, strip: u32 },
    /// A git repository at a full 40-hex commit. `track` names the branch
    /// that `cas source track` follows. `keep_git` stages `.git` too.
    Git {
        url: SourceUrl,
        commit: String,
        track: Option<String>,
        keep_git: bool,
    },
    /// A Debian binary package; its data.tar.* is extracted. With
    /// `database`, it is also registered in the dpkg database of the staging
    /// directory (`var/lib/dpkg`: `status` stanza `install ok unpacked`,
    /// `info/` files), for a later `dpkg --configure`.
    Deb {
        url: SourceUrl,
        checksum: Checksum,
        database: bool,
    },
    /// Rust crates from a registry (`url` is its base: a crate's file is
    /// `url` + `{name}/{name}-{version}.crate`), vendored into `vendor_dir`
    /// with `.cargo/config.toml` pointing cargo at them.
    Cargo {
        url: SourceUrl,
        vendor_dir: String,
        crates: Vec<Crate>,
    },
}

/// One crate of a `cargo` source: the registry's file
/// `{name}/{name}-{version}.crate`, pinned by its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub version: String,
    pub checksum: Checksum,
}

impl Crate {
    /// The crate's URL under the registry base `base` (a `/` is put between
    /// them unless the base ends with `/` or `:`).
    pub fn url(&self, base: &SourceUrl) -> SourceUrl {
        let sep = if base.written.ends_with(['/', ':']) {
            ""
        } else {
            "/"
        };
        let path = format!("{sep}{0}/{0}-{1}.crate", self.name, self.version);
        SourceUrl {
            written: format!("{}{path}", base.written),
            alias: base.alias.clone(),
            resolved: format!("{}{path}", base.resolved),
        }
    }
}

/// One entry of an element's `sources:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub kind: SourceKind,
    /// Stage under this subdirectory of %{build-root} (relative, no `..`).
    pub directory: Option<String>,
    /// Keep setuid/setgid bits from archives (default: dropped).
    pub keep_setuid: bool,
}

impl SourceKind {
    /// The name of the kind as written in `kind:`.
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Local { .. } => "local",
            SourceKind::Tar { .. } => "tar",
            SourceKind::Remote { .. } => "remote",
            SourceKind::Patch { .. } => "patch",
            SourceKind::Git { .. } => "git",
            SourceKind::Deb { .. } => "deb",
            SourceKind::Cargo { .. } => "cargo",
        }
    }

    /// The project's files this source is made of (its identity is their
    /// content): a local tree's root, or a patch file; none for the kinds
    /// that are fetched. What a no-op memo must watch (crate cas-builder).
    pub fn local_inputs(&self) -> Vec<LocalInput<'_>> {
        match self {
            SourceKind::Local { path } => vec![LocalInput::Tree(path)],
            SourceKind::Patch { path, .. } => vec![LocalInput::File(path)],
            SourceKind::Tar { .. }
            | SourceKind::Remote { .. }
            | SourceKind::Git { .. }
            | SourceKind::Deb { .. }
            | SourceKind::Cargo { .. } => Vec::new(),
        }
    }
}

/// A file of the project a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalInput<'a> {
    /// A file or a directory with everything under it.
    Tree(&'a std::path::Path),
    /// One file.
    File(&'a std::path::Path),
}
