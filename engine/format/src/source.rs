//! The `sources:` entries of an element, decoded into `cas_sources::Source`:
//! fields checked per source kind, local paths resolved against the project
//! root (and required to exist), URLs resolved through the project aliases,
//! checksums and commits checked.

use cas_sources::{Checksum, Source, SourceKind, SourceUrl};

use crate::project::{relative_inside, Project};
use crate::read::{Locate, Reader, Spanned};
use crate::yaml::{Map, Node};

pub const SOURCE_KINDS: &[&str] = &["local", "tar", "remote", "patch", "git", "deb", "cargo"];
const COMMON: &[&str] = &["kind", "directory", "keep-setuid"];

fn fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "local" => &["path"],
        "tar" => &["url", "sha256", "blake3", "base-dir"],
        "remote" => &["url", "sha256", "blake3", "filename", "executable"],
        "patch" => &["path", "strip"],
        "git" => &["url", "ref", "track", "keep-git"],
        "deb" => &["url", "sha256", "dpkg-database"],
        "cargo" => &["url", "vendor-dir", "crates"],
        _ => &[],
    }
}

/// Decode one `sources:` entry; errors go to `r`.
pub(crate) fn decode<L: Locate>(
    r: &mut Reader<L>,
    project: &Project,
    node: &Node,
) -> Option<Source> {
    let Some(map) = r.map(node, "sources") else {
        if node.is_null() {
            r.err(
                node.span,
                "empty source entry",
                "expected `kind: ...` and its fields",
            );
        }
        return None;
    };
    let Some(kind_node) = map.get("kind") else {
        r.err_help(
            node.span,
            "source without `kind`",
            "no `kind:`",
            format!("add `kind:` (one of {})", SOURCE_KINDS.join(", ")),
        );
        return None;
    };
    let kind = r.string(kind_node, "kind")?;
    if !SOURCE_KINDS.contains(&kind.value.as_str()) {
        let help = match crate::diagnostics::suggest(&kind.value, SOURCE_KINDS.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("source kinds are: {}", SOURCE_KINDS.join(", ")),
        };
        r.err_help(
            kind.span,
            format!("unknown source kind `{}`", kind.value),
            "unknown source kind",
            help,
        );
        return None;
    }
    let allowed: Vec<&str> = COMMON.iter().chain(fields(&kind.value)).copied().collect();
    r.check_keys(map, &allowed, &format!("a `{}` source", kind.value));
    let before = r.errors.len();

    let directory = map
        .get("directory")
        .and_then(|n| r.string(n, "directory"))
        .and_then(|d| {
            if let Some(p) = relative_inside(&d.value) {
                Some(p.to_string_lossy().into_owned())
            } else {
                r.err(
                    d.span,
                    "`directory` must be a relative path without `..`",
                    "invalid directory",
                );
                None
            }
        });
    let keep_setuid = map
        .get("keep-setuid")
        .and_then(|n| r.bool(n, "keep-setuid"))
        .unwrap_or(false);
    let k = kind.value.as_str();
    let kind = match k {
        "local" => SourceKind::Local {
            path: local_path(r, project, map, kind_node, k)?,
        },
        "patch" => {
            let path = local_path(r, project, map, kind_node, k)?;
            let strip = map
                .get("strip")
                .and_then(|n| r.u32(n, "strip"))
                .unwrap_or(1);
            SourceKind::Patch { path, strip }
        }
        "tar" => {
            let url = url(r, project, map, kind_node, k)?;
            let checksum = checksum(r, map, kind_node, k, true)?;
            let base_dir = map
                .get("base-dir")
                .and_then(|n| r.string(n, "base-dir"))
                .map(|s| s.value);
            SourceKind::Tar {
                url,
                checksum,
                base_dir,
            }
        }
        "remote" => {
            let url = url(r, project, map, kind_node, k)?;
            let checksum = checksum(r, map, kind_node, k, true)?;
            let filename = map
                .get("filename")
                .and_then(|n| r.string(n, "filename"))
                .and_then(|f| {
                    if f.value.is_empty()
                        || f.value.contains('/')
                        || f.value == "."
                        || f.value == ".."
                    {
                        r.err(
                            f.span,
                            "`filename` must be a plain file name",
                            "invalid file name",
                        );
                        None
                    } else {
                        Some(f.value)
                    }
                });
            let executable = map
                .get("executable")
                .and_then(|n| r.bool(n, "executable"))
                .unwrap_or(false);
            SourceKind::Remote {
                url,
                checksum,
                filename,
                executable,
            }
        }
        "git" => {
            let url = url(r, project, map, kind_node, k)?;
            let commit = match map.get("ref").and_then(|n| r.string(n, "ref")) {
                Some(c)
                    if c.value.len() == 40
                        && c.value
                            .bytes()
                            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
                {
                    c.value
                }
                Some(c) => {
                    r.err_help(
                        c.span,
                        "`ref` must be a full commit id (40 lowercase hex digits)",
                        "not a full commit id",
                        "pin the exact commit; `track:` names the branch to follow",
                    );
                    return None;
                }
                None => {
                    r.err(
                        kind_node.span,
                        "a `git` source needs `ref` (a full 40-hex commit id)",
                        "no `ref:`",
                    );
                    return None;
                }
            };
            let track = map
                .get("track")
                .and_then(|n| r.string(n, "track"))
                .map(|s| s.value);
            let keep_git = map
                .get("keep-git")
                .and_then(|n| r.bool(n, "keep-git"))
                .unwrap_or(false);
            SourceKind::Git {
                url,
                commit,
                track,
                keep_git,
            }
        }
        "deb" => {
            let url = url(r, project, map, kind_node, k)?;
            let checksum = checksum(r, map, kind_node, k, false)?;
            let database = map
                .get("dpkg-database")
                .and_then(|n| r.bool(n, "dpkg-database"))
                .unwrap_or(false);
            SourceKind::Deb {
                url,
                checksum,
                database,
            }
        }
        "cargo" => cargo(r, project, map, kind_node)?,
        _ => return None,
    };
    if r.errors.len() > before {
        return None;
    }
    Some(Source {
        kind,
        directory,
        keep_setuid,
    })
}

fn required<L: Locate>(
    r: &mut Reader<L>,
    map: &Map,
    kind_node: &Node,
    kind: &str,
    key: &str,
) -> Option<Spanned> {
    if let Some(n) = map.get(key) {
        r.string(n, key)
    } else {
        r.err(
            kind_node.span,
            format!("a `{kind}` source needs `{key}`"),
            &format!("no `{key}:`"),
        );
        None
    }
}

fn local_path<L: Locate>(
    r: &mut Reader<L>,
    project: &Project,
    map: &Map,
    kind_node: &Node,
    kind: &str,
) -> Option<std::path::PathBuf> {
    let p = required(r, map, kind_node, kind, "path")?;
    let Some(rel) = relative_inside(&p.value) else {
        r.err(
            p.span,
            "`path` must be relative to the project root, without leaving it",
            "not inside the project",
        );
        return None;
    };
    let abs = project.root.join(&rel);
    // A symlink on the way would read whatever it points at, on the host:
    // refused. The last component of a `local` path may be a symlink: it is
    // staged as the link itself, never followed.
    let components: Vec<_> = rel.components().collect();
    let checked = if kind == "patch" {
        components.len()
    } else {
        components.len().saturating_sub(1)
    };
    let mut prefix = std::path::PathBuf::new();
    for c in &components[..checked] {
        prefix.push(c);
        let here = project.root.join(&prefix);
        if here
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            let target = std::fs::read_link(&here)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            r.err_help(
                p.span,
                format!(
                    "`{}` goes through the symlink `{}` (to `{target}`)",
                    p.value,
                    prefix.display()
                ),
                "through a symlink",
                "a local source is read from inside the project only; name the link itself (or its directory) to stage it as a link",
            );
            return None;
        }
    }
    let ok = if kind == "patch" {
        abs.is_file()
    } else {
        abs.symlink_metadata().is_ok()
    };
    if !ok {
        r.err_help(
            p.span,
            format!("`{}` does not exist", p.value),
            "no such file",
            format!(
                "paths are relative to the project root `{}`",
                project.root.display()
            ),
        );
        return None;
    }
    Some(abs)
}

fn url<L: Locate>(
    r: &mut Reader<L>,
    project: &Project,
    map: &Map,
    kind_node: &Node,
    kind: &str,
) -> Option<SourceUrl> {
    let u = required(r, map, kind_node, kind, "url")?;
    let Some((prefix, rest)) = u.value.split_once(':') else {
        r.err_help(
            u.span,
            format!("`{}` is neither `alias:path` nor a full URL", u.value),
            "no alias or scheme",
            "write `alias:path` with an alias from project.yaml, or a full URL",
        );
        return None;
    };
    if let Some(base) = project.aliases.get(prefix) {
        return Some(SourceUrl {
            written: u.value.clone(),
            alias: Some(prefix.to_string()),
            // `''`: an alias served only by the user's mirrors.
            resolved: if base.is_empty() {
                String::new()
            } else {
                format!("{base}{rest}")
            },
        });
    }
    if rest.starts_with("//")
        && !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return Some(SourceUrl {
            written: u.value.clone(),
            alias: None,
            resolved: u.value.clone(),
        });
    }
    let help = match crate::diagnostics::suggest(prefix, project.aliases.keys().map(String::as_str))
    {
        Some(s) => format!("did you mean `{s}`?"),
        None if project.aliases.is_empty() => {
            "the project defines no aliases (`aliases:` in project.yaml)".to_string()
        }
        None => format!(
            "aliases of this project: {}",
            project
                .aliases
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let start = u.span.start as usize;
    let span = crate::diagnostics::Span::new(u.span.file, start, start + prefix.len() + 1);
    let span = if u.span.len() > prefix.len() {
        span
    } else {
        u.span
    };
    r.err_help(
        span,
        format!("unknown alias `{prefix}`"),
        "unknown alias",
        help,
    );
    None
}

/// A `cargo` source: the registry `url` (its base), `vendor-dir` (default
/// `vendor`, relative, no `..`), `crates` (each `name`, `version`, `sha256`).
fn cargo<L: Locate>(
    r: &mut Reader<L>,
    project: &Project,
    map: &Map,
    kind_node: &Node,
) -> Option<SourceKind> {
    let url = url(r, project, map, kind_node, "cargo")?;
    let vendor_dir = match map
        .get("vendor-dir")
        .and_then(|n| r.string(n, "vendor-dir"))
    {
        Some(v) => match relative_inside(&v.value) {
            Some(p) if !p.as_os_str().is_empty() => p.to_string_lossy().into_owned(),
            _ => {
                r.err(
                    v.span,
                    "`vendor-dir` is a relative directory without `..`",
                    "invalid directory",
                );
                return None;
            }
        },
        None => "vendor".to_string(),
    };
    let mut crates = Vec::new();
    let items = match map.get("crates").map(|n| (n, &n.value)) {
        Some((_, crate::yaml::Value::Seq(items))) => items.as_slice(),
        Some((n, _)) => {
            r.err(
                n.span,
                "`crates`: expected a list of crates",
                "expected a list",
            );
            &[]
        }
        None => &[],
    };
    for item in items {
        let Some(m) = r.map(item, "crates") else {
            continue;
        };
        r.check_keys(m, &["name", "version", "sha256"], "a crate");
        let name = m.get("name").and_then(|n| r.string(n, "name"));
        let version = m.get("version").and_then(|n| r.string(n, "version"));
        let sum = checksum(r, m, item, "crate", false);
        let (Some(n), Some(v)) = (name, version) else {
            r.err(
                item.span,
                "a crate needs `name` and `version`",
                "incomplete crate",
            );
            continue;
        };
        let plain = |s: &str| !s.is_empty() && !s.contains(['/', '\\']) && s != "." && s != "..";
        if !plain(&n.value) || !plain(&v.value) {
            r.err(
                item.span,
                "a crate's `name` and `version` are plain words (no `/`)",
                "invalid crate",
            );
            continue;
        }
        if let Some(c) = sum {
            crates.push(cas_sources::Crate {
                name: n.value,
                version: v.value,
                checksum: c,
            });
        }
    }
    Some(SourceKind::Cargo {
        url,
        vendor_dir,
        crates,
    })
}

fn checksum<L: Locate>(
    r: &mut Reader<L>,
    map: &Map,
    kind_node: &Node,
    kind: &str,
    allow_blake3: bool,
) -> Option<Checksum> {
    let sha = map.get("sha256").and_then(|n| r.string(n, "sha256"));
    let b3 = if allow_blake3 {
        map.get("blake3").and_then(|n| r.string(n, "blake3"))
    } else {
        None
    };
    let (value, make): (Spanned, fn(String) -> Checksum) = match (sha, b3) {
        (Some(s), None) => (s, Checksum::Sha256),
        (None, Some(b)) => (b, Checksum::Blake3),
        (Some(_), Some(b)) => {
            r.err(
                b.span,
                "give one checksum: `sha256` or `blake3`, not both",
                "second checksum",
            );
            return None;
        }
        (None, None) => {
            let which = if allow_blake3 {
                "`sha256` or `blake3`"
            } else {
                "`sha256`"
            };
            r.err(
                kind_node.span,
                format!("a `{kind}` source needs a checksum: {which}"),
                "no checksum",
            );
            return None;
        }
    };
    if value.value.len() != 64
        || !value
            .value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        r.err(
            value.span,
            "a checksum is 64 lowercase hex digits",
            "invalid checksum",
        );
        return None;
    }
    Some(make(value.value))
}
