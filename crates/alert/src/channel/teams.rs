//! `kind = "teams"`: an Adaptive Card (workflows) or a MessageCard (retired
//! Office 365 connectors) to a webhook.

use super::{http, AmExtra, Kind, SendFuture, Transport};
use crate::model::Notification;
use crate::redact::Redactor;
use crate::render;
use crate::AlertError;
use vigil_core::config::channel::teams::{TeamsChannel, TeamsFormat};
use vigil_core::config::ChannelConfig;
use vigil_core::secret::Secret;

impl Kind for TeamsChannel {
    fn target(&self) -> String {
        "webhook <redacted>".into()
    }
    fn secrets(&self, r: &mut Redactor) {
        r.add(self.webhook.expose());
    }
    fn transport(&self, c: &ChannelConfig) -> Result<Box<dyn Transport>, AlertError> {
        Ok(Box::new(Teams {
            url: self.webhook.clone(),
            format: self.format,
            http: http::client_for(c)?,
        }))
    }
}

#[derive(Debug)]
struct Teams {
    url: Secret,
    format: TeamsFormat,
    http: reqwest::Client,
}

impl Transport for Teams {
    fn send<'a>(&'a self, n: &'a Notification, _: &'a AmExtra, r: &'a Redactor) -> SendFuture<'a> {
        // Trimmed to Teams' size limit: a 413 would drop the whole message.
        let body = render::teams(n, self.format == TeamsFormat::MessageCard);
        Box::pin(async move { http::post(&self.http, self.url.expose(), &body, r).await })
    }
}
