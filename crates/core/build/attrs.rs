//! What build.rs reads off syn items: doc comments, serde attributes and
//! type shapes.

/// `#[doc]` lines joined; an empty line separates paragraphs.
pub(crate) fn doc_of(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &a.meta {
            if let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
            {
                let v = s.value();
                lines.push(v.strip_prefix(' ').unwrap_or(&v).trim_end().to_string());
            }
        }
    }
    let mut out = String::new();
    for l in lines {
        if l.is_empty() {
            out.push_str("\n\n");
        } else {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push(' ');
            }
            out.push_str(&l);
        }
    }
    out.trim().to_string()
}

/// The serde attributes that matter here.
#[derive(Default)]
pub(crate) struct Serde {
    pub(crate) rename: Option<String>,
    pub(crate) rename_all: Option<String>,
    pub(crate) default: Option<Option<String>>,
    pub(crate) skip: bool,
}

pub(crate) fn serde_of(attrs: &[syn::Attribute]) -> Serde {
    let mut s = Serde::default();
    for a in attrs {
        if !a.path().is_ident("serde") {
            continue;
        }
        let _ = a.parse_nested_meta(|m| {
            let name = m
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            let value = || -> syn::Result<String> {
                let lit: syn::LitStr = m.value()?.parse()?;
                Ok(lit.value())
            };
            match name.as_str() {
                "rename" => s.rename = Some(value()?),
                "rename_all" => s.rename_all = Some(value()?),
                "default" => {
                    s.default = Some(if m.input.peek(syn::Token![=]) {
                        Some(value()?)
                    } else {
                        None
                    })
                }
                "skip" | "skip_deserializing" => s.skip = true,
                _ => {
                    // Skip the value of any other attribute (`deserialize_with = "..."`, ...).
                    if m.input.peek(syn::Token![=]) {
                        let _: syn::Expr = m.value()?.parse()?;
                    }
                }
            }
            Ok(())
        });
    }
    s
}

pub(crate) fn apply_case(name: &str, rule: Option<&str>) -> String {
    match rule {
        Some("lowercase") => name.to_lowercase(),
        Some("UPPERCASE") => name.to_uppercase(),
        Some("snake_case") | Some("kebab-case") => {
            let mut out = String::new();
            for (i, c) in name.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    out.push(if rule == Some("kebab-case") { '-' } else { '_' });
                }
                out.extend(c.to_lowercase());
            }
            out
        }
        _ => name.to_string(),
    }
}

/// The last path segment and its generic arguments.
pub(crate) fn split(ty: &syn::Type) -> Option<(String, Vec<&syn::Type>)> {
    let syn::Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    let args = match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((seg.ident.to_string(), args))
}

/// The key serde reads a field from.
pub(crate) fn key_name(f: &syn::Field, cont: &Serde, s: &Serde) -> String {
    let ident = f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
    let ident = ident.strip_prefix("r#").unwrap_or(&ident).to_string();
    s.rename
        .clone()
        .unwrap_or_else(|| apply_case(&ident, cont.rename_all.as_deref()))
}

/// The type inside `Option<…>`, and whether there was one.
pub(crate) fn unoption(ty: &syn::Type) -> (&syn::Type, bool) {
    let ty = plain(ty);
    match split(ty) {
        Some((n, a)) if n == "Option" && a.len() == 1 => (plain(a[0]), true),
        _ => (ty, false),
    }
}

/// Strips `Spanned<…>` and `Box<…>`.
pub(crate) fn plain(ty: &syn::Type) -> &syn::Type {
    match split(ty) {
        Some((n, a)) if (n == "Spanned" || n == "Box") && a.len() == 1 => plain(a[0]),
        _ => ty,
    }
}
