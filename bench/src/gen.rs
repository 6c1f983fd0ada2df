//! A Kubernetes-shaped etcd dataset, reproducible from a seed.
//!
//! Keys follow the apiserver's layout (`/registry/<resource>/<namespace>/<name>`):
//! - Pods: JSON of 3–14 KB (spec, status, managedFields), created, updated
//!   (status changes) and sometimes deleted;
//! - ConfigMaps: config-file text wrapped in JSON, 0.5–64 KB, created and updated;
//! - Secrets: random bytes behind the `k8s:enc:aescbc:v1:` prefix (what
//!   encryption at rest stores), 1–16 KB, and now and then a 64–256 KB Helm
//!   release secret;
//! - Events: ~1 KB JSON, created and deleted again (their TTL), so deletions
//!   and tombstones appear;
//! - Leases: node and controller leases, overwritten over and over.
//!
//! Writes go in transactions of up to 100 puts/deletes and ~900 KB (below
//! etcd's default `--max-txn-ops 128` and `--max-request-bytes 1.5 MiB`),
//! from several workers at once. Like the apiserver, the generator compacts
//! the history now and then, to the revision of the previous checkpoint, so
//! the database holds some history and free pages.
//!
//! Reproducibility: every worker draws from its own stream seeded by
//! `(seed, worker)` and owns its own keys, so the same seed writes the same
//! objects in the same order per worker. The run stops at the first check
//! where the database reached the target size. With `--workers 1` the
//! revision order is fully deterministic too.

use anyhow::{Context, Result};
use etcd_client::{Client, GetOptions, Txn, TxnOp};
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub endpoints: Vec<String>,
    /// Target etcd database size (bytes, as the member's status reports it).
    pub target: u64,
    pub seed: u64,
    pub workers: usize,
    /// Compact after this many bytes written (0: never).
    pub compact_every: u64,
    pub quiet: bool,
}

impl GenOptions {
    /// The benches' dataset: `target` bytes from `seed`, compacting every
    /// twentieth of the target (at least 1 MiB) as an apiserver would.
    pub fn dataset(
        endpoints: Vec<String>,
        target: u64,
        seed: u64,
        workers: usize,
        quiet: bool,
    ) -> Self {
        GenOptions {
            endpoints,
            target,
            seed,
            workers,
            compact_every: (target / 20).max(1 << 20),
            quiet,
        }
    }
}

/// What the generator made.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Dataset {
    pub seed: u64,
    pub workers: usize,
    pub target_bytes: u64,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub revision: i64,
    pub keys: i64,
    pub bytes_written: u64,
    pub puts: u64,
    pub deletes: u64,
    pub compactions: u64,
    pub gen_seconds: f64,
}

/// A small, fast, seedable PRNG (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// Roughly log-uniform in `lo..=hi`: many small, few large.
    pub fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (l + (h - l) * u).exp() as u64
    }
    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
    pub fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let end = out.len() + n;
        while out.len() + 8 <= end {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        let r = self.next_u64().to_le_bytes();
        out.extend_from_slice(&r[..end - out.len()]);
    }
    fn uid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
    fn suffix(&mut self, n: usize) -> String {
        const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n)
            .map(|_| A[self.below(A.len() as u64) as usize] as char)
            .collect()
    }
}

const APPS: &[&str] = &[
    "nginx",
    "redis",
    "postgres",
    "api-gateway",
    "billing",
    "checkout",
    "frontend",
    "kafka",
    "zookeeper",
    "prometheus",
    "grafana",
    "fluent-bit",
    "coredns",
    "ingress-nginx-controller",
    "cert-manager",
    "argocd-repo-server",
    "vault",
    "keycloak",
    "elasticsearch-master",
    "minio",
    "orders-worker",
    "payments-api",
    "search-indexer",
    "notification-service",
];
const REGISTRIES: &[&str] = &[
    "registry.k8s.io",
    "docker.io/library",
    "quay.io/prometheus",
    "ghcr.io/acme",
    "harbor.internal.example.com/platform",
];
const REASONS: &[&str] = &[
    "Scheduled",
    "Pulling",
    "Pulled",
    "Created",
    "Started",
    "Killing",
    "BackOff",
    "Unhealthy",
    "SuccessfulCreate",
    "ScalingReplicaSet",
    "FailedScheduling",
    "NodeReady",
];
const ENV: &[&str] = &[
    "LOG_LEVEL",
    "HTTP_PORT",
    "DATABASE_URL",
    "REDIS_HOST",
    "JAVA_OPTS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "FEATURE_FLAGS",
    "TZ",
    "GOMAXPROCS",
    "POD_NAME",
    "POD_NAMESPACE",
    "NODE_NAME",
    "CACHE_TTL_SECONDS",
    "MAX_CONNECTIONS",
];
const WORDS: &[&str] = &[
    "server",
    "listen",
    "timeout",
    "upstream",
    "cache",
    "replicas",
    "threshold",
    "enabled",
    "retention",
    "interval",
    "endpoint",
    "buffer",
    "worker",
    "queue",
    "limit",
    "backend",
    "scrape",
    "rule",
    "alert",
    "path",
];

/// `2026-11-DDTHH:MM:SSZ` for a number of seconds into the month.
fn ts(s: u64) -> String {
    let s = s % (28 * 86400);
    format!(
        "2026-11-{:02}T{:02}:{:02}:{:02}Z",
        1 + s / 86400,
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60
    )
}

/// One worker's view of the cluster it is writing.
struct World {
    w: usize,
    rng: Rng,
    clock: u64,
    pods: Vec<(String, String, String)>, // (namespace, name, node)
    cms: Vec<String>,
    events: VecDeque<String>,
    next_event: u64,
    nodes: usize,
}

impl World {
    fn new(w: usize, seed: u64) -> Self {
        World {
            w,
            rng: Rng::new(seed.wrapping_mul(0x100_0000_01B3) ^ (w as u64 + 1)),
            clock: 0,
            pods: Vec::new(),
            cms: Vec::new(),
            events: VecDeque::new(),
            next_event: 0,
            nodes: 16,
        }
    }

    fn namespace(&mut self) -> String {
        match self.rng.below(8) {
            0 => "kube-system".to_string(),
            1 => "monitoring".to_string(),
            _ => format!("team-{}-{}", self.w, self.rng.below(12)),
        }
    }

    fn node(&mut self) -> String {
        format!("worker-{}-{:02}", self.w, self.rng.below(self.nodes as u64))
    }

    fn pod_json(&mut self, ns: &str, name: &str, node: &str, phase: &str) -> String {
        let r = &mut self.rng;
        let app = name.rsplitn(3, '-').last().unwrap_or(name).to_string();
        let mut s = String::with_capacity(8192);
        let created = ts(self.clock.saturating_sub(r.below(86400 * 3)));
        let _ = write!(
            s,
            r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","generateName":"{app}-","namespace":"{ns}","uid":"{}","resourceVersion":"{}","creationTimestamp":"{created}","labels":{{"app.kubernetes.io/name":"{app}","app.kubernetes.io/instance":"{app}-{}","pod-template-hash":"{}","app.kubernetes.io/managed-by":"Helm"}},"annotations":{{"kubectl.kubernetes.io/restartedAt":"{}","prometheus.io/scrape":"true","prometheus.io/port":"{}","checksum/config":"{:016x}{:016x}{:016x}{:016x}"}},"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"{app}-{}","uid":"{}","controller":true,"blockOwnerDeletion":true}}],"managedFields":["#,
            r.uid(),
            r.range(1_000_000, 90_000_000),
            r.suffix(4),
            r.suffix(10),
            ts(r.below(86400 * 28)),
            r.range(8000, 9999),
            r.next_u64(),
            r.next_u64(),
            r.next_u64(),
            r.next_u64(),
            r.suffix(10),
            r.uid(),
        );
        let containers = r.range(1, 3);
        for (i, mgr) in ["kube-controller-manager", "kubelet"].iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"manager":"{mgr}","operation":"Update","apiVersion":"v1","time":"{}","fieldsType":"FieldsV1","fieldsV1":{{"f:metadata":{{"f:generateName":{{}},"f:labels":{{".":{{}},"f:app.kubernetes.io/name":{{}},"f:pod-template-hash":{{}}}},"f:ownerReferences":{{".":{{}},"k:{{\"uid\":\"{}\"}}":{{}}}}}},"f:spec":{{"f:containers":{{"#,
                ts(self.clock),
                r.uid()
            );
            for c in 0..containers {
                if c > 0 {
                    s.push(',');
                }
                let _ = write!(
                    s,
                    r#""k:{{\"name\":\"c{c}\"}}":{{".":{{}},"f:env":{{".":{{}}}},"f:image":{{}},"f:imagePullPolicy":{{}},"f:name":{{}},"f:ports":{{".":{{}}}},"f:resources":{{".":{{}},"f:limits":{{}},"f:requests":{{}}}},"f:terminationMessagePath":{{}},"f:volumeMounts":{{}}}}"#
                );
            }
            s.push_str("}}}}");
        }
        s.push_str(r#"]},"spec":{"volumes":["#);
        let vols = r.range(1, 4);
        for v in 0..vols {
            if v > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"name":"vol-{v}","configMap":{{"name":"{app}-config-{}","defaultMode":420}}}}"#,
                r.suffix(5)
            );
        }
        s.push_str(r#"],"containers":["#);
        for c in 0..containers {
            if c > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"name":"c{c}","image":"{}/{app}:v{}.{}.{}@sha256:{:016x}{:016x}{:016x}{:016x}","ports":[{{"name":"http","containerPort":{},"protocol":"TCP"}}],"env":["#,
                r.pick(REGISTRIES),
                r.below(4),
                r.below(30),
                r.below(20),
                r.next_u64(),
                r.next_u64(),
                r.next_u64(),
                r.next_u64(),
                r.range(1024, 65535)
            );
            let envs = r.range(3, 14);
            for e in 0..envs {
                let n = r.range(4, 24) as usize;
                if e > 0 {
                    s.push(',');
                }
                let _ = write!(
                    s,
                    r#"{{"name":"{}_{e}","value":"{}-{}"}}"#,
                    r.pick(ENV),
                    r.pick(WORDS),
                    r.suffix(n)
                );
            }
            let _ = write!(
                s,
                r#"],"resources":{{"limits":{{"cpu":"{}m","memory":"{}Mi"}},"requests":{{"cpu":"{}m","memory":"{}Mi"}}}},"volumeMounts":[{{"name":"vol-0","mountPath":"/etc/{app}"}},{{"name":"kube-api-access-{}","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}}],"livenessProbe":{{"httpGet":{{"path":"/healthz","port":{},"scheme":"HTTP"}},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}}"#,
                r.range(1, 40) * 50,
                r.range(1, 32) * 64,
                r.range(1, 20) * 10,
                r.range(1, 16) * 32,
                r.suffix(5),
                r.range(1024, 65535)
            );
        }
        let ip = r.next_u64();
        let _ = write!(
            s,
            r#"],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"{app}","nodeName":"{node}","securityContext":{{"runAsNonRoot":true,"fsGroup":1000}},"schedulerName":"default-scheduler","tolerations":[{{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}},{{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"}},"status":{{"phase":"{phase}","conditions":[{{"type":"Initialized","status":"True","lastTransitionTime":"{}"}},{{"type":"Ready","status":"True","lastTransitionTime":"{}"}},{{"type":"ContainersReady","status":"True","lastTransitionTime":"{}"}},{{"type":"PodScheduled","status":"True","lastTransitionTime":"{}"}}],"hostIP":"10.0.{}.{}","podIP":"10.42.{}.{}","podIPs":[{{"ip":"10.42.{}.{}"}}],"startTime":"{}","containerStatuses":[{{"name":"c0","state":{{"running":{{"startedAt":"{}"}}}},"ready":true,"restartCount":{},"image":"{app}","imageID":"sha256:{:016x}{:016x}{:016x}{:016x}","containerID":"containerd://{:016x}{:016x}{:016x}{:016x}","started":true}}],"qosClass":"Burstable"}}}}"#,
            ts(self.clock),
            ts(self.clock),
            ts(self.clock),
            ts(self.clock),
            ip & 0xff,
            (ip >> 8) & 0xff,
            (ip >> 16) & 0xff,
            (ip >> 24) & 0xff,
            (ip >> 16) & 0xff,
            (ip >> 24) & 0xff,
            ts(self.clock),
            ts(self.clock),
            r.below(3),
            r.next_u64(),
            r.next_u64(),
            r.next_u64(),
            r.next_u64(),
            r.next_u64(),
            r.next_u64(),
            r.next_u64(),
            r.next_u64(),
        );
        s
    }

    fn configmap_json(&mut self, ns: &str, name: &str) -> String {
        let r = &mut self.rng;
        let size = r.log_range(512, 64 * 1024) as usize;
        let mut body = String::with_capacity(size + 64);
        while body.len() < size {
            match r.below(4) {
                0 => {
                    let _ = write!(body, "\\n[{}.{}]\\n", r.pick(WORDS), r.pick(WORDS));
                }
                1 => {
                    let _ = write!(
                        body,
                        "{}_{} = \\\"{}-{}\\\"\\n",
                        r.pick(WORDS),
                        r.pick(WORDS),
                        r.pick(APPS),
                        r.suffix(6)
                    );
                }
                _ => {
                    let _ = write!(
                        body,
                        "{}.{} = {}\\n",
                        r.pick(WORDS),
                        r.pick(WORDS),
                        r.below(100_000)
                    );
                }
            }
        }
        format!(
            r#"{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"{ns}","uid":"{}","resourceVersion":"{}","creationTimestamp":"{}","labels":{{"app.kubernetes.io/managed-by":"Helm"}},"annotations":{{"meta.helm.sh/release-name":"{}","meta.helm.sh/release-namespace":"{ns}"}}}},"data":{{"config.toml":"{body}"}}}}"#,
            r.uid(),
            r.range(1_000_000, 90_000_000),
            ts(self.clock),
            r.pick(APPS),
        )
    }

    fn event_json(&mut self, ns: &str, name: &str) -> String {
        let r = &mut self.rng;
        let obj = r.pick(APPS);
        format!(
            r#"{{"kind":"Event","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"{ns}","uid":"{}","resourceVersion":"{}","creationTimestamp":"{t}"}},"involvedObject":{{"kind":"Pod","namespace":"{ns}","name":"{obj}-{}-{}","uid":"{}","apiVersion":"v1","resourceVersion":"{}","fieldPath":"spec.containers{{c0}}"}},"reason":"{}","message":"Container image \"{}/{obj}:v{}.{}\" already present on machine; pod {obj} on node worker-{}","source":{{"component":"kubelet","host":"worker-{}"}},"firstTimestamp":"{t}","lastTimestamp":"{t}","count":{},"type":"{}","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"worker-{}"}}"#,
            r.uid(),
            r.range(1_000_000, 90_000_000),
            r.suffix(10),
            r.suffix(5),
            r.uid(),
            r.range(1_000_000, 90_000_000),
            r.pick(REASONS),
            r.pick(REGISTRIES),
            r.below(4),
            r.below(30),
            r.below(64),
            r.below(64),
            r.range(1, 40),
            if r.below(5) == 0 { "Warning" } else { "Normal" },
            r.below(64),
            t = ts(self.clock),
        )
    }

    fn lease_json(&mut self, ns: &str, name: &str) -> String {
        format!(
            r#"{{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{{"name":"{name}","namespace":"{ns}","uid":"{}","resourceVersion":"{}"}},"spec":{{"holderIdentity":"{name}","leaseDurationSeconds":40,"renewTime":"{}.{:06}Z"}}}}"#,
            self.rng.uid(),
            self.rng.range(1_000_000, 90_000_000),
            ts(self.clock).trim_end_matches('Z'),
            self.rng.below(1_000_000),
        )
    }

    fn secret(&mut self) -> Vec<u8> {
        let n = if self.rng.below(40) == 0 {
            self.rng.range(64 * 1024, 256 * 1024) as usize
        } else {
            self.rng.log_range(1024, 16 * 1024) as usize
        };
        let mut v = b"k8s:enc:aescbc:v1:key1:".to_vec();
        self.rng.fill(&mut v, n);
        v
    }

    /// The next operation: a key and `Some(value)` (put) or `None` (delete).
    fn next_op(&mut self) -> (String, Option<Vec<u8>>) {
        self.clock += self.rng.below(3);
        let roll = self.rng.below(100);
        match roll {
            // Pods: created, updated (status), deleted.
            0..=11 => {
                let ns = self.namespace();
                let app = self.rng.pick(APPS);
                let name = format!("{app}-{}-{}", self.rng.suffix(10), self.rng.suffix(5));
                let node = self.node();
                let v = self.pod_json(&ns, &name, &node, "Pending");
                let key = format!("/registry/pods/{ns}/{name}");
                self.pods.push((ns, name, node));
                (key, Some(v.into_bytes()))
            }
            12..=21 if !self.pods.is_empty() => {
                let i = self.rng.below(self.pods.len() as u64) as usize;
                let (ns, name, node) = self.pods[i].clone();
                let v = self.pod_json(&ns, &name, &node, "Running");
                (format!("/registry/pods/{ns}/{name}"), Some(v.into_bytes()))
            }
            22..=23 if self.pods.len() > 100 => {
                let i = self.rng.below(self.pods.len() as u64) as usize;
                let (ns, name, _) = self.pods.swap_remove(i);
                (format!("/registry/pods/{ns}/{name}"), None)
            }
            // ConfigMaps: created or updated.
            24..=28 => {
                let (ns, name) = if self.cms.is_empty() || self.rng.below(2) == 0 {
                    let ns = self.namespace();
                    let name = format!("{}-config-{}", self.rng.pick(APPS), self.rng.suffix(5));
                    self.cms.push(format!("{ns}/{name}"));
                    (ns, name)
                } else {
                    let i = self.rng.below(self.cms.len() as u64) as usize;
                    let (ns, name) = self.cms[i].split_once('/').unwrap_or(("default", "x"));
                    (ns.to_string(), name.to_string())
                };
                let v = self.configmap_json(&ns, &name);
                (
                    format!("/registry/configmaps/{ns}/{name}"),
                    Some(v.into_bytes()),
                )
            }
            // Secrets: random bytes (encrypted at rest).
            29..=31 => {
                let ns = self.namespace();
                let name = format!("{}-{}", self.rng.pick(APPS), self.rng.suffix(8));
                (
                    format!("/registry/secrets/{ns}/{name}"),
                    Some(self.secret()),
                )
            }
            // Events: created, and deleted once they expire.
            32..=70 => {
                if self.events.len() > 300 && self.rng.below(2) == 0 {
                    let k = self.events.pop_front().unwrap_or_default();
                    (k, None)
                } else {
                    let ns = self.namespace();
                    let name = format!("{}.{:x}", self.rng.pick(APPS), self.next_event);
                    self.next_event += 1;
                    let key = format!("/registry/events/{ns}/{name}");
                    self.events.push_back(key.clone());
                    let v = self.event_json(&ns, &name);
                    (key, Some(v.into_bytes()))
                }
            }
            // Leases: overwritten again and again.
            _ => {
                let (ns, name) = if self.rng.below(4) == 0 {
                    (
                        "kube-system".to_string(),
                        format!("{}-w{}", self.rng.pick(APPS), self.w),
                    )
                } else {
                    ("kube-node-lease".to_string(), self.node())
                };
                let v = self.lease_json(&ns, &name);
                (
                    format!("/registry/leases/{ns}/{name}"),
                    Some(v.into_bytes()),
                )
            }
        }
    }
}

const TXN_OPS: usize = 100;
const TXN_BYTES: usize = 900 * 1024;

#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
}

async fn worker(
    mut client: Client,
    w: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    c: Arc<Counters>,
) -> Result<()> {
    let mut world = World::new(w, seed);
    let mut pending: Option<(String, Option<Vec<u8>>)> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut ops = Vec::with_capacity(TXN_OPS);
        let mut keys = HashSet::with_capacity(TXN_OPS);
        let (mut bytes, mut puts, mut dels) = (0usize, 0u64, 0u64);
        while ops.len() < TXN_OPS && bytes < TXN_BYTES {
            let (k, v) = pending.take().unwrap_or_else(|| world.next_op());
            if keys.contains(&k) {
                // etcd refuses a key twice in one txn: it goes first in the next.
                pending = Some((k, v));
                break;
            }
            bytes += k.len() + v.as_ref().map_or(0, |v| v.len());
            ops.push(match v {
                Some(v) => {
                    puts += 1;
                    TxnOp::put(k.as_bytes(), v, None)
                }
                None => {
                    dels += 1;
                    TxnOp::delete(k.as_bytes(), None)
                }
            });
            keys.insert(k);
        }
        client
            .txn(Txn::new().and_then(ops))
            .await
            .with_context(|| format!("worker {w}: txn of {bytes} bytes"))?;
        c.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        c.puts.fetch_add(puts, Ordering::Relaxed);
        c.deletes.fetch_add(dels, Ordering::Relaxed);
    }
    Ok(())
}

/// Fills the cluster behind `endpoints` until its database reaches the target size.
/// [`generate`] from synchronous code, on a runtime of its own (two
/// workers: the bench machine has two cores), dropped before returning.
pub fn generate_blocking(o: &GenOptions) -> Result<Dataset> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(generate(o))
}

pub async fn generate(o: &GenOptions) -> Result<Dataset> {
    let t0 = Instant::now();
    let first = o.endpoints.first().context("no endpoints")?.clone();
    let client = Client::connect(o.endpoints.clone(), None)
        .await
        .with_context(|| format!("connecting to {:?}", o.endpoints))?;
    let mut probe = Client::connect([first.clone()], None)
        .await
        .with_context(|| format!("connecting to {first}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for w in 0..o.workers.max(1) {
        tasks.push(tokio::spawn(worker(
            client.clone(),
            w,
            o.seed,
            stop.clone(),
            counters.clone(),
        )));
    }
    let mut compactions = 0u64;
    let mut checkpoint_rev = 0i64;
    let mut checkpoint_bytes = 0u64;
    let mut last_log = Instant::now();
    let result: Result<()> = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if tasks.iter().any(|t| t.is_finished()) {
                break Ok(());
            }
            let st = probe.status().await.context("status")?;
            let db = st.db_size() as u64;
            let rev = st.header().map(|h| h.revision()).unwrap_or(0);
            let written = counters.bytes.load(Ordering::Relaxed);
            if db >= o.target {
                break Ok(());
            }
            if o.compact_every > 0 && written - checkpoint_bytes >= o.compact_every {
                if checkpoint_rev > 0 {
                    probe
                        .compact(checkpoint_rev, None)
                        .await
                        .context("compact")?;
                    compactions += 1;
                }
                checkpoint_rev = rev;
                checkpoint_bytes = written;
            }
            if !o.quiet && last_log.elapsed() >= Duration::from_secs(5) {
                last_log = Instant::now();
                eprintln!(
                    "gen: db {:.1} MB of {:.1} MB, {:.1} MB written, revision {rev}, {:.0} s",
                    db as f64 / 1e6,
                    o.target as f64 / 1e6,
                    written as f64 / 1e6,
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.context("worker panicked")??;
    }
    result?;
    let st = probe.status().await.context("status")?;
    let keys = probe
        .get(
            vec![0u8],
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .context("counting keys")?;
    Ok(Dataset {
        seed: o.seed,
        workers: o.workers.max(1),
        target_bytes: o.target,
        db_size: st.db_size() as u64,
        db_size_in_use: st.raft_used_db_size() as u64,
        revision: keys.header().map(|h| h.revision()).unwrap_or(0),
        keys: keys.count(),
        bytes_written: counters.bytes.load(Ordering::Relaxed),
        puts: counters.puts.load(Ordering::Relaxed),
        deletes: counters.deletes.load(Ordering::Relaxed),
        compactions,
        gen_seconds: t0.elapsed().as_secs_f64(),
    })
}

/// `5MB`, `1GB`, `1.5GiB`, `4096` (bytes).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("size {s:?}: write it like 5MB or 1GB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        u => anyhow::bail!("size {s:?}: unknown unit {u:?} (B, KB, MB, GB, KiB, MiB, GiB)"),
    };
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5MB").unwrap(), 5_000_000);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert!(parse_size("5 furlongs").is_err());
    }

    #[test]
    fn same_seed_same_objects() {
        let mut a = World::new(0, 7);
        let mut b = World::new(0, 7);
        for _ in 0..500 {
            assert_eq!(a.next_op(), b.next_op());
        }
        let mut c = World::new(1, 7);
        assert_ne!(a.next_op(), c.next_op());
    }

    #[test]
    fn objects_are_json() {
        let mut w = World::new(0, 1);
        for _ in 0..300 {
            let (k, v) = w.next_op();
            if let Some(v) = v {
                if !k.starts_with("/registry/secrets/") {
                    serde_json::from_slice::<serde_json::Value>(&v)
                        .unwrap_or_else(|e| panic!("{k}: {e}: {}", String::from_utf8_lossy(&v)));
                }
            }
        }
    }
}
