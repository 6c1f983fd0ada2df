//! Reading the journal back without vigil, as README's format section says:
//! the manifests are JSON beside the segments, and a segment is
//! `age -d -i KEY SEG | zstd -d`, one JSON event per line.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

const MANIFEST_EXT: &str = ".jsonl.zst.age.json";

/// The fields of a segment manifest (`<segment>.json`) the bench reads.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Manifest {
    pub segment: String,
    pub first_revision: i64,
    pub last_revision: i64,
    pub events: u64,
    pub size: u64,
    pub plaintext_size: u64,
    #[serde(default)]
    pub gap: Option<serde_json::Value>,
    /// When the segment was closed (written just before the manifest).
    pub created_at: String,
}

/// The newest revision in a closed segment of `dir`, from the manifests'
/// names alone (`<first>-<last>.jsonl.zst.age.json`): cheap enough to poll.
pub(super) fn committed(dir: &Path) -> Option<i64> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (_, last) = name.strip_suffix(MANIFEST_EXT)?.split_once('-')?;
            last.parse().ok()
        })
        .max()
}

/// Every manifest in `dir`, by first revision.
pub(super) fn manifests(dir: &Path) -> Result<Vec<Manifest>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.to_string_lossy().ends_with(MANIFEST_EXT) {
            let m: Manifest = serde_json::from_slice(&std::fs::read(&p)?)
                .with_context(|| format!("{}: not a segment manifest", p.display()))?;
            v.push(m);
        }
    }
    v.sort_by_key(|m| m.first_revision);
    Ok(v)
}

/// The two fields of an event line the bench needs (the others are ignored).
#[derive(Deserialize)]
struct Line {
    revision: i64,
    received_at: String,
}

/// What the journal holds, per revision: when vigil received it and when
/// the segment holding it was closed (ms since the epoch).
#[derive(Debug, Default)]
pub(super) struct Received {
    first: i64,
    at: Vec<Option<(i64, i64)>>,
    pub events: u64,
}

impl Received {
    /// (received, closed) of `rev`, if the journal holds it.
    pub fn get(&self, rev: i64) -> Option<(i64, i64)> {
        let i = usize::try_from(rev - self.first).ok()?;
        self.at.get(i).copied().flatten()
    }
}

/// Decrypts and decompresses every segment of `manifests` with the age and
/// zstd CLIs and records each revision's receive and close time.
pub(super) fn decode(dir: &Path, identity: &Path, manifests: &[Manifest]) -> Result<Received> {
    let (Some(a), Some(b)) = (manifests.first(), manifests.last()) else {
        return Ok(Received::default());
    };
    let mut r = Received {
        first: a.first_revision,
        at: vec![None; (b.last_revision - a.first_revision + 1).max(0) as usize],
        events: 0,
    };
    for m in manifests {
        let closed = rfc3339_ms(&m.created_at)
            .with_context(|| format!("{}: created_at {:?}", m.segment, m.created_at))?;
        let seg = dir.join(&m.segment);
        let mut age = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(identity)
            .arg(&seg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running age")?;
        let plain = age.stdout.take().context("age has no stdout")?;
        let mut zstd = Command::new("zstd")
            .args(["-d", "-c", "-q"])
            .stdin(plain)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running zstd")?;
        let n = match read_lines(&mut zstd, &mut r, closed, &m.segment) {
            Ok(n) => n,
            Err(e) => {
                for c in [&mut age, &mut zstd] {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(e);
            }
        };
        let err = |c: &mut std::process::Child| {
            let mut s = String::new();
            if let Some(mut e) = c.stderr.take() {
                let _ = e.read_to_string(&mut s);
            }
            s
        };
        let (za, zz) = (age.wait()?, zstd.wait()?);
        if !za.success() || !zz.success() {
            bail!(
                "decoding {}: age {za}: {} zstd {zz}: {}",
                seg.display(),
                err(&mut age),
                err(&mut zstd)
            );
        }
        if n != m.events {
            bail!(
                "{}: {n} events decoded, its manifest says {}",
                m.segment,
                m.events
            );
        }
        r.events += n;
    }
    Ok(r)
}

/// Reads the event lines `zstd` prints into `r`; returns how many.
fn read_lines(
    zstd: &mut std::process::Child,
    r: &mut Received,
    closed: i64,
    segment: &str,
) -> Result<u64> {
    let lines = BufReader::new(zstd.stdout.take().context("zstd has no stdout")?);
    let mut n = 0u64;
    for line in lines.lines() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let e: Line = serde_json::from_str(&line)
            .with_context(|| format!("{segment}: not a journal event: {line:.200}"))?;
        let received = rfc3339_ms(&e.received_at)
            .with_context(|| format!("{segment}: received_at {:?}", e.received_at))?;
        if let Some(slot) = usize::try_from(e.revision - r.first)
            .ok()
            .and_then(|i| r.at.get_mut(i))
        {
            // A revision's first event is when it was received.
            slot.get_or_insert((received, closed));
        }
        n += 1;
    }
    Ok(n)
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as the journal
/// writes it (`2026-12-02T10:00:00.123Z`; the fraction may be absent).
pub(super) fn rfc3339_ms(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let time = time.strip_suffix('Z')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, mo, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(str::parse::<i64>);
    let (h, mi, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let ms = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        digits.parse().ok()?
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_as_the_journal_writes_it() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
        // date -u -d 2026-12-02T10:00:00Z +%s → 1796205600
        assert_eq!(
            rfc3339_ms("2026-12-02T10:00:00.123Z"),
            Some(1_796_205_600_123)
        );
        // date -u -d 2000-02-29T23:59:59Z +%s → 951868799
        assert_eq!(rfc3339_ms("2000-02-29T23:59:59Z"), Some(951_868_799_000));
        assert_eq!(rfc3339_ms("2000-02-29T23:59:59.5Z"), Some(951_868_799_500));
        assert_eq!(rfc3339_ms("2000-02-29 23:59:59Z"), None);
        assert_eq!(rfc3339_ms("2000-13-01T00:00:00Z"), None);
    }
}
