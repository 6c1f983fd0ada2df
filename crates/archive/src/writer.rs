//! plaintext → zstd → age → sha256-counting → 0600 temp file.
//!
//! The plaintext never touches the disk: it is compressed and encrypted in
//! memory, chunk by chunk, and only ciphertext reaches the file.

use crate::ArchiveError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use vigil_core::fsutil;

#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    pub zstd_level: i32,
    pub zstd_threads: u32,
    /// Empty means no encryption (only when configured explicitly).
    pub recipients: Vec<age::x25519::Recipient>,
}

/// Counts and hashes what reaches the file.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Sealed<W: Write> {
    Age(age::stream::StreamWriter<W>),
    Plain(W),
}

impl<W: Write> Write for Sealed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealed::Age(w) => w.write(buf),
            Sealed::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealed::Age(w) => w.flush(),
            Sealed::Plain(w) => w.flush(),
        }
    }
}

impl<W: Write> Sealed<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Sealed::Age(w) => w.finish(),
            Sealed::Plain(w) => Ok(w),
        }
    }
}

/// A streaming sink's end of the fan-out.
#[derive(Debug)]
pub struct SinkTx {
    pub name: String,
    pub tx: tokio::sync::mpsc::Sender<crate::sink::SinkMsg>,
}

/// Writes the ciphertext to the local file and hands the same bytes to every
/// streaming sink. A sink that stops receiving is dropped from the fan-out;
/// the local copy goes on. Bounded channels give back-pressure.
struct Tee {
    file: File,
    outs: Vec<SinkTx>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all(buf)?;
        if !self.outs.is_empty() {
            let b = bytes::Bytes::copy_from_slice(buf);
            self.outs.retain(|o| {
                let alive = o.tx.blocking_send(crate::sink::SinkMsg::Data(b.clone())).is_ok();
                if !alive {
                    tracing::warn!(sink = %o.name, "sink stopped receiving; the local archive goes on");
                }
                alive
            });
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

type Sink = Hashing<BufWriter<Tee>>;

/// A file being written. Dropping it unfinished removes the temp file.
pub struct ArchiveWriter {
    enc: Option<zstd::stream::write::Encoder<'static, Sealed<Sink>>>,
    tmp: PathBuf,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("tmp", &self.tmp)
            .finish()
    }
}

/// A finished, fsynced temp file, not yet under its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub tmp: PathBuf,
    pub size: u64,
    pub sha256: String,
}

impl ArchiveWriter {
    /// Opens the temp file for `final_path` (`.<name>.partial`, mode 0600).
    pub fn create(final_path: &Path, opts: &ArchiveOptions) -> Result<Self, ArchiveError> {
        Self::create_with_sinks(final_path, opts, Vec::new())
    }

    /// Like [`ArchiveWriter::create`], also streaming the ciphertext to `sinks`.
    pub fn create_with_sinks(
        final_path: &Path,
        opts: &ArchiveOptions,
        sinks: Vec<SinkTx>,
    ) -> Result<Self, ArchiveError> {
        let tmp = fsutil::partial_path(final_path);
        let _ = std::fs::remove_file(&tmp);
        let file = fsutil::create_private(&tmp)?;
        let sink = Hashing {
            inner: BufWriter::with_capacity(256 * 1024, Tee { file, outs: sinks }),
            hasher: Sha256::new(),
            count: 0,
        };
        let setup = |what, e: &dyn std::fmt::Display| ArchiveError::Setup {
            what,
            message: e.to_string(),
        };
        let sealed = if opts.recipients.is_empty() {
            Sealed::Plain(sink)
        } else {
            let enc = age::Encryptor::with_recipients(
                opts.recipients.iter().map(|r| r as &dyn age::Recipient),
            )
            .map_err(|e| setup("age encryption", &e))?;
            Sealed::Age(
                enc.wrap_output(sink)
                    .map_err(|e| setup("age encryption", &e))?,
            )
        };
        let mut enc = zstd::stream::write::Encoder::new(sealed, opts.zstd_level)
            .map_err(|e| setup("zstd", &e))?;
        enc.include_checksum(true).map_err(|e| setup("zstd", &e))?;
        if opts.zstd_threads > 0 {
            enc.multithread(opts.zstd_threads)
                .map_err(|e| setup("zstd threads", &e))?;
        }
        Ok(Self {
            enc: Some(enc),
            tmp,
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        let Some(enc) = self.enc.as_mut() else {
            return Err(self.closed());
        };
        enc.write_all(chunk).map_err(|source| ArchiveError::Write {
            path: self.tmp.clone(),
            source,
        })
    }

    fn closed(&self) -> ArchiveError {
        ArchiveError::Write {
            path: self.tmp.clone(),
            source: io::Error::other("writer already finished"),
        }
    }

    /// Ends the zstd frame and the age stream and fsyncs the file. Returns the
    /// sinks still receiving; they complete only when told to commit.
    pub fn finish(mut self) -> Result<(Written, Vec<SinkTx>), ArchiveError> {
        let enc = self.enc.take().ok_or_else(|| self.closed())?;
        let werr = |source| ArchiveError::Write {
            path: self.tmp.clone(),
            source,
        };
        let sealed = enc.finish().map_err(werr)?;
        let sink = sealed.finish().map_err(werr)?;
        let Hashing {
            inner,
            hasher,
            count,
        } = sink;
        let Tee { file, outs } = inner.into_inner().map_err(|e| werr(e.into_error()))?;
        file.sync_all().map_err(werr)?;
        let written = Written {
            tmp: self.tmp.clone(),
            size: count,
            sha256: hex::encode(hasher.finalize()),
        };
        // Ownership of the temp file passes to the caller.
        self.tmp = PathBuf::new();
        Ok((written, outs))
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            drop(self.enc.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads a file back from disk and returns its size and sha256.
pub fn sha256_file(path: &Path) -> Result<(u64, String), ArchiveError> {
    let rerr = |source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(rerr)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).map_err(rerr)?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Reads the temp file back and checks it against what was written.
pub fn verify_readback(w: &Written) -> Result<(), ArchiveError> {
    let (size, sha) = sha256_file(&w.tmp)?;
    if size != w.size || sha != w.sha256 {
        return Err(ArchiveError::ReadbackMismatch {
            path: w.tmp.clone(),
            expected: w.sha256.clone(),
            actual: sha,
            expected_size: w.size,
            actual_size: size,
        });
    }
    Ok(())
}

/// Encrypts a small secret (such as the RKE2 token) in memory with age.
pub fn encrypt_small(
    plain: &[u8],
    recipients: &[age::x25519::Recipient],
) -> Result<Vec<u8>, ArchiveError> {
    let setup = |e: &dyn std::fmt::Display| ArchiveError::Setup {
        what: "age encryption",
        message: e.to_string(),
    };
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| setup(&e))?;
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).map_err(|e| setup(&e))?;
    w.write_all(plain).map_err(|e| setup(&e))?;
    w.finish().map_err(|e| setup(&e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn roundtrip_through_age_and_zstd() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let opts = ArchiveOptions {
            zstd_level: 3,
            zstd_threads: 0,
            recipients: vec![
                age::x25519::Recipient::from_str(&id.to_public().to_string()).unwrap(),
            ],
        };
        let final_path = dir.path().join("a.db.zst.age");
        let mut w = ArchiveWriter::create(&final_path, &opts).unwrap();
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        for c in data.chunks(32 * 1024) {
            w.write(c).unwrap();
        }
        let (written, _) = w.finish().unwrap();
        verify_readback(&written).unwrap();
        let cipher = std::fs::read(&written.tmp).unwrap();
        assert_eq!(cipher.len() as u64, written.size);
        let dec = age::Decryptor::new(&cipher[..]).unwrap();
        let mut r = dec
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .unwrap();
        let mut zst = Vec::new();
        r.read_to_end(&mut zst).unwrap();
        assert_eq!(zstd::decode_all(&zst[..]).unwrap(), data);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ArchiveOptions {
            zstd_level: 1,
            zstd_threads: 0,
            recipients: vec![],
        };
        let p = dir.path().join("b.db.zst");
        let mut w = ArchiveWriter::create(&p, &opts).unwrap();
        w.write(b"hello").unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
