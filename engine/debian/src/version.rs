//! Debian version ordering (deb-version(7)): `[epoch:]upstream[-revision]`,
//! compared epoch first (numerically), then upstream, then revision, each
//! with dpkg's `verrevcmp`: alternating non-digit parts (letters sort before
//! non-letters, `~` before everything, even the end) and digit parts
//! (numerically).

use std::cmp::Ordering;

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub epoch: u64,
    pub upstream: String,
    pub revision: String,
}

impl Version {
    /// Parse leniently, as dpkg compares: a missing or unreadable epoch is 0.
    pub fn parse(s: &str) -> Version {
        let s = s.trim();
        let (epoch, rest) = match s.split_once(':') {
            Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (e.parse().unwrap_or(0), r)
            }
            _ => (0, s),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u.to_owned(), r.to_owned()),
            None => (rest.to_owned(), String::new()),
        };
        Version {
            epoch,
            upstream,
            revision,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// dpkg's weight of one character of a non-digit part.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// A relation operator of a versioned dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    /// `<<`, `<=`, `=`, `>=`, `>>` (and the obsolete `<`, `>`, meaning `<=`, `>=`).
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    /// Whether `have` satisfies `self want`.
    pub fn holds(self, have: &Version, want: &Version) -> bool {
        let o = have.cmp(want);
        match self {
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Eq => o == Ordering::Equal,
            Op::Ge => o != Ordering::Less,
            Op::Gt => o == Ordering::Greater,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(a: &str, b: &str) {
        assert_eq!(
            Version::parse(a).cmp(&Version::parse(b)),
            Ordering::Less,
            "{a} < {b}"
        );
        assert_eq!(
            Version::parse(b).cmp(&Version::parse(a)),
            Ordering::Greater,
            "{b} > {a}"
        );
    }

    #[test]
    fn dpkg_ordering() {
        // Cases from dpkg's own test suite and Debian policy.
        lt("1.0~rc1", "1.0");
        lt("1.0", "1.0-1");
        lt("1.0-1", "1.0-2");
        lt("1.0", "1:0.1");
        lt("2.36-9", "2.36-9+deb12u14");
        lt("2.36-9+deb12u3", "2.36-9+deb12u14");
        lt("1.2.3", "1.2.10");
        lt("1.0a", "1.0b");
        lt("1.0a", "1.0+");
        lt("1.0~~", "1.0~");
        lt("1.0~", "1.0");
        lt("9", "10");
        lt("1.001", "1.2");
        assert_eq!(
            Version::parse("1.01").cmp(&Version::parse("1.1")),
            Ordering::Equal
        );
        assert_eq!(
            Version::parse("0:1.0").cmp(&Version::parse("1.0")),
            Ordering::Equal
        );
        assert_eq!(Version::parse("1:2.3-4").to_string(), "1:2.3-4");
        let v = Version::parse("1:2.3-4-5");
        assert_eq!(
            (v.epoch, v.upstream.as_str(), v.revision.as_str()),
            (1, "2.3-4", "5")
        );
    }

    #[test]
    fn operators() {
        let v = |s| Version::parse(s);
        assert!(Op::Ge.holds(&v("2.36-9"), &v("2.34")));
        assert!(!Op::Lt.holds(&v("2.36"), &v("2.36")));
        assert!(Op::Le.holds(&v("2.36"), &v("2.36")));
        assert!(Op::Gt.holds(&v("2.36-1"), &v("2.36")));
        assert!(Op::Eq.holds(&v("0:1"), &v("1")));
        assert_eq!(Op::parse(">"), Some(Op::Ge));
        assert_eq!(Op::parse("=>"), None);
    }
}
