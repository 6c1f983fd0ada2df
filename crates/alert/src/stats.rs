//! Delivery counters of this process and the Prometheus `/metrics` endpoint
//! that `vigil-notify run` serves: outbox depth, deliveries and failures per
//! channel, alerts by state.

use crate::store::Store;
use bytes::Bytes;
use http_body_util::Full;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use vigil_core::metrics::{self, Metrics};

/// Counters of one channel since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Messages the channel accepted.
    pub messages: u64,
    /// Outbox rows those messages carried.
    pub items: u64,
    /// Failed delivery attempts.
    pub failures: u64,
}

static STATS: Mutex<BTreeMap<String, ChannelStats>> = Mutex::new(BTreeMap::new());

pub(crate) fn record(channel: &str, messages: u32, items: u32, failed: bool) {
    if let Ok(mut m) = STATS.lock() {
        let e = m.entry(channel.to_string()).or_default();
        e.messages += u64::from(messages);
        e.items += u64::from(items);
        e.failures += u64::from(failed);
    }
}

/// The counters so far, per channel.
pub fn counters() -> BTreeMap<String, ChannelStats> {
    STATS.lock().map(|m| m.clone()).unwrap_or_default()
}

/// Everything `/metrics` shows, read fresh from the state database.
pub fn render(state_dir: &Path, cluster: &str, channels: &[String]) -> String {
    collect(state_dir, cluster, channels).render()
}

/// How often `vigil-notify run` writes its metrics to InfluxDB (and the
/// line-protocol file), when `[metrics]` configures either.
pub const PUSH_EVERY: Duration = Duration::from_secs(60);

/// vigil-notify's metrics to InfluxDB and the line-protocol file (as
/// `[metrics]` says): every [`PUSH_EVERY`] until `stop`. The caller pushes
/// the final counters once more after the last delivery.
pub async fn push_influx(
    cfg: vigil_core::config::MetricsConfig,
    state_dir: PathBuf,
    cluster: String,
    channels: Vec<String>,
    mut stop: watch::Receiver<bool>,
) {
    if cfg.influxdb.is_none() && cfg.line_protocol_dir.is_none() {
        return;
    }
    let cfg = Arc::new(cfg);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PUSH_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (cfg, dir, cl, ch) = (
            cfg.clone(),
            state_dir.clone(),
            cluster.clone(),
            channels.clone(),
        );
        let _ = tokio::task::spawn_blocking(move || push_now(&cfg, &dir, &cl, &ch)).await;
    }
}

/// One push of vigil-notify's metrics (blocking: InfluxDB within its timeout).
pub fn push_now(
    cfg: &vigil_core::config::MetricsConfig,
    state_dir: &Path,
    cluster: &str,
    channels: &[String],
) {
    metrics::publish_influx(
        cfg,
        "notify",
        cluster,
        &collect(state_dir, cluster, channels),
    );
}

fn collect(state_dir: &Path, cluster: &str, channels: &[String]) -> Metrics {
    let mut m = Metrics::new();
    let cl = [("cluster", cluster)];
    m.gauge(
        "vigil_build_info",
        "vigil's version",
        &[("cluster", cluster), ("version", vigil_core::VERSION)],
        1.0,
    );
    let counters = counters();
    let (pending, states, alerts) = match Store::open(state_dir) {
        Ok(st) => (
            st.pending_counts().unwrap_or_default(),
            st.channel_states().unwrap_or_default(),
            st.alerts(false).unwrap_or_default(),
        ),
        Err(e) => {
            tracing::warn!("/metrics: {e}");
            m.flag(
                "vigil_notify_store_ok",
                "1 if the state database could be read",
                &cl,
                false,
            );
            return m;
        }
    };
    m.flag(
        "vigil_notify_store_ok",
        "1 if the state database could be read",
        &cl,
        true,
    );
    let mut names: Vec<String> = channels.to_vec();
    for n in pending
        .keys()
        .chain(counters.keys())
        .chain(states.iter().map(|s| &s.channel))
    {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    for ch in &names {
        let l = [("cluster", cluster), ("channel", ch.as_str())];
        let c = counters.get(ch).copied().unwrap_or_default();
        m.gauge(
            "vigil_notify_outbox_pending",
            "Outbox rows waiting for delivery",
            &l,
            pending.get(ch).copied().unwrap_or(0) as f64,
        );
        m.counter(
            "vigil_notify_messages_sent_total",
            "Messages the channel accepted since vigil-notify started",
            &l,
            c.messages as f64,
        );
        m.counter(
            "vigil_notify_deliveries_total",
            "Outbox rows (alert events) delivered since vigil-notify started",
            &l,
            c.items as f64,
        );
        m.counter(
            "vigil_notify_delivery_failures_total",
            "Failed delivery attempts since vigil-notify started",
            &l,
            c.failures as f64,
        );
        if let Some(s) = states.iter().find(|s| &s.channel == ch) {
            m.gauge(
                "vigil_notify_channel_consecutive_failures",
                "Failed attempts in a row (0 once a delivery works)",
                &l,
                f64::from(s.failures),
            );
            if let Some(t) = s.last_ok.as_deref().and_then(metrics::unix_seconds) {
                m.gauge(
                    "vigil_notify_channel_last_success_timestamp_seconds",
                    "When the channel last accepted a message",
                    &l,
                    t,
                );
            }
        }
    }
    let mut by_state: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for a in &alerts {
        *by_state
            .entry((a.status.as_str(), a.severity.as_str()))
            .or_default() += 1;
    }
    for status in ["firing", "pending"] {
        for sev in ["warning", "critical"] {
            m.gauge(
                "vigil_alerts",
                "Alerts by state and severity",
                &[("cluster", cluster), ("state", status), ("severity", sev)],
                by_state.get(&(status, sev)).copied().unwrap_or(0) as f64,
            );
        }
    }
    m
}

/// Serves `GET /metrics` until `stop`, with hyper (HTTP/1.1, one request
/// per connection, the request head within 5 s, the whole exchange within 30 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state_dir: PathBuf,
    cluster: String,
    channels: Vec<String>,
    mut stop: watch::Receiver<bool>,
) {
    let ctx = Arc::new((state_dir, cluster, channels));
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.changed() => return,
        };
        let Ok((sock, _)) = conn else { continue };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| respond(req, ctx.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .keep_alive(false)
                // As curl and the older hand-written server showed them.
                .title_case_headers(true)
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

type Ctx = Arc<(PathBuf, String, Vec<String>)>;

async fn respond(
    req: hyper::Request<hyper::body::Incoming>,
    ctx: Ctx,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    use hyper::{header, Method, Response, StatusCode};
    let plain = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    if req.uri().path() != "/metrics" {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "vigil-notify serves /metrics\n",
        ));
    }
    let body = tokio::task::spawn_blocking(move || render(&ctx.0, &ctx.1, &ctx.2))
        .await
        .unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn serves_metrics_and_refuses_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let srv = tokio::spawn(super::serve(
            l,
            d.path().to_path_buf(),
            "prod".into(),
            vec!["ops".into()],
            rx,
        ));
        vigil_core::ensure_crypto_provider();
        let c = reqwest::Client::new();
        let r = c.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let body = r.text().await.unwrap();
        assert!(body.contains("vigil_build_info{cluster=\"prod\""), "{body}");
        assert!(body.contains("channel=\"ops\""), "{body}");
        let r = c.head(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().is_empty());
        let r = c.post(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET, HEAD");
        let r = c.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        tx.send(true).unwrap();
        srv.await.unwrap();
    }
}
