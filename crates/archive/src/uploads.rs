//! Multipart uploads that a killed run left behind in an S3 bucket.
//!
//! A run that dies by SIGKILL (or with its host) cannot abort its upload, and
//! S3 keeps the parts (stored, billed, invisible to object listings) until
//! somebody aborts it. object_store can abort an upload but cannot list them,
//! so ListMultipartUploads goes out as a URL signed by object_store's own
//! SigV4 signer, and the abort through its `MultipartStore`.

use object_store::aws::AmazonS3;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use std::sync::Arc;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One incomplete multipart upload, as S3 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    pub key: String,
    pub id: String,
    /// `None` when the store's timestamp did not parse: such an upload is
    /// never aborted, since its age is unknown.
    pub initiated: Option<OffsetDateTime>,
}

impl Upload {
    /// Left by a run that died: under this sink's `prefix` (which ends in
    /// `/`) and initiated before `since`, the time this run took the lock.
    /// An upload of unknown age is never stale.
    pub fn is_stale(&self, prefix: &str, since: OffsetDateTime) -> bool {
        self.key.starts_with(prefix) && self.initiated.is_some_and(|t| t < since)
    }
}

/// Lists and aborts the multipart uploads of one S3 sink.
pub(crate) struct Uploads {
    s3: Arc<AmazonS3>,
    http: reqwest::Client,
    /// The sink was built (after the run lock was taken) at this time: an
    /// upload initiated before it cannot be this process's own.
    pub since: OffsetDateTime,
}

/// One page of a ListMultipartUploads answer.
#[derive(Debug, Default, PartialEq, Eq)]
struct Page {
    uploads: Vec<Upload>,
    /// (key-marker, upload-id-marker) of the next page, if truncated.
    next: Option<(String, String)>,
}

/// Why listing or aborting stale uploads failed (the run goes on either way).
#[derive(Debug, thiserror::Error)]
pub enum UploadsError {
    #[error("signing the request: {0}")]
    Sign(#[source] object_store::Error),
    /// reqwest's error chain, without the signed URL.
    #[error("{0}")]
    Http(String),
    #[error("the store answered {status} {code}")]
    Status {
        status: reqwest::StatusCode,
        code: String,
    },
    #[error("{0}")]
    Parse(&'static str),
    #[error("more than 1000 pages of multipart uploads")]
    TooManyPages,
    #[error("{0}")]
    Key(#[source] object_store::path::Error),
    #[error("{0}")]
    Abort(String),
}

impl Uploads {
    pub fn new(s3: Arc<AmazonS3>, http: reqwest::Client) -> Uploads {
        Uploads {
            s3,
            http,
            since: OffsetDateTime::now_utc(),
        }
    }

    /// Every incomplete upload whose key starts with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Upload>, UploadsError> {
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        // A bound on pages, against a store that keeps answering "truncated".
        for _ in 0..1000 {
            let mut q = vec![("uploads", String::new()), ("prefix", prefix.to_string())];
            if let Some((k, u)) = &marker {
                q.push(("key-marker", k.clone()));
                q.push(("upload-id-marker", u.clone()));
            }
            let url = self
                .s3
                .signed_url_opts(
                    Method::GET,
                    &ObjPath::from(""),
                    Duration::from_secs(300),
                    &SignedUrlOptions::default().with_query(q),
                )
                .await
                .map_err(UploadsError::Sign)?;
            // The signed URL carries a signature: keep it out of errors.
            let resp = self
                .http
                .get(url)
                .send()
                .await
                .map_err(|e| UploadsError::Http(crate::sink::chain(&e.without_url())))?;
            let status = resp.status();
            let body = resp
                .text()
                .await
                .map_err(|e| UploadsError::Http(crate::sink::chain(&e.without_url())))?;
            if !status.is_success() {
                let code = element(&body, "Code").map(unescape).unwrap_or_default();
                return Err(UploadsError::Status { status, code });
            }
            let page = parse_page(&body)?;
            out.extend(page.uploads);
            match page.next {
                Some(n) if Some(&n) != marker.as_ref() => marker = Some(n),
                _ => return Ok(out),
            }
        }
        Err(UploadsError::TooManyPages)
    }

    pub async fn abort(&self, u: &Upload) -> Result<(), UploadsError> {
        let path = ObjPath::parse(&u.key).map_err(UploadsError::Key)?;
        match self.s3.abort_multipart(&path, &u.id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(UploadsError::Abort(crate::sink::chain(&e))),
        }
    }
}

fn parse_page(xml: &str) -> Result<Page, UploadsError> {
    if !xml.contains("<ListMultipartUploadsResult") {
        return Err(UploadsError::Parse(
            "the answer is not a ListMultipartUploadsResult",
        ));
    }
    let mut page = Page::default();
    for u in elements(xml, "Upload") {
        let (Some(key), Some(id)) = (element(u, "Key"), element(u, "UploadId")) else {
            return Err(UploadsError::Parse("an <Upload> without Key or UploadId"));
        };
        page.uploads.push(Upload {
            key: unescape(key),
            id: unescape(id),
            initiated: element(u, "Initiated")
                .and_then(|t| OffsetDateTime::parse(t.trim(), &Rfc3339).ok()),
        });
    }
    if element(xml, "IsTruncated").map(str::trim) == Some("true") {
        let k = element(xml, "NextKeyMarker").map(unescape);
        let u = element(xml, "NextUploadIdMarker").map(unescape);
        page.next = Some((k.unwrap_or_default(), u.unwrap_or_default()));
    }
    Ok(page)
}

/// The text of every `<tag>…</tag>` (exact tag, no attributes) in `xml`.
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    elements(xml, tag).into_iter().next()
}

/// XML's five predefined entities (S3 escapes keys with them).
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_truncated_page_as_radosgw_writes_it() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>etcd-backups</Bucket><NextKeyMarker>vigil/prod/cp-1/b&amp;c.age</NextKeyMarker><Prefix>vigil/prod/</Prefix><NextUploadIdMarker>2~xyz</NextUploadIdMarker><MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated><Upload><Key>vigil/prod/cp-1/a.age</Key><UploadId>2~abc</UploadId><Initiator><ID>vigil</ID><DisplayName>vigil</DisplayName></Initiator><Owner><ID>vigil</ID></Owner><StorageClass>STANDARD</StorageClass><Initiated>2026-12-01T13:45:00.123Z</Initiated></Upload><Upload><Key>vigil/prod/cp-1/b&amp;c.age</Key><UploadId>2~xyz</UploadId><Initiated>soon</Initiated></Upload></ListMultipartUploadsResult>"#;
        let p = parse_page(xml).unwrap();
        assert_eq!(p.uploads.len(), 2);
        assert_eq!(p.uploads[0].key, "vigil/prod/cp-1/a.age");
        assert_eq!(p.uploads[0].id, "2~abc");
        assert_eq!(
            p.uploads[0].initiated.map(|t| t.unix_timestamp()),
            Some(1_796_132_700)
        );
        assert_eq!(p.uploads[1].key, "vigil/prod/cp-1/b&c.age");
        assert_eq!(
            p.uploads[1].initiated, None,
            "an unparsable date is unknown"
        );
        assert_eq!(
            p.next,
            Some(("vigil/prod/cp-1/b&c.age".into(), "2~xyz".into()))
        );
        let last = parse_page(&xml.replace(">true<", ">false<")).unwrap();
        assert_eq!(last.next, None);
        assert!(parse_page("<Error><Code>AccessDenied</Code></Error>").is_err());
    }

    #[test]
    fn only_older_uploads_under_the_prefix_are_stale() {
        let since = OffsetDateTime::from_unix_timestamp(1_796_132_700).unwrap();
        let up = |key: &str, at: Option<i64>| Upload {
            key: key.into(),
            id: "2~x".into(),
            initiated: at.map(|t| OffsetDateTime::from_unix_timestamp(t).unwrap()),
        };
        let p = "vigil/prod/";
        assert!(up("vigil/prod/cp-1/a.age", Some(1_796_132_000)).is_stale(p, since));
        // This run's own (or a clock ahead): not before the lock was taken.
        assert!(!up("vigil/prod/cp-1/a.age", Some(1_796_132_700)).is_stale(p, since));
        assert!(!up("vigil/prod/cp-1/a.age", Some(1_796_133_000)).is_stale(p, since));
        assert!(!up("vigil/prod/cp-1/a.age", None).is_stale(p, since));
        // Another cluster, or another tool, under a neighbouring prefix.
        assert!(!up("vigil/prod-2/cp-1/a.age", Some(0)).is_stale(p, since));
        assert!(!up("vigil-other/prod/cp-1/a.age", Some(0)).is_stale(p, since));
    }
}
