//! TLS certificate expiry: every configured TLS endpoint (https etcd
//! members, the Kubernetes API endpoints, `health.certs.endpoints`) and local
//! PEM files (`cluster.tls`, `health.kubernetes` files, `health.certs.files`).
//! Warn at 30 days left and go critical at 7 by default.
//!
//! Endpoints are probed with a handshake that records the presented chain
//! and trusts nothing else: nothing is sent, the chain is only read (trust
//! is what the other checks test). The earliest expiry in a chain counts.

use crate::{fmt_age, fmt_dur, Finding};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_alert::{AlertKey, Severity};
use vigil_core::config::CertHealth;
use vigil_core::Config;

/// What a certificate says about itself that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject_cn: Option<String>,
    /// notAfter, seconds since the epoch.
    pub not_after: i64,
}

/// Reads notAfter and the subject CN from a DER certificate, or says why
/// it is not one. Parsed by RustCrypto's `x509-cert` in its lenient `Raw`
/// profile (its `hazmat` feature): an expiry check must read certificates that a stricter RFC 5280
/// reading would refuse (e.g. a negative serial from an old CA).
pub fn parse_der(der: &[u8]) -> Result<CertInfo, String> {
    use x509_cert::certificate::{CertificateInner, Raw};
    use x509_cert::der::Decode;
    let cert = CertificateInner::<Raw>::from_der(der).map_err(|e| e.to_string())?;
    let tbs = cert.tbs_certificate();
    let not_after = tbs.validity().not_after.to_unix_duration().as_secs();
    let subject_cn = tbs
        .subject()
        .common_name()
        .map_err(|e| format!("subject CN: {e}"))?
        .map(|cn| cn.value().into_owned());
    Ok(CertInfo {
        subject_cn,
        not_after: i64::try_from(not_after).map_err(|_| "notAfter out of range".to_string())?,
    })
}

/// Why certificates could not be read, from a file or an endpoint: the
/// check is then UNKNOWN, with this as its reason.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid PEM: {message}", path.display())]
    Pem {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("{}: a certificate that is not valid X.509 DER: {message}", path.display())]
    Der {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("TLS setup: {0}")]
    Setup(#[source] rustls::Error),
    #[error("{host:?} is not a host name: {source}")]
    HostName {
        host: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {target} failed: {source}")]
    Handshake {
        target: String,
        source: std::io::Error,
    },
    #[error("{target} presented no certificate")]
    NoCertificate { target: String },
    #[error("no TLS handshake with {target} within {}", fmt_dur(*within))]
    Timeout { target: String, within: Duration },
    #[error("{target} presented a certificate that is not valid X.509: {message}")]
    BadCertificate { target: String, message: String },
}

/// Every certificate in a PEM file.
pub fn read_pem(path: &Path) -> Result<Vec<CertInfo>, CertError> {
    let bytes = std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        let c = c.map_err(|e| CertError::Pem {
            path: path.to_path_buf(),
            message: format!("{e:?}"),
        })?;
        out.push(parse_der(&c).map_err(|message| CertError::Der {
            path: path.to_path_buf(),
            message,
        })?);
    }
    Ok(out)
}

// ---- endpoint probe ----

/// Records the presented chain and accepts it: we only read expiry dates.
#[derive(Debug)]
struct Capture {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut c) = self.chain.lock() {
            c.push(end_entity.clone().into_owned());
            c.extend(intermediates.iter().map(|i| i.clone().into_owned()));
        }
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _m: &[u8],
        _c: &CertificateDer<'_>,
        _d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _m: &[u8],
        _c: &CertificateDer<'_>,
        _d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

use vigil_core::endpoint::host_port;

/// Connects and reads the presented chain. Errors are "could not check".
pub async fn probe(host: &str, port: u16, timeout: Duration) -> Result<Vec<CertInfo>, CertError> {
    vigil_core::ensure_crypto_provider();
    let target = format!("{host}:{port}");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let capture = Arc::new(Capture {
        chain: Mutex::new(Vec::new()),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(CertError::Setup)?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|source| CertError::HostName {
        host: host.to_string(),
        source,
    })?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|source| CertError::Connect {
                target: target.clone(),
                source,
            })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        // A server that wants a client certificate may end the handshake
        // after sending its own chain; the chain is what we came for.
        let r = connector.connect(name, tcp).await;
        let chain = capture.chain.lock().map(|c| c.clone()).unwrap_or_default();
        match (r, chain.is_empty()) {
            (_, false) => Ok(chain),
            (Err(source), true) => Err(CertError::Handshake {
                target: target.clone(),
                source,
            }),
            (Ok(_), true) => Err(CertError::NoCertificate {
                target: target.clone(),
            }),
        }
    };
    let chain = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| CertError::Timeout {
            target: target.clone(),
            within: timeout,
        })??;
    chain
        .iter()
        .map(|c| {
            parse_der(c).map_err(|message| CertError::BadCertificate {
                target: target.clone(),
                message,
            })
        })
        .collect()
}

/// PASS/FAIL by the earliest expiry among `certs` (pure, unit-tested).
pub fn judge(f: Finding, certs: &[CertInfo], c: &CertHealth, now: i64) -> Finding {
    let Some(first) = certs.iter().min_by_key(|c| c.not_after) else {
        return f.unknown("no certificate found");
    };
    let left = first.not_after - now;
    let when = time::OffsetDateTime::from_unix_timestamp(first.not_after)
        .map(vigil_core::rfc3339)
        .unwrap_or_default();
    let who = first
        .subject_cn
        .as_deref()
        .map(|cn| format!("CN={cn}"))
        .unwrap_or_else(|| "certificate".into());
    let of = if certs.len() > 1 {
        format!(" (earliest of {} in the chain/file)", certs.len())
    } else {
        String::new()
    };
    if left <= 0 {
        f.fail(
            Severity::Critical,
            format!(
                "{who} EXPIRED {} ago, at {when}{of}; renew it now",
                fmt_age(-left)
            ),
        )
    } else if left < c.critical.get().as_secs() as i64 {
        f.fail(
            Severity::Critical,
            format!(
                "{who} expires in {} ({when}){of}; renew it now",
                fmt_age(left)
            ),
        )
    } else if left < c.warn.get().as_secs() as i64 {
        f.fail(
            Severity::Warning,
            format!(
                "{who} expires in {} ({when}){of}; plan the renewal",
                fmt_age(left)
            ),
        )
    } else {
        f.pass(format!("{who} expires in {} ({when}){of}", fmt_age(left)))
    }
}

/// What is checked: (label, target, covered_by when it is down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Endpoint {
        label: String,
        host: String,
        port: u16,
        /// The check that already alerts when this endpoint is down.
        covered_by: Option<&'static str>,
    },
    File {
        path: PathBuf,
        /// Found in a configured directory: files without certificates are skipped.
        from_dir: bool,
    },
}

fn collect_dir(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if depth > 0 {
                collect_dir(&p, depth - 1, out);
            }
        } else if p
            .extension()
            .is_some_and(|e| e == "crt" || e == "pem" || e == "cert")
        {
            out.push(p);
        }
    }
}

/// Every target of the config, without duplicates.
pub fn targets(cfg: &Config) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    let mut push = |t: Target| {
        if !out.contains(&t) {
            out.push(t);
        }
    };
    for m in cfg.members() {
        if m.endpoint.starts_with("https://") {
            if let Some((host, port)) = host_port(&m.endpoint) {
                push(Target::Endpoint {
                    label: format!("etcd {}", m.name),
                    host,
                    port,
                    covered_by: Some("etcd.reachable"),
                });
            }
        }
    }
    if let Some(k) = &cfg.health.kubernetes {
        for (label, url) in crate::kube::endpoints(k) {
            if let (true, Some((host, port))) = (url.starts_with("https://"), host_port(&url)) {
                push(Target::Endpoint {
                    label: format!("kube {label}"),
                    host,
                    port,
                    covered_by: Some("kube.readyz"),
                });
            }
        }
    }
    for ep in &cfg.health.certs.endpoints {
        if let Some((host, port)) = host_port(ep) {
            push(Target::Endpoint {
                label: format!("{host}:{port}"),
                host,
                port,
                covered_by: None,
            });
        }
    }
    let file = |p: &Path| Target::File {
        path: vigil_core::secret::resolve_path(p),
        from_dir: false,
    };
    if let Some(t) = cfg.tls() {
        push(file(&t.ca));
        if let Some(c) = &t.cert {
            push(file(c));
        }
    }
    if let Some(k) = &cfg.health.kubernetes {
        for p in k.ca.iter().chain(&k.cert) {
            push(file(p));
        }
    }
    for p in &cfg.health.certs.files {
        if p.is_dir() {
            let mut files = Vec::new();
            collect_dir(p, 2, &mut files);
            for f in files {
                push(Target::File {
                    path: f,
                    from_dir: true,
                });
            }
        } else {
            push(file(p));
        }
    }
    out
}

/// Runs the certificate checks.
pub async fn check(cfg: &Config) -> Vec<Finding> {
    let c = &cfg.health.certs;
    let timeout = cfg.health.cert_timeout();
    let now = vigil_core::now().unix_timestamp();
    let jobs = targets(cfg).into_iter().map(|t| async move {
        let started = Instant::now();
        match t {
            Target::Endpoint {
                label,
                host,
                port,
                covered_by,
            } => {
                let f = Finding::new(
                    "cert.endpoint",
                    format!("{label} ({host}:{port})"),
                    AlertKey::new("cert_expiry").label("target", format!("{host}:{port}")),
                );
                let f = match probe(&host, port, timeout).await {
                    Ok(chain) => judge(f, &chain, c, now),
                    Err(e) => match covered_by {
                        Some(by) => f.covered(by, e.to_string()),
                        None => f.unknown(e.to_string()),
                    },
                };
                Some(f.took(started))
            }
            Target::File { path, from_dir } => {
                let f = Finding::new(
                    "cert.file",
                    path.display().to_string(),
                    AlertKey::new("cert_expiry").label("target", path.display().to_string()),
                );
                let f = match read_pem(&path) {
                    Ok(certs) if certs.is_empty() && from_dir => return None,
                    Ok(certs) if certs.is_empty() => {
                        f.unknown(format!("{} holds no PEM certificate", path.display()))
                    }
                    Ok(certs) => judge(f, &certs, c, now),
                    Err(e) => f.unknown(e.to_string()),
                };
                Some(f.took(started))
            }
        }
    });
    futures_util::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn not_a_certificate_is_named() {
        let e = parse_der(b"\x30\x03\x02\x01\x01").unwrap_err();
        assert!(!e.is_empty());
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.pem");
        std::fs::write(
            &p,
            "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let msg = read_pem(&p).unwrap_err().to_string();
        assert!(
            msg.contains("bad.pem") && msg.contains("not valid X.509 DER"),
            "{msg}"
        );
    }

    /// A self-signed P-256 certificate `<name>.pem` (key `<name>.key`) made
    /// by openssl in `dir`; `None` without openssl (the integration tests need it anyway).
    fn self_signed(dir: &Path, name: &str, days: &str, subj: &str) -> Option<()> {
        let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
        let o = std::process::Command::new("openssl")
            .current_dir(dir)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes", "-keyout", &key, "-out", &cert, "-days", days, "-subj", subj,
            ])
            .output()
            .ok()?;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Some(())
    }

    #[test]
    fn openssl_certificate_parses() {
        let dir = tempfile::tempdir().unwrap();
        if self_signed(dir.path(), "c", "3", "/O=vigil/CN=vigil-unit").is_none() {
            return;
        }
        let certs = read_pem(&dir.path().join("c.pem")).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].subject_cn.as_deref(), Some("vigil-unit"));
        let left = certs[0].not_after - vigil_core::now().unix_timestamp();
        assert!((3 * 86400 - 120..=3 * 86400 + 5).contains(&left), "{left}");
        // The key file has no certificate.
        assert!(read_pem(&dir.path().join("c.key")).unwrap().is_empty());
        // Past 2049 notAfter is a GeneralizedTime, not a UTCTime (RFC 5280).
        self_signed(dir.path(), "c2", "10000", "/O=vigil").unwrap();
        let certs = read_pem(&dir.path().join("c2.pem")).unwrap();
        assert_eq!(certs[0].subject_cn, None);
        let left = certs[0].not_after - vigil_core::now().unix_timestamp();
        assert!(
            (10000 * 86400 - 120..=10000 * 86400 + 5).contains(&left),
            "{left}"
        );
    }

    #[test]
    fn thresholds() {
        let c = CertHealth::default();
        let f = || Finding::new("cert.file", "x", AlertKey::new("cert_expiry"));
        let cert = |d: i64| CertInfo {
            subject_cn: Some("x".into()),
            not_after: 1_000_000 + d * 86400,
        };
        let j = |d: i64| judge(f(), &[cert(d)], &c, 1_000_000);
        assert_eq!(j(90).status, Status::Pass);
        assert_eq!(
            (j(20).status, j(20).severity),
            (Status::Fail, Severity::Warning)
        );
        assert_eq!(
            (j(3).status, j(3).severity),
            (Status::Fail, Severity::Critical)
        );
        assert!(j(-1).reason.contains("EXPIRED"));
        // The earliest in a chain counts.
        let r = judge(f(), &[cert(300), cert(2)], &c, 1_000_000);
        assert_eq!(r.severity, Severity::Critical);
        assert!(r.reason.contains("earliest of 2"));
        assert_eq!(judge(f(), &[], &c, 0).status, Status::Unknown);
    }
}
