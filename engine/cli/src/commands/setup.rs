//! `cas config`: the settings in effect and where each came from; `cas
//! init`: a new project with a first element that builds on this machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

/// Where a setting came from.
fn source_of(flag: bool, env: &str) -> String {
    if flag {
        "command line".into()
    } else if std::env::var_os(env).is_some_and(|v| !v.is_empty()) {
        format!("environment ({env})")
    } else {
        "default".into()
    }
}

pub(crate) fn config(global: &Session) -> CmdResult {
    // `--store`/`--config` and their variables arrive in the same field
    // (clap's `env`): tell them apart by the variable
    let given = |env: &str, value: bool| value && std::env::var_os(env).is_none();
    let store = global.store_dir();
    let store_from = source_of(given("CAS_STORE", global.store.is_some()), "CAS_STORE");
    let config_path = global
        .config
        .clone()
        .or_else(cas_format::config::default_path);
    let config_from = source_of(given("CAS_CONFIG", global.config.is_some()), "CAS_CONFIG");
    let config_exists = config_path.as_deref().is_some_and(Path::exists);
    let user = global.config()?;
    let arch = global.target_arch()?;
    let arch_from = if global.arch.is_some() {
        source_of(std::env::var_os("CAS_ARCH").is_none(), "CAS_ARCH")
    } else if user.arch.is_some() {
        "user configuration".into()
    } else {
        "this machine".into()
    };
    let arch = arch.unwrap_or_else(|| cas_format::host_arch().to_string());
    let jobs_from = if global.jobs.is_some() {
        "command line"
    } else {
        "the number of cores"
    };
    let env = |name: &str| std::env::var(name).ok();
    let remote_budget = env("CAS_REMOTE_TIMEOUT").unwrap_or_else(|| "10".into());
    if global.json {
        crate::json::print(&serde_json::json!({
            "store": {"value": store, "from": store_from},
            "config": {"value": config_path, "from": config_from, "exists": config_exists},
            "arch": {"value": arch, "from": arch_from},
            "jobs": {"value": global.jobs(), "from": jobs_from},
            "remotes": user.remotes.iter().map(|r| serde_json::json!({
                "url": r.url, "push": r.push, "trusted_keys": r.trusted_keys.len(),
                "trust_unsigned": r.trust_unsigned,
                "headers": r.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                "tls_ca": r.tls.ca.as_ref().map(|f| &f.path),
                "tls_client_cert": r.tls.client.as_ref().map(|(c, _)| &c.path),
                "tls_client_key": r.tls.client.as_ref().map(|(_, k)| &k.path),
            })).collect::<Vec<_>>(),
            "mirrors": user.mirrors,
            "signing_key": user.signing_key,
            "remote_timeout_seconds": remote_budget,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("store         {}  ({store_from})", store.display());
    match &config_path {
        Some(p) => println!(
            "config        {}  ({config_from}{})",
            p.display(),
            if config_exists {
                ""
            } else {
                "; no such file: nothing configured"
            }
        ),
        None => println!("config        none  (no HOME)"),
    }
    println!("arch          {arch}  ({arch_from})");
    println!("jobs          {}  ({jobs_from})", global.jobs());
    for r in &user.remotes {
        // header values may be secrets: their names only
        let headers: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        let mut tls = String::new();
        if let Some(ca) = &r.tls.ca {
            tls.push_str(&format!(", tls-ca {}", ca.path.display()));
        }
        if let Some((cert, key)) = &r.tls.client {
            tls.push_str(&format!(
                ", tls-client-cert {}, tls-client-key {}",
                cert.path.display(),
                key.path.display()
            ));
        }
        println!(
            "remote        {}{}{}{}{tls}  (user configuration)",
            r.url,
            if r.push { ", push" } else { "" },
            if r.trust_unsigned {
                ", trusts unsigned results"
            } else {
                ""
            },
            if headers.is_empty() {
                String::new()
            } else {
                format!(", headers {}", headers.join(" "))
            }
        );
    }
    for (alias, urls) in &user.mirrors {
        println!(
            "mirror        {alias}: {}  (user configuration)",
            urls.join(", ")
        );
    }
    if let Some(k) = &user.signing_key {
        println!("signing key   {}  (user configuration)", k.display());
    }
    println!(
        "remote wait   {remote_budget} s per remote  ({})",
        source_of(false, "CAS_REMOTE_TIMEOUT")
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The project's directory (created if missing; must hold no project yet)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The project's name [default: the directory's name]
    #[arg(long)]
    pub name: Option<String>,
}

/// A static busybox to base the first element on, if this machine has one.
fn static_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            std::fs::read(p).is_ok_and(|b| {
                // a static executable has no PT_INTERP: no loader named in it
                b.starts_with(b"\x7fELF") && !b.windows(12).any(|w| w == b"/ld-linux-x")
            })
        })
}

pub(crate) fn init(global: &Session, args: &InitArgs) -> CmdResult {
    let failed = |what: &str, p: &Path, e: std::io::Error| {
        Failure::failed(miette::miette!("cannot {what} {}: {e}", p.display()))
    };
    let dir = &args.dir;
    for existing in ["project.yaml", "project.conf"] {
        if dir.join(existing).exists() {
            return Err(Failure::invalid(miette::miette!(
                help = "cas init starts a project; this directory already is one",
                "{} exists",
                dir.join(existing).display()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| failed("create", dir, e))?;
    let name = args.name.clone().unwrap_or_else(|| {
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "project".into())
    });
    let Some(busybox) = static_busybox() else {
        return Err(Failure::failed(miette::miette!(
            help = "install one (apt-get install busybox-static), then run cas init again",
            "the first element needs a base with a shell, and this machine has no static busybox"
        )));
    };
    let bin = dir.join("files/base/bin");
    std::fs::create_dir_all(&bin).map_err(|e| failed("create", &bin, e))?;
    std::fs::create_dir_all(dir.join("elements"))
        .map_err(|e| failed("create", &dir.join("elements"), e))?;
    std::fs::copy(&busybox, bin.join("busybox"))
        .map_err(|e| failed("copy busybox into", &bin, e))?;
    for applet in ["sh", "mkdir", "echo", "cat", "cp", "ls"] {
        let link = bin.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link).map_err(|e| failed("create", &link, e))?;
        }
    }
    let write = |rel: &str, text: String| {
        let p = dir.join(rel);
        std::fs::write(&p, text).map_err(|e| failed("write", &p, e))
    };
    write(
        "project.yaml",
        format!(
            "# The project (spec/format.md). Element names are paths under elements/.\nname: {name}\nelement-path: elements\n"
        ),
    )?;
    write(
        "elements/base.yaml",
        "# A minimal base: this machine's static busybox as /bin (sh and a few applets).\n\
         kind: import\nsources:\n  - kind: local\n    path: files/base\n"
            .into(),
    )?;
    write(
        "elements/hello.yaml",
        "# A first element: its commands run in a sandbox whose / is base.yaml's output.\n\
         kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n\
         \x20   - mkdir -p %{install-root}%{datadir}/hello\n\
         \x20   - echo 'Hello from cas' > %{install-root}%{datadir}/hello/greeting\n"
            .into(),
    )?;
    if global.json {
        crate::json::print(
            &serde_json::json!({"project": name, "dir": dir, "elements": ["base.yaml", "hello.yaml"]}),
        )?;
    } else {
        println!("created the project {name} in {}:", dir.display());
        println!("  project.yaml, elements/base.yaml (busybox), elements/hello.yaml");
        println!(
            "build it with: cd {} && cas build hello.yaml",
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
