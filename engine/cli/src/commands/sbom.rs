//! `cas sbom TARGET [--format spdx-json|cyclonedx-json] [-o FILE] [--files]`:
//! the software bill of materials of a built element, from what cas
//! recorded (crate cas-sbom, spec/sbom.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// SPDX 2.3, JSON
    #[value(name = "spdx-json")]
    Spdx,
    /// SPDX 3.0.1, JSON-LD
    #[value(name = "spdx3-json")]
    Spdx3,
    /// CycloneDX 1.6, JSON
    #[value(name = "cyclonedx-json")]
    CycloneDx,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SbomArgs {
    /// The element (built, with everything below it)
    pub target: PathBuf,
    /// The document's format
    #[arg(long, value_enum, default_value = "spdx-json")]
    pub format: Format,
    /// Write the document to FILE instead of standard output (`-o FILE` too; `-`: standard output)
    #[arg(long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also list every regular file of the element's output with its SHA-1 and SHA-256
    #[arg(long)]
    pub files: bool,
}

/// The recorded closure of `target` (every element of it built).
pub(crate) fn closure(
    global: &Session,
    target: &Path,
    copyrights: bool,
) -> Result<(cas_sbom::Closure, cas_store::Store), Failure> {
    let loaded = load_or_report(global, &[target.to_path_buf()])?;
    let store = global.store()?;
    let mirrors = global.mirrors(&loaded.project)?;
    let closure = cas_sbom::model::closure(&cas_sbom::model::Inputs {
        store: &store,
        loaded: &loaded,
        target: loaded.targets[0],
        mirrors: &mirrors,
        cas_version: env!("CARGO_PKG_VERSION"),
        copyrights,
    })
    .map_err(|e| match e {
        cas_sbom::SbomError::License { .. } => Failure::invalid_error(e),
        _ => Failure::error(e),
    })?;
    for w in &closure.warnings {
        eprintln!("warning: {w}");
    }
    Ok((closure, store))
}

/// Write `bytes` to `output` (atomically: a temporary file renamed), or
/// to standard output.
pub(crate) fn emit(output: Option<&Path>, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    if let Some(path) = output {
        // beside it, then renamed: a reader never sees half a document
        let name = path.file_name().map_or_else(
            || std::ffi::OsString::from("document"),
            std::ffi::OsStr::to_os_string,
        );
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(&name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let fail = |e: std::io::Error| {
            Failure::failed(miette::miette!("cannot write {}: {e}", path.display()))
        };
        std::fs::write(&tmp, bytes).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|e| Failure::failed(miette::miette!("cannot write: {e}")))?;
    }
    Ok(())
}

/// `--json` prints a summary on stdout: the document must go to a file.
pub(crate) fn check_json_output(
    global: &Session,
    output: Option<&Path>,
    what: &str,
) -> Result<(), Failure> {
    if global.json && output.is_none() {
        return Err(Failure::invalid(miette::miette!(
            help = "without --json the document itself is printed on standard output",
            "--json: cas {what} prints a summary; give the document's file with -o FILE"
        )));
    }
    Ok(())
}

pub(crate) fn run(global: &Session, mut args: SbomArgs) -> CmdResult {
    args.output = args.output.filter(|p| p != Path::new("-"));
    check_json_output(global, args.output.as_deref(), "sbom")?;
    let (closure, store) = closure(global, &args.target, true)?;
    let files = if args.files {
        Some(cas_sbom::files::files(&store, &closure).map_err(Failure::error)?)
    } else {
        None
    };
    let doc = match args.format {
        Format::Spdx => cas_sbom::spdx::document(&closure, files.as_deref()),
        Format::Spdx3 => cas_sbom::spdx3::document(&closure, files.as_deref()),
        Format::CycloneDx => cas_sbom::cyclonedx::document(&closure, files.as_deref()),
    };
    emit(args.output.as_deref(), &cas_sbom::to_bytes(&doc))?;
    let debs = closure.upstreams.iter().filter(|u| u.deb.is_some()).count();
    if global.json {
        crate::json::print(&serde_json::json!({
            "target": closure.top().name,
            "key": closure.top().key.to_hex(),
            "format": match args.format { Format::Spdx => "spdx-json", Format::Spdx3 => "spdx3-json", Format::CycloneDx => "cyclonedx-json" },
            "file": args.output,
            "elements": closure.elements.len(),
            "upstreams": closure.upstreams.len(),
            "debian_packages": debs,
            "files": files.as_ref().map_or(0, Vec::len),
        }))?;
    } else if let Some(out) = &args.output {
        eprintln!(
            "wrote {}: {} elements, {} sources ({debs} Debian packages){}",
            out.display(),
            closure.elements.len(),
            closure.upstreams.len(),
            files
                .as_ref()
                .map(|f| match f.len() {
                    1 => ", 1 file".to_string(),
                    n => format!(", {n} files"),
                })
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
