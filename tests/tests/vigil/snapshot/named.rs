//! Named and pinned snapshots, `delete`, and a prune that says why.

use super::NAMES;
use std::path::{Path, PathBuf};
use vigil_tests::etcd::Cluster;
use vigil_tests::*;

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// Every file named `name` under `root`, at any depth.
fn find(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else if e.file_name().to_string_lossy() == name {
                out.push(e.path());
            }
        }
    }
    out
}

/// The stores a test writes: the local dir and two sinks, `keep_last` 2 each.
struct Stores {
    local: PathBuf,
    ltfs: PathBuf,
    nas: PathBuf,
}

impl Stores {
    /// Whether archive `id` (encrypted) has a copy in each store: (local, ltfs, nas).
    fn has(&self, id: &str) -> (bool, bool, bool) {
        let n = format!("{id}.db.zst.age");
        let m = format!("{n}.json");
        let both = |root: &Path| {
            let (a, j) = (find(root, &n), find(root, &m));
            assert_eq!(
                a.len(),
                j.len(),
                "{id}: archive without manifest in {root:?}"
            );
            !a.is_empty()
        };
        (both(&self.local), both(&self.ltfs), both(&self.nas))
    }
}

fn setup(t: &Path, cluster: &Cluster) -> (PathBuf, Stores) {
    let key = age_key(t);
    let mut cb = ConfigBuilder::new(t, cluster.config_members(), &key.recipient);
    let (ltfs, nas) = (t.join("ltfs"), t.join("nas"));
    cb.extra_snapshot = "keep_last = 2\n".into();
    cb.extra = format!(
        "\n[[sink]]\nname = \"ltfs\"\nkind = \"dir\"\npath = \"{}\"\nkeep_last = 2\n\n[[sink]]\nname = \"nas\"\nkind = \"fs\"\npath = \"{}\"\nkeep_last = 2\n",
        ltfs.display(),
        nas.display()
    );
    let cfg = cb.write("vigil.toml");
    let stores = Stores {
        local: cb.snapshot_dir.clone(),
        ltfs,
        nas,
    };
    (cfg, stores)
}

fn run(cfg: &Path, cluster: &Cluster, seed: u64, args: &[&str]) -> serde_json::Value {
    cluster.put_many("/registry/configmaps/", 5, 64, true, seed);
    let mut a = vec!["run", "--json"];
    a.extend_from_slice(args);
    let out = vigil("vigil-snapshot", cfg, &a);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    json(&out)
}

/// The archive id of each member in a run's report.
fn ids(report: &serde_json::Value) -> Vec<String> {
    report["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manifest"]["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_named_kept_snapshot_survives_retention_everywhere_until_unpinned() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    let (cfg, stores) = setup(t.path(), &cluster);

    // Bad names and a --keep without a name are refused before anything runs.
    for bad in ["bad name", "-x", "ä"] {
        let name = format!("--name={bad}");
        let out = vigil("vigil-snapshot", &cfg, &["run", &name, "--keep"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("pre-upgrade-1.29"), "{}", text(&out));
    }
    let out = vigil("vigil-snapshot", &cfg, &["run", "--keep"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!stores.local.join("cp-1").exists() || archives(&stores.local.join("cp-1")).is_empty());

    let r = run(&cfg, &cluster, 1, &["--name", "pre-upgrade", "--keep"]);
    let pinned = ids(&r);
    assert_eq!(r["named"].as_array().unwrap().len(), 3, "{r}");
    assert!(r["named"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["keep"] == true && n["name"] == "pre-upgrade"));
    let state = t.path().join("state/protected.json");
    assert_eq!(
        std::fs::metadata(&state)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap(),
        0o600
    );
    // A name is one run's.
    let out = vigil("vigil-snapshot", &cfg, &["run", "--name", "pre-upgrade"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("already names"), "{}", text(&out));

    let mut later = Vec::new();
    for seed in 2..5 {
        later.push(ids(&run(&cfg, &cluster, seed, &[])));
    }
    for (i, name) in NAMES.iter().enumerate() {
        assert_eq!(
            archives(&stores.local.join(name)).len(),
            3,
            "{name}: 2 + the pinned one"
        );
        assert_eq!(stores.has(&pinned[i]), (true, true, true), "{name}");
        assert_eq!(
            stores.has(&later[0][i]),
            (false, false, false),
            "{name}: beyond keep_last 2"
        );
    }

    // list shows the name and the pin.
    let l = json(&vigil("vigil-snapshot", &cfg, &["list", "--all", "--json"]));
    let row = |id: &str| {
        l["archives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {l}"))
    };
    assert_eq!(row(&pinned[0])["name"], "pre-upgrade");
    assert_eq!(row(&pinned[0])["pinned"], true);
    assert_eq!(row(&later[2][0])["pinned"], false);
    let out = vigil("vigil-snapshot", &cfg, &["list"]);
    assert!(
        text(&out).contains("[pinned: pre-upgrade]"),
        "{}",
        text(&out)
    );

    // prune --dry-run: a reason for every copy in every store, nothing deleted.
    let out = vigil("vigil-snapshot", &cfg, &["prune", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let p = json(&out);
    let local = p["local_verdicts"].as_array().unwrap();
    assert_eq!(local.len(), 9, "{p}");
    for v in local {
        let why = v["reason"].as_str().unwrap();
        if pinned.iter().any(|id| v["id"] == id.as_str()) {
            assert_eq!(why, "pinned: pre-upgrade");
        } else {
            assert!(why.starts_with("last 2: #"), "{v}");
        }
        assert_eq!(v["keep"], true);
    }
    for s in p["sinks"].as_array().unwrap() {
        assert_eq!(s["verdicts"].as_array().unwrap().len(), 9, "{s}");
    }
    let human = text(&vigil("vigil-snapshot", &cfg, &["prune", "--dry-run"]));
    assert_eq!(
        human.matches("keep    (pinned: pre-upgrade)").count(),
        9,
        "{human}"
    );
    assert_eq!(human.matches("keep    (last 2: #").count(), 18, "{human}");

    // Unknown ids and names are errors that say where ids are.
    let out = vigil("vigil-snapshot", &cfg, &["pin", "no-such-archive"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("vigil-snapshot list --all"),
        "{}",
        text(&out)
    );
    let out = vigil("vigil-snapshot", &cfg, &["unpin", "no-such-name"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Unpinned, the dry run says it goes (and still deletes nothing); prune removes it everywhere.
    let out = vigil("vigil-snapshot", &cfg, &["unpin", "pre-upgrade", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["archives"].as_array().unwrap().len(), 3);
    let p = json(&vigil(
        "vigil-snapshot",
        &cfg,
        &["prune", "--dry-run", "--json"],
    ));
    let gone: Vec<&serde_json::Value> = p["local_verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["keep"] == false)
        .collect();
    assert_eq!(gone.len(), 3, "{p}");
    assert!(
        gone.iter().all(|v| v["reason"] == "beyond keep last 2"),
        "{p}"
    );
    assert_eq!(stores.has(&pinned[1]), (true, true, true));
    let out = vigil("vigil-snapshot", &cfg, &["prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("deleted (beyond keep last 2)"),
        "{}",
        text(&out)
    );
    for id in &pinned {
        assert_eq!(stores.has(id), (false, false, false), "{id}");
    }
    // Gone from every store, so the name is forgotten too.
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    for id in &pinned {
        assert!(
            !kept["archives"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == id.as_str()),
            "{id} pruned everywhere but still in protected.json: {kept}"
        );
    }
    // A name without a pin goes with its archives when a run's retention removes them.
    let named_only = ids(&run(&cfg, &cluster, 5, &["--name", "quick"]));
    let out = vigil("vigil-snapshot", &cfg, &["unpin", "quick"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "named, not pinned: {}",
        text(&out)
    );
    for seed in 6..8 {
        run(&cfg, &cluster, seed, &[]);
    }
    for id in &named_only {
        assert_eq!(stores.has(id), (false, false, false), "{id}");
    }
    let kept = std::fs::read_to_string(&state).unwrap();
    assert!(!kept.contains("quick"), "{kept}");
    // The name is free again.
    let last = ids(&run(&cfg, &cluster, 8, &["--name", "quick"]));
    // Pinning an id again works.
    let out = vigil(
        "vigil-snapshot",
        &cfg,
        &["pin", &last[1], "--reason", "INC-4711"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let e = kept["archives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == last[1].as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (e["keep"].clone(), e["reason"].clone()),
        (true.into(), "INC-4711".into()),
        "{kept}"
    );
}

#[test]
fn delete_refuses_the_last_verified_copy_and_a_pin_and_deletes_in_every_store() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    let (cfg, stores) = setup(t.path(), &cluster);
    let first = ids(&run(&cfg, &cluster, 1, &[]));

    // The only copy of cp-1 in each store: refused, nothing deleted.
    let out = vigil("vigil-snapshot", &cfg, &["delete", &first[0]]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let o = text(&out);
    for store in ["local", "ltfs", "nas"] {
        assert!(
            o.contains(&format!(
                "last verified copy of member cp-1 in {store}; --force"
            )),
            "{o}"
        );
    }
    assert_eq!(stores.has(&first[0]), (true, true, true));

    // With a newer archive, it goes from every store; the dry run first deletes nothing.
    let second = ids(&run(&cfg, &cluster, 2, &[]));
    let out = vigil(
        "vigil-snapshot",
        &cfg,
        &["delete", &first[0], "--dry-run", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let d = json(&out);
    assert_eq!(d["copies"].as_array().unwrap().len(), 3, "{d}");
    assert_eq!(stores.has(&first[0]), (true, true, true));
    let out = vigil("vigil-snapshot", &cfg, &["delete", &first[0]]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        text(&out).matches(&format!("deleted {}", first[0])).count(),
        3,
        "{}",
        text(&out)
    );
    assert_eq!(stores.has(&first[0]), (false, false, false));
    assert_eq!(
        stores.has(&first[1]),
        (true, true, true),
        "only the named archive goes"
    );

    // A pinned archive is refused, even with --force.
    let out = vigil("vigil-snapshot", &cfg, &["pin", &first[1]]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = vigil("vigil-snapshot", &cfg, &["delete", &first[1], "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is pinned"), "{}", text(&out));
    assert_eq!(stores.has(&first[1]), (true, true, true));

    // --force takes the last copy; --sink only that sink's.
    let out = vigil(
        "vigil-snapshot",
        &cfg,
        &["delete", &second[2], "--sink", "ltfs"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stores.has(&second[2]), (true, false, true));
    let out = vigil(
        "vigil-snapshot",
        &cfg,
        &["delete", &first[2], "--sink", "ltfs"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the last copy of cp-3 in ltfs: {}",
        text(&out)
    );
    let out = vigil(
        "vigil-snapshot",
        &cfg,
        &["delete", &first[2], "--sink", "ltfs", "--force"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stores.has(&first[2]), (true, false, true));

    let out = vigil("vigil-snapshot", &cfg, &["delete", "nothing-by-that-name"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("vigil-snapshot list --all"),
        "{}",
        text(&out)
    );
    let out = vigil(
        "vigil-snapshot",
        &cfg,
        &["delete", &second[0], "--sink", "nope"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
