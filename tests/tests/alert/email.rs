#![allow(clippy::unwrap_used)] // tests fail loudly by design
//! Email against Debian's python3-aiosmtpd on loopback: STARTTLS with a test
//! CA, AUTH, several recipients, text and HTML parts, the subject, and
//! threading headers; plus a wrong password and an untrusted certificate.

use std::path::Path;
use std::process::{Command, Stdio};
use vigil_core::outcome::Stage;
use vigil_tests::notify::*;

const PASSWORD: &str = "smtp-pass-SECRET-9f3k";

/// A real SMTP server: STARTTLS required, AUTH PLAIN/LOGIN against one user,
/// each message saved as `<n>.eml` with the envelope in `<n>.rcpt`.
const SERVER: &str = r#"
import asyncio, ssl, sys, os, itertools
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
port, cert, key, outdir, user, password = sys.argv[1:7]
counter = itertools.count(1)
class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        with open(os.path.join(outdir, f"{n}.rcpt"), "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        tmp = os.path.join(outdir, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
        os.rename(tmp, os.path.join(outdir, f"{n}.eml"))
        return "250 2.0.0 Ok: queued as vigil-test"
def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
    return AuthResult(success=ok, handled=False)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=ctx, require_starttls=True,
               authenticator=auth, auth_require_tls=True, auth_required=True)
c.start()
print("ready", flush=True)
try:
    asyncio.get_event_loop().run_forever()
except KeyboardInterrupt:
    pass
"#;

fn smtp_server(dir: &Path, certs: &Certs) -> (Proc, u16, std::path::PathBuf) {
    let port = free_port();
    let script = dir.join("smtpd.py");
    std::fs::write(&script, SERVER).unwrap();
    let out = dir.join("mail");
    std::fs::create_dir_all(&out).unwrap();
    let p = Proc::spawn(
        "aiosmtpd",
        Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&certs.cert)
            .arg(&certs.key)
            .arg(&out)
            .args(["vigil", PASSWORD])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_port(port, 20);
    (p, port, out)
}

fn mails(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(u32, String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u32 = name.strip_suffix(".eml")?.parse().ok()?;
            let body = std::fs::read_to_string(e.path()).ok()?;
            let rcpt = std::fs::read_to_string(dir.join(format!("{n}.rcpt"))).unwrap_or_default();
            Some((n, body, rcpt))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, b, r)| (b, r)).collect()
}

fn header(mail: &str, name: &str) -> Option<String> {
    // Unfold continuation lines first.
    let head = mail
        .split("\r\n\r\n")
        .next()
        .unwrap_or(mail)
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    head.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| {
            l.split_once(':')
                .map(|x| x.1.trim().to_string())
                .unwrap_or_default()
        })
}

fn channel(name: &str, port: u16, ca: Option<&Path>, password: &str) -> String {
    format!(
        r#"
[[alert.channel]]
name = "{name}"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
username = "vigil"
password = "{password}"
from = "vigil <vigil@bastion.example>"
to = ["ops@example.com", "oncall@example.com"]
timeout = "5s"
{}
"#,
        ca.map(|c| format!("ca_file = \"{}\"", c.display()))
            .unwrap_or_default()
    )
}

#[test]
fn email_over_starttls_with_auth_threads_firing_and_resolved() {
    let d = tempfile::tempdir().unwrap();
    let certs = certs(d.path());
    let (_smtpd, port, maildir) = smtp_server(d.path(), &certs);
    let state = d.path().join("state");
    let cfg_text = format!(
        "{}[alert]\nretry_min = \"30s\"\n{}{}{}",
        config_head(&state),
        channel("mail", port, Some(&certs.ca), PASSWORD),
        channel(
            "mail-wrong-password",
            port,
            Some(&certs.ca),
            "not-the-password-SECRET2"
        ),
        channel("mail-untrusted", port, None, PASSWORD),
    );
    let (path, cfg) = write_config(d.path(), &cfg_text);
    let mut output = String::new();

    // test --channel prints the SMTP reply.
    let out = notify(&path, &["test", "--channel", "mail"]);
    output.push_str(&text(&out));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SMTP 250"),
        "{}",
        text(&out)
    );
    let m = mails(&maildir);
    assert_eq!(m.len(), 1);
    assert!(
        header(&m[0].0, "Subject")
            .unwrap()
            .starts_with("[vigil] [TEST] prod:"),
        "{}",
        m[0].0
    );

    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes("run-1", &[("cp-2", false, Stage::Verify)]),
    )
    .unwrap();
    let out = notify(&path, &["run", "--once", "--timeout", "20s"]);
    output.push_str(&text(&out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "two channels cannot deliver: {}",
        text(&out)
    );
    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes("run-2", &[("cp-2", true, Stage::Done)]),
    )
    .unwrap();
    let out = notify(&path, &["run", "--once", "--timeout", "20s"]);
    output.push_str(&text(&out));

    let m = mails(&maildir);
    assert_eq!(m.len(), 3, "test, firing, resolved");
    let (firing, rcpt) = &m[1];
    assert_eq!(
        rcpt.lines().collect::<Vec<_>>(),
        vec!["ops@example.com", "oncall@example.com"]
    );
    // One subject for the whole incident (Gmail threads only on an
    // unchanged subject); the state is the body's first line.
    let subj = header(firing, "Subject").unwrap();
    assert_eq!(
        subj,
        r#"[vigil] prod: snapshot_verification_failed{member="cp-2"}"#
    );
    assert!(firing.contains("[FIRING][CRITICAL] "), "{firing}");
    // RFC 3834, so no autoresponder answers; Outlook's own header too.
    assert_eq!(
        header(firing, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        header(firing, "X-Auto-Response-Suppress").as_deref(),
        Some("All")
    );
    assert_eq!(
        header(firing, "Thread-Topic").as_deref(),
        Some(subj.as_str())
    );
    assert!(header(firing, "Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    assert!(
        firing.contains("Content-Type: text/plain") && firing.contains("Content-Type: text/html")
    );
    assert!(firing.contains("Runbook:") && firing.contains("<table>"));
    let root = header(firing, "Message-ID").unwrap();
    assert!(
        root.ends_with("@bastion.example>"),
        "the sender's domain: {root}"
    );
    let (resolved, _) = &m[2];
    assert_eq!(header(resolved, "Subject").unwrap(), subj);
    assert!(resolved.contains("[RESOLVED] "), "{resolved}");
    assert_eq!(
        header(resolved, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        header(resolved, "In-Reply-To").as_deref(),
        Some(root.as_str()),
        "threaded under the firing email"
    );
    // Outlook: the resolution's Thread-Index is the firing one's plus a response level.
    let index = |m: &str| {
        use base64::Engine as _;
        let v = header(m, "Thread-Index").unwrap_or_else(|| panic!("no Thread-Index: {m}"));
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .unwrap()
    };
    let (fi, ri) = (index(firing), index(resolved));
    assert_eq!((fi.len(), ri.len(), fi[0]), (22, 27, 1));
    assert_eq!(ri[..22], fi[..]);
    assert_eq!(
        header(resolved, "References").as_deref(),
        Some(root.as_str())
    );
    assert_ne!(header(resolved, "Message-ID").unwrap(), root);

    // Lost and duplicates by outbox id (X-Vigil-Items).
    let seen: Vec<i64> = m[1..]
        .iter()
        .filter_map(|(b, _)| header(b, "X-Vigil-Items"))
        .flat_map(|s| {
            s.split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect::<Vec<i64>>()
        })
        .collect();
    let (lost, dups) = count(&outbox_ids(&state, "mail"), &seen);
    eprintln!("email: lost {lost}, duplicates {dups}");
    assert_eq!((lost, dups), (0, 0));

    // Wrong password and an untrusted certificate: nothing delivered, errors
    // say why, and no secret appears anywhere.
    let st = notify(&path, &["status", "--json"]);
    output.push_str(&text(&st));
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let err = |ch: &str| {
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == ch)
            .and_then(|c| c["last_error"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        err("mail-wrong-password").contains("535")
            || err("mail-wrong-password").to_lowercase().contains("auth"),
        "{}",
        err("mail-wrong-password")
    );
    assert!(
        err("mail-untrusted").to_lowercase().contains("certificate"),
        "{}",
        err("mail-untrusted")
    );
    assert!(pending(&state, "mail-wrong-password") >= 1 && pending(&state, "mail-untrusted") >= 1);
    for ch in ["mail-wrong-password", "mail-untrusted"] {
        let out = notify(&path, &["test", "--channel", ch]);
        assert_eq!(out.status.code(), Some(1));
        output.push_str(&text(&out));
    }
    output.push_str(&text(&notify(&path, &["check-config"])));
    assert_no_secret(
        "email outputs",
        &output,
        &[PASSWORD, "not-the-password-SECRET2"],
    );
    assert_eq!(
        mails(&maildir).len(),
        3,
        "nothing went through the broken channels"
    );
}
