//! `kind = "azure"`: Azure Blob Storage.

use super::{KindOptions, VerifyMode, OBJECT};
use crate::config::kinds::{Cx, RawKind};
use crate::config::ConfigError;
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// Azure Blob Storage.
#[derive(Debug, Deserialize)]
// Unknown keys are refused by `RawSink::resolve`, which sees every key (see
// `RawSink::keys`).
pub(in crate::config) struct RawAzure {
    account: Option<String>,
    container: Option<String>,
    access_key: Option<Secret>,
    access_key_file: Option<PathBuf>,
    /// Another endpoint than `https://<account>.blob.core.windows.net` (Azurite, a private link), with the account in the path.
    endpoint: Option<String>,
    /// Let `endpoint` be plain http:// (a store on loopback). The archives
    /// stay encrypted, but credentials and names travel in the clear.
    allow_http: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct AzureSink {
    pub account: String,
    pub container: String,
    /// None: the environment's credentials (managed identity, ...).
    pub access_key: Option<Secret>,
    pub endpoint: Option<String>,
    pub allow_http: bool,
}

impl RawKind for RawAzure {
    type Settings = AzureSink;
    const SHARED: &'static [&'static str] = OBJECT;

    fn resolve(self, cx: &Cx) -> Result<AzureSink, ConfigError> {
        let account = cx.required("account", self.account)?;
        let container = cx.required("container", self.container)?;
        let access_key = if self.access_key.is_some() || self.access_key_file.is_some() {
            Some(cx.v.inline_or_file(
                cx.key,
                "access_key",
                &self.access_key,
                &self.access_key_file,
                cx.span.clone(),
            )?)
        } else {
            None
        };
        let allow_http = self.allow_http.unwrap_or(false);
        cx.endpoint(self.endpoint.as_deref(), allow_http)?;
        Ok(AzureSink {
            account,
            container,
            access_key,
            endpoint: self.endpoint,
            allow_http,
        })
    }
}

impl KindOptions for AzureSink {
    /// TLS protects the bytes in transit; scrub reads copies back.
    fn default_verify(&self) -> VerifyMode {
        VerifyMode::Size
    }
}
