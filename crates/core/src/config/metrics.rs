//! `[metrics]`: Prometheus textfile-collector files written by every job, the
//! `/metrics` endpoint of `vigil-notify run`, and the same metrics in InfluxDB
//! line protocol (`line_protocol_dir`, `[metrics.influxdb]`).

use super::{ConfigError, Validator};
use crate::secret::Secret;
use crate::units::HumanDuration;
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;

/// Debian's `prometheus-node-exporter` reads `*.prom` files from here.
pub const DEFAULT_TEXTFILE_DIR: &str = "/var/lib/prometheus/node-exporter";
/// Where `vigil-notify run` serves `/metrics` unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9479";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Write textfile-collector files after every job.
    #[serde(default = "default_true")]
    pub textfile: bool,
    /// The node_exporter textfile-collector directory. The jobs write into it
    /// only when it exists; they never create it.
    #[serde(default = "default_textfile_dir")]
    pub textfile_dir: PathBuf,
    /// `vigil-notify run` serves `/metrics` here; `""` turns it off.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Also write every job's metrics in InfluxDB line protocol to
    /// `vigil_<job>_<cluster>.influx` in this directory (0644, atomic), for
    /// Telegraf's `inputs.file` with `data_format = "influx"`. The directory
    /// must exist; vigil never creates it. Unset: no files.
    #[serde(default)]
    pub line_protocol_dir: Option<PathBuf>,
    /// `[metrics.influxdb]`: push every job's metrics to InfluxDB after the job.
    #[serde(default)]
    pub influxdb: Option<InfluxConfig>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            textfile: true,
            textfile_dir: default_textfile_dir(),
            listen: default_listen(),
            line_protocol_dir: None,
            influxdb: None,
        }
    }
}

/// Where and how to push metrics to InfluxDB. InfluxDB 1.x (`database`) gets
/// `POST /write`, 2.x (`org` and `bucket`) gets `POST /api/v2/write` with a
/// token. A push that fails is a warning naming the URL; the job still
/// succeeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// The server's base URL, e.g. `"http://influxdb.example:8086"` (a path
    /// prefix is kept for a reverse proxy). No credentials in the URL.
    pub url: String,
    /// InfluxDB 1.x: the database to write to (it must exist).
    #[serde(default)]
    pub database: Option<String>,
    /// InfluxDB 1.x: the retention policy; unset means the database's default.
    #[serde(default)]
    pub retention_policy: Option<String>,
    /// InfluxDB 1.x: the user, with `password_file`; unset for a server
    /// without auth.
    #[serde(default)]
    pub username: Option<String>,
    /// InfluxDB 1.x: a file holding the user's password (0600, or a systemd
    /// credential name).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// InfluxDB 2.x: the organization (name or ID).
    #[serde(default)]
    pub org: Option<String>,
    /// InfluxDB 2.x: the bucket to write to.
    #[serde(default)]
    pub bucket: Option<String>,
    /// InfluxDB 2.x: a file holding an API token with write access to the
    /// bucket (0600, or a systemd credential name).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How long one push may take, connection included.
    #[serde(default = "default_influx_timeout")]
    pub timeout: HumanDuration,
    /// A PEM CA bundle for an `https` URL signed by a private CA (added to
    /// the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The password or token, read from its file when the config is loaded.
    #[serde(skip)]
    pub secret: Option<Secret>,
}

/// Which write API an `[metrics.influxdb]` speaks, from the keys it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfluxApi {
    /// `/write?db=` (1.x; 2.x also serves it with a DBRP mapping).
    V1,
    /// `/api/v2/write?org=&bucket=`.
    V2,
}

impl InfluxConfig {
    pub fn api(&self) -> InfluxApi {
        if self.database.is_some() {
            InfluxApi::V1
        } else {
            InfluxApi::V2
        }
    }
}

/// A URL for a message: its `user:password@` (refused anyway) not shown.
fn shown(url: &str) -> String {
    match crate::endpoint::userinfo(url) {
        Some(info) => url.replacen(&format!("{info}@"), "<redacted>@", 1),
        None => url.to_string(),
    }
}

fn default_influx_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

impl MetricsConfig {
    /// The address to serve `/metrics` on, if any.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        let l = self.listen.trim();
        (!l.is_empty()).then(|| l.parse().ok()).flatten()
    }
}

fn default_true() -> bool {
    true
}
fn default_textfile_dir() -> PathBuf {
    DEFAULT_TEXTFILE_DIR.into()
}
fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}

impl Validator<'_> {
    pub(super) fn metrics(&self, mut m: MetricsConfig) -> Result<MetricsConfig, ConfigError> {
        let span: Option<Range<usize>> = self.section_span("metrics");
        if m.textfile && !m.textfile_dir.is_absolute() {
            return Err(self.err(
                "metrics.textfile_dir",
                span.clone()
                    .and_then(|s| self.field_span(s, "textfile_dir")),
                "must be an absolute path, e.g. \"/var/lib/prometheus/node-exporter\"",
            ));
        }
        let l = m.listen.trim();
        if !l.is_empty() && l.parse::<std::net::SocketAddr>().is_err() {
            return Err(self.err(
                "metrics.listen",
                span.and_then(|s| self.field_span(s, "listen")),
                format!(
                    "{l:?} is not ADDRESS:PORT, e.g. \"127.0.0.1:9479\" (\"\" turns /metrics off)"
                ),
            ));
        }
        if let Some(d) = &m.line_protocol_dir {
            if !d.is_absolute() {
                return Err(self.err(
                    "metrics.line_protocol_dir",
                    self.section_span("metrics")
                        .and_then(|s| self.field_span(s, "line_protocol_dir")),
                    "must be an absolute path, e.g. \"/var/lib/vigil/influx\"",
                ));
            }
        }
        if let Some(i) = m.influxdb.take() {
            m.influxdb = Some(self.influxdb(i)?);
        }
        Ok(m)
    }

    fn influxdb(&self, mut i: InfluxConfig) -> Result<InfluxConfig, ConfigError> {
        let span = self.section_span("metrics.influxdb");
        let at = |f: &str| span.clone().and_then(|s| self.field_span(s, f));
        let err = |f: &str, msg: String| self.err(format!("metrics.influxdb.{f}"), at(f), msg);
        let url = reqwest::Url::parse(&i.url).map_err(|e| {
            err(
                "url",
                format!(
                    "{:?} is not a URL ({e}), e.g. \"http://influxdb.example:8086\"",
                    shown(&i.url)
                ),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(err(
                "url",
                format!("{} must be http:// or https:// with a host", shown(&i.url)),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
            return Err(err(
                "url",
                format!(
                    "{} must not carry credentials or a query: give username and \
                     password_file (1.x) or token_file (2.x)",
                    shown(&i.url)
                ),
            ));
        }
        let v2 = i.org.is_some() || i.bucket.is_some() || i.token_file.is_some();
        let v1 = i.database.is_some()
            || i.retention_policy.is_some()
            || i.username.is_some()
            || i.password_file.is_some();
        if v1 && v2 {
            return Err(err(
                "database",
                "give database (InfluxDB 1.x, with username and password_file) or org, bucket \
                 and token_file (2.x), not keys of both"
                    .into(),
            ));
        }
        let nonempty = |f: &str, v: &Option<String>| -> Result<(), ConfigError> {
            match v {
                Some(s) if s.trim().is_empty() => Err(err(f, "must not be empty".into())),
                _ => Ok(()),
            }
        };
        for (f, v) in [
            ("database", &i.database),
            ("retention_policy", &i.retention_policy),
            ("username", &i.username),
            ("org", &i.org),
            ("bucket", &i.bucket),
        ] {
            nonempty(f, v)?;
        }
        if i.timeout.get().is_zero() {
            return Err(err("timeout", "must be more than 0s, e.g. \"5s\"".into()));
        }
        // Every job pushes, so the secret is read whatever the program.
        let read = |f: &str, p: &PathBuf| {
            crate::secret::read_secret_file(&crate::secret::resolve_path(p))
                .map_err(|e| err(&format!("{f}_file"), e.to_string()))
        };
        if v2 {
            if i.org.is_none() || i.bucket.is_none() {
                return Err(err(
                    if i.org.is_none() { "org" } else { "bucket" },
                    "InfluxDB 2.x needs org, bucket and token_file".into(),
                ));
            }
            let Some(t) = &i.token_file else {
                return Err(err(
                    "token_file",
                    "InfluxDB 2.x needs a token: token_file = \"influxdb-token\"".into(),
                ));
            };
            i.secret = Some(read("token", t)?);
        } else {
            if i.database.is_none() {
                return Err(err(
                    "database",
                    "give database (InfluxDB 1.x) or org, bucket and token_file (2.x)".into(),
                ));
            }
            match (&i.username, &i.password_file) {
                (Some(_), Some(p)) => i.secret = Some(read("password", p)?),
                (None, None) => {}
                (Some(_), None) => {
                    return Err(err(
                        "password_file",
                        "username needs password_file too".into(),
                    ))
                }
                (None, Some(_)) => {
                    return Err(err("username", "password_file needs username too".into()))
                }
            }
        }
        if let Some(ca) = &i.ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                return Err(err("ca_file", format!("cannot read {}: {e}", ca.display())));
            }
        }
        Ok(i)
    }
}
