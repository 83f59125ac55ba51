//! `ar` archives (static libraries, .deb): which members were added, removed
//! or changed (header fields and content; ELF members compared as ELF).

use object::read::archive::ArchiveFile;
use serde::Serialize;

use crate::content::{compare_members, field, Detail, MemberChange};

/// Most members listed.
pub const MAX_MEMBERS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArDiff {
    pub members: Vec<MemberChange>,
    pub truncated: bool,
}

struct Member<'a> {
    data: Option<&'a [u8]>,
    size: u64,
    date: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mode: Option<u64>,
}

fn members(data: &[u8]) -> Result<Vec<(String, Member<'_>)>, String> {
    let ar = ArchiveFile::parse(data).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for m in ar.members() {
        let m = m.map_err(|e| e.to_string())?;
        out.push((
            String::from_utf8_lossy(m.name()).into_owned(),
            Member {
                data: m.data(data).ok(),
                size: m.size(),
                date: m.date(),
                uid: m.uid(),
                gid: m.gid(),
                mode: m.mode(),
            },
        ));
    }
    Ok(out)
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

pub fn diff(a: &[u8], b: &[u8], depth: usize) -> Detail {
    let (ma, mb) = match (members(a), members(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) => {
            return Detail::Unreadable {
                reason: format!("A is not a readable ar archive: {e}"),
            }
        }
        (_, Err(e)) => {
            return Detail::Unreadable {
                reason: format!("B is not a readable ar archive: {e}"),
            }
        }
    };
    let (members, truncated) = compare_members(
        ma,
        mb,
        depth,
        MAX_MEMBERS,
        |m| m.data,
        |x, y| {
            let mut f = Vec::new();
            field(&mut f, "size", x.size, y.size);
            field(&mut f, "mtime", opt(x.date), opt(y.date));
            field(&mut f, "uid", opt(x.uid), opt(y.uid));
            field(&mut f, "gid", opt(x.gid), opt(y.gid));
            field(
                &mut f,
                "mode",
                x.mode.map(|m| format!("{m:o}")).unwrap_or_default(),
                y.mode.map(|m| format!("{m:o}")).unwrap_or_default(),
            );
            f
        },
    );
    Detail::Ar(ArDiff { members, truncated })
}
