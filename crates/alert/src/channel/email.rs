//! `kind = "email"`: a text and HTML message through an SMTP relay, threaded
//! per alert (`Message-ID`, `In-Reply-To`).

use super::{AmExtra, BuildError, Kind, SendError, SendFuture, Sent, Transport};
use crate::model::Notification;
use crate::redact::Redactor;
use crate::render;
use crate::AlertError;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate as SmtpCert, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use vigil_core::config::channel::email::{EmailChannel, SmtpTls};
use vigil_core::config::ChannelConfig;
use vigil_core::ensure_crypto_provider;

impl Kind for EmailChannel {
    fn target(&self) -> String {
        format!(
            "smtp {}:{} ({:?}), {} recipient(s){}",
            self.smtp_host,
            self.smtp_port
                .map(|p| p.to_string())
                .unwrap_or_else(|| "default".into()),
            self.smtp_tls,
            self.to.len(),
            if self.password.is_some() {
                ", auth <redacted>"
            } else {
                ""
            }
        )
    }

    fn secrets(&self, r: &mut Redactor) {
        if let Some(pw) = &self.password {
            r.add(pw.expose());
            // As AUTH LOGIN and AUTH PLAIN send it: a relay may echo that.
            if let Some(user) = &self.username {
                r.add_encoded(pw.expose().as_bytes());
                r.add_encoded(format!("\0{user}\0{}", pw.expose()).as_bytes());
            }
        }
    }

    fn transport(&self, c: &ChannelConfig) -> Result<Box<dyn Transport>, AlertError> {
        let ca = super::read_ca(c)?;
        Ok(Box::new(email_sender(self, c, ca.as_deref())?))
    }
}

struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Transport for Email {
    fn send<'a>(&'a self, n: &'a Notification, _: &'a AmExtra, r: &'a Redactor) -> SendFuture<'a> {
        Box::pin(self.email(n, r))
    }
}

impl Email {
    async fn email(&self, n: &Notification, redact: &Redactor) -> Result<Sent, SendError> {
        let unique = format!(
            "{}-{:08x}",
            vigil_core::now().unix_timestamp(),
            fastrand::u32(..)
        );
        let domain = render::id_domain(self.from.email.as_ref(), &n.cluster);
        let m = render::email(n, &unique, &domain);
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(m.subject.clone())
            .message_id(Some(m.message_id))
            // RFC 3834: machine-generated, so no autoresponder answers it;
            // Exchange and Outlook honour their own header for the same.
            .raw_header(plain("Auto-Submitted", "auto-generated"))
            .raw_header(plain("X-Auto-Response-Suppress", "All"))
            // Outlook groups a conversation by its topic.
            .raw_header(plain("Thread-Topic", m.subject))
            .raw_header(plain("X-Vigil-Items", render::ids(n)))
            .date_now();
        for to in &self.to {
            b = b.to(to.clone());
        }
        if let Some(t) = m.thread_index {
            b = b.raw_header(plain("Thread-Index", t));
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
            .map_err(|err| SendError::plain(format!("building the email: {err}")))?;
        match tokio::time::timeout(
            self.timeout + Duration::from_secs(5),
            self.transport.send(msg),
        )
        .await
        {
            Err(_) => Err(SendError::plain(format!(
                "SMTP timed out after {:?}",
                self.timeout
            ))),
            Ok(Err(err)) => Err(SendError::plain(
                redact.remote(format!("SMTP: {}", vigil_core::error_chain(&err)).as_bytes()),
            )),
            Ok(Ok(resp)) => Ok(Sent {
                reply: format!(
                    "SMTP {} {}",
                    resp.code(),
                    redact.remote(resp.message().collect::<Vec<_>>().join(" ").as_bytes())
                ),
            }),
        }
    }
}

/// A header lettre has no type for: `Auto-Submitted`, `Thread-Topic`,
/// `Thread-Index`, and
/// `X-Vigil-Items` (the outbox ids, to spot duplicates).
fn plain(name: &'static str, value: impl Into<String>) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.into())
}

fn email_sender(
    e: &EmailChannel,
    c: &ChannelConfig,
    ca: Option<&[u8]>,
) -> Result<Email, AlertError> {
    ensure_crypto_provider();
    let host = e.smtp_host.clone();
    let err = |e: BuildError| AlertError::build(&c.name, e);
    let mode = e.smtp_tls;
    let tls = if mode == SmtpTls::None {
        Tls::None
    } else {
        let mut p = TlsParameters::builder(host.clone());
        if let Some(pem) = ca {
            let cert = SmtpCert::from_pem(pem).map_err(|e| err(BuildError::CaPem(Box::new(e))))?;
            p = p.add_root_certificate(cert);
        }
        let p = p.build_rustls().map_err(|e| err(BuildError::Tls(e)))?;
        match mode {
            SmtpTls::Implicit => Tls::Wrapper(p),
            _ => Tls::Required(p),
        }
    };
    let port = e.smtp_port.unwrap_or(match mode {
        SmtpTls::Starttls => 587,
        SmtpTls::Implicit => 465,
        SmtpTls::None => 25,
    });
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(c.timeout));
    if let (Some(user), Some(pw)) = (&e.username, &e.password) {
        b = b.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
    }
    let mailbox = |field: &'static str, value: &str| {
        value.parse::<Mailbox>().map_err(|source| {
            err(BuildError::Mailbox {
                field,
                value: value.to_string(),
                source,
            })
        })
    };
    let from = mailbox("from", &e.from)?;
    let to =
        e.to.iter()
            .map(|t| mailbox("to", t))
            .collect::<Result<Vec<_>, _>>()?;
    Ok(Email {
        transport: b.build(),
        from,
        to,
        timeout: c.timeout,
    })
}
