//! The dead-man heartbeat (`alert.heartbeat_url`): a GET after every
//! successful job. Not a configured channel, but delivered like one.

use super::{http, AmExtra, SendFuture, Transport, DEFAULT_TIMEOUT};
use crate::model::Notification;
use crate::redact::Redactor;
use crate::AlertError;
use vigil_core::secret::Secret;

#[derive(Debug)]
pub(super) struct Heartbeat {
    url: Secret,
    http: reqwest::Client,
}

impl Heartbeat {
    pub(super) fn new(url: Secret) -> Result<Heartbeat, AlertError> {
        Ok(Heartbeat {
            url,
            http: http::client("heartbeat", DEFAULT_TIMEOUT, None)?,
        })
    }
}

impl Transport for Heartbeat {
    fn send<'a>(&'a self, _: &'a Notification, _: &'a AmExtra, r: &'a Redactor) -> SendFuture<'a> {
        Box::pin(http::get(&self.http, self.url.expose(), r))
    }
}
