//! `vigil-bench run`: one dataset, every step side by side on the same
//! member and database, `--runs` times, interleaved so that noise spreads
//! over all steps alike.

use crate::gen::{self, GenOptions};
use crate::procs::{self, Etcd, Rgw, ACCESS_KEY, SECRET_KEY};
use crate::results::*;
use crate::shared::{
    age_key, etcd_version, git_head, host, prepare, rm, shell_line, time_cmd, vigil_config,
    write_results,
};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub repo: PathBuf,
    pub bin_dir: PathBuf,
    pub size: u64,
    pub label: String,
    pub runs: usize,
    pub seed: u64,
    pub workers: usize,
    pub members: usize,
    pub workdir: PathBuf,
    pub keep: bool,
    pub out: PathBuf,
    /// The level of the main comparison (vigil's default is 3).
    pub zstd_level: i32,
    pub levels: Vec<i32>,
    pub threads: Vec<u32>,
    /// (part_size, upload_concurrency)
    pub parts: Vec<(String, u32)>,
    pub smoke: bool,
}

/// vigil config variations.
#[derive(Debug, Clone, Default)]
struct Variant {
    members: usize,
    zstd_level: i32,
    zstd_threads: u32,
    part_size: Option<String>,
    upload_concurrency: Option<u32>,
    /// The sink's `verify` (default: the kind's default, `size` for s3).
    verify: Option<&'static str>,
    /// No radosgw sink: the local dir only.
    local_only: bool,
}

struct Bench<'a> {
    o: &'a RunOptions,
    etcd: Etcd,
    rgw: Rgw,
    w: PathBuf,
    clk: f64,
    recipient: String,
    key_file: PathBuf,
    steps: BTreeMap<String, Step>,
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

impl Bench<'_> {
    fn bin(&self, name: &str) -> String {
        self.o.bin_dir.join(name).display().to_string()
    }

    /// Runs argv under `/usr/bin/time`; stdout goes to `stdout_to` if given.
    fn time(
        &self,
        argv: &[String],
        env: &[(&str, &str)],
        stdout_to: Option<&Path>,
    ) -> Result<Sample> {
        let cpu0 = procs::cpu_seconds(&self.etcd, self.clk);
        let (code, mut s) = time_cmd(&self.w, argv, env, stdout_to)?;
        s.server_cpu_s = procs::cpu_seconds(&self.etcd, self.clk) - cpu0;
        if code != 0 {
            bail!(
                "{} failed (exit {code}): {}",
                shell_line(argv),
                std::fs::read_to_string(self.w.join("stderr.out")).unwrap_or_default()
            );
        }
        Ok(s)
    }

    fn record(&mut self, key: &str, argv: &[String], s: Sample) {
        let e = self.steps.entry(key.to_string()).or_default();
        e.cmd = shell_line(argv);
        e.samples.push(s);
        eprintln!(
            "  {key:<22} {:>8.2} s wall {:>8.2} s cpu {:>8.1} MiB rss {:>7.2} s etcd",
            s_wall(e),
            e.samples.last().map_or(0.0, |s| s.cpu_s),
            e.samples.last().map_or(0, |s| s.maxrss_kib) as f64 / 1024.0,
            e.samples.last().map_or(0.0, |s| s.server_cpu_s),
        );
    }

    /// Times argv and records it under `key`.
    fn step(
        &mut self,
        key: &str,
        argv: Vec<String>,
        bytes_in: &Path,
        bytes_out: &Path,
    ) -> Result<Sample> {
        let mut s = self.time(&argv, &[("ETCDCTL_API", "3")], None)?;
        s.bytes_in = file_size(bytes_in);
        s.bytes_out = file_size(bytes_out);
        self.record(key, &argv, s.clone());
        Ok(s)
    }

    fn write_config(&self, v: &Variant) -> Result<PathBuf> {
        let members = &self.etcd.members[..v.members.min(self.etcd.members.len())];
        let mut s = vigil_config(
            members,
            &self.w,
            &self.recipient,
            v.zstd_level,
            v.zstd_threads,
            // These figures time the pipeline, three members at once as
            // they were measured; `cost` measures the turns.
            "max_concurrent_members = 3\n",
        );
        if v.local_only {
            let p = self.w.join(format!("vigil-m{}-local.toml", v.members));
            std::fs::write(&p, s)?;
            return Ok(p);
        }
        s.push_str(&format!(
            "\n[[sink]]\nname = \"rgw\"\nkind = \"s3\"\nendpoint = \"{}\"\nallow_http = true\nbucket = \"bench\"\nregion = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\npath_style = true\nkeep_last = 1\n",
            self.rgw.endpoint()
        ));
        if let Some(p) = &v.part_size {
            s.push_str(&format!("part_size = \"{p}\"\n"));
        }
        if let Some(c) = v.upload_concurrency {
            s.push_str(&format!("upload_concurrency = {c}\n"));
        }
        if let Some(m) = v.verify {
            s.push_str(&format!("verify = \"{m}\"\n"));
        }
        let name = format!(
            "vigil-m{}-l{}-t{}-{}-{}-{}.toml",
            v.members,
            v.zstd_level,
            v.zstd_threads,
            v.part_size.as_deref().unwrap_or("default"),
            v.upload_concurrency.unwrap_or(0),
            v.verify.unwrap_or("default")
        );
        let p = self.w.join(name);
        std::fs::write(&p, s)?;
        Ok(p)
    }

    /// `vigil-snapshot run --json` with a variant; returns its report.
    fn vigil_run(&mut self, key: &str, v: &Variant) -> Result<serde_json::Value> {
        let cfg = self.write_config(v)?;
        let argv = vec![
            self.bin("vigil-snapshot"),
            "--config".into(),
            cfg.display().to_string(),
            "run".into(),
            "--json".into(),
        ];
        let out = self.w.join("report.json");
        let mut s = self.time(&argv, &[("VIGIL_LOG", "warn")], Some(&out))?;
        let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)
            .with_context(|| format!("{key}: vigil-snapshot run --json printed no report"))?;
        if rep["ok"] != true {
            bail!("{key}: vigil-snapshot run failed: {rep}");
        }
        for m in rep["members"].as_array().into_iter().flatten() {
            s.bytes_in += m["manifest"]["snapshot_size"].as_u64().unwrap_or(0);
            s.bytes_out += m["manifest"]["archive_size"].as_u64().unwrap_or(0);
        }
        self.record(key, &argv, s);
        self.rgw.gc();
        Ok(rep)
    }

    fn main_variant(&self, members: usize) -> Variant {
        Variant {
            members,
            zstd_level: self.o.zstd_level,
            ..Default::default()
        }
    }

    /// One round of every step.
    fn round(&mut self, round: usize) -> Result<()> {
        eprintln!("== round {round} of {}", self.o.runs);
        let d = self.w.join("anchor");
        rm(&d);
        std::fs::create_dir_all(&d)?;
        let snap = d.join("snap.db");
        let ep = self.etcd.members[0].endpoint();
        let none = Path::new("");

        // (a) etcdctl snapshot save, member cp-1.
        self.step(
            "a_save",
            vec![
                "etcdctl".into(),
                "--endpoints".into(),
                ep.clone(),
                "snapshot".into(),
                "save".into(),
                snap.display().to_string(),
            ],
            none,
            &snap,
        )?;
        self.step(
            "sha256",
            vec!["sha256sum".into(), snap.display().to_string()],
            &snap,
            none,
        )?;
        // (b) save → zip → upload (RKE2's format).
        let zip = d.join("snap.zip");
        self.step(
            "b_zip",
            vec![
                "zip".into(),
                "-q".into(),
                "-j".into(),
                zip.display().to_string(),
                snap.display().to_string(),
            ],
            &snap,
            &zip,
        )?;
        let mut put = procs::s3cmd(&self.rgw);
        put.extend([
            "put".into(),
            zip.display().to_string(),
            "s3://bench/anchor/snap.zip".into(),
        ]);
        self.step("b_zip_put", put, &zip, &zip)?;
        rm(&zip);
        // (b) save → zstd → age → upload.
        let zst = d.join("snap.db.zst");
        let level = self.o.zstd_level;
        self.step(
            "b_zstd",
            vec![
                "zstd".into(),
                format!("-{level}"),
                "-T2".into(),
                "-q".into(),
                "-f".into(),
                snap.display().to_string(),
                "-o".into(),
                zst.display().to_string(),
            ],
            &snap,
            &zst,
        )?;
        let age = d.join("snap.db.zst.age");
        self.step(
            "b_age",
            vec![
                "age".into(),
                "-r".into(),
                self.recipient.clone(),
                "-o".into(),
                age.display().to_string(),
                zst.display().to_string(),
            ],
            &zst,
            &age,
        )?;
        rm(&zst);
        let mut put = procs::s3cmd(&self.rgw);
        put.extend([
            "put".into(),
            age.display().to_string(),
            "s3://bench/anchor/snap.db.zst.age".into(),
        ]);
        self.step("b_age_put", put, &age, &age)?;
        rm(&age);
        let _ = procs::run_s3cmd(&self.rgw, &["del", "--recursive", "s3://bench/anchor/"]);
        self.rgw.gc();

        // zstd CLI at every level of the sweep, on the same snapshot.
        for l in self.o.levels.clone() {
            let out = d.join(format!("snap.l{l}.zst"));
            self.step(
                &format!("zstd_cli_l{l}"),
                vec![
                    "zstd".into(),
                    format!("-{l}"),
                    "-T2".into(),
                    "-q".into(),
                    "-f".into(),
                    snap.display().to_string(),
                    "-o".into(),
                    out.display().to_string(),
                ],
                &snap,
                &out,
            )?;
            rm(&out);
        }
        rm(&snap);

        // (c) vigil-snapshot run: one member (same as a), then all three.
        self.vigil_run("c1", &self.main_variant(1))?;
        // The same without the radosgw sink, and with a full readback of the copy.
        let local = Variant {
            local_only: true,
            ..self.main_variant(1)
        };
        self.vigil_run("c1_local", &local)?;
        let readback = Variant {
            verify: Some("readback"),
            ..self.main_variant(1)
        };
        self.vigil_run("c1_readback", &readback)?;
        let rep = self.vigil_run("c3", &self.main_variant(self.o.members))?;

        // Restore, from the archives c3 just shipped.
        self.restore(&rep)?;

        // Sweeps (three members + radosgw, like production).
        for l in self.o.levels.clone() {
            for t in self.o.threads.clone() {
                if l == self.o.zstd_level && t == 0 {
                    continue; // that is c3
                }
                let v = Variant {
                    members: self.o.members,
                    zstd_level: l,
                    zstd_threads: t,
                    ..Default::default()
                };
                self.vigil_run(&format!("sweep_l{l}_t{t}"), &v)?;
            }
        }
        for (p, c) in self.o.parts.clone() {
            let v = Variant {
                members: self.o.members,
                zstd_level: self.o.zstd_level,
                part_size: Some(p.clone()),
                upload_concurrency: Some(c),
                ..Default::default()
            };
            self.vigil_run(&format!("parts_{p}_c{c}"), &v)?;
        }
        Ok(())
    }

    fn restore(&mut self, rep: &serde_json::Value) -> Result<()> {
        let d = self.w.join("restore");
        rm(&d);
        std::fs::create_dir_all(&d)?;
        let cfg = self.write_config(&self.main_variant(self.o.members))?;
        let cfg = cfg.display().to_string();
        let key = self.key_file.display().to_string();
        let m1 = rep["members"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["member"] == "cp-1"))
            .context("c3 report has no cp-1")?;
        let url = m1["sinks"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["sink"] == "rgw"))
            .and_then(|s| s["location"].as_str())
            .context("c3 report has no rgw copy of cp-1")?
            .to_string();

        let fetched = d.join("fetch.db");
        let argv = vec![
            self.bin("vigil-restore"),
            "--config".into(),
            cfg.clone(),
            "fetch".into(),
            "--member".into(),
            "cp-1".into(),
            "--source".into(),
            "rgw".into(),
            "--identity".into(),
            key.clone(),
            "--out".into(),
            fetched.display().to_string(),
        ];
        self.step("r_fetch", argv, none(), &fetched)?;
        rm(&fetched);

        let got = d.join("a.db.zst.age");
        let mut get = procs::s3cmd(&self.rgw);
        get.extend([
            "get".into(),
            "--force".into(),
            url,
            got.display().to_string(),
        ]);
        self.step("r_get", get, none(), &got)?;
        let zst = d.join("a.db.zst");
        self.step(
            "r_age",
            vec![
                "age".into(),
                "-d".into(),
                "-i".into(),
                key.clone(),
                "-o".into(),
                zst.display().to_string(),
                got.display().to_string(),
            ],
            &got,
            &zst,
        )?;
        rm(&got);
        let db = d.join("a.db");
        self.step(
            "r_zstd",
            vec![
                "zstd".into(),
                "-d".into(),
                "-q".into(),
                "-f".into(),
                zst.display().to_string(),
                "-o".into(),
                db.display().to_string(),
            ],
            &zst,
            &db,
        )?;
        rm(&zst);
        rm(&db);

        let out = d.join("etcd");
        let argv = vec![
            self.bin("vigil-restore"),
            "--config".into(),
            cfg,
            "etcd".into(),
            "--identity".into(),
            key,
            "--source".into(),
            "rgw".into(),
            "--skip-port-check".into(),
            // No Kubernetes watches this cluster: the bench times the restore, not the bump.
            "--no-bump".into(),
            "--out".into(),
            out.display().to_string(),
        ];
        self.step("r_etcd", argv, none(), none())?;
        rm(&d);
        Ok(())
    }
}

fn none() -> &'static Path {
    Path::new("")
}

fn s_wall(s: &Step) -> f64 {
    s.samples.last().map_or(0.0, |s| s.wall_s)
}

pub fn run(o: &RunOptions) -> Result<Results> {
    for (tool, pkg) in [
        ("/usr/bin/time", "time"),
        ("etcd", "etcd-server"),
        ("etcdctl", "etcd-client"),
        ("zstd", "zstd"),
        ("age", "age"),
        ("zip", "zip"),
        ("s3cmd", "s3cmd"),
        ("radosgw", "radosgw"),
        ("sha256sum", "coreutils"),
    ] {
        let found = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !found {
            bail!("{tool} is missing: install the Debian package {pkg} (scripts/install-deps.sh)");
        }
    }
    let (w, started_at) = prepare(&o.bin_dir, &["vigil-snapshot", "vigil-restore"], &o.workdir)?;

    eprintln!(
        "starting Ceph radosgw and {} etcd members in {}",
        o.members,
        w.display()
    );
    // Room for a few archives per member in the in-memory OSD.
    let memstore = (o.size * 3).max(2 << 30);
    let rgw = procs::start_rgw(&w.join("ceph"), memstore)?;
    procs::run_s3cmd(&rgw, &["mb", "s3://bench"])?;
    let quota = (o.size * 2 + (1 << 30)).min(8 << 30);
    let etcd = procs::start_etcd(&w.join("etcd"), o.members, quota)?;

    let (key_file, recipient) = age_key(&w)?;

    eprintln!(
        "generating {} of Kubernetes-shaped data (seed {})",
        o.label, o.seed
    );
    let dataset = gen::generate_blocking(&GenOptions::dataset(
        etcd.endpoints(),
        o.size,
        o.seed,
        o.workers,
        false,
    ))?;
    eprintln!(
        "dataset: db {:.1} MB ({:.1} MB in use), {} keys, revision {}, {:.1} s",
        dataset.db_size as f64 / 1e6,
        dataset.db_size_in_use as f64 / 1e6,
        dataset.keys,
        dataset.revision,
        dataset.gen_seconds
    );

    let mut b = Bench {
        o,
        etcd,
        rgw,
        w: w.clone(),
        clk: procs::clk_tck(),
        recipient,
        key_file,
        steps: BTreeMap::new(),
    };
    for r in 1..=o.runs {
        b.round(r)?;
    }

    let derived = derive(&b.steps);
    let res = Results {
        schema: SCHEMA,
        label: o.label.clone(),
        smoke: o.smoke,
        started_at,
        git_commit: git_head(&o.repo),
        host: host(etcd_version()),
        members: o.members,
        runs: o.runs,
        zstd_level: o.zstd_level,
        dataset,
        sweep: o
            .levels
            .iter()
            .flat_map(|&l| {
                o.threads.iter().map(move |&t| SweepRow {
                    zstd_level: l,
                    zstd_threads: t,
                    step: if l == o.zstd_level && t == 0 {
                        "c3".into()
                    } else {
                        format!("sweep_l{l}_t{t}")
                    },
                    cli_step: format!("zstd_cli_l{l}"),
                })
            })
            .collect(),
        parts: o
            .parts
            .iter()
            .map(|(p, c)| PartRow {
                part_size: p.clone(),
                upload_concurrency: *c,
                step: format!("parts_{p}_c{c}"),
            })
            .collect(),
        steps: std::mem::take(&mut b.steps),
        derived,
    };
    write_results(&o.out, &res)?;
    drop(b);
    if !o.keep {
        rm(&w);
    }
    Ok(res)
}
