//! Faults: a copy that rots after it was verified (a flipped byte, size
//! unchanged). Once `vigil-snapshot scrub` has found it, it is no copy: the
//! next runs neither count it (so it cannot displace a good older one) nor
//! prune it (it is the evidence behind the scrub alert).
#![allow(clippy::unwrap_used)]

use super::clock::{assert_no_plaintext, flip_byte, good, stored, Setup, NAMES};
use std::path::PathBuf;
use vigil_tests::*;

fn names(v: &[(PathBuf, serde_json::Value)]) -> Vec<String> {
    v.iter()
        .map(|(a, _)| a.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Issue 14 point 4: keep_last = 2, two runs, then the newer archive of cp-1
/// rots in both stores. After scrub found it, the next run must keep the
/// good older one instead of counting the rotten one as a kept copy.
#[test]
fn a_copy_scrub_found_corrupt_does_not_count_and_is_not_pruned() {
    let s = Setup::new(2, 2);
    let _r1 = s.run(1);
    let r2 = s.run(2);
    let rotten = Setup::made(&r2, "cp-1");
    let rotten_name = rotten.file_name().unwrap().to_owned();
    let rotten_sunk = s.sunk("cp-1").join(&rotten_name);
    let older = stored(&s.local("cp-1"))[1].0.clone();
    let older_sunk = s.sunk("cp-1").join(older.file_name().unwrap());
    flip_byte(&rotten);
    flip_byte(&rotten_sunk);

    // Scrub finds both copies: exit 1, one alert per store.
    let out = vigil("vigil-snapshot", &s.cfg, &["scrub"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("recorded as corrupt"), "{}", text(&out));
    notify_once(&s.cfg);
    let ev = alert_events(&s.alerts);
    for store in ["local", "vault"] {
        let key = format!("scrub_failed{{subject=\"{store}\"}}");
        assert!(
            ev.contains(&("firing".into(), key.clone())),
            "{key}: {ev:?}"
        );
    }
    let ledger: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state().join("corrupt.json")).unwrap()).unwrap();
    assert_eq!(ledger["copies"].as_array().unwrap().len(), 2, "{ledger}");

    // vigil-health: the newest copy of cp-1 that counts is the older good one.
    let fr = s.freshness();
    let older_created = stored(&s.local("cp-1"))[1].1["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    for store in ["local", "vault"] {
        let f = fr
            .iter()
            .find(|f| f["subject"] == format!("cp-1 @ {store}"))
            .unwrap();
        assert!(
            f["reason"].as_str().unwrap().contains(&older_created),
            "{f}"
        );
    }

    // The next run: the rotten copies neither count nor go.
    let r3 = s.run(3);
    let new = Setup::made(&r3, "cp-1");
    for (dir, label) in [(s.local("cp-1"), "local"), (s.sunk("cp-1"), "sink")] {
        let have = names(&stored(&dir));
        assert_eq!(
            have,
            [
                new.file_name().unwrap().to_string_lossy().into_owned(),
                rotten_name.to_string_lossy().into_owned(),
                older.file_name().unwrap().to_string_lossy().into_owned(),
            ],
            "{label}: keep_last 2 must mean two good copies; the rotten one stays as evidence"
        );
    }
    assert!(good(&older, &s.key) && good(&older_sunk, &s.key));
    assert!(good(&new, &s.key));
    // The other members are untouched by cp-1's rot: two copies each.
    for m in &NAMES[1..] {
        assert_eq!(stored(&s.local(m)).len(), 2, "{m}");
        assert_eq!(stored(&s.sunk(m)).len(), 2, "{m}");
    }

    // One more run: now two good newer copies exist, so the older one may go;
    // the rotten one still stays, and scrub still says so.
    let r4 = s.run(4);
    let newest = Setup::made(&r4, "cp-1");
    for dir in [s.local("cp-1"), s.sunk("cp-1")] {
        let have = names(&stored(&dir));
        assert_eq!(have.len(), 3, "{have:?}");
        assert!(have.contains(&rotten_name.to_string_lossy().into_owned()));
        assert!(!dir.join(older.file_name().unwrap()).exists());
    }
    for (a, _) in stored(&s.local("cp-1"))
        .iter()
        .filter(|(a, _)| a.file_name() != Some(&rotten_name))
    {
        assert!(good(a, &s.key), "{}", a.display());
    }
    assert!(good(&newest, &s.key));
    let out = vigil("vigil-snapshot", &s.cfg, &["scrub"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // The administrator removes the rotten copies: scrub passes, the ledger
    // empties, and the alerts resolve.
    for p in [&rotten, &rotten_sunk] {
        std::fs::remove_file(p).unwrap();
        std::fs::remove_file(format!("{}.json", p.display())).unwrap();
    }
    let out = vigil("vigil-snapshot", &s.cfg, &["scrub"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ledger: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state().join("corrupt.json")).unwrap()).unwrap();
    assert!(ledger["copies"].as_array().unwrap().is_empty(), "{ledger}");
    notify_once(&s.cfg);
    let ev = alert_events(&s.alerts);
    for store in ["local", "vault"] {
        let key = format!("scrub_failed{{subject=\"{store}\"}}");
        assert!(
            ev.contains(&("resolved".into(), key.clone())),
            "{key}: {ev:?}"
        );
    }
    assert_no_plaintext(&s.snaps);
    assert_no_plaintext(&s.sink);
}
