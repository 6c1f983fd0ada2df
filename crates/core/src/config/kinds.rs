//! Tables of kinds, `[[sink]]` and `[[alert.channel]]`: each entry has the
//! keys of its family and the keys of its `kind`.
//!
//! An entry is read in two steps, so that every error names the file, the
//! line and the key. serde reads the family's keys and refuses, at its line,
//! a key that no kind has. Then the kind's own struct is read from the same
//! table of the parsed document, which keeps every value's span. (An
//! internally tagged enum would buffer the table and lose the spans, and
//! `flatten` would lose `deny_unknown_fields`.) A family lists its kinds
//! once, in a `kinds!` line per kind; crates/core/build.rs reads those lines
//! for vigil.toml(5).

use super::keypath;
use super::{ConfigError, Validator};
use crate::secret::Secret;
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::PathBuf;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A table of kinds.
pub(super) trait Family: 'static {
    /// The struct serde reads the keys every entry has into.
    type Common: DeserializeOwned;
    /// Where the entries are: `["alert", "channel"]`.
    const PATH: &'static [&'static str];
    /// Common keys that only some kinds take (see [`RawKind::SHARED`]).
    const RESTRICTED: &'static [&'static str] = &[];
    /// Every key of the family's kinds (without the common ones).
    fn kind_fields() -> Vec<&'static str>;
    /// The keys of [`Self::Common`].
    fn common() -> &'static [&'static str];
    /// Every key some entry may have.
    fn all() -> &'static [&'static str];
}

/// One kind's keys as serde reads them, and their checks.
pub(super) trait RawKind: DeserializeOwned {
    type Settings;
    /// The family's restricted keys this kind takes.
    const SHARED: &'static [&'static str] = &[];
    fn resolve(self, cx: &Cx) -> Result<Self::Settings, ConfigError>;
}

/// The keys serde reads for `T`: what its derived `Deserialize` hands to
/// `deserialize_struct`.
pub(super) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// The common keys and every key, computed once per family.
pub(super) fn all_of<F: Family>(common: &'static [&'static str]) -> Vec<&'static str> {
    let mut all = common.to_vec();
    for f in F::kind_fields() {
        if !all.contains(&f) {
            all.push(f);
        }
    }
    all
}

/// The first step, as a `deserialize_with`: the common keys of each entry,
/// and an "unknown field" error (at its line) for a key no kind knows.
pub(super) fn entries<'de, F: Family, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Spanned<F::Common>>, D::Error> {
    struct Entry<F: Family>(F::Common);
    impl<'de, F: Family> Deserialize<'de> for Entry<F> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(TableVisitor::<F>(PhantomData))
        }
    }
    struct TableVisitor<F>(PhantomData<F>);
    impl<'de, F: Family> Visitor<'de> for TableVisitor<F> {
        type Value = Entry<F>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a [[{}]] table", F::PATH.join("."))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry<F>, A::Error> {
            F::Common::deserialize(de::value::MapAccessDeserializer::new(CommonKeys::<A, F>(
                map,
                PhantomData,
            )))
            .map(Entry)
        }
    }
    let v: Vec<Spanned<Entry<F>>> = Vec::deserialize(d)?;
    Ok(v.into_iter()
        .map(|c| {
            let span = c.span();
            Spanned::new(span, c.into_inner().0)
        })
        .collect())
}

/// An entry's keys with the kinds' own keys skipped (the second step reads
/// them); a key no kind knows is refused where it is read, so the error
/// carries its span.
struct CommonKeys<A, F>(A, PhantomData<F>);

struct KnownKey<F>(PhantomData<F>);

impl<'de, F: Family> de::DeserializeSeed<'de> for KnownKey<F> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let k = String::deserialize(d)?;
        if F::all().contains(&k.as_str()) {
            Ok(k)
        } else {
            Err(de::Error::unknown_field(&k, F::all()))
        }
    }
}

impl<'de, A: MapAccess<'de>, F: Family> MapAccess<'de> for CommonKeys<A, F> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(k) = self.0.next_key_seed(KnownKey::<F>(PhantomData))? {
            if F::common().contains(&k.as_str()) {
                return seed.deserialize(k.into_deserializer()).map(Some);
            }
            self.0.next_value::<de::IgnoredAny>()?;
        }
        Ok(None)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// Each table of family `F` in the parsed document, in order.
pub(super) fn tables<'a, 'i, F: Family>(
    doc: &'a Spanned<DeTable<'i>>,
) -> Vec<Option<&'a DeTable<'i>>> {
    fn get<'a, 'i>(t: &'a DeTable<'i>, key: &str) -> Option<&'a DeValue<'i>> {
        t.iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v.get_ref())
    }
    let (last, parents) = F::PATH.split_last().expect("a family has a path");
    let mut t = Some(doc.get_ref());
    for p in parents {
        t = t.and_then(|t| get(t, p)).and_then(|v| v.as_table());
    }
    t.and_then(|t| get(t, last))
        .and_then(|c| c.as_array())
        .map(|a| a.iter().map(|e| e.get_ref().as_table()).collect())
        .unwrap_or_default()
}

/// What a kind's `resolve` needs: the validator and where the entry is.
pub(super) struct Cx<'a, 'v> {
    pub v: &'a Validator<'v>,
    pub key: &'a str,
    pub span: Range<usize>,
    /// The kind as messages name it.
    pub kind: String,
}

impl Cx<'_, '_> {
    pub fn err(
        &self,
        field: &str,
        span: Option<Range<usize>>,
        msg: impl Into<String>,
    ) -> ConfigError {
        self.v.err(format!("{}.{field}", self.key), span, msg)
    }

    /// The line of `field = ...` in this entry's table.
    pub fn field_span(&self, field: &str) -> Option<Range<usize>> {
        self.v.field_span(self.span.clone(), field)
    }

    pub fn need(&self, field: &str, present: bool) -> Result<(), ConfigError> {
        if present {
            Ok(())
        } else {
            Err(self.err(
                field,
                Some(self.span.clone()),
                format!("required for kind {}", self.kind),
            ))
        }
    }

    /// A key the kind cannot do without, taken out of its `Option`.
    pub fn required<T>(&self, field: &str, v: Option<T>) -> Result<T, ConfigError> {
        self.need(field, v.is_some())?;
        v.ok_or_else(|| unreachable!("checked by need"))
    }

    /// An object store's `endpoint`: https://, or http:// only with
    /// `allow_http = true`, since plain http sends archives and credentials
    /// unprotected.
    pub fn endpoint(&self, ep: Option<&str>, allow_http: bool) -> Result<(), ConfigError> {
        let Some(ep) = ep else { return Ok(()) };
        let http = ep.starts_with("http://");
        if !(http || ep.starts_with("https://")) {
            return Err(self.err(
                "endpoint",
                self.field_span("endpoint"),
                format!("{ep:?} must start with https:// (or http:// with allow_http = true)"),
            ));
        }
        if http && !allow_http {
            return Err(self.err(
                "endpoint",
                self.field_span("endpoint"),
                "plain http:// sends archives and credentials unprotected; use https:// or set allow_http = true",
            ));
        }
        Ok(())
    }

    /// An inline secret or its `*_file`, read when the section's files are
    /// opened (else empty).
    pub fn secret(
        &self,
        field: &str,
        inline: &Option<Secret>,
        file: &Option<PathBuf>,
    ) -> Result<Secret, ConfigError> {
        self.v
            .inline_or_file(self.key, field, inline, file, self.span.clone())
    }
}

/// Splits an entry's table into the kind's own keys; a key that belongs to
/// other kinds (or a restricted common key this kind does not take) is
/// refused at its line, naming the kinds that take it.
pub(super) fn own_keys<'i, F: Family>(
    cx: &Cx,
    table: Option<&DeTable<'i>>,
    own: &[&str],
    shared: &[&str],
    owners: impl Fn(&str) -> Vec<&'static str>,
) -> Result<Spanned<DeValue<'i>>, ConfigError> {
    let mut out = DeTable::new();
    for (k, val) in table.into_iter().flat_map(|t| t.iter()) {
        let field: &str = k.get_ref().as_ref();
        let common = F::common().contains(&field);
        if common && (!F::RESTRICTED.contains(&field) || shared.contains(&field)) {
            continue;
        }
        if !common && own.contains(&field) {
            out.insert(k.clone(), val.clone());
            continue;
        }
        let names: Vec<String> = owners(field).iter().map(|o| format!("{o:?}")).collect();
        let list = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        return Err(cx.err(
            field,
            Some(k.span()),
            format!("does not apply to kind {}: only for kind {list}", cx.kind),
        ));
    }
    Ok(Spanned::new(cx.span.clone(), DeValue::Table(out)))
}

/// The second step: a kind's struct read from its keys in the document.
pub(super) fn read<R: RawKind>(cx: &Cx, own: Spanned<DeValue<'_>>) -> Result<R, ConfigError> {
    R::deserialize(toml::de::ValueDeserializer::from(own))
        .map_err(|e| keypath::toml_error(cx.v.text, cx.v.path, &e))
}

/// The kinds of a family, one line each:
/// `"name" => Variant(module::RawType => Settings)`. Declares the enum
/// `kind = "..."` names, the enum of resolved settings, and the dispatch
/// between them; with `Settings: dyn Trait`, also `Settings::options()`.
macro_rules! kinds {
    // `each NAME => CALLBACK`: exports `NAME!()`, which expands to
    // `CALLBACK! { Variant => module, ... }` for every kind in the crate that
    // invokes it, so the crate that builds or sends a kind (vigil-archive,
    // vigil-alert) takes its modules and its one match from this one list.
    (
        $(#[doc = $kdoc:literal])* enum $kind:ident => $(#[doc = $sdoc:literal])* $settings:ident $(: dyn $tr:path)?, each $each:ident => $cb:ident;
        $( $(#[doc = $doc:literal])* $name:literal => $variant:ident($m:ident :: $raw:ident => $res:ident) ),* $(,)?
    ) => {
        #[macro_export]
        macro_rules! $each {
            () => { $cb! { $($variant => $m),* } };
        }

        kinds! {
            $(#[doc = $kdoc])* enum $kind => $(#[doc = $sdoc])* $settings $(: dyn $tr)?;
            $( $(#[doc = $doc])* $name => $variant($m::$raw => $res), )*
        }
    };
    (
        $(#[doc = $kdoc:literal])* enum $kind:ident => $(#[doc = $sdoc:literal])* $settings:ident: dyn $tr:path;
        $( $(#[doc = $doc:literal])* $name:literal => $variant:ident($m:ident :: $raw:ident => $res:ident) ),* $(,)?
    ) => {
        kinds! {
            $(#[doc = $kdoc])* enum $kind => $(#[doc = $sdoc])* $settings;
            $( $(#[doc = $doc])* $name => $variant($m::$raw => $res), )*
        }

        impl $settings {
            /// The kind's settings as the trait every kind implements.
            pub fn options(&self) -> &dyn $tr {
                match self { $($settings::$variant(o) => o,)* }
            }
        }
    };
    (
        $(#[doc = $kdoc:literal])* enum $kind:ident => $(#[doc = $sdoc:literal])* $settings:ident;
        $( $(#[doc = $doc:literal])* $name:literal => $variant:ident($m:ident :: $raw:ident => $res:ident) ),* $(,)?
    ) => {
        // The kind's file, `<family>/<m>.rs`, and its resolved type.
        $( pub mod $m; pub use $m::$res; )*

        $(#[doc = $kdoc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
        pub enum $kind {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant, )*
        }

        impl $kind {
            pub const ALL: &'static [$kind] = &[$($kind::$variant),*];

            /// The name written in `kind = "..."`.
            pub fn as_str(self) -> &'static str {
                match self { $($kind::$variant => $name,)* }
            }

            /// The keys of this kind besides the common ones.
            fn fields(self) -> &'static [&'static str] {
                match self { $($kind::$variant => $crate::config::kinds::fields_of::<$m::$raw>(),)* }
            }

            /// The restricted common keys this kind takes.
            fn shared(self) -> &'static [&'static str] {
                match self { $($kind::$variant => <$m::$raw as $crate::config::kinds::RawKind>::SHARED,)* }
            }

            fn resolve(
                self,
                cx: &$crate::config::kinds::Cx,
                own: toml::Spanned<toml::de::DeValue<'_>>,
            ) -> Result<$settings, $crate::config::ConfigError> {
                use $crate::config::kinds::{read, RawKind};
                match self {
                    $($kind::$variant => Ok($settings::$variant(read::<$m::$raw>(cx, own)?.resolve(cx)?)),)*
                }
            }

            /// Every kind's own keys.
            fn all_fields() -> Vec<&'static str> {
                let mut v = Vec::new();
                $(v.extend_from_slice($crate::config::kinds::fields_of::<$m::$raw>());)*
                v
            }

            /// The kinds that take key `field`.
            fn owners(field: &str) -> Vec<&'static str> {
                $kind::ALL
                    .iter()
                    .filter(|k| k.fields().contains(&field) || k.shared().contains(&field))
                    .map(|k| k.as_str())
                    .collect()
            }
        }

        $(#[doc = $sdoc])*
        #[derive(Debug, Clone)]
        pub enum $settings {
            $( $variant($res), )*
        }

        impl $settings {
            pub fn kind(&self) -> $kind {
                match self { $($settings::$variant(_) => $kind::$variant,)* }
            }
        }
    };
}

pub(super) use kinds;
