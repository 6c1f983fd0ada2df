//! `kind = "alertmanager"`: alerts posted to Alertmanager's v2 API, the
//! whole firing set each time, re-sent before Alertmanager forgets them.

use super::{http, AmExtra, Kind, SendError, SendFuture, Sent, Transport};
use crate::model::{rfc3339, AlertView, Event, Notification};
use crate::redact::Redactor;
use crate::AlertError;
use serde_json::{json, Value};
use std::time::Duration;
use vigil_core::config::channel::alertmanager::{AlertmanagerChannel, AmAuth};
use vigil_core::config::ChannelConfig;

impl Kind for AlertmanagerChannel {
    fn target(&self) -> String {
        let auth = match &self.auth {
            AmAuth::None => "",
            AmAuth::Basic { .. } => ", basic auth <redacted>",
            AmAuth::Bearer(_) => ", bearer token <redacted>",
        };
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|u| format!("{}/api/v2/alerts", u.trim_end_matches('/')))
            .collect();
        format!("{}{auth}", urls.join(", "))
    }
    fn secrets(&self, r: &mut Redactor) {
        for u in &self.urls {
            if let Some(info) = vigil_core::endpoint::userinfo(u) {
                r.add(info);
                // As HTTP basic auth sends it.
                r.add_encoded(crate::redact::percent_decode(info).as_bytes());
            }
        }
        match &self.auth {
            AmAuth::None => {}
            AmAuth::Basic { username, password } => {
                r.add(password.expose());
                r.add_encoded(format!("{username}:{}", password.expose()).as_bytes());
            }
            AmAuth::Bearer(t) => r.add(t.expose()),
        }
    }
    fn resend(&self) -> Option<Duration> {
        Some(self.resend_interval)
    }
    fn transport(&self, c: &ChannelConfig) -> Result<Box<dyn Transport>, AlertError> {
        Ok(Box::new(Alertmanager {
            endpoints: self
                .urls
                .iter()
                .map(|u| format!("{}/api/v2/alerts", u.trim_end_matches('/')))
                .collect(),
            resend: self.resend_interval,
            auth: self.auth.clone(),
            generator: self
                .generator_url
                .clone()
                .unwrap_or_else(default_generator_url),
            http: http::client_for(c)?,
        }))
    }
}

/// vigil-notify's metrics on this bastion: names where the alert came from.
fn default_generator_url() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "localhost".into());
    let port = vigil_core::config::DEFAULT_LISTEN
        .rsplit_once(':')
        .map_or("9479", |(_, p)| p);
    format!("http://{host}:{port}/metrics")
}

#[derive(Debug)]
struct Alertmanager {
    /// `<base>/api/v2/alerts` of every peer.
    endpoints: Vec<String>,
    resend: Duration,
    auth: AmAuth,
    generator: String,
    http: reqwest::Client,
}

impl Transport for Alertmanager {
    fn send<'a>(&'a self, n: &'a Notification, am: &'a AmExtra, r: &'a Redactor) -> SendFuture<'a> {
        let body = alertmanager_payload(n, am, self.resend, &self.generator);
        Box::pin(async move {
            if body.as_array().is_some_and(|a| a.is_empty()) {
                return Ok(Sent {
                    reply: "nothing to send".into(),
                });
            }
            // Every peer, at once: Alertmanager's HA design deduplicates
            // between peers, so a client must not pick one.
            let sends = self.endpoints.iter().map(|url| {
                let rb = self.http.post(url).json(&body);
                let rb = match &self.auth {
                    AmAuth::None => rb,
                    AmAuth::Basic { username, password } => {
                        rb.basic_auth(username, Some(password.expose()))
                    }
                    AmAuth::Bearer(t) => rb.bearer_auth(t.expose()),
                };
                http::send(rb, r)
            });
            let results = futures_util::future::join_all(sends).await;
            combine(&self.endpoints, results)
        })
    }
}

/// Delivered when at least one peer accepted; the reply names each peer's answer.
fn combine(endpoints: &[String], results: Vec<Result<Sent, SendError>>) -> Result<Sent, SendError> {
    if let [only] = results.as_slice() {
        return only.clone();
    }
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    let mut retry_after = None;
    for (i, (url, r)) in endpoints.iter().zip(results).enumerate() {
        // The URL may carry user info: name the peer by its host and port.
        let peer = match vigil_core::endpoint::host_port(url) {
            Some((h, p)) => format!("{} ({h}:{p})", i + 1),
            None => (i + 1).to_string(),
        };
        match r {
            Ok(s) => ok.push(format!("peer {peer}: {}", s.reply)),
            Err(e) => {
                retry_after = retry_after.max(e.retry_after);
                failed.push(format!("peer {peer}: {}", e.message));
            }
        }
    }
    if ok.is_empty() {
        Err(SendError {
            message: format!("no Alertmanager accepted the alerts: {}", failed.join("; ")),
            retry_after,
            permanent: false,
        })
    } else {
        let mut reply = ok.join("; ");
        if !failed.is_empty() {
            reply.push_str(&format!("; failed {}", failed.join("; ")));
            tracing::warn!(
                "some Alertmanager peers did not accept the alerts: {}",
                failed.join("; ")
            );
        }
        Ok(Sent { reply })
    }
}

/// Alertmanager v2 body: every firing alert (ends in 4 re-send intervals
/// unless re-sent), each resolved one with `endsAt`, and the watchdog.
/// `generator` is every alert's `generatorURL`.
pub fn alertmanager_payload(
    n: &Notification,
    am: &AmExtra,
    resend: Duration,
    generator: &str,
) -> Value {
    let now = vigil_core::now();
    let ends = rfc3339(now + (resend * 4).max(Duration::from_secs(300)));
    let mut out: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let entry = |labels: &std::collections::BTreeMap<String, String>,
                 name: &str,
                 sev: &str,
                 source: &str,
                 summary: &str,
                 description: String,
                 runbook: Option<&str>,
                 starts: &str,
                 ends: &str| {
        let mut l = serde_json::Map::new();
        for (k, v) in labels {
            l.insert(k.clone(), json!(v));
        }
        l.insert("alertname".into(), json!(name));
        l.insert("severity".into(), json!(sev));
        l.insert("cluster".into(), json!(n.cluster));
        l.insert("source".into(), json!(source));
        let mut ann = json!({"summary": summary, "description": description});
        if let Some(r) = runbook {
            // The name Prometheus rules and Alertmanager templates use.
            ann["runbook_url"] = json!(r);
        }
        json!({"labels": l, "annotations": ann, "startsAt": starts, "endsAt": ends, "generatorURL": generator})
    };
    let describe = |facts: &[crate::model::Fact]| {
        facts
            .iter()
            .map(|f| format!("{}: {}", f.title, f.value))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let alert = |v: &AlertView, starts: &str, ends: &str| {
        entry(
            &v.labels,
            &v.name,
            v.severity.as_str(),
            v.source.as_str(),
            &v.summary,
            describe(&v.facts),
            v.runbook.as_deref(),
            starts,
            ends,
        )
    };
    // Resolutions in this batch first, so a re-fire in the same batch wins below.
    for i in n.items.iter().filter(|i| i.event == Event::Resolved) {
        let a = &i.alert;
        if a.status == crate::model::Status::Firing {
            continue;
        }
        let at = a.resolved_at.clone().unwrap_or_else(|| rfc3339(now));
        out.push(alert(
            a,
            a.fired_at.as_deref().unwrap_or(&a.first_seen),
            &at,
        ));
    }
    for a in &am.firing {
        if seen.insert(a.key.clone()) {
            let v = a.view();
            out.push(alert(
                &v,
                v.fired_at.as_deref().unwrap_or(&v.first_seen),
                &ends,
            ));
        }
    }
    for i in n.items.iter().filter(|i| i.event == Event::Test) {
        let a = &i.alert;
        out.push(alert(
            a,
            &a.first_seen,
            &rfc3339(now + Duration::from_secs(300)),
        ));
    }
    if am.watchdog {
        out.push(entry(
            &Default::default(),
            "VigilWatchdog",
            "none",
            "vigil",
            "Always firing while vigil's alert delivery runs; route it to a dead-man's switch",
            String::new(),
            Some("If this alert stops arriving, vigil-notify is down: `systemctl status vigil-notify`"),
            &rfc3339(now),
            &ends,
        ));
    }
    Value::Array(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Event, Item, Severity};

    #[test]
    fn payload_has_generator_url_and_runbook_url() {
        let i = crate::render::tests::item(3, Event::Firing, Severity::Critical, "cp-2");
        let n = Notification {
            cluster: "prod".into(),
            channel: "am".into(),
            items: vec![Item {
                event: Event::Test,
                ..i
            }],
        };
        let am = AmExtra {
            firing: vec![],
            watchdog: true,
        };
        let v = alertmanager_payload(
            &n,
            &am,
            Duration::from_secs(60),
            "http://bastion-1:9479/metrics",
        );
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 2, "{v}");
        for x in a {
            assert_eq!(x["generatorURL"], "http://bastion-1:9479/metrics");
            assert!(x["annotations"]["runbook_url"].is_string(), "{x}");
            assert!(x["annotations"].get("runbook").is_none(), "{x}");
        }
        assert_eq!(a[0]["labels"]["member"], "cp-2");
        assert_eq!(a[0]["labels"]["cluster"], "prod");
        assert_eq!(a[1]["labels"]["alertname"], "VigilWatchdog");
        assert!(default_generator_url().starts_with("http://"));
        assert!(default_generator_url().ends_with(":9479/metrics"));
    }

    #[test]
    fn one_accepting_peer_is_enough_and_failures_are_named() {
        let urls = vec![
            "http://am-1:9093/api/v2/alerts".to_string(),
            "http://user:pw@am-2:9093/api/v2/alerts".to_string(),
        ];
        let ok = || {
            Ok(Sent {
                reply: "HTTP 200 OK".into(),
            })
        };
        let bad = |m: &str| {
            Err(SendError {
                message: m.into(),
                retry_after: None,
                permanent: false,
            })
        };
        let r = combine(&urls, vec![ok(), bad("cannot connect")]).unwrap();
        assert!(
            r.reply.contains("peer 1 (am-1:9093): HTTP 200"),
            "{}",
            r.reply
        );
        assert!(
            r.reply
                .contains("failed peer 2 (am-2:9093): cannot connect"),
            "{}",
            r.reply
        );
        assert!(!r.reply.contains("pw"), "{}", r.reply);
        let e = combine(&urls, vec![bad("HTTP 500"), bad("cannot connect")]).unwrap_err();
        assert!(
            e.message.starts_with("no Alertmanager accepted"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("peer 1 (am-1:9093): HTTP 500"),
            "{}",
            e.message
        );
    }
}
