//! `kind = "alertmanager"`: alerts posted to Alertmanager's v2 API.

use super::{ConfigError, Cx, RawKind};
use crate::units::HumanDuration;
use serde::Deserialize;
use std::time::Duration;

/// How often firing alerts are re-sent unless `resend_interval` says otherwise.
pub const DEFAULT_RESEND: Duration = Duration::from_secs(60);

/// The keys of `kind = "alertmanager"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    /// Alertmanager's base URL, e.g. `http://127.0.0.1:9093`.
    url: Option<String>,
    /// How often firing alerts are re-sent (default 1m).
    resend_interval: Option<HumanDuration>,
}

#[derive(Debug, Clone)]
pub struct AlertmanagerChannel {
    /// The base URL as written.
    pub url: String,
    /// Firing alerts are re-sent this often, before Alertmanager forgets them.
    pub resend_interval: Duration,
}

impl RawKind for RawAlertmanager {
    type Settings = AlertmanagerChannel;
    fn resolve(self, cx: &Cx) -> Result<AlertmanagerChannel, ConfigError> {
        cx.need("url", self.url.is_some())?;
        if let Some(r) = self.resend_interval {
            if r.get() < Duration::from_secs(10) {
                return Err(cx.err(
                    "resend_interval",
                    cx.field_span("resend_interval"),
                    "only for kind \"alertmanager\", at least 10s (keep it below Alertmanager's resolve_timeout, 5m by default)",
                ));
            }
        }
        let url = self.url.unwrap_or_default();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(cx.err(
                "url",
                cx.field_span("url"),
                "must be the http(s):// base URL of Alertmanager",
            ));
        }
        Ok(AlertmanagerChannel {
            url,
            resend_interval: self.resend_interval.map_or(DEFAULT_RESEND, |r| r.get()),
        })
    }
}
