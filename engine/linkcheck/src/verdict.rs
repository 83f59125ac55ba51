//! The result of a libraries check, and how it is recorded: a blob beside
//! the element's result (a note named `libraries`, spec/store.md).
//!
//! ```text
//! cas-libraries 1
//! against <64 hex: what the verdict was computed from>
//! checked <number of ELF files checked>
//! problem <file>\t<library>\t<library|interpreter>\t<build-only ELEMENT|missing>
//! ```
//!
//! Problems are in file order, then in the order the file asks for its
//! libraries (the interpreter first). `\`, tab and newline in a field are
//! written `\\`, `\t`, `\n`.

use crate::LinkCheckError;

/// Where a library that the runtime closure lacks was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Only in the output of this build dependency.
    BuildOnly(String),
    /// In nothing the element staged.
    Missing,
}

/// One library an ELF file of the output would not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, absolute in the output (`/usr/bin/a`).
    pub file: String,
    /// The `DT_NEEDED` name (`libz.so.1`) or the interpreter's path.
    pub library: String,
    pub interpreter: bool,
    pub found: Found,
}

/// Every problem of one output, and what it was computed against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// blake3 of the check's inputs (crate::check::Inputs::against).
    pub against: [u8; 32],
    /// ELF files with dynamic-linking requests that were checked.
    pub checked: u64,
    pub problems: Vec<Problem>,
}

const MAGIC: &str = "cas-libraries 1";

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn unescape(s: &str) -> Result<String, LinkCheckError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            other => {
                return Err(LinkCheckError::Malformed(format!(
                    "bad escape `\\{}`",
                    other.map(String::from).unwrap_or_default()
                )))
            }
        }
    }
    Ok(out)
}

impl Verdict {
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!(
            "{MAGIC}\nagainst {}\nchecked {}\n",
            hex(&self.against),
            self.checked
        );
        for p in &self.problems {
            let found = match &p.found {
                Found::BuildOnly(e) => format!("build-only {}", escape(e)),
                Found::Missing => "missing".into(),
            };
            s += &format!(
                "problem {}\t{}\t{}\t{found}\n",
                escape(&p.file),
                escape(&p.library),
                if p.interpreter {
                    "interpreter"
                } else {
                    "library"
                }
            );
        }
        s.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Verdict, LinkCheckError> {
        let bad = |m: &str| LinkCheckError::Malformed(m.to_string());
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad("no `cas-libraries 1` line"));
        }
        let against = lines
            .next()
            .and_then(|l| l.strip_prefix("against "))
            .and_then(unhex)
            .ok_or_else(|| bad("no `against` line"))?;
        let checked = lines
            .next()
            .and_then(|l| l.strip_prefix("checked "))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("no `checked` line"))?;
        let mut problems = Vec::new();
        for l in lines {
            let rest = l.strip_prefix("problem ").ok_or_else(|| bad(l))?;
            let f: Vec<&str> = rest.split('\t').collect();
            let [file, library, what, found] = f[..] else {
                return Err(bad(l));
            };
            let found = match found.strip_prefix("build-only ") {
                Some(e) => Found::BuildOnly(unescape(e)?),
                None if found == "missing" => Found::Missing,
                None => return Err(bad(l)),
            };
            problems.push(Problem {
                file: unescape(file)?,
                library: unescape(library)?,
                interpreter: match what {
                    "interpreter" => true,
                    "library" => false,
                    _ => return Err(bad(l)),
                },
                found,
            });
        }
        let v = Verdict {
            against,
            checked,
            problems,
        };
        if v.encode() != bytes {
            return Err(bad("not in canonical form"));
        }
        Ok(v)
    }

    /// One line per problem, as a build or `cas show` prints it.
    pub fn lines(&self) -> Vec<String> {
        self.problems.iter().map(Problem::describe).collect()
    }
}

impl Problem {
    pub fn describe(&self) -> String {
        let what = if self.interpreter {
            format!("interpreter {}", self.library)
        } else {
            self.library.clone()
        };
        match &self.found {
            Found::BuildOnly(e) => format!(
                "{} needs {what}, found only in build dependency {e} (declare what provides it in `depends` or `runtime-depends`; when {e} is a whole toolchain base, depend at run time on an element of just the runtime packages instead, e.g. libc6 and libgcc-s1 pinned by `cas deb lock` (spec/format.md, \"Run-time libraries from a Debian base\"))",
                self.file
            ),
            Found::Missing => format!(
                "{} needs {what}, which nothing in its runtime closure provides",
                self.file
            ),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_encoding_round_trips_and_is_strict() {
        let v = Verdict {
            against: [7; 32],
            checked: 2,
            problems: vec![
                Problem {
                    file: "/usr/bin/a".into(),
                    library: "/lib64/ld-linux-x86-64.so.2".into(),
                    interpreter: true,
                    found: Found::Missing,
                },
                Problem {
                    file: "/usr/bin/odd\tname".into(),
                    library: "libo.so.1".into(),
                    interpreter: false,
                    found: Found::BuildOnly("libs/o.yaml".into()),
                },
            ],
        };
        let text = String::from_utf8(v.encode()).unwrap();
        assert_eq!(
            text,
            "cas-libraries 1\n\
             against 0707070707070707070707070707070707070707070707070707070707070707\n\
             checked 2\n\
             problem /usr/bin/a\t/lib64/ld-linux-x86-64.so.2\tinterpreter\tmissing\n\
             problem /usr/bin/odd\\tname\tlibo.so.1\tlibrary\tbuild-only libs/o.yaml\n"
        );
        assert_eq!(Verdict::decode(text.as_bytes()).unwrap(), v);
        for bad in [
            text.replace("checked 2", "checked 02"),
            text.replace("missing", "gone"),
            text.replace("cas-libraries 1", "cas-libraries 2"),
            format!("{text}\n"),
        ] {
            assert!(Verdict::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
