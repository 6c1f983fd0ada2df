//! An alert database that an older vigil filled with a webhook token (a
//! server echoed it in its error body): `vigil-notify run` removes it, from
//! the rows and from the file's bytes, and the alerts still deliver.

use vigil_tests::notify::*;

const TOKEN: &str = "T0OLDLEAK/B0OLDLEAK/oldleakedtoken4711";

fn raw(state: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["alerts.db", "alerts.db-wal"] {
        all.extend(std::fs::read(state.join(f)).unwrap_or_default());
    }
    all
}

fn has(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn notify_run_removes_secrets_left_in_the_database() {
    let d = tempfile::tempdir().expect("tempdir");
    let state = d.path().join("state");
    let slack = Receiver::start(Reply::ok("ok"));
    let cfg_text = format!(
        "{}\n[alert]\ngroup_wait = \"100ms\"\n\n[metrics]\nlisten = \"\"\ntextfile = false\n\n\
         [[alert.channel]]\nname = \"ops-slack\"\nkind = \"slack\"\nwebhook_url = \"{}\"\n",
        config_head(&state),
        slack.url(&format!("/services/{TOKEN}"))
    );
    let (path, cfg) = write_config(d.path(), &cfg_text);
    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes(
            "run-1",
            &[("cp-2", false, vigil_core::outcome::Stage::Stream)],
        ),
    )
    .expect("ingest");
    // What an older vigil stored after a server echoed the token, many
    // times over (each failed attempt rewrote the row).
    let leaked = format!("HTTP 500, body \"{{\\\"token\\\":\\\"{TOKEN}\\\"}}\"");
    {
        let c = rusqlite::Connection::open(state.join("alerts.db")).expect("db");
        for i in 0..20 {
            c.execute(
                "INSERT INTO channel_state (channel, failures, next_attempt_ms, last_error) VALUES ('ops-slack', ?1, 0, ?2)
                 ON CONFLICT (channel) DO UPDATE SET failures = ?1, last_error = ?2",
                rusqlite::params![i, format!("{leaked} #{i}")],
            )
            .expect("channel_state");
            c.execute(
                "UPDATE outbox SET last_error = ?1",
                [format!("{leaked} #{i}")],
            )
            .expect("outbox");
        }
        let facts = serde_json::json!([{"title": "Last error", "value": leaked}]).to_string();
        c.execute(
            "UPDATE alerts SET facts = ?1 WHERE rowid = (SELECT MIN(rowid) FROM alerts)",
            [facts],
        )
        .expect("alerts");
    }
    assert!(
        has(&raw(&state), "oldleakedtoken4711"),
        "the test did not plant the token"
    );

    let out = notify(&path, &["run", "--once", "--timeout", "20s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        slack.delivered().len(),
        1,
        "the queued alert still goes out"
    );
    let status = notify(&path, &["status", "--json"]);
    let all = [
        raw(&state),
        status.stdout.clone(),
        status.stderr.clone(),
        out.stderr.clone(),
    ]
    .concat();
    for s in ["oldleakedtoken4711", "T0OLDLEAK", "B0OLDLEAK"] {
        assert!(!has(&all, s), "{s} is still in alerts.db or status");
    }
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert!(
        st["alerts"].as_array().is_some_and(|a| !a.is_empty()),
        "{st}"
    );
}
