//! `[cluster]`: the etcd members vigil backs up, and the TLS material that
//! reaches them.

use super::{ConfigError, Validator};
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: Spanned<String>,
    pub members: Vec<Spanned<MemberConfig>>,
    pub tls: Option<Spanned<TlsConfig>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub name: String,
    pub endpoint: String,
    /// The member's peer URL (`--initial-advertise-peer-urls`) for
    /// `vigil-restore`. Default: the peer URLs recorded in the archive's
    /// manifest; for older archives the endpoint's host with port 2380.
    #[serde(default)]
    pub peer_url: Option<String>,
}

impl MemberConfig {
    /// The peer URL: `peer_url` if set, else the endpoint's scheme and host with port 2380.
    pub fn peer_url(&self) -> String {
        if let Some(p) = &self.peer_url {
            return p.trim().trim_end_matches('/').to_string();
        }
        let ep = self.endpoint.trim().trim_end_matches('/');
        let (scheme, rest) = ep.split_once("://").unwrap_or(("http", ep));
        let host = rest.rsplit_once(':').map(|(h, _)| h).unwrap_or(rest);
        format!("{scheme}://{host}:2380")
    }
}

/// mTLS material for the etcd client. The key is a secret file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Validator<'_> {
    pub(super) fn members(&self, c: &ClusterConfig) -> Result<(), ConfigError> {
        if c.members.is_empty() {
            return Err(self.err(
                "cluster.members",
                Some(c.name.span()),
                "at least one member is required",
            ));
        }
        let mut seen_names = std::collections::HashSet::new();
        let mut seen_eps = std::collections::HashSet::new();
        for (i, m) in c.members.iter().enumerate() {
            let span = m.span();
            let m = m.get_ref();
            let key = format!("cluster.members[{i}]");
            self.name(&format!("{key}.name"), &m.name, span.clone())?;
            if !seen_names.insert(&m.name) {
                return Err(self.err(
                    format!("{key}.name"),
                    Some(span),
                    format!("duplicate member name {:?}", m.name),
                ));
            }
            let ep = m.endpoint.trim();
            if ep.chars().any(char::is_whitespace) {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span.clone()),
                    format!("{ep:?} contains white space; write it as scheme://host:port"),
                ));
            }
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span.clone()),
                    format!("{ep:?} must start with http:// or https://"),
                ));
            }
            if !crate::endpoint::is_http_host_port(ep) {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    format!("{ep:?} must be scheme://host:port, e.g. https://10.0.0.11:2379"),
                ));
            }
            if !seen_eps.insert(ep) {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    format!("duplicate endpoint {ep:?}"),
                ));
            }
            if let Some(p) = &m.peer_url {
                let p = p.trim();
                if !crate::endpoint::is_http_host_port(p) {
                    return Err(self.err(
                        format!("{key}.peer_url"),
                        Some(span),
                        format!("{p:?} must be scheme://host:port, e.g. https://10.0.0.11:2380"),
                    ));
                }
            }
            let https = ep.starts_with("https://");
            if https && c.tls.is_none() {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    "endpoint uses https:// but [cluster.tls] is missing; add ca (and cert/key for mTLS)",
                ));
            }
            if !https && c.tls.is_some() {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    "[cluster.tls] is configured, so endpoints must use https://",
                ));
            }
        }
        Ok(())
    }

    pub(super) fn tls(&self, c: &ClusterConfig) -> Result<(), ConfigError> {
        let Some(t) = &c.tls else { return Ok(()) };
        let span = t.span();
        let t = t.get_ref();
        self.readable("cluster.tls.ca", &t.ca, span.clone())?;
        match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => {
                self.readable("cluster.tls.cert", cert, span.clone())?;
                self.private("cluster.tls.key", key, span)?;
            }
            (None, None) => {}
            _ => {
                return Err(self.err(
                    "cluster.tls",
                    Some(span),
                    "cert and key go together: give both or neither",
                ));
            }
        }
        Ok(())
    }
}
