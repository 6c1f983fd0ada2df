//! Delivery counters of this process and the Prometheus `/metrics` endpoint
//! that `vigil-notify run` serves: outbox depth, deliveries and failures per
//! channel, alerts by state.

use crate::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            return m.render();
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
    m.render()
}

/// Serves `GET /metrics` on `listener` until `stop` turns true. Plain
/// HTTP/1.1, one response per connection: all a Prometheus scrape needs.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state_dir: PathBuf,
    cluster: String,
    channels: Vec<String>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.changed() => return,
        };
        let Ok((mut sock, _)) = conn else { continue };
        let (state_dir, cluster, channels) = (state_dir.clone(), cluster.clone(), channels.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read the request head (bounded in size and time).
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while n < buf.len() {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let mut parts = head.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, ctype, body) = if method != "GET" && method != "HEAD" {
                (
                    "405 Method Not Allowed",
                    "text/plain",
                    "only GET\n".to_string(),
                )
            } else if path == "/metrics" || path.starts_with("/metrics?") {
                let body =
                    tokio::task::spawn_blocking(move || render(&state_dir, &cluster, &channels))
                        .await
                        .unwrap_or_default();
                ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
            } else {
                (
                    "404 Not Found",
                    "text/plain",
                    "vigil-notify serves /metrics\n".to_string(),
                )
            };
            let mut resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if method != "HEAD" {
                resp.push_str(&body);
            }
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
