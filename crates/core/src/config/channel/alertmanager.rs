//! `kind = "alertmanager"`: alerts posted to Alertmanager's v2 API.

use super::{ConfigError, Cx, RawKind};
use crate::secret::Secret;
use crate::units::HumanDuration;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How often firing alerts are re-sent unless `resend_interval` says otherwise.
pub const DEFAULT_RESEND: Duration = Duration::from_secs(60);

/// The keys of `kind = "alertmanager"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    /// Alertmanager's base URL, e.g. `http://127.0.0.1:9093`. For an HA
    /// pair or cluster, give `urls` instead.
    url: Option<String>,
    /// Every Alertmanager of an HA cluster, e.g.
    /// `["http://am-1:9093", "http://am-2:9093"]`: each message goes to all
    /// of them (Alertmanager's clients must not pick one); it is delivered
    /// when at least one accepts it.
    #[serde(default)]
    urls: Vec<String>,
    /// How often firing alerts are re-sent (default 1m).
    resend_interval: Option<HumanDuration>,
    /// HTTP basic auth user (with `password` or `password_file`).
    username: Option<String>,
    /// HTTP basic auth password (with `username`). A secret: prefer `password_file`.
    password: Option<Secret>,
    /// A file holding the basic auth password (0600; a relative name is a credential).
    password_file: Option<PathBuf>,
    /// `Authorization: Bearer` token, e.g. for an Alertmanager behind an
    /// authenticating proxy. A secret: prefer `bearer_token_file`.
    bearer_token: Option<Secret>,
    /// A file holding the bearer token (0600; a relative name is a credential).
    bearer_token_file: Option<PathBuf>,
    /// The alerts' `generatorURL` (Alertmanager's "Source" link), e.g. a
    /// Grafana dashboard. Default: `http://<bastion hostname>:9479/metrics`,
    /// vigil-notify's metrics on the bastion that raised the alert.
    generator_url: Option<String>,
}

/// How vigil authenticates to Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmAuth {
    None,
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

#[derive(Debug, Clone)]
pub struct AlertmanagerChannel {
    /// The base URLs as written (`url` or `urls`), at least one.
    pub urls: Vec<String>,
    /// Firing alerts are re-sent this often, before Alertmanager forgets them.
    pub resend_interval: Duration,
    pub auth: AmAuth,
    /// `generatorURL` of every alert; None: the default (see the key's doc).
    pub generator_url: Option<String>,
}

impl RawKind for RawAlertmanager {
    type Settings = AlertmanagerChannel;
    fn resolve(self, cx: &Cx) -> Result<AlertmanagerChannel, ConfigError> {
        if let Some(r) = self.resend_interval {
            if r.get() < Duration::from_secs(10) {
                return Err(cx.err(
                    "resend_interval",
                    cx.field_span("resend_interval"),
                    "only for kind \"alertmanager\", at least 10s (keep it below Alertmanager's resolve_timeout, 5m by default)",
                ));
            }
        }
        let urls = match (self.url, self.urls.is_empty()) {
            (Some(_), false) => {
                return Err(cx.err(
                    "urls",
                    cx.field_span("urls"),
                    "give url (one Alertmanager) or urls (an HA cluster), not both",
                ))
            }
            (Some(u), true) => vec![u],
            (None, false) => self.urls,
            (None, true) => {
                return Err(cx.err(
                    "url",
                    Some(cx.span.clone()),
                    "required for kind Alertmanager: url, or urls for an HA cluster",
                ))
            }
        };
        let key = if urls.len() == 1 { "url" } else { "urls" };
        for u in &urls {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(cx.err(
                    key,
                    cx.field_span(key),
                    format!("{u:?} must be the http(s):// base URL of Alertmanager"),
                ));
            }
        }
        let basic = self.password.is_some() || self.password_file.is_some();
        let bearer = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        let auth = match (basic, bearer) {
            (true, true) => {
                return Err(cx.err(
                    "bearer_token",
                    Some(cx.span.clone()),
                    "give basic auth (username and password) or a bearer_token, not both",
                ))
            }
            (true, false) => {
                cx.need("username", self.username.is_some())?;
                AmAuth::Basic {
                    username: self.username.unwrap_or_default(),
                    password: cx.secret("password", &self.password, &self.password_file)?,
                }
            }
            (false, true) => AmAuth::Bearer(cx.secret(
                "bearer_token",
                &self.bearer_token,
                &self.bearer_token_file,
            )?),
            (false, false) => {
                if self.username.is_some() {
                    return Err(cx.err(
                        "username",
                        cx.field_span("username"),
                        "basic auth needs password or password_file too",
                    ));
                }
                AmAuth::None
            }
        };
        if let Some(g) = &self.generator_url {
            if !(g.starts_with("http://") || g.starts_with("https://")) {
                return Err(cx.err(
                    "generator_url",
                    cx.field_span("generator_url"),
                    format!("{g:?} must be an http(s):// URL"),
                ));
            }
        }
        Ok(AlertmanagerChannel {
            urls,
            resend_interval: self.resend_interval.map_or(DEFAULT_RESEND, |r| r.get()),
            auth,
            generator_url: self.generator_url,
        })
    }
}
