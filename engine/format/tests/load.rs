//! Library-level tests of loading: graph orders and a seeded random mutator
//! that must never make the loader panic.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they skip and measured"
)]

use std::path::Path;

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// What the loader asks of the behaviours (crate cas-builder's registry, which
/// this crate cannot depend on): the built-in names, and script's `layout`
/// as structured data; no checks of config.
struct Behaviours;

impl cas_format::Behaviours for Behaviours {
    fn names(&self) -> Vec<&'static str> {
        vec![
            "import", "sandbox", "compose", "script", "stack", "filter", "manifest",
        ]
    }
    fn kind_files(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
    fn structured_config(&self, name: &str) -> Vec<&'static str> {
        if name == "script" {
            vec!["layout"]
        } else {
            Vec::new()
        }
    }
    fn check(
        &self,
        _load: &mut cas_format::LoadCheck<'_>,
    ) -> Vec<(cas_format::ElementId, cas_format::Error)> {
        Vec::new()
    }
}

fn load(dir: &Path, targets: &[&str]) -> Result<cas_format::Loaded, cas_format::Diagnostics> {
    let t: Vec<String> = targets
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    let opts = cas_format::LoadOptions {
        behaviours: Some(std::sync::Arc::new(Behaviours)),
        ..cas_format::LoadOptions::default()
    };
    cas_format::load_with(&t, dir, &opts)
}

const PROJECT: &str =
    "name: demo\nelement-path: elements\naliases:\n  upstream: https://example.org/releases/\n";

#[test]
fn smoke() {
    let d = project(&[
        ("project.yaml", PROJECT),
        ("files/hello", "hi"),
        ("elements/base.yaml", "kind: import\nsources:\n- kind: local\n  path: files/hello\n"),
        ("elements/zlib.yaml", "kind: autotools\nbuild-depends: [base.yaml]\nsources:\n- kind: tar\n  url: upstream:zlib.tar.gz\n  sha256: 0000000000000000000000000000000000000000000000000000000000000000\n"),
        ("elements/hello.yaml", "kind: manual\nbuild-depends: [base.yaml]\ndepends: [zlib.yaml]\nvariables:\n  greeting: hello\nconfig:\n  build-commands:\n  - echo \"%{greeting}\" > g\n  install-commands:\n  - cp g \"%{install-root}%{datadir}/\"\n"),
    ]);
    let l = match load(d.path(), &["elements/hello.yaml"]) {
        Ok(l) => l,
        Err(e) => panic!("{}", e.render()),
    };
    let names: Vec<&str> = l
        .closure(&l.targets)
        .iter()
        .map(|&i| l.element(i).name.as_str())
        .collect();
    assert_eq!(names, ["base.yaml", "zlib.yaml", "hello.yaml"]);
    let hello = l.element(l.find("hello.yaml").unwrap());
    assert_eq!(
        hello.phases[1],
        (
            "build-commands".to_string(),
            vec!["echo \"hello\" > g".to_string()]
        )
    );
    assert_eq!(
        hello.phases[2].1,
        vec!["cp g \"/install/usr/share/\"".to_string()]
    );
    let zlib = l.element(l.find("zlib.yaml").unwrap());
    assert_eq!(zlib.phases[1].1, vec!["make -j%{max-jobs}".to_string()]);
    match &zlib.sources[0].kind {
        cas_sources::SourceKind::Tar { url, .. } => {
            assert_eq!(url.resolved, "https://example.org/releases/zlib.tar.gz");
        }
        k => panic!("{k:?}"),
    }
    let staged: Vec<&str> = l
        .staged(hello.id)
        .iter()
        .map(|&i| l.element(i).name.as_str())
        .collect();
    assert_eq!(staged, ["base.yaml", "zlib.yaml"]);
    // by name, from the project root
    assert!(load(d.path(), &["hello.yaml"]).is_ok());
}

/// A tiny deterministic PRNG (xorshift64*), so failures are reproducible by seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    "kind: manual\nbuild-depends: [base.yaml]\ndepends:\n  - lib.yaml\nvariables:\n  greeting: hello\n  other: \"%{greeting} %{prefix}\"\nenvironment:\n  LANG: C\nconfig:\n  build-commands:\n    (>):\n      - echo \"%{greeting}\" > g\n  install-commands:\n    - cp g \"%{install-root}%{datadir}/\"\npublic:\n  integration-commands: [ldconfig]\n  split-rules:\n    devel: ['%{includedir}/**']\nsandbox:\n  build-uid: 1000\n  network: false\n",
    "kind: import\nsources:\n- kind: local\n  path: files/hello\n- kind: tar\n  url: upstream:zlib-1.3.tar.gz\n  sha256: 0000000000000000000000000000000000000000000000000000000000000000\n  base-dir: ''\n- kind: git\n  url: https://example.org/x.git\n  ref: 0123456789abcdef0123456789abcdef01234567\n  track: main\n",
    "kind: compose\ndepends: [lib.yaml]\nconfig:\n  include: [devel]\n  exclude: [doc]\n  include-orphans: false\n",
    "kind: script\nbuild-depends: [base.yaml, lib.yaml]\nconfig:\n  layout:\n  - element: base.yaml\n    destination: /\n  root-read-only: true\n  commands: ['ls %{install-root}']\n",
];

const SNIPPETS: &[&[u8]] = &[
    b"\t",
    b"&a ",
    b"*a",
    b"%{",
    b"%{x}",
    b"}",
    b"[",
    b"]",
    b"{",
    b"- ",
    b": ",
    b"\n",
    b"\xff\xfe",
    b"\"",
    b"'",
    b"!!str ",
    b"---\n",
    b"? ",
    b"|\n",
    b"99999999999999999999999",
    b"\xc3\xa9",
    b"#",
    b"depends: [lib.yaml]\n",
    b"%%{",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
            2 => {
                let s = SNIPPETS[rng.below(SNIPPETS.len())];
                let i = rng.below(v.len() + 1);
                v.splice(i..i, s.iter().copied());
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = rng.below(8).min(v.len() - i);
                v.drain(i..i + n);
            }
            _ => {
                let depth = rng.below(200);
                let i = rng.below(v.len() + 1);
                let nest: Vec<u8> = std::iter::repeat_n(b'[', depth).collect();
                v.splice(i..i, nest);
            }
        }
    }
    v
}

/// Random mutations of valid element files never make the loader panic.
#[test]
fn mutated_files_never_panic() {
    let d = project(&[
        ("project.yaml", PROJECT),
        ("files/hello", "hi"),
        ("elements/base.yaml", "kind: stack\n"),
        (
            "elements/lib.yaml",
            "kind: manual\nruntime-depends: [base.yaml]\n",
        ),
    ]);
    // the seeds are valid
    for (i, s) in SEEDS.iter().enumerate() {
        std::fs::write(d.path().join("elements/t.yaml"), s).unwrap();
        if let Err(e) = load(d.path(), &["elements/t.yaml"]) {
            panic!("seed {i} invalid:\n{}", e.render());
        }
    }
    let seed: u64 = std::env::var("CAS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_f00d_0001);
    let mut rng = Rng(seed);
    let start = std::time::Instant::now();
    let mut runs = 0;
    while runs < 3000 && start.elapsed() < std::time::Duration::from_secs(6) {
        let base = SEEDS[rng.below(SEEDS.len())].as_bytes();
        let input = mutate(&mut rng, base);
        std::fs::write(d.path().join("elements/t.yaml"), &input).unwrap();
        let result = std::panic::catch_unwind(|| {
            if let Err(diags) = load(d.path(), &["elements/t.yaml"]) {
                assert!(!diags.is_empty());
                let _ = diags.render();
            }
        });
        assert!(
            result.is_ok(),
            "panic on input (seed {seed}, run {runs}):\n{:?}",
            String::from_utf8_lossy(&input)
        );
        runs += 1;
    }
    assert!(runs > 100, "only {runs} runs");
}

/// A layered DAG of 5,000 elements loads in linear time.
#[test]
fn five_thousand_elements() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("project.yaml"),
        "name: big\nelement-path: elements\n",
    )
    .unwrap();
    let (layers, width) = (50, 100);
    let mut all = String::from("kind: stack\ndepends:\n");
    for l in 0..layers {
        std::fs::create_dir_all(dir.path().join(format!("elements/l{l}"))).unwrap();
        for i in 0..width {
            let mut text = String::from("kind: autotools\n");
            if l > 0 {
                text.push_str("build-depends:\n");
                for k in 0..3 {
                    text.push_str(&format!("  - l{}/e{}.yaml\n", l - 1, (i + k * 7) % width));
                }
                text.push_str(&format!(
                    "depends: [l{}/e{}.yaml]\n",
                    l - 1,
                    (i + 1) % width
                ));
            }
            text.push_str("variables:\n  conf-local: --disable-static\n");
            std::fs::write(dir.path().join(format!("elements/l{l}/e{i}.yaml")), text).unwrap();
            if l == layers - 1 {
                all.push_str(&format!("  - l{l}/e{i}.yaml\n"));
            }
        }
    }
    std::fs::write(dir.path().join("elements/all.yaml"), all).unwrap();
    let start = std::time::Instant::now();
    let l = load(dir.path(), &["all.yaml"]).unwrap_or_else(|e| panic!("{}", e.render()));
    let elapsed = start.elapsed();
    assert_eq!(l.elements.len(), layers * width + 1);
    let closure = l.closure(&l.targets);
    assert_eq!(closure.len(), layers * width + 1);
    eprintln!("loaded {} elements in {elapsed:?}", l.elements.len());
    let again = std::time::Instant::now();
    let _ = load(dir.path(), &["all.yaml"]);
    eprintln!("loaded again in {:?}", again.elapsed());
    // generous: debug builds are several times slower than release (goal: < 300 ms in release)
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
}
