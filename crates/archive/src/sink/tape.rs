//! `kind = "tape-dsmc"`: IBM Spectrum Protect. dsmc archives the finished
//! local file and its manifest; a catalog of what was archived is kept in
//! `<state.dir>/tape/<sink>.jsonl`, since vigil cannot list the tape server.

use super::{Backend, SinkEntry, SinkError, SinkMsg};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use vigil_core::config::sink::TapeSink;
use vigil_core::config::{RcPolicy, SinkConfig, VerifyMode};
use vigil_core::fsutil::{self, FsError};
use vigil_core::manifest::Manifest;

pub(super) struct TapeBackend {
    name: String,
    opts: TapeSink,
    timeout: Duration,
    catalog: PathBuf,
    paths: DsmcPaths,
}

pub(super) fn build(
    cfg: &SinkConfig,
    o: &TapeSink,
    state_dir: &Path,
) -> Result<TapeBackend, SinkError> {
    Ok(TapeBackend {
        name: cfg.name.clone(),
        opts: o.clone(),
        timeout: cfg.timeout(),
        catalog: state_dir.join("tape").join(format!("{}.jsonl", cfg.name)),
        paths: DsmcPaths {
            error_log: o.error_log(&cfg.name, state_dir),
            log_dir: o.log_dir(&cfg.name, state_dir),
            password_dir: o.password_dir(state_dir),
        },
    })
}

impl TapeBackend {
    fn description(&self, m: &Manifest) -> String {
        self.opts
            .description
            .replace("{cluster}", &m.cluster)
            .replace("{member}", &m.member)
            .replace("{revision}", &m.revision.to_string())
            .replace("{id}", &m.id)
    }

    fn dsmc_args(&self, command: &str, m: &Manifest, paths: &DsmcPaths) -> Vec<String> {
        let mut args = vec![command.to_string()];
        if let Some(o) = &self.opts.optfile {
            args.push(format!("-optfile={}", o.display()));
        }
        args.push(format!("-errorlogname={}", paths.error_log.display()));
        args.push(format!("-description={}", self.description(m)));
        args.extend(self.opts.extra_args.iter().cloned());
        args
    }

    fn tape_err(&self, message: String) -> SinkError {
        SinkError::Tape {
            sink: self.name.clone(),
            message,
        }
    }

    /// Makes sure every path dsmc writes is there and writable by this user
    /// before dsmc runs, so a sandbox or ownership problem is named by its
    /// config key instead of surfacing as a dsmc error (or a lost log).
    /// Returns the error log's length, so that only this run's lines are
    /// quoted on failure.
    fn dsmc_prepare(&self, paths: &DsmcPaths) -> Result<u64, SinkError> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
        let fix = "; the unit may write only the paths the config names (vigil-generator adds them as ReadWritePaths= on daemon-reload), and they must belong to the user vigil runs as";
        let log = &paths.error_log;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&paths.log_dir)
            .map_err(|e| {
                self.tape_err(format!(
                    "error_log: cannot create its directory {}: {e}{fix}",
                    paths.log_dir.display()
                ))
            })?;
        if let Ok(meta) = std::fs::symlink_metadata(log) {
            if meta.file_type().is_symlink() {
                return Err(self.tape_err(format!(
                    "error_log {}: is a symbolic link, which dsmc refuses for its error log",
                    log.display()
                )));
            }
        }
        let len = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log)
            .and_then(|f| f.metadata())
            .map(|m| m.len())
            .map_err(|e| {
                self.tape_err(format!(
                    "error_log {}: cannot write: {e}{fix}",
                    log.display()
                ))
            })?;
        let pw = &paths.password_dir;
        fsutil::ensure_private_dir(pw).map_err(|e| {
            self.tape_err(format!(
                "password_dir {}: {e}{fix}; it must be the PASSWORDDIR of this node's stanza in dsm.sys",
                pw.display()
            ))
        })?;
        // IBM (non-root users): the password dir is owned by the user, and
        // no TSM.PWD, TSM.KDB, TSM.IDX or TSM.sth of another user is in it.
        let me = rustix::process::geteuid().as_raw();
        for p in std::iter::once(pw.clone()).chain(
            ["TSM.PWD", "TSM.KDB", "TSM.IDX", "TSM.sth"]
                .iter()
                .map(|f| pw.join(f)),
        ) {
            if let Ok(meta) = std::fs::metadata(&p) {
                if meta.uid() != me {
                    return Err(self.tape_err(format!(
                        "password_dir: {} belongs to uid {}, but dsmc runs as uid {me}: chown it to the user vigil runs as (dsmc stores and rotates the node password there with PASSWORDACCESS GENERATE)",
                        p.display(),
                        meta.uid()
                    )));
                }
            }
        }
        Ok(len)
    }

    /// Runs one dsmc command with its logs in the configured directory:
    /// `-errorlogname` names the error log, `DSM_LOG` (with a trailing slash,
    /// so dsmc takes it as a directory) and the working directory catch the
    /// schedule, web client and instrumentation logs.
    async fn dsmc_run(
        &self,
        what: &str,
        program: &Path,
        args: &[String],
        paths: &DsmcPaths,
    ) -> Result<(), SinkError> {
        let before = self.dsmc_prepare(paths)?;
        let mut dsm_log = paths.log_dir.clone().into_os_string();
        dsm_log.push("/");
        let out = vigil_core::cmd::run_in(
            program,
            args,
            self.timeout,
            Some(&paths.log_dir),
            &[("DSM_LOG", dsm_log.as_os_str())],
        )
        .await
        .map_err(|e| self.tape_err(e.to_string()))?;
        self.dsmc_check(what, program, args, &out, &paths.error_log, before)
    }

    /// Judges a dsmc return code: 0 is success, 4 and 8 are what the config
    /// says (failure by default), anything else is failure.
    fn dsmc_check(
        &self,
        what: &str,
        program: &Path,
        args: &[String],
        out: &vigil_core::cmd::CmdOutput,
        log: &Path,
        log_before: u64,
    ) -> Result<(), SinkError> {
        let ok = match out.code {
            Some(0) => true,
            Some(4) => self.opts.rc4 == RcPolicy::Ok,
            Some(8) => self.opts.rc8 == RcPolicy::Ok,
            _ => false,
        };
        if ok {
            if out.code != Some(0) {
                tracing::warn!(sink = %self.name, "dsmc {what} returned {:?}, accepted by config", out.code);
            }
            return Ok(());
        }
        let meaning = match out.code {
            Some(4) => "4: some files were skipped",
            Some(8) => "8: warnings",
            Some(12) => "12: errors",
            Some(_) => "unexpected code",
            None => "killed by a signal",
        };
        let mut msg = format!(
            "dsmc {what} failed with return code {} ({meaning}): `{}`",
            out.code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none".into()),
            vigil_core::cmd::render_argv(program, args)
        );
        for (label, text) in [
            ("stderr", vigil_core::cmd::tail(&out.stderr, 10)),
            ("output", vigil_core::cmd::tail(&out.stdout, 10)),
        ] {
            if !text.is_empty() {
                msg.push_str(&format!("\n{label}:\n{text}"));
            }
        }
        // Only what this run appended: the log keeps every earlier run's errors.
        let t = vigil_core::cmd::tail(&read_from(log, log_before), 10);
        if !t.is_empty() {
            msg.push_str(&format!("\n{} (tail):\n{t}", log.display()));
        }
        Err(self.tape_err(msg))
    }

    async fn dsmc_archive(
        &self,
        archive: &Path,
        m: &Manifest,
        catalog: &Path,
        paths: &DsmcPaths,
    ) -> Result<(), SinkError> {
        let program = self.opts.dsmc.clone();
        let manifest_path = Manifest::path_for(archive);
        let mut args = self.dsmc_args("archive", m, paths);
        args.push(archive.display().to_string());
        args.push(manifest_path.display().to_string());
        self.dsmc_run("archive", &program, &args, paths).await?;
        if self.opts.retrieve_verify {
            let dir = catalog
                .parent()
                .map(|p| p.join(format!(".retrieve-{}", m.id)))
                .unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            fsutil::ensure_private_dir(&dir).map_err(|e| SinkError::Fs(e, self.name.clone()))?;
            let mut args = self.dsmc_args("retrieve", m, paths);
            args.push("-replace=yes".into());
            args.push(archive.display().to_string());
            args.push(format!("{}/", dir.display()));
            let checked = self
                .dsmc_run("retrieve", &program, &args, paths)
                .await
                .and_then(|()| {
                    let got = dir.join(&m.archive);
                    let (n, sha) = crate::sha256_file(&got)
                        .map_err(|e| self.tape_err(format!("retrieve-verify: {e}")))?;
                    if n != m.archive_size || sha != m.archive_sha256 {
                        return Err(SinkError::Mismatch {
                            sink: self.name.clone(),
                            key: format!("retrieved {}", got.display()),
                            expected: m.archive_sha256.clone(),
                            actual: sha,
                            expected_size: m.archive_size,
                            actual_size: n,
                        });
                    }
                    Ok(())
                });
            let _ = std::fs::remove_dir_all(&dir);
            checked?;
        }
        if let Some(d) = catalog.parent() {
            fsutil::ensure_private_dir(d).map_err(|e| SinkError::Fs(e, self.name.clone()))?;
        }
        let mut line = serde_json::to_vec(m).unwrap_or_default();
        line.push(b'\n');
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(catalog)
            .and_then(|mut f| f.write_all(&line))
            .map_err(|e| {
                SinkError::Fs(
                    FsError::new("recording in tape catalog", catalog, e),
                    self.name.clone(),
                )
            })
    }
}

impl TapeBackend {
    fn no_journal(&self) -> SinkError {
        SinkError::Tape {
            sink: self.name.clone(),
            message: "the journal does not go to tape (journal.sinks takes object stores and dir sinks)".into(),
        }
    }
}

#[async_trait::async_trait]
impl Backend for TapeBackend {
    async fn list_files(&self, _dir: &str) -> Result<Vec<(String, u64)>, SinkError> {
        Err(self.no_journal())
    }

    async fn put_bytes(&self, _key: &str, _bytes: Bytes) -> Result<(), SinkError> {
        Err(self.no_journal())
    }

    fn streams(&self) -> bool {
        false
    }

    fn can_delete(&self) -> bool {
        false
    }

    fn location(&self, _key: &str) -> String {
        format!("tsm:{}", self.name)
    }

    async fn upload_stream(
        &self,
        _key: String,
        _rx: mpsc::Receiver<SinkMsg>,
    ) -> Result<u64, SinkError> {
        Err(self.tape_err("tape sinks take finished files, not streams".into()))
    }

    async fn archive_file(&self, archive: &Path, m: &Manifest) -> Result<(), SinkError> {
        self.dsmc_archive(archive, m, &self.catalog, &self.paths)
            .await
    }

    async fn measure(
        &self,
        _key: &str,
        _mode: VerifyMode,
    ) -> Result<Option<(u64, Option<String>)>, SinkError> {
        Ok(None)
    }

    async fn put_manifest(&self, _key: &str, _m: &Manifest) -> Result<(), SinkError> {
        Ok(())
    }

    async fn list(&self, _base: &str) -> Result<Vec<SinkEntry>, SinkError> {
        let mut out: Vec<SinkEntry> = Vec::new();
        let text = std::fs::read_to_string(&self.catalog).unwrap_or_default();
        for line in text.lines() {
            if let Ok(m) = serde_json::from_str::<Manifest>(line) {
                out.retain(|e| e.manifest.id != m.id);
                out.push(SinkEntry {
                    member: m.member.clone(),
                    archive_size: Some(m.archive_size),
                    manifest: m,
                });
            }
        }
        Ok(out)
    }

    async fn delete(&self, _keys: [&str; 2]) -> Result<(), SinkError> {
        Ok(())
    }

    async fn open(
        &self,
        _key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, SinkError>>, SinkError> {
        Err(self.tape_err(
            "retrieve archives from tape with `dsmc retrieve` first, then restore from that file"
                .into(),
        ))
    }
}

/// The paths one tape-dsmc sink writes, resolved against state.dir.
#[derive(Debug, Clone)]
struct DsmcPaths {
    error_log: PathBuf,
    log_dir: PathBuf,
    password_dir: PathBuf,
}

/// The text of `path` from byte `from` on (lossy), empty if unreadable.
fn read_from(path: &Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let from = if f.metadata().map(|m| m.len() < from).unwrap_or(false) {
            0 // rotated or truncated since
        } else {
            from
        };
        let _ = f
            .seek(SeekFrom::Start(from))
            .and_then(|_| f.read_to_end(&mut buf));
    }
    String::from_utf8_lossy(&buf).into_owned()
}
