//! `kind = "email"`: mail through an SMTP relay.

use super::{ConfigError, Cx, RawKind};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Implicit,
    None,
}

/// The keys of `kind = "email"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    smtp_host: Option<String>,
    /// Default: 587 with starttls, 465 with implicit, 25 with none.
    smtp_port: Option<u16>,
    /// Default: starttls. `"none"` only for a relay on loopback when a password is set.
    smtp_tls: Option<SmtpTls>,
    /// The SMTP AUTH user (with `password` or `password_file`).
    username: Option<String>,
    /// The SMTP password (with `username`). A secret: prefer `password_file`.
    password: Option<Secret>,
    /// A file holding the SMTP password (0600; a relative name is a credential).
    password_file: Option<PathBuf>,
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EmailChannel {
    pub smtp_host: String,
    pub smtp_port: Option<u16>,
    pub smtp_tls: SmtpTls,
    pub username: Option<String>,
    /// Read from inline or `password_file`; AUTH is used when it is set.
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

impl RawKind for RawEmail {
    type Settings = EmailChannel;
    fn resolve(self, cx: &Cx) -> Result<EmailChannel, ConfigError> {
        cx.need("smtp_host", self.smtp_host.is_some())?;
        cx.need("from", self.from.is_some())?;
        cx.need("to", !self.to.is_empty())?;
        let password = if self.password.is_some() || self.password_file.is_some() {
            cx.need("username", self.username.is_some())?;
            Some(cx.secret("password", &self.password, &self.password_file)?)
        } else {
            None
        };
        for (i, a) in self.to.iter().enumerate() {
            if !a.contains('@') {
                return Err(cx.v.err(
                    format!("{}.to[{i}]", cx.key),
                    cx.field_span("to"),
                    format!("{a:?} is not an email address"),
                ));
            }
        }
        let smtp_host = self.smtp_host.unwrap_or_default();
        if self.smtp_tls == Some(SmtpTls::None)
            && password.is_some()
            && !is_loopback_host(&smtp_host)
        {
            // AUTH over plain SMTP would send the password in clear.
            return Err(cx.err(
                "smtp_tls",
                cx.field_span("smtp_tls"),
                "\"none\" with a password sends it in clear; use \"starttls\" or \"implicit\" (\"none\" is allowed only for a relay on loopback)",
            ));
        }
        Ok(EmailChannel {
            smtp_host,
            smtp_port: self.smtp_port,
            smtp_tls: self.smtp_tls.unwrap_or(SmtpTls::Starttls),
            username: self.username,
            password,
            from: self.from.unwrap_or_default(),
            to: self.to,
        })
    }
}

/// `localhost`, 127.0.0.0/8 or ::1: where a plain SMTP relay cannot be sniffed.
fn is_loopback_host(h: &str) -> bool {
    let h = h.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
