//! The hostile suite (trust issue): each test plays an attacker who controls
//! a source, a step's commands or the content of a tree, and checks that
//! nothing runs, is written or is read on the host, and that no result is
//! recorded under a key it is not the output of.

use std::path::Path;
use std::process::Command;

use crate::ctx::Ctx;

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@127.0.0.1",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with one commit of `hello.c`; returns its commit.
fn repo_with_commit(ctx: &Ctx) -> (std::path::PathBuf, String) {
    let repo = ctx.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("hello.c"), "hello from git\n").unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    (repo, commit)
}

/// A `.git/config` whose fsmonitor hook would create `canary` if any git on
/// the host read it.
fn fsmonitor_config(canary: &Path) -> String {
    format!(
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfsmonitor = \"touch {}; false\"\n",
        canary.display()
    )
}

#[test]
fn keep_git_never_runs_host_git_on_a_staged_dot_git() {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    let (repo, commit) = repo_with_commit(&ctx);
    let canary = ctx.path("canary-fsmonitor");
    // an earlier source stages .git/config with an fsmonitor command
    ctx.write("files/evil/.git/config", fsmonitor_config(&canary));
    ctx.write("files/evil/.git/HEAD", "ref: refs/heads/main\n");
    std::fs::create_dir_all(ctx.project().join("files/evil/.git/objects")).unwrap();
    std::fs::create_dir_all(ctx.project().join("files/evil/.git/refs")).unwrap();
    let git_source = format!(
        "  - kind: git\n    url: file://{}\n    ref: {commit}\n    keep-git: true\n",
        repo.display()
    );
    ctx.write(
        "elements/evil.yaml",
        format!("kind: import\nsources:\n  - kind: local\n    path: files/evil\n{git_source}"),
    );
    // a staged .git that is a symlink to a host directory
    let host_dir = ctx.path("host-dir");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::create_dir_all(ctx.project().join("files/link")).unwrap();
    std::os::unix::fs::symlink(&host_dir, ctx.project().join("files/link/.git")).unwrap();
    ctx.write(
        "elements/link.yaml",
        format!("kind: import\nsources:\n  - kind: local\n    path: files/link\n{git_source}"),
    );
    // and the honest case still works
    ctx.write(
        "elements/good.yaml",
        format!("kind: import\nsources:\n{git_source}"),
    );

    let run = ctx.cas(["build", "evil.yaml"]).expect_code(1);
    assert!(
        run.stderr.contains(".git") && run.stderr.contains("keep-git"),
        "the refusal says why:\n{}",
        run.stderr
    );
    assert!(
        !canary.exists(),
        "host-side git ran the fsmonitor command of a staged .git/config"
    );
    let run = ctx.cas(["build", "link.yaml"]).expect_code(1);
    assert!(run.stderr.contains("keep-git"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_dir(&host_dir).unwrap().count(),
        0,
        "git wrote into the host directory a staged .git symlink points at"
    );

    ctx.cas(["build", "good.yaml"]).ok();
    let out = ctx.path("good-out");
    ctx.cas(["checkout", "good.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("hello.c")).unwrap(),
        "hello from git\n"
    );
    let head = git(
        &out,
        &[
            "--git-dir",
            out.join(".git").to_str().unwrap(),
            "rev-parse",
            "HEAD",
        ],
    );
    assert_eq!(head, commit, "keep-git's .git is at the pinned commit");
    let status = git(&out, &["status", "--porcelain"]);
    assert_eq!(status, "", "the kept checkout is clean");
}

#[test]
fn a_committed_dot_git_tree_is_refused_with_keep_git() {
    // a tree that carries `.git/config` itself, made with plumbing
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    let repo = ctx.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    let canary = ctx.path("canary-committed");
    std::fs::write(ctx.path("config"), fsmonitor_config(&canary)).unwrap();
    let blob = git(
        &repo,
        &["hash-object", "-w", ctx.path("config").to_str().unwrap()],
    );
    let mktree = |input: String| {
        let mut child = Command::new("git")
            .current_dir(&repo)
            .args(["mktree"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let inner = mktree(format!("100644 blob {blob}\tconfig\n"));
    let top = mktree(format!("040000 tree {inner}\t.git\n"));
    let commit = git(&repo, &["commit-tree", &top, "-m", "evil"]);
    git(&repo, &["update-ref", "refs/heads/main", &commit]);
    ctx.write(
        "elements/evil.yaml",
        format!(
            "kind: import\nsources:\n  - kind: git\n    url: file://{}\n    ref: {commit}\n    keep-git: true\n",
            repo.display()
        ),
    );
    let run = ctx.cas(["build", "evil.yaml"]);
    assert!(
        !canary.exists(),
        "host-side git ran the fsmonitor command of a committed .git/config"
    );
    // refused: by git archive itself (it will not write `.git/…`), or by
    // cas's keep-git rule where a git would
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(".git"), "{}", run.stderr);
}

/// A static program that tries each denied kernel interface and prints
/// `name=ERRNO` (or `=ok`), and tries to read a key from the session
/// keyring by description (`secret=` its payload).
const SYSCALL_PROBE: &str = r#"
#define _GNU_SOURCE
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
static void report(const char *name, long r) {
  printf("%s=%s\n", name, r < 0 ? strerrorname_np(errno) : "ok");
}
int main(int argc, char **argv) {
  errno = 0; report("keyctl", syscall(SYS_keyctl, 0, -3, 0));
  errno = 0; report("add_key", syscall(SYS_add_key, "user", "x", "y", 1, -3));
  errno = 0; report("request_key", syscall(SYS_request_key, "user", "x", 0, 0));
  errno = 0; report("io_uring_setup", syscall(SYS_io_uring_setup, 1, 0));
  errno = 0; report("userfaultfd", syscall(SYS_userfaultfd, 0));
  errno = 0; report("perf_event_open", syscall(SYS_perf_event_open, 0, 0, -1, -1, 0));
  errno = 0; report("bpf", syscall(SYS_bpf, 0, 0, 0));
  errno = 0; report("init_module", syscall(SYS_init_module, 0, 0, ""));
  errno = 0; report("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
  errno = 0; report("unshare_user", unshare(CLONE_NEWUSER));
  errno = 0; report("clone3", syscall(SYS_clone3, 0, 0));
  errno = 0; report("mount", syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, 0));
  errno = 0; report("setns", syscall(SYS_setns, 0, 0));
  { char c = 'x'; errno = 0; report("tiocsti", ioctl(0, TIOCSTI, &c)); }
#ifdef __x86_64__
  long r;
  __asm__ volatile ("int $0x80" : "=a"(r) : "a"(288), "b"(0), "c"(-3), "d"(0) : "memory");
  printf("keyctl_i386=%s\n", r == 0 || r > 0 ? "ok" : strerrorname_np(-r));
  errno = 0; report("keyctl_x32", syscall(0x40000000 + 250, 0, -3, 0));
#endif
  errno = 0; report("getpid", getpid());
  if (argc > 1) {
    long id = syscall(SYS_request_key, "user", argv[1], 0, 0);
    if (id < 0) id = syscall(SYS_keyctl, 10 /*SEARCH*/, -3, "user", argv[1], 0);
    char buf[256] = {0};
    if (id >= 0 && syscall(SYS_keyctl, 11 /*READ*/, id, buf, sizeof buf - 1) >= 0)
      printf("secret=%s\n", buf);
    else
      printf("secret-read=%s\n", strerrorname_np(errno));
  }
  return 0;
}
"#;

#[test]
fn a_step_cannot_use_keyrings_io_uring_or_other_denied_kernel_interfaces() {
    let ctx = crate::ctx::busybox_project();
    std::fs::write(ctx.path("probe.c"), SYSCALL_PROBE).unwrap();
    std::fs::create_dir_all(ctx.project().join("files/probe")).unwrap();
    let out = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(ctx.project().join("files/probe/probe"))
        .arg(ctx.path("probe.c"))
        .output()
        .expect("the hostile suite needs gcc (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a secret in the session keyring of the user running cas
    let secret = "s3cr3t-token-value";
    // SAFETY: add_key with valid NUL-terminated strings and a sized payload.
    let added = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c"cas-hostile-token".as_ptr(),
            secret.as_ptr(),
            secret.len(),
            -3i32, // KEY_SPEC_SESSION_KEYRING
        )
    };
    ctx.write(
        "elements/probe.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/probe\n\
         config:\n  install-commands:\n    - mkdir -p %{install-root}/r\n    - ./probe cas-hostile-token > %{install-root}/r/out\n\
             \x20   - cat /proc/keys /proc/key-users > %{install-root}/r/keys 2>&1 || true\n",
    );
    ctx.cas(["build", "probe.yaml"]).ok();
    let dir = ctx.path("out");
    ctx.cas(["checkout", "probe.yaml", dir.to_str().unwrap()])
        .ok();
    let text = std::fs::read_to_string(dir.join("r/out")).unwrap();
    let seen: std::collections::BTreeMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once('=')).collect();
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "io_uring_setup",
        "userfaultfd",
        "perf_event_open",
        "bpf",
        "init_module",
        "kexec_load",
        "unshare_user",
        "mount",
        "setns",
        "tiocsti",
    ] {
        assert_eq!(
            seen.get(name),
            Some(&"EPERM"),
            "{name} in the sandbox:\n{text}"
        );
    }
    assert_eq!(seen.get("clone3"), Some(&"ENOSYS"), "{text}");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(seen.get("keyctl_i386"), Some(&"EPERM"), "{text}");
        assert_eq!(seen.get("keyctl_x32"), Some(&"EPERM"), "{text}");
    }
    assert_eq!(seen.get("getpid"), Some(&"ok"), "{text}");
    // /proc/keys lists every key the user can view, by name: hidden
    let listed = std::fs::read_to_string(dir.join("r/keys")).unwrap();
    assert!(!listed.contains("cas-hostile-token"), "{listed}");
    if added >= 0 {
        assert!(
            !text.contains(secret),
            "the step read the caller's keyring:\n{text}"
        );
        assert!(seen.contains_key("secret-read"), "{text}");
    } else {
        println!(
            "hostile: could not add a key to this process's keyring; the secret read was not tried"
        );
    }
}

/// A busybox project whose `ws.yaml` copies its one source file `f` to its
/// output, slowly, with its workspace open in `ROOT/ws`.
fn workspace_project() -> (Ctx, std::path::PathBuf) {
    let ctx = crate::ctx::busybox_project();
    ctx.write("files/ws/f", "A\n");
    ctx.write(
        "elements/ws.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/ws\n\
         config:\n  install-commands:\n    - sleep 0.2\n    - mkdir -p %{install-root}/out\n    - cp f %{install-root}/out/f\n",
    );
    let run = ctx
        .cas(["--json", "workspace", "open", "ws.yaml", "../ws"])
        .ok();
    let ws = std::path::PathBuf::from(run.json()["path"].as_str().unwrap());
    (ctx, ws)
}

/// Replace `file`'s content at once (a rename: readers see old or new),
/// from a temporary file beside its directory (inside it, a snapshot could
/// legitimately hold the temporary file too).
fn replace(file: &Path, content: &str) {
    let dir = file.parent().unwrap();
    let tmp = dir.with_file_name(format!(
        ".{}-tmp-edit",
        dir.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

#[test]
fn a_workspace_edited_during_builds_never_gets_a_result_under_another_key() {
    let (ctx, ws) = workspace_project();
    let file = ws.join("f");
    // the file changes every few milliseconds while two builders race, so
    // that every build has a new key and really runs
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (stop, file) = (stop.clone(), file.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                replace(&file, &format!("{i}\n"));
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
        })
    };
    let ctx = std::sync::Arc::new(ctx);
    let builders: Vec<_> = (0..2)
        .map(|_| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..5 {
                    let run = ctx.cas(["--json", "build", "ws.yaml"]).ok();
                    seen.push((
                        run.per_element("key")["ws.yaml"].clone(),
                        run.per_element("output")["ws.yaml"].clone(),
                    ));
                }
                seen
            })
        })
        .collect();
    let mut results = Vec::new();
    for b in builders {
        results.extend(b.join().unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    // each result's content, built again from scratch in a second store with
    // the file holding exactly that content, must give the same key
    let other = ctx.path("other-store");
    let other = other.to_str().unwrap();
    for (n, (key, output)) in results.iter().enumerate() {
        let dir = ctx.path(format!("check-{n}"));
        ctx.cas(["checkout", output, dir.to_str().unwrap()]).ok();
        let content = std::fs::read_to_string(dir.join("out/f")).unwrap();
        replace(&file, &content);
        let run = ctx
            .cas(["--store", other, "--json", "build", "ws.yaml"])
            .ok();
        assert_eq!(
            &run.per_element("key")["ws.yaml"],
            key,
            "the result recorded under {key} holds {content:?}, which is another key's input"
        );
    }
}

#[test]
fn a_step_that_plants_a_symlink_in_its_workspace_build_cannot_make_sync_delete_host_files() {
    let (ctx, ws) = workspace_project();
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    std::fs::write(ws.join("sub/x"), "workspace file\n").unwrap();
    let host = ctx.path("host-dir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("x"), "precious host file\n").unwrap();
    // the step replaces its build directory's sub/ with a link to the host
    ctx.write(
        "elements/ws.yaml",
        format!(
            "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/ws\n\
             config:\n  install-commands:\n    - mkdir -p %{{install-root}}/out\n    - cp f %{{install-root}}/out/f\n    - rm -rf sub && ln -s {} sub\n",
            host.display()
        ),
    );
    ctx.cas(["build", "ws.yaml"]).ok();
    // the developer removes sub/ and builds again: the sync removes what
    // the last sync wrote and the workspace no longer has (sub/x), on the
    // host, as the user
    std::fs::remove_dir_all(ws.join("sub")).unwrap();
    let _ = ctx.cas(["build", "ws.yaml"]);
    assert_eq!(
        std::fs::read_to_string(host.join("x")).ok().as_deref(),
        Some("precious host file\n"),
        "a workspace sync deleted a host file through a step's symlink"
    );
}

#[test]
fn a_gc_that_dies_while_removing_a_view_leaves_no_partial_view_behind() {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/a1.yaml",
        crate::ctx::manual(
            &[],
            "    - mkdir -p %{install-root}/usr/share/a1\n    - for j in $(seq 1 40); do echo $j > %{install-root}/usr/share/a1/f$j; done\n",
        ),
    );
    let b = |n: u32| {
        crate::ctx::manual(
            &["a1.yaml"],
            &format!("    - test $(ls /usr/share/a1 | wc -l) = 40\n    - mkdir -p %{{install-root}}/b\n    - echo {n} > %{{install-root}}/b/n\n"),
        )
    };
    ctx.write("elements/b.yaml", b(1));
    let run = ctx.cas(["--json", "build", "b.yaml"]).ok();
    let a1 = run.per_element("output")["a1.yaml"].clone();
    let view = ctx.store().join("views").join(&a1);
    assert!(view.is_dir(), "b staged a1 through its view");
    // gc fails halfway through removing that view (an immutable file in it
    // stands for a gc killed there)
    let stuck = view.join("usr/share/a1/f20");
    let chattr = |flag: &str, path: &Path| {
        let ok = Command::new("chattr")
            .args(["-R", flag])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "chattr {flag} {} (the store must be on ext4, xfs or btrfs)",
            path.display()
        );
    };
    chattr("+i", &stuck);
    let gc = ctx.cas(["store", "gc", "--max-size", "1"]);
    // (chattr -R reports the symlinks it cannot flag: only the files matter)
    let _ = Command::new("chattr")
        .args(["-R", "-f", "-i"])
        .arg(ctx.store())
        .status();
    assert_ne!(
        gc.code, 0,
        "gc cannot remove an immutable file: {}",
        gc.stderr
    );
    // a1 rebuilds to the same tree; b, changed, stages it again and must see
    // every file
    ctx.write("elements/b.yaml", b(2));
    ctx.cas(["build", "b.yaml"]).ok();
}

#[test]
fn only_the_stores_owner_enters_it_and_setuid_bits_are_content() {
    use std::os::unix::fs::PermissionsExt;
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/suid.yaml",
        crate::ctx::manual(
            &[],
            "    - mkdir -p %{install-root}/usr/bin\n    - cp /bin/busybox %{install-root}/usr/bin/su-like\n    - chmod 4755 %{install-root}/usr/bin/su-like\n",
        ),
    );
    // an image step copies its sysroot: it must see (and keep) the bit
    ctx.write(
        "elements/image.yaml",
        crate::ctx::manual(
            &["suid.yaml"],
            "    - mkdir -p %{install-root}/img\n    - stat -c %a /usr/bin/su-like > %{install-root}/img/mode\n    - cp -a /usr/bin/su-like %{install-root}/img/\n",
        ),
    );
    // and a failed build whose directory is kept, with a setuid file in it
    ctx.write(
        "elements/fails.yaml",
        crate::ctx::manual(
            &[],
            "    - mkdir -p %{install-root}/x\n    - cp /bin/busybox %{install-root}/x/s\n    - chmod 6755 %{install-root}/x/s\n    - false\n",
        ),
    );
    ctx.cas(["build", "image.yaml"]).ok();
    ctx.cas(["build", "fails.yaml"]).expect_code(1);
    let store = ctx.store();
    let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "a new store is its owner's only");
    // another user reaches nothing in it (views, objects, kept builds),
    // even where the directories around the store are open to everyone
    std::fs::set_permissions(ctx.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let probe = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "/bin/busybox",
            "ls",
        ])
        .arg(ctx.root())
        .output()
        .expect("setpriv (util-linux)");
    assert!(
        probe.status.success(),
        "nobody can list the test's directory"
    );
    for sub in ["views", "objects", "builds"] {
        let out = Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "/bin/busybox",
                "ls",
            ])
            .arg(store.join(sub))
            .output()
            .expect("setpriv (util-linux)");
        assert!(!out.status.success(), "nobody listed {sub}/ of the store");
    }
    let out = ctx.path("out");
    ctx.cas(["checkout", "image.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("img/mode")).unwrap(),
        "4755\n"
    );
    let m = std::fs::metadata(out.join("img/su-like")).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o4755,
        "the image keeps the bit"
    );
    // a checkout handed out as hardlinks into the store never carries it
    let linked = ctx.path("linked");
    ctx.cas([
        "checkout",
        "--hardlinks",
        "suid.yaml",
        linked.to_str().unwrap(),
    ])
    .ok();
    let m = std::fs::metadata(linked.join("usr/bin/su-like")).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o6000,
        0,
        "a hardlinked checkout is never setuid"
    );
}

/// A directory `levels` deep under `root/name` (one-letter names), made
/// with descriptors so that no path is ever longer than one name.
fn deep_dir(root: &Path, name: &str, levels: usize) {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(root.join(name)).unwrap();
    let mut dir = std::fs::File::open(root.join(name)).unwrap();
    for _ in 0..levels {
        // SAFETY: valid descriptors and NUL-terminated names; results checked.
        unsafe {
            assert_eq!(libc::mkdirat(dir.as_raw_fd(), c"d".as_ptr(), 0o755), 0);
            let fd = libc::openat(
                dir.as_raw_fd(),
                c"d".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY,
            );
            assert!(fd >= 0);
            dir = std::os::fd::FromRawFd::from_raw_fd(fd);
        }
    }
    // SAFETY: as above.
    unsafe {
        let fd = libc::openat(
            dir.as_raw_fd(),
            c"leaf".as_ptr(),
            libc::O_WRONLY | libc::O_CREAT,
            0o644,
        );
        assert!(fd >= 0);
        libc::close(fd);
    }
}

#[test]
fn trees_thousands_of_levels_deep_never_crash_cas() {
    let ctx = crate::ctx::busybox_project();
    // a local source 1,000 levels deep (paths of ~2,000 bytes) and one of
    // 10,000 (beyond PATH_MAX: an error, never an abort)
    deep_dir(&ctx.project().join("files"), "deep", 1000);
    deep_dir(&ctx.project().join("files"), "deeper", 10_000);
    ctx.write(
        "elements/deep.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/deep\n",
    );
    ctx.write(
        "elements/deeper.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/deeper\n",
    );
    // a step whose output is 1,000 levels deep, over the deep import
    let path = "d/".repeat(1000);
    ctx.write(
        "elements/out.yaml",
        crate::ctx::manual(
            &["deep.yaml"],
            &format!("    - mkdir -p %{{install-root}}/{path}\n    - echo x > %{{install-root}}/{path}/x\n"),
        ),
    );
    ctx.cas(["build", "out.yaml"]).ok();
    let dir = ctx.path("co");
    ctx.cas(["checkout", "out.yaml", dir.to_str().unwrap()])
        .ok();
    assert!(dir.join(&path).join("x").is_file());
    ctx.cas(["diff", "out.yaml", "deep.yaml"]).expect_code(1);
    ctx.cas(["store", "verify", "--deep"]).ok();
    let run = ctx.cas(["build", "deeper.yaml"]);
    assert!(
        run.code == 0 || run.code == 1 || run.code == 2,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    assert!(!run.stderr.contains("overflow"), "{}", run.stderr);
    ctx.cas(["store", "gc"]).ok();
}

#[test]
fn a_store_whose_file_system_is_full_is_freed_by_gc() {
    // a 24 MiB tmpfs holds the store (mounting needs root, which CI is)
    let ctx = crate::ctx::busybox_project();
    let mnt = ctx.path("small-fs");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "mounting a small tmpfs needs root (the test suite runs as root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let store = mnt.join("store");
    let store = store.to_str().unwrap();
    ctx.write(
        "elements/big.yaml",
        crate::ctx::manual(&[], "    - mkdir -p %{install-root}/big\n    - dd if=/dev/zero of=%{install-root}/big/z bs=1M count=64\n"),
    );
    ctx.write(
        "elements/small.yaml",
        crate::ctx::manual(
            &[],
            "    - mkdir -p %{install-root}/s\n    - echo small > %{install-root}/s/f\n",
        ),
    );
    // the step fills the file system; its directory is kept
    ctx.cas(["--store", store, "build", "big.yaml"])
        .expect_code(1);
    ctx.cas(["--store", store, "store", "gc"]).ok();
    ctx.cas(["--store", store, "build", "small.yaml"]).ok();
    ctx.cas(["--store", store, "store", "verify"]).ok();
}

#[test]
fn forty_thousand_missing_dependencies_are_all_reported_in_linear_time() {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    let mut text = String::from("kind: stack\ndepends:\n");
    for i in 0..40_000 {
        text.push_str(&format!("  - missing-{i}.yaml\n"));
    }
    ctx.write("elements/top.yaml", text);
    for i in 0..50 {
        ctx.write(format!("elements/e{i}.yaml"), "kind: stack\n");
    }
    let started = std::time::Instant::now();
    let run = ctx.cas(["show", "top.yaml"]).expect_code(2);
    let took = started.elapsed();
    // every error, each at its line (quadratic rendering took 88 s here)
    assert_eq!(run.stderr.matches("no such element").count(), 40_000);
    assert!(
        run.stderr.contains("elements/top.yaml:40002:5"),
        "the last one at its line"
    );
    assert!(
        took < std::time::Duration::from_secs(60),
        "reporting 40,000 errors took {took:?}"
    );
}

#[test]
fn verify_during_builds_never_calls_a_complete_result_broken() {
    let ctx = std::sync::Arc::new(crate::ctx::busybox_project());
    let write = |ctx: &Ctx, round: u32| {
        for i in 0..8 {
            ctx.write(
                format!("elements/e{i}.yaml"),
                crate::ctx::manual(
                    &[],
                    &format!("    - mkdir -p %{{install-root}}/e{i}\n    - for j in $(seq 1 30); do echo {round}-$j > %{{install-root}}/e{i}/f$j; done\n"),
                ),
            );
        }
        ctx.write(
            "elements/all.yaml",
            "kind: stack\ndepends: [e0.yaml, e1.yaml, e2.yaml, e3.yaml, e4.yaml, e5.yaml, e6.yaml, e7.yaml]\n",
        );
    };
    write(&ctx, 0);
    ctx.cas(["build", "all.yaml"]).ok();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let builder = {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut round = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                write(&ctx, round);
                ctx.cas(["-j2", "build", "all.yaml"]).ok();
                round += 1;
            }
            round
        })
    };
    let mut failures = Vec::new();
    for _ in 0..25 {
        let run = ctx.cas(["store", "verify"]);
        if run.code != 0 {
            failures.push(run.stdout + &run.stderr);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = builder.join().unwrap();
    assert!(rounds > 2, "the builds ran while verify did");
    assert!(
        failures.is_empty(),
        "verify cried wolf during builds:\n{}",
        failures.join("\n---\n")
    );
    ctx.cas(["store", "verify", "--deep"]).ok();
}

#[test]
fn an_empty_junction_file_is_an_error_that_says_so_at_its_file() {
    let ctx = Ctx::new();
    ctx.write(
        "project.conf",
        "name: j\nmin-version: 2.0\nelement-path: elements\n",
    );
    ctx.write("elements/sub.bst", "");
    ctx.write(
        "elements/top.bst",
        "kind: stack\ndepends:\n- sub.bst:x.bst\n",
    );
    let run = ctx.cas(["show", "top.bst"]).expect_code(2);
    assert!(
        run.stderr.contains("junction `sub.bst` is empty")
            && run.stderr.contains("elements/sub.bst:1:1"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_junction_is_reported_where_it_is_depended_on() {
    let ctx = Ctx::new();
    ctx.write(
        "project.conf",
        "name: j\nmin-version: 2.0\nelement-path: elements\n",
    );
    ctx.write(
        "elements/top.bst",
        "kind: stack\ndepends:\n- nope.bst:x.bst\n",
    );
    let run = ctx.cas(["show", "top.bst"]).expect_code(2);
    assert!(
        run.stderr.contains("junction `nope.bst` not found")
            && run.stderr.contains("elements/top.bst:3:3"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_workspace_file_a_step_changed_in_place_is_restored_before_the_next_build() {
    // the step edits a source file of its persistent build directory without
    // changing its length; the next build must start from the workspace's bytes
    let ctx = crate::ctx::busybox_project();
    ctx.write("files/ws/state", "count=1\n");
    ctx.write("files/ws/other", "one\n");
    ctx.write(
        "elements/ws.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/ws\n\
         config:\n  install-commands:\n    - sed -i -e 's/count=1/count=2/;t' -e 's/count=2/count=3/' state\n\
         \x20   - mkdir -p %{install-root}/out\n    - cp state %{install-root}/out/state\n",
    );
    let run = ctx
        .cas(["--json", "workspace", "open", "ws.yaml", "../ws"])
        .ok();
    let ws = std::path::PathBuf::from(run.json()["path"].as_str().unwrap());
    let out = |n: &str| {
        let dir = ctx.path(n);
        ctx.cas(["build", "ws.yaml"]).ok();
        ctx.cas(["checkout", "ws.yaml", dir.to_str().unwrap()]).ok();
        std::fs::read_to_string(dir.join("out/state")).unwrap()
    };
    assert_eq!(out("first"), "count=2\n");
    std::fs::write(ws.join("other"), "two\n").unwrap();
    assert_eq!(
        out("second"),
        "count=2\n",
        "the step's edit of state leaked into the next build"
    );
    ctx.cas(["check", "ws.yaml"]).ok();
}

#[test]
fn gc_removes_views_for_a_user_who_is_not_root() {
    // a view's root is read-only: moving it out of views/ needs it writable
    // first, which root never notices
    use std::os::unix::fs::PermissionsExt;
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/a.yaml",
        crate::ctx::manual(
            &[],
            "    - mkdir -p %{install-root}/a\n    - echo a > %{install-root}/a/f\n",
        ),
    );
    ctx.write(
        "elements/b.yaml",
        crate::ctx::manual(
            &["a.yaml"],
            "    - mkdir -p %{install-root}/b\n    - cat /a/f > %{install-root}/b/f\n",
        ),
    );
    for d in [ctx.root().to_path_buf(), ctx.project()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let store = ctx.path("nobody-store");
    std::fs::create_dir_all(&store).unwrap();
    let chown = |p: &Path| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path; the result is checked.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    };
    chown(&store);
    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "--",
            ])
            .arg(env!("CARGO_BIN_EXE_cas"))
            .arg("--store")
            .arg(&store)
            .args(args)
            .current_dir(ctx.project())
            .env("HOME", &store)
            .output()
            .expect("setpriv (util-linux)");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = as_nobody(&["build", "b.yaml"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(std::fs::read_dir(store.join("views")).unwrap().count() > 0);
    let (code, err) = as_nobody(&["store", "gc", "--max-size", "1"]);
    assert_eq!(code, Some(0), "gc as a user: {err}");
    let (code, err) = as_nobody(&["store", "gc"]);
    assert_eq!(code, Some(0), "{err}");
}

/// A host directory a hostile step must never reach.
fn victim_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cas-victim-")
        .tempdir()
        .unwrap()
}

/// The sandbox backends: cas's own (the default) and bwrap.
const BACKENDS: [&str; 2] = ["cas", "bwrap"];

/// `cas --json build element` with the sandbox `backend` (one of
/// [`BACKENDS`]; bwrap is chosen with `CAS_SANDBOX=bwrap`).
fn build_with(ctx: &Ctx, element: &str, backend: &str) -> crate::ctx::Run {
    let (mut cmd, shown) = ctx.command(["--json", "build", element]);
    if backend == "bwrap" {
        cmd.env("CAS_SANDBOX", "bwrap");
    } else {
        cmd.env_remove("CAS_SANDBOX");
    }
    crate::ctx::Run::from_output(shown, cmd.output().expect("run cas"))
}

/// A dependency's output holds a symbolic link on the path of a mount point
/// of a `script` step with a writable root (`work -> /oldroot/VICTIM`, for
/// the mount point `/work/sub`: while the sandbox is set up, the host's `/`
/// is at `/oldroot`). The step is refused, saying why, and nothing appears
/// in the host's directory.
#[test]
fn a_staged_link_on_a_mount_points_path_never_leads_a_writable_root_to_the_host() {
    let ctx = crate::ctx::busybox_project();
    let victim = victim_dir();
    std::fs::create_dir_all(ctx.project().join("files/evil")).unwrap();
    std::os::unix::fs::symlink(
        format!("/oldroot{}", victim.path().display()),
        ctx.project().join("files/evil/work"),
    )
    .unwrap();
    ctx.write(
        "elements/evil.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/evil\n",
    );
    ctx.write(
        "elements/step.yaml",
        "kind: script\nbuild-depends: [base.yaml, evil.yaml]\nvariables:\n  build-root: /work/sub\n\
         config:\n  commands:\n    - echo pwned > /work/sub/file\n    - mkdir -p %{install-root}\n",
    );
    for backend in BACKENDS {
        let run = build_with(&ctx, "step.yaml", backend);
        let entries: Vec<_> = std::fs::read_dir(victim.path()).unwrap().collect();
        assert!(
            entries.is_empty(),
            "{backend}: {entries:?} on the host after\n{}",
            run.stderr
        );
        let run = run.expect_code(1);
        assert!(
            run.stderr.contains("/work/sub") && run.stderr.contains("symbolic link"),
            "{backend}: {}",
            run.stderr
        );
    }
}

/// A `script` step with a writable root moves the parent of its mount
/// points away and puts a link to a host directory in its place. The
/// mount points the sandbox made are removed after the run: never through
/// that link, so the host directory keeps what it holds.
#[test]
fn the_cleanup_of_a_writable_root_never_follows_a_link_a_script_planted() {
    let ctx = crate::ctx::busybox_project();
    let victim = victim_dir();
    std::fs::create_dir(victim.path().join("b")).unwrap();
    std::fs::write(victim.path().join("c"), "keep me").unwrap();
    let step = |backend: &str| {
        ctx.write(
            "elements/step.yaml",
            format!(
                "kind: script\nbuild-depends: [base.yaml]\nvariables:\n  build-root: /a/b\n  install-root: /a/c\n\
                 config:\n  commands:\n    - echo {backend} > %{{install-root}}/ran\n\
                 \x20   - mv /a /moved && ln -s {} /a\n",
                victim.path().display()
            ),
        );
    };
    for backend in BACKENDS {
        // a new key for each backend: both run
        step(backend);
        let run = build_with(&ctx, "step.yaml", backend);
        // the commands ran: their output says so
        let out = ctx.path(format!("out-{backend}"));
        ctx.cas(["checkout", "step.yaml", out.to_str().unwrap()])
            .ok();
        assert_eq!(
            std::fs::read_to_string(out.join("ran")).unwrap(),
            format!("{backend}\n"),
            "{}",
            run.stderr
        );
        assert!(
            victim.path().join("b").is_dir() && victim.path().join("c").is_file(),
            "{backend}: the host directory lost its entries after\n{}",
            run.stderr
        );
        assert_eq!(
            std::fs::read_to_string(victim.path().join("c")).unwrap(),
            "keep me"
        );
    }
}
