//! `cas build --message-format json-lines`: the build's events as they
//! happen, one JSON object per line on stdout, for CI dashboards (cargo's
//! `--message-format json`, Bazel's build event protocol). Each event is a
//! typed value ([`Event`]); the console still shows progress on stderr.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use cas_builder::{BuildError, ElementStatus, Reporter};
use cas_store::ActionKey;
use serde::Serialize;

/// What `--message-format` prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum MessageFormat {
    /// The summary line on stderr (and `--json`'s document).
    #[default]
    Human,
    /// Every event as one JSON object per line on stdout.
    JsonLines,
}

/// One event of a build (`"event"` names it; spec/cli.md lists the fields).
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub(crate) enum Event<'a> {
    /// A step started (its key is known, its cache lookups missed or are
    /// about to be made).
    Started { element: &'a str, key: String },
    /// Where a running step's log is written.
    Log { element: &'a str, path: &'a Path },
    /// A step ended: built, cached, pulled, failed or skipped.
    Finished {
        element: &'a str,
        status: ElementStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
    },
    /// A step failed: why, and its kept log.
    Failed {
        element: &'a str,
        error: String,
        log: &'a Path,
    },
    /// A warning or a note of the engine.
    Message { text: &'a str },
    /// The end of the build.
    Summary {
        built: usize,
        cached: usize,
        pulled: usize,
        failed: usize,
        skipped: usize,
        duration_ms: u64,
    },
}

/// A reporter that writes each event as a JSON line and passes it on to
/// the console.
pub(crate) struct JsonLines<'a> {
    pub inner: &'a dyn Reporter,
    out: Mutex<std::io::Stdout>,
}

impl<'a> JsonLines<'a> {
    pub(crate) fn new(inner: &'a dyn Reporter) -> Self {
        JsonLines {
            inner,
            out: Mutex::new(std::io::stdout()),
        }
    }

    /// Write one event (a closed stdout is ignored: the build goes on).
    pub(crate) fn emit(&self, e: &Event) {
        if let Ok(line) = serde_json::to_string(e) {
            let mut out = self
                .out
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

impl Reporter for JsonLines<'_> {
    fn started(&self, element: &str, key: &ActionKey) {
        self.emit(&Event::Started {
            element,
            key: key.to_hex(),
        });
        self.inner.started(element, key);
    }
    fn finished(&self, element: &str, status: ElementStatus, took: Option<Duration>) {
        self.emit(&Event::Finished {
            element,
            status,
            duration_ms: took.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        });
        self.inner.finished(element, status, took);
    }
    fn failed(&self, element: &str, error: &BuildError, log: &Path) {
        self.emit(&Event::Failed {
            element,
            error: error.to_string(),
            log,
        });
        self.inner.failed(element, error, log);
    }
    fn message(&self, text: &str) {
        self.emit(&Event::Message { text });
        self.inner.message(text);
    }
    fn log_at(&self, element: &str, log: &Path) {
        self.emit(&Event::Log { element, path: log });
        self.inner.log_at(element, log);
    }
    fn log_complete(&self, element: &str) {
        self.inner.log_complete(element);
    }
}
