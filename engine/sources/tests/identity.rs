//! Identity bytes, checked against an independent encoding written from
//! spec/sources.md.

mod common;

use std::path::{Path, PathBuf};

use cas_sources::{identity, BoxError, Checksum, Source, SourceKind, SourceUrl};
use common::*;

fn no_local(_: &Path) -> Result<[u8; 32], BoxError> {
    Err("no local sources here".into())
}

fn s(out: &mut Vec<u8>, v: &str) {
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    out.extend_from_slice(v.as_bytes());
}

const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn url(written: &str, resolved: &str) -> SourceUrl {
    SourceUrl {
        written: written.into(),
        alias: written.split_once(':').map(|(a, _)| a.to_string()),
        resolved: resolved.into(),
    }
}

#[test]
fn tar_identity_is_byte_for_byte_the_spec() {
    let src = Source {
        kind: SourceKind::Tar {
            url: url(
                "upstream:hello-2.10.tar.gz",
                "http://127.0.0.1/r/hello-2.10.tar.gz",
            ),
            checksum: Checksum::Sha256(HEX.into()),
            base_dir: None,
        },
        directory: Some("src".into()),
        keep_setuid: false,
    };
    let mut want = Vec::new();
    s(&mut want, "cas-source-1");
    s(&mut want, "tar");
    s(&mut want, "upstream:hello-2.10.tar.gz");
    s(&mut want, "sha256");
    s(&mut want, HEX);
    want.push(0); // base-dir: absent
    want.push(1); // directory: present
    s(&mut want, "src");
    want.push(0); // keep-setuid: false
    assert_eq!(identity(&src, no_local).unwrap(), want);
}

#[test]
fn mirrors_and_resolution_never_change_identity_but_options_do() {
    let base = |resolved: &str, base_dir: Option<&str>| Source {
        kind: SourceKind::Tar {
            url: url("upstream:x.tar", resolved),
            checksum: Checksum::Sha256(HEX.into()),
            base_dir: base_dir.map(str::to_string),
        },
        directory: None,
        keep_setuid: false,
    };
    let a = identity(&base("http://127.0.0.1:1/x.tar", None), no_local).unwrap();
    let b = identity(&base("file:///srv/mirror/x.tar", None), no_local).unwrap();
    assert_eq!(a, b);
    let c = identity(&base("http://127.0.0.1:1/x.tar", Some("")), no_local).unwrap();
    let d = identity(&base("http://127.0.0.1:1/x.tar", Some("sub")), no_local).unwrap();
    assert_ne!(a, c);
    assert_ne!(c, d);
    let mut kept = base("http://127.0.0.1:1/x.tar", None);
    kept.keep_setuid = true;
    assert_ne!(identity(&kept, no_local).unwrap(), a);
}

#[test]
fn remote_identity_uses_the_effective_filename() {
    let remote = |filename: Option<&str>, executable| Source {
        kind: SourceKind::Remote {
            url: url("tools:bin/run.sh", "http://127.0.0.1/bin/run.sh"),
            checksum: Checksum::Blake3(HEX.into()),
            filename: filename.map(str::to_string),
            executable,
        },
        directory: None,
        keep_setuid: false,
    };
    let implicit = identity(&remote(None, false), no_local).unwrap();
    assert_eq!(
        implicit,
        identity(&remote(Some("run.sh"), false), no_local).unwrap()
    );
    assert_ne!(
        implicit,
        identity(&remote(Some("other"), false), no_local).unwrap()
    );
    assert_ne!(implicit, identity(&remote(None, true), no_local).unwrap());
    let mut want = Vec::new();
    s(&mut want, "cas-source-1");
    s(&mut want, "remote");
    s(&mut want, "tools:bin/run.sh");
    s(&mut want, "blake3");
    s(&mut want, HEX);
    s(&mut want, "run.sh");
    want.extend_from_slice(&[0, 0, 0]); // executable, directory absent, keep-setuid
    assert_eq!(implicit, want);
}

#[test]
fn git_identity_ignores_track() {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let git = |track: Option<&str>, keep_git| Source {
        kind: SourceKind::Git {
            url: url("gh:o/r.git", "http://127.0.0.1/o/r.git"),
            commit: commit.into(),
            track: track.map(str::to_string),
            keep_git,
        },
        directory: None,
        keep_setuid: false,
    };
    let a = identity(&git(Some("main"), false), no_local).unwrap();
    assert_eq!(a, identity(&git(Some("dev"), false), no_local).unwrap());
    assert_ne!(a, identity(&git(None, true), no_local).unwrap());
    let mut want = Vec::new();
    s(&mut want, "cas-source-1");
    s(&mut want, "git");
    s(&mut want, "gh:o/r.git");
    s(&mut want, commit);
    want.extend_from_slice(&[0, 0, 0]);
    assert_eq!(a, want);
}

#[test]
fn local_and_patch_identities_use_content_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let patch = tmp.path().join("fix.patch");
    std::fs::write(&patch, "--- a\n+++ b\n").unwrap();
    let p = |path: PathBuf, strip| source(SourceKind::Patch { path, strip });
    let id = identity(&p(patch.clone(), 1), no_local).unwrap();
    let mut want = Vec::new();
    s(&mut want, "cas-source-1");
    s(&mut want, "patch");
    want.extend_from_slice(blake3::hash(b"--- a\n+++ b\n").as_bytes());
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&[0, 0]);
    assert_eq!(id, want);
    // The same content elsewhere has the same identity.
    let copy = tmp.path().join("elsewhere.patch");
    std::fs::copy(&patch, &copy).unwrap();
    assert_eq!(identity(&p(copy, 1), no_local).unwrap(), id);
    assert_ne!(identity(&p(patch, 0), no_local).unwrap(), id);

    let local = source(SourceKind::Local {
        path: tmp.path().join("files"),
    });
    let digest = [7u8; 32];
    let seen = std::cell::Cell::new(false);
    let id = identity(&local, |path| {
        assert_eq!(path, tmp.path().join("files"));
        seen.set(true);
        Ok(digest)
    })
    .unwrap();
    assert!(seen.get());
    let mut want = Vec::new();
    s(&mut want, "cas-source-1");
    s(&mut want, "local");
    want.extend_from_slice(&digest);
    want.extend_from_slice(&[0, 0]);
    assert_eq!(id, want);
    let err = identity(&local, no_local).unwrap_err().to_string();
    assert!(
        err.contains("files") && err.contains("no local sources here"),
        "{err}"
    );
}

#[test]
fn deb_identity() {
    let src = source(SourceKind::Deb {
        url: plain_url("debs:pool/h/hello.deb"),
        checksum: Checksum::Sha256(HEX.into()),
        database: false,
    });
    let mut want = Vec::new();
    s(&mut want, "cas-source-1");
    s(&mut want, "deb");
    s(&mut want, "debs:pool/h/hello.deb");
    s(&mut want, "sha256");
    s(&mut want, HEX);
    want.extend_from_slice(&[0, 0]);
    assert_eq!(identity(&src, no_local).unwrap(), want);
    // Registered in the dpkg database: another kind name, nothing else.
    let src = source(SourceKind::Deb {
        url: plain_url("debs:pool/h/hello.deb"),
        checksum: Checksum::Sha256(HEX.into()),
        database: true,
    });
    let mut want = Vec::new();
    s(&mut want, "cas-source-1");
    s(&mut want, "deb-dpkg");
    s(&mut want, "debs:pool/h/hello.deb");
    s(&mut want, "sha256");
    s(&mut want, HEX);
    want.extend_from_slice(&[0, 0]);
    assert_eq!(identity(&src, no_local).unwrap(), want);
}

#[test]
fn cargo_identity_lists_every_crate_in_order() {
    let crates = |order: &[(&str, &str)]| Source {
        kind: SourceKind::Cargo {
            url: url("crates:crates/", "http://127.0.0.1/crates/"),
            vendor_dir: "vendor".into(),
            crates: order
                .iter()
                .map(|(n, v)| cas_sources::Crate {
                    name: (*n).into(),
                    version: (*v).into(),
                    checksum: Checksum::Sha256(HEX.into()),
                })
                .collect(),
        },
        directory: None,
        keep_setuid: false,
    };
    let a = identity(&crates(&[("adler2", "2.0.1"), ("aes", "0.8.4")]), no_local).unwrap();
    assert_ne!(
        a,
        identity(&crates(&[("aes", "0.8.4"), ("adler2", "2.0.1")]), no_local).unwrap()
    );
    let mut want = Vec::new();
    s(&mut want, "cas-source-1");
    s(&mut want, "cargo");
    s(&mut want, "crates:crates/");
    s(&mut want, "vendor");
    want.extend_from_slice(&2u32.to_le_bytes());
    for (n, v) in [("adler2", "2.0.1"), ("aes", "0.8.4")] {
        s(&mut want, n);
        s(&mut want, v);
        s(&mut want, "sha256");
        s(&mut want, HEX);
    }
    want.extend_from_slice(&[0, 0]); // directory absent, keep-setuid false
    assert_eq!(a, want);
}
