//! Action keys: blake3 over a canonical, tagged, length-prefixed encoding of
//! everything that can influence a step's output (spec/keys.md, byte for
//! byte). The encoding itself is the step's *input manifest*: it is stored in
//! the CAS beside the result so that a key can be explained later; [`decode`]
//! reads it back (strictly: decoding then re-encoding gives the same bytes).

pub mod decode;

use std::collections::BTreeMap;

use cas_store::ActionKey;

/// Bumped whenever the encoding below changes in any way.
pub const KEY_SCHEMA: u32 = 2;

/// Magic prefix of every manifest.
pub const MAGIC: &[u8; 8] = b"cas-key\0";

/// The sandbox settings that reach a build (spec/keys.md, spec/sandbox.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    pub arch: String,
    pub uid: u32,
    pub gid: u32,
    pub network: bool,
    pub build_root: String,
    pub install_root: String,
    pub hostname: String,
    pub umask: u32,
}

/// Everything a key is computed from. Deliberately absent: max-jobs (left as
/// the literal `%{max-jobs}` in commands), the store's path, element names,
/// the machine, the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInputs {
    pub kind: String,
    pub behaviour: String,
    /// Phases in execution order, each with its fully expanded commands.
    pub phases: Vec<(String, Vec<String>)>,
    /// The complete sandbox environment (a BTreeMap: sorted by name bytes).
    pub environment: BTreeMap<String, String>,
    pub sandbox: SandboxSettings,
    /// Behaviour-specific settings (compose include/exclude, script output,
    /// integration commands of composed elements...), sorted by name.
    pub config: BTreeMap<String, Vec<String>>,
    /// The identity of each source, in the order of `sources:`.
    pub sources: Vec<Vec<u8>>,
    /// Output tree digests of the staged dependencies, in staging order.
    pub dependencies: Vec<[u8; 32]>,
}

/// A tiny explicit encoder: every integer little-endian, every byte string
/// prefixed by its u64 length, every field prefixed by its tag.
#[derive(Default)]
struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn tag(&mut self, t: &str) {
        self.str(t);
    }
    fn count(&mut self, n: usize) {
        self.u64(n as u64);
    }
    fn strs(&mut self, v: &[String]) {
        self.count(v.len());
        for s in v {
            self.str(s);
        }
    }
}

impl KeyInputs {
    /// The canonical manifest bytes (spec/keys.md).
    pub fn manifest(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.buf.extend_from_slice(MAGIC);
        e.tag("schema");
        e.u32(KEY_SCHEMA);
        e.tag("kind");
        e.str(&self.kind);
        e.tag("behaviour");
        e.str(&self.behaviour);
        e.tag("phases");
        e.count(self.phases.len());
        for (name, commands) in &self.phases {
            e.str(name);
            e.strs(commands);
        }
        e.tag("environment");
        e.count(self.environment.len());
        for (k, v) in &self.environment {
            e.str(k);
            e.str(v);
        }
        e.tag("sandbox");
        let s = &self.sandbox;
        e.str(&s.arch);
        e.u32(s.uid);
        e.u32(s.gid);
        e.u8(s.network as u8);
        e.str(&s.build_root);
        e.str(&s.install_root);
        e.str(&s.hostname);
        e.u32(s.umask);
        e.tag("config");
        e.count(self.config.len());
        for (k, v) in &self.config {
            e.str(k);
            e.strs(v);
        }
        e.tag("sources");
        e.count(self.sources.len());
        for id in &self.sources {
            e.bytes(id);
        }
        e.tag("dependencies");
        e.count(self.dependencies.len());
        for d in &self.dependencies {
            e.buf.extend_from_slice(d);
        }
        e.tag("end");
        e.buf
    }

    /// The key: blake3 of the manifest. The only way an [`ActionKey`] is
    /// made from key inputs (crate::plan calls it).
    pub fn key(&self) -> ActionKey {
        ActionKey::of_manifest(&self.manifest())
    }

    /// The example input of spec/keys.md, whose key is the golden vector
    /// (`spec/vectors/key_manifest.py` encodes the same input independently).
    /// Tests of code that reads manifests start from it too.
    pub fn example() -> KeyInputs {
        let mut environment = BTreeMap::new();
        environment.insert("PATH".to_string(), "/usr/bin:/bin".to_string());
        environment.insert("LC_ALL".to_string(), "C".to_string());
        let mut config = BTreeMap::new();
        config.insert("output".to_string(), vec!["/".to_string()]);
        KeyInputs {
            kind: "manual".into(),
            behaviour: "sandbox".into(),
            phases: vec![
                ("build-commands".into(), vec!["echo hi > x".into()]),
                (
                    "install-commands".into(),
                    vec!["make -j%{max-jobs} install".into()],
                ),
            ],
            environment,
            sandbox: SandboxSettings {
                arch: "x86_64".into(),
                uid: 0,
                gid: 0,
                network: false,
                build_root: "/build".into(),
                install_root: "/install".into(),
                hostname: "cas".into(),
                umask: 0o022,
            },
            config,
            sources: vec![b"local\0abc".to_vec()],
            dependencies: vec![[7u8; 32]],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden vector: if this fails, the encoding changed. Bump KEY_SCHEMA,
    /// update spec/keys.md, then update the vector.
    #[test]
    fn golden_key() {
        let k = KeyInputs::example();
        let m = k.manifest();
        assert_eq!(&m[..8], b"cas-key\0");
        assert_eq!(
            blake3::hash(&m).to_hex().as_str(),
            "d6016d8d4c34590b5ae7fc44955d6d1b66b8ba7bc156b0c3a0494b66e20e0a46",
        );
    }

    #[test]
    fn every_included_input_changes_the_key() {
        let base = KeyInputs::example().key();
        type Mutation = Box<dyn Fn(&mut KeyInputs)>;
        let mut muts: Vec<Mutation> = vec![
            Box::new(|k| k.kind = "make".into()),
            Box::new(|k| k.behaviour = "script".into()),
            Box::new(|k| k.phases[0].1[0].push(' ')),
            Box::new(|k| k.phases[0].0 = "configure-commands".into()),
            Box::new(|k| {
                k.environment.insert("A".into(), "1".into());
            }),
            Box::new(|k| k.sandbox.arch = "aarch64".into()),
            Box::new(|k| k.sandbox.uid = 1),
            Box::new(|k| k.sandbox.network = true),
            Box::new(|k| k.sandbox.umask = 0o002),
            Box::new(|k| {
                k.config.insert("include".into(), vec!["runtime".into()]);
            }),
            Box::new(|k| k.sources.push(vec![])),
            Box::new(|k| k.dependencies[0][0] ^= 1),
            Box::new(|k| k.dependencies.push([0; 32])),
        ];
        // Moving bytes between adjacent strings must not collide (length prefixes).
        muts.push(Box::new(|k| {
            k.phases[1].1 = vec!["make -j%{max-jobs}".into(), " install".into()];
        }));
        for (i, m) in muts.iter().enumerate() {
            let mut k = KeyInputs::example();
            m(&mut k);
            assert_ne!(k.key(), base, "mutation {i} did not change the key");
        }
    }
}
