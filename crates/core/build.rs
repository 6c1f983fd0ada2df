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

use attrs::{apply_case, doc_of, parse_kinds, plain, serde_of, split};
use render::{duration, render, size};

struct File {
    structs: BTreeMap<String, syn::ItemStruct>,
    enums: BTreeMap<String, syn::ItemEnum>,
    fns: BTreeMap<String, syn::ItemFn>,
    consts: BTreeMap<String, syn::Expr>,
    /// `kinds! { "name" => Variant(module::RawType -> Resolved), ... }`:
    /// each kind's name and raw options type.
    kinds: Vec<(String, String)>,
}

struct Source {
    files: Vec<File>,
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
    rust_files(&src.join("config"), &mut sub);
    sub.sort();
    paths.extend(sub);
    let files = paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            index(ast)
        })
        .collect();
    let source = Source { files };
    let mut tables = Vec::new();
    source.walk("RawConfig", "", false, String::new(), &mut tables);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("config_reference.rs"), render(&tables))
        .expect("write config_reference.rs");
}

/// The `.rs` files under `dir`, at any depth (a section may be a directory:
/// `config/sink/` holds one file per kind).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            println!("cargo:rerun-if-changed={}", p.display());
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn index(ast: syn::File) -> File {
    let mut f = File {
        structs: BTreeMap::new(),
        enums: BTreeMap::new(),
        fns: BTreeMap::new(),
        consts: BTreeMap::new(),
        kinds: Vec::new(),
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
                f.kinds = m
                    .mac
                    .parse_body_with(parse_kinds)
                    .unwrap_or_else(|e| panic!("kinds!: {e}"));
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
            let ident = f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
            let ident = ident.strip_prefix("r#").unwrap_or(&ident).to_string();
            let key = s
                .rename
                .clone()
                .unwrap_or_else(|| apply_case(&ident, cont.rename_all.as_deref()));
            let doc = doc_of(&f.attrs);
            let sub = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let mut ty = plain(&f.ty);
            if s.flatten {
                // The flattened kinds of `[[sink]]` (its file's `kinds!`):
                // `kind` and every kind's keys join this table. Other flattened fields
                // (a catch-all table) hold no keys of their own.
                let table = split(ty).is_some_and(|(n, _)| n == "Table");
                if !table && !self.files[file].kinds.is_empty() {
                    self.kinds(&self.files[file].kinds, path, at, out);
                }
                continue;
            }
            let mut optional = false;
            if let Some((n, a)) = split(ty) {
                if n == "Option" && a.len() == 1 {
                    ty = plain(a[0]);
                    optional = true;
                }
            }
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
            out[at].keys.push(Key {
                name: key,
                ty: tyname,
                required,
                default,
                doc,
                values,
            });
        }
    }

    /// The keys of the kinds a `kinds!` line names, merged into table
    /// `out[at]`: `kind` with each kind as a value, then each kind's own
    /// keys, each saying which kinds take it.
    fn kinds(&self, kinds: &[(String, String)], path: &str, at: usize, out: &mut Vec<Table>) {
        let mut values = Vec::new();
        let mut keys: Vec<(Key, Vec<String>)> = Vec::new();
        let mut subtables = Vec::new();
        for (name, ty) in kinds {
            let (name, ty) = (name.clone(), ty.clone());
            let (_, st) = self
                .find_struct(&ty)
                .unwrap_or_else(|| panic!("kind type {ty} not found"));
            values.push((name.clone(), doc_of(&st.attrs)));
            let mut tmp = Vec::new();
            self.walk(&ty, path, false, String::new(), &mut tmp);
            let mut tables = tmp.into_iter();
            for k in tables.next().map(|t| t.keys).unwrap_or_default() {
                match keys.iter_mut().find(|(have, _)| have.name == k.name) {
                    Some((_, kinds)) => kinds.push(name.clone()),
                    None => keys.push((k, vec![name.clone()])),
                }
            }
            for t in tables {
                if !subtables.iter().any(|s: &Table| s.path == t.path) {
                    subtables.push(t);
                }
            }
        }
        out[at].keys.push(Key {
            name: "kind".into(),
            ty: "string".into(),
            required: true,
            default: None,
            doc: "The kind of sink: each has its own keys.".into(),
            values,
        });
        for (mut k, kinds) in keys {
            let only = format!("Kind {}.", kinds.join(", "));
            k.doc = if k.doc.is_empty() {
                only
            } else {
                format!("{only} {}", k.doc)
            };
            k.required = false;
            out[at].keys.push(k);
        }
        out.extend(subtables);
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
