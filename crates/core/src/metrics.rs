//! Prometheus text exposition for the node_exporter textfile collector and
//! for `vigil-notify`'s `/metrics`.
//!
//! Every job writes one file per cluster, `vigil_<job>_<cluster>.prom`,
//! atomically (temporary name that node_exporter ignores, fsync, rename), so
//! a scrape never sees half a file. Files are 0644 because node_exporter runs
//! as another user; they carry names, sizes, times and states, never secrets.
//!
//! The same metrics go out in InfluxDB line protocol (see [`influx`]) when
//! `[metrics] line_protocol_dir` or `[metrics.influxdb]` is set.

pub mod influx;

use crate::config::MetricsConfig;
use crate::fsutil::{self, FsError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Label pairs, in the order given.
pub type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct Family {
    help: String,
    kind: &'static str,
    samples: Vec<(Labels, f64)>,
}

/// A set of metric families, rendered in the order they were first used.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    order: Vec<String>,
    families: BTreeMap<String, Family>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, kind: &'static str, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        if !self.families.contains_key(name) {
            self.order.push(name.to_string());
        }
        let fam = self
            .families
            .entry(name.to_string())
            .or_insert_with(|| Family {
                help: help.to_string(),
                kind,
                samples: Vec::new(),
            });
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // One value per label set: a later one replaces an earlier one.
        match fam.samples.iter_mut().find(|(l, _)| *l == labels) {
            Some(s) => s.1 = v,
            None => fam.samples.push((labels, v)),
        }
    }

    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.add("gauge", name, help, labels, v);
    }

    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.add("counter", name, help, labels, v);
    }

    /// A 0/1 gauge.
    pub fn flag(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: bool) {
        self.gauge(name, help, labels, if v { 1.0 } else { 0.0 });
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// The value of a sample, if set.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let fam = self.families.get(name)?;
        fam.samples
            .iter()
            .find(|(l, _)| {
                l.len() == labels.len()
                    && l.iter()
                        .zip(labels)
                        .all(|((a, b), (c, d))| a == c && b == d)
            })
            .map(|(_, v)| *v)
    }

    /// Text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for name in &self.order {
            let Some(f) = self.families.get(name) else {
                continue;
            };
            let _ = writeln!(s, "# HELP {name} {}", escape_help(&f.help));
            let _ = writeln!(s, "# TYPE {name} {}", f.kind);
            for (labels, v) in &f.samples {
                s.push_str(name);
                if !labels.is_empty() {
                    s.push('{');
                    for (i, (k, val)) in labels.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        let _ = write!(s, "{k}=\"{}\"", escape_label(val));
                    }
                    s.push('}');
                }
                let _ = writeln!(s, " {}", format_value(*v));
            }
        }
        s
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape_label(v: &str) -> String {
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The file a job writes for a cluster: `vigil_<job>_<cluster>.prom`.
pub fn textfile_path(dir: &Path, job: &str, cluster: &str) -> PathBuf {
    dir.join(format!("vigil_{job}_{cluster}.prom"))
}

/// Writes `text` to `path` atomically with mode 0644. The temporary name is
/// the writer's own (pid and a counter), so two jobs writing the same file at
/// once never rename each other's half-written file into place.
pub fn write_textfile(path: &Path, text: &str) -> Result<(), FsError> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = fsutil::partial_path(path).into_os_string();
    tmp.push(format!(".{}.{n}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| FsError::new("creating", &tmp, e))?;
        // The process umask (077) would leave it 0600, unreadable for node_exporter.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| FsError::new("setting mode 0644 on", &tmp, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| FsError::new("writing", &tmp, e))?;
        f.sync_all().map_err(|e| FsError::new("syncing", &tmp, e))?;
        fsutil::commit_rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The line-protocol file a job writes for a cluster: `vigil_<job>_<cluster>.influx`.
pub fn line_protocol_path(dir: &Path, job: &str, cluster: &str) -> PathBuf {
    dir.join(format!("vigil_{job}_{cluster}.influx"))
}

/// Writes a job's metrics: the textfile if `[metrics] textfile` is on and the
/// directory exists (its path is returned), the line-protocol file and the
/// InfluxDB push if configured. Metrics never fail a job: problems are
/// logged as warnings.
pub fn publish(cfg: &MetricsConfig, job: &str, cluster: &str, m: &Metrics) -> Option<PathBuf> {
    let prom = publish_textfile(cfg, job, cluster, m);
    publish_influx(cfg, job, cluster, m);
    prom
}

fn publish_textfile(cfg: &MetricsConfig, job: &str, cluster: &str, m: &Metrics) -> Option<PathBuf> {
    if !cfg.textfile {
        return None;
    }
    if !cfg.textfile_dir.is_dir() {
        tracing::debug!(dir = %cfg.textfile_dir.display(), "no textfile-collector directory; metrics not written");
        return None;
    }
    let path = textfile_path(&cfg.textfile_dir, job, cluster);
    match write_textfile(&path, &m.render()) {
        Ok(()) => {
            tracing::debug!(path = %path.display(), "metrics written");
            Some(path)
        }
        Err(e) => {
            tracing::warn!("metrics not written: {e}");
            None
        }
    }
}

/// Writes `m` to the line-protocol file and pushes it to InfluxDB, as far
/// as `[metrics]` asks for either; warnings only. For a daemon's own metrics
/// (vigil-notify), which its `/metrics` already gives Prometheus.
pub fn publish_influx(cfg: &MetricsConfig, job: &str, cluster: &str, m: &Metrics) {
    if (cfg.line_protocol_dir.is_none() && cfg.influxdb.is_none()) || m.is_empty() {
        return;
    }
    let lines = m.render_influx(crate::now().unix_timestamp_nanos());
    if let Some(dir) = &cfg.line_protocol_dir {
        if dir.is_dir() {
            let path = line_protocol_path(dir, job, cluster);
            match write_textfile(&path, &lines) {
                Ok(()) => tracing::debug!(path = %path.display(), "line protocol written"),
                Err(e) => tracing::warn!("line protocol not written: {e}"),
            }
        } else {
            tracing::warn!(
                "line protocol not written: {} is not a directory (metrics.line_protocol_dir)",
                dir.display()
            );
        }
    }
    if let Some(i) = &cfg.influxdb {
        match influx::push(i, lines) {
            Ok(()) => tracing::debug!(url = %i.url, "metrics pushed to InfluxDB"),
            Err(e) => tracing::warn!("metrics not pushed: {e}"),
        }
    }
}

/// Samples of one metric in an earlier file, for values that must survive a
/// failed run (the last success time of a member that failed this time).
pub fn previous(cfg: &MetricsConfig, job: &str, cluster: &str, metric: &str) -> Vec<(Labels, f64)> {
    let path = textfile_path(&cfg.textfile_dir, job, cluster);
    std::fs::read_to_string(path)
        .map(|t| parse_samples(&t, metric))
        .unwrap_or_default()
}

/// Parses the samples of `metric` from exposition text (the subset `render` writes).
pub fn parse_samples(text: &str, metric: &str) -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some(end) = find_label_end(r) else {
                continue;
            };
            (parse_labels(&r[..end]), r[end + 1..].trim())
        } else if rest.starts_with(' ') {
            (Vec::new(), rest.trim())
        } else {
            continue;
        };
        if let Ok(v) = value.split_whitespace().next().unwrap_or("").parse::<f64>() {
            out.push((labels, v));
        }
    }
    out
}

fn find_label_end(s: &str) -> Option<usize> {
    let mut in_q = false;
    let mut esc = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' if in_q => esc = true,
            '"' => in_q = !in_q,
            '}' if !in_q => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_labels(s: &str) -> Labels {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, r)) = rest.split_once("=\"") {
        let k = k.trim_start_matches(',').trim().to_string();
        let mut end = None;
        let mut esc = false;
        for (i, c) in r.char_indices() {
            match c {
                _ if esc => esc = false,
                '\\' => esc = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        out.push((k, unescape_label(&r[..end])));
        rest = &r[end + 1..];
    }
    out
}

/// Seconds since the Unix epoch of an RFC 3339 time, for `*_timestamp_seconds`.
pub fn unix_seconds(rfc3339: &str) -> Option<f64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
}

/// Now, in seconds since the Unix epoch.
pub fn now_seconds() -> f64 {
    crate::now().unix_timestamp_nanos() as f64 / 1e9
}

/// The result of one check, as the health and quota jobs report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Pass,
    Fail,
    /// Could not check.
    Unknown,
    Skip,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Pass => "pass",
            CheckState::Fail => "fail",
            CheckState::Unknown => "unknown",
            CheckState::Skip => "skip",
        }
    }
}

/// `vigil_check_state{vigil_job,check,subject,state}`: one-hot over the states, so
/// `vigil_check_state{state="fail"} == 1` selects failing checks.
pub fn check_state(
    m: &mut Metrics,
    cluster: &str,
    job: &str,
    check: &str,
    subject: &str,
    s: CheckState,
) {
    for st in [
        CheckState::Pass,
        CheckState::Fail,
        CheckState::Unknown,
        CheckState::Skip,
    ] {
        m.flag(
            "vigil_check_state",
            "State of one check (1 for the current state): pass, fail, unknown (could not check) or skip",
            &[
                ("cluster", cluster),
                // Not `job`: Prometheus renames a scraped `job` label to
                // `exported_job`, as the scrape config owns `job`.
                ("vigil_job", job),
                ("check", check),
                ("subject", subject),
                ("state", st.as_str()),
            ],
            st == s,
        );
    }
}

/// Quota figures of one CephFS subvolume: used bytes, quota, used ratio and
/// the forecast of when it is full (seconds from now; absent when not growing).
#[allow(clippy::too_many_arguments)]
pub fn quota(
    m: &mut Metrics,
    cluster: &str,
    volume: &str,
    subvolume: &str,
    used_bytes: f64,
    quota_bytes: Option<f64>,
    full_in_seconds: Option<f64>,
) {
    let l = [
        ("cluster", cluster),
        ("volume", volume),
        ("subvolume", subvolume),
    ];
    m.gauge(
        "vigil_quota_used_bytes",
        "Bytes used by the subvolume",
        &l,
        used_bytes,
    );
    if let Some(q) = quota_bytes.filter(|q| *q > 0.0) {
        m.gauge(
            "vigil_quota_limit_bytes",
            "The subvolume's quota in bytes",
            &l,
            q,
        );
        m.gauge(
            "vigil_quota_used_ratio",
            "Used bytes over quota (can pass 1: CephFS enforces quotas cooperatively)",
            &l,
            used_bytes / q,
        );
    }
    if let Some(f) = full_in_seconds {
        m.gauge(
            "vigil_quota_forecast_full_seconds",
            "Forecast: seconds until the subvolume reaches its quota at the current growth",
            &l,
            f,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn concurrent_writers_never_publish_half_a_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("vigil_snapshot_prod.prom");
        let texts: Vec<String> = (0..6).map(|i| format!("m{i} {i}\n").repeat(2000)).collect();
        std::thread::scope(|s| {
            for t in &texts {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..30 {
                        write_textfile(path, t).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read_to_string(&path).unwrap();
        assert!(
            texts.contains(&got),
            "a mixed or partial file was published"
        );
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary files left behind");
    }

    use super::*;

    #[test]
    fn renders_and_parses_back() {
        let mut m = Metrics::new();
        m.gauge(
            "vigil_x",
            "An x.\nTwo lines",
            &[("cluster", "prod"), ("member", "cp-\"1\"")],
            1.5,
        );
        m.gauge(
            "vigil_x",
            "ignored",
            &[("cluster", "prod"), ("member", "cp-2")],
            3.0,
        );
        m.counter("vigil_y_total", "A y", &[], 7.0);
        m.gauge(
            "vigil_x",
            "",
            &[("cluster", "prod"), ("member", "cp-2")],
            4.0,
        );
        let t = m.render();
        assert_eq!(
            t,
            "# HELP vigil_x An x.\\nTwo lines\n# TYPE vigil_x gauge\n\
             vigil_x{cluster=\"prod\",member=\"cp-\\\"1\\\"\"} 1.5\n\
             vigil_x{cluster=\"prod\",member=\"cp-2\"} 4\n\
             # HELP vigil_y_total A y\n# TYPE vigil_y_total counter\nvigil_y_total 7\n"
        );
        let s = parse_samples(&t, "vigil_x");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0[1], ("member".to_string(), "cp-\"1\"".to_string()));
        assert_eq!(s[1].1, 4.0);
        assert_eq!(parse_samples(&t, "vigil_y_total")[0].1, 7.0);
        assert!(parse_samples(&t, "vigil_").is_empty());
    }

    #[test]
    fn textfile_is_atomic_and_world_readable() {
        let d = tempfile::tempdir().unwrap();
        let cfg = MetricsConfig {
            textfile: true,
            textfile_dir: d.path().to_path_buf(),
            listen: String::new(),
            line_protocol_dir: Some(d.path().join("influx")),
            influxdb: None,
        };
        let mut m = Metrics::new();
        m.flag("vigil_ok", "ok", &[("cluster", "prod")], true);
        let p = publish(&cfg, "snapshot", "prod", &m).unwrap();
        assert_eq!(p, d.path().join("vigil_snapshot_prod.prom"));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        assert_eq!(previous(&cfg, "snapshot", "prod", "vigil_ok")[0].1, 1.0);
        // The line-protocol twin, once its directory exists.
        std::fs::create_dir(d.path().join("influx")).unwrap();
        publish(&cfg, "snapshot", "prod", &m).unwrap();
        let lp = line_protocol_path(&d.path().join("influx"), "snapshot", "prod");
        let t = std::fs::read_to_string(&lp).unwrap();
        assert!(t.starts_with("vigil_ok,cluster=prod value=1 "), "{t}");
        assert_eq!(
            std::fs::metadata(&lp).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let missing = MetricsConfig {
            textfile_dir: d.path().join("nope"),
            ..cfg
        };
        assert!(publish(&missing, "snapshot", "prod", &m).is_none());
        assert!(!d.path().join("nope").exists());
    }

    #[test]
    fn check_state_is_one_hot() {
        let mut m = Metrics::new();
        check_state(
            &mut m,
            "prod",
            "health",
            "etcd_member",
            "cp-1",
            CheckState::Fail,
        );
        let t = m.render();
        assert_eq!(t.matches(" 1\n").count(), 1);
        assert!(t.contains("state=\"fail\"} 1"));
    }
}
