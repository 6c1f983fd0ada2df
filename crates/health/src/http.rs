//! The HTTP client the API and node_exporter checks share: rustls with
//! ring, an optional private CA (then only that CA), an optional client
//! certificate, and a hard timeout.

use std::time::Duration;

use vigil_core::ensure_crypto_provider;

/// What went wrong with a request, for the check to decide PASS/FAIL/UNKNOWN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// No answer in time: could not check.
    Timeout(String),
    /// Refused, reset, TLS failure, ...: the endpoint is not serving.
    Transport(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Timeout(m) | HttpError::Transport(m) => f.write_str(m),
        }
    }
}

/// A reqwest error without its URL (it may hold a token in a query), with causes.
pub fn describe(e: &reqwest::Error) -> String {
    vigil_core::error_chain(e)
}

pub fn classify(e: reqwest::Error, timeout: Duration) -> HttpError {
    if e.is_timeout() {
        HttpError::Timeout(format!("no answer within {}", crate::fmt_dur(timeout)))
    } else {
        HttpError::Transport(describe(&e.without_url()))
    }
}

/// Why a client could not be built from the configured CA and identity.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the CA file is not PEM: {}", describe(.0))]
    CaPem(reqwest::Error),
    #[error("the CA file holds no certificate")]
    CaEmpty,
    #[error("the client certificate or key is not usable PEM: {}", describe(.0))]
    Identity(reqwest::Error),
    #[error("building the HTTP client: {}", describe(.0))]
    Build(reqwest::Error),
}

/// Builds a client. `ca` (PEM) replaces the system roots; `identity` is a
/// PEM certificate followed by its key.
pub fn client(
    timeout: Duration,
    ca: Option<&[u8]>,
    identity: Option<&[u8]>,
) -> Result<reqwest::Client, ClientError> {
    ensure_crypto_provider();
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(format!("vigil-health/{}", vigil_core::VERSION));
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(ClientError::CaPem)?;
        if certs.is_empty() {
            return Err(ClientError::CaEmpty);
        }
        b = b.tls_certs_only(certs);
    }
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem).map_err(ClientError::Identity)?);
    }
    b.build().map_err(ClientError::Build)
}

/// GET a URL: (status, body up to `limit` bytes).
pub async fn get(
    c: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    timeout: Duration,
    limit: usize,
) -> Result<(u16, String), HttpError> {
    let mut req = c.get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let work = async {
        let mut resp = req.send().await.map_err(|e| classify(e, timeout))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(e, timeout))? {
            body.extend_from_slice(&chunk);
            if body.len() >= limit {
                body.truncate(limit);
                break;
            }
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    // reqwest's own timeout covers the whole request; this one guards the body loop too.
    match tokio::time::timeout(timeout + Duration::from_millis(200), work).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Timeout(format!(
            "no answer within {}",
            crate::fmt_dur(timeout)
        ))),
    }
}
