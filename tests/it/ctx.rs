//! Per-test context: a temporary directory holding a project and a store, and
//! helpers to run `cas` against them.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) struct Ctx {
    dir: tempfile::TempDir,
}

/// The result of one `cas` run.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Run {
    pub(crate) fn from_output(args: Vec<String>, out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args,
        }
    }

    /// Panics with the full output unless the exit code is `code`.
    #[track_caller]
    pub(crate) fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            code,
            "`cas {}` exited {} (expected {})\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            code,
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked at"),
            "`cas {}` panicked:\n{}",
            self.args.join(" "),
            self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn ok(self) -> Run {
        self.expect_code(0)
    }

    /// Parse stdout as JSON.
    #[track_caller]
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of `cas {}` is not JSON ({e}):\n{}",
                self.args.join(" "),
                self.stdout
            )
        })
    }

    /// Element name → `field` (a string, or "" when null) of a `--json`
    /// build report: `"status"`, `"output"`, `"key"`.
    pub(crate) fn per_element(&self, field: &str) -> std::collections::BTreeMap<String, String> {
        self.json()["elements"]
            .as_array()
            .expect("a build report")
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e[field].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

impl Ctx {
    pub(crate) fn new() -> Ctx {
        let dir = tempfile::Builder::new()
            .prefix("cas-it-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("project")).unwrap();
        Ctx { dir }
    }

    /// The test's private temporary directory.
    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The default store of this test (`CAS_STORE`).
    pub(crate) fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The project directory; `cas` runs here.
    pub(crate) fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    /// A path inside the test's directory.
    pub(crate) fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write a file relative to the project directory (parents are created).
    pub(crate) fn write(&self, rel: impl AsRef<Path>, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.project().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// A `cas` command with this test's store, run in the project directory.
    pub(crate) fn command<I, S>(&self, args: I) -> (Command, Vec<String>)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cas"));
        cmd.args(&args)
            .current_dir(self.project())
            .env("CAS_STORE", self.store())
            .env("HOME", self.path("home"))
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env("NO_COLOR", "1")
            .env("CLICOLOR", "0");
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        (cmd, shown)
    }

    /// Run `cas` with these arguments and capture everything.
    pub(crate) fn cas<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (mut cmd, shown) = self.command(args);
        let out = cmd.output().expect("run cas");
        Run::from_output(shown, out)
    }

    /// A directory holding a static busybox and its applet links under
    /// `bin/`: a complete minimal sysroot for shell-only elements. Returned
    /// path is relative to nothing: it is absolute, inside the test directory.
    pub(crate) fn busybox_tree(&self, rel: impl AsRef<Path>) -> PathBuf {
        let root = self.project().join(rel);
        // The benchmarks' generator writes the same base (one implementation).
        cas_bench::gen::busybox_tree(&root)
            .unwrap_or_else(|e| panic!("tests need /bin/busybox (busybox-static): {e}"));
        root
    }
}

/// Appended for the store tests: run `cas` and measure its peak resident set size.
impl Ctx {
    /// Run `cas` with these arguments; returns the run and the child's peak RSS in KiB.
    ///
    /// Measured by GNU time (`/usr/bin/time -f %M`, package `time`), which
    /// forks cas from its own small process: a child spawned directly by
    /// this test process (vfork, then exec) has this process's resident set
    /// recorded into its `ru_maxrss` at exec, so `wait4` here would report
    /// the test harness's memory, which grows with whatever other tests
    /// run alongside (that made this measurement flaky).
    pub(crate) fn cas_peak_rss<I, S>(&self, args: I) -> (Run, u64)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        use std::io::Read;
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let rss_path = self.path(format!(".rss-kib-{n}"));
        let (inner, shown) = self.command(args);
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-f").arg("%M").arg("-o").arg(&rss_path);
        cmd.arg(inner.get_program()).args(inner.get_args());
        cmd.current_dir(self.project());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out_path = self.path(format!(".rss-out-{n}"));
        let err_path = self.path(format!(".rss-err-{n}"));
        cmd.stdout(std::fs::File::create(&out_path).unwrap());
        cmd.stderr(std::fs::File::create(&err_path).unwrap());
        #[allow(
            clippy::zombie_processes,
            reason = "reaped by wait4 below, for its rusage"
        )]
        let child = cmd.spawn().expect("run cas");
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        assert_eq!(r, pid, "wait4 failed");
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        std::fs::File::open(&out_path)
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        std::fs::File::open(&err_path)
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        let _ = usage;
        let rss = std::fs::read_to_string(&rss_path)
            .unwrap_or_default()
            .lines()
            .rev()
            .find_map(|l| l.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "GNU time (package `time`, scripts/install-deps.sh) wrote no peak RSS into {}",
                    rss_path.display()
                )
            });
        let _ = std::fs::remove_file(&rss_path);
        (
            Run {
                code,
                stdout,
                stderr,
                args: shown,
            },
            rss,
        )
    }
}

/// Appended for the remote tests: a real nginx with WebDAV `PUT` on
/// 127.0.0.1, on a free port, in its own directory; killed on drop.
pub(crate) struct Nginx {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<std::process::Child>,
    /// More directives of the served location (authentication ...).
    location: String,
}

impl Nginx {
    /// Start nginx serving (and accepting uploads into) `dir/www`.
    pub(crate) fn start(dir: &Path) -> Nginx {
        Nginx::start_with(dir, "")
    }

    /// [`Nginx::start`], with more directives in the served location
    /// (`{d}` in them is replaced by `dir`).
    pub(crate) fn start_with(dir: &Path, location: &str) -> Nginx {
        let nginx = Path::new("/usr/sbin/nginx");
        assert!(
            nginx.exists(),
            "tests need /usr/sbin/nginx (Debian package nginx)"
        );
        for d in ["www", "tmp", "logs"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = Nginx {
            dir: dir.to_path_buf(),
            port,
            child: None,
            location: location.replace("{d}", &dir.display().to_string()),
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let dir = &self.dir;
        let d = dir.display();
        // One process (no master): killing it stops everything; it runs as
        // the test's user, so uploads are written as that user.
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/tmp/body;\n\
               proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
               scgi_temp_path {d}/tmp/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n\
                 location / {{\n      {extra}\n      dav_methods PUT;\n      create_full_put_path on;\n      client_max_body_size 0;\n    }}\n  }}\n}}\n",
            port = self.port,
            extra = self.location
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nginx");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The cache's base URL (objects under `cas/`, results under `ac/`).
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.port)
    }

    /// The directory behind [`Nginx::url`].
    pub(crate) fn data(&self) -> PathBuf {
        self.dir.join("www/cache")
    }

    /// Access log lines so far.
    pub(crate) fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("logs/access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Stop nginx (SIGKILL): the remote is down.
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A project (`name: t`, elements in `elements/`) whose `base.yaml` imports
/// a busybox sysroot: the base of the shell-only test elements.
pub(crate) fn busybox_project() -> Ctx {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    ctx.busybox_tree("files/base");
    ctx.write(
        "elements/base.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/base\n",
    );
    ctx
}

/// A `manual` element on `base.yaml` (plus `deps`) whose install commands are
/// `commands` (YAML list items, already indented).
pub(crate) fn manual(deps: &[&str], commands: &str) -> String {
    let deps = deps
        .iter()
        .map(|d| format!("  - {d}\n"))
        .collect::<String>();
    format!("kind: manual\nbuild-depends:\n  - base.yaml\n{deps}config:\n  install-commands:\n{commands}")
}

/// The store shared by the slow real-world tests of one checkout (real
/// Debian packages, upstream tarballs): what one test fetched and built,
/// the others and later runs reuse. A store is safe for concurrent use.
pub(crate) fn shared_store() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-store")
}

/// The machine's Debian archive with a trailing `/`, from
/// `scripts/apt-mirror.sh` (APT's configuration, read at run time, so that
/// no host name is written into the repository).
pub(crate) fn apt_mirror() -> Option<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/apt-mirror.sh");
    let out = Command::new("bash").arg(script).output().ok()?;
    let url = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !url.trim().is_empty()).then(|| format!("{}/", url.trim()))
}

/// The toolchain of `flavor` hardlinked into the project's `files/toolchain`
/// and imported as `elements/toolchain.yaml`.
pub(crate) fn toolchain_element(ctx: &Ctx, flavor: crate::toolchain::Flavor) {
    let dest = ctx.project().join("files/toolchain");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-al")
        .arg(crate::toolchain::toolchain(flavor))
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success(), "cp -al of the toolchain");
    ctx.write(
        "elements/toolchain.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/toolchain\n",
    );
}
