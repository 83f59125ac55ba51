//! Text files: a unified diff (the `similar` crate), bounded in input, time
//! and output size.

use std::time::Duration;

use serde::Serialize;

/// Largest text (each side) that is diffed line by line.
pub const MAX_TEXT: usize = 4 << 20;
/// Largest diff kept; longer diffs are cut at a line and marked truncated.
pub const MAX_DIFF: usize = 32 << 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextDiff {
    /// The unified diff (`--- a/NAME`, `+++ b/NAME`, hunks with 3 lines of context).
    pub diff: String,
    pub truncated: bool,
}

/// UTF-8 without NUL bytes (and not empty-vs-binary ambiguous).
pub fn is_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

pub fn diff(a: &[u8], b: &[u8], name: &str) -> TextDiff {
    let mut truncated = false;
    let cut = |x: &[u8], truncated: &mut bool| -> String {
        if x.len() > MAX_TEXT {
            *truncated = true;
            String::from_utf8_lossy(&x[..MAX_TEXT]).into_owned()
        } else {
            String::from_utf8_lossy(x).into_owned()
        }
    };
    let (ta, tb) = (cut(a, &mut truncated), cut(b, &mut truncated));
    let d = similar::TextDiff::configure()
        .timeout(Duration::from_secs(2))
        .diff_lines(&ta, &tb);
    let full = d
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .missing_newline_hint(true)
        .to_string();
    let mut out = String::new();
    for line in full.split_inclusive('\n') {
        if out.len() + line.len() > MAX_DIFF {
            truncated = true;
            break;
        }
        out.push_str(line);
    }
    TextDiff {
        diff: out,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unified_diff_with_context() {
        let d = diff(b"a\nb\nc\n", b"a\nB\nc\n", "f.txt");
        assert_eq!(
            d.diff,
            "--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
        );
        assert!(!d.truncated);
    }

    #[test]
    fn large_diffs_are_bounded() {
        let a: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        let b: String = (0..100_000).map(|i| format!("LINE {i}\n")).collect();
        let d = diff(a.as_bytes(), b.as_bytes(), "big");
        assert!(d.truncated);
        assert!(d.diff.len() <= MAX_DIFF);
    }
}
