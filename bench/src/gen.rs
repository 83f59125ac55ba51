//! The synthetic project generator (`cas-gen`).
//!
//! A project of `elements` elements in `layers` layers. Every element is a
//! `kind: manual` element that build-depends on `base.yaml` (a busybox sysroot
//! imported with `kind: import` and a `local` source) and on up to `fanout`
//! elements of the layer below, and installs `files` files of `file_size` bytes
//! with `install-commands`. `all.yaml` is a stack of every element, so its
//! closure is the whole project. Everything is deterministic for a given seed.
//!
//! Options: a large import (`big_import` files under `files/big`, element
//! `big.yaml`, optionally in every element's sysroot: `big_in_sysroot`), a share of elements whose output changes with `change_round`,
//! and a shell comment in the first leaf (`leaf_comment`) whose change alters
//! the leaf's key but not its output (early cutoff).

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Number of generated elements (base, big and all come on top).
    pub elements: usize,
    /// Number of layers; layer 0 depends on the base only.
    pub layers: usize,
    /// Each element of layer l > 0 build-depends on up to this many elements of layer l-1.
    pub fanout: usize,
    /// Files installed by each element.
    pub files: usize,
    /// Bytes per installed file.
    pub file_size: usize,
    /// Every element also build-depends on the large import (`big.yaml`),
    /// which then sits in every step's sysroot.
    pub big_in_sysroot: bool,
    /// Files of the large import (0: none).
    pub big_import: usize,
    /// Bytes per file of the large import.
    pub big_file_size: usize,
    /// Share (0..=1) of elements whose output depends on `change_round`.
    pub change_share: f64,
    /// Round number: a changed element installs `round N` (0: no change).
    pub change_round: u64,
    /// Text of a shell comment in the first leaf's commands.
    pub leaf_comment: String,
    pub seed: u64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            elements: 100,
            layers: 10,
            fanout: 3,
            files: 1,
            file_size: 64,
            big_import: 0,
            big_in_sysroot: false,
            big_file_size: 10 * 1024,
            change_share: 0.0,
            change_round: 0,
            leaf_comment: "rev 0".into(),
            seed: 1,
        }
    }
}

/// What was generated.
#[derive(Clone, Debug)]
pub struct Generated {
    pub root: PathBuf,
    /// Element names, index = element number.
    pub names: Vec<String>,
    /// Build dependencies (indices) of each element.
    pub deps: Vec<Vec<usize>>,
    /// The leaf whose comment `set_leaf_comment` changes, and how many
    /// elements depend on it (transitively).
    pub leaf: String,
    pub leaf_dependents: usize,
    /// Elements whose output depends on the change round.
    pub changed: Vec<usize>,
}

/// splitmix64: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn layer_of(i: usize, n: usize, layers: usize) -> usize {
    let layers = layers.clamp(1, n.max(1));
    i * layers / n.max(1)
}

pub fn element_name(i: usize, n: usize, layers: usize) -> String {
    element_file(i, n, layers, "yaml")
}

/// The file name of element `i` with extension `ext` (`yaml` for cas,
/// `bst` for BuildStream).
pub fn element_file(i: usize, n: usize, layers: usize, ext: &str) -> String {
    format!("l{:02}/e{:05}.{ext}", layer_of(i, n, layers), i)
}

/// The dependency graph: for each element, its build dependencies (indices).
pub fn graph(o: &GenOptions) -> Vec<Vec<usize>> {
    let n = o.elements;
    let mut rng = Rng::new(o.seed ^ 0xD1B5_4A32_D192_ED03);
    let mut starts = vec![];
    let mut prev = usize::MAX;
    for i in 0..n {
        let l = layer_of(i, n, o.layers);
        if l != prev {
            starts.push(i);
            prev = l;
        }
    }
    starts.push(n);
    let mut deps = vec![vec![]; n];
    for l in 1..starts.len() - 1 {
        let (lo, hi) = (starts[l - 1], starts[l]);
        let size = hi - lo;
        for d in deps.iter_mut().take(starts[l + 1]).skip(starts[l]) {
            let k = o.fanout.min(size);
            let mut picked: Vec<usize> = Vec::with_capacity(k);
            while picked.len() < k {
                let c = lo + rng.below(size);
                if !picked.contains(&c) {
                    picked.push(c);
                }
            }
            picked.sort_unstable();
            *d = picked;
        }
    }
    deps
}

/// Elements whose output changes with the round.
pub fn changed_set(o: &GenOptions) -> Vec<usize> {
    let mut rng = Rng::new(o.seed ^ 0x5851_F42D_4C95_7F2D);
    (0..o.elements)
        .filter(|_| rng.unit() < o.change_share)
        .collect()
}

/// The install commands of element `i`, with `dest` as the directory under
/// which the element installs (`%{install-root}%{datadir}` in YAML, a real
/// path for the baselines that run the same commands without cas).
pub fn commands(o: &GenOptions, i: usize, dest: &str, changed: bool) -> Vec<String> {
    let dir = format!("{dest}/bench/e{i:05}");
    let mut c = vec![format!("mkdir -p {dir}")];
    if o.files == 1 {
        // No pipe into `head`: under BuildStream (which runs commands with
        // SIGPIPE ignored) `yes | head` never ends.
        c.push(format!(
            "printf 'e{i:05}%0{}d' 0 > {dir}/f0",
            o.file_size.saturating_sub(6).max(1)
        ));
    } else if o.files > 1 {
        c.push(format!(
            "cd {dir} && i=0 && while [ $i -lt {} ]; do printf \"e{i:05}.%08d%0{}d\" $i 0 > f$i; i=$((i+1)); done",
            o.files,
            o.file_size.saturating_sub(15).max(1)
        ));
    }
    if changed && o.change_round > 0 {
        c.push(format!("echo round {} > {dir}/changed", o.change_round));
    }
    if i == 0 {
        c.push(format!("true # {}", o.leaf_comment));
    }
    c
}

fn yaml_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn element_yaml(o: &GenOptions, i: usize, deps: &[usize], changed: bool) -> String {
    element_text(o, i, deps, changed, "yaml")
}

/// Element `i` in the language both tools read (cas's element format and
/// BuildStream's `.bst` agree on `kind: manual`, `build-depends` and
/// `config: install-commands`), its dependencies named with `ext`.
pub fn element_text(o: &GenOptions, i: usize, deps: &[usize], changed: bool, ext: &str) -> String {
    let mut y = String::with_capacity(512);
    y.push_str(&format!("kind: manual\nbuild-depends:\n  - base.{ext}\n"));
    if o.big_in_sysroot && o.big_import > 0 {
        y.push_str(&format!("  - big.{ext}\n"));
    }
    for &d in deps {
        y.push_str("  - ");
        y.push_str(&element_file(d, o.elements, o.layers, ext));
        y.push('\n');
    }
    y.push_str("config:\n  install-commands:\n");
    for c in commands(o, i, "%{install-root}%{datadir}", changed) {
        y.push_str("    - ");
        y.push_str(&yaml_quote(&c));
        y.push('\n');
    }
    y
}

/// Writes a directory holding a static busybox and its applet links under
/// `bin/` (plus empty `usr`, `etc`, `tmp`): the base sysroot.
pub fn busybox_tree(root: &Path) -> std::io::Result<()> {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "/bin/busybox is missing: install the Debian package busybox-static",
        ));
    }
    std::fs::copy(busybox, bin.join("busybox"))?;
    let out = std::process::Command::new(busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    for d in ["usr", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    Ok(())
}

/// Layout of the large tree: `usr/share/pPP/dDDD/fFFFFF`, `parts` parts,
/// 100 files per directory. Returns the relative paths of the files of each part.
pub fn big_layout(files: usize, parts: usize) -> Vec<Vec<PathBuf>> {
    let parts = parts.max(1);
    let per = files.div_ceil(parts);
    let mut out = vec![vec![]; parts];
    for f in 0..files {
        let p = (f / per.max(1)).min(parts - 1);
        out[p].push(PathBuf::from(format!(
            "usr/share/p{p:02}/d{:03}/f{f:06}",
            f / 100
        )));
    }
    out
}

/// Writes `files` distinct files of `size` bytes under `root` in `parts` parts.
pub fn write_big_tree(
    root: &Path,
    files: usize,
    size: usize,
    parts: usize,
    seed: u64,
) -> std::io::Result<Vec<Vec<PathBuf>>> {
    let layout = big_layout(files, parts);
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; size];
    for chunk in buf.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    for (n, rel) in layout.iter().flatten().enumerate() {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Distinct content per file: stamp its number every 4 KiB.
        let stamp = (n as u64).to_le_bytes();
        for off in (0..size).step_by(4096) {
            let end = (off + 8).min(size);
            buf[off..end].copy_from_slice(&stamp[..end - off]);
        }
        std::fs::write(&path, &buf)?;
    }
    Ok(layout)
}

/// Generates the project into `root` (created; must not hold another project's files).
pub fn generate(root: &Path, o: &GenOptions) -> std::io::Result<Generated> {
    let n = o.elements;
    std::fs::create_dir_all(root.join("elements"))?;
    std::fs::write(
        root.join("project.yaml"),
        "name: bench\nelement-path: elements\n",
    )?;
    if !root.join("files/base/bin/busybox").exists() {
        busybox_tree(&root.join("files/base"))?;
    }
    std::fs::write(
        root.join("elements/base.yaml"),
        "kind: import\nsources:\n  - kind: local\n    path: files/base\n",
    )?;
    let deps = graph(o);
    let changed = changed_set(o);
    let mut is_changed = vec![false; n];
    for &c in &changed {
        is_changed[c] = true;
    }
    let names: Vec<String> = (0..n).map(|i| element_name(i, n, o.layers)).collect();
    for l in 0..o.layers.clamp(1, n.max(1)) {
        std::fs::create_dir_all(root.join(format!("elements/l{l:02}")))?;
    }
    for i in 0..n {
        std::fs::write(
            root.join("elements").join(&names[i]),
            element_yaml(o, i, &deps[i], is_changed[i]),
        )?;
    }
    let mut all = String::from("kind: stack\ndepends:\n");
    for name in &names {
        all.push_str("  - ");
        all.push_str(name);
        all.push('\n');
    }
    if o.big_import > 0 {
        let big = root.join("files/big");
        if !big.exists() {
            write_big_tree(&big, o.big_import, o.big_file_size, 10, o.seed)?;
        }
        std::fs::write(
            root.join("elements/big.yaml"),
            "kind: import\nsources:\n  - kind: local\n    path: files/big\n",
        )?;
        all.push_str("  - big.yaml\n");
    }
    let mut f = std::fs::File::create(root.join("elements/all.yaml"))?;
    f.write_all(all.as_bytes())?;

    // Transitive dependents of element 0 (the leaf whose comment changes).
    let mut above = vec![false; n];
    if n > 0 {
        above[0] = true;
        for i in 1..n {
            if deps[i].iter().any(|&d| above[d]) {
                above[i] = true;
            }
        }
    }
    let leaf_dependents = above.iter().filter(|&&b| b).count().saturating_sub(1);
    Ok(Generated {
        root: root.to_owned(),
        leaf: names.first().cloned().unwrap_or_default(),
        names,
        deps,
        leaf_dependents,
        changed,
    })
}

/// Rewrites the first leaf with another shell comment: its key changes, its output does not.
pub fn set_leaf_comment(g: &Generated, o: &GenOptions, comment: &str) -> std::io::Result<()> {
    let mut o = o.clone();
    o.leaf_comment = comment.to_owned();
    let changed = g.changed.contains(&0);
    std::fs::write(
        g.root.join("elements").join(&g.leaf),
        element_yaml(&o, 0, &g.deps[0], changed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_is_layered_and_deterministic() {
        let o = GenOptions {
            elements: 50,
            layers: 5,
            fanout: 3,
            ..Default::default()
        };
        let g = graph(&o);
        assert_eq!(g, graph(&o));
        for (i, d) in g.iter().enumerate() {
            let l = layer_of(i, 50, 5);
            if l == 0 {
                assert!(d.is_empty());
            } else {
                assert_eq!(d.len(), 3);
                assert!(d.iter().all(|&x| layer_of(x, 50, 5) == l - 1));
            }
        }
    }

    #[test]
    fn change_share_is_roughly_respected() {
        let o = GenOptions {
            elements: 1000,
            change_share: 0.1,
            ..Default::default()
        };
        let c = changed_set(&o).len();
        assert!((50..150).contains(&c), "{c}");
    }
}
