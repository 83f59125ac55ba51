//! `%{name}` expansion. Variables are layered (built-in defaults, project,
//! kind, element: later wins) into one `Scope`, then expanded recursively
//! with memoisation. `%%{` is an escape for a literal `%{`. `%{max-jobs}` is
//! never expanded: it stays as the literal text `%{max-jobs}`, and the build
//! engine substitutes the job count at run time, so it never enters a key.

// In-memory lookups only (never a stable hash): FxHash is several times
// cheaper than SipHash for these short keys.
use rustc_hash::FxHashMap as HashMap;

use crate::diagnostics::{suggest, Error, Files, Span};

/// The variable that is left for run time.
pub const MAX_JOBS: &str = "max-jobs";
const MAX_NESTING: usize = 128;
/// The longest value a string may expand to. A command is passed to the
/// sandbox's shell as one argument, which Linux caps at 128 KiB; a value of
/// more than a MiB is a mistake (or an attack: doubling references grow
/// exponentially), never a recipe.
pub const MAX_EXPANDED: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Def<'a> {
    pub value: &'a str,
    /// Where the value is written; `None` for values set by cas itself.
    pub span: Option<Span>,
    /// Inserted as is, never expanded (host-arch, element-name...).
    pub literal: bool,
    /// Usable in references but not one of the element's variables (a
    /// BuildStream element's `command-subdir` fallback: BuildStream has no
    /// such variable unless the project sets one).
    pub hidden: bool,
}

/// All variables visible to one element, later definitions winning.
#[derive(Debug, Default)]
pub(crate) struct Scope<'a> {
    pub defs: HashMap<&'a str, Def<'a>>,
    /// Names in first-definition order (for a deterministic output).
    pub order: Vec<&'a str>,
}

impl<'a> Scope<'a> {
    pub(crate) fn set(&mut self, name: &'a str, def: Def<'a>) {
        if self.defs.insert(name, def).is_none() {
            self.order.push(name);
        }
    }
}

pub(crate) struct Expander<'s, 'a> {
    files: &'s Files,
    scope: &'s Scope<'a>,
    memo: HashMap<&'a str, Option<String>>,
    stack: Vec<&'a str>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl<'s, 'a> Expander<'s, 'a> {
    pub(crate) fn new(files: &'s Files, scope: &'s Scope<'a>) -> Self {
        Expander {
            files,
            scope,
            memo: HashMap::default(),
            stack: Vec::new(),
        }
    }

    /// Expand every variable of the scope, in definition order.
    pub(crate) fn expand_all(&mut self, errors: &mut Vec<Error>) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(self.scope.order.len());
        for &name in &self.scope.order {
            if self.scope.defs.get(name).is_some_and(|d| d.hidden) {
                continue;
            }
            match self.var(name, None) {
                Ok(v) => out.push((name.to_string(), v)),
                Err(Some(e)) => errors.push(e),
                Err(None) => {}
            }
        }
        out
    }

    /// Expand a string written at `span`. `Err(None)` means the error was
    /// already reported (a variable that failed before).
    pub(crate) fn expand(
        &mut self,
        text: &str,
        span: Option<Span>,
    ) -> Result<String, Option<Error>> {
        if !text.contains('%') {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut rest = text;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(r) = after.strip_prefix("%%{") {
                out.push_str("%{");
                rest = r;
            } else if let Some(r) = after.strip_prefix("%{") {
                let Some(j) = r.find('}') else {
                    return Err(Some(self.error_at(
                        span,
                        "%{",
                        "unterminated `%{`: a variable reference ends with `}`",
                        "unterminated",
                        None,
                    )));
                };
                let name = &r[..j];
                if !valid_name(name) {
                    let pat = format!("%{{{name}}}");
                    return Err(Some(self.error_at(span, &pat, &format!("invalid variable name `{name}`"), "invalid name", Some("variable names use letters, digits, `-`, `_` and `.`; write `%%{` for a literal `%{`".into()))));
                }
                if name == MAX_JOBS {
                    out.push_str("%{max-jobs}");
                } else {
                    out.push_str(&self.var_used(name, span)?);
                }
                if out.len() > MAX_EXPANDED {
                    let pat = format!("%{{{name}}}");
                    let mut help = format!(
                        "a value may expand to at most {MAX_EXPANDED} bytes; a reference repeated at every level doubles its length"
                    );
                    if !self.stack.is_empty() {
                        help = format!("while expanding {}\n{help}", self.chain_text(name));
                    }
                    let e = self.error_at(
                        span,
                        &pat,
                        &format!(
                            "expansion is too long: more than {} MiB",
                            MAX_EXPANDED >> 20
                        ),
                        "grows too long here",
                        Some(help),
                    );
                    // Every variable being expanded fails with it; said once.
                    for n in &self.stack {
                        self.memo.insert(n, None);
                    }
                    return Err(Some(e));
                }
                rest = &r[j + 1..];
            } else {
                out.push('%');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn var_used(&mut self, name: &str, use_span: Option<Span>) -> Result<String, Option<Error>> {
        if let Some((&key, _)) = self.scope.defs.get_key_value(name) {
            return self.var(key, use_span);
        }
        let pat = format!("%{{{name}}}");
        let mut help = match suggest(name, self.scope.order.iter().copied()) {
            Some(s) => {
                format!("did you mean `%{{{s}}}`? Otherwise define `{name}` under `variables:`")
            }
            None => format!(
                "define `{name}` under `variables:` (in the element, its kind or project.yaml)"
            ),
        };
        if !self.stack.is_empty() {
            help = format!("while expanding {}\n{help}", self.chain_text(name));
        }
        Err(Some(self.error_at(
            use_span,
            &pat,
            &format!("undefined variable `{name}`"),
            "undefined variable",
            Some(help),
        )))
    }

    fn chain_text(&self, last: &str) -> String {
        let mut parts: Vec<String> = self.stack.iter().map(|n| format!("%{{{n}}}")).collect();
        parts.push(format!("%{{{last}}}"));
        parts.join(" → ")
    }

    fn var(&mut self, name: &'a str, use_span: Option<Span>) -> Result<String, Option<Error>> {
        if let Some(done) = self.memo.get(name) {
            return done.clone().ok_or(None);
        }
        if let Some(pos) = self.stack.iter().position(|n| *n == name) {
            let mut chain: Vec<String> = self.stack[pos..]
                .iter()
                .map(|n| format!("%{{{n}}}"))
                .collect();
            chain.push(format!("%{{{name}}}"));
            let mut help = String::from("a variable cannot refer to itself, directly or through others; where they are defined:");
            for n in &self.stack[pos..] {
                if let Some(s) = self.scope.defs.get(n).and_then(|d| d.span) {
                    help.push_str(&format!("\n  {n}: {}", self.files.location(s)));
                }
            }
            let pat = format!("%{{{name}}}");
            let e = self.error_at(
                use_span,
                &pat,
                &format!("variable cycle: {}", chain.join(" → ")),
                "cycle closes here",
                Some(help),
            );
            // the whole cycle fails; report it once
            for n in &self.stack[pos..] {
                self.memo.insert(n, None);
            }
            return Err(Some(e));
        }
        if self.stack.len() >= MAX_NESTING {
            return Err(Some(self.error_at(
                use_span,
                "%{",
                "variables nest too deeply",
                "here",
                None,
            )));
        }
        let Some(def) = self.scope.defs.get(name).copied() else {
            return Err(None);
        };
        let result = if def.literal {
            Ok(def.value.to_string())
        } else {
            self.stack.push(name);
            let r = self.expand(def.value, def.span);
            self.stack.pop();
            r
        };
        if !self.memo.contains_key(name) {
            self.memo.insert(name, result.as_ref().ok().cloned());
        }
        result
    }

    /// An error pointing at `pat` inside the string written at `span` (or
    /// the whole string if it cannot be found, e.g. after escapes).
    fn error_at(
        &self,
        span: Option<Span>,
        pat: &str,
        msg: &str,
        label: &str,
        help: Option<String>,
    ) -> Error {
        let e = match span {
            None => Error::plain(msg),
            Some(span) => {
                let at = self
                    .files
                    .get(span.file)
                    .and_then(|f| f.text.get(span.start as usize..span.end as usize))
                    .and_then(|raw| raw.find(pat))
                    .map_or(span, |o| {
                        Span::new(
                            span.file,
                            span.start as usize + o,
                            span.start as usize + o + pat.len(),
                        )
                    });
                self.files.error(at, msg, label)
            }
        };
        match help {
            Some(h) => e.with_help(h),
            None => e,
        }
    }
}
