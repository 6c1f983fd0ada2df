//! Reads the config types (`src/config.rs`, `src/config/*.rs`) and writes
//! `$OUT_DIR/config_reference.rs`: every table and key of vigil.toml with its
//! type, default and doc comment, for the `vigil.toml(5)` man page
//! (`src/config_doc.rs`). The serde attributes decide the names, so the page
//! follows the types; a test in `config_doc.rs` checks it against serde.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[path = "build/attrs.rs"]
mod attrs;
#[path = "build/render.rs"]
mod render;

use attrs::{apply_case, doc_of, key_name, plain, serde_of, split, unoption, Serde};
use render::{duration, render, size};

struct File {
    kinds: Vec<Kinds>,
    structs: BTreeMap<String, syn::ItemStruct>,
    enums: BTreeMap<String, syn::ItemEnum>,
    fns: BTreeMap<String, syn::ItemFn>,
    consts: BTreeMap<String, syn::Expr>,
}

struct Source {
    files: Vec<File>,
    /// The tables of kinds, one per `kinds!` invocation (config/channel.rs,
    /// config/sink/mod.rs).
    kinds: Vec<Kinds>,
}

/// One `kinds! { enum Kind => Settings; "name" => ..., }`.
struct Kinds {
    /// The enum `kind = "..."` is read into.
    kind_enum: String,
    entries: Vec<KindEntry>,
}

/// A key several kinds take: the kinds, and what each says it means.
type Shared<'a> = (Key, Vec<&'a str>, Vec<(&'a str, String)>);

/// One line of `kinds!`: `"slack" => Slack(slack::RawSlack => slack::SlackChannel)`.
struct KindEntry {
    name: String,
    doc: String,
    /// The struct serde reads the kind's own keys into.
    raw: String,
}

impl syn::parse::Parse for Kinds {
    fn parse(input: syn::parse::ParseStream) -> syn::Result<Self> {
        input.call(syn::Attribute::parse_outer)?;
        input.parse::<syn::Token![enum]>()?;
        let kind_enum: syn::Ident = input.parse()?;
        input.parse::<syn::Token![=>]>()?;
        input.call(syn::Attribute::parse_outer)?;
        input.parse::<syn::Ident>()?;
        if input.peek(syn::Token![:]) {
            input.parse::<syn::Token![:]>()?;
            input.parse::<syn::Token![dyn]>()?;
            input.parse::<syn::Path>()?;
        }
        if input.peek(syn::Token![,]) {
            // `, each NAME => CALLBACK`
            input.parse::<syn::Token![,]>()?;
            input.parse::<syn::Ident>()?;
            input.parse::<syn::Ident>()?;
            input.parse::<syn::Token![=>]>()?;
            input.parse::<syn::Ident>()?;
        }
        input.parse::<syn::Token![;]>()?;
        let entries =
            syn::punctuated::Punctuated::<KindEntry, syn::Token![,]>::parse_terminated(input)?;
        Ok(Kinds {
            kind_enum: kind_enum.to_string(),
            entries: entries.into_iter().collect(),
        })
    }
}

impl syn::parse::Parse for KindEntry {
    fn parse(input: syn::parse::ParseStream) -> syn::Result<Self> {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let name: syn::LitStr = input.parse()?;
        input.parse::<syn::Token![=>]>()?;
        let _variant: syn::Ident = input.parse()?;
        let inner;
        syn::parenthesized!(inner in input);
        let raw: syn::Type = inner.parse()?;
        inner.parse::<syn::Token![=>]>()?;
        let _settings: syn::Type = inner.parse()?;
        Ok(KindEntry {
            name: name.value(),
            doc: doc_of(&attrs),
            raw: split(&raw).map(|(n, _)| n).unwrap_or_default(),
        })
    }
}

struct Table {
    path: String,
    array: bool,
    doc: String,
    keys: Vec<Key>,
}

struct Key {
    name: String,
    ty: String,
    required: bool,
    default: Option<String>,
    doc: String,
    values: Vec<(String, String)>,
}

fn main() {
    let src = Path::new("src");
    let mut paths = vec![src.join("config.rs")];
    println!("cargo:rerun-if-changed=src/config.rs");
    println!("cargo:rerun-if-changed=src/config");
    let mut sub = Vec::new();
    rs_files(&src.join("config"), &mut sub);
    sub.sort();
    paths.extend(sub);
    let files: Vec<File> = paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            index(ast)
        })
        .collect();
    let mut files = files;
    let kinds = files.iter_mut().flat_map(|f| f.kinds.drain(..)).collect();
    let source = Source { files, kinds };
    let mut tables = Vec::new();
    source.walk("RawConfig", "", false, String::new(), &mut tables);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("config_reference.rs"), render(&tables))
        .expect("write config_reference.rs");
}

/// The `.rs` files under `dir`, at any depth.
fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(d) = std::fs::read_dir(dir) else {
        return;
    };
    for p in d.filter_map(|e| e.ok().map(|e| e.path())) {
        if p.is_dir() {
            println!("cargo:rerun-if-changed={}", p.display());
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn index(ast: syn::File) -> File {
    let mut f = File {
        kinds: Vec::new(),
        structs: BTreeMap::new(),
        enums: BTreeMap::new(),
        fns: BTreeMap::new(),
        consts: BTreeMap::new(),
    };
    for item in ast.items {
        match item {
            syn::Item::Struct(s) => {
                f.structs.insert(s.ident.to_string(), s);
            }
            syn::Item::Enum(e) => {
                f.enums.insert(e.ident.to_string(), e);
            }
            syn::Item::Fn(func) => {
                f.fns.insert(func.sig.ident.to_string(), func);
            }
            syn::Item::Const(c) => {
                f.consts.insert(c.ident.to_string(), *c.expr);
            }
            syn::Item::Macro(m) if m.mac.path.is_ident("kinds") => {
                let k = m
                    .mac
                    .parse_body::<Kinds>()
                    .unwrap_or_else(|e| panic!("kinds!: {e}"));
                f.kinds.push(k);
            }
            _ => {}
        }
    }
    f
}

impl Source {
    fn find_struct(&self, name: &str) -> Option<(usize, &syn::ItemStruct)> {
        self.files
            .iter()
            .enumerate()
            .find_map(|(i, f)| f.structs.get(name).map(|s| (i, s)))
    }
    fn find_enum(&self, name: &str) -> Option<&syn::ItemEnum> {
        self.files.iter().find_map(|f| f.enums.get(name))
    }

    fn walk(&self, name: &str, path: &str, array: bool, field_doc: String, out: &mut Vec<Table>) {
        let (file, st) = self
            .find_struct(name)
            .unwrap_or_else(|| panic!("config type {name} not found"));
        let cont = serde_of(&st.attrs);
        let struct_doc = doc_of(&st.attrs);
        let doc = if struct_doc.is_empty() {
            field_doc
        } else {
            struct_doc
        };
        let at = out.len();
        out.push(Table {
            path: path.to_string(),
            array,
            doc,
            keys: Vec::new(),
        });
        let syn::Fields::Named(fields) = &st.fields else {
            return;
        };
        for f in &fields.named {
            let s = serde_of(&f.attrs);
            if s.skip {
                continue;
            }
            let key = key_name(f, &cont, &s);
            let doc = doc_of(&f.attrs);
            let sub = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let (ty, optional) = unoption(&f.ty);
            // Sub-tables and arrays of tables.
            if let Some((n, a)) = split(ty) {
                if self.find_struct(&n).is_some() && a.is_empty() {
                    self.walk(&n, &sub, false, doc, out);
                    continue;
                }
                if n == "Vec" && a.len() == 1 {
                    if let Some((inner, _)) = split(plain(a[0])) {
                        if self.find_struct(&inner).is_some() {
                            self.walk(&inner, &sub, true, doc, out);
                            continue;
                        }
                    }
                }
            }
            out[at]
                .keys
                .push(self.leaf(file, &cont, &s, key, doc, ty, optional));
        }
        // A table of kinds (`[[sink]]`, `[[alert.channel]]`): the common
        // keys, then each kind's own.
        let kinds = fields.named.iter().find_map(|f| {
            let (n, _) = split(plain(&f.ty))?;
            self.kinds.iter().find(|k| k.kind_enum == n)
        });
        if let Some(kinds) = kinds {
            self.kind_keys(kinds, path, at, out);
        }
    }

    /// A key that is not a table: its type, default and choices.
    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &self,
        file: usize,
        cont: &Serde,
        s: &Serde,
        name: String,
        doc: String,
        ty: &syn::Type,
        optional: bool,
    ) -> Key {
        let (tyname, values) = self.describe(ty);
        let required = !optional && s.default.is_none() && cont.default.is_none();
        let default = match &s.default {
            Some(Some(func)) => {
                self.files[file]
                    .fns
                    .get(func)
                    .and_then(|func| match func.block.stmts.last() {
                        Some(syn::Stmt::Expr(e, None)) => Some(self.eval(file, e)),
                        _ => None,
                    })
            }
            Some(None) if !optional => self.zero(ty),
            Some(None) => None,
            None => None,
        };
        Key {
            name,
            ty: tyname,
            required,
            default,
            doc,
            values,
        }
    }

    /// The keys of every kind in table `out[at]`, each saying which kinds
    /// take it; a kind's sub-tables (`[sink.object_lock]`) follow.
    fn kind_keys(&self, kinds: &Kinds, path: &str, at: usize, out: &mut Vec<Table>) {
        // A key several kinds take; each kind may say what it means for it.
        let mut extra: Vec<Shared<'_>> = Vec::new();
        for k in &kinds.entries {
            let (file, st) = self
                .find_struct(&k.raw)
                .unwrap_or_else(|| panic!("kind struct {} not found", k.raw));
            let cont = serde_of(&st.attrs);
            let syn::Fields::Named(fields) = &st.fields else {
                continue;
            };
            for f in &fields.named {
                let s = serde_of(&f.attrs);
                if s.skip {
                    continue;
                }
                let name = key_name(f, &cont, &s);
                let doc = doc_of(&f.attrs);
                if let Some((_, kinds, docs)) = extra.iter_mut().find(|(e, ..)| e.name == name) {
                    kinds.push(&k.name);
                    if !doc.is_empty() {
                        docs.push((&k.name, doc));
                    }
                    continue;
                }
                let (ty, optional) = unoption(&f.ty);
                if let Some((n, a)) = split(ty) {
                    if self.find_struct(&n).is_some() && a.is_empty() {
                        let sub = format!("{path}.{name}");
                        if !out.iter().any(|t| t.path == sub) {
                            self.walk(&n, &sub, false, doc_of(&f.attrs), out);
                        }
                        continue;
                    }
                }
                let docs = if doc.is_empty() {
                    Vec::new()
                } else {
                    vec![(k.name.as_str(), doc.clone())]
                };
                let key = self.leaf(file, &cont, &s, name, doc, ty, optional);
                extra.push((key, vec![&k.name], docs));
            }
        }
        for (mut key, kinds, docs) in extra {
            let mut texts: Vec<&String> = docs.iter().map(|(_, d)| d).collect();
            texts.dedup();
            // One meaning only when every kind that takes the key says the same.
            if texts.len() == 1 && docs.len() == kinds.len() {
                key.doc = texts[0].clone();
            } else if !texts.is_empty() {
                key.doc = docs
                    .iter()
                    .map(|(k, d)| format!("{k}: {d}"))
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            let list: Vec<String> = kinds.iter().map(|k| format!("`\"{k}\"`")).collect();
            let only = format!(
                "Only for kind{} {}.",
                if kinds.len() > 1 { "s" } else { "" },
                list.join(", ")
            );
            key.doc = if key.doc.is_empty() {
                only
            } else {
                format!("{only} {}", key.doc)
            };
            out[at].keys.push(key);
        }
    }

    /// A type as a man page reader knows it, and an enum's choices.
    fn describe(&self, ty: &syn::Type) -> (String, Vec<(String, String)>) {
        let Some((n, a)) = split(plain(ty)) else {
            return ("value".into(), Vec::new());
        };
        let simple = match n.as_str() {
            "String" | "str" => "string",
            "PathBuf" | "Path" => "path",
            "bool" => "boolean",
            "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
                "integer"
            }
            "f32" | "f64" => "number",
            "HumanDuration" => "duration",
            "ByteSize" => "size",
            "Secret" => "string (secret)",
            _ => "",
        };
        if !simple.is_empty() {
            return (simple.into(), Vec::new());
        }
        if n == "Vec" && a.len() == 1 {
            let (inner, values) = self.describe(a[0]);
            return (format!("array of {inner}s"), values);
        }
        if (n == "BTreeMap" || n == "HashMap") && a.len() == 2 {
            let (inner, values) = self.describe(a[1]);
            return (format!("table of {inner}s"), values);
        }
        if n == "Option" && a.len() == 1 {
            return self.describe(a[0]);
        }
        if let Some(kinds) = self.kinds.iter().find(|k| k.kind_enum == n) {
            let values = kinds
                .entries
                .iter()
                .map(|k| (k.name.clone(), k.doc.clone()))
                .collect();
            return ("string".into(), values);
        }
        if let Some(e) = self.find_enum(&n) {
            let rule = serde_of(&e.attrs).rename_all;
            let values = e
                .variants
                .iter()
                .filter(|v| !serde_of(&v.attrs).skip)
                .map(|v| {
                    let s = serde_of(&v.attrs);
                    let name = s
                        .rename
                        .unwrap_or_else(|| apply_case(&v.ident.to_string(), rule.as_deref()));
                    (name, doc_of(&v.attrs))
                })
                .collect();
            return ("string".into(), values);
        }
        (n, Vec::new())
    }

    /// The default of a bare `#[serde(default)]`, where it says something.
    fn zero(&self, ty: &syn::Type) -> Option<String> {
        let (n, _) = split(plain(ty))?;
        match n.as_str() {
            "bool" => Some("false".into()),
            "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => Some("0".into()),
            "Vec" => Some("[]".into()),
            "String" => Some("\"\"".into()),
            _ => {
                let e = self.find_enum(&n)?;
                let rule = serde_of(&e.attrs).rename_all;
                let v = e
                    .variants
                    .iter()
                    .find(|v| v.attrs.iter().any(|a| a.path().is_ident("default")))?;
                let name = serde_of(&v.attrs)
                    .rename
                    .unwrap_or_else(|| apply_case(&v.ident.to_string(), rule.as_deref()));
                Some(format!("\"{name}\""))
            }
        }
    }

    fn int(e: &syn::Expr) -> Option<u128> {
        match e {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(i),
                ..
            }) => i.base10_parse().ok(),
            syn::Expr::Paren(p) => Self::int(&p.expr),
            syn::Expr::Binary(b) => {
                let (l, r) = (Self::int(&b.left)?, Self::int(&b.right)?);
                match b.op {
                    syn::BinOp::Add(_) => l.checked_add(r),
                    syn::BinOp::Sub(_) => l.checked_sub(r),
                    syn::BinOp::Mul(_) => l.checked_mul(r),
                    syn::BinOp::Div(_) => l.checked_div(r),
                    syn::BinOp::Shl(_) => l.checked_shl(u32::try_from(r).ok()?),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A default value in TOML syntax, evaluated from the default function's body.
    fn eval(&self, file: usize, e: &syn::Expr) -> String {
        self.try_eval(file, e).unwrap_or_else(|| {
            use quote::ToTokens;
            e.to_token_stream().to_string()
        })
    }

    fn try_eval(&self, file: usize, e: &syn::Expr) -> Option<String> {
        if let Some(i) = Self::int(e) {
            return Some(i.to_string());
        }
        match e {
            syn::Expr::Lit(l) => match &l.lit {
                syn::Lit::Str(s) => Some(format!("{:?}", s.value())),
                syn::Lit::Float(f) => Some(f.base10_digits().to_string()),
                syn::Lit::Bool(b) => Some(b.value.to_string()),
                _ => None,
            },
            syn::Expr::MethodCall(m) => match m.method.to_string().as_str() {
                "into" | "to_string" | "to_owned" | "to_vec" | "map" | "collect" | "into_iter"
                | "iter" => self.try_eval(file, &m.receiver),
                _ => None,
            },
            syn::Expr::Call(c) => {
                let syn::Expr::Path(p) = &*c.func else {
                    return None;
                };
                let f = p
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect::<Vec<_>>()
                    .join("::");
                let arg = c.args.first()?;
                match f.as_str() {
                    "Some" | "String::from" | "PathBuf::from" => self.try_eval(file, arg),
                    "HumanDuration::from_secs" => {
                        Some(format!("\"{}\"", duration(Self::int(arg)?)))
                    }
                    "ByteSize" => Some(format!("\"{}\"", size(Self::int(arg)?))),
                    _ => None,
                }
            }
            syn::Expr::Path(p) => {
                let name = p.path.get_ident()?.to_string();
                let f = if self.files[file].consts.contains_key(&name) {
                    file
                } else {
                    self.files
                        .iter()
                        .position(|f| f.consts.contains_key(&name))?
                };
                let c = self.files[f].consts.get(&name)?;
                self.try_eval(f, c)
            }
            syn::Expr::Array(a) => {
                let items: Option<Vec<_>> =
                    a.elems.iter().map(|x| self.try_eval(file, x)).collect();
                Some(format!("[{}]", items?.join(", ")))
            }
            syn::Expr::Macro(m) if m.mac.path.is_ident("vec") => {
                let items = m
                    .mac
                    .parse_body_with(
                        syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated,
                    )
                    .ok()?;
                let items: Option<Vec<_>> = items.iter().map(|x| self.try_eval(file, x)).collect();
                Some(format!("[{}]", items?.join(", ")))
            }
            syn::Expr::Paren(p) => self.try_eval(file, &p.expr),
            syn::Expr::Reference(r) => self.try_eval(file, &r.expr),
            _ => None,
        }
    }
}
