//! `kind = "slack"`: a Slack incoming webhook.

use super::{ConfigError, Cx, RawKind};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// The keys of `kind = "slack"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlack {
    /// The webhook URL. A secret: prefer `webhook_url_file`.
    webhook_url: Option<Secret>,
    webhook_url_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SlackChannel {
    pub webhook: Secret,
}

impl RawKind for RawSlack {
    type Settings = SlackChannel;
    fn resolve(self, cx: &Cx) -> Result<SlackChannel, ConfigError> {
        Ok(SlackChannel {
            webhook: super::webhook(cx, &self.webhook_url, &self.webhook_url_file)?,
        })
    }
}
