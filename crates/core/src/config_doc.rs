//! The `vigil.toml(5)` man page, generated from the config types: `build.rs`
//! reads `config.rs` and `config/*.rs` (serde names, types, defaults, doc
//! comments) into [`TABLES`]; [`man_page`] renders it as roff and
//! [`markdown`] as README.md's "Config reference" (a test keeps README.md
//! in step: `VIGIL_UPDATE_DOCS=1 cargo test -p vigil-core --lib config_doc`
//! rewrites it).

/// One table of vigil.toml (`path` is dotted; `array` for `[[…]]`).
#[derive(Debug)]
pub struct Table {
    pub path: &'static str,
    pub array: bool,
    pub doc: &'static str,
    pub keys: &'static [Key],
}

/// One key: its TOML type, whether it must be given, its default (TOML
/// syntax) and, for enums, the accepted values with their docs.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub ty: &'static str,
    pub required: bool,
    pub default: Option<&'static str>,
    pub doc: &'static str,
    pub values: &'static [(&'static str, &'static str)],
}

include!(concat!(env!("OUT_DIR"), "/config_reference.rs"));

/// Escapes text for roff and turns `code` into bold.
fn roff(text: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    for c in text.chars() {
        match c {
            '`' => {
                out.push_str(if code { "\\fR" } else { "\\fB" });
                code = !code;
            }
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    if code {
        out.push_str("\\fR");
    }
    // A line may not start with a control character.
    out.lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paragraphs of a doc comment, each as a roff paragraph.
fn paragraphs(doc: &str, out: &mut String) {
    for (i, p) in doc
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push_str(".IP\n");
        }
        out.push_str(&roff(p.trim()));
        out.push('\n');
    }
}

/// A table's doc without a leading "`[name]`: " that repeats the heading.
fn table_doc(t: &Table) -> &'static str {
    let d = t.doc.trim_start();
    if let Some(rest) = d.strip_prefix('`') {
        if let Some(end) = rest.find('`') {
            if rest.starts_with('[') {
                return rest[end + 1..].trim_start_matches(':').trim_start();
            }
        }
    }
    d
}

fn heading(t: &Table) -> String {
    if t.array {
        format!("[[{}]]", t.path)
    } else {
        format!("[{}]", t.path)
    }
}

const DESCRIPTION: &str = "\
vigil reads one TOML file, by default `/etc/vigil/vigil.toml` (`--config PATH` \
overrides it). Every program reads the sections it needs. Unknown keys are \
errors everywhere, and every error names the file, the key and the line.

Durations are strings like `\"90s\"`, `\"15m\"`, `\"6h\"` or `\"1h 30m\"`. \
Sizes are strings like `\"256MiB\"` or `\"2GB\"`, or a plain number of bytes.

A secret can be given inline or, better, as the matching `*_file` key. A \
relative `*_file` name is looked up in the unit's `$CREDENTIALS_DIRECTORY` \
under systemd (the package's units load `/etc/vigil/credentials/` with \
`LoadCredential=`), and in `/etc/vigil/credentials/` from a shell \
(`VIGIL_CREDENTIALS_DIR` overrides it). Absolute paths are used as they are.";

const EXAMPLE: &str = r#"[cluster]
name = "prod"
members = [
  { name = "cp-1", endpoint = "http://127.0.0.1:12379" },
  { name = "cp-2", endpoint = "http://127.0.0.1:22379" },
  { name = "cp-3", endpoint = "http://127.0.0.1:32379" },
]

[snapshot]
dir = "/var/lib/vigil/snapshots"
keep_last = 5
age_recipients = ["age1..."]

[state]
dir = "/var/lib/vigil/state"

[[alert.channel]]
name = "ops-slack"
kind = "slack"
webhook_url_file = "slack-webhook"
"#;

/// The whole man page, `vigil.toml.5`.
pub fn man_page() -> String {
    let mut s = String::new();
    s.push_str(&format!(
        ".TH VIGIL.TOML 5 \"\" \"vigil {}\" \"File Formats Manual\"\n",
        crate::VERSION
    ));
    s.push_str(".SH NAME\nvigil.toml \\- configuration of vigil, the etcd backup appliance\n");
    s.push_str(".SH SYNOPSIS\n.B /etc/vigil/vigil.toml\n");
    s.push_str(".SH DESCRIPTION\n");
    for (i, p) in DESCRIPTION.split("\n\n").enumerate() {
        if i > 0 {
            s.push_str(".PP\n");
        }
        s.push_str(&roff(p));
        s.push('\n');
    }
    s.push_str(
        ".PP\nThe tables and keys below are generated from the types vigil parses the file into.\n",
    );
    s.push_str(".SH TABLES\n");
    for t in TABLES {
        if t.path.is_empty() {
            if t.keys.is_empty() {
                continue;
            }
            s.push_str(".SS \"Top level\"\n");
        } else {
            s.push_str(&format!(".SS \"{}\"\n", heading(t)));
        }
        paragraphs(table_doc(t), &mut s);
        for k in t.keys {
            let mut what = k.ty.to_string();
            if k.required {
                what.push_str(", required");
            } else if let Some(d) = k.default {
                what.push_str(&format!(", default {d}"));
            } else {
                what.push_str(", optional");
            }
            s.push_str(&format!(
                ".TP\n.BR {} \" ({})\"\n",
                k.name,
                roff(&what).replace('"', "\\(dq")
            ));
            if !k.values.is_empty() {
                let names: Vec<String> =
                    k.values.iter().map(|(n, _)| format!("`\"{n}\"`")).collect();
                let line = format!("One of {}.", names.join(", "));
                s.push_str(&roff(&line));
                s.push('\n');
            }
            if !k.doc.is_empty() {
                if !k.values.is_empty() {
                    s.push_str(".br\n");
                }
                paragraphs(k.doc, &mut s);
            }
            for (n, d) in k.values.iter().filter(|(_, d)| !d.is_empty()) {
                s.push_str(&format!(".RS\n.TP\n.B \"\\(dq{n}\\(dq\"\n"));
                paragraphs(d, &mut s);
                s.push_str(".RE\n");
            }
        }
    }
    s.push_str(".SH EXAMPLE\nThe smallest useful config (three members, one Slack channel):\n.PP\n.nf\n.RS\n");
    s.push_str(&roff(EXAMPLE));
    s.push_str("\n.RE\n.fi\n.PP\nMore examples are in \\fI/usr/share/doc/vigil/examples/\\fR.\n");
    s.push_str(
        ".SH FILES\n.TP\n.I /etc/vigil/vigil.toml\nThe config (root:vigil, 0640).\n\
         .TP\n.I /etc/vigil/credentials/\nSecret files named by relative \\fB*_file\\fR keys (root, 0700; files 0600).\n",
    );
    s.push_str(
        ".SH SEE ALSO\n.BR vigil\\-snapshot (1),\n.BR vigil\\-restore (1),\n.BR vigil\\-health (1),\n\
         .BR vigil\\-quota (1),\n.BR vigil\\-notify (1),\n.BR vigild (1)\n",
    );
    s
}

/// README.md's "Config reference": every table and key, as the man page.
pub fn markdown() -> String {
    let cell = |t: &str| {
        t.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    };
    let mut s = String::from(
        "Generated from the types vigil parses the file into (as `man 5 vigil.toml`); \
         a test fails when this list and the code differ.\n",
    );
    for t in TABLES {
        if t.keys.is_empty() {
            continue;
        }
        let title = if t.path.is_empty() {
            "Top level".to_string()
        } else {
            format!("`{}`", heading(t))
        };
        s.push_str(&format!("\n#### {title}\n\n"));
        let doc = table_doc(t).trim();
        if !doc.is_empty() {
            for p in doc.split("\n\n").filter(|p| !p.trim().is_empty()) {
                s.push_str(&cell(p));
                s.push_str("\n\n");
            }
        }
        s.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
        for k in t.keys {
            let default = if k.required {
                "required".to_string()
            } else {
                k.default
                    .map(|d| format!("`{d}`"))
                    .unwrap_or_else(|| "none".into())
            };
            let mut meaning = cell(k.doc);
            if !k.values.is_empty() {
                let vals: Vec<String> = k
                    .values
                    .iter()
                    .map(|(n, d)| {
                        if d.trim().is_empty() {
                            format!("`\"{n}\"`")
                        } else {
                            // The list has its own punctuation.
                            format!("`\"{n}\"`: {}", cell(d).trim_end_matches('.'))
                        }
                    })
                    .collect();
                if !meaning.is_empty() {
                    meaning.push(' ');
                }
                meaning.push_str(&format!("One of {}.", vals.join("; ")));
            }
            s.push_str(&format!(
                "| `{}` | {} | {default} | {meaning} |\n",
                k.name,
                cell(k.ty)
            ));
        }
    }
    s
}

/// The markers around the generated part of README.md.
pub const README_BEGIN: &str =
    "<!-- BEGIN config reference: generated by vigil-core's config_doc, do not edit -->";
pub const README_END: &str = "<!-- END config reference -->";

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys serde accepts in the table at `path`, from its own
    /// "unknown field" error: the page is checked against the parser, not
    /// against the generator.
    fn serde_keys(t: &Table) -> Vec<String> {
        let probe_doc = |kind: Option<(&str, &str)>| {
            let mut doc = String::new();
            let parts: Vec<&str> = t.path.split('.').collect();
            // Array tables on the way down need their own `[[…]]` header first.
            for i in 1..=parts.len() {
                let prefix = parts[..i].join(".");
                if i < parts.len() && TABLES.iter().any(|o| o.path == prefix && o.array) {
                    doc.push_str(&format!("[[{prefix}]]\n"));
                } else if i == parts.len() && !t.path.is_empty() {
                    doc.push_str(&format!("{}\n", heading(t)));
                }
                if let Some((_, k)) = kind.filter(|(at, _)| *at == prefix) {
                    doc.push_str(&format!("name = \"probe\"\nkind = \"{k}\"\n"));
                }
            }
            doc.push_str("__vigil_probe = 1\n");
            doc
        };
        let err = toml::from_str::<crate::config::RawConfig>(&probe_doc(None))
            .err()
            .unwrap_or_else(|| panic!("{} accepts an unknown key", heading(t)))
            .to_string();
        if let Some(keys) = probed(&err) {
            return keys;
        }
        // A table of kinds (`[[sink]]`) checks its keys once it knows the
        // kind: ask each kind, through the whole parser.
        let (at, kinds) = TABLES
            .iter()
            .filter(|o| t.path == o.path || t.path.starts_with(&format!("{}.", o.path)))
            .find_map(|o| {
                o.keys
                    .iter()
                    .find(|k| k.name == "kind" && !k.values.is_empty())
                    .map(|k| (o.path, k.values))
            })
            .unwrap_or_else(|| panic!("{}: unexpected error {err}", heading(t)));
        let mut keys = Vec::new();
        for (kind, _) in kinds {
            let text = format!(
                "[cluster]\nname = \"p\"\nmembers = [{{ name = \"m\", endpoint = \"http://127.0.0.1:2379\" }}]\n\
                 [state]\ndir = \"/var/lib/vigil\"\n{}",
                probe_doc(Some((at, kind)))
            );
            let path = std::path::Path::new("probe.toml");
            let Err(err) = crate::Config::parse_with(&text, path, crate::config::Uses::NONE) else {
                panic!("{} kind {kind} accepts an unknown key", heading(t));
            };
            for k in probed(&err.to_string()).into_iter().flatten() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        assert!(!keys.is_empty(), "{}: no kind names its keys", heading(t));
        keys
    }

    /// The keys an "unknown field `__vigil_probe`, expected one of ..."
    /// error lists.
    fn probed(err: &str) -> Option<Vec<String>> {
        let tail = err.split_once("unknown field `__vigil_probe`")?.1;
        let tail = tail.lines().next().unwrap_or("");
        Some(
            tail.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect(),
        )
    }

    #[test]
    fn every_key_serde_accepts_is_on_the_page() {
        let page = man_page();
        assert!(TABLES.iter().any(|t| t.path == "snapshot"));
        for t in TABLES {
            let keys = serde_keys(t);
            assert!(!keys.is_empty(), "{}: no keys", heading(t));
            // The section's text, from its heading to the next one.
            let start = if t.path.is_empty() {
                page.find(".SH TABLES").expect("tables")
            } else {
                page.find(&format!(".SS \"{}\"\n", heading(t)))
                    .unwrap_or_else(|| panic!("no section {}", heading(t)))
            };
            let body = &page[start + 4..];
            let body = &body[..body.find("\n.SS ").unwrap_or(body.len())];
            for k in &keys {
                let sub = if t.path.is_empty() {
                    k.clone()
                } else {
                    format!("{}.{k}", t.path)
                };
                let documented =
                    body.contains(&format!(".BR {k} ")) || TABLES.iter().any(|o| o.path == sub);
                assert!(documented, "key {sub} is not in vigil.toml(5)");
            }
            // And nothing on the page that serde would refuse.
            for k in t.keys {
                assert!(
                    keys.iter().any(|s| s == k.name),
                    "{}.{} is not a key serde knows",
                    t.path,
                    k.name
                );
            }
        }
    }

    #[test]
    fn defaults_come_from_the_default_functions() {
        let key = |t: &str, k: &str| {
            TABLES
                .iter()
                .find(|x| x.path == t)
                .and_then(|x| x.keys.iter().find(|y| y.name == k))
                .unwrap_or_else(|| panic!("{t}.{k}"))
        };
        assert_eq!(key("snapshot", "keep_last").default, Some("5"));
        assert_eq!(key("snapshot", "timeout").default, Some("\"1h\""));
        assert_eq!(key("health.etcd", "db_quota").default, Some("\"2GiB\""));
        assert_eq!(
            key("metrics", "textfile_dir").default,
            Some("\"/var/lib/prometheus/node-exporter\"")
        );
        assert!(key("cluster", "name").required);
        assert!(!key("snapshot", "encryption").values.is_empty());
    }

    #[test]
    fn the_page_is_roff() {
        let page = man_page();
        assert!(page.starts_with(".TH VIGIL.TOML 5"));
        for l in page.lines() {
            assert!(!l.starts_with('\''), "line starts with a quote: {l}");
        }
        assert!(page.contains(".SS \"[[alert.channel]]\""));
    }

    #[test]
    fn readme_has_the_generated_reference() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (head, rest) = readme
            .split_once(README_BEGIN)
            .expect("README.md has the config reference markers");
        let (old, tail) = rest.split_once(README_END).expect("README.md: end marker");
        let want = format!("\n{}\n", markdown());
        if old == want {
            return;
        }
        if std::env::var_os("VIGIL_UPDATE_DOCS").is_some() {
            std::fs::write(
                &path,
                format!("{head}{README_BEGIN}{want}{README_END}{tail}"),
            )
            .unwrap();
            return;
        }
        panic!(
            "README.md's config reference differs from the config types: run \
             `VIGIL_UPDATE_DOCS=1 cargo test -p vigil-core --lib config_doc` and commit README.md"
        );
    }

    #[test]
    fn markdown_has_every_key() {
        let md = markdown();
        for t in TABLES {
            for k in t.keys {
                assert!(
                    md.contains(&format!("| `{}` |", k.name)),
                    "{}.{}",
                    t.path,
                    k.name
                );
            }
        }
        assert!(md.contains("#### `[[sink]]`"));
    }

    /// The hand-written table of README's *Configuration* names keys that
    /// exist, with the defaults the code has.
    #[test]
    fn readme_key_table_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let table = readme
            .split_once("| key | default | meaning |\n|---|---|---|\n")
            .expect("README's key table")
            .1;
        let mut rows = 0;
        for line in table.lines().take_while(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let name = cells[0].trim_start_matches("| ").split('`').nth(1).unwrap();
            // A table of its own (`cluster.members`, an array of tables).
            if TABLES.iter().any(|x| x.path == name) {
                rows += 1;
                continue;
            }
            let (t, k) = name.rsplit_once('.').unwrap();
            let key = TABLES
                .iter()
                .find(|x| x.path == t)
                .and_then(|x| x.keys.iter().find(|y| y.name == k))
                .unwrap_or_else(|| panic!("README names {name}, which is not a key"));
            let default = cells[1].trim();
            match default {
                "required" => assert!(key.required, "{name} is not required"),
                // Required when another key says so (the validator checks it).
                d if d.starts_with("required ") => {}
                "none" => assert!(key.default.is_none(), "{name}: {:?}", key.default),
                d => assert_eq!(
                    Some(d.trim_matches('`')),
                    key.default,
                    "README's default of {name}"
                ),
            }
            rows += 1;
        }
        assert!(rows > 10, "{rows} rows");
    }
}
