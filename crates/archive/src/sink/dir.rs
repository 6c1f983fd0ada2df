//! `kind = "dir"`: an LTFS mount or a BackupPC staging directory, written
//! as `.name.partial` and renamed into place once the stream verified.

use super::{Backend, SinkEntry, SinkError, SinkMsg};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;
use vigil_core::config::sink::DirSink;
use vigil_core::config::{SinkConfig, VerifyMode};
use vigil_core::fsutil::{self, FsError};
use vigil_core::manifest::Manifest;

pub(super) struct DirBackend {
    name: String,
    root: PathBuf,
}

pub(super) fn build(cfg: &SinkConfig, o: &DirSink, _: &Path) -> Result<DirBackend, SinkError> {
    Ok(DirBackend {
        name: cfg.name.clone(),
        root: o.path.clone(),
    })
}

impl DirBackend {
    fn fs_err(&self, e: FsError) -> SinkError {
        SinkError::Fs(e, self.name.clone())
    }
}

#[async_trait::async_trait]
impl Backend for DirBackend {
    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    async fn upload_stream(
        &self,
        key: String,
        mut rx: mpsc::Receiver<SinkMsg>,
    ) -> Result<u64, SinkError> {
        let final_path = self.root.join(&key);
        let dir = final_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        super::private_dir(&self.name, &dir)?;
        let tmp = fsutil::partial_path(&final_path);
        let _ = std::fs::remove_file(&tmp);
        let mut f = fsutil::create_private(&tmp).map_err(|e| self.fs_err(e))?;
        let mut n = 0u64;
        let result = loop {
            match rx.recv().await {
                Some(SinkMsg::Data(b)) => {
                    n += b.len() as u64;
                    if let Err(e) = tokio::task::block_in_place(|| f.write_all(&b)) {
                        break Err(self.fs_err(FsError::new("writing", &tmp, e)));
                    }
                }
                Some(SinkMsg::Commit) => {
                    let r = tokio::task::block_in_place(|| {
                        f.sync_all().map_err(|e| FsError::new("syncing", &tmp, e))?;
                        fsutil::commit_rename(&tmp, &final_path)
                    });
                    break r.map(|_| n).map_err(|e| self.fs_err(e));
                }
                None => {
                    break Err(SinkError::Aborted {
                        sink: self.name.clone(),
                        key: final_path.display().to_string(),
                        reason: "the snapshot stream failed".into(),
                    })
                }
            }
        };
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn cleanup_files(&self, base: &str) -> Vec<PathBuf> {
        super::remove_staged(&self.root, base, |n| {
            n.starts_with('.') && n.ends_with(fsutil::PARTIAL_SUFFIX)
        })
    }

    async fn measure(
        &self,
        key: &str,
        mode: VerifyMode,
    ) -> Result<Option<(u64, Option<String>)>, SinkError> {
        let p = self.root.join(key);
        if mode == VerifyMode::Size {
            let len = std::fs::metadata(&p)
                .map_err(|e| self.fs_err(FsError::new("checking", &p, e)))?
                .len();
            return Ok(Some((len, None)));
        }
        let (n, s) = tokio::task::block_in_place(|| crate::sha256_file(&p)).map_err(|e| {
            SinkError::Store {
                sink: self.name.clone(),
                op: "hashing",
                key: p.display().to_string(),
                message: e.to_string(),
            }
        })?;
        Ok(Some((n, Some(s))))
    }

    async fn put_manifest(&self, key: &str, m: &Manifest) -> Result<(), SinkError> {
        fsutil::atomic_write(&self.root.join(key), &m.to_json()).map_err(|e| self.fs_err(e))
    }

    async fn list_files(&self, dir: &str) -> Result<Vec<(String, u64)>, SinkError> {
        let p = self.root.join(dir);
        let rd = match std::fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.fs_err(FsError::new("listing", &p, e))),
        };
        Ok(rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                (n, e.metadata().map(|m| m.len()).unwrap_or(0))
            })
            .filter(|(n, _)| !n.ends_with(fsutil::PARTIAL_SUFFIX))
            .collect())
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), SinkError> {
        let p = self.root.join(key);
        if let Some(d) = p.parent() {
            super::private_dir(&self.name, d)?;
        }
        fsutil::atomic_write(&p, &bytes).map_err(|e| self.fs_err(e))
    }

    async fn list(&self, base: &str) -> Result<Vec<SinkEntry>, SinkError> {
        let mut out = Vec::new();
        for member in std::fs::read_dir(self.root.join(base))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|m| m.file_name() != super::JOURNAL_DIR)
        {
            for s in crate::local::list_member(&member.path()) {
                out.push(SinkEntry {
                    member: s.manifest.member.clone(),
                    archive_size: std::fs::metadata(&s.archive_path).ok().map(|m| m.len()),
                    manifest: s.manifest,
                });
            }
        }
        Ok(out)
    }

    async fn delete(&self, keys: [&str; 2]) -> Result<(), SinkError> {
        for k in keys {
            let p = self.root.join(k);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.fs_err(FsError::new("deleting", &p, e))),
            }
        }
        Ok(())
    }

    async fn open(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, SinkError>>, SinkError> {
        let p = self.root.join(key);
        let name = self.name.clone();
        let data = tokio::fs::File::open(&p)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SinkError::NotFound {
                    sink: name.clone(),
                    key: key.to_string(),
                },
                _ => self.fs_err(FsError::new("opening", &p, e)),
            })?;
        let s = futures_util::stream::unfold((data, p, name), |(mut f, p, name)| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), (f, p, name)))
                }
                Err(e) => Some((
                    Err(SinkError::Fs(FsError::new("reading", &p, e), name.clone())),
                    (f, p, name),
                )),
            }
        });
        Ok(s.boxed())
    }
}
