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
fn email_subject_is_stable_per_incident_and_threads() {
    let d = id_domain("vigil <vigil@bastion.example>", "prod");
    assert_eq!(d, "bastion.example");
    assert_eq!(id_domain("no address", "prod"), "prod.vigil");
    let f = email(
        &n(vec![item(1, Event::Firing, Severity::Critical, "cp-2")]),
        "u1",
        &d,
    );
    // Gmail threads only on an unchanged subject: no state in it.
    assert_eq!(f.subject, r#"[vigil] prod: snapshot_failed{member="cp-2"}"#);
    assert!(f.text.starts_with("[FIRING][CRITICAL] "), "{}", f.text);
    assert!(
        f.message_id.ends_with("@bastion.example>"),
        "{}",
        f.message_id
    );
    assert_eq!(
        (f.in_reply_to.as_ref(), f.references.as_ref()),
        (None, None)
    );
    let mut rep = item(2, Event::Repeat, Severity::Critical, "cp-2");
    rep.alert.last_seen = "2026-11-23T06:00:00Z".into();
    let r = email(&n(vec![rep]), "u2", &d);
    let s = email(
        &n(vec![item(3, Event::Resolved, Severity::Critical, "cp-2")]),
        "u3",
        &d,
    );
    for later in [&r, &s] {
        assert_eq!(later.subject, f.subject);
        assert_eq!(later.in_reply_to.as_deref(), Some(f.message_id.as_str()));
        assert_eq!(later.references.as_deref(), Some(f.message_id.as_str()));
        assert_ne!(later.message_id, f.message_id);
    }
    assert!(
        r.text.starts_with("[STILL FIRING][CRITICAL] "),
        "{}",
        r.text
    );
    assert!(s.text.starts_with("[RESOLVED] "), "{}", s.text);
    // The root depends only on the key and when the incident fired, so it
    // is the same after a restart; a new incident gets a new thread.
    // Outlook: a 22-byte Thread-Index header on the first, shared by the later
    // ones, which add a 5-byte response level with the time since it fired.
    let decode = |e: &Email| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(e.thread_index.as_deref().unwrap())
            .unwrap()
    };
    let (fi, ri, si) = (decode(&f), decode(&r), decode(&s));
    assert_eq!((fi.len(), fi[0]), (22, 1));
    // 2026-11-23T02:00:00Z as a FILETIME, its 40 high bits.
    let ft: u64 = (1_795_399_200 + 11_644_473_600) * 10_000_000;
    assert_eq!(fi[1..6], (ft >> 24).to_be_bytes()[3..]);
    for later in [&ri, &si] {
        assert_eq!(later.len(), 27);
        assert_eq!(later[..22], fi[..]);
        assert_eq!(later[22] & 0x80, 0, "DC 0: under 1.8 years");
    }
    let now = time::OffsetDateTime::parse(
        "2026-11-23T03:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let hour = thread_index(
        &item(2, Event::Repeat, Severity::Critical, "cp-2").alert,
        false,
        now,
    )
    .unwrap();
    let hour = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(hour)
            .unwrap()
    };
    let level = u32::from_be_bytes(hour[22..26].try_into().unwrap()) as u64;
    assert_eq!(level, (3600 * 10_000_000) >> 18);
    let again = item(1, Event::Firing, Severity::Critical, "cp-2");
    assert_eq!(thread_root(&again.alert, &d), f.message_id);
    let mut next = item(4, Event::Firing, Severity::Critical, "cp-2");
    next.alert.fired_at = Some("2026-11-24T02:00:00Z".into());
    assert_ne!(thread_root(&next.alert, &d), f.message_id);
    let other = thread_index(&next.alert, true, now).unwrap();
    assert_ne!(
        other,
        f.thread_index.clone().unwrap(),
        "a new incident, a new thread"
    );
    let g = email(
        &n(vec![
            item(3, Event::Firing, Severity::Warning, "cp-1"),
            item(4, Event::Firing, Severity::Critical, "cp-3"),
        ]),
        "u3",
        &d,
    );
    assert!(
        g.subject.starts_with("[vigil] prod: 2 alerts: "),
        "{}",
        g.subject
    );
    assert!(g.text.starts_with("[FIRING:2][CRITICAL] "), "{}", g.text);
    assert!(g.text.contains("Silence:") && g.html.contains("<table>"));
    let t = email(
        &n(vec![item(0, Event::Test, Severity::Warning, "cp-1")]),
        "u4",
        &d,
    );
    assert!(
        t.subject.starts_with("[vigil] [TEST] prod: "),
        "{}",
        t.subject
    );
}

fn big(id: i64, member: &str, facts: usize, value_len: usize) -> Item {
    let mut i = item(id, Event::Firing, Severity::Critical, member);
    i.alert.facts = (0..facts)
        .map(|k| Fact::new(format!("Fact {k}"), "x".repeat(value_len)))
        .collect();
    i
}

#[test]
fn teams_card_fits_the_budget_by_trimming_facts() {
    // A small card is untouched.
    let small = n(vec![item(1, Event::Firing, Severity::Critical, "cp-2")]);
    assert_eq!(teams(&small, false), teams_adaptive(&small));
    // Ten alerts with 30 facts of 200 bytes each: about 60 KB untrimmed.
    let items: Vec<Item> = (0..10).map(|k| big(k, &format!("m{k}"), 30, 200)).collect();
    let full = teams_adaptive(&n(items.clone()));
    assert!(serde_json::to_vec(&full).unwrap().len() > 2 * TEAMS_BUDGET);
    let v = teams(&n(items), false);
    let len = serde_json::to_vec(&v).unwrap().len();
    assert!(len <= TEAMS_BUDGET, "{len} bytes");
    let text = v.to_string();
    // Every alert keeps its title and summary; the card says what was cut.
    for k in 0..10 {
        assert!(
            text.contains(&format!("snapshot_failed{{member=\\\"m{k}\\\"}}")),
            "m{k}"
        );
        assert!(
            text.contains(&format!("etcd snapshot of m{k} failed")),
            "m{k}"
        );
    }
    assert!(text.contains("more facts trimmed"), "{text}");
    // Trimming starts with the last alerts: the first keeps all its facts.
    let body = v["attachments"][0]["content"]["body"].as_array().unwrap();
    let sets: Vec<&Value> = body.iter().filter(|b| b["type"] == "FactSet").collect();
    assert_eq!(sets.len(), 10);
    assert!(!sets[0].to_string().contains(TRIMMED), "{}", sets[0]);
    assert!(sets[9].to_string().contains(TRIMMED), "{}", sets[9]);
    // One enormous fact value is clipped, not the whole card dropped.
    let huge = n(vec![big(1, "cp-1", 1, 100_000)]);
    let v = teams(&huge, true);
    assert!(serde_json::to_vec(&v).unwrap().len() <= TEAMS_BUDGET);
    assert_eq!(v["@type"], "MessageCard");
}
