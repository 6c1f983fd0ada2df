//! The SQLite state: alerts, the outbox, per-channel delivery state and
//! silences, in `<state.dir>/alerts.db` (mode 0600, WAL).
//!
//! Several processes write at once (the timer jobs ingest, `vigil-notify run`
//! delivers): every write is one `BEGIN IMMEDIATE` transaction, and readers
//! and writers wait up to [`BUSY_TIMEOUT`] for each other.

pub(crate) mod rows;

use crate::model::{from_ms, rfc3339, to_ms, Alert, Severity, Source, Status};
use crate::AlertError;
use rusqlite::Row;
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use serde::Serialize;
use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use vigil_core::fsutil;

pub(crate) const ALERT_COLUMNS: &str = "key, name, labels, source, severity, status, summary, facts, runbook, cluster, \
    fail_streak, ok_streak, first_seen_ms, last_seen_ms, fired_ms, resolved_ms, cycle, notified_channels, last_notified_ms";

pub(crate) fn row_to_alert(r: &Row) -> rusqlite::Result<Alert> {
    Ok(Alert {
        key: r.get(0)?,
        name: r.get(1)?,
        labels: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
        source: Source::from_str(&r.get::<_, String>(3)?).unwrap_or(Source::Vigil),
        severity: Severity::from_str(&r.get::<_, String>(4)?).unwrap_or(Severity::Critical),
        status: Status::parse(&r.get::<_, String>(5)?),
        summary: r.get(6)?,
        facts: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        runbook: r.get(8)?,
        cluster: r.get(9)?,
        fail_streak: r.get::<_, i64>(10)? as u32,
        ok_streak: r.get::<_, i64>(11)? as u32,
        first_seen_ms: r.get(12)?,
        last_seen_ms: r.get(13)?,
        fired_ms: r.get(14)?,
        resolved_ms: r.get(15)?,
        cycle: r.get::<_, i64>(16)? as u32,
        notified_channels: serde_json::from_str(&r.get::<_, String>(17)?).unwrap_or_default(),
        last_notified_ms: r.get(18)?,
    })
}

/// Writes one alert row (insert or replace).
pub(crate) fn save_alert(tx: &Transaction, a: &Alert) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO alerts ({ALERT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ),
        params![
            a.key,
            a.name,
            serde_json::to_string(&a.labels).unwrap_or_default(),
            a.source.as_str(),
            a.severity.as_str(),
            a.status.as_str(),
            a.summary,
            serde_json::to_string(&a.facts).unwrap_or_default(),
            a.runbook,
            a.cluster,
            a.fail_streak as i64,
            a.ok_streak as i64,
            a.first_seen_ms,
            a.last_seen_ms,
            a.fired_ms,
            a.resolved_ms,
            a.cycle as i64,
            serde_json::to_string(&a.notified_channels).unwrap_or_default(),
            a.last_notified_ms,
        ],
    )?;
    Ok(())
}

/// The database file inside `state.dir`.
pub const DB_FILE: &str = "alerts.db";
/// How long a writer waits for another one.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Sent outbox rows are kept this long (for `status` and duplicate checks).
const KEEP_SENT: Duration = Duration::from_secs(14 * 24 * 3600);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    source TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    facts TEXT NOT NULL,
    runbook TEXT,
    cluster TEXT NOT NULL,
    fail_streak INTEGER NOT NULL DEFAULT 0,
    ok_streak INTEGER NOT NULL DEFAULT 0,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    fired_ms INTEGER,
    resolved_ms INTEGER,
    cycle INTEGER NOT NULL DEFAULT 0,
    notified_channels TEXT NOT NULL DEFAULT '[]',
    last_notified_ms INTEGER
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    alert_key TEXT,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    sent_ms INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    lease_owner TEXT,
    lease_until_ms INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (channel, sent_ms, id);
CREATE TABLE IF NOT EXISTS channel_state (
    channel TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_ok_ms INTEGER,
    last_refresh_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    ends_ms INTEGER NOT NULL,
    expired_ms INTEGER
);
"#;

/// An open alert database.
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
    pub path: PathBuf,
}

impl Store {
    /// Opens (and creates, 0600 in a 0700 dir) `<state_dir>/alerts.db`.
    pub fn open(state_dir: &Path) -> Result<Store, AlertError> {
        fsutil::ensure_private_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        // Create the file ourselves so it is 0600 from the first byte; SQLite
        // gives the -wal and -shm files the same mode.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| fsutil::FsError::new("creating", &path, e))?;
        let db = |e: rusqlite::Error| AlertError::db(&path, e);
        let conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        // Switching to WAL takes an exclusive lock and SQLite answers BUSY
        // at once, without its busy handler, while another process opens
        // the same new database: retry within the busy timeout.
        let started = std::time::Instant::now();
        let mode: String = loop {
            match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.map_err(db)?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(db = %path.display(), mode, "SQLite did not switch to WAL");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        let mut s = Store { conn, path };
        s.write(|tx| tx.execute_batch(SCHEMA))?;
        // SQLite has made its -wal and -shm files by now.
        let files: Vec<std::path::PathBuf> = ["", "-wal", "-shm"]
            .iter()
            .map(|x| state_dir.join(format!("{DB_FILE}{x}")))
            .collect();
        fsutil::adopt_dir_owner(state_dir, &files);
        Ok(s)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits it.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, AlertError> {
        let path = self.path.clone();
        let db = |e: rusqlite::Error| AlertError::db(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let v = f(&tx).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(v)
    }

    /// Removes secrets from text stored before replies were scrubbed (by an
    /// older vigil, or a secret added to the config since): last errors,
    /// alert summaries and facts, queued payloads. When something changed,
    /// the file is rebuilt (VACUUM, with secure_delete) and the WAL
    /// truncated, so the old text is gone from the disk too. Returns how many
    /// values changed.
    pub fn scrub(&mut self, r: &crate::redact::Redactor) -> Result<usize, AlertError> {
        // (table, key column, text column, whether the text is JSON)
        const COLUMNS: [(&str, &str, &str, bool); 6] = [
            ("channel_state", "channel", "last_error", false),
            ("outbox", "id", "last_error", false),
            ("outbox", "id", "payload", true),
            ("alerts", "key", "summary", false),
            ("alerts", "key", "facts", true),
            ("silences", "id", "reason", false),
        ];
        let n = self.write(|tx| {
            let mut n = 0;
            for (table, key, col, json) in COLUMNS {
                let rows: Vec<(rusqlite::types::Value, String)> = tx
                    .prepare(&format!(
                        "SELECT {key}, {col} FROM {table} WHERE {col} IS NOT NULL"
                    ))?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut up =
                    tx.prepare(&format!("UPDATE {table} SET {col} = ?2 WHERE {key} = ?1"))?;
                for (k, v) in rows {
                    let clean = if json {
                        // Scrub the strings inside, so the JSON stays readable.
                        match serde_json::from_str::<serde_json::Value>(&v) {
                            Ok(mut j) => {
                                scrub_json(&mut j, r);
                                serde_json::to_string(&j).unwrap_or(v.clone())
                            }
                            Err(_) => r.scrub(&v),
                        }
                    } else {
                        r.scrub(&v)
                    };
                    if clean != v {
                        up.execute(params![k, clean])?;
                        n += 1;
                    }
                }
            }
            Ok(n)
        })?;
        if n > 0 {
            // Earlier versions of those rows are in free pages and the WAL.
            self.conn
                .execute_batch(
                    "PRAGMA secure_delete = ON; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
                )
                .map_err(|e| self.db_err(e))?;
        }
        Ok(n)
    }

    pub(crate) fn db_err(&self, e: rusqlite::Error) -> AlertError {
        AlertError::db(&self.path, e)
    }

    // ---- silences ----

    /// Adds a silence; returns its id.
    pub fn add_silence(
        &mut self,
        matchers: &BTreeMap<String, String>,
        duration: Duration,
        reason: &str,
        by: &str,
        now: OffsetDateTime,
    ) -> Result<Silence, AlertError> {
        let id = format!("{:08x}", fastrand::u32(..));
        let ends = now + duration;
        let m = serde_json::to_string(matchers).unwrap_or_else(|_| "{}".into());
        self.write(|tx| {
            tx.execute(
                "INSERT INTO silences (id, matchers, reason, created_by, created_ms, ends_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, m, reason, by, to_ms(now), to_ms(ends)],
            )
        })?;
        Ok(Silence {
            id,
            matchers: matchers.clone(),
            reason: reason.into(),
            created_by: by.into(),
            created_at: rfc3339(now),
            ends_at: rfc3339(ends),
            active: true,
        })
    }

    /// Silences, newest first; expired ones only with `all`.
    pub fn silences(&self, all: bool, now: OffsetDateTime) -> Result<Vec<Silence>, AlertError> {
        let mut st = self
            .conn
            .prepare("SELECT id, matchers, reason, created_by, created_ms, ends_ms, expired_ms FROM silences ORDER BY created_ms DESC")
            .map_err(|e| self.db_err(e))?;
        let rows = st
            .query_map([], |r| {
                let ends: i64 = r.get(5)?;
                let expired: Option<i64> = r.get(6)?;
                let end = expired.map(|x| x.min(ends)).unwrap_or(ends);
                Ok(Silence {
                    id: r.get(0)?,
                    matchers: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                    reason: r.get(2)?,
                    created_by: r.get(3)?,
                    created_at: rfc3339(from_ms(r.get(4)?)),
                    ends_at: rfc3339(from_ms(end)),
                    active: end > to_ms(now),
                })
            })
            .map_err(|e| self.db_err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let s = r.map_err(|e| self.db_err(e))?;
            if all || s.active {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Ends a silence now.
    pub fn expire_silence(&mut self, id: &str, now: OffsetDateTime) -> Result<(), AlertError> {
        let n = self.write(|tx| {
            tx.execute(
                "UPDATE silences SET expired_ms = ?2 WHERE id = ?1 AND expired_ms IS NULL",
                params![id, to_ms(now)],
            )
        })?;
        if n == 0 {
            return Err(AlertError::SilenceNotFound(id.to_string()));
        }
        Ok(())
    }

    // ---- read-only views ----

    /// Every alert that is not plain OK (or all with `all`), most severe first.
    pub fn alerts(&self, all: bool) -> Result<Vec<crate::model::AlertView>, AlertError> {
        let sql = format!(
            "SELECT {} FROM alerts {} ORDER BY status = 'firing' DESC, severity = 'critical' DESC, key",
            ALERT_COLUMNS,
            if all { "" } else { "WHERE status != 'ok'" }
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.db_err(e))?;
        let rows = st.query_map([], row_to_alert).map_err(|e| self.db_err(e))?;
        rows.map(|r| r.map(|a| a.view()).map_err(|e| self.db_err(e)))
            .collect()
    }

    /// Outbox rows not yet delivered, per channel.
    pub fn pending_counts(&self) -> Result<BTreeMap<String, u64>, AlertError> {
        let mut st = self
            .conn
            .prepare("SELECT channel, COUNT(*) FROM outbox WHERE sent_ms IS NULL GROUP BY channel")
            .map_err(|e| self.db_err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| self.db_err(e))?;
        rows.map(|r| r.map_err(|e| self.db_err(e))).collect()
    }

    /// Per-channel delivery state, for `vigil-notify status`.
    pub fn channel_states(&self) -> Result<Vec<ChannelState>, AlertError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT c.channel, c.failures, c.next_attempt_ms, c.last_error, c.last_ok_ms,
                   (SELECT COUNT(*) FROM outbox o WHERE o.channel = c.channel AND o.sent_ms IS NOT NULL AND o.last_error IS NOT NULL),
                   (SELECT o.last_error FROM outbox o WHERE o.channel = c.channel AND o.sent_ms IS NOT NULL AND o.last_error IS NOT NULL ORDER BY o.id DESC LIMIT 1)
                 FROM channel_state c ORDER BY c.channel",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(ChannelState {
                    channel: r.get(0)?,
                    failures: r.get::<_, i64>(1)? as u32,
                    next_attempt: {
                        let n: i64 = r.get(2)?;
                        (n > 0).then(|| rfc3339(from_ms(n)))
                    },
                    last_error: r.get(3)?,
                    last_ok: r.get::<_, Option<i64>>(4)?.map(|m| rfc3339(from_ms(m))),
                    dropped: r.get::<_, i64>(5)? as u64,
                    last_dropped: r.get(6)?,
                })
            })
            .map_err(|e| self.db_err(e))?;
        rows.map(|r| r.map_err(|e| self.db_err(e))).collect()
    }

    /// Drops delivered rows older than two weeks.
    pub(crate) fn prune(&mut self, now: OffsetDateTime) -> Result<usize, AlertError> {
        let cutoff = to_ms(now) - KEEP_SENT.as_millis() as i64;
        self.write(|tx| {
            tx.execute(
                "DELETE FROM outbox WHERE sent_ms IS NOT NULL AND sent_ms < ?1",
                [cutoff],
            )
        })
    }
}

/// A silence as `silence list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    pub id: String,
    pub matchers: BTreeMap<String, String>,
    pub reason: String,
    pub created_by: String,
    pub created_at: String,
    pub ends_at: String,
    pub active: bool,
}

/// A channel's delivery state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelState {
    pub channel: String,
    pub failures: u32,
    pub next_attempt: Option<String>,
    pub last_error: Option<String>,
    pub last_ok: Option<String>,
    /// Outbox rows given up for good (HTTP 413), kept for two weeks.
    pub dropped: u64,
    /// Why the newest of them was not delivered.
    pub last_dropped: Option<String>,
}

fn scrub_json(v: &mut serde_json::Value, r: &crate::redact::Redactor) {
    match v {
        serde_json::Value::String(s) => *s = r.scrub(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| scrub_json(x, r)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| scrub_json(x, r)),
        _ => {}
    }
}
