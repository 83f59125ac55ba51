//! `cas deb lock`: pin a Debian package set as `deb` sources of an element
//! (spec/debian.md). It reads the suite's `Release` through a project alias
//! (and the user's mirrors), fetches the `Packages` index it lists and
//! checks it against the Release's SHA-256, resolves the
//! `Depends`/`Pre-Depends` closure of the requested packages (cas-debian),
//! and writes the element: one pinned `deb` source per package, sorted by
//! name. The request is recorded in the file, so running the command again
//! on the file alone re-resolves it against the current index.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cas_builder::sources::{Algorithm, Fetcher, SourceUrl};
use cas_debian::{Packages, Release, Request};

use crate::commands::fetch::Out;
use crate::commands::session::Session;
use crate::commands::source::fetcher;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DebCommand {
    /// Resolve packages' dependency closure in a suite's index and pin it as an element's deb sources
    Lock(LockArgs),
}

/// The request as recorded in the element file (and read back from it).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Spec {
    /// The project alias of the Debian archive (its base URL is the archive root, with `dists/` and `pool/`) [required unless recorded]
    #[arg(long, value_name = "ALIAS")]
    pub alias: Option<String>,
    /// The suite (codename)
    #[arg(long, default_value = "bookworm")]
    pub suite: String,
    /// Components to read, in order
    #[arg(long = "component", value_name = "NAME", default_values_t = vec!["main".to_string()])]
    pub components: Vec<String>,
    /// Debian architecture [default: this machine's]
    #[arg(long)]
    pub arch: Option<String>,
    /// Also every package marked Essential: yes
    #[arg(long)]
    pub essential: bool,
    /// Pin only the named packages, not their dependencies
    #[arg(long)]
    pub no_deps: bool,
    /// The element's kind
    #[arg(long, default_value = "import")]
    pub kind: String,
    /// Write plain deb sources, without `dpkg-database: true` (no dpkg status)
    #[arg(long)]
    pub no_database: bool,
    /// Packages (`name`, `name=version`, or a relation like `name (>= 1.2)`) [default: those recorded in ELEMENT]
    pub packages: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LockArgs {
    /// The element file to write (created, or rewritten as a whole)
    pub element: PathBuf,
    #[command(flatten)]
    pub spec: Spec,
}

const RECORD: &str = "# cas-deb-lock:";

pub(crate) fn run(global: &Session, cmd: DebCommand) -> CmdResult {
    match cmd {
        DebCommand::Lock(args) => lock(global, args),
    }
}

/// This machine's Debian architecture name.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._=:/".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Spec {
    fn args(&self, arch: &str) -> Vec<String> {
        let mut a = vec![
            "--alias".to_owned(),
            self.alias.clone().unwrap_or_default(),
            "--suite".to_owned(),
            self.suite.clone(),
        ];
        for c in &self.components {
            a.extend(["--component".to_owned(), c.clone()]);
        }
        a.extend(["--arch".to_owned(), arch.to_owned()]);
        if self.essential {
            a.push("--essential".into());
        }
        if self.no_deps {
            a.push("--no-deps".into());
        }
        if self.kind != "import" {
            a.extend(["--kind".to_owned(), self.kind.clone()]);
        }
        if self.no_database {
            a.push("--no-database".into());
        }
        a.push("--".into());
        a.extend(self.packages.iter().cloned());
        a
    }
}

/// Split a recorded command line (words, single quotes).
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if !quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The request recorded in an existing element file, if any.
fn recorded(path: &Path) -> Result<Option<Spec>, Failure> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let Some(line) = text.lines().find_map(|l| l.strip_prefix(RECORD)) else {
        return Ok(None);
    };
    #[derive(clap::Parser)]
    struct Recorded {
        #[command(flatten)]
        spec: Spec,
    }
    let mut words = vec!["cas-deb-lock".to_owned()];
    words.extend(split_words(line));
    use clap::Parser;
    Recorded::try_parse_from(words)
        .map(|r| Some(r.spec))
        .map_err(|e| {
            Failure::invalid(miette::miette!(
                "{}: the recorded request (`{RECORD}` line) cannot be read: {e}",
                path.display()
            ))
        })
}

fn url(project: &cas_format::Project, alias: &str, rest: &str) -> Result<SourceUrl, Failure> {
    let Some(base) = project.aliases.get(alias) else {
        let known: Vec<&str> = project.aliases.keys().map(String::as_str).collect();
        return Err(Failure::invalid(miette::miette!(
            help = if known.is_empty() {
                "add it under `aliases:` in project.yaml (the archive root, ending in /)"
                    .to_string()
            } else {
                format!("aliases of this project: {}", known.join(", "))
            },
            "no alias `{alias}` in the project"
        )));
    };
    Ok(SourceUrl {
        written: format!("{alias}:{rest}"),
        alias: Some(alias.to_owned()),
        resolved: if base.is_empty() {
            String::new()
        } else {
            format!("{base}{rest}")
        },
    })
}

fn download(fetcher: &Fetcher, out: &Out, u: &SourceUrl) -> Result<Vec<u8>, Failure> {
    let bar = out.bar(&u.written);
    let d = fetcher.fetch_unverified(u, Algorithm::Sha256, &bar);
    bar.finish_and_clear();
    let d = d.map_err(Failure::error)?;
    std::fs::read(d.path()).map_err(|e| {
        Failure::failed(miette::miette!(
            "cannot read the download of {}: {e}",
            u.written
        ))
    })
}

/// A suite of the archive behind a project alias.
struct Suite<'a> {
    fetcher: &'a Fetcher,
    out: &'a Out,
    project: &'a cas_format::Project,
    alias: &'a str,
    codename: &'a str,
}

impl Suite<'_> {
    fn get(&self, rel: &str) -> Result<(SourceUrl, Vec<u8>), Failure> {
        let u = url(
            self.project,
            self.alias,
            &format!("dists/{}/{rel}", self.codename),
        )?;
        let data = download(self.fetcher, self.out, &u)?;
        Ok((u, data))
    }

    /// The suite's Release file.
    fn release(&self) -> Result<Release, Failure> {
        let (u, data) = self.get("Release")?;
        let text = String::from_utf8(data)
            .map_err(|_| Failure::failed(miette::miette!("{}: not UTF-8 text", u.written)))?;
        Release::parse(&u.written, &text).map_err(Failure::error)
    }

    /// One component's Packages index: the first of Packages.xz, .gz,
    /// plain that the Release lists, checked against it.
    fn packages(
        &self,
        release: &Release,
        component: &str,
        arch: &str,
    ) -> Result<Packages, Failure> {
        for ext in [".xz", ".gz", ""] {
            let rel = format!("{component}/binary-{arch}/Packages{ext}");
            if !release.lists(&rel) {
                continue;
            }
            let (u, data) = self.get(&rel)?;
            release.verify(&rel, &data).map_err(Failure::error)?;
            let mut text = String::new();
            cas_builder::sources::decompress(data.as_slice())
                .and_then(|mut r| r.read_to_string(&mut text))
                .map_err(|e| {
                    Failure::failed(miette::miette!("{}: cannot decompress: {e}", u.written))
                })?;
            return Packages::parse(&u.written, &text).map_err(Failure::error);
        }
        Err(Failure::failed(miette::miette!(
            "{}:dists/{}/Release lists no Packages index for {component}/binary-{arch}",
            self.alias,
            self.codename
        )))
    }
}

fn lock(global: &Session, args: LockArgs) -> CmdResult {
    let mut spec = args.spec;
    if spec.packages.is_empty() {
        match recorded(&args.element)? {
            Some(r) => spec = r,
            None => {
                return Err(Failure::invalid(miette::miette!(
                    help = "name the packages: cas deb lock ELEMENT --alias ALIAS PACKAGE...",
                    "no packages given, and {} records no request",
                    args.element.display()
                )))
            }
        }
    }
    let Some(alias) = spec.alias.clone().filter(|a| !a.is_empty()) else {
        return Err(Failure::invalid(miette::miette!(
            help = "--alias names the project alias of the Debian archive root",
            "--alias is required"
        )));
    };
    let arch = spec.arch.clone().unwrap_or_else(|| host_arch().to_owned());
    let dir = args
        .element
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Failure::invalid(miette::miette!(
            "{}: no such directory",
            dir.display()
        )));
    }
    let project = cas_format::load_project(dir).map_err(|diags| {
        for e in &diags.errors {
            eprintln!("{:?}", miette::Report::new(e.clone()));
        }
        Failure::Silent(2)
    })?;
    let store = global.store()?;
    let fetcher = fetcher(&store, &global.mirrors(&project)?)?;
    let out = Out::new();
    let suite = Suite {
        fetcher: &fetcher,
        out: &out,
        project: &project,
        alias: &alias,
        codename: &spec.suite,
    };
    let release = suite.release()?;
    let mut index = Packages::default();
    for c in &spec.components {
        index.extend(suite.packages(&release, c, &arch)?);
    }
    let request = Request {
        packages: spec.packages.clone(),
        essential: spec.essential,
        no_deps: spec.no_deps,
    };
    let resolution = cas_debian::resolve(&index, &request).map_err(Failure::error)?;
    for c in &resolution.choices {
        eprintln!("note: {c}");
    }
    let mut text = String::new();
    let total: u64 = resolution.packages.iter().map(|p| p.size).sum();
    text.push_str(&format!(
        "# Pinned by `cas deb lock`: {} packages ({:.1} MiB) of {} ({arch}) from the alias `{alias}`.\n",
        resolution.packages.len(),
        total as f64 / (1024.0 * 1024.0),
        spec.suite
    ));
    text.push_str(&format!(
        "# Generated: edit the request below, then run `cas deb lock {}` again.\n",
        args.element.display()
    ));
    let words: Vec<String> = spec.args(&arch).iter().map(|w| quote(w)).collect();
    text.push_str(&format!("{RECORD} {}\n", words.join(" ")));
    text.push_str(&format!("kind: {}\nsources:\n", spec.kind));
    for p in &resolution.packages {
        text.push_str(&format!(
            "# {} {}\n- kind: deb\n  url: {alias}:{}\n  sha256: {}\n",
            p.name, p.version_text, p.filename, p.sha256
        ));
        if !spec.no_database {
            text.push_str("  dpkg-database: true\n");
        }
    }
    let tmp = args.element.with_extension("yaml.tmp");
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, &args.element))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Failure::failed(miette::miette!(
                "cannot write {}: {e}",
                args.element.display()
            ))
        })?;
    if global.json {
        let rows: Vec<serde_json::Value> = resolution
            .packages
            .iter()
            .map(|p| serde_json::json!({"package": p.name, "version": p.version_text, "filename": p.filename, "sha256": p.sha256}))
            .collect();
        crate::json::print(
            &serde_json::json!({"element": args.element, "packages": rows, "choices": resolution.choices}),
        )?;
    } else {
        println!(
            "{}: {} packages pinned ({:.1} MiB)",
            args.element.display(),
            resolution.packages.len(),
            total as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(ExitCode::SUCCESS)
}
