//! One package of one output tree. Reproducible: every member and entry has
//! mtime [`EPOCH`](crate::EPOCH), owner 0:0, the tree's modes, entries in the
//! tree's order; xz (deb) and gzip (ipk, no name, mtime 0) are deterministic.
//! Same tree and control → same bytes.

use std::io::Write;
use std::path::Path;

use cas_store::{EntryKind, Store, TreeDigest};

use crate::control::{Control, Format};
use crate::{PackageError, EPOCH};

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PackageError + 'a {
    move |source| PackageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Compress `data` the way `format` wants its members.
fn compressor(format: Format, out: Vec<u8>) -> Box<dyn Finish> {
    match format {
        Format::Deb => Box::new(xz2::write::XzEncoder::new(out, 6)),
        Format::Ipk => Box::new(
            flate2::GzBuilder::new()
                .mtime(0)
                .write(out, flate2::Compression::best()),
        ),
    }
}

trait Finish: Write {
    fn done(self: Box<Self>) -> std::io::Result<Vec<u8>>;
}
impl Finish for xz2::write::XzEncoder<Vec<u8>> {
    fn done(self: Box<Self>) -> std::io::Result<Vec<u8>> {
        (*self).finish()
    }
}
impl Finish for flate2::write::GzEncoder<Vec<u8>> {
    fn done(self: Box<Self>) -> std::io::Result<Vec<u8>> {
        (*self).finish()
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(EPOCH);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// The sizes of a tree's files, in KiB rounded up (`Installed-Size`).
pub fn installed_size(store: &Store, tree: &TreeDigest) -> Result<u64, PackageError> {
    let bytes: u64 = store
        .walk(tree)?
        .iter()
        .map(|(_, e)| match e.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    Ok(bytes.div_ceil(1024))
}

/// The package of `tree` with `control`, as bytes; `name` names it in errors.
pub fn package(
    store: &Store,
    tree: &TreeDigest,
    control: &Control,
    format: Format,
    name: &Path,
) -> Result<Vec<u8>, PackageError> {
    crate::control::check_name(&control.package)?;
    crate::control::check_version(&control.version)?;
    let ext = match format {
        Format::Deb => "xz",
        Format::Ipk => "gz",
    };
    // control.tar: ./ and ./control
    let stanza = control.stanza();
    let mut b = tar::Builder::new(compressor(format, Vec::new()));
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, "./", std::io::empty())
        .map_err(io("write control of", name))?;
    let mut h = header(tar::EntryType::Regular, 0o644, stanza.len() as u64);
    b.append_data(&mut h, "./control", stanza.as_bytes())
        .map_err(io("write control of", name))?;
    let control_tar = b
        .into_inner()
        .and_then(Finish::done)
        .map_err(io("write control of", name))?;
    // data.tar: the tree (below a ./ entry, as dpkg-deb writes it)
    let mut w = compressor(format, Vec::new());
    let mut root = header(tar::EntryType::Directory, 0o755, 0);
    root.set_path("./").map_err(io("write data of", name))?;
    root.set_cksum();
    w.write_all(root.as_bytes())
        .map_err(io("write data of", name))?;
    let w = store.tar_into(tree, EPOCH, w, name)?;
    let data_tar = w.done().map_err(io("write data of", name))?;
    Ok(crate::ar::archive(
        &[
            ("debian-binary", b"2.0\n"),
            (&format!("control.tar.{ext}"), &control_tar),
            (&format!("data.tar.{ext}"), &data_tar),
        ],
        EPOCH,
    ))
}
