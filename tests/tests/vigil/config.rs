//! Bad configs: each gets a clear error naming the file, the key and the
//! line, and exit code 2, from every binary.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use vigil_tests::*;

const BINARIES: [&str; 6] = [
    "vigil-journal",
    "vigil-snapshot",
    "vigil-restore",
    "vigil-health",
    "vigil-quota",
    "vigil-notify",
];

fn base(dir: &Path, recipient: &str) -> String {
    format!(
        "[cluster]\nname = \"prod\"\nmembers = [\n  {{ name = \"cp-1\", endpoint = \"http://127.0.0.1:12379\" }},\n  {{ name = \"cp-2\", endpoint = \"http://127.0.0.1:22379\" }},\n]\n\n[snapshot]\ndir = \"{0}/snap\"\nage_recipients = [\"{recipient}\"]\n\n[state]\ndir = \"{0}/state\"\n",
        dir.display()
    )
}

#[test]
fn every_binary_checks_config() {
    let t = tempfile::tempdir().unwrap();
    let key = age_key(t.path());
    let p = t.path().join("vigil.toml");
    std::fs::write(&p, base(t.path(), &key.recipient)).unwrap();
    for b in BINARIES {
        let out = vigil(b, &p, &["check-config"]);
        assert_eq!(out.status.code(), Some(0), "{b}: {}", text(&out));
        assert!(text(&out).contains("is valid"), "{b}");
    }
    let missing = t.path().join("nope.toml");
    for b in BINARIES {
        let out = vigil(b, &missing, &["check-config"]);
        assert_eq!(out.status.code(), Some(2), "{b}");
        assert!(text(&out).contains("nope.toml"), "{b}: {}", text(&out));
    }
}

#[test]
fn bad_configs_exit_2_with_file_key_and_line() {
    let t = tempfile::tempdir().unwrap();
    let key = age_key(t.path());
    let good = base(t.path(), &key.recipient);
    let world = t.path().join("world-readable.key");
    std::fs::write(&world, "k").unwrap();
    std::fs::set_permissions(&world, std::fs::Permissions::from_mode(0o644)).unwrap();
    let tls_block = |key_path: &Path| {
        format!(
            "[cluster.tls]\nca = \"/etc/hostname\"\ncert = \"/etc/hostname\"\nkey = \"{}\"\n",
            key_path.display()
        )
    };
    let https = good.replace("http://", "https://");
    let insert_tls = |k: &Path| {
        https.replacen(
            "\n[snapshot]",
            &format!("\n{}\n[snapshot]", tls_block(k)),
            1,
        )
    };
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown key",
            good.replace("[state]\n", "[state]\nretention = 3\n"),
            vec!["retention", ":13:"],
        ),
        (
            "endpoint with a stray space",
            good.replace("http://127.0.0.1:22379", "http://127.0.0.1 :22379"),
            vec!["cluster.members[1].endpoint", "white space", ":5:"],
        ),
        (
            "missing endpoint",
            good.replace(", endpoint = \"http://127.0.0.1:22379\"", ""),
            vec!["endpoint", ":5:"],
        ),
        (
            "bad recipient",
            good.replace(&key.recipient, "age1bogus"),
            vec!["snapshot.age_recipients[0]", ":10:"],
        ),
        (
            "unreadable secret file",
            insert_tls(&t.path().join("missing.key")),
            vec!["cluster.tls.key", "missing.key"],
        ),
        (
            "world-readable secret file",
            insert_tls(&world),
            vec!["cluster.tls.key", "chmod 600", "world-readable.key"],
        ),
        (
            "bad duration",
            good.replace("\n[state]", "timeout = \"soon\"\n[state]"),
            vec!["invalid duration", "key `snapshot.timeout`", ":11:"],
        ),
        (
            "unquoted numeric secret",
            format!("{good}\n[[alert.channel]]\nname = \"s\"\nkind = \"slack\"\nwebhook_url = 77123456789\n"),
            vec!["must be a quoted string", "not shown"],
        ),
        (
            "SMTP password without TLS to a remote relay",
            format!(
                "{good}\n[[alert.channel]]\nname = \"m\"\nkind = \"email\"\nsmtp_host = \"smtp.example.org\"\n\
                 smtp_tls = \"none\"\nusername = \"u\"\npassword = \"p\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\n"
            ),
            vec!["alert.channel[0].smtp_tls", "in clear"],
        ),
    ];
    for (what, text_cfg, wants) in cases {
        let p = t.path().join("bad.toml");
        std::fs::write(&p, &text_cfg).unwrap();
        for b in ["vigil-snapshot", "vigil-health"] {
            let args: &[&str] = if b == "vigil-snapshot" {
                &["run"]
            } else {
                &["check-config"]
            };
            let out = vigil(b, &p, args);
            assert_eq!(out.status.code(), Some(2), "{what} ({b}): {}", text(&out));
            let msg = text(&out);
            assert!(msg.contains("bad.toml"), "{what}: {msg}");
            for w in &wants {
                assert!(msg.contains(w), "{what}: wanted {w:?} in {msg}");
            }
            assert!(
                !msg.contains("77123456789"),
                "{what}: a secret was echoed: {msg}"
            );
        }
    }
}

#[test]
fn config_examples_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            vigil_core::Config::parse_with(&text, &p, vigil_core::config::Uses::NONE)
                .unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 2, "expected config examples in {}", dir.display());
}
