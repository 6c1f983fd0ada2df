//! The shipping sinks as restore sources: S3 / Ceph RGW, Azure, GCS, fs and
//! dir copies are listed and streamed straight into the fetch pipeline.

use crate::source::{ChunkReader, Located, Opened, Source, SourceError};
use futures_util::StreamExt;
use std::sync::Arc;
use vigil_archive::sink::{Sink, SinkError};

pub struct SinkSource {
    sink: Arc<Sink>,
    cluster: String,
    rt: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SinkSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSource")
            .field("sink", &self.sink.name())
            .finish()
    }
}

impl SinkSource {
    pub fn new(sink: Arc<Sink>, cluster: &str, rt: Arc<tokio::runtime::Runtime>) -> Self {
        Self {
            sink,
            cluster: cluster.to_string(),
            rt,
        }
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> SourceError {
        SourceError::Unavailable {
            source_name: self.sink.name().to_string(),
            message: e.to_string(),
        }
    }
}

impl Source for SinkSource {
    fn name(&self) -> &str {
        self.sink.name()
    }

    fn list(&self) -> Result<Vec<Located>, SourceError> {
        let entries = self
            .rt
            .block_on(self.sink.list())
            .map_err(|e| self.unavailable(e))?;
        Ok(entries
            .into_iter()
            .filter(|e| e.manifest.cluster == self.cluster)
            .map(|e| Located {
                source: self.sink.name().to_string(),
                location: self.sink.location(&e.member, &e.manifest.archive),
                verified: e.is_verified(),
                manifest: e.manifest,
            })
            .collect())
    }

    fn open(&self, copy: &Located) -> Result<Opened, SourceError> {
        let m = &copy.manifest;
        let stream = self
            .rt
            .block_on(self.sink.open(&m.member, &m.archive))
            .map_err(|e| match e {
                SinkError::NotFound { .. } => SourceError::NotFound {
                    source_name: self.sink.name().to_string(),
                    location: copy.location.clone(),
                    message: e.to_string(),
                },
                e => self.unavailable(e.to_string()),
            })?;
        // The download runs ahead on the runtime's worker while fetch decrypts
        // and decompresses; the bounded channel keeps memory flat.
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut stream = stream;
        self.rt.spawn(async move {
            while let Some(r) = stream.next().await {
                let failed = r.is_err();
                // A closed channel means fetch stopped reading: stop downloading.
                if tx.send(r.map_err(std::io::Error::other)).await.is_err() || failed {
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
}

/// Every configured sink except tape (retrieve from tape with `dsmc retrieve` first).
pub fn sources(cfg: &vigil_core::Config) -> Vec<Box<dyn Source>> {
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
    if sinks.is_empty() {
        return Vec::new();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => Arc::new(rt),
        Err(e) => {
            tracing::warn!("cannot start the runtime for sink sources: {e}");
            return Vec::new();
        }
    };
    sinks
        .into_iter()
        .map(|s| Box::new(SinkSource::new(s, cfg.cluster_name(), rt.clone())) as Box<dyn Source>)
        .collect()
}

/// The sources configured for this host. The local snapshot dir comes first
/// (cheapest to read); then every sink that can be read.
pub fn configured(cfg: &vigil_core::Config) -> Vec<Box<dyn Source>> {
    let mut v: Vec<Box<dyn Source>> = Vec::new();
    if let Some(sn) = cfg.snapshot.as_ref() {
        v.push(Box::new(crate::source::LocalSource::new(&sn.dir)));
    }
    v.extend(sources(cfg));
    v
}
