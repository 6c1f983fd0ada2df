//! `[[alert.channel]]`: where alerts are sent. The keys every channel has
//! are here; each kind's own keys, their checks and its secret are in
//! `channel/<kind>.rs`, registered once in [`channel_kinds!`] below.
//!
//! A channel is read in two steps, so that every error still names the
//! file, the line and the key. serde reads the common keys and refuses a key
//! no kind knows (at that key's line). Then the kind's own struct is read
//! from the same table of the parsed document, which keeps every value's
//! span. (An internally tagged enum would buffer the table and lose the
//! spans, and `flatten` would lose `deny_unknown_fields`.)

use super::keypath;
use super::{ConfigError, Severity, Validator, ALERT_SOURCES};
use crate::secret::Secret;
use crate::units::HumanDuration;
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub mod alertmanager;
pub mod email;
pub mod file;
pub mod slack;
pub mod teams;

/// The kinds: `kind = "<name>"`, its variant, the struct serde reads its
/// keys into and the settings it resolves to. One line per kind (build.rs
/// reads this list for the man page).
macro_rules! channel_kinds {
    ($( $(#[doc = $doc:literal])* $name:literal => $variant:ident($raw:ty => $settings:ty) ),* $(,)?) => {
        /// What `kind = "..."` names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
        pub enum ChannelKind {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant, )*
        }

        impl ChannelKind {
            pub const ALL: &'static [ChannelKind] = &[$(ChannelKind::$variant),*];

            /// The name written in `kind = "..."`.
            pub fn as_str(self) -> &'static str {
                match self { $(ChannelKind::$variant => $name,)* }
            }

            /// The keys of this kind besides the common ones.
            fn fields(self) -> &'static [&'static str] {
                match self { $(ChannelKind::$variant => fields_of::<$raw>(),)* }
            }

            fn resolve(self, cx: &Ctx, own: Spanned<DeValue<'_>>) -> Result<ChannelSettings, ConfigError> {
                match self {
                    $(ChannelKind::$variant => Ok(ChannelSettings::$variant(read::<$raw>(cx, own)?.resolve(cx)?)),)*
                }
            }
        }

        /// A channel's kind with its own settings.
        #[derive(Debug, Clone)]
        pub enum ChannelSettings {
            $( $variant($settings), )*
        }

        impl ChannelSettings {
            pub fn kind(&self) -> ChannelKind {
                match self { $(ChannelSettings::$variant(_) => ChannelKind::$variant,)* }
            }
        }
    };
}

channel_kinds! {
    /// A Slack incoming webhook.
    "slack" => Slack(slack::RawSlack => slack::SlackChannel),
    /// A Microsoft Teams workflow (or retired connector) webhook.
    "teams" => Teams(teams::RawTeams => teams::TeamsChannel),
    /// Email through an SMTP relay.
    "email" => Email(email::RawEmail => email::EmailChannel),
    /// Alertmanager's v2 API.
    "alertmanager" => Alertmanager(alertmanager::RawAlertmanager => alertmanager::AlertmanagerChannel),
    /// One JSON line per message appended to a file.
    "file" => File(file::RawFile => file::FileChannel),
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Default upper bound of one delivery attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One alert channel. `kind` says which further keys apply; a key of
/// another kind is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    name: String,
    kind: ChannelKind,
    min_severity: Option<Severity>,
    #[serde(default)]
    sources: Vec<String>,
    /// Extra CA (PEM) to trust for this channel's TLS, e.g. a private relay's CA.
    ca_file: Option<PathBuf>,
    /// Upper bound for one delivery attempt (default 10s).
    timeout: Option<HumanDuration>,
}

/// One channel, validated: its kind's settings and secret read.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: String,
    pub min_severity: Option<Severity>,
    /// Empty: every source.
    pub sources: Vec<String>,
    pub ca_file: Option<PathBuf>,
    /// Upper bound for one delivery attempt.
    pub timeout: Duration,
    pub settings: ChannelSettings,
}

impl ChannelConfig {
    pub fn kind(&self) -> ChannelKind {
        self.settings.kind()
    }
}

/// What a kind's `resolve` needs: the validator and where the channel is.
struct Ctx<'a, 'v> {
    v: &'a Validator<'v>,
    key: &'a str,
    span: Range<usize>,
    kind: ChannelKind,
}

/// A kind's keys as serde reads them, and their checks.
trait RawKind: DeserializeOwned {
    type Settings;
    fn resolve(self, cx: &Ctx) -> Result<Self::Settings, ConfigError>;
}

impl Ctx<'_, '_> {
    fn err(&self, field: &str, span: Option<Range<usize>>, msg: impl Into<String>) -> ConfigError {
        self.v.err(format!("{}.{field}", self.key), span, msg)
    }

    /// The line of `field = ...` in this channel's table.
    fn field_span(&self, field: &str) -> Option<Range<usize>> {
        self.v.field_span(self.span.clone(), field)
    }

    fn need(&self, field: &str, present: bool) -> Result<(), ConfigError> {
        if present {
            Ok(())
        } else {
            Err(self.err(
                field,
                Some(self.span.clone()),
                format!("required for kind {:?}", self.kind),
            ))
        }
    }

    /// An inline secret or its `*_file`, read when the alert section's
    /// files are opened (else empty).
    fn secret(
        &self,
        field: &str,
        inline: &Option<Secret>,
        file: &Option<PathBuf>,
    ) -> Result<Secret, ConfigError> {
        self.v
            .inline_or_file(self.key, field, inline, file, self.span.clone())
    }

    /// `webhook_url` or `webhook_url_file`: an http(s) URL.
    fn webhook(
        &self,
        inline: &Option<Secret>,
        file: &Option<PathBuf>,
    ) -> Result<Secret, ConfigError> {
        let s = self.secret("webhook_url", inline, file)?;
        // An unopened `*_file` (section not in `uses`) yields an empty value.
        let u = s.expose();
        if !(u.is_empty() || u.starts_with("https://") || u.starts_with("http://")) {
            // The URL is the secret, so it is not echoed.
            return Err(self.err(
                "webhook_url",
                Some(self.span.clone()),
                "must be an http(s):// URL",
            ));
        }
        Ok(s)
    }
}

/// The keys serde reads for `T`: what its derived `Deserialize` hands to
/// `deserialize_struct`.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
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

fn common_fields() -> &'static [&'static str] {
    static F: OnceLock<&'static [&'static str]> = OnceLock::new();
    F.get_or_init(fields_of::<RawChannel>)
}

/// Every key some channel takes, for "unknown field" errors.
fn all_fields() -> &'static [&'static str] {
    static F: OnceLock<Vec<&'static str>> = OnceLock::new();
    F.get_or_init(|| {
        let mut all = common_fields().to_vec();
        for k in ChannelKind::ALL {
            for f in k.fields() {
                if !all.contains(f) {
                    all.push(f);
                }
            }
        }
        all
    })
}

/// `alert.channel`, first step: the common keys of each channel, and an
/// "unknown field" error (at its line) for a key no kind knows.
pub(super) fn channels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Spanned<RawChannel>>, D::Error> {
    struct Common(RawChannel);
    impl<'de> Deserialize<'de> for Common {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(TableVisitor)
        }
    }
    struct TableVisitor;
    impl<'de> Visitor<'de> for TableVisitor {
        type Value = Common;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("struct ChannelConfig")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Common, A::Error> {
            RawChannel::deserialize(de::value::MapAccessDeserializer::new(CommonKeys(map)))
                .map(Common)
        }
    }
    let v: Vec<Spanned<Common>> = Vec::deserialize(d)?;
    Ok(v.into_iter()
        .map(|c| {
            let span = c.span();
            Spanned::new(span, c.into_inner().0)
        })
        .collect())
}

/// A channel table's entries with the kinds' own keys skipped (the second
/// step reads them); a key no kind knows is refused where it is read, so
/// the error carries its span.
struct CommonKeys<A>(A);

struct KnownKey;

impl<'de> de::DeserializeSeed<'de> for KnownKey {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let k = String::deserialize(d)?;
        if all_fields().contains(&k.as_str()) {
            Ok(k)
        } else {
            Err(de::Error::unknown_field(&k, all_fields()))
        }
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CommonKeys<A> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(k) = self.0.next_key_seed(KnownKey)? {
            if common_fields().contains(&k.as_str()) {
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

/// Each `[[alert.channel]]` table of the parsed document, in order.
pub(super) fn tables<'a, 'i>(doc: &'a Spanned<DeTable<'i>>) -> Vec<Option<&'a DeTable<'i>>> {
    fn get<'a, 'i>(t: &'a DeTable<'i>, key: &str) -> Option<&'a DeValue<'i>> {
        t.iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v.get_ref())
    }
    get(doc.get_ref(), "alert")
        .and_then(|a| a.as_table())
        .and_then(|a| get(a, "channel"))
        .and_then(|c| c.as_array())
        .map(|a| a.iter().map(|e| e.get_ref().as_table()).collect())
        .unwrap_or_default()
}

/// The second step: a kind's struct read from its keys in the document.
fn read<R: RawKind>(cx: &Ctx, own: Spanned<DeValue<'_>>) -> Result<R, ConfigError> {
    R::deserialize(toml::de::ValueDeserializer::from(own))
        .map_err(|e| keypath::toml_error(cx.v.text, cx.v.path, &e))
}

impl RawChannel {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// `table` is this channel's table in the parsed document.
    pub(super) fn resolve(
        self,
        v: &Validator,
        key: &str,
        span: Range<usize>,
        table: Option<&DeTable<'_>>,
    ) -> Result<ChannelConfig, ConfigError> {
        v.name(&format!("{key}.name"), &self.name, span.clone())?;
        let cx = Ctx {
            v,
            key,
            span: span.clone(),
            kind: self.kind,
        };
        let mut own = DeTable::new();
        for (k, val) in table.into_iter().flat_map(|t| t.iter()) {
            let field: &str = k.get_ref().as_ref();
            if common_fields().contains(&field) {
                continue;
            }
            if !self.kind.fields().contains(&field) {
                let owners: Vec<String> = ChannelKind::ALL
                    .iter()
                    .filter(|o| o.fields().contains(&field))
                    .map(|o| format!("{:?}", o.as_str()))
                    .collect();
                return Err(cx.err(
                    field,
                    Some(k.span()),
                    format!("only for kind {}", owners.join(" or ")),
                ));
            }
            own.insert(k.clone(), val.clone());
        }
        for (i, src) in self.sources.iter().enumerate() {
            if !ALERT_SOURCES.contains(&src.as_str()) {
                return Err(v.err(
                    format!("{key}.sources[{i}]"),
                    v.field_span(span.clone(), "sources"),
                    format!(
                        "unknown source {src:?}; use any of {}",
                        ALERT_SOURCES.join(", ")
                    ),
                ));
            }
        }
        if let Some(p) = &self.ca_file {
            v.readable(&format!("{key}.ca_file"), p, span.clone())?;
        }
        if self.timeout.is_some_and(|t| t.get().is_zero()) {
            return Err(v.err(
                format!("{key}.timeout"),
                v.field_span(span.clone(), "timeout"),
                "must be longer than 0s",
            ));
        }
        let settings = self
            .kind
            .resolve(&cx, Spanned::new(span, DeValue::Table(own)))?;
        Ok(ChannelConfig {
            name: self.name,
            min_severity: self.min_severity,
            sources: self.sources,
            ca_file: self.ca_file,
            timeout: self.timeout.map_or(DEFAULT_TIMEOUT, |t| t.get()),
            settings,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
