//! The stores vigil-restore reads archives from: the local snapshot dir
//! first (cheapest to read), then every sink that can stream (S3 / Ceph
//! RGW, Azure, GCS, fs, dir; tape needs `dsmc retrieve` first). They are
//! listed into the one [`Catalog`] (`vigil_archive::catalog`), and a copy
//! it lists is opened as a blocking byte stream for fetch ([`OpenCopy`]).
//!
//! The fetch pipeline (age, zstd, sha256) is blocking CPU work on its own
//! threads, so opening is synchronous: a sink's download runs ahead on this
//! module's runtime and is pulled chunk by chunk through [`ChunkReader`],
//! never buffered whole.

use futures_util::StreamExt;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_archive::catalog::{self, Catalog, CatalogCopy, CatalogError};
use vigil_archive::sink::{Sink, SinkError};
use vigil_core::fsutil::FsError;

/// An opened copy: a byte stream and, when known, its length.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub len: Option<u64>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened").field("len", &self.len).finish()
    }
}

/// What failed underneath a [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum StoreCause {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// A store (a "source" on the command line: `--source`) that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("source {store}: {location} is missing ({source}); the copy may have been pruned or the source is not mounted")]
    NotFound {
        store: String,
        location: String,
        #[source]
        source: Box<StoreCause>,
    },
    #[error("{}", unavailable(store, source))]
    Unavailable {
        store: String,
        #[source]
        source: Box<StoreCause>,
    },
    #[error("unknown source {name:?}; the configured sources are: {known}")]
    Unknown { name: String, known: String },
}

/// Opens the copies a [`Catalog`] lists.
pub trait OpenCopy {
    fn open(&self, copy: &CatalogCopy) -> Result<Opened, StoreError>;
}

enum Store {
    /// `<snapshot.dir>/<member>/<id>.db.zst.age` + `.json`.
    Local(PathBuf),
    /// A sink, with the runtime its requests run on (one for all sinks).
    Sink(Arc<Sink>, Arc<tokio::runtime::Runtime>),
}

impl Store {
    fn name(&self) -> &str {
        match self {
            Store::Local(_) => catalog::LOCAL,
            Store::Sink(s, _) => s.name(),
        }
    }
}

/// The stores of this host, in the order their copies are tried.
pub struct Stores {
    stores: Vec<Store>,
    cluster: String,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.stores.iter().map(Store::name))
            .finish()
    }
}

/// Where the RKE2 server token archive of `cluster` lives in the snapshot dir.
pub fn token_path(snapshot_dir: &Path, cluster: &str) -> PathBuf {
    snapshot_dir
        .join("rke2")
        .join(format!("{cluster}-server-token.age"))
}

impl Stores {
    /// The local snapshot dir (when configured), then every sink that can
    /// be read. A sink that cannot be built is skipped with a warning.
    pub fn configured(cfg: &vigil_core::Config) -> Stores {
        let mut stores = Vec::new();
        if let Some(sn) = cfg.snapshot.as_ref() {
            stores.push(Store::Local(sn.dir.clone()));
        }
        let sinks: Vec<Arc<Sink>> = cfg
            .sinks()
            .filter_map(
                |s| match Sink::build(s, cfg.cluster_name(), &cfg.state.dir) {
                    Ok(s) if s.streams() => Some(Arc::new(s)),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!("{e}; skipping it as a restore source");
                        None
                    }
                },
            )
            .collect();
        if !sinks.is_empty() {
            // One worker: a download runs ahead while fetch decrypts.
            match vigil_core::runtime::multi_thread(Some(1)) {
                Ok(rt) => {
                    let rt = Arc::new(rt);
                    stores.extend(sinks.into_iter().map(|s| Store::Sink(s, rt.clone())));
                }
                Err(e) => tracing::warn!("cannot start the runtime for sink sources: {e}"),
            }
        }
        Stores {
            stores,
            cluster: cfg.cluster_name().to_string(),
        }
    }

    /// Keeps only the store named `name` (all when `None`).
    pub fn only(mut self, name: Option<&str>) -> Result<Stores, StoreError> {
        let Some(name) = name else { return Ok(self) };
        let known = self
            .stores
            .iter()
            .map(Store::name)
            .collect::<Vec<_>>()
            .join(", ");
        self.stores.retain(|s| s.name() == name);
        if self.stores.is_empty() {
            return Err(StoreError::Unknown {
                name: name.into(),
                known: if known.is_empty() {
                    "none ([snapshot] dir is not configured)".into()
                } else {
                    known
                },
            });
        }
        Ok(self)
    }

    /// Lists every store into the catalog, with what the state dir knows
    /// (the corrupt-copy ledger, the cluster pin) applied.
    pub fn catalog(&self, state_dir: &Path) -> Catalog {
        let listings = self.stores.iter().map(|s| match s {
            Store::Local(root) => catalog::local_copies(root),
            Store::Sink(sink, rt) => rt.block_on(catalog::sink_copies(sink, &self.cluster, false)),
        });
        let mut cat = Catalog::merge(listings.collect::<Vec<_>>());
        for e in &cat.errors {
            tracing::warn!("{}", describe(e));
        }
        cat.apply_state(state_dir);
        cat
    }

    fn find(&self, name: &str) -> Option<&Store> {
        self.stores.iter().find(|s| s.name() == name)
    }

    /// The archived RKE2 server token (`age(token)`) of `cluster`; only the
    /// local snapshot dir keeps it.
    pub fn open_token(&self, cluster: &str) -> Result<Option<Opened>, StoreError> {
        let Some(Store::Local(root)) = self.find(catalog::LOCAL) else {
            return Ok(None);
        };
        let p = token_path(root, cluster);
        match std::fs::File::open(&p) {
            Ok(f) => Ok(Some(Opened {
                len: f.metadata().ok().map(|m| m.len()),
                reader: Box::new(f),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Unavailable {
                store: catalog::LOCAL.into(),
                source: Box::new(FsError::new("reading", &p, e).into()),
            }),
        }
    }
}

/// A catalog error as vigil-restore reports it: a store that failed is an
/// unavailable source.
pub fn describe(e: &CatalogError) -> String {
    match e.store() {
        Some(store) => unavailable(store, e),
        None => e.to_string(),
    }
}

/// How a store that cannot be read is worded, for listings and opens alike.
fn unavailable(store: &str, cause: &dyn fmt::Display) -> String {
    format!(
        "source {store} is unavailable: {cause}; please check that it is reachable and configured"
    )
}

impl OpenCopy for Stores {
    fn open(&self, copy: &CatalogCopy) -> Result<Opened, StoreError> {
        match self.find(&copy.store) {
            Some(Store::Local(_)) => open_local(copy),
            Some(Store::Sink(sink, rt)) => open_sink(sink, rt, copy),
            None => Err(StoreError::Unknown {
                name: copy.store.clone(),
                known: self
                    .stores
                    .iter()
                    .map(Store::name)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

fn open_local(copy: &CatalogCopy) -> Result<Opened, StoreError> {
    let f = std::fs::File::open(&copy.location).map_err(|e| StoreError::NotFound {
        store: catalog::LOCAL.into(),
        location: copy.location.clone(),
        source: Box::new(e.into()),
    })?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok(Opened {
        reader: Box::new(f),
        len,
    })
}

fn open_sink(
    sink: &Sink,
    rt: &tokio::runtime::Runtime,
    copy: &CatalogCopy,
) -> Result<Opened, StoreError> {
    let m = &copy.manifest;
    let mut stream = rt
        .block_on(sink.open(&m.member, &m.archive))
        .map_err(|e| match e {
            SinkError::NotFound { .. } => StoreError::NotFound {
                store: sink.name().to_string(),
                location: copy.location.clone(),
                source: Box::new(e.into()),
            },
            e => StoreError::Unavailable {
                store: sink.name().to_string(),
                source: Box::new(e.into()),
            },
        })?;
    // The download runs ahead on the runtime's worker while fetch decrypts
    // and decompresses; the bounded channel keeps memory flat.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    rt.spawn(async move {
        while let Some(r) = stream.next().await {
            let failed = r.is_err();
            // A closed channel means fetch stopped reading: stop downloading.
            if tx.send(r.map_err(io::Error::other)).await.is_err() || failed {
                break;
            }
        }
    });
    let chunks = std::iter::from_fn(move || rx.blocking_recv());
    Ok(Opened {
        reader: Box::new(ChunkReader::new(chunks)),
        len: Some(m.archive_size),
    })
}

/// Adapts an iterator of chunks (e.g. an object store's byte stream pulled
/// from a channel) into a `Read`.
pub struct ChunkReader<I, B> {
    chunks: I,
    current: Option<B>,
    pos: usize,
}

impl<I, B> fmt::Debug for ChunkReader<I, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkReader")
            .field("pos", &self.pos)
            .finish()
    }
}

impl<I, B> ChunkReader<I, B>
where
    I: Iterator<Item = io::Result<B>>,
    B: AsRef<[u8]>,
{
    pub fn new(chunks: I) -> Self {
        Self {
            chunks,
            current: None,
            pos: 0,
        }
    }
}

impl<I, B> Read for ChunkReader<I, B>
where
    I: Iterator<Item = io::Result<B>>,
    B: AsRef<[u8]>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(c) = &self.current {
                let c = c.as_ref();
                if self.pos < c.len() {
                    let n = buf.len().min(c.len() - self.pos);
                    buf[..n].copy_from_slice(&c[self.pos..self.pos + n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            match self.chunks.next() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => {
                    self.current = Some(b);
                    self.pos = 0;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunk_reader_reads_across_chunks() {
        let chunks = vec![Ok(vec![1u8, 2, 3]), Ok(vec![]), Ok(vec![4, 5])];
        let mut r = ChunkReader::new(chunks.into_iter());
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![1, 2, 3, 4, 5]);
    }
}
