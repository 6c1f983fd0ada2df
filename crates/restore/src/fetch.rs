//! Fetch: read one copy of an archive from its source, decrypt and
//! decompress it as one stream, and write the plaintext snapshot under a
//! temporary name. The file is renamed into place only after every check
//! passed: the archive's size against the manifest, age's authentication of
//! every chunk, etcd's own sha256 trailer (with the size rule), and the
//! snapshot's size and sha256 against the manifest. Nothing partial ever
//! appears under the final name. Files are 0600.
//!
//! Each byte is hashed once. The archive's sha256 (over the ciphertext) is
//! checked only for an unencrypted archive: on an age archive, age's MAC
//! already refuses any altered, truncated or reordered chunk, and the
//! snapshot's sha256 against the manifest refuses a substituted archive
//! (anyone can encrypt to the public recipients), so the ciphertext hash
//! would catch nothing more. `vigil-snapshot scrub`, which has no key, keeps
//! checking it. DESIGN.md ("Which check guards which failure") has the table.
//!
//! [`fetch_to_stdout`] (`--out -`) streams the plaintext instead, for a pipe
//! into etcdutl with no plaintext file. age authenticates every 64 KiB chunk
//! before it is decrypted, but the snapshot's own sha256 and etcd's trailer
//! are known only at the end, after the bytes went out: a failure then is
//! an error that says the stream must not be used.

use crate::identity::Identities;
use crate::stores::{ChunkReader, OpenCopy, Opened};
use crate::RestoreError;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;
use vigil_archive::catalog::{CatalogCopy, CatalogEntry};
use vigil_core::fsutil;
use vigil_core::progress::{Board, Task};
use vigil_etcd::SnapshotVerifier;

const BUF: usize = 256 * 1024;
/// Buffers in flight between two stages.
const DEPTH: usize = 4;

/// A verified snapshot on disk.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    pub path: PathBuf,
    pub archive: String,
    pub member: String,
    pub source: String,
    pub location: String,
    pub archive_size: u64,
    pub snapshot_size: u64,
    pub snapshot_sha256: String,
    pub revision: i64,
    pub duration_ms: u64,
}

/// Fetches `archive` to `out`, trying its copies in order (the local one
/// first). A wrong key stops at once; a missing or corrupt copy moves on to
/// the next copy, and the error names every copy that failed.
pub fn fetch(
    archive: &CatalogEntry,
    stores: &dyn OpenCopy,
    ids: Option<&Identities>,
    out: &Path,
) -> Result<Fetched, RestoreError> {
    if out.exists() {
        return Err(RestoreError::Usage(format!(
            "{} already exists; vigil-restore never overwrites a file, choose another --out",
            out.display()
        )));
    }
    let mut errors = Vec::new();
    for copy in &archive.copies {
        match fetch_copy(stores, copy, ids, out) {
            Ok(f) => return Ok(f),
            Err(e @ (RestoreError::WrongKey { .. } | RestoreError::Identity { .. })) => {
                return Err(e)
            }
            Err(e @ RestoreError::Fs(_)) => return Err(e),
            Err(e) => {
                tracing::error!("{e}");
                errors.push(e.to_string());
            }
        }
    }
    Err(no_copy_worked(archive, errors))
}

/// Why no copy of `archive` could be fetched, from each copy's error.
fn no_copy_worked(archive: &CatalogEntry, mut errors: Vec<String>) -> RestoreError {
    match errors.len() {
        0 => RestoreError::NoArchive(format!(
            "archive {} has no copy in the selected sources",
            archive.id
        )),
        1 => RestoreError::Failed(errors.remove(0)),
        _ => RestoreError::AllCopiesFailed {
            id: archive.id.clone(),
            errors,
        },
    }
}

/// Where `--out -` writes: the plaintext to stdout, no file.
pub const STDOUT: &str = "-";

/// Counts what went to the output, so a failure knows whether bytes went out.
struct CountingWriter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Fetches `archive` and writes the verified plaintext to stdout, trying its
/// copies in order while nothing went out yet. Once bytes went out, a failure
/// is [`RestoreError::Streamed`]: the reader must throw away what it got.
pub fn fetch_to_stdout(
    archive: &CatalogEntry,
    stores: &dyn OpenCopy,
    ids: Option<&Identities>,
) -> Result<Fetched, RestoreError> {
    use std::os::fd::AsFd;
    // A dup of fd 1 written without std's line buffering.
    let fd = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| RestoreError::Failed(format!("opening standard output: {e}")))?;
    let mut out = CountingWriter {
        inner: std::fs::File::from(fd),
        n: 0,
    };
    let mut errors = Vec::new();
    for copy in &archive.copies {
        let started = Instant::now();
        let r = open_copy(stores, copy, ids).and_then(|(ids, opened)| {
            stream(
                copy,
                ids,
                opened.reader,
                &mut out,
                Path::new("standard output"),
            )
        });
        match r {
            Ok(()) => {
                tracing::info!(
                    "archive {} from {} ({}) verified and written to standard output",
                    copy.manifest.id,
                    copy.store,
                    copy.location
                );
                return Ok(fetched(copy, Path::new(STDOUT), started));
            }
            Err(e) if out.n > 0 => {
                return Err(RestoreError::Streamed {
                    bytes: out.n,
                    error: Box::new(e),
                })
            }
            Err(e @ (RestoreError::WrongKey { .. } | RestoreError::Identity { .. })) => {
                return Err(e)
            }
            Err(e) => {
                tracing::error!("{e}");
                errors.push(e.to_string());
            }
        }
    }
    Err(no_copy_worked(archive, errors))
}

/// Counts the raw archive bytes as they are read (and hashes them, for an
/// archive that age does not authenticate), reports progress, and remembers
/// a read error of the source, so that it is not mistaken for a bad copy.
struct Counting<R> {
    inner: R,
    sha: Option<Sha256>,
    n: u64,
    read_error: Option<String>,
    progress: Task,
    started: std::time::Instant,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.read_error.get_or_insert_with(|| e.to_string());
                }
                return Err(e);
            }
        };
        if let Some(sha) = &mut self.sha {
            sha.update(&buf[..n]);
        }
        self.n += n as u64;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// Fetches one copy. On any error the temporary file is removed.
pub fn fetch_copy(
    stores: &dyn OpenCopy,
    copy: &CatalogCopy,
    ids: Option<&Identities>,
    out: &Path,
) -> Result<Fetched, RestoreError> {
    let started = Instant::now();
    let out = &std::path::absolute(out).map_err(|e| fsutil::FsError::new("resolving", out, e))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(RestoreError::Usage(format!(
                "the directory of --out {} does not exist",
                out.display()
            )));
        }
    }
    let (ids, opened) = open_copy(stores, copy, ids)?;
    let tmp = fsutil::partial_path(out);
    let _ = std::fs::remove_file(&tmp);
    let mut file = fsutil::create_private(&tmp)?;
    let result = stream(copy, ids, opened.reader, &mut file, &tmp).and_then(|()| {
        file.sync_all()
            .map_err(|e| fsutil::FsError::new("syncing", &tmp, e))?;
        drop(file);
        fsutil::commit_rename(&tmp, out)?;
        Ok(())
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    tracing::info!(
        "archive {} from {} ({}) verified and written to {}",
        copy.manifest.id,
        copy.store,
        copy.location,
        out.display()
    );
    Ok(fetched(copy, out, started))
}

fn fetched(copy: &CatalogCopy, path: &Path, started: Instant) -> Fetched {
    let m = &copy.manifest;
    Fetched {
        path: path.to_path_buf(),
        archive: m.id.clone(),
        member: m.member.clone(),
        source: copy.store.clone(),
        location: copy.location.clone(),
        archive_size: m.archive_size,
        snapshot_size: m.snapshot_size,
        snapshot_sha256: m.snapshot_sha256.clone(),
        revision: m.revision,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

/// Checks that the copy can be decrypted with what was given, and opens it.
fn open_copy<'i>(
    stores: &dyn OpenCopy,
    copy: &CatalogCopy,
    ids: Option<&'i Identities>,
) -> Result<(Option<&'i Identities>, Opened), RestoreError> {
    let m = &copy.manifest;
    let encrypted = match m.encryption.as_str() {
        "age" => true,
        "none" => false,
        other => {
            return Err(RestoreError::Failed(format!(
                "archive {}: unknown encryption {other:?} in its manifest",
                m.id
            )))
        }
    };
    let ids = match (encrypted, ids) {
        (true, Some(i)) => Some(i),
        (true, None) => {
            return Err(RestoreError::Usage(format!(
                "archive {} is encrypted with age; give the private key with --identity KEY",
                m.id
            )))
        }
        (false, _) => None,
    };
    let opened = stores.open(copy)?;
    if let Some(len) = opened.len {
        if len != m.archive_size {
            tracing::warn!(
                "archive {} at {}: the stored copy is {len} bytes but the manifest says {} (truncated or replaced copy?)",
                m.id, copy.location, m.archive_size
            );
        }
    }
    Ok((ids, opened))
}

fn stream(
    copy: &CatalogCopy,
    ids: Option<&Identities>,
    reader: Box<dyn Read + Send>,
    file: &mut (dyn Write + Send),
    tmp: &Path,
) -> Result<(), RestoreError> {
    let m = &copy.manifest;
    let corrupt = |message: String| RestoreError::Corrupt {
        id: m.id.clone(),
        location: copy.location.clone(),
        message,
    };
    let mut raw = BufReader::with_capacity(
        BUF,
        Counting {
            inner: reader,
            // age's MAC authenticates the ciphertext of an encrypted archive.
            sha: ids.is_none().then(Sha256::new),
            n: 0,
            read_error: None,
            progress: {
                tracing::info!(
                    "fetching {}: {}",
                    m.id,
                    vigil_core::units::human_bytes(m.archive_size)
                );
                let t = Board::new().task(&m.id, Some(m.archive_size));
                t.stage("fetch");
                t
            },
            started: std::time::Instant::now(),
        },
    );
    // Four stages on their own threads, so that decryption, decompression,
    // writing and hashing overlap (and the download, which runs ahead on the
    // source's side): raw → age → | zstd → | file → | sha256 + etcd trailer.
    let (z_tx, z_rx) = sync_channel::<Vec<u8>>(DEPTH);
    let (z_back_tx, z_back_rx) = sync_channel::<Vec<u8>>(DEPTH + 2);
    let (p_tx, p_rx) = sync_channel::<Vec<u8>>(DEPTH);
    let (p_back_tx, p_back_rx) = sync_channel::<Vec<u8>>(DEPTH + 2);
    let (decoded, verifier) = std::thread::scope(|sc| {
        let unzstd = sc.spawn(move || -> Result<(), DecodeError> {
            let input = ChunkReader::new(z_rx.into_iter().map(|buf| {
                Ok::<_, io::Error>(Recycled {
                    buf,
                    back: z_back_tx.clone(),
                })
            }));
            let mut z = zstd::stream::read::Decoder::new(input).map_err(DecodeError::Zstd)?;
            pump(&mut z, &p_tx, &p_back_rx).map_err(DecodeError::Zstd)
        });
        // Writing and hashing each take a core's worth of time: the writer
        // hands each buffer on to the hasher, which returns it to zstd.
        let (h_tx, h_rx) = sync_channel::<Vec<u8>>(DEPTH);
        let hasher = sc.spawn(move || {
            let mut v = SnapshotVerifier::new();
            for buf in h_rx {
                v.update(&buf);
                let _ = p_back_tx.try_send(buf);
            }
            v
        });
        let writer = sc.spawn(move || -> Result<(), DecodeError> {
            for buf in p_rx {
                file.write_all(&buf)
                    .map_err(|e| DecodeError::Write(fsutil::FsError::new("writing", tmp, e)))?;
                if h_tx.send(buf).is_err() {
                    break;
                }
            }
            Ok(())
        });
        // The decode chain borrows `raw`; it ends with this block so that the
        // rest of the raw bytes can be drained and checked afterwards.
        let decrypted: Result<(), DecodeError> = (|| match ids {
            Some(ids) => {
                let d = age::Decryptor::new_buffered(&mut raw).map_err(DecodeError::Age)?;
                let mut plain = d.decrypt(ids.iter()).map_err(DecodeError::Age)?;
                pump(&mut plain, &z_tx, &z_back_rx).map_err(DecodeError::Auth)
            }
            None => pump(&mut raw, &z_tx, &z_back_rx).map_err(DecodeError::Read),
        })();
        drop(z_tx);
        let unzstd = unzstd.join().unwrap_or(Err(DecodeError::Panicked("zstd")));
        let written = writer
            .join()
            .unwrap_or(Err(DecodeError::Panicked("writer")));
        let verifier = hasher.join().ok();
        // The first stage that failed explains the others (they only saw a closed channel).
        match (decrypted, unzstd, written) {
            (Err(e), _, _) | (Ok(()), Err(e), _) => (Err(e), None),
            (Ok(()), Ok(()), Err(e)) => (Err(e), None),
            (Ok(()), Ok(()), Ok(())) => (Ok(()), verifier),
        }
    });
    if let Err(DecodeError::Write(e)) = decoded {
        return Err(e.into());
    }
    if let Err(DecodeError::Age(age::DecryptError::NoMatchingKeys)) = decoded {
        // An identity whose public key the manifest records as a recipient
        // is the right key: then the header of this copy is damaged (or the
        // copy replaced), and the next copy may still be good.
        let publics = ids.map(|i| i.public_keys()).unwrap_or_default();
        if let Some(p) = publics.iter().find(|p| m.age_recipients.contains(p)) {
            return Err(corrupt(format!(
                "age finds no recipient stanza for the identity {p}, which the manifest records as a recipient: the copy's header was damaged or the copy replaced (corrupted copy)"
            )));
        }
        let ids = ids.map(|i| (i.origin.clone(), i.public_keys().join(", ")));
        let (identities, publics) = ids.unwrap_or_default();
        return Err(RestoreError::WrongKey {
            id: m.id.clone(),
            identities,
            recipients: if m.age_recipients.is_empty() {
                "(not recorded)".into()
            } else {
                m.age_recipients.join(", ")
            },
            publics,
        });
    }
    // Drain what the decoder did not read, so that the size (and the sha256
    // of an unencrypted copy) covers the whole copy.
    let drained = io::copy(&mut raw, &mut io::sink());
    let counting = raw.into_inner();
    counting.progress.finish("fetched");
    tracing::info!(
        "fetched {}: {} in {:.1}s",
        m.id,
        vigil_core::units::human_bytes(counting.n),
        counting.started.elapsed().as_secs_f64()
    );
    let size = counting.n;
    let sha = counting.sha.map(|h| hex::encode(h.finalize()));
    let raw_problem = if let Some(e) = counting
        .read_error
        .or_else(|| drained.err().map(|e| e.to_string()))
    {
        Some(format!("reading the copy failed after {size} bytes: {e}"))
    } else if size < m.archive_size {
        Some(format!(
            "the copy is truncated: {size} of {} bytes",
            m.archive_size
        ))
    } else if size != m.archive_size {
        Some(format!(
            "the copy is {size} bytes, but the manifest says {} bytes (corrupted or replaced copy)",
            m.archive_size
        ))
    } else {
        // Only an unencrypted copy was hashed (see the module's doc).
        sha.filter(|sha| *sha != m.archive_sha256).map(|sha| {
            format!(
                "the copy has sha256 {sha}, but the manifest says {} (corrupted copy)",
                m.archive_sha256
            )
        })
    };
    match (decoded, raw_problem) {
        (Err(d), Some(p)) => return Err(corrupt(format!("{p}; decoding stopped with: {d}"))),
        // The copy has its recorded size, and age refused a chunk (or the header).
        (Err(d @ (DecodeError::Auth(_) | DecodeError::Age(_))), None) => {
            return Err(corrupt(format!(
                "age's authentication failed ({d}): the copy was damaged or altered after it was written (corrupted copy)"
            )))
        }
        (Err(d @ DecodeError::Panicked(_)), None) => {
            return Err(corrupt(format!("{d} (a bug in vigil-restore)")))
        }
        (Err(d), None) if ids.is_some() => {
            return Err(corrupt(format!(
                "the copy decrypts (age authenticated every chunk) but does not decompress ({d}); it was written wrong, or replaced by another file encrypted to the same recipients"
            )))
        }
        (Err(d), None) => {
            return Err(corrupt(format!(
                "the copy matches its manifest but does not decode ({d}); it was damaged before it was archived or the manifest is wrong"
            )))
        }
        (Ok(()), Some(p)) => return Err(corrupt(p)),
        (Ok(()), None) => {}
    }
    let v = verifier
        .ok_or_else(|| corrupt("the snapshot was not verified".into()))?
        .finish()
        .map_err(|e| corrupt(e.to_string()))?;
    // The verifier hashes the whole stream in the same pass as etcd's trailer.
    let plain_hex = hex::encode(v.stream_sha256);
    // The end-to-end check: these are the bytes vigil-snapshot verified.
    // On an age archive it is also what refuses a substituted copy, since
    // anyone can encrypt a valid snapshot to the public recipients.
    if v.total != m.snapshot_size || plain_hex != m.snapshot_sha256 {
        return Err(corrupt(format!(
            "the decrypted snapshot is {} bytes with sha256 {plain_hex}, but the manifest says {} bytes with sha256 {} (a replaced copy, or a manifest of another archive)",
            v.total, m.snapshot_size, m.snapshot_sha256
        )));
    }
    if !m.db_sha256.is_empty() && hex::encode(v.db_sha256) != m.db_sha256 {
        return Err(corrupt(format!(
            "etcd's trailer is {} but the manifest recorded {}",
            hex::encode(v.db_sha256),
            m.db_sha256
        )));
    }
    Ok(())
}

/// Reads `r` to its end in full buffers and sends them on. Buffers come back
/// on `back` to be reused. A closed channel means the next stage stopped;
/// its own error says why.
fn pump(r: &mut dyn Read, tx: &SyncSender<Vec<u8>>, back: &Receiver<Vec<u8>>) -> io::Result<()> {
    loop {
        let mut buf = back.try_recv().unwrap_or_default();
        buf.resize(BUF, 0);
        let mut n = 0;
        while n < BUF {
            match r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        if tx.send(buf).is_err() {
            return Ok(());
        }
    }
}

/// A buffer that goes back to its producer for reuse once the reader has
/// moved on to the next one.
struct Recycled {
    buf: Vec<u8>,
    back: SyncSender<Vec<u8>>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let _ = self.back.try_send(std::mem::take(&mut self.buf));
    }
}

#[derive(Debug)]
enum DecodeError {
    /// The age header: no matching key, or a header that fails its MAC.
    Age(age::DecryptError),
    /// Reading the age payload: a chunk failed its MAC, or the stream is
    /// truncated (or the source failed underneath, see `Counting`).
    Auth(io::Error),
    /// Reading an unencrypted copy.
    Read(io::Error),
    /// zstd refused the (authenticated) stream.
    Zstd(io::Error),
    Write(fsutil::FsError),
    /// A stage's thread panicked (a bug of ours, not a bad copy).
    Panicked(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Age(e) => write!(f, "age: {e}"),
            DecodeError::Auth(e) => write!(f, "age: {e}"),
            DecodeError::Read(e) => write!(f, "reading: {e}"),
            DecodeError::Zstd(e) => write!(f, "zstd: {e}"),
            DecodeError::Write(e) => write!(f, "{e}"),
            DecodeError::Panicked(stage) => write!(f, "the {stage} stage panicked"),
        }
    }
}

#[cfg(test)]
mod tests;
