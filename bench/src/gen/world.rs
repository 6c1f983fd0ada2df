//! The objects a worker writes: the apiserver's resources, their keys and
//! the JSON (or bytes) they hold, from a worker's own random stream.

use super::Rng;
use std::collections::VecDeque;
use std::fmt::Write as _;

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
pub(super) struct World {
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
    pub(super) fn new(w: usize, seed: u64) -> Self {
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
    pub(super) fn next_op(&mut self) -> (String, Option<Vec<u8>>) {
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
