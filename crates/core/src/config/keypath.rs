//! The dotted key (`alert.channel[1].timeout`) behind a parse error.
//!
//! The TOML parser and serde report a byte span only (`:12: duplicate key`,
//! `invalid duration "soon"`). The document is parsed once more, with
//! spans, and the span is mapped back to the key path: the narrowest key or
//! value that contains it, else the `[table]` or `[[array]]` header the
//! line belongs to, plus the key written at the span.

use super::ConfigError;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// A TOML or serde error as a config error naming the file, line and key.
pub(super) fn toml_error(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let line = e.span().map(|s| super::line_of(text, s.start));
    // The parser and serde give a span only: name the key it is in.
    match e.span().and_then(|s| key_at(text, s, &message)) {
        Some(key) => ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            key,
            message,
        },
        None => ConfigError::Parse {
            path: path.to_path_buf(),
            line: line.unwrap_or(1),
            message,
        },
    }
}

#[derive(Debug)]
enum Kind {
    /// A `[table]` or `[[array]]` element: its span is the header only.
    Header,
    /// An inline table or an array: the error may be about a key inside.
    Container,
    Scalar,
}

#[derive(Debug)]
struct Node {
    path: String,
    /// None for an array element.
    key: Option<Range<usize>>,
    value: Range<usize>,
    kind: Kind,
}

/// The dotted key for an error whose span starts at `span.start`, or None
/// when the document has no key there (a syntax error).
pub(super) fn key_at(text: &str, span: Range<usize>, message: &str) -> Option<String> {
    // A syntax error other than a duplicate key is about no key.
    if DeTable::parse(text).is_err() && !message.contains("duplicate key") {
        return None;
    }
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut nodes = Vec::new();
    table(doc.get_ref(), "", text, &mut nodes);
    let off = span.start;
    let has = |r: &Range<usize>| r.start <= off && off < r.end.max(r.start + 1);
    let written = written_key(text, &span);
    // The narrowest; of equal ones the deepest (an array of tables and its
    // first element share the first header's span).
    let best = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let key = n
                .key
                .as_ref()
                .filter(|k| has(k) && !matches!(n.kind, Kind::Header));
            let on_key = key.is_some();
            let r = key.unwrap_or(&n.value);
            has(r).then_some((n, on_key, (r.len(), std::cmp::Reverse(i))))
        })
        .min_by_key(|(_, _, rank)| *rank);
    match best {
        Some((n, on_key, _)) if on_key || matches!(n.kind, Kind::Scalar) => Some(n.path.clone()),
        // Inside an inline table or on a header: a key of that table.
        Some((n, _, _)) => Some(join(&n.path, written.as_deref())),
        // In the body of a [table] whose own span is its header only.
        None => {
            let header = nodes
                .iter()
                .filter(|n| matches!(n.kind, Kind::Header) && n.value.start <= off)
                .max_by_key(|n| n.value.start);
            match (header, written) {
                (Some(h), w) => Some(join(&h.path, w.as_deref())),
                (None, Some(w)) => Some(w),
                (None, None) => None,
            }
        }
    }
}

fn join(path: &str, key: Option<&str>) -> String {
    match key {
        Some(k) if path.is_empty() => k.to_string(),
        Some(k) => format!("{path}.{k}"),
        None => path.to_string(),
    }
}

/// The key written at the span (for a duplicate key, the second one), if the
/// span holds a key rather than a value or a header.
fn written_key(text: &str, span: &Range<usize>) -> Option<String> {
    let s = text.get(span.clone())?.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    (!s.is_empty()
        && (s.chars().all(bare) || (s.starts_with('"') && s.ends_with('"') && s.len() > 1)))
        .then(|| s.to_string())
}

fn segment(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn table(t: &DeTable<'_>, prefix: &str, text: &str, out: &mut Vec<Node>) {
    for (k, v) in t.iter() {
        let path = join(prefix, Some(&segment(k.get_ref())));
        value(v.get_ref(), path, Some(k.span()), v.span(), text, out);
    }
}

fn value(
    v: &DeValue<'_>,
    path: String,
    key: Option<Range<usize>>,
    span: Range<usize>,
    text: &str,
    out: &mut Vec<Node>,
) {
    let header = text.get(span.clone()).is_some_and(|s| s.starts_with('['));
    let kind = match v {
        DeValue::Table(_) if header => Kind::Header,
        DeValue::Table(_) | DeValue::Array(_) => Kind::Container,
        _ => Kind::Scalar,
    };
    out.push(Node {
        path: path.clone(),
        key,
        value: span,
        kind,
    });
    match v {
        DeValue::Table(t) => table(t, &path, text, out),
        DeValue::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                value(e.get_ref(), p, None, e.span(), text, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(text: &str, needle: &str, msg: &str) -> Option<String> {
        let start = text.find(needle).unwrap();
        key_at(text, start..start + needle.len(), msg)
    }

    const DOC: &str =
        "[cluster]\nname = \"p\"\nmembers = [\n  { name = \"a\", endpoint = 5 },\n]\n\
                       [alert]\ngroup_wait = \"x\"\n[[alert.channel]]\nname = \"a\"\n\
                       [[alert.channel]]\nname = \"b\"\ntimeout = \"soon\"\n";

    #[test]
    fn values_keys_and_tables_map_to_dotted_paths() {
        assert_eq!(
            at(DOC, "5 }", "t").as_deref(),
            Some("cluster.members[0].endpoint")
        );
        assert_eq!(at(DOC, "\"x\"", "t").as_deref(), Some("alert.group_wait"));
        assert_eq!(
            at(DOC, "\"soon\"", "t").as_deref(),
            Some("alert.channel[1].timeout")
        );
        assert_eq!(
            at(DOC, "timeout", "t").as_deref(),
            Some("alert.channel[1].timeout")
        );
        let second = DOC.rfind("[[alert.channel]]").unwrap();
        assert_eq!(
            key_at(DOC, second..second + 17, "missing field").as_deref(),
            Some("alert.channel[1]")
        );
    }

    #[test]
    fn duplicate_keys_are_named_with_their_table() {
        let d = "[alert]\ngroup_wait = \"1s\"\ngroup_wait = \"2s\"\n";
        let second = d.rfind("group_wait").unwrap();
        assert_eq!(
            key_at(d, second..second + 10, "duplicate key").as_deref(),
            Some("alert.group_wait")
        );
        let d = "m = [ { name = \"a\", name = \"b\" } ]\n";
        let second = d.rfind("name").unwrap();
        assert_eq!(
            key_at(d, second..second + 4, "duplicate key").as_deref(),
            Some("m[0].name")
        );
    }

    #[test]
    fn a_syntax_error_names_no_key() {
        assert_eq!(
            at("[alert\ngroup_wait = 1\n", "[alert", "unclosed table"),
            None
        );
    }
}
