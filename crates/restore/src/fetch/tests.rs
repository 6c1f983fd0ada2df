#![allow(clippy::unwrap_used)]
use super::*;
use crate::stores::StoreError;
use age::secrecy::ExposeSecret;
use std::collections::BTreeMap;
use vigil_core::manifest::Manifest;

/// An etcd-like stream (database + sha256 trailer) of incompressible
/// bytes, so that a variant of it archives to the same size.
fn snapshot(seed: u32) -> Vec<u8> {
    // sha256 output is random enough that zstd stores raw blocks.
    let mut db: Vec<u8> = (0..100 * 1024 / 32)
        .flat_map(|i: u32| Sha256::digest([seed.to_le_bytes(), i.to_le_bytes()].concat()))
        .collect();
    db.truncate(db.len() / 512 * 512);
    let trailer = Sha256::digest(&db);
    db.extend_from_slice(&trailer);
    db
}

fn archive(plain: &[u8], recipient: &age::x25519::Recipient) -> Vec<u8> {
    let z = zstd::encode_all(plain, 1).unwrap();
    vigil_archive::encrypt_small(&z, std::slice::from_ref(recipient)).unwrap()
}

fn manifest(plain: &[u8], enc: &[u8], recipient: &str) -> Manifest {
    serde_json::from_value(serde_json::json!({
        "format": 1, "id": "prod-cp-1-x", "cluster": "prod", "cluster_id": "1",
        "member": "cp-1", "member_id": "2", "endpoint": "http://x:1", "revision": 7,
        "raft_index": 1, "raft_term": 1, "etcd_version": "3.4.23", "db_size": 1,
        "db_size_in_use": 1, "leader": "1", "is_leader": true, "key_count": 1,
        "snapshot_size": plain.len(), "snapshot_sha256": hex::encode(Sha256::digest(plain)),
        "db_sha256": hex::encode(&plain[plain.len() - 32..]),
        "archive": "prod-cp-1-x.db.zst.age", "archive_size": enc.len(),
        "archive_sha256": hex::encode(Sha256::digest(enc)), "compression": "zstd",
        "zstd_level": 1, "encryption": "age", "age_recipients": [recipient],
        "created_at": "2026-01-01T00:00:00Z", "duration_ms": 1,
        "verified_at": "2026-01-01T00:00:00Z", "vigil_version": "0"
    }))
    .unwrap()
}

/// Stores that serve fixed bytes per location.
#[derive(Debug)]
struct Mem(BTreeMap<String, Vec<u8>>);
impl OpenCopy for Mem {
    fn open(&self, copy: &CatalogCopy) -> Result<Opened, StoreError> {
        let b = self.0[&copy.location].clone();
        Ok(Opened {
            len: Some(b.len() as u64),
            reader: Box::new(io::Cursor::new(b)),
        })
    }
}

struct Setup {
    plain: Vec<u8>,
    good: Vec<u8>,
    manifest: Manifest,
    ids: Identities,
    recipient: age::x25519::Recipient,
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public();
    let plain = snapshot(1);
    let good = archive(&plain, &recipient);
    let manifest = manifest(&plain, &good, &recipient.to_string());
    let text = format!("{}\n", key.to_string().expose_secret());
    let ids = Identities::parse(text.as_bytes(), "key.txt", &mut || {
        Err(crate::identity::NoPassphrase(std::io::Error::other("none")))
    })
    .unwrap();
    Setup {
        plain,
        good,
        manifest,
        ids,
        recipient,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// Copy `a` (bytes `first`) then copy `b` (the good archive), in that order.
fn two_copies(s: &Setup, first: Vec<u8>) -> (CatalogEntry, Mem) {
    let copy = |store: &str| CatalogCopy {
        store: store.into(),
        member: "cp-1".into(),
        location: format!("{store}://prod-cp-1-x"),
        verified: true,
        locked_until: None,
        manifest: s.manifest.clone(),
    };
    let archive = CatalogEntry {
        id: s.manifest.id.clone(),
        member: "cp-1".into(),
        verified: true,
        copies: vec![copy("a"), copy("b")],
        manifest: s.manifest.clone(),
    };
    let stores = Mem(BTreeMap::from([
        ("a://prod-cp-1-x".to_string(), first),
        ("b://prod-cp-1-x".to_string(), s.good.clone()),
    ]));
    (archive, stores)
}

/// The error of copy `a` alone, and that the fetch falls back to copy `b`.
fn fails_then_falls_back(s: &Setup, bad: Vec<u8>) -> String {
    let (archive, stores) = two_copies(s, bad);
    let out = s.dir.path().join(format!("out-{}", rand_name()));
    let err = fetch_copy(&stores, &archive.copies[0], Some(&s.ids), &out).unwrap_err();
    assert!(matches!(err, RestoreError::Corrupt { .. }), "{err}");
    assert!(!out.exists());
    let f = fetch(&archive, &stores, Some(&s.ids), &out).unwrap();
    assert_eq!(f.source, "b");
    assert_eq!(std::fs::read(&out).unwrap(), s.plain);
    err.to_string()
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

#[test]
fn a_damaged_chunk_fails_age_and_names_the_copy() {
    let s = setup();
    let mut bad = s.good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x5a;
    let e = fails_then_falls_back(&s, bad);
    assert!(
        e.contains("prod-cp-1-x") && e.contains("a://prod-cp-1-x"),
        "{e}"
    );
    assert!(e.contains("age") && e.contains("corrupted copy"), "{e}");
}

#[test]
fn a_damaged_header_is_a_bad_copy_not_a_wrong_key() {
    let s = setup();
    let mut bad = s.good.clone();
    // Inside the X25519 stanza's wrapped file key (the header's second and third lines).
    let nl = bad.iter().position(|&b| b == b'\n').unwrap();
    let nl2 = nl + 1 + bad[nl + 1..].iter().position(|&b| b == b'\n').unwrap();
    bad[nl2 + 5] = if bad[nl2 + 5] == b'A' { b'B' } else { b'A' };
    let e = fails_then_falls_back(&s, bad);
    assert!(
        e.contains("a://prod-cp-1-x") && e.contains("corrupted copy"),
        "{e}"
    );
}

#[test]
fn truncation_is_named_with_the_byte_counts() {
    let s = setup();
    let bad = s.good[..s.good.len() - 100].to_vec();
    let e = fails_then_falls_back(&s, bad);
    assert!(
        e.contains("truncated") && e.contains(&format!("of {} bytes", s.good.len())),
        "{e}"
    );
}

#[test]
fn a_substituted_archive_to_the_same_recipient_fails_the_snapshot_hash() {
    // A valid snapshot, validly encrypted to the (public) recipient, with
    // the same size: age, zstd and etcd's trailer all accept it.
    let s = setup();
    let mut plain = s.plain.clone();
    let db = plain.len() - 32;
    plain[1000] ^= 0x01;
    let trailer = Sha256::digest(&plain[..db]);
    plain[db..].copy_from_slice(&trailer);
    // age adds a grease stanza of random length: encrypt again until the
    // substitute has the recorded size too, as a forger would.
    let z = zstd::encode_all(&plain[..], 1).unwrap();
    let other = (0..20_000)
        .map(|_| vigil_archive::encrypt_small(&z, std::slice::from_ref(&s.recipient)).unwrap())
        .find(|o| o.len() == s.good.len())
        .unwrap();
    let e = fails_then_falls_back(&s, other);
    assert!(
        e.contains("a://prod-cp-1-x") && e.contains("but the manifest says"),
        "{e}"
    );
}
