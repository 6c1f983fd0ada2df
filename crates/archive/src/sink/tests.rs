use super::*;
use std::os::unix::fs::PermissionsExt;

fn parse(extra: &str, dir: &Path) -> vigil_core::Config {
    let text = format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n[state]\ndir = \"{}\"\n{extra}",
            dir.display()
        );
    vigil_core::Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn azure_and_gcs_clients_build_from_config() {
    let d = tempfile::tempdir().unwrap();
    let sa = d.path().join("sa.json");
    // A service-account file as Google issues it, with a throwaway RSA key.
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl genpkey failed");
    let account = serde_json::json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k",
        "private_key": String::from_utf8(out.stdout).unwrap(),
        "client_email": "vigil@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token"
    });
    std::fs::write(&sa, account.to_string()).unwrap();
    std::fs::set_permissions(&sa, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = parse(
            &format!(
                "[[sink]]\nname = \"blob\"\nkind = \"azure\"\naccount = \"vigilbackups\"\ncontainer = \"etcd\"\naccess_key = \"dGVzdGtleQ==\"\n\n[[sink]]\nname = \"gcs\"\nkind = \"gcs\"\nbucket = \"etcd-backups\"\nservice_account_file = \"{}\"\n",
                sa.display()
            ),
            d.path(),
        );
    for s in cfg.sinks() {
        let sink = Sink::build(s, "prod", d.path()).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert!(sink.streams() && sink.can_delete());
        assert!(sink.location("cp-1", "a.age").contains("prod/cp-1/a.age"));
    }
}

#[test]
fn kind_specific_keys_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n[state]\ndir = \"{}\"\n[[sink]]\nname = \"t\"\nkind = \"tape-dsmc\"\nbucket = \"x\"\n",
            d.path().display()
        );
    let e = vigil_core::Config::parse(&text, Path::new("v.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sink[0].bucket") && e.contains("does not apply"),
        "{e}"
    );
    let e = vigil_core::Config::parse(
        &text.replace(
            "kind = \"tape-dsmc\"\nbucket = \"x\"",
            "kind = \"s3\"\nbucket = \"x\"",
        ),
        Path::new("v.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("sink[0].access_key_id") && e.contains("required"),
        "{e}"
    );
    let e = vigil_core::Config::parse(
            &text.replace("kind = \"tape-dsmc\"\nbucket = \"x\"", "kind = \"s3\"\nbucket = \"x\"\naccess_key_id = \"a\"\nsecret_access_key = \"TOPSECRET\"\nendpoint = \"http://rgw:80\""),
            Path::new("v.toml"),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("allow_http") && !e.contains("TOPSECRET"), "{e}");
    let s3 = "kind = \"s3\"\nbucket = \"x\"\naccess_key_id = \"a\"\nsecret_access_key = \"s\"";
    for (lock, want) in [
        (
            "object_lock = { mode = \"compliance\", days = 0 }",
            "key `sink[0].object_lock.days`: must be between 1 and 36500",
        ),
        (
            "object_lock = { mode = \"legal-hold\", days = 3 }",
            "unknown variant `legal-hold`",
        ),
        (
            "object_lock = { mode = \"compliance\", days = 3, years = 1 }",
            "unknown field `years`",
        ),
    ] {
        let e = vigil_core::Config::parse(
            &text.replace(
                "kind = \"tape-dsmc\"\nbucket = \"x\"",
                &format!("{s3}\n{lock}"),
            ),
            Path::new("v.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{lock}: {e}");
    }
    let e = vigil_core::Config::parse(
        &text.replace(
            "kind = \"tape-dsmc\"\nbucket = \"x\"",
            "kind = \"dir\"\npath = \"/srv/x\"\nobject_lock = { mode = \"compliance\", days = 3 }",
        ),
        Path::new("v.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("sink[0].object_lock") && e.contains("does not apply to kind \"dir\""),
        "{e}"
    );
    let ok = text.replace(
        "kind = \"tape-dsmc\"\nbucket = \"x\"",
        &format!("{s3}\nobject_lock = {{ mode = \"governance\", days = 30 }}"),
    );
    let cfg = vigil_core::Config::parse(&ok, Path::new("v.toml")).unwrap();
    let sink = Sink::build(cfg.sinks().next().unwrap(), "prod", d.path()).unwrap();
    assert!(sink.locks());
}

/// A copy that is not there is its own error kind, so restore moves to
/// the next source without reading the message (object store and dir).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_missing_copy_is_not_found() {
    let d = tempfile::tempdir().unwrap();
    let cfg = parse(
            &format!(
                "[[sink]]\nname = \"nfs\"\nkind = \"fs\"\npath = \"{0}/fs\"\n\n[[sink]]\nname = \"backuppc\"\nkind = \"dir\"\npath = \"{0}/dir\"\n",
                d.path().display()
            ),
            d.path(),
        );
    for s in cfg.sinks() {
        std::fs::create_dir_all(d.path().join(if s.name == "nfs" { "fs" } else { "dir" })).unwrap();
        let sink = Sink::build(s, "prod", d.path()).unwrap();
        match sink.open("cp-1", "prod-cp-1-x.db.zst.age").await {
            Err(SinkError::NotFound { sink, key }) => {
                assert_eq!(sink, s.name);
                assert!(key.ends_with("cp-1/prod-cp-1-x.db.zst.age"), "{key}");
            }
            Err(e) => panic!("{}: {e}", s.name),
            Ok(_) => panic!("{}: opened a missing copy", s.name),
        }
    }
}

#[test]
fn a_skewed_clock_is_named() {
    let e = std::io::Error::other(
        "Client error with status 403 Forbidden: <Error><Code>RequestTimeTooSkewed</Code></Error>",
    );
    let m = SinkError::store("rgw", "uploading", "prod/cp-1/x", &e).to_string();
    assert!(m.starts_with("sink rgw: uploading prod/cp-1/x: "), "{m}");
    assert!(
        m.contains("RequestTimeTooSkewed") && m.contains("timedatectl"),
        "{m}"
    );
    let e = std::io::Error::other("403 Forbidden: AccessDenied");
    assert!(!SinkError::store("rgw", "uploading", "k", &e)
        .to_string()
        .contains("timedatectl"));
}

#[test]
fn gcs_and_azure_endpoints_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let sa = d.path().join("sa.json");
    std::fs::write(
        &sa,
        r#"{"client_email": "", "private_key": "", "private_key_id": "", "disable_oauth": true}"#,
    )
    .unwrap();
    std::fs::set_permissions(&sa, std::fs::Permissions::from_mode(0o600)).unwrap();
    let gcs = format!(
        "kind = \"gcs\"\nbucket = \"b\"\nservice_account_file = \"{}\"",
        sa.display()
    );
    let azure = "kind = \"azure\"\naccount = \"a\"\ncontainer = \"c\"";
    let missing = d.path().join("no-ca.pem");
    for (sink, extra, want) in [
        (
            gcs.as_str(),
            "endpoint = \"http://gcs.internal\"",
            "allow_http",
        ),
        (
            gcs.as_str(),
            "endpoint = \"gcs.internal:443\"",
            "must start with https://",
        ),
        (azure, "endpoint = \"http://10.0.0.1/a\"", "allow_http"),
        (
            gcs.as_str(),
            &format!("ca_file = \"{}\"", missing.display()),
            "no-ca.pem",
        ),
    ] {
        let text = format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n[state]\ndir = \"{}\"\n[[sink]]\nname = \"off\"\n{sink}\n{extra}\n",
            d.path().display()
        );
        let e = vigil_core::Config::parse(&text, Path::new("v.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sink[0].") && e.contains(want), "{extra}: {e}");
    }
    // With allow_http, a plain endpoint is the administrator's choice.
    let cfg = parse(
        &format!("[[sink]]\nname = \"off\"\n{gcs}\nendpoint = \"http://127.0.0.1:4443/\"\nallow_http = true\n"),
        d.path(),
    );
    let s = cfg.sinks().next().unwrap();
    Sink::build(s, "prod", d.path()).unwrap_or_else(|e| panic!("{e}"));
}
