//! The channels: how one message reaches Slack, Teams, an SMTP relay,
//! Alertmanager, a file, or the heartbeat URL.
//!
//! Secrets: webhook URLs and the SMTP password are only ever handed to the
//! HTTP or SMTP client. Every error is built from `reqwest::Error::without_url`
//! or the SMTP reply; what the server said is cleaned by [`Redactor::remote`]
//! (bounded, no control characters, no secret), and every message, error or
//! not, is scrubbed of every configured secret once more.

use crate::engine::Settings;
use crate::model::Alert;
use crate::model::{rfc3339, Event, Notification};
use crate::redact::{Redactor, MAX_READ};
use crate::render;
use crate::AlertError;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate as SmtpCert, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;
use vigil_core::config::{ChannelConfig, ChannelKind, SmtpTls};
use vigil_core::secret::Secret;

/// Default upper bound of one delivery attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry-After values above this are capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A delivery that worked, with what the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `HTTP 200 OK`, `SMTP 250 ...`, or `appended to FILE`.
    pub reply: String,
}

/// A delivery that did not work. The message never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub message: String,
    /// From a 429 (or 503) `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Alertmanager needs the whole firing set on each send, not just the batch.
#[derive(Debug, Clone, Default)]
pub struct AmExtra {
    /// Firing alerts routed to this channel, at claim time.
    pub firing: Vec<Alert>,
    pub watchdog: bool,
}

#[derive(Debug)]
enum Kind {
    Slack { url: Secret },
    Teams { url: Secret, messagecard: bool },
    Alertmanager { base: String, resend: Duration },
    Email(Box<EmailSender>),
    File { path: PathBuf },
    Heartbeat { url: Secret },
}

struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    password: Option<Secret>,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// A ready-to-use channel.
#[derive(Debug)]
pub struct Sender {
    pub name: String,
    kind: Kind,
    http: Option<reqwest::Client>,
    pub timeout: Duration,
    /// Scrubs replies and errors: this channel's secret by default, every
    /// configured one after [`Sender::redacting`].
    redact: std::sync::Arc<Redactor>,
}

use vigil_core::ensure_crypto_provider;

fn read_ca(c: &ChannelConfig) -> Result<Option<Vec<u8>>, AlertError> {
    match &c.ca_file {
        None => Ok(None),
        Some(p) => {
            let p = vigil_core::secret::resolve_path(p);
            std::fs::read(&p).map(Some).map_err(|e| {
                AlertError::channel(&c.name, format!("cannot read ca_file {}: {e}", p.display()))
            })
        }
    }
}

fn http_client(
    name: &str,
    timeout: Duration,
    ca: Option<&[u8]>,
) -> Result<reqwest::Client, AlertError> {
    ensure_crypto_provider();
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(format!("vigil/{}", vigil_core::VERSION));
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            AlertError::channel(name, format!("ca_file is not PEM: {}", e.without_url()))
        })?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| {
        AlertError::channel(
            name,
            format!("building the HTTP client: {}", e.without_url()),
        )
    })
}

impl Sender {
    /// Builds the sender for a configured channel.
    pub fn build(c: &ChannelConfig) -> Result<Sender, AlertError> {
        let timeout = c.timeout.map(|t| t.get()).unwrap_or(DEFAULT_TIMEOUT);
        let ca = read_ca(c)?;
        let secret = || {
            c.secret
                .clone()
                .ok_or_else(|| AlertError::channel(&c.name, "the webhook URL is missing"))
        };
        let (kind, http) = match c.kind {
            ChannelKind::Slack => (Kind::Slack { url: secret()? }, true),
            ChannelKind::Teams => (
                Kind::Teams {
                    url: secret()?,
                    messagecard: c.teams_format.as_deref() == Some("messagecard"),
                },
                true,
            ),
            ChannelKind::Alertmanager => (
                Kind::Alertmanager {
                    base: c
                        .url
                        .clone()
                        .unwrap_or_default()
                        .trim_end_matches('/')
                        .to_string(),
                    resend: Settings::resend_interval(c),
                },
                true,
            ),
            ChannelKind::File => (
                Kind::File {
                    path: c.path.clone().unwrap_or_default(),
                },
                false,
            ),
            ChannelKind::Email => (
                Kind::Email(Box::new(email_sender(c, timeout, ca.as_deref())?)),
                false,
            ),
        };
        let http = if http {
            Some(http_client(&c.name, timeout, ca.as_deref())?)
        } else {
            None
        };
        let mut s = Sender {
            name: c.name.clone(),
            kind,
            http,
            timeout,
            redact: Default::default(),
        };
        s.redact = std::sync::Arc::new(Redactor::of(&s.secrets()));
        Ok(s)
    }

    /// Scrubs with `r` (every configured secret): a server may echo any of them.
    pub fn redacting(mut self, r: std::sync::Arc<Redactor>) -> Sender {
        self.redact = r;
        self
    }

    /// The dead-man heartbeat "channel".
    pub fn heartbeat(url: Secret) -> Result<Sender, AlertError> {
        let redact = std::sync::Arc::new(Redactor::of(&[&url]));
        Ok(Sender {
            name: crate::engine::HEARTBEAT_CHANNEL.into(),
            http: Some(http_client("heartbeat", DEFAULT_TIMEOUT, None)?),
            kind: Kind::Heartbeat { url },
            timeout: DEFAULT_TIMEOUT,
            redact,
        })
    }

    pub fn is_alertmanager(&self) -> bool {
        matches!(self.kind, Kind::Alertmanager { .. })
    }

    fn secrets(&self) -> Vec<&Secret> {
        match &self.kind {
            Kind::Slack { url } | Kind::Teams { url, .. } | Kind::Heartbeat { url } => {
                vec![url]
            }
            Kind::Email(e) => e.password.iter().collect(),
            _ => vec![],
        }
    }

    /// Sends one message. Never panics, never leaks a secret.
    pub async fn send(&self, n: &Notification, am: &AmExtra) -> Result<Sent, SendError> {
        let r = match &self.kind {
            Kind::Slack { url } => self.post(url.expose(), &render::slack(n)).await,
            Kind::Teams { url, messagecard } => {
                let body = if *messagecard {
                    render::teams_messagecard(n)
                } else {
                    render::teams_adaptive(n)
                };
                self.post(url.expose(), &body).await
            }
            Kind::Alertmanager { base, resend } => {
                let body = alertmanager_payload(n, am, *resend);
                if body.as_array().is_some_and(|a| a.is_empty()) {
                    return Ok(Sent {
                        reply: "nothing to send".into(),
                    });
                }
                self.post(&format!("{base}/api/v2/alerts"), &body).await
            }
            Kind::Email(e) => self.email(e, n).await,
            Kind::File { path } => {
                append_line(path, &render::file_line(n, &rfc3339(vigil_core::now())))
            }
            Kind::Heartbeat { url } => self.get(url.expose()).await,
        };
        match r {
            Ok(s) => Ok(Sent {
                reply: self.redact.scrub(&s.reply),
            }),
            Err(e) => Err(SendError {
                message: self.redact.scrub(&e.message),
                retry_after: e.retry_after,
            }),
        }
    }

    async fn post(&self, url: &str, body: &Value) -> Result<Sent, SendError> {
        let Some(http) = &self.http else {
            return Err(plain("no HTTP client"));
        };
        let resp = http.post(url).json(body).send().await;
        self.http_result(resp).await
    }

    async fn get(&self, url: &str) -> Result<Sent, SendError> {
        let Some(http) = &self.http else {
            return Err(plain("no HTTP client"));
        };
        let resp = http.get(url).send().await;
        self.http_result(resp).await
    }

    async fn http_result(
        &self,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Sent, SendError> {
        let mut resp = resp.map_err(|e| plain(http_error(e)))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // At most MAX_READ bytes of body, within the client's timeout: a huge
        // or never-ending body neither fills memory nor holds the channel.
        // The status decides; a body cut short is only less to show.
        let mut raw = Vec::new();
        while raw.len() < MAX_READ {
            match resp.chunk().await {
                Ok(Some(c)) => raw.extend_from_slice(&c),
                Ok(None) | Err(_) => break,
            }
        }
        let body = self.redact.remote(&raw);
        let reply = format!(
            "HTTP {} {}{}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            if body.is_empty() {
                String::new()
            } else {
                format!(", body {body:?}")
            }
        );
        if status.is_success() {
            return Ok(Sent { reply });
        }
        let hint = match status.as_u16() {
            429 => " (rate limited)",
            300..=399 => " (redirects are not followed, a webhook URL must not move; check it)",
            400 | 401 | 403 | 404 | 410 => " (check the webhook URL or URL file; retrying)",
            _ => "",
        };
        Err(SendError {
            message: format!("{reply}{hint}"),
            retry_after: if status.as_u16() == 429 || status.as_u16() == 503 {
                retry_after
            } else {
                None
            },
        })
    }

    async fn email(&self, e: &EmailSender, n: &Notification) -> Result<Sent, SendError> {
        let unique = format!(
            "{}-{:08x}",
            vigil_core::now().unix_timestamp(),
            fastrand::u32(..)
        );
        let m = render::email(n, &unique);
        let mut b = Message::builder()
            .from(e.from.clone())
            .subject(m.subject)
            .message_id(Some(m.message_id))
            .header(XVigilItems(render::ids(n)))
            .date_now();
        for to in &e.to {
            b = b.to(to.clone());
        }
        if let Some(r) = m.in_reply_to {
            b = b.in_reply_to(r);
        }
        if let Some(r) = m.references {
            b = b.references(r);
        }
        let msg = b
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(m.text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(m.html),
                    ),
            )
            .map_err(|err| plain(format!("building the email: {err}")))?;
        match tokio::time::timeout(self.timeout + Duration::from_secs(5), e.transport.send(msg))
            .await
        {
            Err(_) => Err(plain(format!("SMTP timed out after {:?}", self.timeout))),
            Ok(Err(err)) => Err(plain(self.redact.remote(smtp_error(&err).as_bytes()))),
            Ok(Ok(resp)) => Ok(Sent {
                reply: format!(
                    "SMTP {} {}",
                    resp.code(),
                    self.redact
                        .remote(resp.message().collect::<Vec<_>>().join(" ").as_bytes())
                ),
            }),
        }
    }
}

/// The `X-Vigil-Items` header: outbox ids, to spot duplicates.
#[derive(Debug, Clone)]
struct XVigilItems(String);

impl lettre::message::header::Header for XVigilItems {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-Vigil-Items")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }
    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

fn plain(m: impl Into<String>) -> SendError {
    SendError {
        message: m.into(),
        retry_after: None,
    }
}

/// A reqwest error without its URL, with the cause chain.
fn http_error(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut s = format!("{kind}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let mut s = format!("SMTP: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let d = t - vigil_core::now();
    Some(Duration::from_secs(d.whole_seconds().max(0) as u64).min(MAX_RETRY_AFTER))
}

fn append_line(path: &PathBuf, v: &Value) -> Result<Sent, SendError> {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| {
            f.write_all(&line)?;
            f.sync_data()
        });
    r.map(|()| Sent {
        reply: format!("appended to {}", path.display()),
    })
    .map_err(|e| plain(format!("appending to {}: {e}", path.display())))
}

fn email_sender(
    c: &ChannelConfig,
    timeout: Duration,
    ca: Option<&[u8]>,
) -> Result<EmailSender, AlertError> {
    ensure_crypto_provider();
    let host = c.smtp_host.clone().unwrap_or_default();
    let err = |m: String| AlertError::channel(&c.name, m);
    let mode = c.smtp_tls.unwrap_or(SmtpTls::Starttls);
    let tls = if mode == SmtpTls::None {
        Tls::None
    } else {
        let mut p = TlsParameters::builder(host.clone());
        if let Some(pem) = ca {
            let cert =
                SmtpCert::from_pem(pem).map_err(|e| err(format!("ca_file is not PEM: {e}")))?;
            p = p.add_root_certificate(cert);
        }
        let p = p
            .build_rustls()
            .map_err(|e| err(format!("TLS setup: {e}")))?;
        match mode {
            SmtpTls::Implicit => Tls::Wrapper(p),
            _ => Tls::Required(p),
        }
    };
    let port = c.smtp_port.unwrap_or(match mode {
        SmtpTls::Starttls => 587,
        SmtpTls::Implicit => 465,
        SmtpTls::None => 25,
    });
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(user), Some(pw)) = (&c.username, &c.secret) {
        b = b.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
    }
    let from: Mailbox = c
        .from
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| err(format!("from {:?} is not a mailbox: {e}", c.from)))?;
    let to =
        c.to.iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| err(format!("to {t:?} is not a mailbox: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
    Ok(EmailSender {
        transport: b.build(),
        from,
        to,
        password: c.secret.clone(),
    })
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
    // Resolutions in this batch first, so a re-fire in the same batch wins below.
    for i in n.items.iter().filter(|i| i.event == Event::Resolved) {
        let a = &i.alert;
        if a.status == crate::model::Status::Firing {
            continue;
        }
        let at = a.resolved_at.clone().unwrap_or_else(|| rfc3339(now));
        out.push(entry(
            &a.labels,
            &a.name,
            a.severity.as_str(),
            a.source.as_str(),
            &a.summary,
            describe(&a.facts),
            a.runbook.as_deref(),
            a.fired_at.as_deref().unwrap_or(&a.first_seen),
            &at,
        ));
    }
    for a in &am.firing {
        if seen.insert(a.key.clone()) {
            let v = a.view();
            out.push(entry(
                &v.labels,
                &v.name,
                v.severity.as_str(),
                v.source.as_str(),
                &v.summary,
                describe(&v.facts),
                v.runbook.as_deref(),
                v.fired_at.as_deref().unwrap_or(&v.first_seen),
                &ends,
            ));
        }
    }
    for i in n.items.iter().filter(|i| i.event == Event::Test) {
        let a = &i.alert;
        out.push(entry(
            &a.labels,
            &a.name,
            a.severity.as_str(),
            a.source.as_str(),
            &a.summary,
            describe(&a.facts),
            a.runbook.as_deref(),
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

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
        assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
        assert_eq!(parse_retry_after("soon"), None);
    }
}
