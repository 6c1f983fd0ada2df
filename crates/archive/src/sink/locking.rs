//! Object Lock as a sink uses it: the bucket check before the first upload,
//! locking each key after it, reading the first version in a locking sink,
//! and deletes that wait for the lock (the S3 requests are in `lock.rs`).

use super::object::ObjectBackend;
use super::SinkError;
use crate::lock::{
    describe, mode_name, BucketLock, LockError, Locker, ObjectVersion, Protection, Version,
};
use time::OffsetDateTime;

impl ObjectBackend {
    /// The locker of a sink that locks what it uploads.
    pub(crate) fn locking(&self) -> Option<&Locker> {
        self.s3
            .as_ref()
            .map(|s| &s.locker)
            .filter(|l| l.want.is_some())
    }

    /// The first version of every key under `prefix` (locking sinks).
    pub(crate) async fn first_versions(
        &self,
        prefix: &str,
    ) -> Result<std::collections::BTreeMap<String, ObjectVersion>, SinkError> {
        let Some(l) = self.locking() else {
            return Ok(Default::default());
        };
        l.first_versions(prefix)
            .await
            .map_err(|e| self.lock_err("listing the versions under", prefix, e))
    }

    /// The version to read `key` at: its first in a locking sink (`NotFound`
    /// when there is none), the newest (`None`) elsewhere.
    pub(crate) async fn pinned_version(&self, key: &str) -> Result<Option<String>, SinkError> {
        if self.locking().is_none() {
            return Ok(None);
        }
        match self.first_version(key).await? {
            Some(v) => Ok(Some(v.id)),
            None => Err(SinkError::NotFound {
                sink: self.name.clone(),
                key: key.to_string(),
            }),
        }
    }

    /// The first version of `key`, what vigil wrote (locking sinks).
    pub(crate) async fn first_version(
        &self,
        key: &str,
    ) -> Result<Option<ObjectVersion>, SinkError> {
        Ok(self.first_versions(key).await?.remove(key))
    }

    /// Every version of `key`, and until when the latest-locked one holds.
    async fn key_lock(
        &self,
        l: &Locker,
        key: &str,
    ) -> Result<(Vec<Version>, Option<OffsetDateTime>), SinkError> {
        let versions = l
            .versions(key)
            .await
            .map_err(|e| self.lock_err("listing the versions of", key, e))?;
        let until = l
            .locked_until(key, &versions)
            .await
            .map_err(|e| self.lock_err("reading the retention of", key, e))?;
        Ok((versions, until))
    }

    async fn bucket_lock(&self, l: &Locker) -> Result<BucketLock, LockError> {
        match &self.s3 {
            Some(s3) => s3.bucket_lock.get_or_init(|| l.bucket()).await.clone(),
            None => l.bucket().await,
        }
    }

    fn bucket(&self) -> String {
        self.s3
            .as_ref()
            .map(|s| s.bucket.clone())
            .unwrap_or_default()
    }

    /// Before the first upload of a locking sink: the bucket must have
    /// Object Lock, or nothing is uploaded there (asked once per run).
    pub(crate) async fn ensure_lock(&self) -> Result<(), SinkError> {
        let Some(l) = self.locking() else {
            return Ok(());
        };
        let bucket = self.bucket();
        match self.bucket_lock(l).await {
            Ok(b) if b.enabled => Ok(()),
            Ok(_) => Err(SinkError::LockNotEnabled {
                sink: self.name.clone(),
                bucket,
            }),
            Err(source) => Err(SinkError::Lock {
                sink: self.name.clone(),
                op: "reading the Object Lock configuration of bucket",
                key: bucket,
                source,
            }),
        }
    }

    /// Locks a just-written object for the sink's `days`.
    pub(crate) async fn lock_key(&self, key: &str) -> Result<(), SinkError> {
        let Some(l) = self.locking() else {
            return Ok(());
        };
        let until = l.retain(key).await.map_err(|source| SinkError::Lock {
            sink: self.name.clone(),
            op: "locking",
            key: key.to_string(),
            source,
        })?;
        tracing::debug!(sink = %self.name, "{key} locked until {until}");
        Ok(())
    }

    fn lock_err(&self, op: &'static str, key: &str, source: LockError) -> SinkError {
        SinkError::Lock {
            sink: self.name.clone(),
            op,
            key: key.to_string(),
            source,
        }
    }

    /// Until when a copy (archive and manifest) is locked, if it still is.
    /// `None` for sinks that do not lock.
    pub(crate) async fn copy_locked_until(
        &self,
        keys: [&str; 2],
    ) -> Result<Option<OffsetDateTime>, SinkError> {
        let Some(l) = self.locking() else {
            return Ok(None);
        };
        let mut latest: Option<OffsetDateTime> = None;
        for k in keys {
            latest = latest.max(self.key_lock(l, k).await?.1);
        }
        Ok(latest)
    }

    /// The retain-until date of the version of a copy's archive that vigil
    /// reads, for listings; `None` for sinks that do not lock.
    pub(crate) async fn key_lock_date(&self, k: &str) -> Result<Option<OffsetDateTime>, SinkError> {
        let Some(l) = self.locking() else {
            return Ok(None);
        };
        let version = self.pinned_version(k).await?;
        let r = l
            .retention(k, version.as_deref())
            .await
            .map_err(|e| self.lock_err("reading the retention of", k, e))?;
        Ok(r.map(|r| r.until))
    }

    /// Deletes every version (and delete marker) of `keys`, in order, once
    /// none of them is locked: a plain DELETE in a versioned bucket would
    /// only hide the data behind a marker.
    pub(crate) async fn delete_versions(&self, keys: &[&str]) -> Result<(), SinkError> {
        let Some(l) = self.s3.as_ref().map(|s| &s.locker) else {
            return Ok(());
        };
        let mut all = Vec::new();
        for k in keys {
            let (v, until) = self.key_lock(l, k).await?;
            if let Some(until) = until {
                return Err(SinkError::Locked {
                    sink: self.name.clone(),
                    key: k.to_string(),
                    until: vigil_core::rfc3339(until),
                });
            }
            all.push((*k, v));
        }
        for (k, versions) in all {
            for v in versions {
                match l.delete_version(k, &v.id).await {
                    Ok(()) => {}
                    Err(e) if e.is_denied() => {
                        return Err(SinkError::DeleteDenied {
                            sink: self.name.clone(),
                            key: k.to_string(),
                            message: e.to_string(),
                        })
                    }
                    Err(e) => return Err(self.lock_err("deleting a version of", k, e)),
                }
            }
        }
        Ok(())
    }

    /// Asks the store how this sink is protected: Object Lock on the bucket,
    /// and whether this key may delete (a DELETE of a key that does not
    /// exist; the delete marker it may leave is removed again).
    pub(crate) async fn store_protection(&self, probe: &str) -> Protection {
        let Some(l) = self.s3.as_ref().map(|s| &s.locker) else {
            return Protection::unlocked(true);
        };
        let mut p = Protection {
            vigil_lock: l.want.map(|o| describe(mode_name(o.mode), o.days)),
            ..Protection::unlocked(true)
        };
        match self.bucket_lock(l).await {
            Ok(b) => {
                p.bucket_lock = Some(if b.enabled { "enabled" } else { "not enabled" }.into());
                p.bucket_default = b.default.as_ref().map(|(m, d)| describe(m, *d));
                if self.locking().is_some() && !b.enabled {
                    p.ok = false;
                    p.notes.push("object_lock is set but the bucket has no Object Lock: runs upload nothing to this sink".into());
                }
                if b.enabled && self.locking().is_none() {
                    p.notes.push("the bucket has Object Lock but this sink sets no object_lock: vigil's prune would only hide copies behind delete markers; set object_lock".into());
                }
                if let (Some((_, d)), Some(o)) = (&b.default, l.want) {
                    if *d > o.days {
                        p.notes.push(format!("the bucket's default retention ({d} days) outlasts object_lock.days ({}): copies stay locked for {d} days", o.days));
                    }
                }
            }
            Err(e) => {
                p.ok = false;
                p.bucket_lock = Some(format!("unknown: {e}"));
            }
        }
        match l.probe_delete(probe).await {
            Ok(()) => {}
            Err(e) if e.is_denied() => {
                p.deletes =
                    "refused (append-only key): retention is left to the bucket's lifecycle rules"
                        .into();
            }
            Err(e) => {
                p.ok = false;
                p.deletes = format!("unknown: {e}");
            }
        }
        p
    }
}
