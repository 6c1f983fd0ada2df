//! S3 Object Lock and an append-only key, against a real radosgw: what a
//! stolen bastion's own S3 key can and cannot do to the off-site copies.

use super::*;

const OWNER: (&str, &str) = (ACCESS_KEY, SECRET_KEY);
/// The bastion's key in the documented setup: put and read, no delete.
const BASTION: (&str, &str) = ("BASTIONKEY", "BASTIONSECRET");

/// What README.md's "Off-site copies a stolen bastion cannot delete" gives
/// the bastion's user: everything a run, prune and restore read or write,
/// and no s3:DeleteObject / s3:DeleteObjectVersion. On radosgw an object
/// belongs to the user who uploaded it, so the offline-held owner key is
/// granted the bucket's objects too.
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam:::user/bastion"]},"Action":["s3:ListBucket","s3:ListBucketVersions","s3:ListBucketMultipartUploads","s3:ListMultipartUploadParts","s3:AbortMultipartUpload","s3:GetBucketObjectLockConfiguration","s3:PutObject","s3:GetObject","s3:GetObjectVersion","s3:PutObjectRetention","s3:GetObjectRetention"],"Resource":["arn:aws:s3:::vault","arn:aws:s3:::vault/*"]},{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam:::user/vigil"]},"Action":["s3:*"],"Resource":["arn:aws:s3:::vault","arn:aws:s3:::vault/*"]}]}"#;

fn lock_sink(rgw: &Rgw, bucket: &str, key: (&str, &str), keep_last: u32) -> String {
    format!(
        "\n[[sink]]\nname = \"vault\"\nkind = \"s3\"\nendpoint = \"{}\"\nallow_http = true\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\nprefix = \"vigil\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\npath_style = true\npart_size = \"5MiB\"\nretries = 1\nretry_timeout = \"2s\"\ntimeout = \"30s\"\nkeep_last = {keep_last}\nobject_lock = {{ mode = \"governance\", days = 1 }}\n",
        rgw.endpoint(),
        key.0,
        key.1
    )
}

/// (version id, is a delete marker) of exactly `key`, from curl.
fn versions(rgw: &Rgw, bucket: &str, key: &str) -> Vec<(String, bool)> {
    let (st, _, body) = rgw.curl(
        OWNER,
        "GET",
        &format!("/{bucket}?prefix={}&versions=", key.replace('/', "%2F")),
        &[],
        None,
    );
    assert_eq!(st, 200, "{body}");
    let tag = |s: &str, t: &str| {
        s.split_once(&format!("<{t}>"))
            .and_then(|(_, r)| r.split_once(&format!("</{t}>")))
            .map(|(v, _)| v.to_string())
    };
    let mut out = Vec::new();
    for (open, marker) in [("<Version>", false), ("<DeleteMarker>", true)] {
        for part in body.split(open).skip(1) {
            if tag(part, "Key").as_deref() == Some(key) {
                out.push((tag(part, "VersionId").unwrap(), marker));
            }
        }
    }
    out
}

fn retention(rgw: &Rgw, bucket: &str, key: &str, version: &str) -> String {
    let (st, _, body) = rgw.curl(
        OWNER,
        "GET",
        &format!("/{bucket}/{key}?retention=&versionId={version}"),
        &[],
        None,
    );
    assert_eq!(st, 200, "{key}: {body}");
    body
}

/// Keys (archive, manifest) of one member's copies in the bucket, oldest first.
fn copies(rgw: &Rgw, bucket: &str, member: &str) -> Vec<(String, String)> {
    let mut v: Vec<String> = rgw
        .ls(&format!("s3://{bucket}/vigil/prod/{member}/"))
        .into_iter()
        .map(|(k, _)| k.trim_start_matches(&format!("s3://{bucket}/")).to_string())
        .filter(|k| k.ends_with(".age"))
        .collect();
    v.sort();
    v.into_iter()
        .map(|a| (a.clone(), format!("{a}.json")))
        .collect()
}

#[test]
fn object_lock_and_an_append_only_key_against_ceph_radosgw() {
    let t = tempfile::tempdir().unwrap();
    let rgw = Rgw::start(&t.path().join("ceph"));
    rgw.add_user("bastion", BASTION.0, BASTION.1);
    let (st, _, body) = rgw.curl(
        OWNER,
        "PUT",
        "/vault",
        &["x-amz-bucket-object-lock-enabled: true"],
        None,
    );
    assert_eq!(st, 200, "{body}");
    let (st, _, body) = rgw.curl(OWNER, "PUT", "/vault?policy=", &[], Some(POLICY));
    assert!(st == 200 || st == 204, "{st} {body}");
    rgw.make_bucket("plain");

    let cluster = Cluster::start(t.path(), &NAMES, None);
    // Above the 5 MiB part size: multipart uploads with checksums.
    cluster.put_many("/registry/secrets/", 6000, 1024, true, 21);
    let key = age_key(t.path());
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    let textdir = t.path().join("textfile");
    std::fs::create_dir(&textdir).unwrap();
    cb.extra = format!(
        "\n[metrics]\ntextfile_dir = \"{}\"\nlisten = \"\"\n{}",
        textdir.display(),
        lock_sink(&rgw, "vault", BASTION, 1)
    );
    let cfg = cb.write("vigil.toml");
    cb.extra = lock_sink(&rgw, "vault", OWNER, 1);
    let owner_cfg = cb.write("owner.toml");

    // 1. Every archive and manifest is locked (one version each) for a day.
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["sinks"][0]["ok"], true, "{r}");
    assert_eq!(r["sinks"][0]["copies"], 3, "{r}");
    let first = copies(&rgw, "vault", "cp-1");
    for m in NAMES {
        let c = copies(&rgw, "vault", m);
        assert_eq!(c.len(), 1, "{m}: {c:?}");
        for k in [&c[0].0, &c[0].1] {
            let v = versions(&rgw, "vault", k);
            assert_eq!(v.len(), 1, "{k}: {v:?}");
            let body = retention(&rgw, "vault", k, &v[0].0);
            assert!(body.contains("<Mode>GOVERNANCE</Mode>"), "{k}: {body}");
            let until = body
                .split_once("<RetainUntilDate>")
                .and_then(|(_, r)| r.split_once('<'))
                .map(|(d, _)| d)
                .unwrap_or_else(|| panic!("{k}: {body}"));
            let until =
                time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            let day = time::Duration::days(1);
            let now = vigil_core::now();
            assert!(
                until > now + day - time::Duration::minutes(10) && until <= now + day,
                "{k}: not locked for a day from its upload: {body}"
            );
        }
    }

    // 2. check-sink names both protections.
    let out = vigil("vigil-snapshot", &cfg, &["check-sink", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let c = json(&out);
    assert_eq!(c[0]["bucket_lock"], "enabled", "{c}");
    assert_eq!(c[0]["vigil_lock"], "GOVERNANCE 1 days", "{c}");
    assert!(
        c[0]["deletes"].as_str().unwrap().starts_with("refused"),
        "{c}"
    );
    assert_eq!(c[0]["copies"], 3, "{c}");
    let out = vigil("vigil-snapshot", &owner_cfg, &["check-sink"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("deletes:     allowed"),
        "{}",
        text(&out)
    );
    // The owner's delete probe left no delete marker behind.
    assert!(
        versions(&rgw, "vault", "vigil/prod/.vigil-delete-probe").is_empty(),
        "probe left a marker"
    );

    // 3. keep_last = 1, but the older copies are locked: kept, counted, reported.
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    let s = &r["sinks"][0];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["pruned"].as_array().unwrap().len(), 0, "{s}");
    assert_eq!(s["locked"].as_array().unwrap().len(), 3, "{s}");
    assert!(
        s["locked"][0]
            .as_str()
            .unwrap()
            .contains("(locked until 20"),
        "{s}"
    );
    assert_eq!(s["copies"], 6, "{s}");
    let out = vigil("vigil-snapshot", &cfg, &["prune", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(
        o.contains("would prune 0") && o.matches("locked until").count() == 3,
        "{o}"
    );
    let out = vigil("vigil-snapshot", &cfg, &["list", "--all", "--json"]);
    let l = json(&out);
    for a in l["archives"].as_array().unwrap() {
        let vault = a["locations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["store"] == "vault")
            .unwrap_or_else(|| panic!("{a}"));
        assert!(vault["locked_until"].as_str().is_some(), "{a}");
    }

    // 3b. `delete` of a locked copy: refused with the date, and the
    //     bastion's own copy stays with it.
    let (archive, _) = &first[0];
    let file = archive.rsplit('/').next().unwrap();
    let id = file.trim_end_matches(".db.zst.age");
    let local = cb.snapshot_dir.join("cp-1").join(file);
    assert!(local.exists(), "{local:?}");
    let out = vigil("vigil-snapshot", &cfg, &["delete", id, "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let o = text(&out);
    assert!(o.contains("is under Object Lock until 20"), "{o}");
    assert!(o.contains("stays until it is"), "{o}");
    assert!(local.exists(), "{o}");
    assert_eq!(versions(&rgw, "vault", archive).len(), 1);

    // 4. The bastion's key against the oldest copy: no delete (by version or
    //    not), and an overwrite leaves the locked version as it was.
    let (archive, manifest) = &first[0];
    let v = versions(&rgw, "vault", archive)[0].0.clone();
    let (st, _, body) = rgw.curl(
        BASTION,
        "DELETE",
        &format!("/vault/{archive}?versionId={v}"),
        &[],
        None,
    );
    assert_eq!(st, 403, "{body}");
    let (st, _, body) = rgw.curl(BASTION, "DELETE", &format!("/vault/{archive}"), &[], None);
    assert_eq!(st, 403, "{body}");
    // The owner's key cannot delete the locked version either.
    let (st, _, body) = rgw.curl(
        OWNER,
        "DELETE",
        &format!("/vault/{archive}?versionId={v}"),
        &[],
        None,
    );
    assert_eq!((st, body.contains("AccessDenied")), (403, true), "{body}");
    let (st, head, _) = rgw.curl(
        BASTION,
        "PUT",
        &format!("/vault/{archive}"),
        &[],
        Some("overwritten"),
    );
    assert_eq!(st, 200, "{head}");
    let got = t.path().join("original.age");
    let o = Command::new("curl")
        .args(["-s", "-o"])
        .arg(&got)
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg(format!("{}:{}", OWNER.0, OWNER.1))
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("{}/vault/{archive}?versionId={v}", rgw.endpoint()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            cb.snapshot_dir
                .join("cp-1")
                .join(format!("{}.json", archive.rsplit('/').next().unwrap())),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sha256_hex(&got), m["archive_sha256"].as_str().unwrap());
    // The bastion's key also forges the manifest, and the owner's key (no
    // policy) hides cp-2's oldest copy behind delete markers. vigil reads
    // the first version of each key: both copies are still there as written.
    let (st, _, body) = rgw.curl(
        BASTION,
        "PUT",
        &format!("/vault/{manifest}"),
        &[],
        Some("{}"),
    );
    assert_eq!(st, 200, "{body}");
    let (a2, m2) = &copies(&rgw, "vault", "cp-2")[0];
    for k in [m2, a2] {
        let (st, _, body) = rgw.curl(OWNER, "DELETE", &format!("/vault/{k}"), &[], None);
        assert_eq!(st, 204, "{k}: {body}");
        assert!(versions(&rgw, "vault", k).iter().any(|(_, marker)| *marker));
    }
    assert!(
        copies(&rgw, "vault", "cp-2").len() == 1,
        "s3cmd should no longer see it"
    );
    let out = vigil("vigil-snapshot", &cfg, &["list", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let l = json(&out);
    let in_vault = |l: &serde_json::Value| {
        l["archives"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                a["locations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["store"] == "vault" && c["verified"] == true)
            })
            .count()
    };
    assert_eq!(in_vault(&l), 6, "{l}");

    // 5. A restore (of the overwritten copy) and a scrub read the locked
    //    copies as vigil wrote them.
    let snap = t.path().join("cp-1.db");
    let out = vigil(
        "vigil-restore",
        &cfg,
        &[
            "fetch",
            "--archive",
            m["id"].as_str().unwrap(),
            "--member",
            "cp-1",
            "--source",
            "vault",
            "--identity",
            key.identity_file.to_str().unwrap(),
            "--out",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let st = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(&snap)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", text(&st));
    assert_eq!(sha256_hex(&snap), m["snapshot_sha256"].as_str().unwrap());
    let out = vigil(
        "vigil-snapshot",
        &cfg,
        &["scrub", "--sink", "vault", "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "scrub of locked copies: {}",
        text(&out)
    );

    // 6. The oldest cp-1 copy's lock ends (the owner shortens the governance
    //    lock). The bastion's key may not delete it: left to lifecycle, not
    //    an error. The owner's key deletes every version, leaving no marker.
    let soon_at = vigil_core::now() + time::Duration::seconds(5);
    let soon = vigil_core::rfc3339(soon_at);
    for k in [archive, manifest] {
        for (id, _) in versions(&rgw, "vault", k) {
            let (st, _, body) = rgw.curl(
                OWNER,
                "PUT",
                &format!("/vault/{k}?retention=&versionId={id}"),
                &["x-amz-bypass-governance-retention: true"],
                Some(&format!(
                    "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>{soon}</RetainUntilDate></Retention>"
                )),
            );
            assert_eq!(st, 200, "{k}: {body}");
        }
    }
    let left = soon_at - vigil_core::now() + time::Duration::seconds(1);
    std::thread::sleep(Duration::from_secs_f64(left.as_seconds_f64().max(0.0)));
    // A scheduled run with the bastion's key: it succeeds, and says what it left.
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    let s = &r["sinks"][0];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["left"].as_array().unwrap().len(), 1, "{s}");
    assert!(
        s["left"][0].as_str().unwrap().contains(archive.as_str())
            && s["left"][0]
                .as_str()
                .unwrap()
                .contains("not allowed; left to the bucket's lifecycle rules"),
        "{s}"
    );
    // cp-1's second copy, and both older copies of cp-2 and cp-3.
    assert_eq!(s["locked"].as_array().unwrap().len(), 5, "{s}");
    assert_eq!(s["errors"].as_array().unwrap().len(), 0, "{s}");
    assert_eq!(
        versions(&rgw, "vault", archive).len(),
        2,
        "nothing deleted: the original and the overwrite"
    );
    let metrics = std::fs::read_to_string(textdir.join("vigil_snapshot_prod.prom")).unwrap();
    for (name, want) in [
        ("vigil_snapshot_sink_left_to_lifecycle", "1"),
        ("vigil_snapshot_sink_locked", "5"),
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{")) && l.ends_with(&format!(" {want}"))),
            "{name} {want}: {metrics}"
        );
    }
    let out = vigil("vigil-snapshot", &owner_cfg, &["prune", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = &json(&out)["sinks"][0];
    assert_eq!(s["pruned"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["locked"].as_array().unwrap().len(), 5, "{s}");
    for k in [archive, manifest] {
        assert!(
            versions(&rgw, "vault", k).is_empty(),
            "{k} left versions or markers"
        );
    }

    // 7. The same append-only policy on a bucket without Object Lock, and a
    //    sink without object_lock: runs succeed, retention says what it left,
    //    and the bastion's key cannot delete a copy.
    let (st, _, body) = rgw.curl(OWNER, "PUT", "/drop", &[], None);
    assert_eq!(st, 200, "{body}");
    let (st, _, body) = rgw.curl(
        OWNER,
        "PUT",
        "/drop?policy=",
        &[],
        Some(&POLICY.replace("vault", "drop")),
    );
    assert!(st == 200 || st == 204, "{st} {body}");
    cb.extra = lock_sink(&rgw, "drop", BASTION, 1)
        .replace("object_lock = { mode = \"governance\", days = 1 }\n", "");
    let drop = cb.write("drop.toml");
    for run in 1..=2 {
        let out = vigil("vigil-snapshot", &drop, &["run", "--json"]);
        assert_eq!(out.status.code(), Some(0), "run {run}: {}", text(&out));
        let s = &json(&out)["sinks"][0];
        assert_eq!(s["ok"], true, "{s}");
        // The first run also ships the older local archives (catch-up);
        // keep_last = 1 would drop all but one per member.
        let copies = s["copies"].as_u64().unwrap() as usize;
        assert!(copies > 3, "{s}");
        assert_eq!(s["left"].as_array().unwrap().len(), copies - 3, "{s}");
        assert_eq!(s["pruned"].as_array().unwrap().len(), 0, "{s}");
    }
    let out = vigil("vigil-snapshot", &drop, &["check-sink", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let c = json(&out);
    assert_eq!(c[0]["bucket_lock"], "not enabled", "{c}");
    assert!(
        c[0]["deletes"].as_str().unwrap().starts_with("refused"),
        "{c}"
    );
    let (a, _) = &copies(&rgw, "drop", "cp-3")[0];
    let (st, _, body) = rgw.curl(BASTION, "DELETE", &format!("/drop/{a}"), &[], None);
    assert_eq!(st, 403, "{body}");
    assert!(copies(&rgw, "drop", "cp-3").iter().any(|(k, _)| k == a));

    // 8. object_lock on a bucket without Object Lock: a clear error, nothing
    //    uploaded there, the local archives kept.
    cb.extra = lock_sink(&rgw, "plain", OWNER, 1);
    let plain = cb.write("plain.toml");
    let out = vigil("vigil-snapshot", &plain, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = json(&out);
    let errs = r["sinks"][0]["errors"].to_string();
    assert!(errs.contains("bucket plain has no Object Lock"), "{r}");
    assert!(
        rgw.ls("s3://plain/").is_empty(),
        "uploaded to an unlocked bucket"
    );
    for m in r["members"].as_array().unwrap() {
        assert_eq!(m["ok"], true, "{m}");
    }
    let out = vigil("vigil-snapshot", &plain, &["check-sink"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("bucket not enabled"), "{}", text(&out));
}
