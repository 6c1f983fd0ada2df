//! `[metrics]`: Prometheus textfile-collector files written by every job, and
//! the `/metrics` endpoint of `vigil-notify run`.

use super::{ConfigError, Validator};
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
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            textfile: true,
            textfile_dir: default_textfile_dir(),
            listen: default_listen(),
        }
    }
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
    pub(super) fn metrics(&self, m: &MetricsConfig) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// Byte range of a `[name]` table header up to the next header, if present.
    pub(super) fn section_span(&self, name: &str) -> Option<Range<usize>> {
        let header = format!("[{name}]");
        let mut off = 0;
        let mut start = None;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim();
            if start.is_none() && t.starts_with(&header) {
                start = Some(off);
            } else if start.is_some() && t.starts_with('[') {
                return start.map(|s| s..off);
            }
            off += line.len();
        }
        start.map(|s| s..self.text.len())
    }
}
