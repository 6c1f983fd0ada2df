//! `[cluster]`: the etcd members vigil backs up, and the TLS material that
//! reaches them.

use super::{ConfigError, Validator};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

// `[cluster]` as written, spans kept for the messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClusterConfig {
    /// The cluster's name: part of archive names, sink paths, metrics labels and alerts.
    name: Spanned<String>,
    members: Vec<Spanned<MemberConfig>>,
    tls: Option<Spanned<TlsConfig>>,
}

/// The validated `[cluster]`.
#[derive(Debug)]
pub struct ClusterConfig {
    pub name: String,
    pub members: Vec<MemberConfig>,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The member's name (as etcd knows it, e.g. `cp-1`): archive directories and alerts use it.
    pub name: String,
    /// The member's client URL, `http://` or `https://` (https needs `[cluster.tls]`).
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
        crate::endpoint::with_port(&self.endpoint, 2380)
    }
}

/// mTLS material for the etcd client. The key is a secret file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The CA certificate (PEM) that signed the members' server certificates.
    pub ca: PathBuf,
    /// The client certificate (PEM) vigil presents to the members.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, mode 0600; a relative path is a credential).
    pub key: Option<PathBuf>,
}

impl RawClusterConfig {
    /// Checks the name, the members and the TLS files (opened when `v` says
    /// so), in that order.
    pub(super) fn resolve(self, v: &Validator<'_>) -> Result<ClusterConfig, ConfigError> {
        v.name("cluster.name", self.name.get_ref(), self.name.span())?;
        self.check_members(v)?;
        if let Some(t) = &self.tls {
            t.get_ref().check(v, t.span())?;
        }
        Ok(ClusterConfig {
            name: self.name.into_inner(),
            members: self.members.into_iter().map(Spanned::into_inner).collect(),
            tls: self.tls.map(Spanned::into_inner),
        })
    }

    fn check_members(&self, v: &Validator<'_>) -> Result<(), ConfigError> {
        if self.members.is_empty() {
            return Err(v.err(
                "cluster.members",
                Some(self.name.span()),
                "at least one member is required",
            ));
        }
        let mut seen_names = std::collections::HashSet::new();
        let mut seen_eps = std::collections::HashSet::new();
        for (i, m) in self.members.iter().enumerate() {
            let span = m.span();
            let m = m.get_ref();
            let key = format!("cluster.members[{i}]");
            v.name(&format!("{key}.name"), &m.name, span.clone())?;
            if !seen_names.insert(&m.name) {
                return Err(v.err(
                    format!("{key}.name"),
                    Some(span),
                    format!("duplicate member name {:?}", m.name),
                ));
            }
            let ep = m.endpoint.trim();
            if ep.chars().any(char::is_whitespace) {
                return Err(v.err(
                    format!("{key}.endpoint"),
                    Some(span.clone()),
                    format!("{ep:?} contains white space; write it as scheme://host:port"),
                ));
            }
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return Err(v.err(
                    format!("{key}.endpoint"),
                    Some(span.clone()),
                    format!("{ep:?} must start with http:// or https://"),
                ));
            }
            if !crate::endpoint::is_http_host_port(ep) {
                return Err(v.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    format!("{ep:?} must be scheme://host:port, e.g. https://10.0.0.11:2379"),
                ));
            }
            if !seen_eps.insert(ep) {
                return Err(v.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    format!("duplicate endpoint {ep:?}"),
                ));
            }
            if let Some(p) = &m.peer_url {
                let p = p.trim();
                if !crate::endpoint::is_http_host_port(p) {
                    return Err(v.err(
                        format!("{key}.peer_url"),
                        Some(span),
                        format!("{p:?} must be scheme://host:port, e.g. https://10.0.0.11:2380"),
                    ));
                }
            }
            let https = ep.starts_with("https://");
            if https && self.tls.is_none() {
                return Err(v.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    "endpoint uses https:// but [cluster.tls] is missing; add ca (and cert/key for mTLS)",
                ));
            }
            if !https && self.tls.is_some() {
                return Err(v.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    "[cluster.tls] is configured, so endpoints must use https://",
                ));
            }
        }
        Ok(())
    }
}

impl TlsConfig {
    fn check(&self, v: &Validator<'_>, span: Range<usize>) -> Result<(), ConfigError> {
        v.readable("cluster.tls.ca", &self.ca, span.clone())?;
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                v.readable("cluster.tls.cert", cert, span.clone())?;
                v.private("cluster.tls.key", key, span)?;
            }
            (None, None) => {}
            _ => {
                return Err(v.err(
                    "cluster.tls",
                    Some(span),
                    "cert and key go together: give both or neither",
                ));
            }
        }
        Ok(())
    }
}
