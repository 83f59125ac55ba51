//! An element's `config:` as its behaviour reads it: the kind's `config:`
//! with the element's over it, every string expanded, in the order the
//! kind declares them. cas-format knows no behaviour: what a key means,
//! its default and its checks belong to the behaviour's module (crate
//! cas-builder's `kinds`), which reads it through [`Config`] and checks it
//! at load through [`Behaviours`].

use std::collections::HashMap;

use crate::data::Data;
use crate::diagnostics::{Error, Files, Span};
use crate::element::{Element, ElementId};

/// One value of an element's `config:`, typed by the kind that declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    Str(String),
    List(Vec<String>),
    /// The value and its text as written (`True`, `true`...), which is what shows.
    Bool(bool, String),
    /// Anything else (a mapping, a list of mappings), strings expanded.
    Data(Data),
}

impl Setting {
    /// As `show --format '%{config}'` prints it.
    pub fn to_data(&self) -> Data {
        match self {
            Setting::Str(s) => Data::Str(s.clone()),
            Setting::List(l) => Data::strings(l),
            Setting::Bool(_, text) => Data::Str(text.clone()),
            Setting::Data(d) => d.clone(),
        }
    }
}

/// A key of `config:` with its value and where it was written (each item's
/// span for a list; `None` for a value that has no place in a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Setting,
    pub spans: Vec<Span>,
}

/// An element's configuration: its kind's keys (and the element's), in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    entries: Vec<(String, Entry)>,
}

impl Config {
    pub(crate) fn new(entries: Vec<(String, Entry)>) -> Config {
        Config { entries }
    }
    /// Every key, in the kind's order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// A string value, else `default`.
    pub fn str_or(&self, key: &str, default: &str) -> String {
        match self.get(key).map(|e| &e.value) {
            Some(Setting::Str(s)) => s.clone(),
            _ => default.to_string(),
        }
    }
    /// A list of strings (empty when absent).
    pub fn list(&self, key: &str) -> &[String] {
        match self.get(key).map(|e| &e.value) {
            Some(Setting::List(l)) => l,
            _ => &[],
        }
    }
    /// A boolean, else `default`.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.get(key).map(|e| &e.value) {
            Some(Setting::Bool(b, _)) => *b,
            _ => default,
        }
    }
    /// Structured data (e.g. script's `layout`).
    pub fn data(&self, key: &str) -> Option<&Data> {
        match self.get(key).map(|e| &e.value) {
            Some(Setting::Data(d)) => Some(d),
            _ => None,
        }
    }
    /// Where `key` (or its `i`th item) was written.
    pub fn span(&self, key: &str, i: usize) -> Option<Span> {
        let spans = &self.get(key)?.spans;
        spans.get(i).or(spans.first()).copied()
    }
}

/// The behaviours the loader knows (crate cas-builder's registry of kinds,
/// given in [`crate::LoadOptions::behaviours`]). Without one, the loader
/// accepts every `behaviour:` name and checks no configuration.
pub trait Behaviours: Send + Sync {
    /// The names a kind file's `behaviour:` may take.
    fn names(&self) -> Vec<&'static str>;
    /// Built-in kind files (name, YAML) the behaviours bring for cas
    /// projects, beside those of `elements/`.
    fn kind_files(&self) -> Vec<(&'static str, &'static str)>;
    /// The config keys of behaviour `name` that are structured data (lists
    /// of mappings, replaced as a whole), for every kind of it.
    fn structured_config(&self, name: &str) -> Vec<&'static str>;
    /// Check (and complete) each element's configuration once every
    /// element is resolved, dependencies first; the errors are the load's,
    /// each with the element it is about.
    fn check(&self, load: &mut LoadCheck<'_>) -> Vec<(ElementId, Error)>;
}

/// The loaded elements, as [`Behaviours::check`] sees them.
pub struct LoadCheck<'a> {
    pub elements: &'a mut [Element],
    files: &'a Files,
    ids: &'a HashMap<String, ElementId>,
}

impl<'a> LoadCheck<'a> {
    pub(crate) fn new(
        elements: &'a mut [Element],
        files: &'a Files,
        ids: &'a HashMap<String, ElementId>,
    ) -> Self {
        LoadCheck {
            elements,
            files,
            ids,
        }
    }
    /// Every element, dependencies first.
    pub fn in_order(&self) -> Vec<ElementId> {
        let all = self.elements.iter().map(|e| e.id).collect();
        crate::graph::topo_order(self.elements, &all)
    }
    pub fn element(&self, id: ElementId) -> &Element {
        &self.elements[id.index()]
    }
    /// The element named `name` (as a dependency names it).
    pub fn find(&self, name: &str) -> Option<ElementId> {
        crate::element::normalise_name(name).and_then(|n| self.ids.get(&n).copied())
    }
    /// An error at `span`.
    pub fn error(&self, span: Span, message: impl Into<String>, label: impl Into<String>) -> Error {
        self.files.error(span, message, label)
    }
}
