//! Fetching against a real HTTP server on 127.0.0.1: checksums, cache,
//! mirrors, offline, retries, resume.

mod common;

use std::time::Duration;

use cas_sources::{
    fetch_source, needs_fetch, track, Checksum, DirCache, Fetched, Fetcher, FetcherConfig, Mirrors,
    NoProgress, SourceCache, SourceKind, SourceUrl, Tracked,
};
use common::*;

struct Env {
    tmp: tempfile::TempDir,
    tmp_dir: std::path::PathBuf,
    cache: DirCache,
    config: FetcherConfig,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_dir = tmp.path().join("tmp");
    let mut config = FetcherConfig::new(&tmp_dir, tmp.path().join("git"));
    config.initial_backoff = Duration::from_millis(10);
    config.max_backoff = Duration::from_millis(50);
    config.read_timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(2);
    let cache = DirCache::new(tmp.path().join("cache"));
    Env {
        tmp,
        tmp_dir,
        cache,
        config,
    }
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn fetched_file(f: Fetched) -> std::path::PathBuf {
    match f {
        Fetched::File(p) => p,
        other => panic!("expected a file, got {other:?}"),
    }
}

fn tmp_is_empty(e: &Env) -> bool {
    std::fs::read_dir(&e.tmp_dir).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn downloads_verifies_caches_and_never_fetches_twice() {
    let server = Server::start();
    let data = payload(300_000);
    server.serve("a/file.tar", &data);
    server.serve("b/other-name.tar", &data);
    let e = env();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    let src = tar_source(&server.url("a/file.tar"), sha256(&data), None);
    assert!(needs_fetch(&src, &fetcher, &e.cache));
    let path = fetched_file(fetch_source(&src, &fetcher, &e.cache, false, &NoProgress).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert_eq!(server.requests("a/file.tar"), 1);
    assert!(!needs_fetch(&src, &fetcher, &e.cache));
    assert!(
        tmp_is_empty(&e),
        "the temporary download was moved into the cache"
    );

    // Again, and under another URL with the same checksum: no request.
    fetch_source(&src, &fetcher, &e.cache, false, &NoProgress).unwrap();
    let other = tar_source(&server.url("b/other-name.tar"), sha256(&data), None);
    fetch_source(&other, &fetcher, &e.cache, true, &NoProgress).unwrap();
    assert_eq!(server.requests("a/file.tar"), 1);
    assert_eq!(server.requests("b/other-name.tar"), 0);
}

#[test]
fn checksum_mismatch_names_url_expected_actual_and_keeps_nothing() {
    let server = Server::start();
    server.serve("x.tar.gz", b"not what you expected");
    let e = env();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    let expected = sha256(b"the real content");
    let url = server.url("x.tar.gz");
    let src = tar_source(&url, expected.clone(), None);
    let err = fetch_source(&src, &fetcher, &e.cache, false, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&url), "{err}");
    assert!(err.contains(expected.hex()), "{err}");
    assert!(
        err.contains(sha256(b"not what you expected").hex()),
        "{err}"
    );
    assert!(e.cache.lookup(&expected).is_none());
    assert!(tmp_is_empty(&e), "the bad download was deleted");
}

#[test]
fn blake3_checksums_work_too() {
    let server = Server::start();
    server.serve("f", b"blake3 content");
    let e = env();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    let sum = Checksum::Blake3(blake3::hash(b"blake3 content").to_hex().to_string());
    let src = source(SourceKind::Remote {
        url: plain_url(&server.url("f")),
        checksum: sum,
        filename: None,
        executable: false,
    });
    fetch_source(&src, &fetcher, &e.cache, false, &NoProgress).unwrap();
}

#[test]
fn mirrors_are_tried_in_order_then_upstream() {
    let server = Server::start();
    let data = payload(5000);
    server.serve("m2/pkg/x.tar", &data);
    server.serve("up/pkg/x.tar", &data);
    let e = env();
    let mut config = e.config.clone();
    let mut mirrors = Mirrors::new();
    mirrors
        .add("upstream", server.url("m1/"))
        .add("upstream", server.url("m2/"));
    config.mirrors = mirrors;
    let fetcher = Fetcher::new(config).unwrap();
    let url = SourceUrl {
        written: "upstream:pkg/x.tar".into(),
        alias: Some("upstream".into()),
        resolved: server.url("up/pkg/x.tar"),
    };
    assert_eq!(
        fetcher.mirrors().candidates(&url),
        vec![
            server.url("m1/pkg/x.tar"),
            server.url("m2/pkg/x.tar"),
            server.url("up/pkg/x.tar")
        ]
    );
    let src = source(SourceKind::Tar {
        url,
        checksum: sha256(&data),
        base_dir: None,
    });
    fetch_source(&src, &fetcher, &e.cache, false, &NoProgress).unwrap();
    assert_eq!(server.requests("m1/pkg/x.tar"), 1, "404 is not retried");
    assert_eq!(server.requests("m2/pkg/x.tar"), 1);
    assert_eq!(server.requests("up/pkg/x.tar"), 0);
}

#[test]
fn every_candidate_failing_lists_them_all() {
    let server = Server::start();
    let e = env();
    let mut config = e.config.clone();
    config.mirrors.add("a", server.url("mirror/"));
    let fetcher = Fetcher::new(config).unwrap();
    let url = SourceUrl {
        written: "a:y.tar".into(),
        alias: Some("a".into()),
        resolved: server.url("up/y.tar"),
    };
    let src = source(SourceKind::Tar {
        url,
        checksum: sha256(b"y"),
        base_dir: None,
    });
    let err = fetch_source(&src, &fetcher, &e.cache, false, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a:y.tar"), "{err}");
    assert!(
        err.contains(&server.url("mirror/y.tar")) && err.contains(&server.url("up/y.tar")),
        "{err}"
    );
    assert!(err.contains("404"), "{err}");
}

#[test]
fn offline_missing_source_is_an_error_naming_it() {
    let server = Server::start();
    server.serve("z.tar", b"z");
    let e = env();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    let url = server.url("z.tar");
    let src = tar_source(&url, sha256(b"z"), None);
    let err = fetch_source(&src, &fetcher, &e.cache, true, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&url) && err.contains("offline"), "{err}");
    assert_eq!(server.requests("z.tar"), 0);
}

#[test]
fn dropped_connection_resumes_with_range() {
    let server = Server::start();
    let data = payload(200_000);
    server.serve("big", &data);
    server.behave(
        "big",
        Behavior::DropOnce {
            after: 70_000,
            ranges: true,
        },
    );
    let e = env();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    let src = tar_source(&server.url("big"), sha256(&data), None);
    let path = fetched_file(fetch_source(&src, &fetcher, &e.cache, false, &NoProgress).unwrap());
    assert_eq!(std::fs::read(path).unwrap(), data);
    assert_eq!(server.requests("big"), 2);
    assert_eq!(
        server.range_requests("big"),
        1,
        "the second request resumed"
    );
}

#[test]
fn dropped_connection_without_range_support_restarts() {
    let server = Server::start();
    let data = payload(200_000);
    server.serve("big", &data);
    server.behave(
        "big",
        Behavior::DropOnce {
            after: 70_000,
            ranges: false,
        },
    );
    let e = env();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    let src = tar_source(&server.url("big"), sha256(&data), None);
    let path = fetched_file(fetch_source(&src, &fetcher, &e.cache, false, &NoProgress).unwrap());
    assert_eq!(std::fs::read(path).unwrap(), data);
    assert_eq!(server.requests("big"), 2);
    assert_eq!(server.range_requests("big"), 0);
}

#[test]
fn server_errors_and_429_are_retried_404_is_not() {
    let server = Server::start();
    server.serve("flaky", b"ok");
    server.behave(
        "flaky",
        Behavior::StatusTimes {
            status: 503,
            times: 2,
        },
    );
    server.serve("busy", b"ok");
    server.behave(
        "busy",
        Behavior::StatusTimes {
            status: 429,
            times: 1,
        },
    );
    server.serve("gone", b"ok");
    server.behave(
        "gone",
        Behavior::StatusTimes {
            status: 403,
            times: 1,
        },
    );
    let e = env();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    for (path, expect) in [("flaky", 3), ("busy", 2)] {
        let src = tar_source(&server.url(path), sha256(b"ok"), None);
        let cache = DirCache::new(e.tmp.path().join(format!("cache-{path}")));
        fetch_source(&src, &fetcher, &cache, false, &NoProgress).unwrap();
        assert_eq!(server.requests(path), expect, "{path}");
    }
    let src = tar_source(&server.url("gone"), sha256(b"ok"), None);
    let err = fetch_source(&src, &fetcher, &e.cache, false, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("403") && err.contains(&server.url("gone")),
        "{err}"
    );
    assert_eq!(server.requests("gone"), 1);
}

#[test]
fn a_silent_server_times_out_and_is_retried() {
    let server = Server::start();
    server.serve("slow", b"eventually");
    server.behave(
        "slow",
        Behavior::DelayTimes {
            delay: Duration::from_millis(1500),
            times: 1,
        },
    );
    let e = env();
    let mut config = e.config.clone();
    config.read_timeout = Duration::from_millis(400);
    let fetcher = Fetcher::new(config).unwrap();
    let src = tar_source(&server.url("slow"), sha256(b"eventually"), None);
    fetch_source(&src, &fetcher, &e.cache, false, &NoProgress).unwrap();
    assert_eq!(server.requests("slow"), 2);
}

#[test]
fn connection_refused_gives_up_after_the_attempts() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = env();
    let mut config = e.config.clone();
    config.attempts = 2;
    let fetcher = Fetcher::new(config).unwrap();
    let url = format!("http://127.0.0.1:{port}/nothing.tar");
    let src = tar_source(&url, sha256(b"n"), None);
    let err = fetch_source(&src, &fetcher, &e.cache, false, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&url), "{err}");
}

#[test]
fn file_urls_work() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("local mirror.tar");
    std::fs::write(&file, b"file url content").unwrap();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    let url = format!("file://{}", file.display()).replace(' ', "%20");
    let src = tar_source(&url, sha256(b"file url content"), None);
    fetch_source(&src, &fetcher, &e.cache, false, &NoProgress).unwrap();
    let missing = tar_source(
        &format!("file://{}/nope", dir.path().display()),
        sha256(b"x"),
        None,
    );
    let err = fetch_source(&missing, &fetcher, &e.cache, false, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn progress_reports_bytes() {
    use std::sync::atomic::{AtomicU64, Ordering};
    struct Counter(AtomicU64, AtomicU64);
    impl cas_sources::Progress for Counter {
        fn begin(&self, _url: &str, total: Option<u64>) {
            self.0.store(total.unwrap_or(0), Ordering::SeqCst);
        }
        fn position(&self, done: u64) {
            self.1.store(done, Ordering::SeqCst);
        }
    }
    let server = Server::start();
    let data = payload(100_000);
    server.serve("p", &data);
    let e = env();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    let counter = Counter(AtomicU64::new(0), AtomicU64::new(0));
    let src = tar_source(&server.url("p"), sha256(&data), None);
    fetch_source(&src, &fetcher, &e.cache, false, &counter).unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 100_000);
    assert_eq!(counter.1.load(Ordering::SeqCst), 100_000);
}

#[test]
fn track_downloads_and_returns_the_sha256() {
    let server = Server::start();
    server.serve("new.tar", b"new release");
    let e = env();
    let fetcher = Fetcher::new(e.config.clone()).unwrap();
    let src = tar_source(&server.url("new.tar"), sha256(b"old release"), None);
    let tracked = track(&src, &fetcher, Some(&e.cache), &NoProgress).unwrap();
    assert_eq!(tracked, Tracked::Checksum(sha256(b"new release")));
    assert!(
        e.cache.lookup(&sha256(b"new release")).is_some(),
        "kept for the next build"
    );
}

#[test]
fn fetcher_is_sync_for_parallel_downloads() {
    fn assert_sync<T: Sync + Send>() {}
    assert_sync::<Fetcher>();
    assert_sync::<DirCache>();
}
