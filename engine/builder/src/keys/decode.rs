//! Decoding key input manifests (spec/keys.md, the current schema) back into
//! [`KeyInputs`], and source identities (spec/sources.md §1) into fields.
//! The decoder is strict: every tag is checked, and decoding then
//! re-encoding must give the same bytes.

use std::collections::BTreeMap;

use super::{KeyInputs, SandboxSettings, KEY_SCHEMA, MAGIC};

/// Where and why a manifest does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: String,
}

struct Decoder<'a> {
    b: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, DecodeError>;

impl<'a> Decoder<'a> {
    fn err<T>(&self, reason: impl Into<String>) -> R<T> {
        Err(DecodeError {
            offset: self.pos,
            reason: reason.into(),
        })
    }
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.b.len() => {
                let s = &self.b[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => self.err(format!("truncated: {n} more bytes expected")),
        }
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> R<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> R<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self) -> R<usize> {
        let n = self.u64()?;
        if n > (self.b.len() - self.pos) as u64 {
            return self.err(format!(
                "length {n} is longer than the rest of the manifest"
            ));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> R<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
    fn str(&mut self) -> R<String> {
        let at = self.pos;
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError {
            offset: at,
            reason: "string is not UTF-8".into(),
        })
    }
    fn tag(&mut self, t: &str) -> R<()> {
        let at = self.pos;
        let got = self.bytes()?;
        if got != t.as_bytes() {
            return Err(DecodeError {
                offset: at,
                reason: format!(
                    "expected tag {t:?}, found {:?}",
                    String::from_utf8_lossy(got)
                ),
            });
        }
        Ok(())
    }
    /// A count whose items each take at least `min` bytes.
    fn count(&mut self, min: usize) -> R<usize> {
        let n = self.u64()?;
        if n.saturating_mul(min.max(1) as u64) > (self.b.len() - self.pos) as u64 {
            return self.err(format!(
                "count {n} is larger than the rest of the manifest allows"
            ));
        }
        Ok(n as usize)
    }
    fn strs(&mut self) -> R<Vec<String>> {
        let n = self.count(8)?;
        (0..n).map(|_| self.str()).collect()
    }
}

/// Decodes a manifest.
pub fn decode(bytes: &[u8]) -> Result<KeyInputs, DecodeError> {
    let mut d = Decoder { b: bytes, pos: 0 };
    if d.take(8)? != MAGIC {
        return Err(DecodeError {
            offset: 0,
            reason: "not a key manifest (bad magic)".into(),
        });
    }
    d.tag("schema")?;
    let schema = d.u32()?;
    if schema != KEY_SCHEMA {
        return d.err(format!(
            "schema {schema} (this cas reads schema {KEY_SCHEMA})"
        ));
    }
    d.tag("kind")?;
    let kind = d.str()?;
    d.tag("behaviour")?;
    let behaviour = d.str()?;
    d.tag("phases")?;
    let n = d.count(16)?;
    let mut phases = Vec::with_capacity(n);
    for _ in 0..n {
        phases.push((d.str()?, d.strs()?));
    }
    d.tag("environment")?;
    let n = d.count(16)?;
    let mut environment = BTreeMap::new();
    for _ in 0..n {
        let at = d.pos;
        let k = d.str()?;
        let v = d.str()?;
        if let Some((last, _)) = environment.last_key_value() {
            if *last >= k {
                return Err(DecodeError {
                    offset: at,
                    reason: format!("environment not sorted at {k:?}"),
                });
            }
        }
        environment.insert(k, v);
    }
    d.tag("sandbox")?;
    let sandbox = SandboxSettings {
        arch: d.str()?,
        uid: d.u32()?,
        gid: d.u32()?,
        network: match d.u8()? {
            0 => false,
            1 => true,
            v => return d.err(format!("network flag {v} is not 0 or 1")),
        },
        build_root: d.str()?,
        install_root: d.str()?,
        hostname: d.str()?,
        umask: d.u32()?,
    };
    d.tag("config")?;
    let n = d.count(16)?;
    let mut config = BTreeMap::new();
    for _ in 0..n {
        let at = d.pos;
        let k = d.str()?;
        let v = d.strs()?;
        if let Some((last, _)) = config.last_key_value() {
            if *last >= k {
                return Err(DecodeError {
                    offset: at,
                    reason: format!("config not sorted at {k:?}"),
                });
            }
        }
        config.insert(k, v);
    }
    d.tag("sources")?;
    let n = d.count(8)?;
    let mut sources = Vec::with_capacity(n);
    for _ in 0..n {
        sources.push(d.bytes()?.to_vec());
    }
    d.tag("dependencies")?;
    let n = d.count(32)?;
    let mut dependencies = Vec::with_capacity(n);
    for _ in 0..n {
        let mut a = [0u8; 32];
        a.copy_from_slice(d.take(32)?);
        dependencies.push(a);
    }
    d.tag("end")?;
    if d.pos != bytes.len() {
        return d.err(format!("{} trailing bytes", bytes.len() - d.pos));
    }
    let k = KeyInputs {
        kind,
        behaviour,
        phases,
        environment,
        sandbox,
        config,
        sources,
        dependencies,
    };
    if k.manifest() != bytes {
        return Err(DecodeError {
            offset: 0,
            reason: "does not re-encode to the same bytes".into(),
        });
    }
    Ok(k)
}

/// A decoded source identity (spec/sources.md §1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity {
    pub kind: String,
    /// The kind's fields in order, e.g. `url`, `sha256`, `base-dir`.
    pub fields: Vec<(String, String)>,
}

impl SourceIdentity {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes a source identity; `None` if it does not follow spec/sources.md.
pub fn decode_source(bytes: &[u8]) -> Option<SourceIdentity> {
    let mut d = Decoder { b: bytes, pos: 0 };
    let opt = |d: &mut Decoder<'_>| -> R<Option<String>> {
        match d.u8()? {
            0 => Ok(None),
            1 => Ok(Some(d.str()?)),
            _ => d.err("bad option byte"),
        }
    };
    let boolean = |d: &mut Decoder<'_>| -> R<String> {
        match d.u8()? {
            0 => Ok("false".into()),
            1 => Ok("true".into()),
            _ => d.err("bad bool byte"),
        }
    };
    let run = |d: &mut Decoder<'_>| -> R<SourceIdentity> {
        if d.str()? != "cas-source-1" {
            return d.err("not a source identity");
        }
        let kind = d.str()?;
        let mut f: Vec<(String, String)> = Vec::new();
        let digest = |d: &mut Decoder<'_>| -> R<String> { Ok(hex::encode(d.take(32)?)) };
        match kind.as_str() {
            "local" => f.push(("tree".into(), digest(d)?)),
            "tar" | "remote" | "deb" | "deb-dpkg" => {
                f.push(("url".into(), d.str()?));
                let alg = d.str()?;
                let hex = d.str()?;
                f.push((alg, hex));
                if kind == "tar" {
                    f.push(("base-dir".into(), opt(d)?.unwrap_or_else(|| "-".into())));
                }
                if kind == "deb-dpkg" {
                    f.push(("dpkg-database".into(), "true".into()));
                }
                if kind == "remote" {
                    f.push(("filename".into(), d.str()?));
                    f.push(("executable".into(), boolean(d)?));
                }
            }
            "git" => {
                f.push(("url".into(), d.str()?));
                f.push(("commit".into(), d.str()?));
                f.push(("keep-git".into(), boolean(d)?));
            }
            "patch" => {
                f.push(("patch".into(), digest(d)?));
                f.push(("strip".into(), d.u32()?.to_string()));
            }
            _ => return d.err("unknown source kind"),
        }
        f.push(("directory".into(), opt(d)?.unwrap_or_else(|| "-".into())));
        f.push(("keep-setuid".into(), boolean(d)?));
        if d.pos != d.b.len() {
            return d.err("trailing bytes");
        }
        Ok(SourceIdentity { kind, fields: f })
    };
    run(&mut d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_inverts_encode() {
        let k = KeyInputs::example();
        assert_eq!(decode(&k.manifest()).unwrap(), k);
    }

    #[test]
    fn every_truncation_and_many_corruptions_are_errors_not_panics() {
        let m = KeyInputs::example().manifest();
        for n in 0..m.len() {
            assert!(decode(&m[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        for i in 0..m.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut c = m.clone();
                c[i] ^= bit;
                let _ = decode(&c);
            }
        }
        let mut long = m.clone();
        long.push(0);
        assert!(decode(&long).is_err());
    }

    #[test]
    fn source_identities_decode() {
        // The tar example of spec/sources.md.
        let mut b = Vec::new();
        let s = |b: &mut Vec<u8>, v: &str| {
            b.extend_from_slice(&(v.len() as u64).to_le_bytes());
            b.extend_from_slice(v.as_bytes());
        };
        s(&mut b, "cas-source-1");
        s(&mut b, "tar");
        s(&mut b, "upstream:hello-2.10.tar.gz");
        s(&mut b, "sha256");
        s(&mut b, &"ab".repeat(32));
        b.push(0);
        b.push(1);
        s(&mut b, "src");
        b.push(0);
        let id = decode_source(&b).unwrap();
        assert_eq!(id.kind, "tar");
        assert_eq!(id.get("sha256"), Some("ab".repeat(32).as_str()));
        assert_eq!(id.get("directory"), Some("src"));
        assert_eq!(id.get("base-dir"), Some("-"));
        for n in 0..b.len() {
            assert!(decode_source(&b[..n]).is_none());
        }
    }
}
