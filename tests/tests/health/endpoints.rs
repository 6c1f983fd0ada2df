//! vigil-health against loopback peers: API servers that answer ok, 500
//! with a verbose body, or hang; a real TLS server whose certificate expires
//! in 3 days; mTLS with a private CA; a real node_exporter and a dead one.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use vigil_tests::health::report::*;
use vigil_tests::health::{node_exporter, s_server, self_signed, Mode, Readyz};

#[test]
fn readyz_ok_failing_with_verbose_body_and_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let token = "s3cr3t-token";
    let ok = Readyz::start(Mode::Ok, Some(token));
    let failing = Readyz::start(Mode::Fail, Some(token));
    let hanging = Readyz::start(Mode::Hang, None);
    let token_file = dir.join("kube-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let alerts = dir.join("alerts.jsonl");
    let extra = format!(
        r#"{}
[[alert.rule]]
alert = "kube_api_unhealthy"
failure_threshold = 1

[health.kubernetes]
lb = "{}"
masters = ["{}", "{}"]
token_file = "{}"
timeout = "1s"
"#,
        base_extra(&alerts),
        ok.url(),
        failing.url(),
        hanging.url(),
        token_file.display()
    );
    let cfg = config(dir, dead_member(), &extra);
    let started = Instant::now();
    let (code, r) = run_json(&cfg, &[]);
    let took = started.elapsed();
    assert_eq!(code, 1);
    // Bounded by the 1 s timeout, although one server never answers.
    assert!(took < Duration::from_secs(8), "the round took {took:?}");

    for p in ["readyz", "livez"] {
        let f = finding(&r, &format!("kube.{p}"), &format!("lb /{p}"));
        assert_eq!(f["status"], "PASS", "{f:#}");
        assert_eq!(f["reason"], "ok (2 checks passed)");
    }
    let fail = finding(&r, "kube.readyz", &format!("{} /readyz", failing.url()));
    assert_eq!(fail["status"], "FAIL");
    assert_eq!(fail["reason"], "HTTP 500: [-]etcd failed: reason withheld");
    assert!(fail["detail"]
        .as_str()
        .unwrap()
        .contains("[+]informer-sync ok"));
    let hang = finding(&r, "kube.readyz", &format!("{} /readyz", hanging.url()));
    assert_eq!(hang["status"], "UNKNOWN", "{hang:#}");
    assert_eq!(hang["reason"], "no answer within 1s");
    assert!(ok
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("GET /readyz?verbose ")));

    // failure_threshold = 1: the alert fired at once, carrying the verbose
    // body; the job queued it and vigil-notify delivers it.
    assert!(
        alert_items(&alerts).is_empty(),
        "the job delivered by itself"
    );
    vigil_tests::notify_once(&cfg);
    let items = alert_items(&alerts);
    let fired: Vec<_> = items
        .iter()
        .filter(|(e, n, l, _)| {
            e == "firing"
                && n == "kube_api_unhealthy"
                && l["endpoint"] == failing.url()
                && l["probe"] == "readyz"
        })
        .collect();
    assert_eq!(fired.len(), 1, "{items:#?}");
    let body = fired[0].3.to_string();
    assert!(body.contains("[-]etcd failed: reason withheld"), "{body}");
    assert!(body.contains("[+]informer-sync ok"), "{body}");
    // The hanging server: could not check, so its own alert is untouched and
    // health_check_unknown is pending (threshold 3), not firing.
    assert!(!items
        .iter()
        .any(|(_, n, l, _)| n == "kube_api_unhealthy" && l["endpoint"] == hanging.url()));
    let pending: Vec<String> = r["alerts"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(
        pending.iter().any(
            |k| k.starts_with("health_check_unknown{alert=\"kube_api_unhealthy\"")
                && k.contains(&hanging.url())
        ),
        "{pending:?}"
    );

    // A wrong token is "could not check", not an API failure.
    std::fs::write(&token_file, "wrong\n").unwrap();
    let (_, r) = run_json(&cfg, &["--no-alert"]);
    let f = finding(&r, "kube.readyz", "lb /readyz");
    assert_eq!(f["status"], "UNKNOWN");
    assert!(f["reason"].as_str().unwrap().contains("HTTP 401"), "{f:#}");
}

#[test]
fn api_with_private_ca_and_client_cert_and_expiring_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // mTLS: a real TLS server that demands a client certificate from our CA.
    let pki = vigil_tests::tls::make(&dir.join("pki"));
    let mtls_port = vigil_tests::free_port();
    let _mtls = s_server(mtls_port, &pki.server_cert, &pki.server_key, Some(&pki.ca));
    // A certificate that expires in 3 days, served and on disk; others on disk.
    let (c3, k3) = self_signed(&dir.join("c3"), "expires-in-3-days", 3);
    let tls_port = vigil_tests::free_port();
    let _tls = s_server(tls_port, &c3, &k3, None);
    let certdir = dir.join("tls");
    std::fs::create_dir_all(&certdir).unwrap();
    let (c20, _) = self_signed(&certdir, "expires-in-20-days", 20);
    let (c400, _) = self_signed(&certdir, "expires-in-400-days", 400);
    let closed = vigil_tests::free_port();
    let extra = format!(
        r#"{}
[health.kubernetes]
masters = ["https://127.0.0.1:{mtls_port}"]
ca = "{}"
cert = "{}"
key = "{}"
probes = ["readyz"]
timeout = "3s"

[health.certs]
endpoints = ["127.0.0.1:{tls_port}", "https://127.0.0.1:{closed}"]
files = ["{}", "{}"]
timeout = "3s"
"#,
        base_extra(&dir.join("alerts.jsonl")),
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display(),
        c3.display(),
        certdir.display(),
    );
    let cfg = config(dir, dead_member(), &extra);
    let (code, r) = run_json(&cfg, &["--no-alert"]);
    assert_eq!(code, 1);
    // Private CA and client certificate: the handshake works, the API answers.
    let api = format!("https://127.0.0.1:{mtls_port}");
    assert_eq!(status(&r, "kube.readyz", &format!("{api} /readyz")), "PASS");

    let get = |check: &str, subject_has: &str| {
        of_check(&r, check)
            .into_iter()
            .find(|f| f["subject"].as_str().unwrap().contains(subject_has))
            .unwrap_or_else(|| panic!("{check} {subject_has}: {r:#}"))
            .clone()
    };
    // The served 3-day certificate: critical (below 7 days).
    let ep = get("cert.endpoint", &format!("127.0.0.1:{tls_port}"));
    assert_eq!(
        (ep["status"].as_str(), ep["severity"].as_str()),
        (Some("FAIL"), Some("critical")),
        "{ep:#}"
    );
    let reason = ep["reason"].as_str().unwrap();
    assert!(
        reason.contains("CN=expires-in-3-days expires in 2d 23h")
            || reason.contains("CN=expires-in-3-days expires in 3d 0h"),
        "{reason}"
    );
    // The API endpoint is checked too: the test PKI lasts 2 days.
    let api_cert = get("cert.endpoint", "kube ");
    assert_eq!(api_cert["status"], "FAIL", "{api_cert:#}");
    // Nobody listens: could not check (an extra endpoint, so it alerts as unknown).
    let dead = get("cert.endpoint", &format!("127.0.0.1:{closed}"));
    assert_eq!(dead["status"], "UNKNOWN");
    assert!(dead.get("covered_by").is_none());
    // Files: named, and found in a directory; configured TLS files are included.
    let f3 = get("cert.file", &c3.display().to_string());
    assert_eq!(f3["severity"], "critical");
    let f20 = get("cert.file", &c20.display().to_string());
    assert_eq!(
        (f20["status"].as_str(), f20["severity"].as_str()),
        (Some("FAIL"), Some("warning"))
    );
    assert_eq!(
        get("cert.file", &c400.display().to_string())["status"],
        "PASS"
    );
    assert_eq!(
        get("cert.file", &pki.client_cert.display().to_string())["status"],
        "FAIL"
    );
    // Keys in the directory are not certificates and are skipped there.
    assert!(!of_check(&r, "cert.file")
        .iter()
        .any(|f| f["subject"].as_str().unwrap().ends_with(".key")));
}

#[test]
fn node_exporter_metrics_and_a_dead_exporter() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = vigil_tests::free_port();
    let _ne = node_exporter(port);
    let dead = vigil_tests::free_port();
    let extra = format!(
        r#"{}
[health.node]
targets = [
  {{ name = "n1", url = "http://127.0.0.1:{port}" }},
  {{ name = "n2", url = "http://127.0.0.1:{dead}/metrics" }},
]
ignore_fstypes = ["tmpfs", "devtmpfs", "nsfs", "squashfs"]
timeout = "3s"
"#,
        base_extra(&dir.join("alerts.jsonl")),
    );
    let cfg = config(dir, dead_member(), &extra);
    let (_, r) = run_json(&cfg, &["--no-alert"]);
    assert_eq!(status(&r, "node.exporter", "n1"), "PASS");
    let fs = of_check(&r, "node.filesystem");
    let root = fs
        .iter()
        .find(|f| f["subject"] == "n1:/")
        .unwrap_or_else(|| panic!("no n1:/ in {fs:#?}"));
    assert_ne!(root["status"], "UNKNOWN", "{root:#}");
    assert!(
        root["reason"].as_str().unwrap().contains("free on /"),
        "{root:#}"
    );
    for check in ["node.memory", "node.load"] {
        let f = finding(&r, check, "n1");
        assert_ne!(f["status"], "UNKNOWN", "{f:#}");
    }
    assert!(finding(&r, "node.load", "n1")["reason"]
        .as_str()
        .unwrap()
        .contains("per core"));
    // The dead exporter FAILs; its metrics are "could not check", explained by it.
    let d = finding(&r, "node.exporter", "n2");
    assert_eq!(d["status"], "FAIL");
    assert_eq!(d["alert"], r#"node_exporter_down{node="n2"}"#);
    assert_eq!(
        finding(&r, "node.memory", "n2")["covered_by"],
        "node.exporter"
    );
}
