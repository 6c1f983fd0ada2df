//! The same metrics in InfluxDB line protocol: a file for Telegraf and a push
//! to InfluxDB 1.x (`/write`) or 2.x (`/api/v2/write`).
//!
//! The mapping (README "Metrics in InfluxDB"): the measurement is the metric
//! family's name, every label is a tag, and the one field is `value` (always
//! a float, so a series never changes field type). All points of one job
//! carry the job's one timestamp in nanoseconds.

use super::Metrics;
use crate::config::{InfluxApi, InfluxConfig};
use std::fmt::Write as _;
use std::time::Duration;

/// Bytes of an error response kept for the warning.
const MAX_BODY: usize = 300;

impl Metrics {
    /// Line protocol, one point per sample, all at `time_ns`. Samples that
    /// are not finite (InfluxDB has no NaN) and empty tags are left out.
    pub fn render_influx(&self, time_ns: i128) -> String {
        let mut s = String::new();
        for name in &self.order {
            let Some(f) = self.families.get(name) else {
                continue;
            };
            for (labels, v) in &f.samples {
                if !v.is_finite() {
                    continue;
                }
                s.push_str(&escape(name, false));
                let mut tags: Vec<&(String, String)> =
                    labels.iter().filter(|(_, v)| !v.is_empty()).collect();
                // InfluxDB sorts tags itself; sorted here it has less to do.
                tags.sort();
                for (k, val) in tags {
                    let _ = write!(s, ",{}={}", escape(k, true), escape(val, true));
                }
                let _ = writeln!(s, " value={} {time_ns}", super::format_value(*v));
            }
        }
        s
    }
}

/// Escapes a measurement (commas, spaces) or a tag key or value (also `=`).
/// A newline cannot be escaped in line protocol: it becomes a space. A
/// backslash is taken literally by InfluxDB and passes through.
fn escape(s: &str, tag: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ',' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '=' if tag => out.push_str("\\="),
            '\n' | '\r' => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

/// Why a push failed. The URL is shown without a query; never the token or
/// the password.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("InfluxDB at {url}: {msg}")]
    Failed { url: String, msg: String },
}

impl InfluxConfig {
    /// The write URL with its query, and the URL to name in messages.
    pub fn write_url(&self) -> Result<(reqwest::Url, String), PushError> {
        let mut u = reqwest::Url::parse(&self.url).map_err(|e| PushError::Failed {
            url: self.url.clone(),
            msg: e.to_string(),
        })?;
        let base = u.path().trim_end_matches('/').to_string();
        match self.api() {
            InfluxApi::V1 => {
                u.set_path(&format!("{base}/write"));
                let mut q = u.query_pairs_mut();
                q.append_pair("db", self.database.as_deref().unwrap_or_default());
                if let Some(rp) = &self.retention_policy {
                    q.append_pair("rp", rp);
                }
                q.append_pair("precision", "ns");
            }
            InfluxApi::V2 => {
                u.set_path(&format!("{base}/api/v2/write"));
                u.query_pairs_mut()
                    .append_pair("org", self.org.as_deref().unwrap_or_default())
                    .append_pair("bucket", self.bucket.as_deref().unwrap_or_default())
                    .append_pair("precision", "ns");
            }
        }
        let mut shown = u.clone();
        shown.set_query(None);
        Ok((u, shown.to_string()))
    }
}

/// Writes `body` (line protocol) to InfluxDB within the configured timeout.
/// Runs on a thread of its own with its own runtime, so it can be called from
/// synchronous code and from inside a job's tokio runtime alike.
pub fn push(cfg: &InfluxConfig, body: String) -> Result<(), PushError> {
    let (url, shown) = cfg.write_url()?;
    let fail = |msg: String| PushError::Failed {
        url: shown.clone(),
        msg,
    };
    let timeout = cfg.timeout.get();
    let ca = match &cfg.ca_file {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| fail(format!("cannot read ca_file {}: {e}", p.display())))?,
        ),
        None => None,
    };
    crate::ensure_crypto_provider();
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(format!("vigil/{}", crate::VERSION));
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| fail(format!("ca_file is not PEM: {}", e.without_url())))?;
        b = b.tls_certs_merge(certs);
    }
    let client = b
        .build()
        .map_err(|e| fail(format!("building the HTTP client: {}", e.without_url())))?;
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body);
    match (cfg.api(), &cfg.secret) {
        (InfluxApi::V1, Some(pw)) => {
            req = req.basic_auth(
                cfg.username.as_deref().unwrap_or_default(),
                Some(pw.expose()),
            );
        }
        (InfluxApi::V2, Some(token)) => {
            req = req.header(
                reqwest::header::AUTHORIZATION,
                format!("Token {}", token.expose()),
            );
        }
        _ => {}
    }
    let work = async move {
        let resp = req.send().await.map_err(|e| describe(&e, timeout))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = tokio::time::timeout(timeout, resp.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let body: String = body.trim().chars().take(MAX_BODY).collect();
        Err(if body.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {body}")
        })
    };
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting the HTTP runtime: {e}"))?;
            rt.block_on(async {
                tokio::time::timeout(timeout + Duration::from_millis(500), work)
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the push thread panicked".into()))
    });
    r.map_err(fail)
}

/// Why a request failed, without the URL (the error names it once).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {timeout:?}");
    }
    let kind = if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // The causes only: the error's own text names the URL.
    match std::error::Error::source(e) {
        Some(cause) => format!("{kind}: {}", crate::error_chain(cause)),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_protocol_escapes_and_skips() {
        let mut m = Metrics::new();
        m.gauge(
            "vigil_x",
            "",
            &[("member", "cp 1,a=b"), ("cluster", "prod"), ("sink", "")],
            1.5,
        );
        m.gauge("vigil_x", "", &[("member", "cp-2\nx")], f64::NAN);
        m.counter("vigil_y total", "", &[("path", "/a b")], 7.0);
        let t = m.render_influx(1_700_000_000_000_000_000);
        assert_eq!(
            t,
            "vigil_x,cluster=prod,member=cp\\ 1\\,a\\=b value=1.5 1700000000000000000\n\
             vigil_y\\ total,path=/a\\ b value=7 1700000000000000000\n"
        );
    }

    fn cfg(v1: bool) -> InfluxConfig {
        InfluxConfig {
            url: "https://influx.example:8086/proxy/".into(),
            database: v1.then(|| "vigil db".into()),
            retention_policy: v1.then(|| "weeks".into()),
            username: None,
            password_file: None,
            org: (!v1).then(|| "ops".into()),
            bucket: (!v1).then(|| "vigil/raw".into()),
            token_file: None,
            timeout: crate::units::HumanDuration::from_secs(5),
            ca_file: None,
            secret: None,
        }
    }

    #[test]
    fn write_urls() {
        let (u, shown) = cfg(true).write_url().unwrap();
        assert_eq!(
            u.as_str(),
            "https://influx.example:8086/proxy/write?db=vigil+db&rp=weeks&precision=ns"
        );
        assert_eq!(shown, "https://influx.example:8086/proxy/write");
        let (u, _) = cfg(false).write_url().unwrap();
        assert_eq!(
            u.as_str(),
            "https://influx.example:8086/proxy/api/v2/write?org=ops&bucket=vigil%2Fraw&precision=ns"
        );
    }
}
