//! `vigil-restore rke2`: the RKE2 cluster-reset runbook, printed, or run with
//! `--execute` on the server node that is restored first.
//!
//! The steps (RKE2's documented procedure):
//! 1. fetch and verify the snapshot onto this node;
//!    then prove that the server token rke2 will use (the archived one with
//!    `--restore-token`, else this node's `<data-dir>/server/token`) opens the
//!    snapshot's bootstrap data (`/bootstrap/<hash>`, see
//!    [`vigil_archive::rke2_bootstrap`]); refuse otherwise, before any node
//!    is touched;
//! 2. stop rke2-server on every server (the others first, then this one);
//! 3. on new hosts, put the archived server token back (the bootstrap data in
//!    the snapshot is encrypted with a key derived from it);
//! 4. `rke2 server --cluster-reset --cluster-reset-restore-path=FILE` here;
//! 5. start rke2-server here;
//! 6. on each other server in order: wipe `<data-dir>/server/db`, start rke2-server.
//!
//! The other servers are reached with the `restore.ssh` command template. Without
//! it, `--execute` runs the steps on this node only, after the operator confirms
//! with `--others-stopped` that the others are stopped, and prints the rest.

use crate::identity::Identities;
use crate::select::Selector;
use crate::stores::Stores;
use crate::RestoreError;
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use vigil_core::cmd::{quote, render, Cmd};
use vigil_core::config::{MemberConfig, RestoreConfig};
use vigil_core::Config;

mod token;
use token::{prove_token, restore_token};

#[derive(Debug)]
pub struct Rke2Options<'a> {
    pub execute: bool,
    pub identities: Option<&'a Identities>,
    pub selector: Selector,
    pub source: Option<&'a str>,
    /// The server this runs on, reset first. Default: the first member.
    pub node: Option<&'a str>,
    /// Restoring onto new hosts: put the archived server token back.
    pub restore_token: bool,
    /// Without `restore.ssh`: the operator confirms the other servers are stopped.
    pub others_stopped: bool,
    /// Where the verified snapshot is written on this node.
    pub snapshot_path: Option<&'a Path>,
    /// Prove the token against the snapshot's bootstrap data first.
    pub token_check: bool,
    /// How `--execute` gets the operator's go-ahead.
    pub confirm: Confirm,
}

/// The go-ahead for `--execute`, which stops every server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// `--yes`: scripts.
    Yes,
    /// Show the plan and ask on the terminal; refuse without one.
    Ask,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub on: String,
    pub what: String,
    /// The command, as it would be typed.
    pub command: String,
    /// Run by vigil (`--execute`), or left to the operator.
    pub by_hand: bool,
    pub done: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rke2Report {
    pub executed: bool,
    pub archive: Option<String>,
    pub snapshot: PathBuf,
    pub node: String,
    pub steps: Vec<Step>,
    /// The etcd that made the snapshot (its manifest).
    pub snapshot_etcd_version: Option<String>,
    /// `rke2 --version` as the cluster-reset ran it: RKE2 restores with its
    /// own embedded etcd, so this is the tool that was used.
    pub rke2_version: Option<String>,
}

enum Action {
    Fetch,
    ProveToken,
    Token,
    Local(Vec<OsString>),
    /// The cluster-reset: `rke2 --version` is recorded first.
    Reset(Vec<OsString>),
    Remote(usize, String),
}

fn host_of(m: &MemberConfig) -> String {
    vigil_core::endpoint::host_port(&m.endpoint)
        .map(|(h, _)| h)
        .unwrap_or_else(|| m.name.clone())
}

fn ssh_argv(rc: &RestoreConfig, m: &MemberConfig, cmd: &str) -> Vec<OsString> {
    let host = host_of(m);
    let mut v: Vec<OsString> = rc
        .ssh
        .iter()
        .map(|a| a.replace("{host}", &host).replace("{name}", &m.name).into())
        .collect();
    v.push(cmd.into());
    v
}

pub fn run(cfg: &Config, o: &Rke2Options<'_>) -> Result<Rke2Report, RestoreError> {
    let rc = cfg.restore();
    let members: Vec<&MemberConfig> = cfg.members().collect();
    let node_idx = match o.node {
        Some(n) => members.iter().position(|m| m.name == n).ok_or_else(|| {
            RestoreError::Usage(format!(
                "--node {n}: no such member; the members are {}",
                members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
        None => 0,
    };
    let node = members[node_idx];
    let others: Vec<usize> = (0..members.len()).filter(|i| *i != node_idx).collect();
    let ssh = !rc.ssh.is_empty();
    let stores = Stores::configured(cfg).only(o.source)?;
    let cat = stores.catalog(&cfg.state.dir);
    let archive = if o.execute {
        Some(o.selector.select(&cat)?)
    } else {
        o.selector.select(&cat).ok()
    };
    let snapshot = match (o.snapshot_path, archive) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(a)) => rc
            .rke2_data_dir
            .join("server/db/snapshots")
            .join(format!("{}.db", a.id)),
        (None, None) => rc.rke2_data_dir.join("server/db/snapshots/restore.db"),
    };
    let token_file = rc.rke2_data_dir.join("server/token");
    let db_dir = rc.rke2_data_dir.join("server/db");
    let systemctl = |verb: &str| vigil_core::cmd::argv(&rc.systemctl_bin, [verb, "rke2-server"]);
    let remote_cmd = |verb: &str| {
        format!(
            "{} {verb} rke2-server",
            quote(&rc.systemctl_bin.display().to_string())
        )
    };

    let mut plan: Vec<(Step, Action)> = Vec::new();
    let here = format!("{} (this node)", node.name);
    let mut step = |on: String, what: &str, command: String, by_hand: bool, a: Action| {
        plan.push((
            Step {
                on,
                what: what.into(),
                command,
                by_hand,
                done: false,
            },
            a,
        ))
    };
    step(
        here.clone(),
        "fetch, decrypt and verify the snapshot",
        format!(
            "vigil-restore fetch --identity KEY{} --out {}",
            archive
                .map(|a| format!(" --archive {}", a.id))
                .unwrap_or_default(),
            quote(&snapshot.display().to_string())
        ),
        false,
        Action::Fetch,
    );
    if o.token_check {
        step(
            here.clone(),
            "prove the server token opens the snapshot's bootstrap data (/bootstrap/<hash>); nothing is stopped otherwise",
            format!(
                "built in: decrypts the snapshot's /bootstrap/<hash> entry with {}",
                if o.restore_token {
                    "the archived token".to_string()
                } else {
                    format!(
                        "the token in {} (or else the archived one)",
                        token_file.display()
                    )
                }
            ),
            false,
            Action::ProveToken,
        );
    }
    for &i in &others {
        let m = members[i];
        let cmd = remote_cmd("stop");
        if ssh {
            step(
                m.name.clone(),
                "stop rke2-server",
                render(&ssh_argv(&rc, m, &cmd)),
                false,
                Action::Remote(i, cmd),
            );
        } else {
            step(
                m.name.clone(),
                "stop rke2-server (and make sure it has exited: `rke2-killall.sh`)",
                cmd,
                true,
                Action::Remote(i, String::new()),
            );
        }
    }
    let a = systemctl("stop");
    step(
        here.clone(),
        "stop rke2-server",
        render(&a),
        false,
        Action::Local(a),
    );
    if o.restore_token {
        step(
            here.clone(),
            "put the archived server token back (new hosts)",
            format!(
                "age -d -i KEY {} > {} && chmod 600 {}",
                quote(
                    &crate::stores::token_path(
                        &cfg.snapshot("vigil-restore")
                            .map(|s| s.dir.clone())
                            .unwrap_or_default(),
                        cfg.cluster_name()
                    )
                    .display()
                    .to_string()
                ),
                quote(&token_file.display().to_string()),
                quote(&token_file.display().to_string())
            ),
            false,
            Action::Token,
        );
    }
    let mut reset = vigil_core::cmd::argv(&rc.rke2_bin, ["server", "--cluster-reset"]);
    reset.push(format!("--cluster-reset-restore-path={}", snapshot.display()).into());
    if o.restore_token {
        reset.push(format!("--token-file={}", token_file.display()).into());
    }
    step(
        here.clone(),
        "cluster-reset from the snapshot (exits when done)",
        render(&reset),
        false,
        Action::Reset(reset),
    );
    let a = systemctl("start");
    step(
        here.clone(),
        "start rke2-server and wait until this node is Ready",
        render(&a),
        false,
        Action::Local(a),
    );
    for &i in &others {
        let m = members[i];
        let wipe = format!("rm -rf {}", quote(&db_dir.display().to_string()));
        let start = remote_cmd("start");
        if ssh {
            step(
                m.name.clone(),
                "wipe the old etcd db",
                render(&ssh_argv(&rc, m, &wipe)),
                false,
                Action::Remote(i, wipe),
            );
            step(
                m.name.clone(),
                "start rke2-server (it rejoins)",
                render(&ssh_argv(&rc, m, &start)),
                false,
                Action::Remote(i, start),
            );
        } else {
            step(
                m.name.clone(),
                "wipe the old etcd db",
                wipe,
                true,
                Action::Remote(i, String::new()),
            );
            step(
                m.name.clone(),
                "start rke2-server (it rejoins)",
                start,
                true,
                Action::Remote(i, String::new()),
            );
        }
    }

    let mut report = Rke2Report {
        executed: o.execute,
        archive: archive.map(|a| a.id.clone()),
        snapshot: snapshot.clone(),
        node: node.name.clone(),
        steps: Vec::new(),
        snapshot_etcd_version: archive.map(|a| a.manifest.etcd_version.clone()),
        rke2_version: None,
    };
    if !o.execute {
        report.steps = plan.into_iter().map(|(s, _)| s).collect();
        return Ok(report);
    }
    if !ssh && !o.others_stopped && !others.is_empty() {
        return Err(RestoreError::Usage(format!(
            "--execute needs the other servers ({}) stopped first: either set restore.ssh so vigil stops them, \
             or stop rke2-server on each by hand (`systemctl stop rke2-server`, then `rke2-killall.sh`) and rerun with --others-stopped",
            others.iter().map(|i| members[*i].name.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let archive = archive.ok_or_else(|| RestoreError::NoArchive("nothing selected".into()))?;
    let ids = o.identities.ok_or_else(|| {
        RestoreError::Usage("--execute needs --identity KEY to decrypt the snapshot".into())
    })?;
    if o.confirm == Confirm::Ask {
        let shown = Rke2Report {
            executed: false,
            steps: plan.iter().map(|(s, _)| s.clone()).collect(),
            ..report.clone()
        };
        ask(cfg.cluster_name(), &shown)?;
    }
    for (mut s, a) in plan {
        if s.by_hand {
            tracing::warn!("by hand on {}: {} — {}", s.on, s.what, s.command);
            report.steps.push(s);
            continue;
        }
        tracing::info!("{}: {}: {}", s.on, s.what, s.command);
        let r = match a {
            Action::Fetch => {
                if let Some(d) = snapshot.parent() {
                    vigil_core::fsutil::ensure_private_dir(d)?;
                }
                crate::fetch::fetch(archive, &stores, Some(ids), &snapshot).map(|_| ())
            }
            // A refused snapshot is not left behind: the rerun fetches it
            // again, and no plaintext copy outlives a restore that did not run.
            Action::ProveToken => {
                prove_token(cfg, &stores, ids, &token_file, o.restore_token, &snapshot).inspect_err(
                    |_| {
                        let _ = std::fs::remove_file(&snapshot);
                    },
                )
            }
            Action::Token => restore_token(cfg, &stores, ids, &token_file),
            Action::Local(argv) => Cmd::argv(&argv)
                .run_blocking()
                .map(|_| ())
                .map_err(Into::into),
            Action::Reset(argv) => {
                report.rke2_version = rke2_version(&rc.rke2_bin);
                tracing::info!(
                    "cluster-reset with rke2 {} (its embedded etcd) from a snapshot of etcd {}",
                    report
                        .rke2_version
                        .as_deref()
                        .unwrap_or("(version unknown)"),
                    archive.manifest.etcd_version
                );
                Cmd::argv(&argv)
                    .run_blocking()
                    .map(|_| ())
                    .map_err(Into::into)
            }
            Action::Remote(i, cmd) => Cmd::argv(&ssh_argv(&rc, members[i], &cmd))
                .run_blocking()
                .map(|_| ())
                .map_err(Into::into),
        };
        if let Err(e) = r {
            report.steps.push(s);
            return Err(RestoreError::Failed(format!(
                "RKE2 restore stopped at \"{}\" on {}: {e}. Steps done so far are logged above; fix the cause and continue from this step by hand (`vigil-restore rke2` prints the runbook)",
                report.steps.last().map(|s| s.what.as_str()).unwrap_or_default(),
                report.steps.last().map(|s| s.on.as_str()).unwrap_or_default(),
            )));
        }
        s.done = true;
        report.steps.push(s);
    }
    Ok(report)
}

/// Shows the plan on stderr and asks for the cluster's name (or `yes`) on
/// the terminal. Without a terminal there is nobody to ask: refused, so a
/// stray `--execute` in a script or a cron job stops nothing.
fn ask(cluster: &str, shown: &Rke2Report) -> Result<(), RestoreError> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(RestoreError::Usage(format!(
            "--execute stops rke2-server on every server of {cluster} and resets it from archive {}; \
             there is no terminal to confirm on (stdin is not a terminal). Nothing was done. \
             Run it on a terminal to be asked, or add --yes to go ahead without a question",
            shown.archive.as_deref().unwrap_or("?")
        )));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "{}\nThis stops rke2-server on every server and resets the cluster. \
         Type the cluster's name ({cluster}) or yes to go on: ",
        human(shown)
    );
    let _ = err.flush();
    let mut answer = String::new();
    let _ = stdin.lock().read_line(&mut answer);
    let answer = answer.trim();
    if answer == cluster || answer == "yes" {
        return Ok(());
    }
    Err(RestoreError::Usage(format!(
        "not confirmed (answer {answer:?}, wanted {cluster:?} or \"yes\"): nothing was done"
    )))
}

/// The version `rke2 --version` reports (`rke2 version v1.31.4+rke2r1 (hash)`).
fn rke2_version(bin: &Path) -> Option<String> {
    let out = Cmd::new(bin)
        .args(["--version"])
        .run_blocking()
        .map_err(|e| tracing::warn!("{e}"))
        .ok()?;
    let text = &out.stdout;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("rke2 version "))
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_string)
}

/// The runbook as text.
pub fn human(r: &Rke2Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "RKE2 cluster-reset {} (node {} is reset first; archive {})",
        if r.executed { "performed" } else { "runbook" },
        r.node,
        r.archive.as_deref().unwrap_or("<newest verified>")
    );
    if let Some(v) = &r.snapshot_etcd_version {
        let _ = writeln!(
            s,
            "The snapshot is of etcd {v}; the cluster-reset restores it with the embedded etcd of {}: use the RKE2 release the cluster ran",
            match &r.rke2_version {
                Some(x) => format!("rke2 {x}"),
                None => "this node's rke2".into(),
            }
        );
    }
    for (i, st) in r.steps.iter().enumerate() {
        let mark = if !r.executed {
            ""
        } else if st.done {
            "[done] "
        } else if st.by_hand {
            "[BY HAND] "
        } else {
            "[not done] "
        };
        let _ = writeln!(
            s,
            "{:>2}. {mark}on {}: {}\n      {}",
            i + 1,
            st.on,
            st.what,
            st.command
        );
    }
    let _ = writeln!(
        s,
        "Then check: `kubectl get nodes` (all servers Ready) and on a server\n      \
         ETCDCTL_API=3 etcdctl --cacert /var/lib/rancher/rke2/server/tls/etcd/server-ca.crt \
         --cert /var/lib/rancher/rke2/server/tls/etcd/server-client.crt --key /var/lib/rancher/rke2/server/tls/etcd/server-client.key \
         --endpoints https://127.0.0.1:2379 member list -w table"
    );
    // The cluster-reset takes no revision bump: only restarts clear caches
    // that saw revisions newer than the snapshot (issue #15 point 3).
    let _ = writeln!(
        s,
        "Then restart what caches the old state (vigil passes the reset no revision bump): on each server, one at a time,\n      \
         CRI_CONFIG_FILE=/var/lib/rancher/rke2/agent/etc/crictl.yaml /var/lib/rancher/rke2/bin/crictl stop \
         $(CRI_CONFIG_FILE=/var/lib/rancher/rke2/agent/etc/crictl.yaml /var/lib/rancher/rke2/bin/crictl ps -q --name kube-apiserver)\n      \
         (the kubelet starts the kube-apiserver again and its watch cache re-lists); then the kubelets: \
         `systemctl restart rke2-server` on each server, one at a time, and `systemctl restart rke2-agent` on each agent"
    );
    s
}
