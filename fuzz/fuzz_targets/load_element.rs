//! Feed arbitrary bytes to the loader as an element file (next to a small
//! valid project); it must report diagnostics, never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn project() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("project.yaml", "name: fuzz\nelement-path: elements\naliases:\n  upstream: https://example.org/\n");
        w("files/hello", "hi");
        w("elements/base.yaml", "kind: stack\n");
        w("elements/lib.yaml", "kind: manual\nruntime-depends: [base.yaml]\n");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = project();
    std::fs::write(dir.path().join("elements/t.yaml"), data).unwrap();
    let opts = cas_format::LoadOptions {
        behaviours: Some(std::sync::Arc::new(cas_builder::kinds::Behaviours)),
        ..cas_format::LoadOptions::default()
    };
    if let Err(d) = cas_format::load_with(&["elements/t.yaml".to_string()], dir.path(), &opts) {
        assert!(!d.is_empty());
        let _ = d.render();
    }
});
