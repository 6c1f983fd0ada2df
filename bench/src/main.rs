//! vigil-bench: the benchmark harness of issue 9 (see BENCHMARKS.md).
//!
//! - `gen`: fill an etcd cluster with a Kubernetes-shaped dataset;
//! - `run`: start etcd and radosgw, generate, and time every step side by side;
//! - `cost`: what a backup costs a loaded 3-member cluster (issue 21);
//! - `prove`: what the restore proof costs a run (issue 19);
//! - `journal`: what the watch journal costs and how far behind it is (issue 17);
//! - `report`: render the BENCHMARKS.md tables from results files.

mod checks;
mod cost;
mod gen;
mod journal;
mod procs;
mod prove;
mod report;
mod results;
mod runner;
mod shared;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-bench",
    about = "vigil benchmark harness (BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the binaries, the scripts and the scratch space are.
#[derive(Debug, clap::Args)]
struct Common {
    /// Directory with the vigil binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The repository (for tests/ceph/*.sh).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Scratch space (etcd data, snapshots, Ceph); removed afterwards unless --keep.
    #[arg(long)]
    workdir: Option<PathBuf>,
    #[arg(long)]
    keep: bool,
    /// Results file (default bench/results/<label>.json, or checks.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Common {
    /// (repo, bin_dir, workdir, out), absolute against the repo.
    fn resolve(self, scratch: &str, out: &str) -> Result<(PathBuf, PathBuf, PathBuf, PathBuf)> {
        let repo = std::fs::canonicalize(&self.repo)?;
        let abs = |p: PathBuf| if p.is_absolute() { p } else { repo.join(p) };
        let workdir = self.workdir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("{scratch}-{}", std::process::id()))
        });
        let out = abs(self.out.unwrap_or_else(|| PathBuf::from(out)));
        let bin_dir = abs(self.bin_dir);
        Ok((repo, bin_dir, workdir, out))
    }
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum Command {
    /// Fill an existing etcd cluster with a Kubernetes-shaped dataset.
    Gen {
        /// Client URLs, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        endpoints: Vec<String>,
        /// Target database size: 5MB, 1GB, 2GiB, ...
        #[arg(long)]
        size: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Print the dataset summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start etcd (free loopback ports) and radosgw, generate a dataset, and time every step.
    Run {
        /// Target database size: 5MB, 1GB, 4GB, ...
        #[arg(long)]
        size: String,
        /// Rounds; each figure is the median over them.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// etcd cluster size (3, or 1 for a single-member cluster).
        #[arg(long, default_value_t = 3)]
        members: usize,
        #[command(flatten)]
        common: Common,
        /// Name of the dataset in the results (default: the size).
        #[arg(long)]
        label: Option<String>,
        /// zstd level of the main comparison (vigil's default: 1).
        #[arg(long, default_value_t = 1)]
        zstd_level: i32,
        /// zstd levels of the sweep.
        #[arg(long, value_delimiter = ',', default_value = "1,3,6")]
        levels: Vec<i32>,
        /// snapshot.zstd_threads values of the sweep.
        #[arg(long, value_delimiter = ',', default_value = "0,2")]
        threads: Vec<u32>,
        /// part_size:upload_concurrency pairs of the multipart sweep ("" for none).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "5MiB:1,5MiB:2,16MiB:2,16MiB:4"
        )]
        parts: Vec<String>,
        /// Mark the results as a harness check whose figures mean nothing.
        #[arg(long)]
        smoke: bool,
    },
    /// Time a healthy `vigil-health` round, and `vigil-quota` over N CephFS
    /// subvolumes with both backends (starts etcd, node_exporters and CephFS).
    Checks {
        /// Subvolumes to create.
        #[arg(long, default_value_t = 1000)]
        subvolumes: usize,
        /// Rounds; each figure is the median over them.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Rounds of the `ceph` CLI quota backend, which runs one `ceph`
        /// process per subvolume and takes minutes over 1000.
        #[arg(long, default_value_t = 1)]
        ceph_runs: usize,
        #[command(flatten)]
        common: Common,
    },
    /// What a backup costs the cluster: write latency and db growth under a
    /// steady load while etcdctl or vigil (with each bound) takes a snapshot.
    Cost {
        /// Target database size: 5MB, 300MB, ...
        #[arg(long)]
        size: String,
        /// Offered write rate, requests per second (open loop).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Objects the load creates and then updates.
        #[arg(long, default_value_t = 2000)]
        objects: usize,
        /// Rounds of every phase; each figure is the median over them.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Length of the idle phase (and of the warm-up), seconds.
        #[arg(long, default_value_t = 25.0)]
        idle: f64,
        /// Settle after each backup (measured) and before each phase (not), seconds.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
        /// Load before the first phase, seconds (the default lets the
        /// compactor, which keeps 90 s of history, start freeing pages).
        #[arg(long, default_value_t = 100.0)]
        warmup: f64,
        /// `snapshot.rate_limit` values of the rate phases.
        #[arg(long, value_delimiter = ',', default_value = "10MiB,20MiB,50MiB")]
        rate_limits: Vec<String>,
        /// Only these phases (idle, etcdctl, vigil, vigil_serial,
        /// vigil_rate_<limit>, vigil_serial_preflight, vigil_preflight); default: all.
        #[arg(long, value_delimiter = ',')]
        phases: Vec<String>,
        /// Do not defragment the members before each phase.
        #[arg(long)]
        no_defrag: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 4)]
        workers: usize,
        #[command(flatten)]
        common: Common,
        /// Name of the run in the results (default: the size).
        #[arg(long)]
        label: Option<String>,
        /// Mark the results as a harness check whose figures mean nothing.
        #[arg(long)]
        smoke: bool,
    },
    /// What the restore proof costs a run: `vigil-snapshot run` of 3
    /// members with `prove_restore` off and on, wall time and peak memory
    /// (process tree RSS + the proof's tmpfs), sampled every 100 ms.
    Prove {
        /// Target database size per member: 5MB, 300MB, 1GB, ...
        #[arg(long)]
        size: String,
        /// Rounds (one run off and one on each); figures are medians.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// etcd cluster size (1: one proof, with no other member's stream
        /// or proof beside it).
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// The tmpfs under which the proof's private dir is made.
        #[arg(long, default_value = "/dev/shm")]
        shm: PathBuf,
        /// Memory sampling interval, milliseconds.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Before each run, wait for the 1-minute load average to fall
        /// below this (0: do not wait), for at most --wait-max seconds.
        #[arg(long, default_value_t = 0.0)]
        wait_load: f64,
        #[arg(long, default_value_t = 90)]
        wait_max: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 4)]
        workers: usize,
        #[command(flatten)]
        common: Common,
        /// Name of the run in the results (default: the size).
        #[arg(long)]
        label: Option<String>,
        /// Mark the results as a harness check whose figures mean nothing.
        #[arg(long)]
        smoke: bool,
    },
    /// What the watch journal costs: the write rate it keeps up with
    /// (1 KiB values, as fast as etcd answers), its lag, CPU and memory at a
    /// steady rate, and the time to restore to a point against the events
    /// replayed (3 etcd members, `vigil-journal run` as a child).
    Journal {
        /// Length of the burst (as fast as etcd answers), seconds.
        #[arg(long, default_value_t = 60.0)]
        burst: f64,
        /// etcd clients (one connection each, over the 3 members) of the
        /// burst, which each put one value at a time, and of the steady writer.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Steady write rate, puts per second (open loop).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Length of the steady phase, seconds (3600 for "flat over an hour").
        #[arg(long, default_value_t = 300.0)]
        steady: f64,
        /// The journal's RSS is sampled this often in the steady phase, seconds.
        #[arg(long, default_value_t = 5.0)]
        sample_every: f64,
        /// Keys the writers write over (the base snapshot holds them all).
        #[arg(long, default_value_t = 10_000)]
        objects: u64,
        /// `journal.flush` in seconds (default: not set, the journal's 10 s).
        #[arg(long)]
        flush: Option<f64>,
        /// `journal.max_local` (default: not set, the journal's 4GiB; an
        /// hour at 1000 writes/s of 1 KiB writes about 4 GB of journal).
        #[arg(long)]
        max_local: Option<String>,
        /// After each phase, wait at most this long for the journal to close
        /// a segment holding its last write, seconds.
        #[arg(long, default_value_t = 600.0)]
        catch_up_max: f64,
        /// Restore points: events after the base snapshot, or `end` (the
        /// journal's last revision); points past the end are skipped.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "0,10000,50000,100000,200000,end"
        )]
        restore_points: Vec<journal::PointSpec>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: Common,
        /// Name of the run in the results (default: <rate>ws-<steady>s).
        #[arg(long)]
        label: Option<String>,
        /// Mark the results as a harness check whose figures mean nothing.
        #[arg(long)]
        smoke: bool,
    },
    /// Render the BENCHMARKS.md tables from results files.
    Report {
        files: Vec<PathBuf>,
        /// Replace the text between the result markers of this markdown file.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Command::Gen {
            endpoints,
            size,
            seed,
            workers,
            json,
        } => {
            let d = gen::generate_blocking(&gen::GenOptions::dataset(
                endpoints,
                gen::parse_size(&size)?,
                seed,
                workers,
                json,
            ))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                println!(
                    "database {:.1} MB ({:.1} MB in use), {} keys, revision {}, {} puts, {} deletes, {:.1} s",
                    d.db_size as f64 / 1e6,
                    d.db_size_in_use as f64 / 1e6,
                    d.keys,
                    d.revision,
                    d.puts,
                    d.deletes,
                    d.gen_seconds
                );
            }
            Ok(())
        }
        Command::Run {
            size,
            runs,
            seed,
            workers,
            members,
            common,
            label,
            zstd_level,
            levels,
            threads,
            parts,
            smoke,
        } => {
            let label = label.unwrap_or_else(|| size.clone());
            let parts = parts
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (s, c) = p.split_once(':').with_context(|| {
                        format!("--parts {p:?}: write part_size:concurrency, e.g. 16MiB:2")
                    })?;
                    Ok((s.to_string(), c.parse()?))
                })
                .collect::<Result<Vec<_>>>()?;
            let keep = common.keep;
            let (repo, bin_dir, workdir, out) =
                common.resolve("vigil-bench", &format!("bench/results/{label}.json"))?;
            let o = runner::RunOptions {
                bin_dir,
                size: gen::parse_size(&size)?,
                runs: runs.max(1),
                seed,
                workers,
                members: members.max(1),
                workdir,
                keep,
                out,
                label,
                zstd_level,
                levels,
                threads,
                parts,
                smoke,
                repo,
            };
            let r = runner::run(&o)?;
            print!("{}", report::render(&[r]));
            Ok(())
        }
        Command::Checks {
            subvolumes,
            runs,
            ceph_runs,
            common,
        } => {
            let keep = common.keep;
            let (repo, bin_dir, workdir, out) =
                common.resolve("vigil-bench-checks", "bench/results/checks.json")?;
            let o = checks::ChecksOptions {
                bin_dir,
                workdir,
                keep,
                out,
                runs: runs.max(1),
                ceph_runs: ceph_runs.max(1),
                subvolumes,
                repo,
            };
            let r = checks::run(&o)?;
            print!("{}", report::render_checks(&r));
            Ok(())
        }
        Command::Cost {
            size,
            rate,
            objects,
            runs,
            idle,
            settle,
            warmup,
            rate_limits,
            phases,
            no_defrag,
            seed,
            workers,
            common,
            label,
            smoke,
        } => {
            let keep = common.keep;
            let (repo, bin_dir, workdir, out) =
                common.resolve("vigil-bench-cost", "bench/results/cost.json")?;
            let label = label.unwrap_or_else(|| size.clone());
            let o = cost::CostOptions {
                repo,
                bin_dir,
                workdir,
                keep,
                out,
                size: gen::parse_size(&size)?,
                label,
                seed,
                workers,
                runs: runs.max(1),
                rate,
                objects,
                idle_s: idle,
                settle_s: settle,
                warmup_s: warmup,
                rate_limits: rate_limits.into_iter().filter(|r| !r.is_empty()).collect(),
                phases,
                defrag: !no_defrag,
                smoke,
            };
            let r = cost::run(&o)?;
            print!("{}", report::render_cost(&r));
            Ok(())
        }
        Command::Prove {
            size,
            runs,
            members,
            shm,
            interval_ms,
            wait_load,
            wait_max,
            seed,
            workers,
            common,
            label,
            smoke,
        } => {
            let label = label.unwrap_or_else(|| size.clone());
            let keep = common.keep;
            let (repo, bin_dir, workdir, out) = common.resolve(
                "vigil-bench-prove",
                &format!("bench/results/prove-{label}.json"),
            )?;
            let o = prove::ProveOptions {
                repo,
                bin_dir,
                workdir,
                keep,
                out,
                size: gen::parse_size(&size)?,
                label,
                seed,
                workers,
                runs: runs.max(1),
                members: members.max(1),
                shm,
                interval: std::time::Duration::from_millis(interval_ms.max(10)),
                wait_load,
                wait_max: std::time::Duration::from_secs(wait_max),
                smoke,
            };
            let r = prove::run(&o)?;
            print!("{}", report::render_prove(&[r]));
            Ok(())
        }
        Command::Journal {
            burst,
            clients,
            rate,
            steady,
            sample_every,
            objects,
            flush,
            max_local,
            catch_up_max,
            restore_points,
            seed,
            common,
            label,
            smoke,
        } => {
            let label = label.unwrap_or_else(|| format!("{rate:.0}ws-{steady:.0}s"));
            let keep = common.keep;
            let (repo, bin_dir, workdir, out) = common.resolve(
                "vigil-bench-journal",
                &format!("bench/results/journal-{label}.json"),
            )?;
            let o = journal::JournalOptions {
                repo,
                bin_dir,
                workdir,
                keep,
                out,
                label,
                seed,
                objects: objects.max(1),
                clients: clients.max(1),
                burst_s: burst,
                rate,
                steady_s: steady,
                sample_s: sample_every,
                flush_s: flush,
                max_local,
                catch_up_max_s: catch_up_max,
                restore_points,
                smoke,
            };
            let r = journal::run(&o)?;
            print!("{}", report::render_journal(&[r]));
            Ok(())
        }
        Command::Report { files, write } => {
            let mut all = Vec::new();
            let mut journals = Vec::new();
            let mut checks = Vec::new();
            let mut costs = Vec::new();
            let mut proofs = Vec::new();
            for f in &files {
                let raw: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
                )
                .with_context(|| format!("{}: not JSON", f.display()))?;
                let bad = || format!("{}: not a vigil-bench results file", f.display());
                if raw["kind"] == journal::KIND {
                    journals.push(
                        serde_json::from_value::<journal::JournalResults>(raw).with_context(bad)?,
                    );
                } else if raw["kind"] == prove::KIND {
                    proofs.push(
                        serde_json::from_value::<prove::ProveResults>(raw).with_context(bad)?,
                    );
                } else if raw["kind"] == cost::KIND {
                    costs.push(serde_json::from_value::<cost::CostResults>(raw).with_context(bad)?);
                } else if raw["kind"] == checks::KIND {
                    checks.push(
                        serde_json::from_value::<checks::ChecksResults>(raw).with_context(bad)?,
                    );
                } else {
                    all.push(serde_json::from_value::<results::Results>(raw).with_context(bad)?);
                }
            }
            let mut md = report::render(&all);
            for c in &checks {
                md.push_str(&report::render_checks(c));
                md.push('\n');
            }
            let mut cost_md = String::new();
            for c in &costs {
                cost_md.push_str(&report::render_cost(c));
                cost_md.push('\n');
            }
            let prove_md = if proofs.is_empty() {
                String::new()
            } else {
                report::render_prove(&proofs)
            };
            let journal_md = if journals.is_empty() {
                String::new()
            } else {
                report::render_journal(&journals)
            };
            match write {
                Some(p) => {
                    // Each section only from files of its kind: `report
                    // cost.json --write` leaves the other tables alone.
                    let mut doc = std::fs::read_to_string(&p)?;
                    if !all.is_empty() || !checks.is_empty() {
                        doc = report::splice(&doc, &md).with_context(|| {
                            format!(
                                "{}: no <!-- bench:results:begin/end --> markers",
                                p.display()
                            )
                        })?;
                    }
                    if !costs.is_empty() {
                        doc = report::splice_cost(&doc, &cost_md).with_context(|| {
                            format!("{}: no <!-- bench:cost:begin/end --> markers", p.display())
                        })?;
                    }
                    if !proofs.is_empty() {
                        doc = report::splice_prove(&doc, &prove_md).with_context(|| {
                            format!("{}: no <!-- bench:prove:begin/end --> markers", p.display())
                        })?;
                    }
                    if !journals.is_empty() {
                        doc = report::splice_journal(&doc, &journal_md).with_context(|| {
                            format!(
                                "{}: no <!-- bench:journal:begin/end --> markers",
                                p.display()
                            )
                        })?;
                    }
                    std::fs::write(&p, doc)?;
                }
                None => print!("{md}{cost_md}{prove_md}{journal_md}"),
            }
            Ok(())
        }
    }
}
