//! Hostile sources: crates that write outside their own directory,
//! decompression bombs against the extraction limits (tar in every
//! compression, zip, deb, crates), and packages whose control file holds
//! more than one stanza.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cas_sources::archive::ExtractLimits;
use cas_sources::stage::stage_source_with;
use cas_sources::{stage_source, Checksum, Crate, DirCache, Source, SourceCache, SourceKind};
use common::*;

/// A staging directory and a source cache.
struct Ws {
    tmp: tempfile::TempDir,
    cache: DirCache,
}

impl Ws {
    fn new() -> Ws {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["stage", "cache", "git", "tmp"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let cache = DirCache::new(tmp.path().join("cache"));
        Ws { tmp, cache }
    }
    fn stage(&self) -> PathBuf {
        self.tmp.path().join("stage")
    }
    fn put(&self, bytes: &[u8]) -> Checksum {
        let sum = sha256(bytes);
        let f = self.tmp.path().join("tmp/in");
        std::fs::write(&f, bytes).unwrap();
        self.cache.insert(&sum, &f).unwrap();
        sum
    }
    fn stage_it(&self, src: &Source) -> cas_sources::Result<()> {
        stage_source(
            src,
            &self.cache,
            &self.tmp.path().join("git"),
            &self.stage(),
        )
    }
    fn stage_limited(&self, src: &Source, limits: ExtractLimits) -> cas_sources::Result<()> {
        stage_source_with(
            src,
            &self.cache,
            &self.tmp.path().join("git"),
            &self.stage(),
            limits,
        )
    }
    fn tar(&self, bytes: &[u8], base_dir: Option<&str>) -> Source {
        tar_source("upstream:pkg.tar", self.put(bytes), base_dir)
    }
    fn deb(&self, bytes: &[u8], name: &str, database: bool) -> Source {
        source(SourceKind::Deb {
            url: plain_url(&format!("debs:{name}")),
            checksum: self.put(bytes),
            database,
        })
    }
    fn cargo(&self, crates: &[(&str, &str, Vec<u8>)]) -> Source {
        source(SourceKind::Cargo {
            url: plain_url("crates:"),
            vendor_dir: "vendor".into(),
            crates: crates
                .iter()
                .map(|(name, version, bytes)| Crate {
                    name: (*name).into(),
                    version: (*version).into(),
                    checksum: self.put(bytes),
                })
                .collect(),
        })
    }
    /// The total size of the files staged.
    fn staged_bytes(&self) -> u64 {
        listing(&self.stage())
            .iter()
            .filter_map(|p| std::fs::symlink_metadata(self.stage().join(p)).ok())
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len())
            .sum()
    }
}

fn crate_file(members: &[Member]) -> Vec<u8> {
    gzip(&tar_bytes(members))
}

fn victim() -> Vec<u8> {
    crate_file(&[
        Member::File("victim-1.0.0/Cargo.toml", b"[package]\n", 0o644),
        Member::File("victim-1.0.0/src/lib.rs", b"// the real one\n", 0o644),
    ])
}

#[test]
fn a_crate_writes_only_inside_its_own_directory() {
    // The control case: `./` prefixes and explicit directories are fine.
    let ws = Ws::new();
    let honest = crate_file(&[
        Member::Dir("./honest-0.1.0/"),
        Member::Dir("./honest-0.1.0/src/"),
        Member::File("./honest-0.1.0/src/lib.rs", b"", 0o644),
    ]);
    ws.stage_it(&ws.cargo(&[("victim", "1.0.0", victim()), ("honest", "0.1.0", honest)]))
        .unwrap();
    assert_eq!(
        listing(&ws.stage().join("vendor")),
        vec![
            "honest-0.1.0",
            "honest-0.1.0/.cargo-checksum.json",
            "honest-0.1.0/src",
            "honest-0.1.0/src/lib.rs",
            "victim-1.0.0",
            "victim-1.0.0/.cargo-checksum.json",
            "victim-1.0.0/Cargo.toml",
            "victim-1.0.0/src",
            "victim-1.0.0/src/lib.rs",
        ]
    );

    let cases: Vec<(&str, Vec<Member>)> = vec![
        // crate `evil` replacing a file of another vendored crate
        (
            "victim-1.0.0/src/lib.rs",
            vec![
                Member::File("evil-1.0.0/Cargo.toml", b"[package]\n", 0o644),
                Member::File("victim-1.0.0/src/lib.rs", b"pwned\n", 0o644),
            ],
        ),
        (
            "./victim-1.0.0/src/lib.rs",
            vec![
                Member::File("./victim-1.0.0/src/lib.rs", b"pwned\n", 0o644),
                Member::File("evil-1.0.0/Cargo.toml", b"[package]\n", 0o644),
            ],
        ),
        // beside the crates, or in a directory that only starts like it
        (
            "build.rs",
            vec![
                Member::File("evil-1.0.0/Cargo.toml", b"[package]\n", 0o644),
                Member::File("build.rs", b"pwned\n", 0o644),
            ],
        ),
        (
            "evil-1.0.0x/lib.rs",
            vec![
                Member::File("evil-1.0.0/Cargo.toml", b"[package]\n", 0o644),
                Member::File("evil-1.0.0x/lib.rs", b"pwned\n", 0o644),
            ],
        ),
        (
            "evil-1.0.0",
            vec![
                Member::File("evil-1.0.0", b"pwned\n", 0o644),
                Member::File("evil-1.0.0/Cargo.toml", b"[package]\n", 0o644),
            ],
        ),
        // `..` and absolute paths (refused by every archive)
        (
            "evil-1.0.0/../victim-1.0.0/src/lib.rs",
            vec![Member::File(
                "evil-1.0.0/../victim-1.0.0/src/lib.rs",
                b"pwned\n",
                0o644,
            )],
        ),
        (
            "/evil-1.0.0/x",
            vec![Member::File("/evil-1.0.0/x", b"pwned\n", 0o644)],
        ),
        // links: a crate file holds files and directories only
        (
            "evil-1.0.0/up",
            vec![
                Member::File("evil-1.0.0/Cargo.toml", b"[package]\n", 0o644),
                Member::Symlink("evil-1.0.0/up", "../victim-1.0.0"),
            ],
        ),
        (
            "evil-1.0.0/copy",
            vec![
                Member::File("evil-1.0.0/Cargo.toml", b"[package]\n", 0o644),
                Member::Hardlink("evil-1.0.0/copy", "evil-1.0.0/Cargo.toml"),
            ],
        ),
        (
            "evil-1.0.0/null",
            vec![Member::CharDevice("evil-1.0.0/null")],
        ),
    ];
    for (member, members) in cases {
        let ws = Ws::new();
        let err = ws
            .stage_it(&ws.cargo(&[
                ("victim", "1.0.0", victim()),
                ("evil", "1.0.0", crate_file(&members)),
            ]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("crates:evil/evil-1.0.0.crate") && err.contains(&format!("`{member}`")),
            "{member}: {err}"
        );
        assert_eq!(
            std::fs::read(ws.stage().join("vendor/victim-1.0.0/src/lib.rs")).unwrap(),
            b"// the real one\n",
            "{member}"
        );
        let top: Vec<String> = listing(&ws.stage().join("vendor"))
            .into_iter()
            .filter(|p| !p.contains('/'))
            .collect();
        assert_eq!(top, vec!["evil-1.0.0", "victim-1.0.0"], "{member}: {err}");
    }

    // A file that is not the crate it is named.
    let ws = Ws::new();
    let err = ws
        .stage_it(&ws.cargo(&[(
            "wrong",
            "1.0",
            crate_file(&[Member::File("other-9.9/Cargo.toml", b"", 0o644)]),
        )]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no `wrong-1.0/` directory"), "{err}");
}

const MIB: u64 = 1 << 20;

fn limits(max_bytes: u64, max_entries: u64) -> ExtractLimits {
    ExtractLimits {
        max_bytes,
        max_entries,
    }
}

/// Refused with the limit's error, quickly, having written at most the
/// limit.
#[track_caller]
fn refused(ws: &Ws, src: &Source, limits: ExtractLimits, needles: &[&str]) {
    let start = Instant::now();
    let err = ws.stage_limited(src, limits).unwrap_err().to_string();
    let took = start.elapsed();
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    assert!(took < Duration::from_secs(20), "took {took:?}: {err}");
    assert!(
        ws.staged_bytes() <= limits.max_bytes,
        "{} bytes written: {err}",
        ws.staged_bytes()
    );
}

#[test]
fn a_tar_bomb_is_refused_in_every_compression() {
    let zeros = vec![0u8; 8 << 20];
    let bomb = tar_bytes(&[
        Member::Dir("top/"),
        Member::File("top/zeros", &zeros, 0o644),
    ]);
    let limit = limits(MIB, 1_000);
    for (name, bytes) in [
        ("plain", bomb.clone()),
        ("gz", gzip(&bomb)),
        ("xz", xz(&bomb)),
        ("bz2", bzip2(&bomb)),
        ("zstd", zstd(&bomb)),
    ] {
        // refused from the headers (the walk that finds the top directory),
        // and while writing (no walk with `base-dir: ""`, or a base-dir)
        for base_dir in [None, Some(""), Some("top"), Some("t*")] {
            let ws = Ws::new();
            refused(
                &ws,
                &ws.tar(&bytes, base_dir),
                limit,
                &["upstream:pkg.tar", "1 MiB", "CAS_MAX_EXTRACT_SIZE"],
            );
        }
        // at the limit is fine
        let ws = Ws::new();
        ws.stage_limited(&ws.tar(&bytes, None), limits(8 * MIB, 1_000))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ws.staged_bytes(), 8 * MIB);
    }
    // many small files add up, whatever each of them declares
    let chunk = vec![0u8; 400 << 10];
    let three = tar_bytes(&[
        Member::File("a", &chunk, 0o644),
        Member::File("b", &chunk, 0o644),
        Member::File("c", &chunk, 0o644),
    ]);
    for base_dir in [None, Some("")] {
        let ws = Ws::new();
        refused(
            &ws,
            &ws.tar(&gzip(&three), base_dir),
            limit,
            &["upstream:pkg.tar", "1 MiB"],
        );
    }
    // and so do members
    let many: Vec<String> = (0..50).map(|i| format!("top/f{i}")).collect();
    let members: Vec<Member> = many.iter().map(|n| Member::File(n, b"x", 0o644)).collect();
    let many = tar_bytes(&members);
    for base_dir in [None, Some("")] {
        let ws = Ws::new();
        refused(
            &ws,
            &ws.tar(&many, base_dir),
            limits(MIB, 10),
            &["more than 10 members", "CAS_MAX_EXTRACT_ENTRIES"],
        );
    }
}

fn zip_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn a_zip_bomb_is_refused() {
    let zeros = vec![0u8; 8 << 20];
    let bomb = zip_bytes(&[("top/zeros", &zeros)]);
    for base_dir in [None, Some(""), Some("top")] {
        let ws = Ws::new();
        refused(
            &ws,
            &ws.tar(&bomb, base_dir),
            limits(MIB, 1_000),
            &["upstream:pkg.tar", "1 MiB", "CAS_MAX_EXTRACT_SIZE"],
        );
    }
    // a zip that declares 1 byte and inflates to 8 MiB: counted as written
    let mut liar = bomb.clone();
    for (sig, offset) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
        let at = liar.windows(4).position(|w| w == sig).unwrap() + offset;
        liar[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
    }
    let ws = Ws::new();
    refused(
        &ws,
        &ws.tar(&liar, Some("")),
        limits(MIB, 1_000),
        &["upstream:pkg.tar", "1 MiB", "CAS_MAX_EXTRACT_SIZE"],
    );
    let names: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let ws = Ws::new();
    refused(
        &ws,
        &ws.tar(&zip_bytes(&members), None),
        limits(MIB, 10),
        &["more than 10 members", "CAS_MAX_EXTRACT_ENTRIES"],
    );
    let ws = Ws::new();
    ws.stage_limited(&ws.tar(&bomb, None), limits(8 * MIB, 1))
        .unwrap();
}

#[test]
fn a_deb_bomb_is_refused() {
    let zeros = vec![0u8; 8 << 20];
    let data = tar_bytes(&[
        Member::Dir("./usr/"),
        Member::File("./usr/zeros", &zeros, 0o644),
    ]);
    let deb = ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", &xz(&data))]);
    let ws = Ws::new();
    let src = ws.deb(&deb, "bomb.deb", false);
    refused(
        &ws,
        &src,
        limits(MIB, 1_000),
        &[
            "debs:bomb.deb (data.tar.xz)",
            "1 MiB",
            "CAS_MAX_EXTRACT_SIZE",
        ],
    );
    refused(
        &ws,
        &src,
        limits(16 * MIB, 1),
        &["debs:bomb.deb (data.tar.xz)", "more than 1 members"],
    );
}

#[test]
fn crates_are_bounded_together() {
    let zeros = vec![0u8; 8 << 20];
    let ws = Ws::new();
    refused(
        &ws,
        &ws.cargo(&[(
            "bomb",
            "1.0.0",
            crate_file(&[Member::File("bomb-1.0.0/zeros", &zeros, 0o644)]),
        )]),
        limits(MIB, 1_000),
        &[
            "crates:bomb/bomb-1.0.0.crate",
            "1 MiB",
            "CAS_MAX_EXTRACT_SIZE",
        ],
    );
    // two crates under the limit each, over it together: the second is named
    let chunk = vec![0u8; 600 << 10];
    let ws = Ws::new();
    refused(
        &ws,
        &ws.cargo(&[
            (
                "a",
                "1.0.0",
                crate_file(&[Member::File("a-1.0.0/data", &chunk, 0o644)]),
            ),
            (
                "b",
                "1.0.0",
                crate_file(&[Member::File("b-1.0.0/data", &chunk, 0o644)]),
            ),
        ]),
        limits(MIB, 1_000),
        &["crates:b/b-1.0.0.crate", "1 MiB"],
    );
}

#[test]
fn a_deb_whose_control_holds_two_stanzas_is_refused() {
    let data = tar_bytes(&[Member::Dir("./usr/"), Member::File("./usr/x", b"x", 0o644)]);
    let deb = |control: &[u8]| {
        ar(&[
            ("debian-binary", b"2.0\n"),
            (
                "control.tar.gz",
                &gzip(&tar_bytes(&[Member::File("./control", control, 0o644)])),
            ),
            ("data.tar.gz", &gzip(&data)),
        ])
    };
    let ws = Ws::new();
    let err = ws
        .stage_it(&ws.deb(
            &deb(b"Package: two\nVersion: 1\n\nPackage: libc6\nVersion: 99\n"),
            "two.deb",
            true,
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("debs:two.deb") && err.contains("second stanza (Package: libc6)"),
        "{err}"
    );
    assert!(!ws.stage().join("var/lib/dpkg/status").exists());
    // one stanza, with blank lines around it, is fine
    let ws = Ws::new();
    ws.stage_it(&ws.deb(&deb(b"\nPackage: one\nVersion: 1\n\n\n"), "one.deb", true))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.stage().join("var/lib/dpkg/status")).unwrap(),
        "Package: one\nStatus: install ok unpacked\nVersion: 1\n\n"
    );
    assert!(Path::new(&ws.stage().join("var/lib/dpkg/info/one.list")).is_file());
}
