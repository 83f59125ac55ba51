//! `cas attest TARGET --signing-key KEY [-o FILE]`: the SLSA provenance of
//! a built element as an in-toto statement in a signed DSSE envelope;
//! `cas verify-attestation FILE --trusted-key PUB [TARGET]`: its signature,
//! and its subjects against the store or a checkout (crate cas-sbom,
//! spec/sbom.md).

use std::path::PathBuf;
use std::process::ExitCode;

use cas_store::remote::PublicKey;

use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct AttestArgs {
    /// The element (built, with everything below it)
    pub target: PathBuf,
    /// The secret key (`cas keygen`) [default: the configuration's signing-key]
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,
    /// Write the envelope to FILE instead of standard output (`-o FILE` too; `-`: standard output)
    #[arg(long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The DSSE envelope (`cas attest`)
    pub file: PathBuf,
    /// A public key (hex, base64, or a `.pub` file of `cas keygen`); repeatable
    #[arg(long = "trusted-key", value_name = "PUB", required = true)]
    pub trusted_keys: Vec<String>,
    /// An element (its output in the store) or a directory (a checkout) to check the subjects against
    pub target: Option<PathBuf>,
}

pub(crate) fn run_attest(global: &Session, mut args: AttestArgs) -> CmdResult {
    args.output = args.output.filter(|p| p != std::path::Path::new("-"));
    crate::commands::sbom::check_json_output(global, args.output.as_deref(), "attest")?;
    let key_path = match &args.signing_key {
        Some(p) => p.clone(),
        None => global.config()?.signing_key.clone().ok_or_else(|| {
            Failure::invalid(miette::miette!(
                help = "make one with `cas keygen`",
                "cas attest needs --signing-key KEY (or `signing-key:` in the configuration)"
            ))
        })?,
    };
    let key = cas_store::remote::read_signing_key(&key_path).map_err(Failure::invalid_error)?;
    let (closure, store) = crate::commands::sbom::closure(global, &args.target, false)?;
    let files = cas_sbom::files::files(&store, &closure).map_err(Failure::error)?;
    let statement = cas_sbom::attest::statement(&closure, &files, &key.public());
    let envelope = cas_sbom::attest::envelope(&statement, &key);
    crate::commands::sbom::emit(args.output.as_deref(), &cas_sbom::to_bytes(&envelope))?;
    let subjects = cas_sbom::attest::subjects(&statement).len();
    if global.json {
        crate::json::print(&serde_json::json!({
            "target": closure.top().name,
            "key": closure.top().key.to_hex(),
            "file": args.output,
            "subjects": subjects,
            "keyid": cas_sbom::attest::keyid(&key.public()),
            "public_key": key.public().to_string(),
        }))?;
    } else if let Some(out) = &args.output {
        eprintln!(
            "wrote {}: {subjects} subjects, signed by {}",
            out.display(),
            key.public()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_verify(global: &Session, args: VerifyArgs) -> CmdResult {
    let keys: Vec<PublicKey> = args
        .trusted_keys
        .iter()
        .map(|k| PublicKey::parse_or_read(k).map_err(Failure::invalid_error))
        .collect::<Result<_, _>>()?;
    let label = args.file.display().to_string();
    let bytes = std::fs::read(&args.file)
        .map_err(|e| Failure::invalid(miette::miette!("cannot read {label}: {e}")))?;
    let fail = Failure::error::<cas_sbom::SbomError>;
    let statement = cas_sbom::attest::open(&label, &bytes, &keys).map_err(fail)?;
    let subjects = cas_sbom::attest::subjects(&statement);
    let predicate = &statement["predicate"];
    let element = predicate["buildDefinition"]["externalParameters"]["element"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // against a checkout, an element of the project, or the store's result of the attested key
    let (against, problems) = match &args.target {
        Some(dir) if dir.is_dir() => (
            dir.display().to_string(),
            cas_sbom::attest::mismatches_in_dir(&global.store()?, dir, &statement).map_err(fail)?,
        ),
        Some(target) => {
            let loaded = load_or_report(global, std::slice::from_ref(target))?;
            let store = global.store()?;
            let plan = cas_builder::states(
                &store,
                &loaded,
                &loaded.targets,
                &global.mirrors(&loaded.project)?,
                cas_builder::record::Lookup::Look,
            )
            .map_err(Failure::error)?;
            let name = loaded.element(loaded.targets[0]).name.clone();
            let Some(output) = plan
                .iter()
                .find(|p| p.id == loaded.targets[0])
                .and_then(|p| p.output)
            else {
                return Err(Failure::failed(miette::miette!(
                    help = format!("run `cas build {name}` first"),
                    "{name} is not built"
                )));
            };
            (
                name,
                cas_sbom::attest::mismatches_in_store(&store, &output, &statement).map_err(fail)?,
            )
        }
        None => {
            let store = global.store()?;
            let key = predicate["buildDefinition"]["internalParameters"]["key"]
                .as_str()
                .and_then(|k| cas_store::Digest::from_hex(k).ok())
                .map(cas_store::ActionKey::from_digest);
            let result = match key {
                Some(k) => store.action_peek(&k).map_err(Failure::error)?,
                None => None,
            };
            match result.filter(|r| store.has_tree(&r.output)) {
                Some(r) => (
                    format!("the store's result of {element}"),
                    cas_sbom::attest::mismatches_in_store(&store, &r.output, &statement)
                        .map_err(fail)?,
                ),
                None => (
                    "the store".to_string(),
                    vec![format!(
                        "the store has no result of the attested key of {element}: name an element or a checkout to verify against"
                    )],
                ),
            }
        }
    };
    if global.json {
        crate::json::print(&serde_json::json!({
            "file": args.file,
            "signature": "verified",
            "element": element,
            "against": against,
            "subjects": subjects.len(),
            "verified": problems.is_empty(),
            "problems": problems,
        }))?;
    } else {
        println!("{label}: signature verified ({element})");
        for p in &problems {
            println!("MISMATCH {p}");
        }
        if problems.is_empty() {
            println!("{} subjects match {against}", subjects.len());
        }
    }
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::Silent(1))
    }
}
