//! What a product team ships beside its image (#34): `cas sbom` (SPDX 2.3
//! and CycloneDX 1.6 JSON), `cas legal-info`, `cas attest` and `cas
//! verify-attestation`, checked with the reference tools: spdx-tools
//! (`pyspdxtools -i`), ntia-conformance-checker, cyclonedx-python-lib's
//! schema validator and securesystemslib's DSSE verification, from the venv
//! scripts/install-deps.sh makes in /opt/cas-test/sbom-tools (like
//! BuildGrid's: a test that needs it fails, naming the script, when it is
//! absent).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::ctx::{busybox_project, Ctx};
use crate::sources::{deb_of, sh, sha256, tarball, Server};
use crate::systems::DebianSystem;

/// The venv of the reference tools: `CAS_SBOM_TOOLS`, or where
/// scripts/install-deps.sh puts it.
fn tools() -> PathBuf {
    let venv = std::env::var_os("CAS_SBOM_TOOLS")
        .map_or_else(|| PathBuf::from("/opt/cas-test/sbom-tools"), PathBuf::from);
    assert!(
        venv.join("bin/pyspdxtools").exists() && venv.join("bin/ntia-checker").exists(),
        "{} is missing the SBOM reference tools: run scripts/install-deps.sh (a venv with scripts/sbom-tools-requirements.txt) or set CAS_SBOM_TOOLS",
        venv.display()
    );
    venv
}

/// What the reference tools check, as one Python script:
/// `cdx FILE` (CycloneDX 1.6 schema), `spdx3 FILE` (SPDX 3.0.1 JSON-LD read,
/// linked and written again by spdx-python-model, which checks every
/// property's type and cardinality; prints the number of packages),
/// `dsse FILE PUBHEX` (the envelope's
/// signature with securesystemslib, the key id being securesystemslib's
/// default one).
const CHECK: &str = r#"
import json, sys
mode, path = sys.argv[1], sys.argv[2]
if mode == "cdx":
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(path).read())
    if errors:
        print(errors)
        sys.exit(1)
elif mode == "spdx3":
    import io
    from spdx_python_model import v3_0_1 as spdx3
    objects = spdx3.SHACLObjectSet()
    spdx3.JSONLDDeserializer().read(open(path, "rb"), objects)
    missing = objects.link()
    if missing:
        print("unresolved references:", sorted(missing))
        sys.exit(1)
    # encoding checks every property's cardinality
    spdx3.JSONLDSerializer().write(objects, io.BytesIO())
    print(len(list(objects.foreach_type(spdx3.software_Package))))
elif mode == "dsse":
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey
    from securesystemslib.signer._utils import compute_default_keyid
    keyval = {"public": sys.argv[3]}
    key = SSlibKey(compute_default_keyid("ed25519", "ed25519", keyval), "ed25519", "ed25519", keyval)
    envelope = Envelope.from_dict(json.load(open(path)))
    try:
        accepted = envelope.verify([key], 1)
    except Exception as e:
        print("verification failed:", e)
        sys.exit(1)
    assert key.keyid in accepted
    statement = json.loads(envelope.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    print(len(statement["subject"]))
"#;

/// Run a reference tool; (success, stdout and stderr).
fn tool(program: &str, args: &[&str]) -> (bool, String) {
    let venv = tools();
    let out = Command::new(venv.join("bin").join(program))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn check(mode: &str, file: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["-c", CHECK, mode, file.to_str().unwrap()];
    args.extend(extra);
    tool("python", &args)
}

/// The SPDX document at `file` is valid (pyspdxtools) and conforms to the
/// NTIA minimum elements (ntia-checker).
#[track_caller]
fn assert_spdx_valid(file: &Path) {
    let (ok, out) = tool("pyspdxtools", &["-i", file.to_str().unwrap()]);
    assert!(ok, "pyspdxtools -i {}:\n{out}", file.display());
    let (ok, out) = tool("ntia-checker", &["--file", file.to_str().unwrap()]);
    assert!(
        ok && out.contains("Conformant: True"),
        "ntia-checker {}:\n{out}",
        file.display()
    );
}

/// The SPDX 3.0.1 document at `file` is read by spdx-python-model and
/// conforms to the NTIA minimum elements; its number of packages.
#[track_caller]
fn assert_spdx3_valid(file: &Path) -> usize {
    let (ok, out) = check("spdx3", file, &[]);
    assert!(ok, "SPDX 3.0.1, {}:\n{out}", file.display());
    let (ok, ntia) = tool("ntia-checker", &["-s", "spdx3", file.to_str().unwrap()]);
    assert!(
        ok && ntia.contains("Conformant: True"),
        "ntia-checker -s spdx3 {}:\n{ntia}",
        file.display()
    );
    out.trim().parse().unwrap()
}

#[track_caller]
fn assert_cyclonedx_valid(file: &Path) {
    let (ok, out) = check("cdx", file, &[]);
    assert!(ok, "CycloneDX 1.6 schema, {}:\n{out}", file.display());
}

fn json_file(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// SPDX package name → the package.
fn spdx_packages(doc: &Value) -> Vec<&Value> {
    doc["packages"].as_array().unwrap().iter().collect()
}

fn checksum<'a>(p: &'a Value, alg: &str) -> Option<&'a str> {
    p["checksums"]
        .as_array()?
        .iter()
        .find(|c| c["algorithm"] == alg)?["checksumValue"]
        .as_str()
}

fn purl(p: &Value) -> Option<&str> {
    p["externalRefs"]
        .as_array()?
        .iter()
        .find(|r| r["referenceType"] == "purl")?["referenceLocator"]
        .as_str()
}

/// `(a, type, b)` for every relationship, by package name.
fn relationships(doc: &Value) -> Vec<(String, String, String)> {
    let names: BTreeMap<&str, &str> = spdx_packages(doc)
        .iter()
        .map(|p| (p["SPDXID"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let name = |id: &str| names.get(id).map_or(id.to_string(), |n| (*n).to_string());
    doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                name(r["spdxElementId"].as_str().unwrap()),
                r["relationshipType"].as_str().unwrap().to_string(),
                name(r["relatedSpdxElement"].as_str().unwrap()),
            )
        })
        .collect()
}

fn git_repo(ctx: &Ctx) -> (PathBuf, String) {
    let repo = ctx.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README"), "from git\n").unwrap();
    let git = |args: &[&str]| {
        sh(Command::new("git")
            .current_dir(&repo)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@127.0.0.1",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args))
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "one"]);
    let commit = git(&["rev-parse", "HEAD"]).trim().to_owned();
    (repo, commit)
}

/// A small project with every kind of source and of element an SBOM meets:
/// local, tar (from a server), git, a Debian package with a DEP-5
/// copyright file; an import, manual steps, a stack and a compose.
fn small_project() -> (Ctx, Server, BTreeMap<&'static str, String>) {
    let ctx = busybox_project();
    let server = Server::start();
    crate::sources::project(&ctx, &server);
    let mut sums = BTreeMap::new();
    let tar = tarball(
        &ctx,
        "libz-1.2.3.tar.gz",
        "libz-1.2.3",
        &[("z.h", "int z;\n")],
        "z",
    );
    server.put("/files/libz-1.2.3.tar.gz", tar.clone());
    sums.insert("tar", sha256(&tar, ctx.root()));
    let data = ctx.path("debdata");
    std::fs::create_dir_all(data.join("usr/share/doc/tool")).unwrap();
    std::fs::write(
        data.join("usr/share/doc/tool/copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: tool\n\nFiles: *\nCopyright: 2024 Someone\nLicense: GPL-2+\n\nFiles: lib/*\nCopyright: 2024 Someone\nLicense: Expat or Apache-2.0\n",
    )
    .unwrap();
    std::fs::write(data.join("usr/share/doc/tool/README"), "tool\n").unwrap();
    let pkg = deb_of(&ctx, "tool", &data);
    server.put("/files/tool_1_all.deb", pkg.clone());
    sums.insert("deb", sha256(&pkg, ctx.root()));
    let (repo, commit) = git_repo(&ctx);
    sums.insert("git", commit.clone());
    ctx.write("files/app.c", "int main(void) { return 0; }\n");
    ctx.write(
        "elements/libz.yaml",
        format!(
            "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: tar\n    url: upstream:libz-1.2.3.tar.gz\n    sha256: {}\nconfig:\n  install-commands:\n  - mkdir -p %{{install-root}}/usr/include\n  - cp z.h %{{install-root}}/usr/include/\n",
            sums["tar"]
        ),
    );
    ctx.write(
        "elements/tool.yaml",
        format!(
            "kind: import\nsources:\n  - kind: deb\n    url: upstream:tool_1_all.deb\n    sha256: {}\n",
            sums["deb"]
        ),
    );
    ctx.write(
        "elements/app.yaml",
        format!(
            "kind: manual\nlicense: MIT OR Apache-2.0\nbuild-depends: [base.yaml, libz.yaml]\nruntime-depends: [tool.yaml]\nsources:\n  - kind: local\n    path: files/app.c\n  - kind: git\n    url: file://{}\n    ref: {commit}\n    directory: git\nconfig:\n  install-commands:\n  - mkdir -p %{{install-root}}/usr/share/app\n  - cp app.c git/README %{{install-root}}/usr/share/app/\n",
            repo.display()
        ),
    );
    ctx.write(
        "elements/nothing.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}/etc\n  - echo empty > %{install-root}/etc/nothing\n",
    );
    ctx.write(
        "elements/stack.yaml",
        "kind: stack\ndepends: [app.yaml, nothing.yaml]\n",
    );
    ctx.write(
        "elements/image.yaml",
        "kind: compose\nbuild-depends: [base.yaml, stack.yaml]\n",
    );
    (ctx, server, sums)
}

#[test]
fn sbom_of_an_unbuilt_element_names_what_to_build() {
    let (ctx, _server, _) = small_project();
    let run = ctx.cas(["sbom", "image.yaml"]).expect_code(1);
    assert!(
        run.stderr.contains("not built") && run.stderr.contains("cas build image.yaml"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    ctx.cas(["build", "nothing.yaml"]).ok();
    let run = ctx.cas(["sbom", "image.yaml"]).expect_code(1);
    assert!(!run.stderr.contains("nothing.yaml,"), "{}", run.stderr);
    assert!(run.stderr.contains("app.yaml"), "{}", run.stderr);
    ctx.cas(["attest", "image.yaml", "--signing-key", "nokey"])
        .expect_code(2);
    // --json needs the document in a file
    ctx.cas(["--json", "sbom", "nothing.yaml"]).expect_code(2);
    // a `license:` that is no SPDX expression is invalid input, named
    ctx.write(
        "elements/bad.yaml",
        "kind: manual\nlicense: GPL-2 or later\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}/x\n",
    );
    ctx.cas(["build", "bad.yaml"]).ok();
    let run = ctx.cas(["sbom", "bad.yaml"]).expect_code(2);
    assert!(
        run.stderr.contains("bad.yaml") && run.stderr.contains("GPL-2 or later"),
        "{}",
        run.stderr
    );
}

#[test]
fn sbom_of_a_small_project_validates_and_names_every_source_and_edge() {
    let (ctx, _server, sums) = small_project();
    ctx.cas(["build", "image.yaml"]).ok();
    let spdx = ctx.path("image.spdx.json");
    let run = ctx
        .cas(["--json", "sbom", "image.yaml", "-o", spdx.to_str().unwrap()])
        .ok();
    let summary = run.json();
    assert_eq!(summary["debian_packages"], 1, "{summary}");
    assert_spdx_valid(&spdx);
    let doc = json_file(&spdx);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let packages = spdx_packages(&doc);
    let by_name = |n: &str| {
        *packages
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("no package {n} in {doc}"))
    };
    for e in [
        "base.yaml",
        "libz.yaml",
        "tool.yaml",
        "app.yaml",
        "nothing.yaml",
        "stack.yaml",
        "image.yaml",
    ] {
        by_name(e);
    }
    // the tarball: name and version from its file name, its checksum, its URL
    let libz = by_name("libz");
    assert_eq!(libz["versionInfo"], "1.2.3");
    assert_eq!(checksum(libz, "SHA256"), Some(sums["tar"].as_str()));
    // an address is no download location of SPDX's pattern: the URL is in
    // the comment and the package URL
    assert_eq!(libz["downloadLocation"], "NOASSERTION");
    assert!(libz["comment"]
        .as_str()
        .unwrap()
        .ends_with("/files/libz-1.2.3.tar.gz"));
    assert!(purl(libz).unwrap().starts_with("pkg:generic/libz@1.2.3?"));
    // the Debian package: its control fields, purl and DEP-5 licence
    let tool = by_name("tool");
    assert_eq!(tool["versionInfo"], "1");
    assert_eq!(checksum(tool, "SHA256"), Some(sums["deb"].as_str()));
    assert_eq!(purl(tool), Some("pkg:deb/debian/tool@1?arch=all"));
    assert_eq!(
        tool["licenseDeclared"],
        "GPL-2.0-or-later AND (MIT OR Apache-2.0)"
    );
    // git: the commit
    let git = by_name("repo");
    assert_eq!(git["versionInfo"], sums["git"].as_str());
    assert!(purl(git).unwrap().ends_with(&format!("%40{}", sums["git"])));
    // a declared `license:`; nothing declared is NOASSERTION, never guessed
    assert_eq!(by_name("app.yaml")["licenseDeclared"], "MIT OR Apache-2.0");
    assert_eq!(by_name("nothing.yaml")["licenseDeclared"], "NOASSERTION");
    let rels = relationships(&doc);
    let has = |a: &str, t: &str, b: &str| {
        assert!(
            rels.iter().any(|r| r.0 == a && r.1 == t && r.2 == b),
            "no {a} {t} {b} in {rels:?}"
        );
    };
    has("SPDXRef-DOCUMENT", "DESCRIBES", "image.yaml");
    has("image.yaml", "CONTAINS", "stack.yaml");
    has("stack.yaml", "CONTAINS", "app.yaml");
    has("base.yaml", "BUILD_TOOL_OF", "app.yaml");
    has("libz.yaml", "BUILD_TOOL_OF", "app.yaml");
    has("tool.yaml", "RUNTIME_DEPENDENCY_OF", "app.yaml");
    has("app.yaml", "GENERATED_FROM", "repo");
    has("libz.yaml", "GENERATED_FROM", "libz");
    has("tool.yaml", "CONTAINS", "tool");
    // the creation time is the result's: the same closure, the same bytes
    let again = ctx.cas(["sbom", "image.yaml"]).ok();
    assert_eq!(again.stdout.as_bytes(), std::fs::read(&spdx).unwrap());

    // CycloneDX 1.6
    let cdx = ctx.path("image.cdx.json");
    ctx.cas([
        "sbom",
        "image.yaml",
        "--format",
        "cyclonedx-json",
        "-o",
        cdx.to_str().unwrap(),
    ])
    .ok();
    assert_cyclonedx_valid(&cdx);
    let bom = json_file(&cdx);
    assert_eq!(bom["specVersion"], "1.6");
    assert_eq!(bom["metadata"]["component"]["name"], "image.yaml");
    let comps = bom["components"].as_array().unwrap();
    let tool = comps.iter().find(|c| c["name"] == "tool").unwrap();
    assert_eq!(tool["purl"], "pkg:deb/debian/tool@1?arch=all");
    assert_eq!(tool["hashes"][0]["content"], sums["deb"].as_str());
    let again = ctx
        .cas(["sbom", "image.yaml", "--format", "cyclonedx-json"])
        .ok();
    assert_eq!(again.stdout.as_bytes(), std::fs::read(&cdx).unwrap());

    // --files: every regular file of the image with the SHA-256 of its checkout
    let with_files = ctx.path("files.spdx.json");
    ctx.cas([
        "sbom",
        "image.yaml",
        "--files",
        "-o",
        with_files.to_str().unwrap(),
    ])
    .ok();
    assert_spdx_valid(&with_files);
    let out = crate::sources::checkout(&ctx, "image.yaml", "out");
    let doc = json_file(&with_files);
    let files = doc["files"].as_array().unwrap();
    let app = files
        .iter()
        .find(|f| f["fileName"] == "./usr/share/app/app.c")
        .unwrap_or_else(|| panic!("app.c not listed: {files:?}"));
    assert_eq!(
        checksum(app, "SHA256"),
        Some(
            sha256(
                &std::fs::read(out.join("usr/share/app/app.c")).unwrap(),
                ctx.root()
            )
            .as_str()
        )
    );
    assert_eq!(app["comment"], "from app.yaml");
    let cdx_files = ctx.path("files.cdx.json");
    ctx.cas([
        "sbom",
        "image.yaml",
        "--files",
        "--format",
        "cyclonedx-json",
        "-o",
        cdx_files.to_str().unwrap(),
    ])
    .ok();
    assert_cyclonedx_valid(&cdx_files);

    // SPDX 3.0.1: the same packages (7 elements, 5 sources)
    let spdx3 = ctx.path("image.spdx3.json");
    ctx.cas([
        "sbom",
        "image.yaml",
        "--files",
        "--format",
        "spdx3-json",
        "-o",
        spdx3.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(assert_spdx3_valid(&spdx3), packages.len());
}

#[test]
fn attestations_verify_with_securesystemslib_and_tampering_is_detected() {
    let (ctx, _server, _) = small_project();
    ctx.cas(["build", "image.yaml"]).ok();
    let key = ctx.path("keys/signing.key");
    let public = ctx
        .cas(["keygen", "--out", key.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_string();
    let pub_file = format!("{}.pub", key.display());
    let att = ctx.path("app.att.json");
    ctx.cas([
        "attest",
        "app.yaml",
        "--signing-key",
        key.to_str().unwrap(),
        "-o",
        att.to_str().unwrap(),
    ])
    .ok();
    let (ok, out) = check("dsse", &att, &[&public]);
    assert!(ok, "securesystemslib: {out}");
    // the tree and both files of app.yaml's output
    assert_eq!(out.trim(), "3", "{out}");
    // the statement: subjects, the build definition, times from the result
    let env = json_file(&att);
    let statement: Value = serde_json::from_slice(
        &Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .output_with(env["payload"].as_str().unwrap()),
    )
    .unwrap();
    let predicate = &statement["predicate"];
    assert_eq!(
        predicate["buildDefinition"]["externalParameters"]["element"],
        "app.yaml"
    );
    let deps = predicate["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert!(deps.iter().any(|d| d["digest"]["gitCommit"].is_string()));
    assert!(deps
        .iter()
        .any(|d| d["name"] == "base.yaml" && d["digest"]["casTree"].is_string()));
    assert!(predicate["runDetails"]["metadata"]["finishedOn"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    // same closure, same bytes (ed25519 signatures are deterministic)
    let again = ctx
        .cas(["attest", "app.yaml", "--signing-key", key.to_str().unwrap()])
        .ok();
    assert_eq!(again.stdout.as_bytes(), std::fs::read(&att).unwrap());

    // cas verifies it: against the store, the element, a checkout
    let v = ctx
        .cas([
            "verify-attestation",
            att.to_str().unwrap(),
            "--trusted-key",
            &pub_file,
        ])
        .ok();
    assert!(v.stdout.contains("signature verified"), "{}", v.stdout);
    ctx.cas([
        "verify-attestation",
        att.to_str().unwrap(),
        "--trusted-key",
        &public,
        "app.yaml",
    ])
    .ok();
    let out = crate::sources::checkout(&ctx, "app.yaml", "out");
    // in-toto's dirHash of the tree is what a shell computes in a checkout
    let dir_hash = sh(Command::new("sh").current_dir(&out).args([
        "-c",
        "find . -type f | cut -c3- | LC_ALL=C sort | xargs -r sha256sum | sha256sum",
    ]));
    assert_eq!(
        statement["subject"][0]["digest"]["dirHash"]
            .as_str()
            .unwrap(),
        dir_hash.split_whitespace().next().unwrap()
    );
    ctx.cas([
        "verify-attestation",
        att.to_str().unwrap(),
        "--trusted-key",
        &public,
        out.to_str().unwrap(),
    ])
    .ok();
    // a changed checkout, another element, another key: refused
    std::fs::write(out.join("usr/share/app/app.c"), "changed\n").unwrap();
    let bad = ctx
        .cas([
            "verify-attestation",
            att.to_str().unwrap(),
            "--trusted-key",
            &public,
            out.to_str().unwrap(),
        ])
        .expect_code(1);
    assert!(bad.stdout.contains("usr/share/app/app.c"), "{}", bad.stdout);
    ctx.cas([
        "verify-attestation",
        att.to_str().unwrap(),
        "--trusted-key",
        &public,
        "libz.yaml",
    ])
    .expect_code(1);
    let other = ctx.path("keys/other.key");
    let other_pub = ctx
        .cas(["keygen", "--out", other.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_string();
    ctx.cas([
        "verify-attestation",
        att.to_str().unwrap(),
        "--trusted-key",
        &other_pub,
    ])
    .expect_code(1);
    // a tampered payload: cas and securesystemslib both refuse it
    let mut tampered = env.clone();
    let payload = String::from_utf8(
        Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .output_with(env["payload"].as_str().unwrap()),
    )
    .unwrap()
    .replace("app.yaml", "app2.yaml");
    tampered["payload"] = Value::String(
        String::from_utf8(
            Command::new("base64")
                .arg("-w0")
                .stdin(std::process::Stdio::piped())
                .output_with(&payload),
        )
        .unwrap(),
    );
    let t = ctx.path("tampered.json");
    std::fs::write(&t, serde_json::to_vec(&tampered).unwrap()).unwrap();
    let run = ctx
        .cas([
            "verify-attestation",
            t.to_str().unwrap(),
            "--trusted-key",
            &public,
        ])
        .expect_code(1);
    assert!(run.stderr.contains("no signature"), "{}", run.stderr);
    let (ok, out) = check("dsse", &t, &[&public]);
    assert!(!ok, "securesystemslib accepted a tampered envelope: {out}");
}

/// Feed `input` to a command's standard input; its standard output.
trait OutputWith {
    fn output_with(&mut self, input: &str) -> Vec<u8>;
}

impl OutputWith for Command {
    fn output_with(&mut self, input: &str) -> Vec<u8> {
        use std::io::Write as _;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    }
}

#[test]
fn legal_info_writes_every_source_as_fetched_with_its_checksum() {
    let (ctx, _server, sums) = small_project();
    ctx.cas(["build", "image.yaml"]).ok();
    let dir = ctx.path("legal");
    let run = ctx
        .cas(["--json", "legal-info", "image.yaml", dir.to_str().unwrap()])
        .ok();
    assert_eq!(run.json()["licenses"], 1, "{}", run.stdout);
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    assert!(
        manifest.contains("libz\t1.2.3\tNOASSERTION\ttar\t"),
        "{manifest}"
    );
    assert!(
        manifest.contains("tool\t1\tGPL-2.0-or-later AND (MIT OR Apache-2.0)\tdeb\t"),
        "{manifest}"
    );
    // what ships (the image, its parts, what they need at run time) and what only builds it
    let role = |name: &str| {
        manifest
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .and_then(|l| l.rsplit('\t').next())
            .unwrap_or_else(|| panic!("{name} not in {manifest}"))
            .to_string()
    };
    assert_eq!(role("app.yaml"), "target");
    assert_eq!(role("tool"), "target");
    assert_eq!(role("repo"), "target");
    assert_eq!(role("libz.yaml"), "host");
    assert_eq!(role("libz"), "host");
    assert_eq!(
        sha256(
            &std::fs::read(dir.join("sources/libz-1.2.3.tar.gz")).unwrap(),
            ctx.root()
        ),
        sums["tar"]
    );
    assert_eq!(
        sha256(
            &std::fs::read(dir.join("sources/tool_1_all.deb")).unwrap(),
            ctx.root()
        ),
        sums["deb"]
    );
    assert!(std::fs::read_to_string(dir.join("licenses/tool.copyright"))
        .unwrap()
        .contains("License: GPL-2+"));
    // the git commit as a bundle that git accepts, the local file as it is
    let bundle = std::fs::read_dir(dir.join("sources"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".bundle"))
        .expect("a git bundle");
    let heads = sh(Command::new("git")
        .arg("bundle")
        .arg("list-heads")
        .arg(&bundle));
    assert!(heads.contains(&sums["git"]), "{heads}");
    assert!(dir.join("sources/app.c").is_file());
    // SHA256SUMS holds for every file written
    let ok = Command::new("sha256sum")
        .args(["-c", "--quiet", "../SHA256SUMS"])
        .current_dir(dir.join("sources"))
        .status()
        .unwrap();
    assert!(ok.success());
    // a directory that is not empty is refused
    ctx.cas(["legal-info", "image.yaml", dir.to_str().unwrap()])
        .expect_code(2);
}

/// The deb sources of `projects/debian-system`'s `base/debs.yaml` as the
/// project holds them: (package, version, sha256), from the lock's comment
/// and the source below it.
fn pinned_debs(project: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(project.join("elements/base/debs.yaml")).unwrap();
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# ") {
            let mut w = c.split_whitespace();
            if let (Some(n), Some(v), None) = (w.next(), w.next(), w.next()) {
                current = Some((n.to_string(), v.to_string()));
            }
        } else if let Some(s) = line.trim().strip_prefix("sha256: ") {
            let (n, v) = current.take().expect("a comment names each package");
            out.push((n, v, s.to_string()));
        }
    }
    out
}

/// The tar sources of the elements `names`: (file name, sha256).
fn pinned_tarballs(project: &Path, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|n| {
            let text = std::fs::read_to_string(project.join("elements").join(n)).unwrap();
            let url = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("url: "))
                .map(|u| u.rsplit('/').next().unwrap().to_string());
            let sha = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("sha256: "))
                .map(str::to_string);
            url.zip(sha)
        })
        .collect()
}

#[test]
fn the_debian_rootfs_sbom_lists_its_packages_and_tarballs_and_validates() {
    let Some(ds) = DebianSystem::new() else {
        return;
    };
    let _ = tools();
    ds.cas(&["build", "rootfs.yaml"]).ok();
    let debs = pinned_debs(&ds.project);
    assert!(debs.len() > 100, "{debs:?}");
    let tarballs = pinned_tarballs(&ds.project, &["zlib.yaml", "hello.yaml", "bzip2.yaml"]);
    assert_eq!(tarballs.len(), 3, "{tarballs:?}");
    let spdx = ds.ctx.path("rootfs.spdx.json");
    let run = ds
        .cas(&[
            "--json",
            "sbom",
            "rootfs.yaml",
            "-o",
            spdx.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(run.json()["debian_packages"], debs.len(), "{}", run.stdout);
    assert_spdx_valid(&spdx);
    let doc = json_file(&spdx);
    let packages = spdx_packages(&doc);
    let deb_packages: Vec<&&Value> = packages
        .iter()
        .filter(|p| purl(p).is_some_and(|u| u.starts_with("pkg:deb/debian/")))
        .collect();
    assert_eq!(deb_packages.len(), debs.len());
    for (name, version, sha) in &debs {
        let p = deb_packages
            .iter()
            .find(|p| p["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} is not in the SBOM"));
        assert_eq!(p["versionInfo"], version.as_str(), "{name}");
        assert_eq!(checksum(p, "SHA256"), Some(sha.as_str()), "{name}");
        assert!(
            purl(p).unwrap().contains("?arch="),
            "{name}: {}",
            purl(p).unwrap()
        );
    }
    for (file, sha) in &tarballs {
        let p = packages
            .iter()
            .find(|p| p["packageFileName"] == file.as_str())
            .unwrap_or_else(|| panic!("{file} is not in the SBOM"));
        assert_eq!(checksum(p, "SHA256"), Some(sha.as_str()), "{file}");
    }
    // licences from the packages' DEP-5 copyright files
    let bash = deb_packages.iter().find(|p| p["name"] == "bash").unwrap();
    assert!(
        bash["licenseDeclared"]
            .as_str()
            .unwrap()
            .contains("GPL-3.0-or-later"),
        "{bash}"
    );
    let rels = relationships(&doc);
    assert!(rels
        .iter()
        .any(|r| r.0 == "rootfs.yaml" && r.1 == "CONTAINS" && r.2 == "base/debian.yaml"));
    assert!(rels
        .iter()
        .any(|r| r.0 == "base/debs.yaml" && r.1 == "CONTAINS" && r.2 == "bash"));
    let again = ds.cas(&["sbom", "rootfs.yaml"]).ok();
    assert_eq!(again.stdout.as_bytes(), std::fs::read(&spdx).unwrap());

    let cdx = ds.ctx.path("rootfs.cdx.json");
    ds.cas(&[
        "sbom",
        "rootfs.yaml",
        "--format",
        "cyclonedx-json",
        "-o",
        cdx.to_str().unwrap(),
    ])
    .ok();
    assert_cyclonedx_valid(&cdx);
    let bom = json_file(&cdx);
    let comps = bom["components"].as_array().unwrap();
    for (name, _, sha) in &debs {
        assert!(
            comps.iter().any(|c| c["name"] == name.as_str()
                && c["hashes"][0]["content"] == sha.as_str()
                && c["purl"].as_str().is_some_and(
                    |p| p.starts_with(&format!("pkg:deb/debian/{}@", name.replace('+', "%2B")))
                )),
            "{name}"
        );
    }

    let spdx3 = ds.ctx.path("rootfs.spdx3.json");
    ds.cas(&[
        "sbom",
        "rootfs.yaml",
        "--format",
        "spdx3-json",
        "-o",
        spdx3.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(assert_spdx3_valid(&spdx3), packages.len());

    // provenance of the root filesystem, verified
    let key = ds.ctx.path("signing.key");
    let public = ds
        .cas(&["keygen", "--out", key.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_string();
    let att = ds.ctx.path("rootfs.att.json");
    ds.cas(&[
        "attest",
        "rootfs.yaml",
        "--signing-key",
        key.to_str().unwrap(),
        "-o",
        att.to_str().unwrap(),
    ])
    .ok();
    let (ok, out) = check("dsse", &att, &[&public]);
    assert!(ok, "securesystemslib: {out}");
    // the repository's commit: the project is a git checkout
    let statement: Value = serde_json::from_slice(
        &Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .output_with(json_file(&att)["payload"].as_str().unwrap()),
    )
    .unwrap();
    let revision = statement["predicate"]["buildDefinition"]["externalParameters"]["revision"]
        .as_str()
        .unwrap_or_else(|| panic!("no revision in {statement}"));
    let head = sh(Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&ds.project));
    assert!(revision.starts_with(head.trim()), "{revision} {head}");
    // the 127 packages and 3 tarballs are resolved dependencies with their digests
    let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    for (_, _, sha) in &debs {
        assert!(
            deps.iter().any(|d| d["digest"]["sha256"] == sha.as_str()),
            "{sha}"
        );
    }
    ds.cas(&[
        "verify-attestation",
        att.to_str().unwrap(),
        "--trusted-key",
        &public,
        "rootfs.yaml",
    ])
    .ok();

    // the image written from it: it contains the root filesystem, the base
    // is its tool; its provenance names the image file, which a checkout holds
    ds.cas(&["build", "rootfs-image.yaml"]).ok();
    let image_spdx = ds.ctx.path("image.spdx.json");
    ds.cas(&[
        "sbom",
        "rootfs-image.yaml",
        "-o",
        image_spdx.to_str().unwrap(),
    ])
    .ok();
    assert_spdx_valid(&image_spdx);
    let rels = relationships(&json_file(&image_spdx));
    for (a, t, b) in [
        ("rootfs-image.yaml", "CONTAINS", "rootfs.yaml"),
        ("base/debian.yaml", "BUILD_TOOL_OF", "rootfs-image.yaml"),
    ] {
        assert!(
            rels.iter().any(|r| r.0 == a && r.1 == t && r.2 == b),
            "no {a} {t} {b}"
        );
    }
    let image_att = ds.ctx.path("image.att.json");
    ds.cas(&[
        "attest",
        "rootfs-image.yaml",
        "--signing-key",
        key.to_str().unwrap(),
        "-o",
        image_att.to_str().unwrap(),
    ])
    .ok();
    let (ok, out) = check("dsse", &image_att, &[&public]);
    assert!(ok && out.trim() == "2", "securesystemslib: {out}");
    let image = ds.ctx.path("image");
    ds.cas(&["checkout", "rootfs-image.yaml", image.to_str().unwrap()])
        .ok();
    ds.cas(&[
        "verify-attestation",
        image_att.to_str().unwrap(),
        "--trusted-key",
        &public,
        image.to_str().unwrap(),
    ])
    .ok();

    // legal-info: every source as fetched, each with its recorded checksum
    let dir = ds.ctx.path("legal");
    ds.cas(&["legal-info", "rootfs.yaml", dir.to_str().unwrap()])
        .ok();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let written: BTreeMap<&str, &str> = sums
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(s, f)| (f, s))
        .collect();
    for (_, _, sha) in &debs {
        assert!(written.values().any(|s| s == sha), "{sha} not written");
    }
    for (file, sha) in &tarballs {
        assert_eq!(written.get(file.as_str()), Some(&sha.as_str()), "{file}");
        assert_eq!(
            &sha256(
                &std::fs::read(dir.join("sources").join(file)).unwrap(),
                ds.ctx.root()
            ),
            sha
        );
    }
    let ok = Command::new("sha256sum")
        .args(["-c", "--quiet", "../SHA256SUMS"])
        .current_dir(dir.join("sources"))
        .status()
        .unwrap();
    assert!(ok.success());
}
