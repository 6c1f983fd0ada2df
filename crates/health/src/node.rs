//! Node metrics from each node's node_exporter `/metrics`: free filesystem
//! percentage per mount, available memory percentage, 5-minute load per
//! core, and whether the exporter answers at all.

use crate::http::{self, HttpError};
use crate::Finding;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use vigil_alert::{AlertKey, Severity};
use vigil_core::config::{NodeHealth, NodeTarget};
use vigil_core::Config;

const UP: &str = "node.exporter";
/// A node_exporter page is ~100 KiB with every collector; cap what we read.
const BODY_LIMIT: usize = 8 << 20;

/// One sample of the text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn parse_labels(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            return Some(out);
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            return None;
        }
        let mut val = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => val.push('\n'),
                    c => val.push(c),
                },
                '"' => break,
                c => val.push(c),
            }
        }
        out.insert(key.trim().to_string(), val);
    }
}

/// Parses the samples whose metric name is in `wanted` (others are skipped cheaply).
pub fn parse(text: &str, wanted: &[&str]) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if !wanted.contains(&name) {
            continue;
        }
        let rest = &line[name_end..];
        let (labels, rest) = if let Some(r) = rest.strip_prefix('{') {
            // Label values may contain '}' inside quotes: find the closing one outside quotes.
            let mut in_q = false;
            let mut esc = false;
            let mut end = None;
            for (i, c) in r.char_indices() {
                match c {
                    _ if esc => esc = false,
                    '\\' => esc = true,
                    '"' => in_q = !in_q,
                    '}' if !in_q => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let Some(end) = end else { continue };
            let Some(l) = parse_labels(&r[..end]) else {
                continue;
            };
            (l, &r[end + 1..])
        } else {
            (BTreeMap::new(), rest)
        };
        let Some(v) = rest.split_whitespace().next() else {
            continue;
        };
        let value = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse::<f64>() {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

const WANTED: &[&str] = &[
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_device_error",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_load5",
    "node_cpu_seconds_total",
];

fn pct_fail(f: Finding, what: &str, pct: f64, warn: f64, crit: f64, detail: String) -> Finding {
    if pct < crit {
        f.fail(
            Severity::Critical,
            format!("{pct:.1}% {what} (critical below {crit}%){detail}"),
        )
    } else if pct < warn {
        f.fail(
            Severity::Warning,
            format!("{pct:.1}% {what} (warning below {warn}%){detail}"),
        )
    } else {
        f.pass(format!("{pct:.1}% {what}{detail}"))
    }
}

fn ignored(n: &NodeHealth, fstype: &str, mount: &str) -> bool {
    n.ignore_fstypes.iter().any(|t| t == fstype)
        || n.ignore_mountpoints.iter().any(|p| {
            let p = p.trim_end_matches('/');
            mount == p || (mount.starts_with(p) && mount[p.len()..].starts_with('/'))
        })
}

/// Findings for one node from its metrics page (pure, unit-tested).
pub fn evaluate(node: &str, text: &str, n: &NodeHealth, ms: u64) -> Vec<Finding> {
    let samples = parse(text, WANTED);
    let key = |name: &str| AlertKey::new(name).label("node", node);
    let mk = |check: &str, subject: String, alert: &str| {
        let mut f = Finding::new(check, subject, key(alert)).severity(Severity::Warning);
        f.duration_ms = ms;
        f
    };
    let mut out = vec![mk(UP, node.to_string(), "node_exporter_down")
        .pass(format!("answers ({} bytes)", text.len()))];
    // Filesystems: one finding per mount, one alert per node.
    let get = |name: &str, l: &BTreeMap<String, String>| {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.get("mountpoint") == l.get("mountpoint")
                    && s.labels.get("device") == l.get("device")
            })
            .map(|s| s.value)
    };
    let mut seen = BTreeSet::new();
    let mut any_fs = false;
    for s in samples
        .iter()
        .filter(|s| s.name == "node_filesystem_size_bytes")
    {
        any_fs = true;
        let mount = s.labels.get("mountpoint").cloned().unwrap_or_default();
        let fstype = s.labels.get("fstype").cloned().unwrap_or_default();
        if ignored(n, &fstype, &mount) || !seen.insert(mount.clone()) || s.value <= 0.0 {
            continue;
        }
        if get("node_filesystem_device_error", &s.labels).is_some_and(|v| v > 0.0) {
            continue;
        }
        let f = mk(
            "node.filesystem",
            format!("{node}:{mount}"),
            "node_filesystem_low",
        );
        out.push(match get("node_filesystem_avail_bytes", &s.labels) {
            Some(avail) => pct_fail(
                f,
                &format!("free on {mount}"),
                avail * 100.0 / s.value,
                n.fs_free_warn_percent,
                n.fs_free_critical_percent,
                format!(
                    " ({} of {})",
                    vigil_core::units::human_bytes(avail.max(0.0) as u64),
                    vigil_core::units::human_bytes(s.value as u64)
                ),
            ),
            None => f.unknown("no node_filesystem_avail_bytes for this mount"),
        });
    }
    if !any_fs {
        out.push(
            mk(
                "node.filesystem",
                format!("{node}:*"),
                "node_filesystem_low",
            )
            .unknown("no node_filesystem_* metrics (is the filesystem collector on?)"),
        );
    }
    // Memory.
    let one = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
    let f = mk("node.memory", node.to_string(), "node_memory_low");
    out.push(
        match (
            one("node_memory_MemAvailable_bytes"),
            one("node_memory_MemTotal_bytes"),
        ) {
            (Some(a), Some(t)) if t > 0.0 => pct_fail(
                f,
                "memory available",
                a * 100.0 / t,
                n.mem_available_warn_percent,
                n.mem_available_critical_percent,
                format!(
                    " ({} of {})",
                    vigil_core::units::human_bytes(a.max(0.0) as u64),
                    vigil_core::units::human_bytes(t as u64)
                ),
            ),
            _ => f.unknown(
                "no node_memory_MemAvailable_bytes/MemTotal_bytes (is the meminfo collector on?)",
            ),
        },
    );
    // Load per core.
    let cpus: BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.name == "node_cpu_seconds_total")
        .filter_map(|s| s.labels.get("cpu").map(String::as_str))
        .collect();
    let f = mk("node.load", node.to_string(), "node_load_high");
    out.push(match (one("node_load5"), cpus.len()) {
        (Some(load), n_cpu) if n_cpu > 0 => {
            let per = load / n_cpu as f64;
            let text = format!("load5 {load:.2} on {n_cpu} CPU(s) = {per:.2} per core");
            if per >= n.load_per_core_critical {
                f.fail(
                    Severity::Critical,
                    format!("{text} (critical from {})", n.load_per_core_critical),
                )
            } else if per >= n.load_per_core_warn {
                f.fail(
                    Severity::Warning,
                    format!("{text} (warning from {})", n.load_per_core_warn),
                )
            } else {
                f.pass(text)
            }
        }
        _ => f.unknown(
            "no node_load5 or node_cpu_seconds_total (are the loadavg and cpu collectors on?)",
        ),
    });
    out
}

/// The exporters to scrape: `targets`, or one per member host at `port`.
pub fn targets(cfg: &Config, n: &NodeHealth) -> Vec<NodeTarget> {
    if !n.targets.is_empty() {
        return n.targets.clone();
    }
    let Some(port) = n.port else {
        return Vec::new();
    };
    cfg.members()
        .filter_map(|m| {
            let (host, _) = vigil_core::endpoint::host_port(&m.endpoint)?;
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            Some(NodeTarget {
                name: m.name.clone(),
                url: format!("http://{host}:{port}/metrics"),
            })
        })
        .collect()
}

fn metrics_url(u: &str) -> String {
    let u = u.trim_end_matches('/');
    if vigil_core::endpoint::has_path(u) {
        u.to_string()
    } else {
        format!("{u}/metrics")
    }
}

/// Runs the node checks; nothing when `[health.node]` is absent.
pub async fn check(cfg: &Config) -> Vec<Finding> {
    let Some(n) = &cfg.health.node else {
        return Vec::new();
    };
    let timeout = cfg.health.node_timeout();
    let client = match http::client(timeout, None, None) {
        Ok(c) => c,
        Err(e) => {
            return targets(cfg, n)
                .iter()
                .map(|t| {
                    Finding::new(
                        UP,
                        &t.name,
                        AlertKey::new("node_exporter_down").label("node", &t.name),
                    )
                    .unknown(e.to_string())
                })
                .collect()
        }
    };
    let client = &client;
    let jobs = targets(cfg, n).into_iter().map(|t| async move {
        let started = Instant::now();
        let url = metrics_url(&t.url);
        let r = http::get(client, &url, None, timeout, BODY_LIMIT).await;
        let ms = started.elapsed().as_millis() as u64;
        let down = |why: String| {
            let key = |a: &str| AlertKey::new(a).label("node", &t.name);
            let mut v =
                vec![Finding::new(UP, &t.name, key("node_exporter_down"))
                    .fail(Severity::Warning, why)];
            for (c, a) in [
                ("node.filesystem", "node_filesystem_low"),
                ("node.memory", "node_memory_low"),
                ("node.load", "node_load_high"),
            ] {
                v.push(Finding::new(c, &t.name, key(a)).covered(UP, "node_exporter not answering"));
            }
            for f in &mut v {
                f.duration_ms = ms;
            }
            v
        };
        match r {
            Ok((200, body)) => evaluate(&t.name, &body, n, ms),
            Ok((code, body)) => down(format!(
                "{url}: HTTP {code}: {}",
                body.chars().take(200).collect::<String>()
            )),
            // Answering at all is the point of this check, so a hang is a FAIL.
            Err(HttpError::Timeout(m)) => down(format!("{url}: {m}")),
            Err(HttpError::Transport(m)) => down(format!("{url}: {m}")),
        }
    });
    futures_util::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Status;

    fn cfg() -> NodeHealth {
        let c: vigil_core::config::HealthConfig = toml_like("[node]\nport = 9100\n");
        c.node.unwrap()
    }

    fn toml_like(s: &str) -> vigil_core::config::HealthConfig {
        // Build through the real config parser so defaults are the real ones.
        let text = format!(
            "[cluster]\nname = \"t\"\nmembers = [{{ name = \"a\", endpoint = \"http://127.0.0.1:2379\" }}]\n[state]\ndir = \"/tmp/x\"\n{}",
            s.replace("[node]", "[health.node]")
        );
        vigil_core::Config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .health
    }

    const PAGE: &str = r#"# HELP node_filesystem_avail_bytes Filesystem space available.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 1e+10
node_filesystem_avail_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/var/lib/etcd"} 4e+08
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 1
node_filesystem_size_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 2e+10
node_filesystem_size_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/var/lib/etcd"} 1e+10
node_filesystem_size_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 1e+09
node_memory_MemAvailable_bytes 1.2e+09
node_memory_MemTotal_bytes 1.6e+10
node_load5 9.5
node_cpu_seconds_total{cpu="0",mode="idle"} 123.4
node_cpu_seconds_total{cpu="0",mode="user"} 12.4
node_cpu_seconds_total{cpu="1",mode="idle"} 123.4
node_weird{a="x}y",b="q\"z"} 1
"#;

    #[test]
    fn parses_exposition_format() {
        let s = parse(PAGE, &["node_weird", "node_load5"]);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].value, 9.5);
        assert_eq!(s[1].labels["a"], "x}y");
        assert_eq!(s[1].labels["b"], "q\"z");
    }

    #[test]
    fn thresholds_per_mount_memory_and_load() {
        let f = evaluate("cp-1", PAGE, &cfg(), 1);
        let get = |c: &str, s: &str| f.iter().find(|x| x.check == c && x.subject == s).unwrap();
        assert_eq!(get("node.exporter", "cp-1").status, Status::Pass);
        assert_eq!(get("node.filesystem", "cp-1:/").status, Status::Pass);
        let etcd = get("node.filesystem", "cp-1:/var/lib/etcd");
        assert_eq!(
            (etcd.status, etcd.severity),
            (Status::Fail, Severity::Critical)
        );
        assert!(!f.iter().any(|x| x.subject.ends_with(":/run")));
        let mem = get("node.memory", "cp-1");
        assert_eq!(
            (mem.status, mem.severity),
            (Status::Fail, Severity::Warning),
            "{}",
            mem.reason
        );
        let load = get("node.load", "cp-1");
        assert_eq!(
            (load.status, load.severity),
            (Status::Fail, Severity::Critical),
            "{}",
            load.reason
        );
        assert_eq!(
            etcd.alert.to_string(),
            r#"node_filesystem_low{node="cp-1"}"#
        );
    }

    #[test]
    fn missing_collectors_are_unknown() {
        let f = evaluate("n", "node_load5 0.1\n", &cfg(), 1);
        assert!(f
            .iter()
            .filter(|x| x.check != UP)
            .all(|x| x.status == Status::Unknown));
    }

    #[test]
    fn urls() {
        assert_eq!(metrics_url("http://h:9100"), "http://h:9100/metrics");
        assert_eq!(metrics_url("http://h:9100/"), "http://h:9100/metrics");
        assert_eq!(
            metrics_url("http://h:9100/x/metrics"),
            "http://h:9100/x/metrics"
        );
    }
}
