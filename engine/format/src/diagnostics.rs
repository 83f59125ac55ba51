//! Diagnostics: every error of the format crate is one `Error`, a miette
//! report with the file, a span and a label. A run collects all of them in
//! `Diagnostics` (sorted by file and position) instead of stopping at the
//! first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// Index of a file in `Files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A byte range in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        let start = start.min(u32::MAX as usize) as u32;
        let end = (end.min(u32::MAX as usize) as u32).max(start);
        Span { file, start, end }
    }
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    pub fn source_span(&self) -> SourceSpan {
        (self.start as usize, self.len()).into()
    }
}

/// One file read by the loader (element, project, kind or a built-in kind).
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The file on disk (`<builtin>/...` for the built-in kinds).
    pub path: PathBuf,
    /// The name shown in diagnostics (relative to the working directory when possible).
    pub name: String,
    pub text: Arc<String>,
    /// Byte offsets of the start of each line.
    line_starts: Arc<Vec<u32>>,
    /// The identity of the file `text` was read from, taken from the open
    /// file (`None` for text that was not read from a file).
    pub seen: Option<FileSeen>,
}

/// The identity of a file as it was read: device, inode, size, and mtime
/// and ctime in nanoseconds (what the no-op memo compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileSeen {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileSeen {
    pub fn of(meta: &std::fs::Metadata) -> FileSeen {
        use std::os::unix::fs::MetadataExt;
        FileSeen {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        }
    }
}

impl SourceFile {
    pub fn new(path: PathBuf, name: String, text: String) -> SourceFile {
        let mut line_starts = vec![0u32];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push((i + 1).min(u32::MAX as usize) as u32);
            }
        }
        SourceFile {
            path,
            name,
            text: Arc::new(text),
            line_starts: Arc::new(line_starts),
            seen: None,
        }
    }

    /// The same text, read from a file whose identity was `seen`.
    pub fn with_seen(mut self, seen: FileSeen) -> SourceFile {
        self.seen = Some(seen);
        self
    }

    pub fn named_source(&self) -> Source {
        Source {
            name: self.name.clone(),
            text: self.text.clone(),
            line_starts: self.line_starts.clone(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: u32) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0) as usize;
        let end = (offset as usize).min(self.text.len());
        let col = self
            .text
            .get(start..end)
            .map_or(end.saturating_sub(start), |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Lines longer than this are shown as an excerpt around the error.
const LONG_LINE: usize = 512;
/// Bytes of context on each side of the error in an excerpt.
const EXCERPT_CONTEXT: usize = 60;
/// The longest label underline in an excerpt.
const EXCERPT_LABEL: usize = 120;

/// The text of a file as miette reads it, named. A snippet whose line is
/// longer than [`LONG_LINE`] is cut to the part around the error (miette's
/// renderer cannot lay out a line of tens of thousands of columns); the
/// line and column it shows stay those of the file.
#[derive(Debug, Clone)]
pub struct Source {
    name: String,
    text: Arc<String>,
    /// The file's line index: a snippet is read from the line of its error,
    /// not by scanning the file from its start (which made reporting every
    /// error of a file quadratic in its size).
    line_starts: Arc<Vec<u32>>,
}

impl Source {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl SourceCode for Source {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let text = self.text.as_str();
        let start = span.offset().min(text.len());
        let end = (start + span.len()).min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
        if line_end - line_start <= LONG_LINE {
            // miette's own reading, on the text from the first context line
            // on: the same snippet, in time proportional to the snippet
            let line = match self.line_starts.binary_search(&(start as u32)) {
                Ok(i) => i,
                Err(i) => i.saturating_sub(1),
            };
            let first = line.saturating_sub(context_lines_before);
            let base = self
                .line_starts
                .get(first)
                .map_or(0, |&b| b as usize)
                .min(start);
            let local: SourceSpan = (start - base, span.len()).into();
            let inner =
                text[base..].read_span(&local, context_lines_before, context_lines_after)?;
            let inner_span: SourceSpan = (inner.span().offset() + base, inner.span().len()).into();
            let long_context = std::str::from_utf8(inner.data())
                .map_or(true, |d| d.lines().any(|l| l.len() > LONG_LINE));
            if long_context && (context_lines_before > 0 || context_lines_after > 0) {
                // A neighbouring line is too long to show: the error's line alone.
                return Ok(Box::new(MietteSpanContents::new_named(
                    self.name.clone(),
                    &text.as_bytes()[line_start..line_end],
                    (line_start, line_end - line_start).into(),
                    line,
                    0,
                    1,
                )));
            }
            return Ok(Box::new(MietteSpanContents::new_named(
                self.name.clone(),
                inner.data(),
                inner_span,
                inner.line() + first,
                inner.column(),
                inner.line_count() + first,
            )));
        }
        // Asked for the span alone (miette's `[file:line:col]` header): it
        // starts at the span, as for a short line.
        let context = if context_lines_before == 0 && context_lines_after == 0 {
            0
        } else {
            EXCERPT_CONTEXT
        };
        let mut from = start.saturating_sub(context).max(line_start);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let mut to = (end + context).min(line_end);
        while !text.is_char_boundary(to) {
            to += 1;
        }
        let line = match self.line_starts.binary_search(&(start as u32)) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let column = text[line_start..from].chars().count();
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &text.as_bytes()[from..to],
            (from, to - from).into(),
            line,
            column,
            1,
        )))
    }
}

/// All the files read during a load; `FileId` indexes into it.
#[derive(Debug, Clone, Default)]
pub struct Files {
    files: Vec<SourceFile>,
    /// Files included with `(@)`, ids from `bst::INCLUDE_BASE` up.
    included: Vec<SourceFile>,
}

impl Files {
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId((self.files.len() - 1) as u32)
    }
    /// The id the next `add` will return.
    pub fn next_id(&self) -> FileId {
        FileId(self.files.len() as u32)
    }
    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        match id.0.checked_sub(crate::bst::INCLUDE_BASE) {
            Some(i) => self.included.get(i as usize),
            None => self.files.get(id.0 as usize),
        }
    }
    /// Adds an included file; it keeps the id it was parsed with (the
    /// next one from `bst::INCLUDE_BASE`).
    pub(crate) fn add_included(&mut self, file: SourceFile) {
        self.included.push(file);
    }
    /// Every file read, in reading order (built-in kinds included, under
    /// their `<builtin>/` names), then the included files.
    pub fn iter(&self) -> impl Iterator<Item = &SourceFile> {
        self.files.iter().chain(self.included.iter())
    }
    /// `file:line:col` of a span.
    pub fn location(&self, span: Span) -> String {
        match self.get(span.file) {
            Some(f) => {
                let (l, c) = f.line_col(span.start);
                format!("{}:{}:{}", f.name, l, c)
            }
            None => "<unknown>".to_string(),
        }
    }
    /// An error at `span`, with `label` under it.
    pub fn error(&self, span: Span, message: impl Into<String>, label: impl Into<String>) -> Error {
        match self.get(span.file) {
            Some(f) => Error::at(f, span, message, label),
            None => Error::plain(message),
        }
    }
}

/// One problem, pointing at a file, line and column when it has one.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct Error {
    pub message: String,
    #[source_code]
    pub src: Option<Source>,
    #[label(collection)]
    pub labels: Vec<LabeledSpan>,
    #[help]
    pub help: Option<String>,
    /// Where it is: (file, 1-based line, 1-based column), for sorting and for tools.
    pub location: Option<(PathBuf, usize, usize)>,
    #[doc(hidden)]
    pub sort_key: (String, u32),
}

impl Error {
    /// An error that belongs to no file (a target on the command line, an unreadable directory).
    pub fn plain(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            src: None,
            labels: vec![],
            help: None,
            location: None,
            sort_key: (String::new(), 0),
        }
    }

    /// An error in `file` at `span`.
    pub fn at(
        file: &SourceFile,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Error {
        let (line, col) = file.line_col(span.start);
        let start = (span.start as usize).min(file.text.len());
        let mut len = span.len().min(file.text.len() - start);
        let line_len = file.text[start..]
            .find('\n')
            .unwrap_or(file.text.len() - start);
        if line_len > LONG_LINE
            || file.text[..start].rfind('\n').map_or(start, |i| start - i) > LONG_LINE
        {
            len = len.min(EXCERPT_LABEL);
        }
        while !file.text.is_char_boundary(start + len) {
            len += 1;
        }
        Error {
            message: message.into(),
            src: Some(file.named_source()),
            labels: vec![LabeledSpan::new_primary_with_span(
                Some(label.into()),
                (start, len),
            )],
            help: None,
            location: Some((file.path.clone(), line, col)),
            sort_key: (file.name.clone(), span.start),
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Error {
        self.help = Some(help.into());
        self
    }

    /// The file this error points at, if any.
    pub fn file(&self) -> Option<&Path> {
        self.location.as_ref().map(|(p, _, _)| p.as_path())
    }
}

/// All the errors of one load. Implements `miette::Diagnostic` (the errors
/// are its `related` diagnostics); `render` formats them all.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub errors: Vec<Error>,
}

impl Diagnostics {
    pub fn new(mut errors: Vec<Error>) -> Diagnostics {
        errors.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
        errors.dedup_by(|a, b| a.sort_key == b.sort_key && a.message == b.message);
        Diagnostics { errors }
    }
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
    pub fn len(&self) -> usize {
        self.errors.len()
    }
    /// Every error rendered with miette's installed report handler, one after the other.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.errors {
            out.push_str(&format!("{:?}\n", miette::Report::new(e.clone())));
        }
        out
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.errors.len() {
            1 => write!(f, "{}", self.errors[0].message),
            n => write!(f, "{n} errors in the element files"),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl miette::Diagnostic for Diagnostics {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        Some(Box::new(
            self.errors.iter().map(|e| e as &dyn miette::Diagnostic),
        ))
    }
}

/// Where errors accumulate during a load.
#[derive(Debug, Default)]
pub struct Sink {
    pub errors: Vec<Error>,
}

impl Sink {
    pub fn push(&mut self, e: Error) {
        self.errors.push(e);
    }
    pub fn extend(&mut self, es: impl IntoIterator<Item = Error>) {
        self.errors.extend(es);
    }
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

/// "did you mean `x`?" among `candidates`, by Jaro-Winkler/Levenshtein similarity.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        let close = score > 0.8 || strsim::levenshtein(word, c) <= 2;
        if close && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}
