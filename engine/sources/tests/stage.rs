//! Staging every kind of source, and refusing hostile archives.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they skip and measured"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cas_sources::{
    fetch_source, resolve_track, stage_source, track, DirCache, Fetcher, FetcherConfig, NoProgress,
    Source, SourceCache, SourceKind, Tracked,
};
use common::*;

/// A workspace: `root/stage` is the build root, `root/sentinel` sits beside
/// it and must stay empty whatever an archive says.
struct Ws {
    tmp: tempfile::TempDir,
    cache: DirCache,
}

impl Ws {
    fn new() -> Ws {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["stage", "sentinel", "cache", "git", "tmp"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let cache = DirCache::new(tmp.path().join("cache"));
        Ws { tmp, cache }
    }
    fn root(&self) -> &Path {
        self.tmp.path()
    }
    fn stage(&self) -> PathBuf {
        self.root().join("stage")
    }
    fn git_dir(&self) -> PathBuf {
        self.root().join("git")
    }
    fn fetcher(&self) -> Fetcher {
        Fetcher::new(FetcherConfig::new(self.root().join("tmp"), self.git_dir())).unwrap()
    }
    /// Put `bytes` in the cache and return a tar source for them.
    fn tar(&self, bytes: &[u8], base_dir: Option<&str>) -> Source {
        let sum = sha256(bytes);
        let f = self.root().join("tmp/in");
        std::fs::write(&f, bytes).unwrap();
        self.cache.insert(&sum, &f).unwrap();
        tar_source("upstream:pkg.tar", sum, base_dir)
    }
    fn stage_it(&self, src: &Source) -> cas_sources::Result<()> {
        stage_source(src, &self.cache, &self.git_dir(), &self.stage())
    }
    fn staged(&self) -> Vec<String> {
        listing(&self.stage())
    }
    fn assert_nothing_escaped(&self) {
        assert!(
            listing(&self.root().join("sentinel")).is_empty(),
            "the sentinel directory was written to"
        );
        let mut top = listing(self.root());
        top.retain(|p| !p.contains('/'));
        top.retain(|p| !["repo", "repo-moved", "project", "patches"].contains(&p.as_str()));
        assert_eq!(
            top,
            vec!["cache", "git", "sentinel", "stage", "tmp"],
            "something appeared beside the staging dir"
        );
    }
}

fn project_tar() -> Vec<u8> {
    tar_bytes(&[
        Member::Dir("pkg-1.0/"),
        Member::File("pkg-1.0/README", b"read me\n", 0o644),
        Member::Dir("pkg-1.0/src/"),
        Member::File("pkg-1.0/src/main.c", b"int main(){}\n", 0o644),
        Member::File("pkg-1.0/configure", b"#!/bin/sh\n", 0o755),
        Member::Symlink("pkg-1.0/src/link.c", "main.c"),
        Member::Hardlink("pkg-1.0/COPY", "pkg-1.0/README"),
    ])
}

#[test]
fn tar_in_every_compression_strips_the_single_top_directory() {
    let plain = project_tar();
    for (name, bytes) in [
        ("plain", plain.clone()),
        ("gz", gzip(&plain)),
        ("xz", xz(&plain)),
        ("bz2", bzip2(&plain)),
        ("zstd", zstd(&plain)),
    ] {
        let ws = Ws::new();
        ws.stage_it(&ws.tar(&bytes, None))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            ws.staged(),
            vec![
                "COPY",
                "README",
                "configure",
                "src",
                "src/link.c",
                "src/main.c"
            ],
            "{name}"
        );
        let stage = ws.stage();
        assert_eq!(
            std::fs::read(stage.join("src/link.c")).unwrap(),
            b"int main(){}\n"
        );
        assert_eq!(
            std::fs::read_link(stage.join("src/link.c")).unwrap(),
            Path::new("main.c")
        );
        let mode = std::fs::metadata(stage.join("configure"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{name}");
        let mtime = std::fs::metadata(stage.join("README"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            mtime,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000)
        );
        ws.assert_nothing_escaped();
    }
}

#[test]
fn tar_base_dir_variants() {
    let bytes = gzip(&project_tar());
    let ws = Ws::new();
    ws.stage_it(&ws.tar(&bytes, Some(""))).unwrap();
    assert!(
        ws.staged().contains(&"pkg-1.0/src/main.c".to_string()),
        "{:?}",
        ws.staged()
    );

    let ws = Ws::new();
    ws.stage_it(&ws.tar(&bytes, Some("pkg-1.0/src"))).unwrap();
    assert_eq!(ws.staged(), vec!["link.c", "main.c"]);

    let ws = Ws::new();
    let err = ws
        .stage_it(&ws.tar(&bytes, Some("nope")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");

    // Two top-level entries: nothing is stripped.
    let ws = Ws::new();
    let two = tar_bytes(&[
        Member::File("a/x", b"x", 0o644),
        Member::File("b", b"b", 0o644),
    ]);
    ws.stage_it(&ws.tar(&two, None)).unwrap();
    assert_eq!(ws.staged(), vec!["a", "a/x", "b"]);

    // A single top-level file is not a directory to strip.
    let ws = Ws::new();
    let one = tar_bytes(&[Member::File("only", b"o", 0o644)]);
    ws.stage_it(&ws.tar(&one, None)).unwrap();
    assert_eq!(ws.staged(), vec!["only"]);
}

#[test]
fn tar_into_a_directory() {
    let ws = Ws::new();
    let mut src = ws.tar(&project_tar(), None);
    src.directory = Some("sub/dir".into());
    ws.stage_it(&src).unwrap();
    assert!(ws.stage().join("sub/dir/src/main.c").is_file());
    src.directory = Some("../out".into());
    let err = ws.stage_it(&src).unwrap_err().to_string();
    assert!(err.contains("../out"), "{err}");
    ws.assert_nothing_escaped();
}

#[test]
fn hostile_members_are_refused_by_name_and_nothing_escapes() {
    let cases: Vec<(&str, Vec<Member>)> = vec![
        ("../escape", vec![Member::File("../escape", b"x", 0o644)]),
        (
            "../sentinel/escape",
            vec![Member::File("../sentinel/escape", b"x", 0o644)],
        ),
        ("/abs/path", vec![Member::File("/abs/path", b"x", 0o644)]),
        (
            "a/../../sentinel/x",
            vec![Member::File("a/../../sentinel/x", b"x", 0o644)],
        ),
        // Writing through a symlink, wherever it points, is refused.
        (
            "etc/passwd",
            vec![
                Member::Symlink("etc", "/etc"),
                Member::File("etc/passwd", b"x", 0o644),
            ],
        ),
        (
            "root/tmp/x/",
            vec![Member::Symlink("root", "/"), Member::Dir("root/tmp/x/")],
        ),
        (
            "up/sentinel/x",
            vec![
                Member::Symlink("up", "../.."),
                Member::Symlink("up/sentinel/x", "y"),
            ],
        ),
        (
            "self/f",
            vec![
                Member::Symlink("self", "."),
                Member::File("self/f", b"x", 0o644),
            ],
        ),
        ("hard", vec![Member::Hardlink("hard", "../sentinel/file")]),
        ("hard2", vec![Member::Hardlink("hard2", "/etc/passwd")]),
        ("hard3", vec![Member::Hardlink("hard3", "never-extracted")]),
        (
            "hard4",
            vec![Member::Symlink("s", "x"), Member::Hardlink("hard4", "s")],
        ),
        ("dev/null", vec![Member::CharDevice("dev/null")]),
        ("fifo", vec![Member::Fifo("fifo")]),
        (
            "self/up",
            vec![
                Member::Symlink("self", "."),
                Member::Symlink("self/up", "../sentinel"),
            ],
        ),
    ];
    for (member, members) in cases {
        // Strip nothing so that member names are used as written.
        let bytes = tar_bytes(&members);
        for (label, payload) in [("plain", bytes.clone()), ("gz", gzip(&bytes))] {
            let ws2 = Ws::new();
            let err = ws2
                .stage_it(&ws2.tar(&payload, Some("")))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("`{member}`")),
                "{label} {member}: {err}"
            );
            ws2.assert_nothing_escaped();
            if label == "plain" {
                eprintln!("{err}");
            }
        }
    }
}

#[test]
fn symlinks_are_content_whatever_their_target() {
    // Absolute links and links that climb above the root are ordinary
    // content of packages and root filesystems: kept as written, never
    // resolved.
    let bytes = tar_bytes(&[
        Member::Dir("usr/bin/"),
        Member::Symlink("usr/bin/ld.so", "/lib64/ld-linux-x86-64.so.2"),
        Member::Symlink("etc", "/etc"),
        Member::Symlink("up", "../../../sentinel"),
        Member::Symlink("parent", ".."),
        Member::Symlink("usr/bin/root", "/"),
    ]);
    let ws = Ws::new();
    ws.stage_it(&ws.tar(&bytes, Some(""))).unwrap();
    for (link, target) in [
        ("usr/bin/ld.so", "/lib64/ld-linux-x86-64.so.2"),
        ("etc", "/etc"),
        ("up", "../../../sentinel"),
        ("parent", ".."),
        ("usr/bin/root", "/"),
    ] {
        assert_eq!(
            std::fs::read_link(ws.stage().join(link)).unwrap(),
            std::path::Path::new(target),
            "{link}"
        );
    }
    ws.assert_nothing_escaped();
}

#[test]
fn writes_through_a_preexisting_escaping_symlink_are_blocked() {
    // Even if the staging dir already holds a symlink pointing outside (say
    // from a local source), extraction cannot write through it.
    let ws = Ws::new();
    std::os::unix::fs::symlink(ws.root().join("sentinel"), ws.stage().join("out")).unwrap();
    let bytes = tar_bytes(&[Member::File("out/owned", b"x", 0o644)]);
    let err = ws
        .stage_it(&ws.tar(&bytes, Some("")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("out/owned"), "{err}");
    ws.assert_nothing_escaped();
}

#[test]
fn setuid_bits_are_dropped_unless_kept() {
    let bytes = tar_bytes(&[
        Member::File("su", b"x", 0o4755),
        Member::File("sg", b"x", 0o2755),
    ]);
    let ws = Ws::new();
    ws.stage_it(&ws.tar(&bytes, Some(""))).unwrap();
    for f in ["su", "sg"] {
        assert_eq!(
            std::fs::metadata(ws.stage().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o755
        );
    }
    let ws = Ws::new();
    let mut src = ws.tar(&bytes, Some(""));
    src.keep_setuid = true;
    ws.stage_it(&src).unwrap();
    assert_eq!(
        std::fs::metadata(ws.stage().join("su"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
}

#[test]
fn remote_files_are_placed_with_their_name_and_mode() {
    let ws = Ws::new();
    let sum = sha256(b"#!/bin/sh\necho hi\n");
    let f = ws.root().join("tmp/in");
    std::fs::write(&f, b"#!/bin/sh\necho hi\n").unwrap();
    ws.cache.insert(&sum, &f).unwrap();
    let url = plain_url("upstream:tools/run.sh?x=1");
    let remote = |filename: Option<&str>, executable| {
        source(SourceKind::Remote {
            url: url.clone(),
            checksum: sum.clone(),
            filename: filename.map(str::to_string),
            executable,
        })
    };
    ws.stage_it(&remote(None, true)).unwrap();
    ws.stage_it(&remote(Some("plain.txt"), false)).unwrap();
    let mode = |n: &str| {
        std::fs::metadata(ws.stage().join(n))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("run.sh"), 0o755);
    assert_eq!(mode("plain.txt"), 0o644);
    let err = ws
        .stage_it(&remote(Some("../x"), false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("../x"), "{err}");
    ws.assert_nothing_escaped();
}

#[test]
fn unfetched_sources_are_reported() {
    let ws = Ws::new();
    let src = tar_source("upstream:missing.tar", sha256(b"missing"), None);
    let err = ws.stage_it(&src).unwrap_err().to_string();
    assert!(err.contains("upstream:missing.tar"), "{err}");
}

#[test]
fn deb_packages_extract_their_data() {
    let data = tar_bytes(&[
        Member::Dir("./"),
        Member::Dir("./usr/"),
        Member::Dir("./usr/bin/"),
        Member::File("./usr/bin/hello", b"\x7fELF", 0o755),
        Member::Dir("./usr/share/doc/hello/"),
        Member::File("./usr/share/doc/hello/copyright", b"c", 0o644),
    ]);
    let control = tar_bytes(&[Member::File("./control", b"Package: hello\n", 0o644)]);
    for (ext, compress) in [
        ("xz", xz as fn(&[u8]) -> Vec<u8>),
        ("gz", gzip),
        ("zst", zstd),
    ] {
        let deb = ar(&[
            ("debian-binary", b"2.0\n"),
            (&format!("control.tar.{ext}"), &compress(&control)),
            (&format!("data.tar.{ext}"), &compress(&data)),
        ]);
        let ws = Ws::new();
        let sum = sha256(&deb);
        let f = ws.root().join("tmp/in");
        std::fs::write(&f, &deb).unwrap();
        ws.cache.insert(&sum, &f).unwrap();
        let src = source(SourceKind::Deb {
            url: plain_url("debs:hello.deb"),
            checksum: sum,
            database: false,
        });
        ws.stage_it(&src).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert_eq!(
            ws.staged(),
            vec![
                "usr",
                "usr/bin",
                "usr/bin/hello",
                "usr/share",
                "usr/share/doc",
                "usr/share/doc/hello",
                "usr/share/doc/hello/copyright"
            ]
        );
        ws.assert_nothing_escaped();
    }
    // Not a package.
    let ws = Ws::new();
    let sum = sha256(b"garbage");
    let f = ws.root().join("tmp/in");
    std::fs::write(&f, b"garbage").unwrap();
    ws.cache.insert(&sum, &f).unwrap();
    let src = source(SourceKind::Deb {
        url: plain_url("debs:bad.deb"),
        checksum: sum,
        database: false,
    });
    let err = ws.stage_it(&src).unwrap_err().to_string();
    assert!(err.contains("ar archive"), "{err}");
}

#[test]
fn hostile_deb_is_refused() {
    // An absolute link is content; a member written through it is refused.
    let data = tar_bytes(&[
        Member::Symlink("./usr", "/usr"),
        Member::File("./usr/bin/x", b"x", 0o755),
    ]);
    let deb = ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", &xz(&data))]);
    let ws = Ws::new();
    let sum = sha256(&deb);
    let f = ws.root().join("tmp/in");
    std::fs::write(&f, &deb).unwrap();
    ws.cache.insert(&sum, &f).unwrap();
    let err = ws
        .stage_it(&source(SourceKind::Deb {
            url: plain_url("debs:evil.deb"),
            checksum: sum,
            database: false,
        }))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`./usr/bin/x`") && err.contains("data.tar.xz"),
        "{err}"
    );
    ws.assert_nothing_escaped();
}

#[test]
fn patches_apply_and_failures_name_the_hunk() {
    let ws = Ws::new();
    let original: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    std::fs::write(ws.stage().join("file.txt"), &original).unwrap();
    let patches = ws.root().join("patches");
    std::fs::create_dir_all(&patches).unwrap();
    let good =
        "--- a/file.txt\n+++ b/file.txt\n@@ -1,3 +1,3 @@\n line 1\n-line 2\n+line two\n line 3\n";
    std::fs::write(patches.join("good.patch"), good).unwrap();
    let patch = |name: &str| {
        source(SourceKind::Patch {
            path: patches.join(name),
            strip: 1,
        })
    };
    ws.stage_it(&patch("good.patch")).unwrap();
    let text = std::fs::read_to_string(ws.stage().join("file.txt")).unwrap();
    assert!(text.starts_with("line 1\nline two\nline 3\n"), "{text}");

    let bad = "--- a/file.txt\n+++ b/file.txt\n@@ -5,3 +5,3 @@\n line 5\n-line 6\n+line six\n line 7\n@@ -13,3 +13,3 @@\n line 13\n-no such line\n+whatever\n line 15\n";
    std::fs::write(patches.join("bad.patch"), bad).unwrap();
    let err = ws.stage_it(&patch("bad.patch")).unwrap_err().to_string();
    assert!(err.contains("bad.patch"), "{err}");
    assert!(err.contains("Hunk #2 FAILED at 13"), "{err}");
    assert!(err.contains("file.txt"), "{err}");
    assert!(
        !listing(&ws.stage())
            .iter()
            .any(|p| p.ends_with(".rej") || p.ends_with(".orig")),
        "{:?}",
        ws.staged()
    );
}

#[test]
fn local_files_and_directories_are_copied() {
    let ws = Ws::new();
    let proj = ws.root().join("project");
    std::fs::create_dir_all(proj.join("files/sub")).unwrap();
    std::fs::write(proj.join("files/run"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        proj.join("files/run"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(proj.join("files/sub/data"), b"d").unwrap();
    std::os::unix::fs::symlink("sub/data", proj.join("files/link")).unwrap();
    std::fs::write(proj.join("single.txt"), b"s").unwrap();
    ws.stage_it(&source(SourceKind::Local {
        path: proj.join("files"),
    }))
    .unwrap();
    ws.stage_it(&source(SourceKind::Local {
        path: proj.join("single.txt"),
    }))
    .unwrap();
    assert_eq!(
        ws.staged(),
        vec!["link", "run", "single.txt", "sub", "sub/data"]
    );
    assert_eq!(
        std::fs::read_link(ws.stage().join("link")).unwrap(),
        Path::new("sub/data")
    );
    assert_eq!(
        std::fs::metadata(ws.stage().join("run"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    let err = ws
        .stage_it(&source(SourceKind::Local {
            path: proj.join("missing"),
        }))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}

/// A repository made with the git CLI: two commits on `main`, a tag.
fn make_repo(dir: &Path) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    run(dir, "git", &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("hello.txt"), "v1\n").unwrap();
    std::fs::write(
        dir.join(".gitattributes"),
        "hello.txt export-subst\nsecret export-ignore\n",
    )
    .unwrap();
    std::fs::write(dir.join("secret"), "kept anyway\n").unwrap();
    run(dir, "git", &["add", "."]);
    run(dir, "git", &["commit", "-q", "-m", "one"]);
    let first = run(dir, "git", &["rev-parse", "HEAD"]);
    std::fs::write(dir.join("hello.txt"), "v2 $Format:%H$\n").unwrap();
    run(dir, "git", &["commit", "-q", "-am", "two"]);
    run(dir, "git", &["tag", "-a", "-m", "release", "v2"]);
    let second = run(dir, "git", &["rev-parse", "HEAD"]);
    (first, second)
}

fn git_source(url: &str, commit: &str, keep_git: bool) -> Source {
    source(SourceKind::Git {
        url: plain_url(url),
        commit: commit.to_string(),
        track: Some("main".into()),
        keep_git,
    })
}

#[test]
fn git_sources_fetch_once_and_stage_the_exact_tree() {
    let ws = Ws::new();
    let repo = ws.root().join("repo");
    let (first, second) = make_repo(&repo);
    let url = format!("file://{}", repo.display());
    let fetcher = ws.fetcher();

    // Offline and never fetched: an error naming the URL.
    let err = fetch_source(
        &git_source(&url, &first, false),
        &fetcher,
        &ws.cache,
        true,
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&url) && err.contains(&first), "{err}");

    fetch_source(
        &git_source(&url, &first, false),
        &fetcher,
        &ws.cache,
        false,
        &NoProgress,
    )
    .unwrap();
    assert!(!cas_sources::needs_fetch(
        &git_source(&url, &second, false),
        &fetcher,
        &ws.cache
    ));
    // The upstream disappears: everything comes from the mirror now.
    let moved = ws.root().join("repo-moved");
    std::fs::rename(&repo, &moved).unwrap();
    fetch_source(
        &git_source(&url, &second, false),
        &fetcher,
        &ws.cache,
        true,
        &NoProgress,
    )
    .unwrap();

    ws.stage_it(&git_source(&url, &first, false)).unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.stage().join("hello.txt")).unwrap(),
        "v1\n"
    );
    assert_eq!(
        ws.staged(),
        vec![".gitattributes", "hello.txt", "secret"],
        "export-ignore is not applied"
    );

    let ws2 = Ws::new();
    std::fs::remove_dir_all(ws2.git_dir()).unwrap();
    std::os::unix::fs::symlink(ws.git_dir(), ws2.git_dir()).unwrap();
    let mut src = git_source(&url, &second, true);
    src.directory = Some("checkout".into());
    ws2.stage_it(&src).unwrap();
    let dir = ws2.stage().join("checkout");
    assert_eq!(
        std::fs::read_to_string(dir.join("hello.txt")).unwrap(),
        "v2 $Format:%H$\n",
        "no export-subst"
    );
    assert_eq!(run(&dir, "git", &["rev-parse", "HEAD"]), second);
    assert_eq!(run(&dir, "git", &["status", "--porcelain"]), "");

    // A commit that does not exist.
    std::fs::rename(&moved, &repo).unwrap();
    let bogus = "0123456789abcdef0123456789abcdef01234567";
    let err = fetch_source(
        &git_source(&url, bogus, false),
        &fetcher,
        &ws.cache,
        false,
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(bogus) && err.contains(&url), "{err}");
}

#[test]
fn git_track_resolves_branches_and_tags() {
    let ws = Ws::new();
    let repo = ws.root().join("repo");
    let (_first, second) = make_repo(&repo);
    let url = format!("file://{}", repo.display());
    assert_eq!(resolve_track(&url, "main").unwrap(), second);
    assert_eq!(
        resolve_track(&url, "v2").unwrap(),
        second,
        "annotated tags are peeled"
    );
    let err = resolve_track(&url, "nope").unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains(&url), "{err}");
    let tracked = track(
        &git_source(&url, &second, false),
        &ws.fetcher(),
        None,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(tracked, Tracked::Commit(second));
}

#[test]
fn git_symlinks_are_content_and_never_followed() {
    let ws = Ws::new();
    let repo = ws.root().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    run(&repo, "git", &["init", "-q", "-b", "main"]);
    std::os::unix::fs::symlink("../../sentinel", repo.join("evil")).unwrap();
    run(&repo, "git", &["add", "."]);
    run(&repo, "git", &["commit", "-q", "-m", "evil"]);
    let commit = run(&repo, "git", &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());
    fetch_source(
        &git_source(&url, &commit, false),
        &ws.fetcher(),
        &ws.cache,
        false,
        &NoProgress,
    )
    .unwrap();
    ws.stage_it(&git_source(&url, &commit, false)).unwrap();
    assert_eq!(
        std::fs::read_link(ws.stage().join("evil")).unwrap(),
        std::path::Path::new("../../sentinel")
    );
    ws.assert_nothing_escaped();
}

#[test]
fn parallel_fetches_of_one_repository_share_the_mirror() {
    let ws = Ws::new();
    let repo = ws.root().join("repo");
    let (first, second) = make_repo(&repo);
    let url = format!("file://{}", repo.display());
    let fetcher = ws.fetcher();
    std::thread::scope(|scope| {
        for i in 0..4 {
            let (fetcher, cache, url) = (&fetcher, &ws.cache, &url);
            let commit = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            scope.spawn(move || {
                fetch_source(
                    &git_source(url, &commit, false),
                    fetcher,
                    cache,
                    false,
                    &NoProgress,
                )
                .unwrap();
            });
        }
    });
    let mirrors: Vec<_> = listing(&ws.git_dir())
        .into_iter()
        .filter(|p| p.ends_with(".git"))
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
}
