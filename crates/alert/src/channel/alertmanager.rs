//! `kind = "alertmanager"`: alerts posted to Alertmanager's v2 API, the
//! whole firing set each time, re-sent before Alertmanager forgets them.

use super::{http, AmExtra, Kind, SendFuture, Sent, Transport};
use crate::model::{rfc3339, AlertView, Event, Notification};
use crate::redact::Redactor;
use crate::AlertError;
use serde_json::{json, Value};
use std::time::Duration;
use vigil_core::config::channel::alertmanager::AlertmanagerChannel;
use vigil_core::config::ChannelConfig;

impl Kind for AlertmanagerChannel {
    fn target(&self) -> String {
        format!("{}/api/v2/alerts", self.url)
    }
    fn secrets(&self, r: &mut Redactor) {
        if let Some(info) = vigil_core::endpoint::userinfo(&self.url) {
            r.add(info);
            // As HTTP basic auth sends it.
            r.add_encoded(crate::redact::percent_decode(info).as_bytes());
        }
    }
    fn resend(&self) -> Option<Duration> {
        Some(self.resend_interval)
    }
    fn transport(&self, c: &ChannelConfig) -> Result<Box<dyn Transport>, AlertError> {
        Ok(Box::new(Alertmanager {
            base: self.url.trim_end_matches('/').to_string(),
            resend: self.resend_interval,
            http: http::client_for(c)?,
        }))
    }
}

#[derive(Debug)]
struct Alertmanager {
    base: String,
    resend: Duration,
    http: reqwest::Client,
}

impl Transport for Alertmanager {
    fn send<'a>(&'a self, n: &'a Notification, am: &'a AmExtra, r: &'a Redactor) -> SendFuture<'a> {
        let body = alertmanager_payload(n, am, self.resend);
        Box::pin(async move {
            if body.as_array().is_some_and(|a| a.is_empty()) {
                return Ok(Sent {
                    reply: "nothing to send".into(),
                });
            }
            http::post(
                &self.http,
                &format!("{}/api/v2/alerts", self.base),
                &body,
                r,
            )
            .await
        })
    }
}

/// Alertmanager v2 body: every firing alert (ends in 4 re-send intervals
/// unless re-sent), each resolved one with `endsAt`, and the watchdog.
pub fn alertmanager_payload(n: &Notification, am: &AmExtra, resend: Duration) -> Value {
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
            ann["runbook"] = json!(r);
        }
        json!({"labels": l, "annotations": ann, "startsAt": starts, "endsAt": ends, "generatorURL": ""})
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
