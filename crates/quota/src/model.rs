//! What a backend reports: one entry per subvolume group and subvolume, and
//! the JSON shapes Ceph really returns (see REFERENCE.md, "Ceph").

use serde::{Deserialize, Deserializer, Serialize};

/// The implicit group of subvolumes created without `--group_name`.
pub const NOGROUP: &str = "_nogroup";

/// A subvolume group (subvolume `None`) or a subvolume, as read from Ceph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub volume: String,
    /// The group; [`NOGROUP`] for subvolumes without one.
    pub group: String,
    pub subvolume: Option<String>,
    /// Ceph's state (`complete`, `snapshot-retained`, ...); groups say `group`.
    pub state: String,
    /// Bytes used (recursive); `None` when Ceph reports none (snapshot-retained).
    pub used: Option<u64>,
    /// The quota in bytes; `None` for no quota (`"infinite"`, absent or 0).
    pub quota: Option<u64>,
}

impl Entry {
    /// `vol/group` or `vol/group/subvolume`: the stable name in history and messages.
    pub fn subject(&self) -> String {
        match &self.subvolume {
            Some(s) => format!("{}/{}/{}", self.volume, self.group, s),
            None => format!("{}/{}", self.volume, self.group),
        }
    }

    pub fn is_group(&self) -> bool {
        self.subvolume.is_none()
    }

    /// Used as a percentage of the quota; may exceed 100 (quotas are enforced
    /// cooperatively, so usage can pass them).
    pub fn percent(&self) -> Option<f64> {
        match (self.used, self.quota) {
            (Some(u), Some(q)) if q > 0 => Some(u as f64 * 100.0 / q as f64),
            _ => None,
        }
    }
}

/// What one backend run found: entries, plus what could not be checked.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    pub entries: Vec<Entry>,
    /// "Could not check" reasons (a call that failed, a path that would not read).
    pub errors: Vec<String>,
    /// The volumes that were listed completely (no error inside them).
    pub complete_volumes: Vec<String>,
}

/// `[{"name": "..."}]` from `fs volume ls`, `subvolumegroup ls`, `subvolume ls`.
#[derive(Debug, Deserialize)]
pub struct Named {
    pub name: String,
}

/// `bytes_quota`: an integer, or the string `"infinite"` when there is no quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaBytes(pub Option<u64>);

impl<'de> Deserialize<'de> for QuotaBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(0) => Ok(Self(None)),
            Raw::Int(n) => Ok(Self(Some(n))),
            Raw::Str(s) if s == "infinite" => Ok(Self(None)),
            Raw::Str(s) => s
                .parse::<u64>()
                .map(|n| Self((n > 0).then_some(n)))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "bytes_quota {s:?} is neither a number nor \"infinite\""
                    ))
                }),
        }
    }
}

/// `bytes_pcent`: a string like `"30.00"`, or `"undefined"` without a quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pcent(pub Option<f64>);

impl<'de> Deserialize<'de> for Pcent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(Self(Some(n))),
            Raw::Str(s) if s == "undefined" => Ok(Self(None)),
            Raw::Str(s) => s.trim().parse::<f64>().map(|n| Self(Some(n))).map_err(|_| {
                serde::de::Error::custom(format!(
                    "bytes_pcent {s:?} is neither a percentage nor \"undefined\""
                ))
            }),
        }
    }
}

/// `fs subvolume info` and `fs subvolumegroup info`. Only `state` and `type`
/// are always there: a snapshot-retained subvolume has no usage fields.
#[derive(Debug, Clone, Deserialize)]
pub struct Info {
    pub bytes_used: Option<u64>,
    pub bytes_quota: Option<QuotaBytes>,
    pub bytes_pcent: Option<Pcent>,
    pub state: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub path: Option<String>,
}

impl Info {
    pub fn quota(&self) -> Option<u64> {
        self.bytes_quota.and_then(|q| q.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn real_subvolume_info_with_quota() {
        let j = r#"{"atime": "2026-11-22 22:54:50", "bytes_pcent": "30.00", "bytes_quota": 104857600,
            "bytes_used": 31457280, "created_at": "2026-11-22 22:54:50", "data_pool": "cephfs.vol1.data",
            "features": ["snapshot-clone", "snapshot-autoprotect", "snapshot-retention"], "gid": 0, "mode": 16877,
            "mon_addrs": ["127.0.0.1:40789"], "path": "/volumes/grp1/sub1/8464e5e7-6443-498f-86ca-d6d9713ded03",
            "pool_namespace": "", "state": "complete", "type": "subvolume", "uid": 0}"#;
        let i: Info = serde_json::from_str(j).unwrap();
        assert_eq!(i.bytes_used, Some(31457280));
        assert_eq!(i.quota(), Some(104857600));
        assert_eq!(i.bytes_pcent, Some(Pcent(Some(30.0))));
        assert_eq!(i.state.as_deref(), Some("complete"));
    }

    #[test]
    fn infinite_and_undefined_are_strings() {
        let j = r#"{"bytes_pcent": "undefined", "bytes_quota": "infinite", "bytes_used": 0,
            "path": "/volumes/grp1/unlimited/6fa8", "state": "complete", "type": "subvolume"}"#;
        let i: Info = serde_json::from_str(j).unwrap();
        assert_eq!(i.quota(), None);
        assert_eq!(i.bytes_pcent, Some(Pcent(None)));
        assert_eq!(i.bytes_used, Some(0));
    }

    #[test]
    fn over_100_percent_and_snapshot_retained() {
        let j = r#"{"bytes_pcent": "104.17", "bytes_quota": 20971520, "bytes_used": 21846016, "state": "complete", "type": "subvolume"}"#;
        let i: Info = serde_json::from_str(j).unwrap();
        let e = Entry {
            volume: "v".into(),
            group: "g".into(),
            subvolume: Some("s".into()),
            state: "complete".into(),
            used: i.bytes_used,
            quota: i.quota(),
        };
        assert!((e.percent().unwrap() - 104.17).abs() < 0.01);
        let j = r#"{"features": ["snapshot-clone", "snapshot-autoprotect", "snapshot-retention"],
            "mon_addrs": ["127.0.0.1:38301"], "state": "snapshot-retained", "type": "subvolume"}"#;
        let i: Info = serde_json::from_str(j).unwrap();
        assert_eq!((i.bytes_used, i.quota()), (None, None));
        assert_eq!(i.state.as_deref(), Some("snapshot-retained"));
    }

    #[test]
    fn garbage_is_an_error_not_a_default() {
        assert!(serde_json::from_str::<Info>(r#"{"bytes_quota": "lots"}"#).is_err());
        assert!(serde_json::from_str::<Info>(r#"{"bytes_pcent": "n/a"}"#).is_err());
        assert!(serde_json::from_str::<Info>(r#"{"bytes_used": "12"}"#).is_err());
        let l: Vec<Named> =
            serde_json::from_str(r#"[{"name": "grp2"}, {"name": "grp1"}]"#).unwrap();
        assert_eq!(l[1].name, "grp1");
    }
}
