//! A feed: a directory of packages and its `Packages` index (each package's
//! control stanza plus where it is and its checksum), in the order given,
//! stanzas separated by a blank line; also `Packages.gz` (gzip, mtime 0).
//! For `.deb`: `Filename: ./<file>`, `Size`, `SHA256` (apt reads the
//! directory as a flat repository: `deb [trusted=yes] file:DIR ./`). For
//! `.ipk`: `Filename: <file>`, `Size`, `SHA256sum` (opkg's `src/gz`).

use std::io::Write;

use sha2::Digest;

use crate::control::{Control, Format};

/// The `Packages` index of packages `(control, file name, bytes)`.
pub fn index(format: Format, packages: &[(&Control, &str, &[u8])]) -> String {
    let mut out = String::new();
    for (i, (c, file, bytes)) in packages.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let sha = sha2::Sha256::digest(bytes);
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        let stanza = c.stanza();
        // the location fields go before Description (and its continuation lines)
        let (head, desc) = stanza.split_at(stanza.find("Description:").unwrap_or(stanza.len()));
        out.push_str(head);
        match format {
            Format::Deb => out.push_str(&format!(
                "Filename: ./{file}\nSize: {}\nSHA256: {hex}\n",
                bytes.len()
            )),
            Format::Ipk => out.push_str(&format!(
                "Filename: {file}\nSize: {}\nSHA256sum: {hex}\n",
                bytes.len()
            )),
        }
        out.push_str(desc);
    }
    out
}

/// `text` gzip-compressed, reproducibly.
pub fn gzip(text: &str) -> Vec<u8> {
    let mut w = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    w.write_all(text.as_bytes()).expect("writing to memory");
    w.finish().expect("writing to memory")
}
