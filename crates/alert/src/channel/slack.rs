//! `kind = "slack"`: Block Kit messages to an incoming webhook.

use super::{http, AmExtra, Kind, SendFuture, Transport};
use crate::model::Notification;
use crate::redact::Redactor;
use crate::render;
use crate::AlertError;
use vigil_core::config::channel::slack::SlackChannel;
use vigil_core::config::ChannelConfig;
use vigil_core::secret::Secret;

impl Kind for SlackChannel {
    fn target(&self) -> String {
        "webhook <redacted>".into()
    }
    fn secrets(&self, r: &mut Redactor) {
        r.add(self.webhook.expose());
    }
    fn transport(&self, c: &ChannelConfig) -> Result<Box<dyn Transport>, AlertError> {
        Ok(Box::new(Slack {
            url: self.webhook.clone(),
            http: http::client_for(c)?,
        }))
    }
}

#[derive(Debug)]
struct Slack {
    url: Secret,
    http: reqwest::Client,
}

impl Transport for Slack {
    fn send<'a>(&'a self, n: &'a Notification, _: &'a AmExtra, r: &'a Redactor) -> SendFuture<'a> {
        let body = render::slack(n);
        Box::pin(async move { http::post(&self.http, self.url.expose(), &body, r).await })
    }
}
