//! The one TOML file every binary reads (contract 1 of DESIGN.md).
//!
//! Parsing is strict: unknown keys are errors, values are validated when the
//! file loads, and every error names the file, the key and the line.
//!
//! Each section lives in its own file under `config/`: the type serde reads
//! (`Raw…` where the file's form is not what the programs use) and its
//! `resolve`, which checks it and makes the type the programs read.
//! [`Config::parse_with`] reads a `RawConfig` and resolves it section by
//! section, opening only the files of the sections in [`Uses`].

use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod alert;
pub mod channel;
mod cluster;
mod daemon;
mod health;
mod journal;
mod keypath;
mod kinds;
mod metrics;
mod prove;
mod quota;
mod restore;
pub mod sink;
mod snapshot;
mod state;
mod uses;
mod validator;
pub use alert::{AlertConfig, AlertRule, MaintenanceWindow, Severity, UnknownSeverity};
pub use channel::email::SmtpTls;
pub use channel::{ChannelConfig, ChannelKind, ChannelSettings};
use cluster::RawClusterConfig;
pub use cluster::{ClusterConfig, MemberConfig, TlsConfig};
pub use daemon::{to_six_field, CronError, DaemonConfig};
pub use health::{
    BastionHealth, CertHealth, EtcdHealth, FreshnessHealth, HealthConfig, KubeHealth, NodeHealth,
    NodeTarget,
};
pub use journal::JournalConfig;
pub use metrics::{InfluxApi, InfluxConfig, MetricsConfig, DEFAULT_LISTEN, DEFAULT_TEXTFILE_DIR};
pub use prove::ProveRestore;
pub use quota::{glob_match, CephCliConfig, QuotaBackend, QuotaConfig, QuotaRule, XattrConfig};
pub use restore::RestoreConfig;
pub use sink::{
    KindOptions, LockMode, ObjectLock, RcPolicy, SinkConfig, SinkKind, SinkSettings, VerifyMode,
    DEFAULT_DESCRIPTION, DEFAULT_PART_SIZE,
};
use snapshot::RawSnapshotConfig;
pub use snapshot::{Encryption, SnapshotConfig};
pub use state::StateConfig;
pub use uses::Uses;
pub use validator::ConfigError;
use validator::{line_of, Validator};

/// Where the config lives unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/vigil/vigil.toml";
/// Where the units look for configs: `vigil.toml`, and `<name>.toml` for `@<name>` units.
pub const CONFIG_DIR: &str = "/etc/vigil";

// The file as serde reads it, spans kept for the messages; `resolve` makes
// the [`Config`] the programs read. build.rs starts the vigil.toml(5) page
// here, so the field docs are the page's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    cluster: RawClusterConfig,
    snapshot: Option<Spanned<RawSnapshotConfig>>,
    state: StateConfig,
    /// `[alert]`: the engine's defaults, heartbeat, rules, maintenance windows and channels.
    #[serde(default)]
    alert: alert::RawAlertConfig,
    /// Where archives are shipped off the bastion.
    #[serde(default, deserialize_with = "kinds::entries::<sink::Sinks, _>")]
    sink: Vec<Spanned<sink::RawSink>>,
    /// `[restore]`: vigil-restore's tools, drill settings and RKE2 steps.
    restore: Option<Spanned<RestoreConfig>>,
    /// `[journal]`: vigil-journal, the watch journal between snapshots.
    journal: Option<Spanned<JournalConfig>>,
    /// `[metrics]`: textfile-collector files and vigil-notify's `/metrics`.
    #[serde(default)]
    metrics: MetricsConfig,
    /// `[daemon]`: schedules for `vigild` (no systemd).
    daemon: Option<Spanned<DaemonConfig>>,
    /// `[health]`: vigil-health's checks and thresholds (defaults when absent).
    #[serde(default)]
    health: HealthConfig,
    /// `[quota]`: vigil-quota's CephFS backends, thresholds and forecast.
    quota: Option<Spanned<QuotaConfig>>,
}

/// The validated config: defaults applied, recipients parsed, the secrets
/// of the sections in use read.
#[derive(Debug)]
pub struct Config {
    pub cluster: ClusterConfig,
    pub snapshot: Option<SnapshotConfig>,
    pub state: StateConfig,
    pub alert: AlertConfig,
    pub sink: Vec<SinkConfig>,
    pub restore: Option<RestoreConfig>,
    pub journal: Option<JournalConfig>,
    pub metrics: MetricsConfig,
    pub daemon: Option<Spanned<DaemonConfig>>,
    pub health: HealthConfig,
    pub quota: Option<Spanned<QuotaConfig>>,
    /// The file this config came from, for messages.
    pub path: PathBuf,
}

impl Config {
    /// Reads and validates the config at `path`, opening every section's files.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_for(path, Uses::ALL)
    }

    /// Reads and validates the config at `path`; only the sections in `uses`
    /// have their secret and TLS files opened (the rest is still validated).
    pub fn load_for(path: &Path, uses: Uses) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_with(&text, path, uses)
    }

    /// Parses and validates config text; `path` is used in messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_with(text, path, Uses::ALL)
    }

    /// Like [`Config::parse`], opening only the files of the sections in
    /// `uses`; an unopened `*_file` secret is left empty.
    pub fn parse_with(text: &str, path: &Path, uses: Uses) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| keypath::toml_error(text, path, &e))?;
        raw.resolve(&Validator::new(text, path, uses))
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster.name
    }

    pub fn members(&self) -> impl Iterator<Item = &MemberConfig> {
        self.cluster.members.iter()
    }

    pub fn tls(&self) -> Option<&TlsConfig> {
        self.cluster.tls.as_ref()
    }

    pub fn sinks(&self) -> impl Iterator<Item = &SinkConfig> {
        self.sink.iter()
    }

    /// The `[snapshot]` section, or an error naming the program that needs it.
    pub fn snapshot(&self, program: &'static str) -> Result<&SnapshotConfig, ConfigError> {
        self.snapshot
            .as_ref()
            .ok_or_else(|| ConfigError::MissingSection {
                path: self.path.clone(),
                section: "snapshot",
                program,
            })
    }

    /// The journal's local dir: `journal.dir`, else beside `snapshot.dir`
    /// (`<snapshot.dir>/../journal`), else `<state.dir>/journal`.
    pub fn journal_dir(&self) -> PathBuf {
        if let Some(d) = self.journal.as_ref().and_then(|j| j.dir.clone()) {
            return d;
        }
        match self.snapshot.as_ref().and_then(|s| s.dir.parent()) {
            Some(p) if !p.as_os_str().is_empty() => p.join("journal"),
            _ => self.state.dir.join("journal"),
        }
    }

    /// The `[restore]` section, or its defaults when absent.
    pub fn restore(&self) -> std::borrow::Cow<'_, RestoreConfig> {
        match &self.restore {
            Some(r) => std::borrow::Cow::Borrowed(r),
            None => std::borrow::Cow::Owned(RestoreConfig::default()),
        }
    }

    /// A summary safe to print: no secret values, only where they come from.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "config {} is valid", self.path.display());
        let _ = writeln!(s, "cluster {}:", self.cluster_name());
        for m in self.members() {
            let _ = writeln!(s, "  member {:<12} {}", m.name, m.endpoint);
        }
        match self.tls() {
            Some(t) => {
                let _ = writeln!(
                    s,
                    "  tls: ca {}, client cert {}",
                    t.ca.display(),
                    t.cert.is_some()
                );
            }
            None => {
                let _ = writeln!(s, "  tls: off");
            }
        }
        if let Some(sn) = &self.snapshot {
            let _ = writeln!(
                s,
                "snapshot: dir {}, keep_last {}, zstd level {}, encryption {}",
                sn.dir.display(),
                sn.keep_last,
                sn.zstd_level,
                match sn.encryption {
                    Encryption::Age => format!("age to {} recipient(s)", sn.recipients.len()),
                    Encryption::None => "NONE (archives are plaintext)".into(),
                }
            );
        }
        let _ = writeln!(s, "state: dir {}", self.state.dir.display());
        if let Some(r) = &self.restore {
            let _ = writeln!(
                s,
                "restore: drill key {}, etcd {}",
                match &r.drill_identity_file {
                    Some(p) => p.display().to_string(),
                    None => "none (drills need --identity)".into(),
                },
                r.etcd_bin.display()
            );
        }
        for k in self.sinks() {
            let _ = writeln!(
                s,
                "sink {} ({}), keep {}",
                k.name,
                k.kind,
                k.policy().describe()
            );
        }
        for c in &self.alert.channel {
            let _ = writeln!(s, "alert channel {} ({:?})", c.name, c.kind());
        }
        s
    }
}

/// Resolves a section that may be absent, with the span of its table.
fn optional<R, T>(
    section: Option<Spanned<R>>,
    resolve: impl FnOnce(R, Range<usize>) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    section
        .map(|s| {
            let span = s.span();
            resolve(s.into_inner(), span)
        })
        .transpose()
}

impl RawConfig {
    /// Every section in turn; only those in `v.uses` have their files
    /// opened, the rest is still checked.
    fn resolve(self, v: &Validator<'_>) -> Result<Config, ConfigError> {
        v.check_files.set(v.uses.etcd);
        let cluster = self.cluster.resolve(v)?;
        v.check_files.set(v.uses.snapshot);
        let snapshot = optional(self.snapshot, |s, span| s.resolve(v, span))?;
        let state = self.state.resolve(v)?;
        v.check_files.set(v.uses.alert);
        let alert = self.alert.resolve(v)?;
        v.check_files.set(v.uses.restore);
        let restore = optional(self.restore, |s, span| s.resolve(v, span))?;
        v.check_files.set(v.uses.sinks);
        let mut sink = Vec::new();
        let mut sink_names = std::collections::HashSet::new();
        // The sinks' own keys are read from the document (see kinds.rs).
        let doc = toml::de::DeTable::parse(v.text).ok();
        let tables = doc
            .as_ref()
            .map(kinds::tables::<sink::Sinks>)
            .unwrap_or_default();
        for (i, sk) in self.sink.into_iter().enumerate() {
            let span = sk.span();
            let key = format!("sink[{i}]");
            let sk = sk.into_inner();
            if !sink_names.insert(sk.name().to_string()) || sk.name() == "local" {
                return Err(v.err(
                    format!("{key}.name"),
                    Some(span),
                    "duplicate sink name (\"local\" is reserved for the bastion's own copy)",
                ));
            }
            sink.push(sk.resolve(v, &key, span, tables.get(i).copied().flatten())?);
        }
        v.check_files.set(false);
        let names: Vec<&str> = sink
            .iter()
            .filter(|s| s.takes_journal())
            .map(|s| s.name.as_str())
            .collect();
        let journal = optional(self.journal, |j, span| {
            j.check(v, span, &names)?;
            Ok(j)
        })?;
        let metrics = v.metrics(self.metrics)?;
        if let Some(d) = &self.daemon {
            v.daemon(d.get_ref(), d.span())?;
        }
        v.check_files.set(v.uses.quota);
        if let Some(q) = &self.quota {
            v.quota(q.get_ref(), q.span())?;
        }
        v.check_files.set(v.uses.health);
        v.health(&self.health)?;
        v.check_files.set(false);
        Ok(Config {
            cluster,
            snapshot,
            state,
            alert,
            sink,
            restore,
            journal,
            metrics,
            daemon: self.daemon,
            health: self.health,
            quota: self.quota,
            path: v.path.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests;
