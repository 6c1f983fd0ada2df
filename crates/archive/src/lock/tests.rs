use super::*;
use std::io::{BufRead, BufReader, Read, Write};

/// A loopback S3 stand-in that records each request's head and answers
/// "Object Lock enabled" to GetObjectLockConfiguration, 500 to the rest.
fn recorder() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let log = log.clone();
            // A thread per connection: each client keeps its own alive.
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut c = c;
                loop {
                    let mut head = String::new();
                    let mut line = String::new();
                    while r.read_line(&mut line).unwrap_or(0) > 2 {
                        head.push_str(&line.to_ascii_lowercase());
                        line.clear();
                    }
                    if head.is_empty() {
                        break;
                    }
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0u64);
                    let _ = (&mut r).take(len).read_to_end(&mut Vec::new());
                    let body = if head.starts_with("get ") && head.contains("object-lock") {
                        "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>"
                    } else {
                        ""
                    };
                    let status = if body.is_empty() {
                        "500 Internal Server Error"
                    } else {
                        "200 OK"
                    };
                    log.lock().unwrap().push(head);
                    let _ = write!(
                        c,
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
        }
    });
    (port, seen)
}

/// S3 refuses an upload into a locked bucket without an integrity
/// header: with `object_lock`, the multipart upload announces sha256
/// checksums and a single PUT (the manifest) carries one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_to_a_locking_sink_carry_checksums() {
    let d = tempfile::tempdir().unwrap();
    let (port, seen) = recorder();
    let text = format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n[state]\ndir = \"{}\"\n[[sink]]\nname = \"s3\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:{port}\"\nallow_http = true\nbucket = \"b\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\nretries = 0\nobject_lock = {{ mode = \"compliance\", days = 1 }}\n",
            d.path().display()
        );
    let cfg = vigil_core::Config::parse(&text, std::path::Path::new("v.toml")).unwrap();
    let sink = crate::sink::Sink::build(cfg.sinks().next().unwrap(), "prod", d.path()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(tx);
    assert!(sink.upload_stream("cp-1", "a.age", rx).await.is_err());
    let m: vigil_core::manifest::Manifest = serde_json::from_value(serde_json::json!({
        "format": vigil_core::manifest::FORMAT, "id": "x", "cluster": "prod", "cluster_id": "1",
        "member": "cp-1", "member_id": "2", "endpoint": "http://127.0.0.1:2379",
        "revision": 1, "raft_index": 1, "raft_term": 1, "etcd_version": "3.4.23",
        "db_size": 1, "db_size_in_use": 1, "leader": "2", "is_leader": true, "key_count": 1,
        "snapshot_size": 1, "snapshot_sha256": "", "db_sha256": "", "archive": "a.age",
        "archive_size": 1, "archive_sha256": "", "compression": "zstd", "zstd_level": 3,
        "encryption": "age", "age_recipients": [], "created_at": "2026-12-01T00:00:00Z",
        "duration_ms": 1, "verified_at": null, "vigil_version": "0"
    }))
    .unwrap();
    assert!(sink.put_manifest("cp-1", &m).await.is_err());
    let seen = seen.lock().unwrap().clone();
    let create = seen
        .iter()
        .find(|h| h.starts_with("post ") && h.contains("?uploads"))
        .unwrap_or_else(|| panic!("no CreateMultipartUpload in {seen:?}"));
    assert!(
        create.contains("x-amz-checksum-algorithm: sha256"),
        "{create}"
    );
    let put = seen
        .iter()
        .find(|h| h.starts_with("put ") && h.contains("a.age.json"))
        .unwrap_or_else(|| panic!("no manifest PUT in {seen:?}"));
    assert!(put.contains("x-amz-checksum-sha256: "), "{put}");
}

#[test]
fn parses_the_answers_of_radosgw_and_s3() {
    let x: LockConfigXml = quick_xml::de::from_str(
            r#"<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>30</Days></DefaultRetention></Rule></ObjectLockConfiguration>"#,
        )
        .unwrap();
    assert_eq!(x.object_lock_enabled.as_deref(), Some("Enabled"));
    let d = x.rule.unwrap().default_retention.unwrap();
    assert_eq!((d.mode.as_deref(), d.days), (Some("COMPLIANCE"), Some(30)));

    // Versions and delete markers interleave; keys sharing the prefix are skipped by `versions`.
    let v: VersionsXml = quick_xml::de::from_str(
            r#"<ListVersionsResult><IsTruncated>false</IsTruncated><Version><Key>a/x</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest></Version><DeleteMarker><Key>a/x</Key><VersionId>m1</VersionId></DeleteMarker><Version><Key>a/x.json</Key><VersionId>v2</VersionId></Version></ListVersionsResult>"#,
        )
        .unwrap();
    assert_eq!(v.version.len(), 2);
    assert_eq!(v.delete_marker[0].version_id, "m1");
    assert!(!v.is_truncated);

    let r: RetentionXml = quick_xml::de::from_str(
            "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2026-12-02T19:30:55.275346000Z</RetainUntilDate></Retention>",
        )
        .unwrap();
    assert!(OffsetDateTime::parse(&r.retain_until_date, &Rfc3339).is_ok());

    let e: ErrorXml = quick_xml::de::from_str(
            "<Error><Code>AccessDenied</Code><Message>forbidden by object lock</Message><BucketName>b</BucketName></Error>",
        )
        .unwrap();
    assert_eq!(e.code.as_deref(), Some("AccessDenied"));
}
