use super::*;
use crate::model::{Fact, Source, Status};
use std::collections::BTreeMap;

pub(crate) fn item(id: i64, event: Event, sev: Severity, member: &str) -> Item {
    let mut labels = BTreeMap::new();
    labels.insert("member".to_string(), member.to_string());
    Item {
        id,
        event,
        alert: AlertView {
            key: format!("snapshot_failed{{member=\"{member}\"}}"),
            name: "snapshot_failed".into(),
            labels,
            source: Source::Snapshot,
            severity: sev,
            status: if event == Event::Resolved {
                Status::Ok
            } else {
                Status::Firing
            },
            summary: format!("etcd snapshot of {member} failed at stage connect"),
            facts: vec![
                Fact::new("Stage", "connect"),
                Fact::new("Error", "connection refused <x>"),
            ],
            runbook: Some("Check the member".into()),
            cluster: "prod".into(),
            first_seen: "2026-11-23T02:00:00Z".into(),
            last_seen: "2026-11-23T02:00:00Z".into(),
            fired_at: Some("2026-11-23T02:00:00Z".into()),
            resolved_at: (event == Event::Resolved).then(|| "2026-11-23T06:00:00Z".into()),
            cycle: 1,
        },
    }
}

fn n(items: Vec<Item>) -> Notification {
    Notification {
        cluster: "prod".into(),
        channel: "c".into(),
        items,
    }
}

#[test]
fn slack_has_text_blocks_and_styles() {
    let v = slack(&n(vec![
        item(1, Event::Firing, Severity::Critical, "cp-2"),
        item(2, Event::Resolved, Severity::Critical, "cp-1"),
    ]));
    let text = v["text"].as_str().unwrap();
    assert!(
        text.contains("FIRING: 1 alert") && text.contains("RESOLVED: 1 alert"),
        "{text}"
    );
    assert!(text.contains(r#"snapshot_failed{member="cp-2"}"#));
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks[1]["text"]["text"]
        .as_str()
        .unwrap()
        .starts_with("🔴 *CRITICAL*"));
    assert_eq!(blocks[1]["block_id"], "vigil-firing-1");
    assert!(blocks.iter().any(|b| b["text"]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("✅ *RESOLVED*"))));
    assert!(v.to_string().contains("connection refused &lt;x&gt;"));
}

#[test]
fn slack_caps_items() {
    let items = (0..25)
        .map(|k| item(k, Event::Firing, Severity::Warning, &format!("m{k}")))
        .collect();
    let v = slack(&n(items));
    assert!(v["blocks"].as_array().unwrap().len() <= 50);
    assert!(v.to_string().contains("15 more not shown"));
}

#[test]
fn teams_card_shape() {
    let v = teams_adaptive(&n(vec![item(7, Event::Firing, Severity::Critical, "cp-2")]));
    assert_eq!(v["type"], "message");
    let a = &v["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    assert!(a["contentUrl"].is_null());
    let c = &a["content"];
    assert_eq!(c["version"], "1.4");
    assert_eq!(c["type"], "AdaptiveCard");
    assert_eq!(c["msteams"]["width"], "Full");
    assert_eq!(c["body"][0]["color"], "Attention");
    assert_eq!(c["body"][3]["type"], "FactSet");
    let m = teams_messagecard(&n(vec![item(
        7,
        Event::Resolved,
        Severity::Critical,
        "cp-2",
    )]));
    assert_eq!(m["@type"], "MessageCard");
    assert_eq!(m["themeColor"], "2EB886");
}

#[test]
fn email_subject_and_threading() {
    let f = email(
        &n(vec![item(1, Event::Firing, Severity::Critical, "cp-2")]),
        "u1",
    );
    assert_eq!(
        f.subject,
        r#"[FIRING][CRITICAL] prod: snapshot_failed{member="cp-2"}"#
    );
    let r = email(
        &n(vec![item(2, Event::Resolved, Severity::Critical, "cp-2")]),
        "u2",
    );
    assert_eq!(
        r.subject,
        r#"[RESOLVED] prod: snapshot_failed{member="cp-2"}"#
    );
    assert_eq!(r.in_reply_to.as_deref(), Some(f.message_id.as_str()));
    assert_eq!(r.references.as_deref(), Some(f.message_id.as_str()));
    assert_ne!(r.message_id, f.message_id);
    let g = email(
        &n(vec![
            item(3, Event::Firing, Severity::Warning, "cp-1"),
            item(4, Event::Firing, Severity::Critical, "cp-3"),
        ]),
        "u3",
    );
    assert!(
        g.subject.starts_with("[FIRING:2][CRITICAL] prod: "),
        "{}",
        g.subject
    );
    assert!(g.text.contains("Silence:") && g.html.contains("<table>"));
}
