//! S3 Object Lock: copies that the bastion's own key cannot delete or
//! overwrite until their retain-until date.
//!
//! object_store writes and reads the objects but knows nothing of locks, so
//! the bucket's lock configuration, each object's retention, its versions
//! and the deletes of single versions go out as requests signed by
//! object_store's own SigV4 signer (as in `uploads.rs`).
//!
//! In a bucket with Object Lock (always versioned), a plain DELETE only adds
//! a delete marker: the data stays, billed and invisible. vigil's retention
//! therefore deletes every version of a key by its ID, once none is locked.

use base64::Engine as _;
use md5::Digest as _;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use vigil_core::config::{LockMode, ObjectLock};

const CONTENT_MD5: reqwest::header::HeaderName =
    reqwest::header::HeaderName::from_static("content-md5");

/// Why a lock request failed. Clone: a sink remembers the bucket's answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LockError {
    #[error("signing the request: {0}")]
    Sign(String),
    /// reqwest's error chain, without the signed URL.
    #[error("{0}")]
    Http(String),
    #[error("the store answered {status} {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Status {
        status: u16,
        code: String,
        message: Option<String>,
    },
    #[error("unexpected answer: {0}")]
    Parse(String),
}

impl LockError {
    /// Refused by a policy or by a lock (403 AccessDenied).
    pub fn is_denied(&self) -> bool {
        matches!(self, LockError::Status { status: 403, .. })
    }
}

/// What GetObjectLockConfiguration says of the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLock {
    pub enabled: bool,
    /// The bucket's default retention (mode, days), applied by the store
    /// to every new object before vigil sets its own.
    pub default: Option<(String, u32)>,
}

/// One version of a key, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: String,
    pub delete_marker: bool,
}

/// A retention as the store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub mode: String,
    pub until: OffsetDateTime,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LockConfigXml {
    object_lock_enabled: Option<String>,
    rule: Option<RuleXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RuleXml {
    default_retention: Option<DefaultRetentionXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DefaultRetentionXml {
    mode: Option<String>,
    days: Option<u32>,
    years: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetentionXml {
    mode: String,
    retain_until_date: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionsXml {
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_version_id_marker: Option<String>,
    #[serde(default)]
    version: Vec<VersionXml>,
    #[serde(default)]
    delete_marker: Vec<VersionXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionXml {
    key: String,
    version_id: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    last_modified: String,
}

/// One version (or delete marker) of an object under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    pub id: String,
    pub delete_marker: bool,
    pub size: u64,
    /// As the store writes it (ISO 8601, UTC): sorts as text.
    pub last_modified: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorXml {
    code: Option<String>,
    message: Option<String>,
}

/// The lock requests of one S3 sink.
pub struct Locker {
    s3: Arc<AmazonS3>,
    http: reqwest::Client,
    /// What the sink's `object_lock` asks for; `None` for a sink without
    /// locks (only `bucket()` and `versions()` are used then).
    pub want: Option<ObjectLock>,
}

impl std::fmt::Debug for Locker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locker").field("want", &self.want).finish()
    }
}

pub fn mode_name(m: LockMode) -> &'static str {
    match m {
        LockMode::Compliance => "COMPLIANCE",
        LockMode::Governance => "GOVERNANCE",
    }
}

impl Locker {
    pub fn new(s3: Arc<AmazonS3>, http: reqwest::Client, want: Option<ObjectLock>) -> Locker {
        Locker { s3, http, want }
    }

    async fn send(
        &self,
        method: Method,
        key: &str,
        query: Vec<(&str, String)>,
        body: Option<String>,
    ) -> Result<(reqwest::header::HeaderMap, String), LockError> {
        let mut opts = SignedUrlOptions::default().with_query(query);
        let md5 = body.as_ref().map(|b| {
            base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b.as_bytes()))
        });
        if let Some(m) = &md5 {
            // PutObjectRetention requires Content-MD5 (S3 and RGW alike).
            let v = reqwest::header::HeaderValue::from_str(m)
                .map_err(|e| LockError::Sign(e.to_string()))?;
            opts = opts.with_signed_header(CONTENT_MD5, v);
        }
        let url = self
            .s3
            .signed_url_opts(
                method.clone(),
                &ObjPath::from(key),
                Duration::from_secs(300),
                &opts,
            )
            .await
            .map_err(|e| LockError::Sign(crate::sink::chain(&e)))?;
        let mut req = self.http.request(method, url);
        if let (Some(b), Some(m)) = (body, md5) {
            req = req.header(CONTENT_MD5, m).body(b);
        }
        // The signed URL carries a signature: keep it out of errors.
        let resp = req
            .send()
            .await
            .map_err(|e| LockError::Http(crate::sink::chain(&e.without_url())))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .map_err(|e| LockError::Http(crate::sink::chain(&e.without_url())))?;
        if status.is_success() {
            return Ok((headers, text));
        }
        let e: Option<ErrorXml> = quick_xml::de::from_str(&text).ok();
        Err(LockError::Status {
            status: status.as_u16(),
            code: e.as_ref().and_then(|e| e.code.clone()).unwrap_or_default(),
            message: e.and_then(|e| e.message).filter(|m| !m.is_empty()),
        })
    }

    /// The bucket's Object Lock configuration; `enabled: false` when the
    /// bucket was created without it.
    pub async fn bucket(&self) -> Result<BucketLock, LockError> {
        let text = match self
            .send(Method::GET, "", vec![("object-lock", String::new())], None)
            .await
        {
            Ok((_, t)) => t,
            Err(LockError::Status { code, .. })
                if code == "ObjectLockConfigurationNotFoundError" =>
            {
                return Ok(BucketLock {
                    enabled: false,
                    default: None,
                })
            }
            Err(e) => return Err(e),
        };
        let x: LockConfigXml =
            quick_xml::de::from_str(&text).map_err(|e| LockError::Parse(e.to_string()))?;
        let default = x.rule.and_then(|r| r.default_retention).and_then(|d| {
            let days = d.days.or(d.years.map(|y| y.saturating_mul(365)))?;
            Some((d.mode.unwrap_or_default(), days))
        });
        Ok(BucketLock {
            enabled: x.object_lock_enabled.as_deref() == Some("Enabled"),
            default,
        })
    }

    /// Locks the newest version of `key` for the sink's `days` from now;
    /// returns the retain-until date. A longer lock already there (the
    /// bucket's default) is kept: a lock can only be extended.
    pub async fn retain(&self, key: &str) -> Result<OffsetDateTime, LockError> {
        let Some(want) = self.want else {
            return Err(LockError::Parse("no object_lock configured".into()));
        };
        let until = OffsetDateTime::now_utc() + time::Duration::days(i64::from(want.days));
        let until = until.replace_nanosecond(0).unwrap_or(until);
        let date = until
            .format(&Rfc3339)
            .map_err(|e| LockError::Parse(e.to_string()))?;
        let body = format!(
            r#"<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>{}</Mode><RetainUntilDate>{date}</RetainUntilDate></Retention>"#,
            mode_name(want.mode)
        );
        match self
            .send(
                Method::PUT,
                key,
                vec![("retention", String::new())],
                Some(body),
            )
            .await
        {
            Ok(_) => Ok(until),
            Err(e) if e.is_denied() => match self.retention(key, None).await {
                Ok(Some(r)) if r.until >= until => Ok(r.until),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// The retention of one version of `key` (the newest with `None`);
    /// `None` when it has none.
    pub async fn retention(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<Retention>, LockError> {
        let mut q = vec![("retention", String::new())];
        if let Some(v) = version {
            q.push(("versionId", v.to_string()));
        }
        let text = match self.send(Method::GET, key, q, None).await {
            Ok((_, t)) => t,
            Err(LockError::Status { code, .. }) if code == "NoSuchObjectLockConfiguration" => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let x: RetentionXml =
            quick_xml::de::from_str(&text).map_err(|e| LockError::Parse(e.to_string()))?;
        let until = OffsetDateTime::parse(x.retain_until_date.trim(), &Rfc3339).map_err(|e| {
            LockError::Parse(format!("RetainUntilDate {:?}: {e}", x.retain_until_date))
        })?;
        Ok(Some(Retention {
            mode: x.mode,
            until,
        }))
    }

    /// Every version and delete marker of exactly `key`.
    pub async fn versions(&self, key: &str) -> Result<Vec<Version>, LockError> {
        Ok(self
            .all_versions(key)
            .await?
            .into_iter()
            .filter(|v| v.key == key)
            .map(|v| Version {
                id: v.id,
                delete_marker: v.delete_marker,
            })
            .collect())
    }

    /// Every version and delete marker of every key under `prefix`, in the
    /// store's order (by key, newest version first).
    pub async fn all_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>, LockError> {
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        // A bound on pages, against a store that keeps answering "truncated".
        for _ in 0..10_000 {
            let mut q = vec![("versions", String::new()), ("prefix", prefix.to_string())];
            if let Some((k, v)) = &marker {
                q.push(("key-marker", k.clone()));
                q.push(("version-id-marker", v.clone()));
            }
            let (_, text) = self.send(Method::GET, "", q, None).await?;
            let x: VersionsXml =
                quick_xml::de::from_str(&text).map_err(|e| LockError::Parse(e.to_string()))?;
            let one = |v: VersionXml, delete_marker: bool| ObjectVersion {
                key: v.key,
                id: v.version_id,
                delete_marker,
                size: v.size,
                last_modified: v.last_modified,
            };
            // Markers and versions come as two lists here; keep the store's
            // per-key order (newest first) by sorting on key, then date.
            let mut page: Vec<ObjectVersion> =
                x.version.into_iter().map(|v| one(v, false)).collect();
            page.extend(x.delete_marker.into_iter().map(|v| one(v, true)));
            page.sort_by(|a, b| {
                a.key
                    .cmp(&b.key)
                    .then(b.last_modified.cmp(&a.last_modified))
            });
            out.extend(page);
            let next = x.next_key_marker.zip(x.next_version_id_marker);
            match next {
                Some(n) if x.is_truncated && Some(&n) != marker.as_ref() => marker = Some(n),
                _ => return Ok(out),
            }
        }
        Err(LockError::Parse("more than 10000 pages of versions".into()))
    }

    /// The first version of each key under `prefix`: in a locked bucket,
    /// what vigil wrote. A later version is an overwrite and a delete
    /// marker only hides, so neither changes what is read.
    pub async fn first_versions(
        &self,
        prefix: &str,
    ) -> Result<std::collections::BTreeMap<String, ObjectVersion>, LockError> {
        let mut first = std::collections::BTreeMap::new();
        // Newest first per key: the last version seen of a key is its first.
        for v in self.all_versions(prefix).await? {
            if !v.delete_marker {
                first.insert(v.key.clone(), v);
            }
        }
        Ok(first)
    }

    /// Deletes one version (or delete marker) for good.
    pub async fn delete_version(&self, key: &str, id: &str) -> Result<(), LockError> {
        self.send(
            Method::DELETE,
            key,
            vec![("versionId", id.to_string())],
            None,
        )
        .await
        .map(|_| ())
    }

    /// A DELETE of `key`, which must not exist: allowed or refused says
    /// what this key may do. The delete marker a versioned bucket adds is
    /// deleted again.
    pub async fn probe_delete(&self, key: &str) -> Result<(), LockError> {
        let (h, _) = self.send(Method::DELETE, key, Vec::new(), None).await?;
        let marker = h
            .get("x-amz-delete-marker")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if let (true, Some(id)) = (marker, h.get("x-amz-version-id")) {
            let id = id.to_str().map_err(|e| LockError::Parse(e.to_string()))?;
            self.delete_version(key, id).await?;
        }
        Ok(())
    }

    /// The latest retain-until date among the versions of `key` that are
    /// still locked, if any.
    pub async fn locked_until(
        &self,
        key: &str,
        versions: &[Version],
    ) -> Result<Option<OffsetDateTime>, LockError> {
        let now = OffsetDateTime::now_utc();
        let mut latest = None;
        for v in versions.iter().filter(|v| !v.delete_marker) {
            if let Some(r) = self.retention(key, Some(&v.id)).await? {
                if r.until > now && latest.is_none_or(|l| r.until > l) {
                    latest = Some(r.until);
                }
            }
        }
        Ok(latest)
    }
}

/// What `check-sink` learns of a sink's protection, without changing a copy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Protection {
    /// `enabled`, `not enabled`, or why the bucket could not be asked;
    /// `None` for stores without Object Lock (every kind but s3).
    pub bucket_lock: Option<String>,
    /// The bucket's default retention, e.g. `COMPLIANCE 30 days`.
    pub bucket_default: Option<String>,
    /// What this sink's `object_lock` asks for, e.g. `COMPLIANCE 30 days`.
    pub vigil_lock: Option<String>,
    /// `allowed`, `refused` (append-only: retention left to lifecycle
    /// rules), or why the probe failed.
    pub deletes: String,
    /// Whether the sink is as its config says (locks asked for and enabled).
    pub ok: bool,
    pub notes: Vec<String>,
}

impl Protection {
    /// A store without Object Lock: deletes allowed, or left to the tape
    /// server where vigil does not delete.
    pub fn unlocked(vigil_deletes: bool) -> Protection {
        Protection {
            bucket_lock: None,
            bucket_default: None,
            vigil_lock: None,
            deletes: if vigil_deletes {
                "allowed"
            } else {
                "left to the tape server (management class)"
            }
            .into(),
            ok: true,
            notes: Vec::new(),
        }
    }
}

pub(crate) fn describe(mode: &str, days: u32) -> String {
    format!("{} {days} days", mode.to_ascii_uppercase())
}

#[cfg(test)]
mod tests;
