//! What a message looks like on each channel. Pure functions of a
//! [`Notification`], so the formats are unit-tested and shown in README.

use crate::model::{AlertView, Event, Item, Notification, Severity};
use serde_json::{json, Value};

/// At most this many alerts are spelled out in one chat message; the rest are counted.
pub const MAX_ITEMS: usize = 10;

fn emoji(i: &Item) -> &'static str {
    match (i.event, i.alert.severity) {
        (Event::Resolved, _) => "✅",
        (Event::Test, _) => "🧪",
        (_, Severity::Critical) => "🔴",
        (_, Severity::Warning) => "🟠",
    }
}

/// `FIRING`, `STILL FIRING`, `RESOLVED` or `TEST`.
pub fn event_word(e: Event) -> &'static str {
    match e {
        Event::Firing | Event::Refresh => "FIRING",
        Event::Repeat => "STILL FIRING",
        Event::Resolved => "RESOLVED",
        Event::Test => "TEST",
        Event::Heartbeat => "HEARTBEAT",
    }
}

fn sev_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::Warning => "WARNING",
    }
}

/// One line naming an item: `🔴 CRITICAL snapshot_failed{member="cp-2"}`.
fn item_line(i: &Item) -> String {
    match i.event {
        Event::Resolved => format!("{} RESOLVED {}", emoji(i), i.alert.key),
        _ => format!(
            "{} {} {}",
            emoji(i),
            sev_word(i.alert.severity),
            i.alert.key
        ),
    }
}

/// The headline of a message: `🔴 FIRING: 2 alerts · ✅ RESOLVED: 1 · cluster prod`.
pub fn headline(n: &Notification) -> String {
    let count = |e: &[Event]| n.items.iter().filter(|i| e.contains(&i.event)).count();
    let mut parts = Vec::new();
    let firing = count(&[Event::Firing]);
    let repeat = count(&[Event::Repeat]);
    let resolved = count(&[Event::Resolved]);
    let test = count(&[Event::Test]);
    let plural = |k: usize| if k == 1 { "alert" } else { "alerts" };
    let icon = match n.worst_firing() {
        Some(Severity::Critical) => "🔴",
        Some(Severity::Warning) => "🟠",
        None => "✅",
    };
    if firing > 0 {
        parts.push(format!("{icon} FIRING: {firing} {}", plural(firing)));
    }
    if repeat > 0 {
        parts.push(format!("{icon} STILL FIRING: {repeat} {}", plural(repeat)));
    }
    if resolved > 0 {
        parts.push(format!("✅ RESOLVED: {resolved} {}", plural(resolved)));
    }
    if test > 0 {
        parts.push("🧪 TEST message".to_string());
    }
    format!("{} · cluster {}", parts.join(" · "), n.cluster)
}

/// The plain-text fallback (Slack `text`, notification previews).
pub fn fallback_text(n: &Notification) -> String {
    // Every key (a message has at most 50), so previews and search find them.
    let keys: Vec<String> = n.items.iter().take(100).map(item_line).collect();
    let mut s = format!("{}: {}", headline(n), keys.join(", "));
    if n.items.len() > 100 {
        s.push_str(&format!(" and {} more", n.items.len() - 100));
    }
    s
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn footer(n: &Notification) -> String {
    let hidden = n.items.len().saturating_sub(MAX_ITEMS);
    let mut s = format!("vigil {} · cluster {}", vigil_core::VERSION, n.cluster);
    if hidden > 0 {
        s.push_str(&format!(
            " · {hidden} more not shown (`vigil-notify status` lists all)"
        ));
    }
    s
}

fn silence_hint(a: &AlertView) -> String {
    let m = a
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .next()
        .unwrap_or_else(|| format!("alertname={}", a.name));
    format!("vigil-notify silence add --match {m} --for 2h --reason \"...\"")
}

/// Slack incoming-webhook payload: Block Kit plus the `text` fallback.
/// Severity shows as 🔴 (critical) or 🟠 (warning); resolved items as ✅.
pub fn slack(n: &Notification) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(&headline(n), 150), "emoji": true}
    })];
    for (idx, i) in n.items.iter().take(MAX_ITEMS).enumerate() {
        if idx > 0 {
            blocks.push(json!({"type": "divider"}));
        }
        let a = &i.alert;
        let title = match i.event {
            Event::Resolved => format!("{} *RESOLVED* `{}`", emoji(i), slack_escape(&a.key)),
            Event::Repeat => format!(
                "{} *{} · STILL FIRING* `{}`",
                emoji(i),
                sev_word(a.severity),
                slack_escape(&a.key)
            ),
            Event::Test => format!("{} *TEST* `{}`", emoji(i), slack_escape(&a.key)),
            _ => format!(
                "{} *{}* `{}`",
                emoji(i),
                sev_word(a.severity),
                slack_escape(&a.key)
            ),
        };
        let mut section = json!({
            "type": "section",
            "block_id": format!("vigil-{}-{}", i.event.as_str(), i.id),
            "text": {"type": "mrkdwn", "text": clip(&format!("{title}\n{}", slack_escape(&a.summary)), 3000)},
        });
        let fields: Vec<Value> = a
            .facts
            .iter()
            .take(10)
            .map(|f| json!({"type": "mrkdwn", "text": clip(&format!("*{}*\n{}", slack_escape(&f.title), slack_escape(&f.value)), 2000)}))
            .collect();
        if !fields.is_empty() {
            section["fields"] = Value::Array(fields);
        }
        blocks.push(section);
        let mut ctx = vec![format!("first seen {}", a.first_seen)];
        if i.event == Event::Resolved {
            if let Some(r) = &a.resolved_at {
                ctx.push(format!("resolved {r}"));
            }
        } else if let Some(rb) = &a.runbook {
            ctx.push(format!("📖 {}", slack_escape(rb)));
        }
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(&ctx.join(" · "), 3000)}]
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": slack_escape(&footer(n))}]
    }));
    json!({"text": fallback_text(n), "blocks": blocks})
}

fn teams_color(i: &Item) -> &'static str {
    match (i.event, i.alert.severity) {
        (Event::Resolved, _) => "Good",
        (Event::Test, _) => "Accent",
        (_, Severity::Critical) => "Attention",
        (_, Severity::Warning) => "Warning",
    }
}

/// Teams Workflows payload: one Adaptive Card 1.4 in a `message`.
pub fn teams_adaptive(n: &Notification) -> Value {
    let head_color = match n.worst_firing() {
        Some(Severity::Critical) => "Attention",
        Some(Severity::Warning) => "Warning",
        None if n.items.iter().all(|i| i.event == Event::Test) => "Accent",
        None => "Good",
    };
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": headline(n),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
        "color": head_color
    })];
    for i in n.items.iter().take(MAX_ITEMS) {
        let a = &i.alert;
        body.push(json!({
            "type": "TextBlock",
            "id": format!("vigil-{}-{}", i.event.as_str(), i.id),
            "text": item_line(i),
            "weight": "Bolder",
            "wrap": true,
            "color": teams_color(i),
            "separator": true
        }));
        body.push(json!({"type": "TextBlock", "text": a.summary, "wrap": true}));
        let mut facts: Vec<Value> = a
            .facts
            .iter()
            .map(|f| json!({"title": f.title, "value": f.value}))
            .collect();
        facts.push(json!({"title": "First seen", "value": a.first_seen}));
        if let Some(r) = a
            .resolved_at
            .as_ref()
            .filter(|_| i.event == Event::Resolved)
        {
            facts.push(json!({"title": "Resolved", "value": r}));
        } else if let Some(rb) = &a.runbook {
            facts.push(json!({"title": "Runbook", "value": rb}));
        }
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    body.push(json!({"type": "TextBlock", "text": footer(n), "isSubtle": true, "size": "Small", "wrap": true}));
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "msteams": {"width": "Full"}
            }
        }]
    })
}

/// The retired Office 365 connector format, only with `teams_format = "messagecard"`.
pub fn teams_messagecard(n: &Notification) -> Value {
    let color = match n.worst_firing() {
        Some(Severity::Critical) => "D13438",
        Some(Severity::Warning) => "FFB900",
        None => "2EB886",
    };
    let sections: Vec<Value> = n
        .items
        .iter()
        .take(MAX_ITEMS)
        .map(|i| {
            let mut facts: Vec<Value> = i.alert.facts.iter().map(|f| json!({"name": f.title, "value": f.value})).collect();
            if let Some(rb) = &i.alert.runbook {
                facts.push(json!({"name": "Runbook", "value": rb}));
            }
            json!({"activityTitle": item_line(i), "activitySubtitle": i.alert.summary, "facts": facts, "markdown": false})
        })
        .collect();
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": color,
        "summary": clip(&fallback_text(n), 200),
        "title": headline(n),
        "sections": sections
    })
}

/// Teams refuses a message over about 28 KB with HTTP 413 (Microsoft's
/// documented limit for incoming webhooks and workflow posts). vigil keeps
/// the JSON it sends under 24 KiB: what Teams adds around the card (the
/// workflow's envelope, escaping) counts against the limit too.
pub const TEAMS_BUDGET: usize = 24 * 1024;

/// The Teams body (Adaptive Card, or MessageCard with `messagecard`),
/// trimmed to [`TEAMS_BUDGET`] bytes of JSON by [`fit`].
pub fn teams(n: &Notification, messagecard: bool) -> Value {
    fit(n, TEAMS_BUDGET, |n| {
        if messagecard {
            teams_messagecard(n)
        } else {
            teams_adaptive(n)
        }
    })
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// The marker fact in place of trimmed ones.
pub const TRIMMED: &str = "Trimmed";

/// Renders `n`; while the JSON is over `budget` bytes it clips long fact
/// values, then drops facts from the last shown item backwards (each item
/// says how many of its facts were trimmed), then clips summaries. The
/// headline and every item's title (its key) stay.
pub fn fit(n: &Notification, budget: usize, render: impl Fn(&Notification) -> Value) -> Value {
    let v = render(n);
    if json_len(&v) <= budget {
        return v;
    }
    let shown = n.items.len().min(MAX_ITEMS);
    let mut t = n.clone();
    for i in &mut t.items[..shown] {
        for f in &mut i.alert.facts {
            f.title = clip(&f.title, 100);
            f.value = clip(&f.value, 300);
        }
        i.alert.runbook = i.alert.runbook.as_deref().map(|r| clip(r, 300));
    }
    let mut v = render(&t);
    let mut trimmed = vec![0usize; shown];
    while json_len(&v) > budget {
        let Some(k) = (0..shown).rev().find(|&k| {
            let facts = &t.items[k].alert.facts;
            facts.len() > usize::from(trimmed[k] > 0)
        }) else {
            break;
        };
        let facts = &mut t.items[k].alert.facts;
        if trimmed[k] > 0 {
            facts.pop();
        }
        facts.pop();
        trimmed[k] += 1;
        facts.push(crate::model::Fact::new(
            TRIMMED,
            format!(
                "+{} more facts trimmed to fit the channel's size limit",
                trimmed[k]
            ),
        ));
        v = render(&t);
    }
    for max in [500, 100] {
        if json_len(&v) <= budget {
            break;
        }
        for i in &mut t.items[..shown] {
            i.alert.summary = clip(&i.alert.summary, max);
        }
        v = render(&t);
    }
    v
}

/// An email, ready for lettre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    /// Space-separated ids for the `References` header.
    pub references: Option<String>,
    /// Outlook's `Thread-Index` (base64), for an email about one incident.
    pub thread_index: Option<String>,
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The right-hand side of vigil's Message-IDs: the sender's domain (RFC 5322
/// wants a domain the sender controls), or `<cluster>.vigil` without one.
pub fn id_domain(from: &str, cluster: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
            .collect()
    };
    let addr = from.rsplit_once('<').map_or(from, |(_, a)| a);
    let d = addr
        .rsplit_once('@')
        .map(|(_, d)| clean(d.trim_end_matches('>').trim()))
        .unwrap_or_default();
    if !d.is_empty() {
        return d;
    }
    let c = clean(cluster);
    format!("{}.vigil", if c.is_empty() { "cluster" } else { &c })
}

/// The Message-ID of an incident's first email: later emails about the same
/// incident (reminders, the resolution) refer to it, so they thread together.
/// Derived from the alert key and when the incident fired (both in the
/// database), so it is the same after a restart.
pub fn thread_root(a: &AlertView, domain: &str) -> String {
    let fired = a.fired_at.as_deref().unwrap_or(&a.first_seen);
    let stamp: String = fired.chars().filter(char::is_ascii_digit).collect();
    format!("<vigil-{:016x}-{stamp}@{domain}>", fnv(&a.key))
}

/// FILETIME: 100 ns units since 1601-01-01 UTC.
fn filetime(t: time::OffsetDateTime) -> u64 {
    const TO_UNIX: i128 = 116_444_736_000_000_000;
    (t.unix_timestamp_nanos() / 100 + TO_UNIX).max(0) as u64
}

/// Outlook's `Thread-Index` (PidTagConversationIndex, [MS-OXOMSG] 2.2.1.3),
/// base64: a 22-byte header (0x01, the 40 high bits of the FILETIME the
/// incident fired, a GUID from the alert key and that time) on its first
/// email; a later one adds a 5-byte response level with the time since
/// then, so Outlook orders the incident's emails under the first.
pub fn thread_index(a: &AlertView, first: bool, now: time::OffsetDateTime) -> Option<String> {
    use base64::Engine as _;
    let fired_s = a.fired_at.as_deref().unwrap_or(&a.first_seen);
    let fired =
        time::OffsetDateTime::parse(fired_s, &time::format_description::well_known::Rfc3339)
            .ok()?;
    let ft = filetime(fired);
    let mut b = Vec::with_capacity(27);
    b.push(1u8);
    b.extend_from_slice(&(ft >> 24).to_be_bytes()[3..]);
    b.extend_from_slice(&fnv(&a.key).to_be_bytes());
    b.extend_from_slice(&fnv(&format!("{}@{fired_s}", a.key)).to_be_bytes());
    if !first {
        let delta = filetime(now).saturating_sub(ft);
        // DC 0: bits 48..18 of the delta; DC 1 (beyond about 1.8 years): bits 53..23.
        let level: u32 = if delta < 1 << 49 {
            ((delta >> 18) & 0x7fff_ffff) as u32
        } else {
            0x8000_0000 | ((delta >> 23) & 0x7fff_ffff) as u32
        };
        b.extend_from_slice(&level.to_be_bytes());
        b.push(fastrand::u8(..));
    }
    Some(base64::engine::general_purpose::STANDARD.encode(b))
}

/// The same for every email about one incident (firing, reminders,
/// resolution): Gmail threads only on an unchanged subject (plus
/// References), Outlook on the subject (Thread-Topic). The state is in the
/// body and the first line.
pub fn subject(n: &Notification) -> String {
    let first = n.items.first();
    let name = first.map(|i| i.alert.key.as_str()).unwrap_or("(nothing)");
    let test = if !n.items.is_empty() && n.items.iter().all(|i| i.event == Event::Test) {
        " [TEST]"
    } else {
        ""
    };
    if n.items.len() > 1 {
        format!(
            "[vigil]{test} {}: {} alerts: {name} and {} more",
            n.cluster,
            n.items.len(),
            n.items.len() - 1
        )
    } else {
        format!("[vigil]{test} {}: {name}", n.cluster)
    }
}

/// The state line at the top of the body (it is no longer in the subject):
/// `[FIRING][CRITICAL]`, `[STILL FIRING:2][WARNING]`, `[RESOLVED]`, `[TEST]`.
pub fn state_tag(n: &Notification) -> String {
    let all = |e: Event| n.items.iter().all(|i| i.event == e);
    if all(Event::Test) {
        "[TEST]".to_string()
    } else if all(Event::Resolved) {
        if n.items.len() > 1 {
            format!("[RESOLVED:{}]", n.items.len())
        } else {
            "[RESOLVED]".into()
        }
    } else {
        let sev = n.worst_firing().map(sev_word).unwrap_or("WARNING");
        let firing = n.firing().count();
        let word = if n.firing().all(|i| i.event == Event::Repeat) {
            "STILL FIRING"
        } else {
            "FIRING"
        };
        if n.items.len() > 1 {
            format!("[{word}:{firing}][{sev}]")
        } else {
            format!("[{word}][{sev}]")
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A stable subject per incident; the state, text and HTML bodies;
/// threading headers. `domain` ends every Message-ID ([`id_domain`]).
pub fn email(n: &Notification, unique: &str, domain: &str) -> Email {
    let top = format!("{} {}", state_tag(n), headline(n));
    let mut text = format!("{top}\n\n");
    let mut html = format!(
        "<html><body style=\"font-family:sans-serif\"><h2>{}</h2>\n",
        html_escape(&top)
    );
    for i in &n.items {
        let a = &i.alert;
        let color = match (i.event, a.severity) {
            (Event::Resolved, _) => "#2eb886",
            (Event::Test, _) => "#0078d4",
            (_, Severity::Critical) => "#d13438",
            (_, Severity::Warning) => "#ffb900",
        };
        let word = event_word(i.event);
        text.push_str(&format!(
            "{word} {} {}\n  {}\n\n",
            sev_word(a.severity),
            a.key,
            a.summary
        ));
        html.push_str(&format!(
            "<div style=\"border-left:6px solid {color};padding:4px 12px;margin:12px 0\">\
             <p><b>{word} · {} · <code>{}</code></b><br>{}</p><table>\n",
            sev_word(a.severity),
            html_escape(&a.key),
            html_escape(&a.summary)
        ));
        let mut rows: Vec<(String, String)> = a
            .facts
            .iter()
            .map(|f| (f.title.clone(), f.value.clone()))
            .collect();
        rows.push(("First seen".into(), a.first_seen.clone()));
        if let (Event::Resolved, Some(r)) = (i.event, &a.resolved_at) {
            rows.push(("Resolved".into(), r.clone()));
        }
        if let Some(rb) = &a.runbook {
            rows.push(("Runbook".into(), rb.clone()));
        }
        if i.event != Event::Resolved && i.event != Event::Test {
            rows.push(("Silence".into(), silence_hint(a)));
        }
        let w = rows
            .iter()
            .map(|(t, _)| t.chars().count())
            .max()
            .unwrap_or(0)
            + 1;
        for (t, v) in &rows {
            text.push_str(&format!("  {:<w$} {v}\n", format!("{t}:")));
            html.push_str(&format!(
                "<tr><td style=\"padding-right:12px;color:#555\">{}</td><td>{}</td></tr>\n",
                html_escape(t),
                html_escape(v)
            ));
        }
        text.push('\n');
        html.push_str("</table></div>\n");
    }
    let foot = format!(
        "vigil {} · cluster {} · items {}",
        vigil_core::VERSION,
        n.cluster,
        ids(n)
    );
    text.push_str(&format!("-- \n{foot}\n"));
    html.push_str(&format!(
        "<p style=\"color:#777;font-size:small\">{}</p></body></html>\n",
        html_escape(&foot)
    ));

    let roots: Vec<String> = {
        let mut r: Vec<String> = n
            .items
            .iter()
            .filter(|i| i.event != Event::Test)
            .map(|i| thread_root(&i.alert, domain))
            .collect();
        r.dedup();
        r
    };
    let (message_id, in_reply_to, references) = match (n.items.as_slice(), roots.as_slice()) {
        ([only], [root]) if only.event == Event::Firing => (root.clone(), None, None),
        ([only], [root]) => (
            format!(
                "<vigil-{:016x}-{}-{unique}@{domain}>",
                fnv(&only.alert.key),
                only.event.as_str()
            ),
            Some(root.clone()),
            Some(root.clone()),
        ),
        _ => (
            format!("<batch-{unique}@{domain}>"),
            None,
            (!roots.is_empty()).then(|| roots.join(" ")),
        ),
    };
    let thread_index = match (n.items.as_slice(), roots.as_slice()) {
        ([only], [_]) => thread_index(&only.alert, only.event == Event::Firing, vigil_core::now()),
        _ => None,
    };
    Email {
        subject: subject(n),
        text,
        html,
        message_id,
        in_reply_to,
        references,
        thread_index,
    }
}

/// The outbox ids in a message, e.g. `12,13`, for spotting duplicates.
pub fn ids(n: &Notification) -> String {
    n.items
        .iter()
        .map(|i| i.id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One line of the file channel.
pub fn file_line(n: &Notification, time: &str) -> Value {
    json!({"time": time, "channel": n.channel, "cluster": n.cluster, "items": n.items})
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests;
