//! `kind = "teams"`: a Microsoft Teams webhook (a workflow, or a retired
//! Office 365 connector).

use super::{ConfigError, Cx, RawKind};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// The keys of `kind = "teams"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTeams {
    /// The webhook URL. A secret: prefer `webhook_url_file`.
    webhook_url: Option<Secret>,
    webhook_url_file: Option<PathBuf>,
    /// `"adaptive"` (default, workflows) or `"messagecard"` (retired connectors).
    teams_format: Option<String>,
}

/// The card Teams is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamsFormat {
    Adaptive,
    /// The retired Office 365 connector format.
    MessageCard,
}

#[derive(Debug, Clone)]
pub struct TeamsChannel {
    pub webhook: Secret,
    pub format: TeamsFormat,
}

impl RawKind for RawTeams {
    type Settings = TeamsChannel;
    fn resolve(self, cx: &Cx) -> Result<TeamsChannel, ConfigError> {
        let webhook = super::webhook(cx, &self.webhook_url, &self.webhook_url_file)?;
        let format = match self.teams_format.as_deref() {
            None | Some("adaptive") => TeamsFormat::Adaptive,
            Some("messagecard") => TeamsFormat::MessageCard,
            Some(_) => {
                return Err(cx.err(
                    "teams_format",
                    Some(cx.span.clone()),
                    "only for kind \"teams\": \"adaptive\" (default) or \"messagecard\" (retired connectors)",
                ))
            }
        };
        Ok(TeamsChannel { webhook, format })
    }
}
