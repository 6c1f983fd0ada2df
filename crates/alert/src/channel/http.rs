//! What the HTTP channels share: the client, a POST or GET, and turning the
//! response into a reply or an error (status, `Retry-After`, a bounded and
//! cleaned body).

use super::{BuildError, SendError, Sent};
use crate::redact::{Redactor, MAX_READ};
use crate::AlertError;
use serde_json::Value;
use std::time::Duration;
use vigil_core::config::ChannelConfig;
use vigil_core::ensure_crypto_provider;

/// Retry-After values above this are capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The client for a configured channel: its timeout and extra CA.
pub(super) fn client_for(c: &ChannelConfig) -> Result<reqwest::Client, AlertError> {
    let ca = super::read_ca(c)?;
    client(&c.name, c.timeout, ca.as_deref())
}

/// No redirects (a webhook URL must not move), vigil's user agent.
pub(super) fn client(
    name: &str,
    timeout: Duration,
    ca: Option<&[u8]>,
) -> Result<reqwest::Client, AlertError> {
    ensure_crypto_provider();
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(format!("vigil/{}", vigil_core::VERSION));
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| AlertError::build(name, BuildError::CaPem(Box::new(e.without_url()))))?;
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| AlertError::build(name, BuildError::Http(e.without_url())))
}

pub(super) async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    redact: &Redactor,
) -> Result<Sent, SendError> {
    result(http.post(url).json(body).send().await, redact).await
}

/// Sends a request built by the caller (headers, auth).
pub(super) async fn send(
    rb: reqwest::RequestBuilder,
    redact: &Redactor,
) -> Result<Sent, SendError> {
    result(rb.send().await, redact).await
}

pub(super) async fn get(
    http: &reqwest::Client,
    url: &str,
    redact: &Redactor,
) -> Result<Sent, SendError> {
    result(http.get(url).send().await, redact).await
}

async fn result(
    resp: Result<reqwest::Response, reqwest::Error>,
    redact: &Redactor,
) -> Result<Sent, SendError> {
    let mut resp = resp.map_err(|e| SendError::plain(http_error(e)))?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    // At most MAX_READ bytes of body, within the client's timeout: a huge
    // or never-ending body neither fills memory nor holds the channel.
    // The status decides; a body cut short is only less to show.
    let mut raw = Vec::new();
    while raw.len() < MAX_READ {
        match resp.chunk().await {
            Ok(Some(c)) => raw.extend_from_slice(&c),
            Ok(None) | Err(_) => break,
        }
    }
    let body = redact.remote(&raw);
    let reply = format!(
        "HTTP {} {}{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        if body.is_empty() {
            String::new()
        } else {
            format!(", body {body:?}")
        }
    );
    if status.is_success() {
        return Ok(Sent { reply });
    }
    let hint = match status.as_u16() {
        429 => " (rate limited)",
        413 => " (the message is too large for this channel: it is not retried, and its items are recorded as not delivered)",
        300..=399 => " (redirects are not followed, a webhook URL must not move; check it)",
        400 | 401 | 403 | 404 | 410 => " (check the webhook URL or URL file; retrying)",
        _ => "",
    };
    Err(SendError {
        message: format!("{reply}{hint}"),
        retry_after: if status.as_u16() == 429 || status.as_u16() == 503 {
            retry_after
        } else {
            None
        },
        // The same bytes would be refused again: retrying would block the channel.
        permanent: status.as_u16() == 413,
    })
}

/// A reqwest error without its URL, with the cause chain.
fn http_error(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    format!("{kind}: {}", vigil_core::error_chain(&e))
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let d = t - vigil_core::now();
    Some(Duration::from_secs(d.whole_seconds().max(0) as u64).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
        assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
        assert_eq!(parse_retry_after("soon"), None);
    }
}
