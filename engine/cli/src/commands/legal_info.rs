//! `cas legal-info TARGET DIR`: the licence manifest, the licence texts and
//! every source exactly as fetched, with their checksums (Buildroot's
//! `make legal-info`; crate cas-sbom, spec/sbom.md).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct LegalInfoArgs {
    /// The element (built, with everything below it)
    pub target: PathBuf,
    /// Where to write (created; it must be new or empty)
    pub dir: PathBuf,
}

pub(crate) fn run(global: &Session, args: LegalInfoArgs) -> CmdResult {
    let (closure, _store) = crate::commands::sbom::closure(global, &args.target, true)?;
    let report = cas_sbom::legal::write_legal_info(&closure, &args.dir, &closure.top().name)
        .map_err(|e| match e {
            cas_sbom::SbomError::NotEmpty(_) => Failure::invalid_error(e),
            _ => Failure::error(e),
        })?;
    if global.json {
        crate::json::print(&serde_json::json!({
            "target": closure.top().name,
            "dir": args.dir,
            "packages": report.packages,
            "sources": report.sources,
            "licenses": report.licenses,
        }))?;
    } else {
        println!(
            "{}: {} packages, {} sources, {} licence texts in {}",
            closure.top().name,
            report.packages,
            report.sources,
            report.licenses,
            args.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
