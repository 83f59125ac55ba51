//! BuildGrid 0.4.4 (PyPI, in a venv: scripts/install-deps.sh puts it in
//! /opt/cas-test/buildgrid) over a throwaway PostgreSQL 15 cluster, both on
//! 127.0.0.1: the REAPI scheduler that the worker tests
//! (tests/it/buildgrid.rs) and the `remote-exec` benchmark case run
//! `cas worker`s against. Both are stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// BuildGrid's `bgd`: `CAS_BUILDGRID`, or where install-deps.sh puts it.
pub fn bgd() -> Result<PathBuf> {
    let p = std::env::var_os("CAS_BUILDGRID").map_or_else(
        || PathBuf::from("/opt/cas-test/buildgrid/bin/bgd"),
        PathBuf::from,
    );
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} is missing: run scripts/install-deps.sh (BuildGrid 0.4.4 in a venv) or set CAS_BUILDGRID",
            p.display()
        ))
    }
}

/// A JWT that BuildGrid's `jwt` authorization accepts: HS256 over
/// `{"sub": SUBJECT, "exp": now + 1 h}` with `secret`, made by PyJWT in
/// BuildGrid's own venv (the library BuildGrid checks tokens with).
pub fn jwt(secret: &str, subject: &str) -> Result<String> {
    let python = bgd()?.with_file_name("python3");
    let out = Command::new(&python)
        .args([
            "-c",
            "import jwt, sys, time; print(jwt.encode({'sub': sys.argv[2], 'exp': int(time.time()) + 3600}, sys.argv[1], algorithm='HS256'))",
            secret,
            subject,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("PyJWT: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn is_root() -> bool {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// A PostgreSQL tool (`CAS_PG_BIN`, else Debian's PostgreSQL 15), run as
/// `postgres` when this is root (PostgreSQL refuses to run as root).
fn pg(tool: &str) -> Result<Command> {
    let dir = std::env::var_os("CAS_PG_BIN").map_or_else(
        || PathBuf::from("/usr/lib/postgresql/15/bin"),
        PathBuf::from,
    );
    let bin = dir.join(tool);
    if !bin.exists() {
        return Err(format!(
            "{} is missing: run scripts/install-deps.sh (postgresql-15) or set CAS_PG_BIN",
            bin.display()
        ));
    }
    Ok(if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    })
}

fn run(mut c: Command, what: &str) -> Result<()> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn wait_for_port(port: u16, what: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "{what} did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// How BuildGrid serves: TLS, client certificates, bearer tokens.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serving<'a> {
    /// TLS with this certificate and key (PEM files).
    pub tls: Option<(&'a Path, &'a Path)>,
    /// With TLS: every client must present a certificate that chains to
    /// one of these (a PEM file; BuildGrid's `tls-client-certs`).
    pub client_cas: Option<&'a Path>,
    /// Every call must carry `authorization: Bearer JWT`, the JWT signed
    /// (HS256) with the secret in this file and carrying an `exp` claim.
    pub jwt_secret: Option<&'a Path>,
}

/// BuildGrid's server (Execution, Bots, CAS, ActionCache, ByteStream) over
/// its own PostgreSQL cluster.
pub struct BuildGrid {
    pub port: u16,
    dir: PathBuf,
    pg: PathBuf,
    server: Option<Child>,
}

impl BuildGrid {
    /// Start both, BuildGrid's files under `dir` (the cluster in a
    /// directory of its own under the system's temporary directory, where
    /// the postgres user can reach it).
    pub fn start(dir: &Path) -> Result<BuildGrid> {
        BuildGrid::start_with(dir, None)
    }

    /// [`BuildGrid::start`], serving TLS with this certificate and key
    /// (PEM files) when given.
    pub fn start_with(dir: &Path, tls: Option<(&Path, &Path)>) -> Result<BuildGrid> {
        BuildGrid::start_serving(
            dir,
            &Serving {
                tls,
                ..Serving::default()
            },
        )
    }

    /// [`BuildGrid::start`], serving as `serving` says (TLS, client
    /// certificates, bearer tokens).
    pub fn start_serving(dir: &Path, serving: &Serving<'_>) -> Result<BuildGrid> {
        let tls = serving.tls;
        let bgd = bgd()?;
        std::fs::create_dir_all(dir.join("cas")).map_err(|e| e.to_string())?;
        let pg_dir =
            std::env::temp_dir().join(format!("cas-pg-{}-{}", std::process::id(), free_port()?));
        std::fs::create_dir_all(&pg_dir).map_err(|e| e.to_string())?;
        if is_root() {
            let mut c = Command::new("chown");
            c.args(["postgres", s(&pg_dir)]);
            run(c, "chown postgres")?;
        }
        let mut bg = BuildGrid {
            port: free_port()?,
            dir: dir.to_path_buf(),
            pg: pg_dir.clone(),
            server: None,
        };
        let data = pg_dir.join("data");
        let mut c = pg("initdb")?;
        c.args(["-D", s(&data), "-A", "trust", "-U", "bgd", "--no-sync"]);
        run(c, "initdb")?;
        let pg_port = free_port()?;
        let mut c = pg("pg_ctl")?;
        c.args(["-D", s(&data), "-l"])
            .arg(pg_dir.join("postgres.log"))
            .args(["-w", "-o"])
            .arg(format!(
                "-k {} -p {pg_port} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
                pg_dir.display()
            ))
            .arg("start");
        run(c, "pg_ctl start")?;
        let mut c = pg("createdb")?;
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg_port.to_string(),
            "-U",
            "bgd",
            "bgd",
        ]);
        run(c, "createdb")?;
        // psycopg2, named: BuildGrid's notifier polls psycopg2 connections,
        // and SQLAlchemy 2.1 picks psycopg 3 for a plain postgresql://.
        let db = format!("postgresql+psycopg2://bgd@127.0.0.1:{pg_port}/bgd");
        let mut c = Command::new(&bgd);
        c.args(["migrate", "apply", &db]);
        run(c, "bgd migrate apply")?;
        std::fs::write(
            dir.join("bgd.yml"),
            format!(
                "server:\n  - !channel\n    address: \"127.0.0.1:{port}\"\n{channel}\
                 {authorization}\
                 connections:\n  - !sql-connection &sql\n    connection-string: {db}\n    pool-size: 10\n    max-overflow: 10\n\
                 storages:\n  - !disk-storage &storage\n    path: {cas}\n\
                 caches:\n  - !lru-action-cache &cache\n    storage: *storage\n    max-cached-refs: 100000\n    allow-updates: true\n    cache-failed-actions: false\n\
                 schedulers:\n  - !sql-scheduler &scheduler\n    sql: *sql\n    storage: *storage\n    action-cache: *cache\n\
                 \x20   bot-session-keepalive-timeout: 8\n    session-expiry-timer-interval: 1\n    poll-interval: 0.1\n    bot-poll-interval: 0.1\n\
                 \x20   property-set: !dynamic-property-set\n      match-property-keys: [OSFamily, ISA]\n      wildcard-property-keys: []\n\
                 \x20   assigners:\n      - !priority-age-assigner\n        count: 1\n        interval: 0.05\n        jitter-factor: 0.02\n\
                 instances:\n  - name: ''\n    services:\n      - !action-cache\n        cache: *cache\n      - !execution\n        scheduler: *scheduler\n      - !cas\n        storage: *storage\n      - !bytestream\n        storage: *storage\n\
                 thread-pool-size: 50\n",
                port = bg.port,
                channel = match tls {
                    None => "    insecure-mode: true\n".to_string(),
                    Some((cert, key)) => format!(
                        "    insecure-mode: false\n    credentials:\n      tls-server-key: {}\n      tls-server-cert: {}\n{}",
                        key.display(),
                        cert.display(),
                        serving.client_cas.map_or(String::new(), |ca| format!(
                            "      tls-client-certs: {}\n",
                            ca.display()
                        ))
                    ),
                },
                authorization = match serving.jwt_secret {
                    None => "authorization:\n  method: none\n".to_string(),
                    Some(secret) => format!(
                        "authorization:\n  method: jwt\n  algorithm: hs256\n  secret: {}\n",
                        secret.display()
                    ),
                },
                cas = dir.join("cas").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        bg.start_server()?;
        Ok(bg)
    }

    fn start_server(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("bgd.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new(bgd()?)
            .args(["server", "start"])
            .arg(self.dir.join("bgd.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start bgd: {e}"))?;
        self.server = Some(child);
        wait_for_port(self.port, "BuildGrid", &self.dir.join("bgd.log"))
    }

    /// Kill the server (SIGKILL) and start it again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.start_server()
    }

    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }
}

impl Drop for BuildGrid {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(mut c) = pg("pg_ctl") {
            let _ = c
                .args(["-D", s(&self.pg.join("data")), "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.pg);
    }
}
