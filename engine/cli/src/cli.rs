//! Argument definitions (clap). Global options apply to every subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cas",
    version,
    about = "A declarative, content-addressed build engine"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parse the command line; a bad flag exits with code 2 (clap's usage error code).
    pub(crate) fn parse_or_exit() -> Self {
        <Self as Parser>::parse_from(output_flag(std::env::args_os().collect()))
    }
}

/// `-o FILE` after `sbom` or `attest` is their `--output FILE` (the
/// global `-o NAME VALUE` is `--option`, which they accept as well).
fn output_flag(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    // the subcommand: the first word that is neither an option nor the
    // value of a global option
    let mut at = None;
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        match a.as_ref() {
            "--store" | "-j" | "--jobs" | "--config" | "--color" | "--arch" => i += 2,
            "-o" | "--option" => i += 3,
            s if s.starts_with('-') => i += 1,
            s => {
                if s == "sbom" || s == "attest" {
                    at = Some(i);
                }
                break;
            }
        }
    }
    let Some(at) = at else {
        return args;
    };
    for a in &mut args[at + 1..] {
        if a == "--" {
            break;
        }
        if a == "-o" {
            *a = "--output".into();
        } else if let Some(rest) = a.to_str().and_then(|s| s.strip_prefix("-o")) {
            if !rest.is_empty() && !rest.starts_with('-') {
                *a = format!("--output={rest}").into();
            }
        }
    }
    args
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (it is the number of steps run at once)".into()),
        Ok(n) if n > 4096 => Err(format!("{n} is more than 4096 steps at once")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// The content store [default: the user's cache directory, e.g. ~/.cache/cas]
    #[arg(long, global = true, env = "CAS_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Steps to run at once, at least 1 [default: the number of cores]
    #[arg(short = 'j', long, global = true, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// The user configuration file (mirrors, remotes) [default: ~/.config/cas/config.yaml]
    #[arg(long, global = true, env = "CAS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Set a BuildStream project option (project.conf `options:`); repeatable
    #[arg(short = 'o', long = "option", global = true, num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub option: Vec<String>,
    /// Colour in build output: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    /// Build for this architecture (`%{target-arch}`, every element's default `build-arch`) [default: the user configuration's `arch`, else this machine's]
    #[arg(long, global = true, env = "CAS_ARCH", value_name = "ARCH", value_parser = parse_arch)]
    pub arch: Option<String>,
}

/// An architecture name as cas spells them (`x86_64`, `aarch64`, ...).
fn parse_arch(s: &str) -> Result<String, String> {
    if cas_format::config::is_arch_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not an architecture name (like x86_64, aarch64, armv7, riscv64)"
        ))
    }
}

impl Global {
    pub(crate) fn store_dir(&self) -> PathBuf {
        if let Some(dir) = &self.store {
            return dir.clone();
        }
        if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("cas");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        PathBuf::from(home).join(".cache").join("cas")
    }

    /// `-o NAME VALUE` pairs, in the order given.
    pub(crate) fn options(&self) -> Vec<(String, String)> {
        self.option
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }

    /// `--color` as the console takes it.
    pub(crate) fn color(&self) -> cas_builder::ColorChoice {
        match self.color.as_str() {
            "always" => cas_builder::ColorChoice::Always,
            "never" => cas_builder::ColorChoice::Never,
            _ => cas_builder::ColorChoice::Auto,
        }
    }

    pub(crate) fn jobs(&self) -> usize {
        self.jobs.filter(|&n| n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        })
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Low-level content store operations
    #[command(subcommand)]
    Store(crate::commands::store::StoreCommand),
    /// Show the elements of a closure: kind, dependencies, key and state
    Show(crate::commands::show::ShowArgs),
    /// Print the dependency graph in Graphviz DOT
    Graph(crate::commands::graph::GraphArgs),
    /// Build elements and everything below them
    Build(crate::commands::build::BuildArgs),
    /// Write an element's output as plain files into a directory
    Checkout(crate::commands::checkout::CheckoutArgs),
    /// Print the build log of an element's cached result
    Log(crate::commands::log::LogArgs),
    /// An interactive shell in an element's sandbox (or the last failed build's)
    Shell(crate::commands::shell::Args),
    /// Fetch every source of the closure into the source cache
    Fetch(crate::commands::fetch::FetchArgs),
    /// Source maintenance: track, add
    #[command(subcommand)]
    Source(crate::commands::source::SourceCommand),
    /// Edit an element's sources in place: open, list, reset, close
    #[command(subcommand)]
    Workspace(crate::commands::workspace::WorkspaceCommand),
    /// Debian packages: pin a package set's closure as deb sources
    #[command(subcommand)]
    Deb(crate::commands::deb::DebCommand),
    /// Upload elements' results to a remote cache
    Push(crate::commands::push::PushArgs),
    /// Download elements' results from a remote cache
    Pull(crate::commands::pull::PullArgs),
    /// Write an ed25519 key pair for signing action results
    Keygen(crate::commands::keygen::KeygenArgs),
    /// Rebuild and compare outputs: is the build reproducible?
    Check(crate::commands::check::CheckArgs),
    /// Compare two outputs down to files and ELF sections
    Diff(crate::commands::diff::DiffArgs),
    /// Which element put each path into a built tree (through composes and filters)
    Owns(crate::commands::owns::OwnsArgs),
    /// Why did an element's key change?
    Explain(crate::commands::explain::ExplainArgs),
    /// Compare local outputs with a remote's
    Challenge(crate::commands::challenge::ChallengeArgs),
    /// Run actions for a REAPI scheduler (BuildGrid's Remote Workers API)
    Worker(crate::commands::worker::WorkerArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell)
    Completions(crate::commands::help::CompletionsArgs),
    /// Print cas's manual page (roff: `cas man | man -l -`)
    Man,
    /// Every path by which one element depends on another (build, depends, runtime edges)
    WhyDepends(crate::commands::why::WhyArgs),
    /// The settings in effect (store, configuration, arch, jobs, remotes, mirrors) and where each came from
    Config,
    /// Start a project: project.yaml, a busybox base and a first element that builds
    Init(crate::commands::setup::InitArgs),
    /// The software bill of materials of a built element (SPDX 2.3 or CycloneDX 1.6 JSON)
    Sbom(crate::commands::sbom::SbomArgs),
    /// The licence manifest, licence texts and corresponding sources of a built element
    LegalInfo(crate::commands::legal_info::LegalInfoArgs),
    /// Signed SLSA provenance of a built element (in-toto statement in a DSSE envelope)
    Attest(crate::commands::attest::AttestArgs),
    /// Check an attestation's signature and its subjects against the store or a checkout
    VerifyAttestation(crate::commands::attest::VerifyArgs),
}

impl Cli {
    /// The clap command, for completions and the manual page.
    pub(crate) fn command() -> clap::Command {
        <Self as clap::CommandFactory>::command()
    }
}
