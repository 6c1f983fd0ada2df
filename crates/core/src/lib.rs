//! Shared pieces of vigil: the config file, the archive manifest, retention,
//! outcome records and the file-safety helpers every job relies on.

pub mod cmd;
pub mod config;
pub mod config_doc;
pub mod corrupt;
pub mod endpoint;
pub mod fsutil;
pub mod jobs;
pub mod manifest;
pub mod metrics;
pub mod outcome;
pub mod paths;
pub mod pin;
pub mod progress;
pub mod protect;
pub mod retention;
pub mod runtime;
pub mod secret;
pub mod seen;
pub mod units;

pub use config::{Config, ConfigError};

/// The version recorded in manifests and outcome records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exit codes of contract 3 in DESIGN.md.
pub mod exit {
    /// Everything worked.
    pub const OK: i32 = 0;
    /// The job ran and something failed; the failure is also recorded for alerting.
    pub const FAILED: i32 = 1;
    /// Usage or config error, or the job could not run at all.
    pub const USAGE: i32 = 2;
}

/// Current UTC time, the one clock every record uses.
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// `20261123T003000.123Z`: run ids and archive names; sortable, and safe in
/// file names.
pub fn id_time(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// An error and its causes on one line, each cause once (many errors
/// repeat their source in their own message).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}

/// Installs rustls' ring provider for the process, once: etcd-client already
/// builds ring, so vigil uses it everywhere (no aws-lc).
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// RFC 3339 in UTC with milliseconds, used in every record and manifest:
/// fixed width, so it also sorts as text.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
