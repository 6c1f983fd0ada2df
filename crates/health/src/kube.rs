//! The Kubernetes API: `/readyz` and `/livez` through the load balancer and
//! on each master. A failure carries the `?verbose` body (which lists the
//! failing checks with `[-]`) into the alert.

use crate::http::{self, HttpError};
use crate::Finding;
use std::time::Instant;
use vigil_alert::{AlertKey, Severity};
use vigil_core::config::KubeHealth;
use vigil_core::secret::{read_secret_file, resolve_path};
use vigil_core::Config;

/// Most of a verbose body that goes into an alert.
const BODY_LIMIT: usize = 16 * 1024;
const DETAIL_LIMIT: usize = 3000;

/// (label, base URL) of every endpoint: `lb` first, then each master by URL.
pub fn endpoints(k: &KubeHealth) -> Vec<(String, String)> {
    k.lb.iter()
        .map(|u| ("lb".to_string(), u.trim_end_matches('/').to_string()))
        .chain(k.masters.iter().map(|u| {
            (
                u.trim_end_matches('/').to_string(),
                u.trim_end_matches('/').to_string(),
            )
        }))
        .collect()
}

struct Auth {
    client: reqwest::Client,
    token: Option<String>,
}

/// Why the API server's client could not be set up from `[health.kube]`.
#[derive(Debug, thiserror::Error)]
enum AuthError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] vigil_core::secret::SecretFileError),
    #[error(transparent)]
    Client(#[from] http::ClientError),
}

fn auth(k: &KubeHealth, timeout: std::time::Duration) -> Result<Auth, AuthError> {
    let read = |p: &std::path::Path| {
        let path = resolve_path(p);
        std::fs::read(&path).map_err(|source| AuthError::Read { path, source })
    };
    let ca = k.ca.as_deref().map(read).transpose()?;
    let identity = match (&k.cert, &k.key) {
        (Some(c), Some(key)) => {
            let mut pem = read(c)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            Some(pem)
        }
        _ => None,
    };
    let token = match &k.token_file {
        Some(p) => Some(
            read_secret_file(&resolve_path(p))?
                .expose()
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let client = http::client(timeout, ca.as_deref(), identity.as_deref())?;
    Ok(Auth { client, token })
}

/// The `[-]` lines of a verbose body: the checks that fail.
pub fn failing_lines(body: &str) -> Vec<&str> {
    body.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("[-]"))
        .collect()
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

/// Maps one answer to a finding (pure, unit-tested).
pub fn judge(f: Finding, r: Result<(u16, String), HttpError>, severity: Severity) -> Finding {
    match r {
        Ok((200, body)) => {
            let n = body.lines().filter(|l| l.trim().starts_with("[+]")).count();
            f.pass(if n > 0 {
                format!("ok ({n} checks passed)")
            } else {
                "ok".to_string()
            })
        }
        Ok((code @ (401 | 403), _)) => f.unknown(format!(
            "HTTP {code}: not authorized to ask; please check health.kubernetes token_file or cert/key (the identity needs get on nonResourceURLs /readyz and /livez)"
        )),
        Ok((code, body)) => {
            let failing = failing_lines(&body);
            let reason = if failing.is_empty() {
                format!("HTTP {code}: {}", truncate(body.trim(), 200))
            } else {
                format!("HTTP {code}: {}", failing.join("; "))
            };
            f.fail(severity, reason).detail(truncate(&body, DETAIL_LIMIT))
        }
        Err(HttpError::Timeout(m)) => f.unknown(m),
        Err(HttpError::Transport(m)) => f.fail(severity, format!("not answering: {m}")),
    }
}

/// Runs the API checks; nothing when `[health.kubernetes]` is absent.
pub async fn check(cfg: &Config) -> Vec<Finding> {
    let Some(k) = &cfg.health.kubernetes else {
        return Vec::new();
    };
    let timeout = cfg.health.kube_timeout();
    let eps = endpoints(k);
    let finding = |label: &str, probe: &str| {
        let check = format!("kube.{probe}");
        Finding::new(
            &check,
            format!("{label} /{probe}"),
            AlertKey::new("kube_api_unhealthy")
                .label("endpoint", label)
                .label("probe", probe),
        )
        .severity(if label == "lb" {
            Severity::Critical
        } else {
            Severity::Warning
        })
    };
    let a = match auth(k, timeout) {
        Ok(a) => a,
        Err(e) => {
            return eps
                .iter()
                .flat_map(|(label, _)| {
                    k.probes
                        .iter()
                        .map(|p| finding(label, p).unknown(format!("cannot build the client: {e}")))
                        .collect::<Vec<_>>()
                })
                .collect();
        }
    };
    let a = &a;
    let jobs = eps.iter().flat_map(|(label, base)| {
        k.probes.iter().map(move |p| {
            let f = finding(label, p);
            let url = format!("{base}/{p}?verbose");
            async move {
                let started = Instant::now();
                let sev = f.severity;
                let r = http::get(&a.client, &url, a.token.as_deref(), timeout, BODY_LIMIT).await;
                judge(f, r, sev).took(started)
            }
        })
    });
    futures_util::future::join_all(jobs).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Status;

    fn f() -> Finding {
        Finding::new(
            "kube.readyz",
            "lb /readyz",
            AlertKey::new("kube_api_unhealthy"),
        )
    }

    #[test]
    fn verbose_failure_is_in_the_reason_and_detail() {
        let body = "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]informer-sync ok\nreadyz check failed\n";
        let r = judge(f(), Ok((500, body.into())), Severity::Critical);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.reason, "HTTP 500: [-]etcd failed: reason withheld");
        assert!(r.detail.unwrap().contains("[+]informer-sync ok"));
    }

    #[test]
    fn ok_auth_timeout_refused() {
        let r = judge(
            f(),
            Ok((200, "[+]ping ok\n[+]etcd ok\nreadyz check passed\n".into())),
            Severity::Critical,
        );
        assert_eq!(
            (r.status, r.reason.as_str()),
            (Status::Pass, "ok (2 checks passed)")
        );
        assert_eq!(
            judge(f(), Ok((401, String::new())), Severity::Critical).status,
            Status::Unknown
        );
        assert_eq!(
            judge(
                f(),
                Err(HttpError::Timeout("no answer within 1s".into())),
                Severity::Critical
            )
            .status,
            Status::Unknown
        );
        let r = judge(
            f(),
            Err(HttpError::Transport("connection refused".into())),
            Severity::Warning,
        );
        assert_eq!((r.status, r.severity), (Status::Fail, Severity::Warning));
    }

    #[test]
    fn truncation_keeps_char_boundaries() {
        let s = "é".repeat(10);
        assert!(truncate(&s, 5).starts_with("éé"));
    }
}
