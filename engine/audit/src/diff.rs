//! Tree diff: two trees of the store compared path by path. Identical
//! subtrees (same digest) are never descended into. For a changed file, the
//! content is compared by format ([`crate::content`]).

use serde::Serialize;

use cas_store::{Entry, EntryKind, Store, TreeDigest};

use crate::content::{self, Detail, MAX_CONTENT};
use crate::error::Result;

/// Most changes listed (then `truncated`).
pub const MAX_CHANGES: usize = 10_000;
/// Most changed files whose content is compared.
pub const MAX_DETAILS: usize = 200;

/// One side of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Octal permission bits, e.g. `0755`.
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Blob digest (files) or tree digest (directories).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl EntryInfo {
    pub fn of(e: &Entry) -> EntryInfo {
        let mode = format!("{:04o}", e.mode);
        match &e.kind {
            EntryKind::File { digest, size } => EntryInfo {
                kind: "file",
                mode,
                size: Some(*size),
                digest: Some(digest.to_hex()),
                target: None,
            },
            EntryKind::Dir { digest } => EntryInfo {
                kind: "dir",
                mode,
                size: None,
                digest: Some(digest.to_hex()),
                target: None,
            },
            EntryKind::Symlink { target } => EntryInfo {
                kind: "symlink",
                mode,
                size: None,
                digest: None,
                target: Some(String::from_utf8_lossy(target).into_owned()),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub a: Option<EntryInfo>,
    pub b: Option<EntryInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeDiff {
    pub a: String,
    pub b: String,
    pub identical: bool,
    pub changes: Vec<Change>,
    pub truncated: bool,
}

/// Options of a diff.
#[derive(Debug, Clone, Copy)]
pub struct DiffOptions {
    /// Compare the content of changed files (text, ELF, ar, tar, gzip).
    pub content: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions { content: true }
    }
}

struct Walker<'a> {
    store: &'a Store,
    opts: DiffOptions,
    changes: Vec<Change>,
    details: usize,
    truncated: bool,
}

fn join(prefix: &str, name: &[u8]) -> String {
    let n = String::from_utf8_lossy(name);
    if prefix.is_empty() {
        n.into_owned()
    } else {
        format!("{prefix}/{n}")
    }
}

impl Walker<'_> {
    fn push(&mut self, c: Change) -> bool {
        if self.changes.len() >= MAX_CHANGES {
            self.truncated = true;
            return false;
        }
        self.changes.push(c);
        true
    }

    /// Every entry below `tree` as added (`b`) or removed (`a`).
    fn one_side(&mut self, tree: &TreeDigest, prefix: &str, added: bool) -> Result<()> {
        for e in self.store.get_tree(tree)?.entries {
            let path = join(prefix, &e.name);
            let info = Some(EntryInfo::of(&e));
            let c = if added {
                Change {
                    path: path.clone(),
                    change: "added",
                    a: None,
                    b: info,
                    detail: None,
                }
            } else {
                Change {
                    path: path.clone(),
                    change: "removed",
                    a: info,
                    b: None,
                    detail: None,
                }
            };
            if !self.push(c) {
                return Ok(());
            }
            if let EntryKind::Dir { digest } = &e.kind {
                self.one_side(digest, &path, added)?;
            }
        }
        Ok(())
    }

    fn walk(&mut self, a: &TreeDigest, b: &TreeDigest, prefix: &str) -> Result<()> {
        if a == b || self.truncated {
            return Ok(());
        }
        let ta = self.store.get_tree(a)?.entries;
        let tb = self.store.get_tree(b)?.entries;
        let (mut i, mut j) = (0, 0);
        while i < ta.len() || j < tb.len() {
            if self.truncated {
                return Ok(());
            }
            let order = match (ta.get(i), tb.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let e = &ta[i];
                    let path = join(prefix, &e.name);
                    self.push(Change {
                        path: path.clone(),
                        change: "removed",
                        a: Some(EntryInfo::of(e)),
                        b: None,
                        detail: None,
                    });
                    if let EntryKind::Dir { digest } = &e.kind {
                        self.one_side(digest, &path, false)?;
                    }
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let e = &tb[j];
                    let path = join(prefix, &e.name);
                    self.push(Change {
                        path: path.clone(),
                        change: "added",
                        a: None,
                        b: Some(EntryInfo::of(e)),
                        detail: None,
                    });
                    if let EntryKind::Dir { digest } = &e.kind {
                        self.one_side(digest, &path, true)?;
                    }
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (x, y) = (&ta[i], &tb[j]);
                    i += 1;
                    j += 1;
                    if x == y {
                        continue;
                    }
                    let path = join(prefix, &x.name);
                    if let (EntryKind::Dir { digest: da }, EntryKind::Dir { digest: db }) =
                        (&x.kind, &y.kind)
                    {
                        if x.mode != y.mode {
                            self.push(Change {
                                path: path.clone(),
                                change: "changed",
                                a: Some(EntryInfo::of(x)),
                                b: Some(EntryInfo::of(y)),
                                detail: None,
                            });
                        }
                        self.walk(da, db, &path)?;
                    } else {
                        let detail = self.content(x, y, &path)?;
                        self.push(Change {
                            path: path.clone(),
                            change: "changed",
                            a: Some(EntryInfo::of(x)),
                            b: Some(EntryInfo::of(y)),
                            detail,
                        });
                        // A directory replaced by something else: list what it held.
                        if let EntryKind::Dir { digest } = &x.kind {
                            self.one_side(digest, &path, false)?;
                        }
                        if let EntryKind::Dir { digest } = &y.kind {
                            self.one_side(digest, &path, true)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn content(&mut self, x: &Entry, y: &Entry, path: &str) -> Result<Option<Detail>> {
        let (
            EntryKind::File {
                digest: da,
                size: sa,
            },
            EntryKind::File {
                digest: db,
                size: sb,
            },
        ) = (&x.kind, &y.kind)
        else {
            return Ok(None);
        };
        if da == db || !self.opts.content || self.details >= MAX_DETAILS {
            return Ok(None);
        }
        self.details += 1;
        if *sa > MAX_CONTENT || *sb > MAX_CONTENT {
            return Ok(Some(Detail::TooLarge { limit: MAX_CONTENT }));
        }
        let a = self.store.read_blob(da)?;
        let b = self.store.read_blob(db)?;
        let name = path.rsplit('/').next().unwrap_or(path);
        Ok(Some(content::compare(&a, &b, name, 0)))
    }
}

/// Compares two trees of `store`.
pub fn diff_trees(
    store: &Store,
    a: &TreeDigest,
    b: &TreeDigest,
    opts: DiffOptions,
) -> Result<TreeDiff> {
    let mut w = Walker {
        store,
        opts,
        changes: Vec::new(),
        details: 0,
        truncated: false,
    };
    w.walk(a, b, "")?;
    Ok(TreeDiff {
        a: a.to_hex(),
        b: b.to_hex(),
        identical: a == b,
        changes: w.changes,
        truncated: w.truncated,
    })
}

/// Human-readable lines for a diff (what `cas diff` prints without `--json`).
pub fn render(d: &TreeDiff) -> String {
    let mut s = String::new();
    for c in &d.changes {
        let side = |e: &Option<EntryInfo>| match e {
            None => "-".to_string(),
            Some(e) => match e.kind {
                "file" => format!(
                    "file {} {} bytes {}",
                    e.mode,
                    e.size.unwrap_or(0),
                    &e.digest.as_deref().unwrap_or("")
                        [..12.min(e.digest.as_deref().unwrap_or("").len())]
                ),
                "dir" => format!("dir {}", e.mode),
                _ => format!("symlink -> {}", e.target.as_deref().unwrap_or("")),
            },
        };
        match c.change {
            "added" => s.push_str(&format!("added    {}  ({})\n", c.path, side(&c.b))),
            "removed" => s.push_str(&format!("removed  {}  ({})\n", c.path, side(&c.a))),
            _ => s.push_str(&format!(
                "changed  {}  ({} => {})\n",
                c.path,
                side(&c.a),
                side(&c.b)
            )),
        }
        if let Some(d) = &c.detail {
            render_detail(d, "    ", &mut s);
        }
    }
    if d.truncated {
        s.push_str(&format!(
            "... more than {MAX_CHANGES} changes; the list is cut\n"
        ));
    }
    s
}

fn render_detail(d: &Detail, indent: &str, s: &mut String) {
    use std::fmt::Write;
    let deeper = format!("{indent}    ");
    match d {
        Detail::Text(t) => {
            for line in t.diff.lines() {
                let _ = writeln!(s, "{indent}{line}");
            }
            if t.truncated {
                let _ = writeln!(s, "{indent}(diff truncated)");
            }
        }
        Detail::Elf(e) => {
            for f in &e.header {
                let _ = writeln!(s, "{indent}ELF header {}: {} => {}", f.field, f.a, f.b);
            }
            if e.sections.is_empty() {
                let _ = writeln!(s, "{indent}ELF: no section differs");
            }
            for sec in &e.sections {
                let size = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
                let _ = writeln!(
                    s,
                    "{indent}ELF section {} {} ({} => {} bytes)",
                    sec.name,
                    sec.change,
                    size(sec.size_a),
                    size(sec.size_b)
                );
                if let Some(at) = sec.first_difference {
                    let _ = writeln!(s, "{indent}  first difference at offset {at:#x}:");
                    for (side, lines) in [("-", &sec.hex_a), ("+", &sec.hex_b)] {
                        for l in lines {
                            let _ = writeln!(s, "{indent}  {side} {l}");
                        }
                    }
                }
                if let Some(d) = &sec.disassembly {
                    let _ = writeln!(s, "{indent}  disassembly ({}):", d.tool);
                    for (side, lines) in [("-", &d.a), ("+", &d.b)] {
                        for l in lines {
                            let _ = writeln!(s, "{indent}  {side} {l}");
                        }
                    }
                }
            }
            for sym in &e.symbols {
                let _ = writeln!(
                    s,
                    "{indent}symbol {} {} ({} => {})",
                    sym.name,
                    sym.change,
                    sym.a.as_deref().unwrap_or("-"),
                    sym.b.as_deref().unwrap_or("-")
                );
            }
            if e.symbols_truncated {
                let _ = writeln!(s, "{indent}(more symbols differ)");
            }
        }
        Detail::Ar(a) => render_members("ar member", &a.members, a.truncated, indent, s),
        Detail::Tar(t) => render_members("tar member", &t.members, t.truncated, indent, s),
        Detail::Gzip(g) => {
            for f in &g.header {
                let _ = writeln!(s, "{indent}gzip header {}: {} => {}", f.field, f.a, f.b);
            }
            if g.content_identical {
                let _ = writeln!(s, "{indent}gzip content identical");
            }
            if let Some(c) = &g.content {
                let _ = writeln!(s, "{indent}gzip content differs:");
                render_detail(c, &deeper, s);
            }
        }
        Detail::Xz(x) => {
            if x.content_identical {
                let _ = writeln!(s, "{indent}xz content identical");
            }
            if let Some(c) = &x.content {
                let _ = writeln!(s, "{indent}xz content differs:");
                render_detail(c, &deeper, s);
            }
        }
        Detail::Binary {
            size_a,
            size_b,
            first_difference,
        } => {
            let at = first_difference
                .map(|p| format!(", first at byte {p}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{indent}binary files differ ({size_a} => {size_b} bytes{at})"
            );
        }
        Detail::TooLarge { limit } => {
            let _ = writeln!(s, "{indent}too large to compare (over {limit} bytes)");
        }
        Detail::Unreadable { reason } => {
            let _ = writeln!(s, "{indent}{reason}");
        }
    }
}

fn render_members(
    what: &str,
    members: &[content::MemberChange],
    truncated: bool,
    indent: &str,
    s: &mut String,
) {
    use std::fmt::Write;
    let deeper = format!("{indent}    ");
    for m in members {
        let _ = writeln!(s, "{indent}{what} {} {}", m.name, m.change);
        for f in &m.fields {
            let _ = writeln!(s, "{deeper}{}: {} => {}", f.field, f.a, f.b);
        }
        if let Some(d) = &m.detail {
            render_detail(d, &deeper, s);
        }
    }
    if truncated {
        let _ = writeln!(s, "{indent}(more members differ)");
    }
}
