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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    pub dir: PathBuf,
    #[serde(default = "default_keep_last")]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
    #[serde(default)]
    pub keep_monthly: u32,
    #[serde(default)]
    pub age_recipients: Vec<Spanned<String>>,
    #[serde(default)]
    pub encryption: Encryption,
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// zstd worker threads per member; 0 compresses on the member's own thread.
    #[serde(default)]
    pub zstd_threads: u32,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// A member that sends nothing for this long is given up on.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: HumanDuration,
    /// Upper bound for one member's whole snapshot.
    #[serde(default = "default_member_timeout")]
    pub timeout: HumanDuration,
    /// Compare the members' hash_kv at a common revision after snapshotting.
    #[serde(default = "default_true")]
    pub verify_consistency: bool,
    /// RKE2's server token, archived encrypted beside the snapshots.
    pub rke2_token_file: Option<PathBuf>,
    /// How many members stream their snapshot at once (1..=3). Each stream
    /// holds a bbolt read transaction open and costs its member CPU and
    /// network while it serves the apiservers.
    #[serde(default = "default_max_concurrent_members")]
    pub max_concurrent_members: u32,
    /// Bytes per second read from each member's snapshot stream; none: as
    /// fast as the member sends. Slower streams hold the read transaction
    /// open longer.
    #[serde(default)]
    pub rate_limit: Option<ByteSize>,
    /// Restore each verified stream into a scratch etcd in memory and
    /// compare it with the live member (no private key needed).
    #[serde(default)]
    pub prove_restore: ProveRestore,
    /// Defer a member's snapshot while its status shows trouble: no leader,
    /// an alarm, an apply backlog, or a linearizable read slower than
    /// `preflight_max_latency`.
    #[serde(default = "default_true")]
    pub preflight: bool,
    /// A linearizable read slower than this defers the member.
    #[serde(default = "default_preflight_max_latency")]
    pub preflight_max_latency: HumanDuration,
    /// How long a deferred member waits before it is checked again.
    #[serde(default = "default_defer_retry")]
    pub defer_retry: HumanDuration,
    /// How long a member may stay deferred before the run gives up on it
    /// (its snapshot fails and raises an alert).
    #[serde(default = "default_defer_limit")]
    pub defer_limit: HumanDuration,
    #[serde(skip)]
    pub recipients: Vec<age::x25519::Recipient>,
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

impl Validator<'_> {
    pub(super) fn snapshot(
        &self,
        s: &mut SnapshotConfig,
        span: Range<usize>,
    ) -> Result<(), ConfigError> {
        if s.dir.as_os_str().is_empty() {
            return Err(self.err(
                "snapshot.dir",
                self.field_span(span, "dir"),
                "must not be empty",
            ));
        }
        if s.keep_last == 0 {
            return Err(self.err(
                "snapshot.keep_last",
                self.field_span(span, "keep_last"),
                "must be at least 1: the newest verified archive is never deleted",
            ));
        }
        if !(1..=19).contains(&s.zstd_level) {
            return Err(self.err(
                "snapshot.zstd_level",
                self.field_span(span, "zstd_level"),
                format!(
                    "{} is out of range 1..=19 (3 is a good default)",
                    s.zstd_level
                ),
            ));
        }
        if s.zstd_threads > 64 {
            return Err(self.err(
                "snapshot.zstd_threads",
                self.field_span(span, "zstd_threads"),
                "at most 64",
            ));
        }
        if !(1..=3).contains(&s.max_concurrent_members) {
            return Err(self.err(
                "snapshot.max_concurrent_members",
                self.field_span(span.clone(), "max_concurrent_members"),
                format!(
                    "{} is out of range 1..=3 (1: one member streams at a time; 3: all at once)",
                    s.max_concurrent_members
                ),
            ));
        }
        if s.rate_limit.is_some_and(|r| r.0 < 1 << 20) {
            return Err(self.err(
                "snapshot.rate_limit",
                self.field_span(span.clone(), "rate_limit"),
                "must be at least \"1MiB\" per second (a slower stream holds the member's read transaction open for hours); leave it out for no limit",
            ));
        }
        let pr = &s.prove_restore;
        if pr.timeout.get().is_zero() {
            return Err(self.err(
                "snapshot.prove_restore.timeout",
                self.field_span(span.clone(), "prove_restore"),
                "must be more than 0s (it bounds one member's proof)",
            ));
        }
        if pr.sample_keys > 10_000 {
            return Err(self.err(
                "snapshot.prove_restore.sample_keys",
                self.field_span(span.clone(), "prove_restore"),
                format!("{} is more than 10000", pr.sample_keys),
            ));
        }
        if pr.dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return Err(self.err(
                "snapshot.prove_restore.dir",
                self.field_span(span.clone(), "prove_restore"),
                "must be an absolute path (a tmpfs directory, e.g. /dev/shm)",
            ));
        }
        for (key, d) in [
            ("connect_timeout", s.connect_timeout),
            ("stall_timeout", s.stall_timeout),
            ("timeout", s.timeout),
            ("preflight_max_latency", s.preflight_max_latency),
            ("defer_retry", s.defer_retry),
        ] {
            if d.get().is_zero() {
                return Err(self.err(
                    format!("snapshot.{key}"),
                    self.field_span(span.clone(), key),
                    "must be longer than 0s",
                ));
            }
        }
        s.recipients.clear();
        for (i, r) in s.age_recipients.iter().enumerate() {
            let key = format!("snapshot.age_recipients[{i}]");
            let v = r.get_ref().trim();
            if v.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
                // Never echo it: this is a private key in the wrong place.
                return Err(self.err(
                    key,
                    Some(r.span()),
                    "this is an age PRIVATE key; put only the public key here (`age-keygen -y KEYFILE` prints it) and rotate this key",
                ));
            }
            let rec = age::x25519::Recipient::from_str(v).map_err(|e| {
                self.err(
                    key,
                    Some(r.span()),
                    format!("not an age X25519 public key (age1…): {e}"),
                )
            })?;
            s.recipients.push(rec);
        }
        match s.encryption {
            Encryption::Age if s.recipients.is_empty() => Err(self.err(
                "snapshot.age_recipients",
                self.field_span(span, "age_recipients"),
                "at least one recipient is required (generate one with `age-keygen`, keep the private key off the bastion); \
                 or set encryption = \"none\" explicitly",
            )),
            Encryption::None if s.rke2_token_file.is_some() => Err(self.err(
                "snapshot.rke2_token_file",
                self.field_span(span, "rke2_token_file"),
                "the RKE2 server token is only archived encrypted; remove encryption = \"none\"",
            )),
            _ => {
                if let Some(p) = &s.rke2_token_file {
                    self.private("snapshot.rke2_token_file", p, span)?;
                }
                Ok(())
            }
        }
    }
}
