//! Behaviours unit-tested through a fake [`Stage`]: real elements (loaded
//! with the registry), a real store in a temporary directory, and a stage
//! that records what a behaviour asks of it instead of running a sandbox.

use std::io::Write;
use std::path::{Path, PathBuf};

use cas_format::{ElementId, Loaded};
use cas_store::{EntryKind, IngestMode, Store, TreeDigest};

use super::{Commands, Root, Stage, REGISTRY};
use crate::error::Result;
use crate::sysroot::Layer;

/// What the fake stage was asked.
#[derive(Debug, PartialEq, Eq)]
enum Call {
    StageSources,
    Merge(usize),
    Run {
        writable: bool,
        commands: Vec<String>,
    },
    Execute,
}

struct Fake<'a> {
    loaded: &'a Loaded,
    id: ElementId,
    store: &'a Store,
    staged: Vec<(ElementId, TreeDigest)>,
    dir: PathBuf,
    /// Written into the build directory by `stage_sources`.
    sources: Vec<(&'static str, &'static str)>,
    calls: Vec<Call>,
    log: Vec<u8>,
}

impl Stage for Fake<'_> {
    fn element(&self) -> &cas_format::Element {
        self.loaded.element(self.id)
    }
    fn element_of(&self, id: ElementId) -> &cas_format::Element {
        self.loaded.element(id)
    }
    fn find(&self, name: &str) -> Option<ElementId> {
        self.loaded.find(name)
    }
    fn staged(&self) -> &[(ElementId, TreeDigest)] {
        &self.staged
    }
    fn store(&self) -> &Store {
        self.store
    }
    fn log(&mut self) -> &mut dyn Write {
        &mut self.log
    }
    fn stage_sources(&mut self) -> Result<PathBuf> {
        self.calls.push(Call::StageSources);
        let build = self.dir.join("build");
        for (rel, text) in &self.sources {
            write(&build.join(rel), text);
        }
        std::fs::create_dir_all(&build).unwrap();
        Ok(build)
    }
    fn layer(&self, id: ElementId, tree: TreeDigest) -> Layer {
        Layer::new(self.loaded.element(id).name.clone(), tree)
    }
    fn merge(&mut self, layers: &[Layer]) -> Result<TreeDigest> {
        self.calls.push(Call::Merge(layers.len()));
        let merged = crate::sysroot::merge(self.store, "fake", layers, true)?;
        Ok(merged.tree)
    }
    fn run(&mut self, root: Root<'_>, commands: Commands<'_>) -> Result<()> {
        let commands = match commands {
            Commands::Phases => vec!["<phases>".to_string()],
            Commands::These(c) => c.iter().map(|(_, c)| c.clone()).collect(),
        };
        let writable = match root {
            Root::Writable(path) => {
                // what an integration command would leave
                write(&path.join("etc/integrated"), "yes");
                true
            }
            Root::ReadOnly(_) => false,
        };
        self.calls.push(Call::Run { writable, commands });
        Ok(())
    }
    fn execute(&mut self) -> Result<TreeDigest> {
        self.calls.push(Call::Execute);
        Ok(self.store.empty_tree()?)
    }
    fn scratch(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    fn output_dir(&self, output: &str, root: Option<&Path>) -> Result<PathBuf> {
        Ok(root
            .unwrap_or(&self.dir)
            .join(output.trim_start_matches('/')))
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A project of `elements` (name, text), loaded with the registry.
fn load(dir: &Path, elements: &[(&str, &str)], target: &str) -> Loaded {
    write(
        &dir.join("project.yaml"),
        "name: t\nelement-path: elements\n",
    );
    for (name, text) in elements {
        write(&dir.join("elements").join(name), text);
    }
    let opts = cas_format::LoadOptions {
        behaviours: Some(std::sync::Arc::new(super::Behaviours)),
        ..cas_format::LoadOptions::default()
    };
    match cas_format::load_with(&[target.to_string()], dir, &opts) {
        Ok(l) => l,
        Err(d) => panic!("{:?}", d.errors),
    }
}

/// A stored tree of `files` (path, text).
fn tree(store: &Store, scratch: &Path, files: &[(&str, &str)]) -> TreeDigest {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).unwrap();
    for (rel, text) in files {
        write(&scratch.join(rel), text);
    }
    store.ingest(scratch, IngestMode::Move).unwrap().tree
}

/// The files of a stored tree (path, text).
fn files(store: &Store, t: &TreeDigest) -> Vec<(String, String)> {
    store
        .walk(t)
        .unwrap()
        .into_iter()
        .filter_map(|(p, e)| match e.kind {
            EntryKind::File { digest, .. } => Some((
                String::from_utf8(p).unwrap(),
                String::from_utf8(store.read_blob(&digest).unwrap()).unwrap(),
            )),
            _ => None,
        })
        .collect()
}

const BASE: (&str, &str) = ("base.yaml", "kind: stack\n");

fn fixture<'a>(loaded: &'a Loaded, store: &'a Store, dir: &Path, name: &str) -> Fake<'a> {
    Fake {
        loaded,
        id: loaded.find(name).unwrap(),
        store,
        staged: Vec::new(),
        dir: dir.join("step"),
        sources: Vec::new(),
        calls: Vec::new(),
        log: Vec::new(),
    }
}

#[test]
fn the_registry_names_each_behaviour_once_and_its_kind_files_declare_it() {
    let mut names: Vec<&str> = REGISTRY.iter().map(|k| k.name()).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "{names:?}");
    for k in REGISTRY {
        if let Some((file, yaml)) = k.kind_file() {
            assert!(
                yaml.contains(&format!("behaviour: {}\n", k.name())),
                "{file}.yaml does not declare behaviour {}",
                k.name()
            );
        }
    }
    assert!(super::lookup("sandbox").is_some() && super::lookup("nope").is_none());
}

#[test]
fn manifest_lists_what_its_dependencies_stage_merged_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let loaded = load(
        dir.path(),
        &[
            BASE,
            ("a.yaml", "kind: stack\n"),
            (
                "m.yaml",
                "kind: manifest\nbuild-depends: [base.yaml, a.yaml]\nconfig:\n  path: /share/list\n",
            ),
        ],
        "m.yaml",
    );
    let mut stage = fixture(&loaded, &store, dir.path(), "m.yaml");
    let scratch = dir.path().join("t");
    let base = tree(&store, &scratch, &[("bin/sh", "shell"), ("etc/motd", "hi")]);
    let a = tree(&store, &scratch, &[("bin/tool", "tool")]);
    stage.staged = vec![
        (loaded.find("base.yaml").unwrap(), base),
        (loaded.find("a.yaml").unwrap(), a),
    ];
    let out = super::of(stage.element()).assemble(&mut stage).unwrap();
    assert_eq!(stage.calls, vec![Call::Merge(2)]);
    let listed = files(&store, &out);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].0, "share/list");
    let lines: Vec<&str> = listed[0].1.lines().collect();
    let sh = blake3::hash(b"shell").to_hex().to_string();
    assert_eq!(lines[0], "d 0755 /bin");
    assert_eq!(lines[1], format!("f 0644 5 {sh} /bin/sh"));
    assert!(lines[2].starts_with("f 0644 4 ") && lines[2].ends_with(" /bin/tool"));
    assert_eq!(lines.len(), 5, "{lines:?}");
}

#[test]
fn a_sandboxed_step_leaves_where_it_runs_to_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let loaded = load(
        dir.path(),
        &[
            BASE,
            (
                "m.yaml",
                "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands: [true]\n",
            ),
        ],
        "m.yaml",
    );
    let mut stage = fixture(&loaded, &store, dir.path(), "m.yaml");
    super::of(stage.element()).assemble(&mut stage).unwrap();
    assert_eq!(stage.calls, vec![Call::Execute]);
}

#[test]
fn import_places_its_source_directory_at_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let loaded = load(
        dir.path(),
        &[(
            "i.yaml",
            "kind: import\nconfig:\n  source: /sub\n  target: /opt/x\n",
        )],
        "i.yaml",
    );
    let mut stage = fixture(&loaded, &store, dir.path(), "i.yaml");
    stage.sources = vec![("sub/f", "one"), ("other", "two")];
    let out = super::of(stage.element()).assemble(&mut stage).unwrap();
    assert_eq!(stage.calls, vec![Call::StageSources]);
    assert_eq!(
        files(&store, &out),
        vec![("opt/x/f".to_string(), "one".to_string())]
    );
    assert!(String::from_utf8_lossy(&stage.log).contains("/sub to /opt/x"));
}

#[test]
fn compose_integrates_on_a_private_copy_and_keeps_its_domains() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let lib = "kind: stack\npublic:\n  integration-commands: [ldconfig]\n  split-rules:\n    devel: [/include/**]\n";
    let loaded = load(
        dir.path(),
        &[
            ("lib.yaml", lib),
            (
                "c.yaml",
                "kind: compose\nbuild-depends: [lib.yaml]\nconfig:\n  exclude: [devel]\n",
            ),
        ],
        "c.yaml",
    );
    let mut stage = fixture(&loaded, &store, dir.path(), "c.yaml");
    let t = tree(
        &store,
        &dir.path().join("t"),
        &[("lib/libx.so", "x"), ("include/x.h", "h")],
    );
    stage.staged = vec![(loaded.find("lib.yaml").unwrap(), t)];
    let out = super::of(stage.element()).assemble(&mut stage).unwrap();
    assert_eq!(
        stage.calls,
        vec![
            Call::Merge(1),
            Call::Run {
                writable: true,
                commands: vec!["ldconfig".into()]
            }
        ]
    );
    let got: Vec<String> = files(&store, &out).into_iter().map(|(p, _)| p).collect();
    assert_eq!(got, vec!["etc/integrated", "lib/libx.so"]);
}

#[test]
fn load_checks_are_the_behaviours() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("project.yaml"),
        "name: t\nelement-path: elements\n",
    );
    write(&dir.path().join("elements/base.yaml"), "kind: stack\n");
    write(
        &dir.path().join("elements/f.yaml"),
        "kind: compose\nbuild-depends: [base.yaml]\nconfig:\n  include: [nosuch]\n",
    );
    let opts = cas_format::LoadOptions {
        behaviours: Some(std::sync::Arc::new(super::Behaviours)),
        ..cas_format::LoadOptions::default()
    };
    let Err(d) = cas_format::load_with(&["f.yaml".to_string()], dir.path(), &opts) else {
        panic!("an unknown domain loads");
    };
    let text = format!("{:?}", d.errors);
    assert!(
        text.contains("unknown split-rule domain `nosuch`"),
        "{text}"
    );
}
