//! Applying a patch with `patch(1)`. A failure names the patch file and the
//! hunks that did not apply (from patch's output, e.g. "Hunk #2 FAILED at 13.").

use std::path::Path;

use crate::error::{Result, SourceError};

/// Apply `patch_file` in `dir` with `patch -p<strip> --batch --forward`.
/// No backup or reject files are left behind.
pub fn apply_patch(patch_file: &Path, strip: u32, dir: &Path) -> Result<()> {
    let output = crate::host::command("patch")
        .arg(format!("-p{strip}"))
        .args([
            "--batch",
            "--forward",
            "--no-backup-if-mismatch",
            "--reject-file=-",
            "-i",
        ])
        .arg(patch_file)
        .current_dir(dir)
        .output()
        .map_err(|e| SourceError::io("cannot run `patch` for", patch_file, e))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(SourceError::PatchFailed {
        patch: patch_file.to_path_buf(),
        hunks: failed_hunks(&text),
        output: text.trim_end().to_string(),
    })
}

/// "file: Hunk #N FAILED at L." for each failed hunk, plus files patch
/// could not find and patches it found already applied.
pub fn failed_hunks(output: &str) -> Vec<String> {
    let mut current: Option<String> = None;
    let mut out = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        if let Some(f) = line
            .strip_prefix("patching file ")
            .or_else(|| line.strip_prefix("checking file "))
        {
            current = Some(f.trim_matches(|c| c == '\'' || c == '`').to_string());
        } else if line.starts_with("Hunk #") && line.contains("FAILED") {
            let hunk = line.trim_end_matches('.').to_string();
            out.push(match &current {
                Some(f) => format!("{f}: {hunk}"),
                None => hunk,
            });
        } else if line.starts_with("can't find file to patch") || line.contains("No file to patch")
        {
            out.push("a file to patch is missing".to_string());
        } else if line.starts_with("Reversed (or previously applied) patch detected") {
            out.push(match &current {
                Some(f) => format!("{f}: already applied"),
                None => "already applied".to_string(),
            });
        }
    }
    out
}
