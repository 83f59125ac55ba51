//! The common `ar` format, as `dpkg-deb` writes it: the `!<arch>\n` magic,
//! then per member a 60-byte header (name, mtime, uid 0, gid 0, mode 100644,
//! size, "`\n") and the data, padded with `\n` to an even length.

/// An archive of `members` (name, bytes), in order, every mtime `mtime`.
/// Names are at most 15 bytes (no GNU long-name table).
pub fn archive(members: &[(&str, &[u8])], mtime: u64) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        assert!(name.len() <= 15, "ar member name too long: {name}");
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            mtime,
            0,
            0,
            "100644",
            data.len()
        );
        debug_assert_eq!(header.len(), 60);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn golden_archive() {
        let a = super::archive(&[("debian-binary", b"2.0\n"), ("x", b"odd")], 315_532_800);
        let expected = b"!<arch>\n\
debian-binary   315532800   0     0     100644  4         `\n2.0\n\
x               315532800   0     0     100644  3         `\nodd\n";
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(expected)
        );
    }
}
