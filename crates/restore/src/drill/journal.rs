//! The drill's proof of the journal (issue 17): the newest archive at or
//! before the journal's newest revision R, restored into a scratch etcd,
//! the journal replayed onto it up to R, and the result compared with what
//! the live cluster serves at R: every key, value, create and mod revision,
//! version and lease. Both sides are read in pages in key order, hashed page
//! by page, so memory stays flat; the live side is read first (before its
//! revision R can be compacted away) and only its page hashes are kept. A
//! mismatch names the first key that differs.

use super::Ctx;
use crate::pitr::{self, Point, PointOptions};
use crate::RestoreError;
use etcd_client::{GetOptions, KeyValue, KvClient};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};
use vigil_core::outcome::Stage;
use vigil_core::Config;

/// Keys per page read from either side.
const PAGE: i64 = 500;
/// A page of large values (Secrets up to 1.5 MiB each) exceeds gRPC's 4 MiB default.
const MAX_MESSAGE: usize = 256 << 20;

/// What the journal proof found.
#[derive(Debug, Clone, Serialize)]
pub struct JournalDrill {
    pub ok: bool,
    pub stage: Stage,
    pub error: Option<String>,
    /// Why the journal was not proven, when it could not be (no segment
    /// yet, the cluster's TLS files unreadable here, no member answering):
    /// not a failure of the journal, and no alert.
    pub skipped: Option<String>,
    /// Where the journal was read (`local` or a sink).
    pub source: Option<String>,
    pub archive: Option<String>,
    /// The archive's actual revision (R0).
    pub snapshot_revision: Option<i64>,
    /// R: the journal's newest revision, and when vigil received it.
    pub target_revision: Option<i64>,
    pub target_received_at: Option<String>,
    pub segments: usize,
    pub revisions_replayed: u64,
    pub events_replayed: u64,
    /// The member the live state at R was read from.
    pub live_member: Option<String>,
    /// The live cluster's revision when it was read.
    pub live_revision: Option<i64>,
    pub keys_compared: u64,
    /// The recovery point proven: how far the journal's newest change lay
    /// behind the live cluster when it was read (0 if the cluster had not
    /// moved on since).
    pub rpo_seconds: Option<f64>,
    pub duration_ms: u64,
}

/// Whether the drill proves the journal: `[journal]` is configured and the
/// drill's `--source` (if any) can hold one.
pub(super) fn wanted(cfg: &Config, source: Option<&str>) -> bool {
    let Some(jc) = &cfg.journal else {
        return false;
    };
    match source {
        None | Some("local") => true,
        Some(name) => cfg.sinks().any(|s| {
            s.name == name
                && s.takes_journal()
                && jc
                    .sinks
                    .as_ref()
                    .is_none_or(|w| w.iter().any(|n| n == name))
        }),
    }
}

pub(super) fn prove(cfg: &Config, ctx: &Ctx<'_>, source: Option<&str>, dir: &Path) -> JournalDrill {
    let started = Instant::now();
    let mut r = JournalDrill {
        ok: false,
        stage: Stage::Stream,
        error: None,
        skipped: None,
        source: None,
        archive: None,
        snapshot_revision: None,
        target_revision: None,
        target_received_at: None,
        segments: 0,
        revisions_replayed: 0,
        events_replayed: 0,
        live_member: None,
        live_revision: None,
        keys_compared: 0,
        rpo_seconds: None,
        duration_ms: 0,
    };
    match steps(cfg, ctx, source, dir, &mut r) {
        Ok(()) => {
            r.ok = true;
            r.stage = Stage::Done;
        }
        Err(Stop::Skip(why)) => {
            r.ok = true;
            r.skipped = Some(why);
        }
        Err(Stop::Fail(stage, e)) => {
            r.stage = stage;
            r.error = Some(e);
        }
    }
    r.duration_ms = started.elapsed().as_millis() as u64;
    r
}

/// Why the proof stopped short.
enum Stop {
    Fail(Stage, String),
    /// It could not be tried here (see [`JournalDrill::skipped`]).
    Skip(String),
}

type Step<T> = Result<T, Stop>;

fn at<E: std::fmt::Display>(stage: Stage) -> impl Fn(E) -> Stop {
    move |e| Stop::Fail(stage, e.to_string())
}

fn steps(
    cfg: &Config,
    ctx: &Ctx<'_>,
    source: Option<&str>,
    dir: &Path,
    r: &mut JournalDrill,
) -> Step<()> {
    let rt = vigil_core::runtime::current_thread().map_err(at(Stage::Connect))?;
    let sinks = vigil_journal::ship::journal_sinks(cfg).map_err(at(Stage::Stream))?;
    let o = PointOptions {
        point: Point::Time(vigil_core::now()),
        force: false,
        lease_ttl: Duration::from_secs(3600),
    };
    let j = rt
        .block_on(pitr::open(cfg, &sinks, source, Some(ctx.ids), &o))
        .map_err(|e| match e {
            RestoreError::NoJournal(m) => Stop::Skip(m),
            e => Stop::Fail(Stage::Stream, e.to_string()),
        })?;
    r.source = Some(j.src.name());
    if let Some(b) = &j.broken {
        return Err(Stop::Fail(
            Stage::Verify,
            format!(
                "the journal's chain in {} is broken: {b}; a restore cannot go past it (run `vigil-journal verify --source {}`)",
                j.src.name(),
                j.src.name()
            ),
        ));
    }
    let target = j.target;
    r.target_revision = Some(target);
    r.target_received_at = Some(j.target_at.clone());

    // The live side first: R is recent now, and may be compacted later.
    (ctx.stage)(Stage::Consistency);
    let (live, read_at) = rt.block_on(live_digest(cfg, target, r))?;
    let received =
        time::OffsetDateTime::parse(&j.target_at, &time::format_description::well_known::Rfc3339)
            .ok();
    let behind = r.live_revision.is_some_and(|l| l > target);
    r.rpo_seconds = Some(match received {
        Some(t) if behind => (read_at - t).as_seconds_f64().max(0.0),
        _ => 0.0,
    });

    // The base: the newest archive at or before R, from any member.
    (ctx.stage)(Stage::Stream);
    let archive = crate::select::Selector {
        revision: Some(target),
        ..Default::default()
    }
    .select(ctx.cat)
    .map_err(at(Stage::Stream))?;
    r.archive = Some(archive.id.clone());
    let snap = dir.join("archive.db");
    crate::fetch::fetch(archive, ctx.stores, Some(ctx.ids), &snap).map_err(at(Stage::Verify))?;

    (ctx.stage)(Stage::Write);
    let rep = pitr::replay_into(
        ctx.tool,
        ctx.etcd_bin,
        &snap,
        dir,
        &archive.id,
        &j,
        Some(ctx.ids),
        &o,
        &rt,
    )
    .map_err(at(Stage::Write))?;
    let _ = std::fs::remove_file(&snap);
    r.snapshot_revision = Some(rep.report.snapshot_revision);
    r.segments = rep.report.segments;
    r.revisions_replayed = rep.report.revisions;
    r.events_replayed = rep.report.events;

    (ctx.stage)(Stage::Consistency);
    let mut scratch = rep
        .client
        .kv_client()
        .max_decoding_message_size(MAX_MESSAGE);
    let res = rt.block_on(compare(cfg, &mut scratch, &live, target, r));
    drop(rep.scratch);
    res
}

/// Page hashes of one side: the first key of each page and its sha256.
struct Pages {
    pages: Vec<(Vec<u8>, [u8; 32])>,
    keys: u64,
}

fn hash_page(kvs: &[KeyValue]) -> [u8; 32] {
    let mut h = Sha256::new();
    for kv in kvs {
        for b in [kv.key(), kv.value()] {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
        for n in [
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
            kv.lease(),
        ] {
            h.update(n.to_be_bytes());
        }
    }
    h.finalize().into()
}

/// One page at `rev` from `start` (inclusive), in key order.
async fn page(
    kv: &mut KvClient,
    start: &[u8],
    rev: i64,
) -> Result<etcd_client::GetResponse, etcd_client::Error> {
    let o = GetOptions::new()
        .with_from_key()
        .with_limit(PAGE)
        .with_revision(rev);
    kv.get(start.to_vec(), Some(o)).await
}

/// The key after `k` in byte order.
fn after(k: &[u8]) -> Vec<u8> {
    let mut n = k.to_vec();
    n.push(0);
    n
}

/// Reads the live cluster's state at `rev` from the first member that
/// answers; returns its page hashes and when it was read.
async fn live_digest(
    cfg: &Config,
    rev: i64,
    r: &mut JournalDrill,
) -> Step<(Pages, time::OffsetDateTime)> {
    let tls = cfg
        .tls()
        .map(vigil_etcd::TlsMaterial::load)
        .transpose()
        .map_err(|e| {
            Stop::Skip(format!(
                "the live cluster cannot be read here to compare with: {e} (run the drill where cluster.tls is readable, e.g. as vigil-restore-drill.service)"
            ))
        })?;
    let timeout = cfg
        .snapshot
        .as_ref()
        .map(|s| s.connect_timeout.get())
        .unwrap_or(Duration::from_secs(5));
    let mut why = Vec::new();
    for m in cfg.members() {
        let mc = match vigil_etcd::connect(m, tls.as_ref(), timeout).await {
            Ok(c) => c,
            Err(e) => {
                why.push(e.to_string());
                continue;
            }
        };
        let mut kv = mc.client.kv_client().max_decoding_message_size(MAX_MESSAGE);
        let read_at = vigil_core::now();
        match read_all(&mut kv, rev).await {
            Ok((pages, live_rev)) => {
                r.live_member = Some(m.name.clone());
                r.live_revision = Some(live_rev);
                return Ok((pages, read_at));
            }
            Err(e) if e.contains("compacted") => {
                return Err(Stop::Fail(
                    Stage::Consistency,
                    format!(
                        "member {} ({}) has compacted revision {rev} away before the drill read it: {e}; \
                         the journal lags more than the cluster's compaction window (see journal_lagging)",
                        m.name, m.endpoint
                    ),
                ));
            }
            Err(e) => why.push(format!("member {} ({}): {e}", m.name, m.endpoint)),
        }
    }
    // Health checks alert on a cluster that does not answer; the journal
    // is not at fault.
    Err(Stop::Skip(format!(
        "no member served the live state at revision {rev} to compare the journal with: {}",
        why.join("; ")
    )))
}

/// Every page at `rev`; also the member's current revision.
async fn read_all(kv: &mut KvClient, rev: i64) -> Result<(Pages, i64), String> {
    let mut out = Pages {
        pages: Vec::new(),
        keys: 0,
    };
    let mut start = vec![0u8];
    let mut live_rev = 0;
    loop {
        let mut resp = page(kv, &start, rev)
            .await
            .map_err(|e| vigil_core::error_chain(&e))?;
        live_rev = live_rev.max(resp.header().map(|h| h.revision()).unwrap_or(0));
        let more = resp.more();
        let kvs = resp.take_kvs();
        let Some(last) = kvs.last() else { break };
        let next = after(last.key());
        out.keys += kvs.len() as u64;
        out.pages.push((start, hash_page(&kvs)));
        start = next;
        if !more {
            break;
        }
    }
    Ok((out, live_rev))
}

fn describe_key(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("0x{}", hex::encode(k)),
    }
}

/// The replayed side against the live page hashes; at the first page that
/// differs, that page is read from both again to name the key.
async fn compare(
    cfg: &Config,
    scratch: &mut KvClient,
    live: &Pages,
    rev: i64,
    r: &mut JournalDrill,
) -> Step<()> {
    let cons = |e: String| Stop::Fail(Stage::Consistency, e);
    let mut start = vec![0u8];
    let mut idx = 0usize;
    loop {
        let kvs = page(scratch, &start, rev)
            .await
            .map(|mut r| r.take_kvs())
            .map_err(|e| {
                cons(format!(
                    "reading the replayed state: {}",
                    vigil_core::error_chain(&e)
                ))
            })?;
        let Some(last) = kvs.last() else { break };
        let same = live
            .pages
            .get(idx)
            .is_some_and(|(k, h)| *k == start && *h == hash_page(&kvs));
        if !same {
            let detail = first_difference(cfg, &kvs, &start, rev, r).await;
            return Err(cons(format!(
                "the journal does not replay to the live state at revision {rev}: {detail}"
            )));
        }
        r.keys_compared += kvs.len() as u64;
        start = after(last.key());
        idx += 1;
    }
    if idx != live.pages.len() {
        return Err(cons(format!(
            "the journal does not replay to the live state at revision {rev}: the replay holds {} keys, the live cluster {} \
             (missing from key {} on)",
            r.keys_compared,
            live.keys,
            live.pages.get(idx).map(|(k, _)| describe_key(k)).unwrap_or_default()
        )));
    }
    Ok(())
}

/// Names the first key whose state differs between the replayed page and
/// the live page from the same start key.
async fn first_difference(
    cfg: &Config,
    replayed: &[KeyValue],
    start: &[u8],
    rev: i64,
    r: &JournalDrill,
) -> String {
    let tls = cfg
        .tls()
        .and_then(|t| vigil_etcd::TlsMaterial::load(t).ok());
    let member = r
        .live_member
        .as_ref()
        .and_then(|n| cfg.members().find(|m| m.name == *n));
    let live = match member {
        Some(m) => match vigil_etcd::connect(m, tls.as_ref(), Duration::from_secs(5)).await {
            Ok(mc) => {
                let mut kv = mc.client.kv_client().max_decoding_message_size(MAX_MESSAGE);
                page(&mut kv, start, rev)
                    .await
                    .ok()
                    .map(|mut r| r.take_kvs())
            }
            Err(_) => None,
        },
        None => None,
    };
    let Some(live) = live else {
        return format!(
            "the keys from {} on differ (the live page could not be read again to name the key)",
            describe_key(start)
        );
    };
    for i in 0..replayed.len().max(live.len()) {
        match (replayed.get(i), live.get(i)) {
            (Some(a), Some(b)) if a.key() != b.key() => {
                let (first, which) = if a.key() < b.key() {
                    (a.key(), "the replay holds it, the live cluster does not")
                } else {
                    (b.key(), "the live cluster holds it, the replay does not")
                };
                return format!("key {}: {which}", describe_key(first));
            }
            (Some(a), Some(b)) => {
                if hash_page(std::slice::from_ref(a)) != hash_page(std::slice::from_ref(b)) {
                    return format!(
                        "key {}: replayed mod revision {} version {} ({} bytes), live mod revision {} version {} ({} bytes){}",
                        describe_key(a.key()),
                        a.mod_revision(),
                        a.version(),
                        a.value().len(),
                        b.mod_revision(),
                        b.version(),
                        b.value().len(),
                        if a.value() != b.value() { ", values differ" } else { "" }
                    );
                }
            }
            (Some(a), None) => {
                return format!(
                    "key {}: the replay holds it, the live cluster does not",
                    describe_key(a.key())
                )
            }
            (None, Some(b)) => {
                return format!(
                    "key {}: the live cluster holds it, the replay does not",
                    describe_key(b.key())
                )
            }
            (None, None) => break,
        }
    }
    format!("the keys from {} on differ", describe_key(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_is_the_next_key_in_byte_order() {
        assert_eq!(after(b"a"), b"a\0".to_vec());
        assert!(after(b"a").as_slice() > b"a".as_slice());
        assert!(after(b"a").as_slice() < b"a\x01".as_slice());
    }

    #[test]
    fn binary_keys_are_named_in_hex() {
        assert_eq!(describe_key(b"/registry/x"), "\"/registry/x\"");
        assert_eq!(describe_key(&[0xff, 0x00]), "0xff00");
    }
}
