//! Library-level tests of cas-store (results, gc, verify, views, merge, tar).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cas_store::*;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cas-store-test-")
        .tempdir()
        .unwrap()
}

fn write(p: &Path, content: &[u8], mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn tree_of(store: &Store, files: &[(&str, &[u8])]) -> TreeDigest {
    let d = tempfile::Builder::new()
        .prefix("cas-input-")
        .tempdir()
        .unwrap();
    for (p, c) in files {
        write(&d.path().join(p), c, 0o644);
    }
    store.ingest(d.path(), IngestMode::Copy).unwrap().tree
}

fn result_for(store: &Store, tree: TreeDigest) -> ActionResult {
    let log = store.put_bytes(b"log").unwrap();
    ActionResult {
        output: tree,
        log,
        duration_ms: 1,
        created: 0,
        manifest: log,
    }
}

#[test]
fn ingest_copy_move_and_materialise() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let input = t.path().join("in");
    write(&input.join("a/b/exe"), b"#!/bin/sh\n", 0o755);
    write(&input.join("a/data"), b"data", 0o644);
    write(&input.join("suid"), b"suid", 0o4755);
    fs::create_dir_all(input.join("empty")).unwrap();
    std::os::unix::fs::symlink("/nowhere", input.join("dangling")).unwrap();
    fs::hard_link(input.join("a/data"), input.join("data-link")).unwrap();
    let r = store.ingest(&input, IngestMode::Copy).unwrap();
    assert_eq!(r.files, 4);
    assert_eq!(r.bytes, 10 + 4 + 4 + 4);
    // Same content again: same digest, no new objects.
    let again = store.ingest(&input, IngestMode::Copy).unwrap();
    assert_eq!(again.tree, r.tree);
    assert_eq!(again.new_objects, 0);
    // Input untouched.
    assert_eq!(
        fs::metadata(input.join("a/data")).unwrap().mode() & 0o777,
        0o644
    );

    for (method, expect_exact) in [
        (Method::Copy, true),
        (Method::Hardlink, false),
        (Method::Auto, false),
    ] {
        let out = t.path().join(format!("out-{method}"));
        let used = store.materialize(&r.tree, &out, method).unwrap();
        if method == Method::Auto {
            assert_eq!(
                used,
                Method::Hardlink,
                "ext4/tmpfs: no reflink, so hardlink"
            );
        } else {
            assert_eq!(used, method);
        }
        let m = |p: &str| fs::symlink_metadata(out.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(fs::read(out.join("a/b/exe")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(m("a/b/exe"), if expect_exact { 0o755 } else { 0o555 });
        // a hardlink shares a store inode, which is never setuid
        assert_eq!(m("suid"), if expect_exact { 0o4755 } else { 0o555 });
        assert_eq!(m("a/data"), if expect_exact { 0o644 } else { 0o444 });
        assert!(out.join("empty").is_dir());
        assert_eq!(
            fs::read_link(out.join("dangling")).unwrap(),
            Path::new("/nowhere")
        );
    }
    // Move: the input's files go into the store by rename.
    let mv = t.path().join("mv");
    write(&mv.join("x/new-file"), b"only here", 0o640);
    let ino = fs::metadata(mv.join("x/new-file")).unwrap().ino();
    let r2 = store.ingest(&mv, IngestMode::Move).unwrap();
    let entries = store.walk(&r2.tree).unwrap();
    let (_, e) = entries.iter().find(|(p, _)| p == b"x/new-file").unwrap();
    let EntryKind::File { digest, .. } = &e.kind else {
        panic!()
    };
    assert_eq!(
        fs::metadata(store.blob_path(digest)).unwrap().ino(),
        ino,
        "moved, not copied"
    );
    assert_eq!(
        fs::metadata(store.blob_path(digest)).unwrap().mode() & 0o7777,
        0o444
    );
    assert!(store.verify(false).unwrap().is_consistent());
}

#[test]
fn special_files_are_refused_by_path() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let input = t.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let fifo = input.join("a-fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = store
        .ingest(&input, IngestMode::Copy)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a-fifo") && err.contains("fifo"), "{err}");
}

#[test]
fn merge_conflicts_name_both_contributors() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let a = tree_of(&store, &[("usr/lib/libz.so", b"z1"), ("usr/share/a", b"a")]);
    let b = tree_of(&store, &[("usr/lib/libz.so", b"z1"), ("usr/share/b", b"b")]);
    let c = tree_of(&store, &[("usr/lib/libz.so", b"z2")]);
    let d = tree_of(&store, &[("usr/lib", b"a file")]);
    let ab = store.merge(&[("a", a), ("b", b)]).unwrap();
    let paths: Vec<String> = store
        .walk(&ab)
        .unwrap()
        .into_iter()
        .map(|(p, _)| String::from_utf8(p).unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "usr",
            "usr/lib",
            "usr/lib/libz.so",
            "usr/share",
            "usr/share/a",
            "usr/share/b"
        ]
    );
    let err = store
        .merge(&[("a.yaml", a), ("b.yaml", b), ("c.yaml", c)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("usr/lib/libz.so") && err.contains("a.yaml") && err.contains("c.yaml"),
        "{err}"
    );
    let err = store
        .merge(&[("a.yaml", a), ("d.yaml", d)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("usr/lib") && err.contains("d.yaml") && err.contains("directory"),
        "{err}"
    );
    // Merging a tree with itself is the tree.
    assert_eq!(store.merge(&[("a", a), ("a again", a)]).unwrap(), a);
}

#[test]
fn views_are_cached_and_reused_fast() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let a = tree_of(&store, &[("bin/sh", b"shell"), ("etc/x", b"x")]);
    let v = store.view(&a).unwrap();
    assert!(v.built_with().is_some());
    assert_eq!(fs::read(v.path().join("bin/sh")).unwrap(), b"shell");
    assert_eq!(fs::metadata(v.path()).unwrap().mode() & 0o777, 0o555);
    let start = std::time::Instant::now();
    let v2 = store.view(&a).unwrap();
    let took = start.elapsed();
    assert!(v2.built_with().is_none());
    assert_eq!(v2.path(), v.path());
    assert!(took.as_millis() < 5, "reusing a view took {took:?}");
    // In use: gc keeps it even though nothing else references the tree.
    let r = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(r.views_removed, 0);
    assert!(v.path().join("bin/sh").exists());
    assert!(store.has_tree(&a));
    drop(v);
    drop(v2);
    let r = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(r.views_removed, 1);
    assert!(!store.has_tree(&a));
}

#[test]
fn action_cache_pins_sources() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let a = tree_of(&store, &[("f", b"f")]);
    let key = ActionKey::of_manifest(b"key");
    assert_eq!(store.action_get(&key).unwrap(), None);
    let res = result_for(&store, a);
    store.action_put(&key, &res).unwrap();
    assert_eq!(store.action_get(&key).unwrap(), Some(res));
    // A result must only point at present objects.
    let bogus = ActionResult {
        output: TreeDigest(Digest::of_bytes(b"nope")),
        ..result_for(&store, a)
    };
    assert!(store
        .action_put(&ActionKey::of_manifest(b"k2"), &bogus)
        .is_err());
    store.pin("base", &a).unwrap();
    assert_eq!(store.pins().unwrap(), vec![("base".to_string(), a)]);
    assert!(store.unpin("base").unwrap());
    assert!(!store.unpin("base").unwrap());
    let blob = store.put_bytes(b"tarball").unwrap();
    store.source_put("sha256:abc", &blob).unwrap();
    assert_eq!(store.source_get("sha256:abc").unwrap(), Some(blob));
    assert_eq!(store.source_get("sha256:def").unwrap(), None);
    // Reopen: schema persists.
    drop(store);
    let store = Store::open(&t.path().join("store")).unwrap();
    assert!(store.action_get(&key).unwrap().is_some());
}

#[test]
fn a_read_snapshot_sees_one_state_and_ends_with_its_guard() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let a = tree_of(&store, &[("f", b"f")]);
    let (k1, k2) = (ActionKey::of_manifest(b"1"), ActionKey::of_manifest(b"2"));
    store.action_put(&k1, &result_for(&store, a)).unwrap();
    {
        let _snapshot = store.read_snapshot().unwrap();
        // held already: the inner guard ends nothing
        drop(store.read_snapshot().unwrap());
        // more lookups than one batch of access times
        for _ in 0..300 {
            assert!(store.action_get(&k1).unwrap().is_some());
        }
        assert!(store.remote_result_get(&k2).unwrap().is_none());
        // another writer commits meanwhile; this snapshot does not see it
        let other = Store::open(&t.path().join("store")).unwrap();
        other.action_put(&k2, &result_for(&other, a)).unwrap();
        assert!(store.action_get(&k2).unwrap().is_none());
        // a write through this handle ends the read transaction first; the
        // next lookup begins another, which sees both rows
        let k4 = ActionKey::of_manifest(b"4");
        store.action_put(&k4, &result_for(&store, a)).unwrap();
        assert!(store.action_get(&k2).unwrap().is_some());
        assert!(store.action_get(&k4).unwrap().is_some());
    }
    // the transaction ended: new rows are seen, and this handle writes again
    assert!(store.action_get(&k2).unwrap().is_some());
    store
        .action_put(&ActionKey::of_manifest(b"3"), &result_for(&store, a))
        .unwrap();
}

#[test]
fn gc_evicts_least_recently_used_and_never_pins() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let mb = |seed: u8| -> Vec<u8> {
        (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8 ^ seed)
            .collect()
    };
    let (d1, d2, d3, dp) = (mb(1), mb(2), mb(3), mb(4));
    let t1 = tree_of(&store, &[("one", &d1)]);
    let t2 = tree_of(&store, &[("two", &d2)]);
    let t3 = tree_of(&store, &[("three", &d3)]);
    let tp = tree_of(&store, &[("pinned", &dp)]);
    let unreferenced = tree_of(&store, &[("garbage", b"garbage")]);
    store.pin("keep", &tp).unwrap();
    let (k1, k2, k3) = (
        ActionKey::of_manifest(b"1"),
        ActionKey::of_manifest(b"2"),
        ActionKey::of_manifest(b"3"),
    );
    store.action_put(&k1, &result_for(&store, t1)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    store.action_put(&k2, &result_for(&store, t2)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    store.action_put(&k3, &result_for(&store, t3)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Use k1: now k2 is the least recently used.
    store.action_get(&k1).unwrap();
    let dry = store
        .gc(&GcOptions {
            max_size: Some(3 << 20 | 1 << 19),
            dry_run: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(dry.results_removed, vec![k2]);
    assert!(
        store.has_tree(&t2),
        "dry run removed nothing (and did not touch k2)"
    );
    assert!(store.has_tree(&unreferenced));
    let r = store
        .gc(&GcOptions {
            max_size: Some(3 << 20 | 1 << 19),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.results_removed, vec![k2]);
    assert!(!store.has_tree(&unreferenced));
    assert!(store.action_get(&k2).unwrap().is_none());
    assert!(!store.has_tree(&t2));
    assert!(store.has_tree(&t1) && store.has_tree(&t3) && store.has_tree(&tp));
    // A quota of 0 removes every result but never the pin.
    store
        .gc(&GcOptions {
            max_size: Some(0),
            ..Default::default()
        })
        .unwrap();
    assert!(store.action_get(&k1).unwrap().is_none());
    let out = t.path().join("pinned-out");
    store.materialize(&tp, &out, Method::Copy).unwrap();
    assert_eq!(fs::read(out.join("pinned")).unwrap(), dp);
    assert!(store.verify(false).unwrap().is_consistent());
}

#[test]
fn verify_finds_a_flipped_byte_and_repair_drops_the_result() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let a = tree_of(&store, &[("lib/libc.so", b"the c library")]);
    let key = ActionKey::of_manifest(b"libc");
    store.action_put(&key, &result_for(&store, a)).unwrap();
    let blob = BlobDigest(Digest::of_bytes(b"the c library"));
    let path = store.blob_path(&blob);
    let mut bytes = fs::read(&path).unwrap();
    bytes[3] ^= 0x20;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, &bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let r = store.verify(false).unwrap();
    assert!(!r.is_consistent());
    assert_eq!(r.corrupt, vec![blob.to_hex()]);
    assert_eq!(r.broken_results, vec![key]);
    let r = store.verify(true).unwrap();
    assert!(r.is_consistent());
    assert!(!path.exists());
    assert!(store.action_get(&key).unwrap().is_none());
    assert!(store.verify(false).unwrap().is_consistent());
    // Ingesting again restores the object.
    tree_of(&store, &[("lib/libc.so", b"the c library")]);
    assert!(path.exists());
}

#[test]
fn tar_export_is_deterministic_and_round_trips() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let input = t.path().join("in");
    write(&input.join("usr/bin/tool"), b"tool", 0o755);
    write(
        &input.join(&*String::from_utf8_lossy(&[b'n'; 200])),
        b"long name",
        0o600,
    );
    fs::create_dir_all(input.join("var/empty")).unwrap();
    std::os::unix::fs::symlink("usr/bin/tool", input.join("tool")).unwrap();
    std::os::unix::fs::symlink("/lib64/ld-linux-x86-64.so.2", input.join("usr/bin/ld.so")).unwrap();
    std::os::unix::fs::symlink("/", input.join("root")).unwrap();
    std::os::unix::fs::symlink("./a//b/", input.join("odd")).unwrap();
    std::os::unix::fs::symlink("t/".repeat(90), input.join("long")).unwrap();
    let a = store.ingest(&input, IngestMode::Copy).unwrap().tree;
    for name in ["a.tar", "a.tar.xz"] {
        let p1 = t.path().join(format!("1-{name}"));
        let p2 = t.path().join(format!("2-{name}"));
        store.export_tar(&a, &p1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        store.export_tar(&a, &p2).unwrap();
        assert_eq!(
            fs::read(&p1).unwrap(),
            fs::read(&p2).unwrap(),
            "{name} is deterministic"
        );
        assert_eq!(store.import_tar(&p1).unwrap(), a, "{name} round trips");
    }
}

#[test]
fn tar_import_never_writes_through_a_symlink() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    std::os::unix::fs::symlink(&outside, src.join("out")).unwrap();
    let link_only = t.path().join("link.tar");
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("tar")
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar {args:?}");
    };
    run(&[
        "-C",
        src.to_str().unwrap(),
        "-cf",
        link_only.to_str().unwrap(),
        "out",
    ]);
    // The link alone is content.
    store.import_tar(&link_only).unwrap();
    // Then a member under it, appended: refused, nothing written outside.
    fs::remove_file(src.join("out")).unwrap();
    fs::create_dir_all(src.join("out/sub")).unwrap();
    fs::write(src.join("out/sub/f"), "pwned").unwrap();
    let evil = t.path().join("evil.tar");
    fs::copy(&link_only, &evil).unwrap();
    run(&[
        "-C",
        src.to_str().unwrap(),
        "-rf",
        evil.to_str().unwrap(),
        "out/sub",
        "out/sub/f",
    ]);
    let err = store.import_tar(&evil).unwrap_err().to_string();
    assert!(err.contains("through the symlink out"), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn store_is_sync_and_concurrent_ingests_agree() {
    fn assert_sync<T: Sync + Send>() {}
    assert_sync::<Store>();
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let input = t.path().join("in");
    for i in 0..200 {
        write(
            &input.join(format!("d{}/f{i}", i % 7)),
            format!("content {}", i % 50).as_bytes(),
            0o644,
        );
    }
    let digests: Vec<TreeDigest> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| store.ingest(&input, IngestMode::Copy).unwrap().tree))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    let st = store.stats().unwrap();
    assert_eq!(
        st.objects,
        50 + 7 + 1 + 1,
        "50 blobs, 7 subtrees, the root, the empty tree"
    );
    assert!(store.verify(false).unwrap().is_consistent());
}

#[test]
fn mode_variants_are_verified_and_collected_with_their_object() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let input = t.path().join("in");
    write(&input.join("tool"), b"#!/bin/sh\n", 0o4755);
    let a = store.ingest(&input, IngestMode::Copy).unwrap().tree;
    store
        .materialize(&a, &t.path().join("out"), Method::Hardlink)
        .unwrap();
    let blob = BlobDigest(Digest::of_bytes(b"#!/bin/sh\n"));
    // setuid is recorded in the tree, never set on a store inode
    let variant = Path::new(&format!("{}.555", store.blob_path(&blob).display())).to_path_buf();
    assert_eq!(fs::metadata(&variant).unwrap().mode() & 0o7777, 0o555);
    assert_eq!(
        fs::metadata(t.path().join("out/tool")).unwrap().ino(),
        fs::metadata(&variant).unwrap().ino()
    );
    assert!(store.verify(false).unwrap().is_consistent());
    // A variant with the wrong mode is reported and removed by repair (it is derivable).
    fs::set_permissions(&variant, fs::Permissions::from_mode(0o4555)).unwrap();
    let r = store.verify(false).unwrap();
    assert_eq!(r.bad_variants, vec![variant.clone()]);
    assert!(store.verify(true).unwrap().is_consistent());
    assert!(!variant.exists());
    // Made again on demand; gc removes it with its object.
    store
        .materialize(&a, &t.path().join("out2"), Method::Hardlink)
        .unwrap();
    assert!(variant.exists());
    store.gc(&GcOptions::default()).unwrap();
    assert!(!variant.exists() && !store.has_blob(&blob));
}
