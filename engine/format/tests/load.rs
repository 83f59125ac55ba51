//! Library-level tests of loading: graph orders and a seeded random mutator
//! that must never make the loader panic.

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

fn load(dir: &Path, targets: &[&str]) -> Result<cas_format::Loaded, cas_format::Diagnostics> {
    let t: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
    cas_format::load(&t, dir)
}

const PROJECT: &str = "name: demo\nelement-path: elements\naliases:\n  upstream: https://example.org/releases/\n";

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
    let names: Vec<&str> = l.closure(&l.targets).iter().map(|&i| l.element(i).name.as_str()).collect();
    assert_eq!(names, ["base.yaml", "zlib.yaml", "hello.yaml"]);
    let hello = l.element(l.find("hello.yaml").unwrap());
    assert_eq!(hello.phases[1], ("build-commands".to_string(), vec!["echo \"hello\" > g".to_string()]));
    assert_eq!(hello.phases[2].1, vec!["cp g \"/install/usr/share/\"".to_string()]);
    let zlib = l.element(l.find("zlib.yaml").unwrap());
    assert_eq!(zlib.phases[1].1, vec!["make -j%{max-jobs}".to_string()]);
    match &zlib.sources[0].kind {
        cas_sources::SourceKind::Tar { url, .. } => assert_eq!(url.resolved, "https://example.org/releases/zlib.tar.gz"),
        k => panic!("{k:?}"),
    }
    let staged: Vec<&str> = l.staged(hello.id).iter().map(|&i| l.element(i).name.as_str()).collect();
    assert_eq!(staged, ["base.yaml", "zlib.yaml"]);
    // by name, from the project root
    assert!(load(d.path(), &["hello.yaml"]).is_ok());
}
