//! The journal's open format (DESIGN.md, contract 7). A segment is
//! `age(zstd(JSON Lines))`, one [`Event`] per line in revision order, named
//! `<first>-<last>.jsonl.zst.age` (20-digit revisions, so names sort as
//! revisions do); its [`SegmentManifest`] is `<segment>.json` beside it and is
//! written last. Each manifest holds the sha256 of the previous segment, so
//! the segments form a chain in which a missing, reordered or altered one
//! is found.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// `format` of every manifest this version writes.
pub const FORMAT: &str = "vigil-journal/1";
pub const EXT_AGE: &str = ".jsonl.zst.age";
pub const EXT_PLAIN: &str = ".jsonl.zst";
pub const MANIFEST_SUFFIX: &str = ".json";
/// In a sink: `<prefix>/<cluster>/_journal/` (a member name cannot start with `_`).
pub const SINK_DIR: &str = "_journal";

/// What a change did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Op {
    Put,
    Delete,
}

/// One change, as the watch delivered it. Keys and values are base64
/// (binary-safe; `jq '.key | @base64d'` reads them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub revision: i64,
    #[serde(rename = "type")]
    pub op: Op,
    #[serde(with = "b64")]
    pub key: Vec<u8>,
    /// Empty for a delete.
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    /// 0 for a delete.
    pub create_revision: i64,
    pub mod_revision: i64,
    /// 0 for a delete.
    pub version: i64,
    /// The lease ID the key was attached to (0: none). Leases themselves are
    /// not in the watch; a restore grants them again (README, point-in-time restore).
    pub lease: i64,
    /// When vigil received the revision (RFC 3339, UTC, milliseconds).
    pub received_at: String,
}

mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// Revisions the journal knows it does not hold (compacted before it read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gap {
    pub from: i64,
    pub to: i64,
}

/// `<segment>.json`: what a segment holds and where it sits in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentManifest {
    pub format: String,
    pub cluster: String,
    /// Hex, as in the archive manifests.
    pub cluster_id: String,
    /// The segment's file name.
    pub segment: String,
    pub first_revision: i64,
    pub last_revision: i64,
    pub events: u64,
    pub revisions: u64,
    /// Receive times of the first and last revision (RFC 3339).
    pub first_received_at: String,
    pub last_received_at: String,
    /// Of the segment file as stored (ciphertext).
    pub sha256: String,
    pub size: u64,
    /// Bytes of JSON lines inside.
    pub plaintext_size: u64,
    /// The previous segment in the chain and its sha256; `None` for the first.
    pub prev_segment: Option<String>,
    pub prev_sha256: Option<String>,
    /// Revisions missing between the previous segment and this one.
    #[serde(default)]
    pub gap: Option<Gap>,
    /// The members the events came from.
    pub members: Vec<String>,
    pub encrypted: bool,
    pub age_recipients: Vec<String>,
    pub created_at: String,
    pub vigil_version: String,
}

impl SegmentManifest {
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn manifest_name(&self) -> String {
        format!("{}{MANIFEST_SUFFIX}", self.segment)
    }
}

/// `<first>-<last>.jsonl.zst[.age]`.
pub fn segment_name(first: i64, last: i64, encrypted: bool) -> String {
    format!(
        "{first:020}-{last:020}{}",
        if encrypted { EXT_AGE } else { EXT_PLAIN }
    )
}

/// The last revision a segment's file name (or its manifest's) says it holds.
pub fn last_revision_of(name: &str) -> Option<i64> {
    name.split(['-', '.']).nth(1).and_then(|r| r.parse().ok())
}

/// Why `bytes` are not the segment `m` describes (size, sha256), if they are not.
pub fn mismatch(m: &SegmentManifest, bytes: &[u8]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let sha = hex::encode(Sha256::digest(bytes));
    (bytes.len() as u64 != m.size || sha != m.sha256).then(|| {
        format!(
            "is {} bytes with sha256 {sha}, but its manifest says {} bytes with sha256 {}: the segment is damaged or was replaced",
            bytes.len(),
            m.size,
            m.sha256
        )
    })
}

/// Whether `name` is a segment manifest.
pub fn is_manifest(name: &str) -> bool {
    name.ends_with(&format!("{EXT_AGE}{MANIFEST_SUFFIX}"))
        || name.ends_with(&format!("{EXT_PLAIN}{MANIFEST_SUFFIX}"))
}

/// A place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The segment at which it breaks.
    pub segment: String,
    /// The revision after which the journal cannot be trusted.
    pub after_revision: i64,
    pub reason: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "segment {}: {}", self.segment, self.reason)
    }
}

/// Checks the links of manifests sorted by first revision: each names the
/// one before it by file name and sha256 and starts right after it (or
/// records the gap between). Returns the first break, if any.
pub fn check_links(chain: &[SegmentManifest]) -> Option<Break> {
    for w in chain.windows(2) {
        let (p, m) = (&w[0], &w[1]);
        let brk = |reason: String| {
            Some(Break {
                segment: m.segment.clone(),
                after_revision: p.last_revision,
                reason,
            })
        };
        if m.cluster_id != p.cluster_id {
            return brk(format!(
                "of etcd cluster {}, but the segment before it ({}) is of cluster {}",
                m.cluster_id, p.segment, p.cluster_id
            ));
        }
        if m.prev_segment.as_deref() != Some(p.segment.as_str())
            || m.prev_sha256.as_deref() != Some(p.sha256.as_str())
        {
            return brk(format!(
                "its manifest names the previous segment {} (sha256 {}), but the previous segment is {} (sha256 {}): a segment is missing, replaced or altered",
                m.prev_segment.as_deref().unwrap_or("(none)"),
                m.prev_sha256.as_deref().unwrap_or("(none)"),
                p.segment,
                p.sha256
            ));
        }
        let expected = p.last_revision + 1;
        let ok = match m.gap {
            None => m.first_revision == expected,
            Some(g) => g.from == expected && g.to + 1 == m.first_revision,
        };
        if !ok {
            return brk(format!(
                "starts at revision {} but the segment before it ends at {}{}",
                m.first_revision,
                p.last_revision,
                m.gap
                    .map(|g| format!(" (recorded gap {}..={})", g.from, g.to))
                    .unwrap_or_default()
            ));
        }
    }
    None
}

/// Parses a segment's JSON lines and checks them against its manifest:
/// revisions in order, inside the manifest's range, all of it there.
pub fn parse_events(m: &SegmentManifest, text: &[u8]) -> Result<Vec<Event>, String> {
    let mut out = Vec::with_capacity(m.events as usize);
    let mut last = 0i64;
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let e: Event = serde_json::from_slice(line)
            .map_err(|e| format!("line {}: not a journal event: {e}", i + 1))?;
        if e.revision < last || e.revision < m.first_revision || e.revision > m.last_revision {
            return Err(format!(
                "line {}: revision {} is out of order or outside {}..={}",
                i + 1,
                e.revision,
                m.first_revision,
                m.last_revision
            ));
        }
        last = e.revision;
        out.push(e);
    }
    if out.len() as u64 != m.events
        || out.first().map(|e| e.revision) != Some(m.first_revision)
        || last != m.last_revision
    {
        return Err(format!(
            "holds {} events ending at revision {last}, but its manifest says {} events over {}..={}",
            out.len(),
            m.events,
            m.first_revision,
            m.last_revision
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(first: i64, last: i64, prev: Option<&SegmentManifest>) -> SegmentManifest {
        SegmentManifest {
            format: FORMAT.into(),
            cluster: "prod".into(),
            cluster_id: "abc".into(),
            segment: segment_name(first, last, true),
            first_revision: first,
            last_revision: last,
            events: 1,
            revisions: 1,
            first_received_at: String::new(),
            last_received_at: String::new(),
            sha256: format!("sha-{first}"),
            size: 1,
            plaintext_size: 1,
            prev_segment: prev.map(|p| p.segment.clone()),
            prev_sha256: prev.map(|p| p.sha256.clone()),
            gap: None,
            members: vec![],
            encrypted: true,
            age_recipients: vec![],
            created_at: String::new(),
            vigil_version: String::new(),
        }
    }

    #[test]
    fn names_sort_as_revisions() {
        let a = segment_name(9, 99, true);
        let b = segment_name(100, 100, true);
        assert!(a < b);
        assert!(is_manifest(&format!("{a}.json")));
        assert!(!is_manifest(&a));
        assert_eq!(last_revision_of(&format!("{a}.json")), Some(99));
    }

    #[test]
    fn links_find_missing_altered_and_gaps() {
        let a = m(10, 20, None);
        let b = m(21, 30, Some(&a));
        let c = m(31, 40, Some(&b));
        assert_eq!(check_links(&[a.clone(), b.clone(), c.clone()]), None);
        // b missing
        let brk = check_links(&[a.clone(), c.clone()]).unwrap();
        assert_eq!(brk.segment, c.segment);
        assert_eq!(brk.after_revision, 20);
        // b altered (its sha256 is no longer what c recorded)
        let mut b2 = b.clone();
        b2.sha256 = "other".into();
        assert!(check_links(&[a.clone(), b2, c.clone()]).is_some());
        // a recorded gap is a link; an unrecorded jump is not
        let mut g = m(50, 60, Some(&c));
        assert!(check_links(&[c.clone(), g.clone()]).is_some());
        g.gap = Some(Gap { from: 41, to: 49 });
        assert_eq!(check_links(&[c, g]), None);
    }

    #[test]
    fn events_round_trip_and_are_checked_against_the_manifest() {
        let e = Event {
            revision: 10,
            op: Op::Put,
            key: b"/registry/\xff".to_vec(),
            value: vec![0, 1, 2],
            create_revision: 10,
            mod_revision: 10,
            version: 1,
            lease: 0,
            received_at: "2026-12-02T10:00:00.000Z".into(),
        };
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.contains("\"type\":\"PUT\""), "{line}");
        let man = m(10, 10, None);
        assert_eq!(
            parse_events(&man, line.as_bytes()).unwrap(),
            vec![e.clone()]
        );
        let mut two = m(10, 10, None);
        two.events = 2;
        assert!(parse_events(&two, line.as_bytes()).is_err());
        assert!(parse_events(&m(11, 12, None), line.as_bytes()).is_err());
    }
}
