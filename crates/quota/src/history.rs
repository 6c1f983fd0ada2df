//! Usage history in `<state.dir>/quota.db` (SQLite, WAL, safe with several
//! writers) and the time-to-full forecast: a least-squares line through the
//! samples of the window, evaluated like Prometheus `predict_linear`.

use crate::model::Entry;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DB_FILE: &str = "quota.db";

#[derive(Debug, thiserror::Error)]
#[error("quota history {path}: {message}; please check that state.dir is writable")]
pub struct HistoryError {
    pub path: PathBuf,
    pub message: String,
}

fn herr(path: &Path, e: impl std::fmt::Display) -> HistoryError {
    HistoryError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// One usage sample: unix time in seconds, and bytes used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: f64,
    pub used: f64,
}

/// What the line says about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Forecast {
    /// Samples in the window the line was fitted to.
    pub samples: usize,
    /// Growth in bytes per day (negative when shrinking).
    pub bytes_per_day: f64,
    /// Days until usage reaches the quota; `None` when it is not growing or has no quota.
    /// 0 when it is (predicted to be) there already.
    pub days_to_full: Option<f64>,
}

/// Least squares over `samples` (oldest first), evaluated at `now`, against
/// `quota`. `None` with fewer than `min_samples` samples, or when they span
/// less than `min_span_s` seconds (or no time at all).
pub fn forecast(
    samples: &[Sample],
    now: f64,
    quota: Option<u64>,
    min_samples: usize,
    min_span_s: f64,
) -> Option<Forecast> {
    if samples.len() < min_samples.max(2) {
        return None;
    }
    let span = samples[samples.len() - 1].t - samples[0].t;
    if span < min_span_s {
        return None;
    }
    let n = samples.len() as f64;
    // Centre on `now` (as predict_linear does) to keep the numbers small.
    let mt = samples.iter().map(|s| s.t - now).sum::<f64>() / n;
    let mu = samples.iter().map(|s| s.used).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for s in samples {
        let dx = s.t - now - mt;
        sxy += dx * (s.used - mu);
        sxx += dx * dx;
    }
    if sxx <= f64::EPSILON {
        return None;
    }
    let slope = sxy / sxx; // bytes per second
    let at_now = mu - slope * mt; // the line's value at `now`
    let days_to_full = quota.and_then(|q| {
        let q = q as f64;
        if at_now >= q {
            Some(0.0)
        } else if slope > 0.0 {
            Some((q - at_now) / slope / 86400.0)
        } else {
            None
        }
    });
    Some(Forecast {
        samples: samples.len(),
        bytes_per_day: slope * 86400.0,
        days_to_full,
    })
}

/// The history database.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    pub fn open(state_dir: &Path) -> Result<Self, HistoryError> {
        let path = state_dir.join(DB_FILE);
        let err = |e: rusqlite::Error| herr(&path, e);
        vigil_core::fsutil::ensure_private_dir(state_dir).map_err(|e| herr(&path, e))?;
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS samples (
                 volume TEXT NOT NULL,
                 grp TEXT NOT NULL,
                 subvolume TEXT NOT NULL,   -- '' for the group itself
                 ts_ms INTEGER NOT NULL,
                 used INTEGER NOT NULL,
                 quota INTEGER,
                 PRIMARY KEY (volume, grp, subvolume, ts_ms)
             ) WITHOUT ROWID;",
        )
        .map_err(err)?;
        Ok(Self { conn, path })
    }

    fn err(&self, e: rusqlite::Error) -> HistoryError {
        herr(&self.path, e)
    }

    /// Records the entries' usage at `now_ms` and deletes samples older than `keep`.
    pub fn record(
        &mut self,
        entries: &[Entry],
        now_ms: i64,
        keep: Duration,
    ) -> Result<(), HistoryError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| herr(&self.path, e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO samples (volume, grp, subvolume, ts_ms, used, quota) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| herr(&self.path, e))?;
            for e in entries {
                let Some(used) = e.used else { continue };
                st.execute(params![
                    e.volume,
                    e.group,
                    e.subvolume.as_deref().unwrap_or(""),
                    now_ms,
                    used as i64,
                    e.quota.map(|q| q as i64)
                ])
                .map_err(|e| herr(&self.path, e))?;
            }
            tx.execute(
                "DELETE FROM samples WHERE ts_ms < ?1",
                [now_ms - keep.as_millis() as i64],
            )
            .map_err(|e| herr(&self.path, e))?;
        }
        tx.commit().map_err(|e| herr(&self.path, e))
    }

    /// The samples of an entry from `since_ms` on, oldest first.
    pub fn samples(&self, e: &Entry, since_ms: i64) -> Result<Vec<Sample>, HistoryError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT ts_ms, used FROM samples WHERE volume = ?1 AND grp = ?2 AND subvolume = ?3 AND ts_ms >= ?4 ORDER BY ts_ms",
            )
            .map_err(|x| self.err(x))?;
        let rows = st
            .query_map(
                params![
                    e.volume,
                    e.group,
                    e.subvolume.as_deref().unwrap_or(""),
                    since_ms
                ],
                |r| {
                    Ok(Sample {
                        t: r.get::<_, i64>(0)? as f64 / 1000.0,
                        used: r.get::<_, i64>(1)? as f64,
                    })
                },
            )
            .map_err(|x| self.err(x))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|x| self.err(x))
    }

    /// Entries with history in `volume` (volume, group, subvolume or `None`).
    pub fn known(&self, volume: &str) -> Result<Vec<(String, Option<String>)>, HistoryError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT DISTINCT grp, subvolume FROM samples WHERE volume = ?1")
            .map_err(|x| self.err(x))?;
        let rows = st
            .query_map([volume], |r| {
                let s: String = r.get(1)?;
                Ok((r.get::<_, String>(0)?, (!s.is_empty()).then_some(s)))
            })
            .map_err(|x| self.err(x))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|x| self.err(x))
    }

    /// Forgets an entry that no longer exists.
    pub fn forget(&self, volume: &str, group: &str, sub: Option<&str>) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "DELETE FROM samples WHERE volume = ?1 AND grp = ?2 AND subvolume = ?3",
                params![volume, group, sub.unwrap_or("")],
            )
            .map(|_| ())
            .map_err(|x| self.err(x))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(n: usize, step: f64, start: f64, per_s: f64) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                t: 1_000_000.0 + i as f64 * step,
                used: start + per_s * i as f64 * step,
            })
            .collect()
    }

    #[test]
    fn exact_line_gives_exact_time_to_full() {
        // 1 GiB per day for 6 days up to 6 GiB; quota 10 GiB: 4 days left.
        let gib = (1u64 << 30) as f64;
        let s = line(7, 86400.0, 0.0, gib / 86400.0);
        let now = s.last().unwrap().t;
        let f = forecast(&s, now, Some(10 << 30), 3, 0.0).unwrap();
        assert!((f.bytes_per_day - gib).abs() < 1.0, "{f:?}");
        assert!((f.days_to_full.unwrap() - 4.0).abs() < 1e-9, "{f:?}");
        assert_eq!(f.samples, 7);
    }

    #[test]
    fn flat_shrinking_too_few_and_already_full() {
        let s = line(5, 60.0, 500.0, 0.0);
        let now = s.last().unwrap().t;
        assert_eq!(
            forecast(&s, now, Some(1000), 3, 0.0).unwrap().days_to_full,
            None
        );
        let s = line(5, 60.0, 900.0, -1.0);
        assert_eq!(
            forecast(&s, now, Some(1000), 3, 0.0).unwrap().days_to_full,
            None
        );
        assert!(forecast(&s[..2], now, Some(1000), 3, 0.0).is_none());
        let s = line(5, 60.0, 1100.0, 0.0);
        assert_eq!(
            forecast(&s, now, Some(1000), 3, 0.0).unwrap().days_to_full,
            Some(0.0)
        );
        // Same instant only: no line.
        let s = vec![Sample { t: 5.0, used: 1.0 }; 4];
        assert!(forecast(&s, 5.0, Some(10), 3, 0.0).is_none());
        // No quota: a rate, no time to full.
        let s = line(5, 60.0, 0.0, 1.0);
        let f = forecast(&s, s[4].t, None, 3, 0.0).unwrap();
        assert!(f.days_to_full.is_none() && f.bytes_per_day > 0.0);
    }

    #[test]
    fn noisy_growth_uses_the_fit_at_now() {
        // Noise around 1000 B/s; the line, not the last sample, decides.
        let mut s = line(10, 10.0, 0.0, 1000.0);
        for (i, x) in s.iter_mut().enumerate() {
            x.used += if i % 2 == 0 { 500.0 } else { -500.0 };
        }
        let now = s[9].t;
        let f = forecast(&s, now, Some(1_000_000), 3, 0.0).unwrap();
        let secs = f.days_to_full.unwrap() * 86400.0;
        assert!((secs - 910.0).abs() < 20.0, "{secs}");
    }

    #[test]
    fn history_round_trip_concurrent_writers_and_pruning() {
        let d = tempfile::tempdir().unwrap();
        let e = Entry {
            volume: "vol1".into(),
            group: "g".into(),
            subvolume: Some("s".into()),
            state: "complete".into(),
            used: Some(10),
            quota: Some(100),
        };
        let mut a = History::open(d.path()).unwrap();
        let mut b = History::open(d.path()).unwrap();
        a.record(std::slice::from_ref(&e), 1_000, Duration::from_secs(3600))
            .unwrap();
        b.record(
            &[Entry {
                used: Some(20),
                ..e.clone()
            }],
            2_000,
            Duration::from_secs(3600),
        )
        .unwrap();
        let s = a.samples(&e, 0).unwrap();
        assert_eq!(
            s,
            vec![Sample { t: 1.0, used: 10.0 }, Sample { t: 2.0, used: 20.0 }]
        );
        assert_eq!(
            a.known("vol1").unwrap(),
            vec![("g".to_string(), Some("s".to_string()))]
        );
        // A sample an hour later prunes the old ones.
        a.record(
            std::slice::from_ref(&e),
            3_700_000,
            Duration::from_secs(3600),
        )
        .unwrap();
        assert_eq!(a.samples(&e, 0).unwrap().len(), 1);
        a.forget("vol1", "g", Some("s")).unwrap();
        assert!(a.known("vol1").unwrap().is_empty());
    }
}
