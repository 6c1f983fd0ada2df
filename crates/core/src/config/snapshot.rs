//! `[snapshot]`: the local archives (where, how many, how compressed and
//! encrypted) and how a run treats the members it streams from.

use super::{ConfigError, ProveRestore, Validator};
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use toml::Spanned;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    #[default]
    Age,
    None,
}

// `[snapshot]` as written; `resolve` parses the recipients.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSnapshotConfig {
    /// Where local archives go, one 0700 directory per member.
    dir: PathBuf,
    /// Verified archives kept per member on the bastion (at least 1).
    #[serde(default = "default_keep_last")]
    keep_last: u32,
    /// Also keep the newest archive of each of this many days, per member.
    #[serde(default)]
    keep_daily: u32,
    /// Also keep the newest archive of each of this many weeks, per member.
    #[serde(default)]
    keep_weekly: u32,
    /// Also keep the newest archive of each of this many months, per member.
    #[serde(default)]
    keep_monthly: u32,
    /// age X25519 public keys (`age1...`) archives are encrypted to; required with `encryption = "age"`.
    #[serde(default)]
    age_recipients: Vec<Spanned<String>>,
    #[serde(default)]
    encryption: Encryption,
    /// zstd level, 1 to 19 (BENCHMARKS.md: higher levels cost far more CPU for a few percent).
    #[serde(default = "default_zstd_level")]
    zstd_level: i32,
    /// zstd worker threads per member; 0 compresses on the member's own thread.
    #[serde(default)]
    zstd_threads: u32,
    /// How long to wait for each member's connection.
    #[serde(default = "default_connect_timeout")]
    connect_timeout: HumanDuration,
    /// A member that sends nothing for this long is given up on.
    #[serde(default = "default_stall_timeout")]
    stall_timeout: HumanDuration,
    /// Upper bound for one member's whole snapshot.
    #[serde(default = "default_member_timeout")]
    timeout: HumanDuration,
    /// Compare the members' hash_kv at a common revision after snapshotting.
    #[serde(default = "default_true")]
    verify_consistency: bool,
    /// RKE2's server token, archived encrypted beside the snapshots.
    rke2_token_file: Option<PathBuf>,
    /// How many members stream their snapshot at once (1..=3). Each stream
    /// holds a bbolt read transaction open and costs its member CPU and
    /// network while it serves the apiservers.
    #[serde(default = "default_max_concurrent_members")]
    max_concurrent_members: u32,
    /// Bytes per second read from each member's snapshot stream; none: as
    /// fast as the member sends. Slower streams hold the read transaction
    /// open longer.
    #[serde(default)]
    rate_limit: Option<ByteSize>,
    /// Restore each verified stream into a scratch etcd in memory and
    /// compare it with the live member (no private key needed).
    #[serde(default)]
    prove_restore: ProveRestore,
    /// Defer a member's snapshot while its status shows trouble: no leader,
    /// an alarm, an apply backlog, or a linearizable read slower than
    /// `preflight_max_latency`.
    #[serde(default = "default_true")]
    preflight: bool,
    /// A linearizable read slower than this defers the member.
    #[serde(default = "default_preflight_max_latency")]
    preflight_max_latency: HumanDuration,
    /// How long a deferred member waits before it is checked again.
    #[serde(default = "default_defer_retry")]
    defer_retry: HumanDuration,
    /// How long a member may stay deferred before the run gives up on it
    /// (its snapshot fails and raises an alert).
    #[serde(default = "default_defer_limit")]
    defer_limit: HumanDuration,
}

/// The validated `[snapshot]`: its keys with the recipients parsed.
#[derive(Debug)]
pub struct SnapshotConfig {
    pub dir: PathBuf,
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    /// `age_recipients`, parsed.
    pub recipients: Vec<age::x25519::Recipient>,
    pub encryption: Encryption,
    pub zstd_level: i32,
    pub zstd_threads: u32,
    pub connect_timeout: HumanDuration,
    pub stall_timeout: HumanDuration,
    pub timeout: HumanDuration,
    pub verify_consistency: bool,
    pub rke2_token_file: Option<PathBuf>,
    pub max_concurrent_members: u32,
    pub rate_limit: Option<ByteSize>,
    pub prove_restore: ProveRestore,
    pub preflight: bool,
    pub preflight_max_latency: HumanDuration,
    pub defer_retry: HumanDuration,
    pub defer_limit: HumanDuration,
}

/// One at a time: on the cost bench the cluster's write p50 stayed within
/// 1.2x of idle and p99 within 4x (as for one `etcdctl snapshot save`),
/// against 10-15x and 6-9x with all three at once, for the same run time
/// where vigil's own CPU is the limit (BENCHMARKS.md).
fn default_max_concurrent_members() -> u32 {
    1
}
fn default_preflight_max_latency() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_defer_retry() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_defer_limit() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_keep_last() -> u32 {
    5
}

impl SnapshotConfig {
    /// Local retention per member.
    pub fn policy(&self) -> crate::retention::KeepPolicy {
        crate::retention::KeepPolicy {
            last: self.keep_last,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
        }
    }
}
/// Level 1: CPU is what a snapshot is short of (BENCHMARKS.md, zstd level sweep).
fn default_zstd_level() -> i32 {
    1
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_stall_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_member_timeout() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_true() -> bool {
    true
}

impl RawSnapshotConfig {
    pub(super) fn resolve(
        self,
        v: &Validator<'_>,
        span: Range<usize>,
    ) -> Result<SnapshotConfig, ConfigError> {
        if self.dir.as_os_str().is_empty() {
            return Err(v.err(
                "snapshot.dir",
                v.field_span(span, "dir"),
                "must not be empty",
            ));
        }
        if self.keep_last == 0 {
            return Err(v.err(
                "snapshot.keep_last",
                v.field_span(span, "keep_last"),
                "must be at least 1: the newest verified archive is never deleted",
            ));
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err(v.err(
                "snapshot.zstd_level",
                v.field_span(span, "zstd_level"),
                format!(
                    "{} is out of range 1..=19 (3 is a good default)",
                    self.zstd_level
                ),
            ));
        }
        if self.zstd_threads > 64 {
            return Err(v.err(
                "snapshot.zstd_threads",
                v.field_span(span, "zstd_threads"),
                "at most 64",
            ));
        }
        if !(1..=3).contains(&self.max_concurrent_members) {
            return Err(v.err(
                "snapshot.max_concurrent_members",
                v.field_span(span.clone(), "max_concurrent_members"),
                format!(
                    "{} is out of range 1..=3 (1: one member streams at a time; 3: all at once)",
                    self.max_concurrent_members
                ),
            ));
        }
        if self.rate_limit.is_some_and(|r| r.0 < 1 << 20) {
            return Err(v.err(
                "snapshot.rate_limit",
                v.field_span(span.clone(), "rate_limit"),
                "must be at least \"1MiB\" per second (a slower stream holds the member's read transaction open for hours); leave it out for no limit",
            ));
        }
        self.prove_restore.check(v, span.clone())?;
        for (key, d) in [
            ("connect_timeout", self.connect_timeout),
            ("stall_timeout", self.stall_timeout),
            ("timeout", self.timeout),
            ("preflight_max_latency", self.preflight_max_latency),
            ("defer_retry", self.defer_retry),
        ] {
            if d.get().is_zero() {
                return Err(v.err(
                    format!("snapshot.{key}"),
                    v.field_span(span.clone(), key),
                    "must be longer than 0s",
                ));
            }
        }
        let mut recipients = Vec::new();
        for (i, r) in self.age_recipients.iter().enumerate() {
            let key = format!("snapshot.age_recipients[{i}]");
            let value = r.get_ref().trim();
            if value.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
                // Never echo it: this is a private key in the wrong place.
                return Err(v.err(
                    key,
                    Some(r.span()),
                    "this is an age PRIVATE key; put only the public key here (`age-keygen -y KEYFILE` prints it) and rotate this key",
                ));
            }
            let rec = age::x25519::Recipient::from_str(value).map_err(|e| {
                v.err(
                    key,
                    Some(r.span()),
                    format!("not an age X25519 public key (age1…): {e}"),
                )
            })?;
            recipients.push(rec);
        }
        match self.encryption {
            Encryption::Age if recipients.is_empty() => {
                return Err(v.err(
                    "snapshot.age_recipients",
                    v.field_span(span, "age_recipients"),
                    "at least one recipient is required (generate one with `age-keygen`, keep the private key off the bastion); \
                     or set encryption = \"none\" explicitly",
                ))
            }
            Encryption::None if self.rke2_token_file.is_some() => {
                return Err(v.err(
                    "snapshot.rke2_token_file",
                    v.field_span(span, "rke2_token_file"),
                    "the RKE2 server token is only archived encrypted; remove encryption = \"none\"",
                ))
            }
            _ => {}
        }
        if let Some(p) = &self.rke2_token_file {
            v.private("snapshot.rke2_token_file", p, span)?;
        }
        Ok(SnapshotConfig {
            dir: self.dir,
            keep_last: self.keep_last,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            recipients,
            encryption: self.encryption,
            zstd_level: self.zstd_level,
            zstd_threads: self.zstd_threads,
            connect_timeout: self.connect_timeout,
            stall_timeout: self.stall_timeout,
            timeout: self.timeout,
            verify_consistency: self.verify_consistency,
            rke2_token_file: self.rke2_token_file,
            max_concurrent_members: self.max_concurrent_members,
            rate_limit: self.rate_limit,
            prove_restore: self.prove_restore,
            preflight: self.preflight,
            preflight_max_latency: self.preflight_max_latency,
            defer_retry: self.defer_retry,
            defer_limit: self.defer_limit,
        })
    }
}
