//! The channels: how one message reaches Slack, Teams, an SMTP relay,
//! Alertmanager, a file, or the heartbeat URL. Each kind lives in its own
//! file under `channel/` and implements [`Kind`] for its settings from the
//! config; [`kind`] is the one place that lists them.
//!
//! Secrets: webhook URLs and the SMTP password are only ever handed to the
//! HTTP or SMTP client. Every error is built from `reqwest::Error::without_url`
//! or the SMTP reply; what the server said is cleaned by [`Redactor::remote`]
//! (bounded, no control characters, no secret), and every message, error or
//! not, is scrubbed of every configured secret once more.

use crate::model::{Alert, Notification};
use crate::redact::Redactor;
use crate::AlertError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::config::{ChannelConfig, ChannelSettings};
use vigil_core::secret::Secret;

mod heartbeat;
mod http;

pub use alertmanager::alertmanager_payload;
pub use http::parse_retry_after;
/// Default upper bound of one delivery attempt.
pub use vigil_core::config::channel::DEFAULT_TIMEOUT;

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
    /// Sending the same message again cannot work (HTTP 413): its items are
    /// recorded as not delivered and the channel moves on to the next.
    pub permanent: bool,
}

impl SendError {
    fn plain(m: impl Into<String>) -> SendError {
        SendError {
            message: m.into(),
            retry_after: None,
            permanent: false,
        }
    }
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

/// Why a channel could not be built. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read ca_file {}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ca_file is not PEM")]
    CaPem(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Without its URL.
    #[error("building the HTTP client")]
    Http(#[source] reqwest::Error),
    #[error("TLS setup")]
    Tls(#[source] lettre::transport::smtp::Error),
    #[error("{field} {value:?} is not a mailbox")]
    Mailbox {
        field: &'static str,
        value: String,
        #[source]
        source: lettre::address::AddressError,
    },
}

/// A boxed future, so [`Transport`] can be a trait object.
pub(crate) type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Sent, SendError>> + Send + 'a>>;

/// What the alert crate does with one kind of channel, implemented for the
/// kind's settings in `channel/<kind>.rs`.
pub(crate) trait Kind: Sync {
    /// Where messages go, for `check-config`, without a secret.
    fn target(&self) -> String;
    /// Adds what a server might echo back of this channel's secrets.
    fn secrets(&self, r: &mut Redactor);
    /// How often firing alerts are sent again with the whole firing set
    /// (Alertmanager forgets alerts that are not re-sent); None: never.
    fn resend(&self) -> Option<Duration> {
        None
    }
    /// Builds what sends this channel's messages.
    fn transport(&self, c: &ChannelConfig) -> Result<Box<dyn Transport>, AlertError>;
}

/// Sends one rendered message.
pub(crate) trait Transport: Send + Sync + std::fmt::Debug {
    /// `redact` cleans what the server says.
    fn send<'a>(
        &'a self,
        n: &'a Notification,
        am: &'a AmExtra,
        redact: &'a Redactor,
    ) -> SendFuture<'a>;
}

/// Per kind of the config's list: its file here (`channel/<kind>.rs`, whose
/// settings type implements [`Kind`]) and its arm of the one match.
macro_rules! channels {
    ($($v:ident => $m:ident),* $(,)?) => {
        $(mod $m;)*

        /// The one match over the kinds: a configured channel as its [`Kind`].
        pub(crate) fn kind(s: &ChannelSettings) -> &dyn Kind {
            match s {
                $(ChannelSettings::$v(c) => c,)*
            }
        }
    };
}

vigil_core::channel_kinds!();

/// A ready-to-use channel.
#[derive(Debug)]
pub struct Sender {
    pub name: String,
    transport: Box<dyn Transport>,
    resend: Option<Duration>,
    pub timeout: Duration,
    /// Scrubs replies and errors: this channel's secrets by default, every
    /// configured one after [`Sender::redacting`].
    redact: Arc<Redactor>,
}

impl Sender {
    /// Builds the sender for a configured channel.
    pub fn build(c: &ChannelConfig) -> Result<Sender, AlertError> {
        let k = kind(&c.settings);
        let mut own = Redactor::default();
        k.secrets(&mut own);
        Ok(Sender {
            name: c.name.clone(),
            transport: k.transport(c)?,
            resend: k.resend(),
            timeout: c.timeout,
            redact: Arc::new(own),
        })
    }

    /// Scrubs with `r` (every configured secret): a server may echo any of them.
    pub fn redacting(mut self, r: Arc<Redactor>) -> Sender {
        self.redact = r;
        self
    }

    /// The dead-man heartbeat "channel".
    pub fn heartbeat(url: Secret) -> Result<Sender, AlertError> {
        let redact = Arc::new(Redactor::of(&[&url]));
        Ok(Sender {
            name: crate::model::HEARTBEAT_CHANNEL.into(),
            transport: Box::new(heartbeat::Heartbeat::new(url)?),
            resend: None,
            timeout: DEFAULT_TIMEOUT,
            redact,
        })
    }

    /// Whether each message carries the whole firing set (Alertmanager).
    pub fn is_alertmanager(&self) -> bool {
        self.resend.is_some()
    }

    /// Sends one message. Never panics, never leaks a secret.
    pub async fn send(&self, n: &Notification, am: &AmExtra) -> Result<Sent, SendError> {
        match self.transport.send(n, am, &self.redact).await {
            Ok(s) => Ok(Sent {
                reply: self.redact.scrub(&s.reply),
            }),
            Err(e) => Err(SendError {
                message: self.redact.scrub(&e.message),
                ..e
            }),
        }
    }
}

/// The channel's extra CA (`ca_file`), if any.
fn read_ca(c: &ChannelConfig) -> Result<Option<Vec<u8>>, AlertError> {
    match &c.ca_file {
        None => Ok(None),
        Some(p) => {
            let p = vigil_core::secret::resolve_path(p);
            std::fs::read(&p).map(Some).map_err(|source| {
                AlertError::build(&c.name, BuildError::CaFile { path: p, source })
            })
        }
    }
}
