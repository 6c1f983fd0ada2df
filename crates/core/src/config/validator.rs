//! What every section's checks go through: the [`Validator`] (the config's
//! text for lines, which sections have their files opened) and the
//! [`ConfigError`] it makes, naming the file, the line and the key.

use super::Uses;
use crate::secret::{self, Secret};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; please check --config")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: key `{key}`: {message}", line = line.map(|l| l.to_string()).unwrap_or_else(|| "?".into()))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },
    #[error("{path}: section [{section}] is required by {program} but missing")]
    MissingSection {
        path: PathBuf,
        section: &'static str,
        program: &'static str,
    },
}

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
    pub(super) uses: Uses,
    /// Whether the section being validated has its files opened.
    pub(super) check_files: std::cell::Cell<bool>,
    /// The document with toml's spans of every key and value (`None` if it
    /// does not parse, which serde has reported already).
    doc: Option<Spanned<DeTable<'a>>>,
}

/// `field`'s span (key to end of value) in the table spanning `want`,
/// searched through `t` (spanning `span`) and every table below it.
fn key_in(
    t: &DeTable<'_>,
    span: Range<usize>,
    want: &Range<usize>,
    field: &str,
) -> Option<Range<usize>> {
    if span == *want {
        return t
            .iter()
            .find(|(k, _)| k.get_ref() == field)
            .map(|(k, v)| k.span().start..v.span().end);
    }
    t.iter().find_map(|(_, v)| value_key_in(v, want, field))
}

fn value_key_in(
    v: &Spanned<DeValue<'_>>,
    want: &Range<usize>,
    field: &str,
) -> Option<Range<usize>> {
    match v.get_ref() {
        DeValue::Table(t) => key_in(t, v.span(), want, field),
        DeValue::Array(a) => a.iter().find_map(|x| value_key_in(x, want, field)),
        _ => None,
    }
}

impl<'a> Validator<'a> {
    /// A validator over `text` (the file at `path`) that opens the files of
    /// the sections in `uses` as each section turns them on.
    pub(super) fn new(text: &'a str, path: &'a Path, uses: Uses) -> Self {
        Validator {
            text,
            path,
            uses,
            check_files: std::cell::Cell::new(false),
            doc: DeTable::parse(text).ok(),
        }
    }

    pub(super) fn err(
        &self,
        key: impl Into<String>,
        span: Option<Range<usize>>,
        msg: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: span.map(|s| line_of(self.text, s.start)),
            key: key.into(),
            message: msg.into(),
        }
    }

    /// The span of the table `name` (dotted: `metrics.influxdb`), as toml
    /// records it: its header, or the inline table.
    pub(super) fn section_span(&self, name: &str) -> Option<Range<usize>> {
        let d = self.doc.as_ref()?;
        let (mut t, mut span) = (d.get_ref(), d.span());
        for part in name.split('.') {
            let (_, v) = t.iter().find(|(k, _)| k.get_ref() == part)?;
            let DeValue::Table(next) = v.get_ref() else {
                return None;
            };
            (t, span) = (next, v.span());
        }
        Some(span)
    }

    /// The span of `field = ...` in the table whose span is `table` (from
    /// toml's own spans of the document), falling back to the table.
    pub(super) fn field_span(&self, table: Range<usize>, field: &str) -> Option<Range<usize>> {
        Some(
            self.doc
                .as_ref()
                .and_then(|d| key_in(d.get_ref(), d.span(), &table, field))
                .unwrap_or(table),
        )
    }

    pub(super) fn name(
        &self,
        key: &str,
        name: &str,
        span: Range<usize>,
    ) -> Result<(), ConfigError> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(())
        } else {
            Err(self.err(
                key,
                Some(span),
                format!("{name:?} is not a valid name: use letters, digits, '.', '_' and '-' (it becomes part of file names)"),
            ))
        }
    }

    pub(super) fn readable(
        &self,
        key: &str,
        p: &Path,
        table: Range<usize>,
    ) -> Result<(), ConfigError> {
        self.check_file(key, table, || {
            std::fs::File::open(secret::resolve_path(p))
                .map(|_| ())
                .map_err(|e| format!("cannot read {}: {e}", p.display()))
        })
    }

    pub(super) fn private(
        &self,
        key: &str,
        p: &Path,
        table: Range<usize>,
    ) -> Result<(), ConfigError> {
        self.check_file(key, table, || {
            secret::check_private_file(&secret::resolve_path(p))
        })
    }

    /// Runs `check` on `key`'s file only if this section's files are opened.
    fn check_file<E: std::fmt::Display>(
        &self,
        key: &str,
        table: Range<usize>,
        check: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), ConfigError> {
        if !self.check_files.get() {
            return Ok(());
        }
        let field = key.rsplit('.').next().unwrap_or(key);
        check().map_err(|e| self.err(key, self.field_span(table, field), e.to_string()))
    }

    pub(super) fn inline_or_file(
        &self,
        key: &str,
        field: &str,
        inline: &Option<Secret>,
        file: &Option<PathBuf>,
        span: Range<usize>,
    ) -> Result<Secret, ConfigError> {
        match (inline, file) {
            (Some(s), None) => Ok(s.clone()),
            (None, Some(_)) if !self.check_files.get() => Ok(Secret::new("")),
            (None, Some(p)) => secret::read_secret_file(&secret::resolve_path(p))
                .map_err(|e| self.err(format!("{key}.{field}_file"), Some(span), e.to_string())),
            (Some(_), Some(_)) => Err(self.err(
                format!("{key}.{field}"),
                Some(span),
                format!("give {field} or {field}_file, not both"),
            )),
            (None, None) => Err(self.err(
                format!("{key}.{field}"),
                Some(span),
                format!("{field} or {field}_file is required"),
            )),
        }
    }
}
