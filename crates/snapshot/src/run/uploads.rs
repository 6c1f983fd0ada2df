//! A member's copies in the streaming sinks: one upload per sink, fed by
//! the archive writer as it writes, committed and checked once the local
//! archive is stored.

use super::{Ctx, SinkCopy};
use crate::cluster::Cluster;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use vigil_archive::sink::{Sink, SinkError, SinkMsg};
use vigil_archive::SinkTx;
use vigil_core::config::MemberConfig;
use vigil_core::manifest::Manifest;

/// How long a timed-out member's sink uploads get to abort.
pub(super) const ABORT_GRACE: Duration = Duration::from_secs(30);

pub(super) type Upload = (Arc<Sink>, tokio::task::JoinHandle<Result<u64, SinkError>>);

/// One upload per streaming sink, fed by the writer as it writes.
pub(super) fn start<C: Cluster>(
    ctx: &Ctx<C>,
    m: &MemberConfig,
    file: &str,
) -> (Vec<Upload>, Vec<SinkTx>) {
    let mut uploads = Vec::new();
    let mut txs = Vec::new();
    for sink in ctx.sinks.iter().filter(|s| s.streams()) {
        let (tx, rx) = mpsc::channel::<SinkMsg>(8);
        let (s, member, f) = (sink.clone(), m.name.clone(), file.to_string());
        uploads.push((
            sink.clone(),
            tokio::spawn(async move { s.upload_stream(&member, &f, rx).await }),
        ));
        txs.push(SinkTx {
            name: sink.name().to_string(),
            tx,
        });
    }
    (uploads, txs)
}

/// Commits the uploads that are still alive, checks each copy against the
/// manifest and puts the manifest beside it; a copy that fails is removed.
pub(super) async fn finish(
    m: &MemberConfig,
    manifest: &Manifest,
    alive: Vec<SinkTx>,
    uploads: &mut Vec<Upload>,
) -> Vec<SinkCopy> {
    for o in &alive {
        let _ = o.tx.send(SinkMsg::Commit).await;
    }
    drop(alive);
    let mut copies = Vec::new();
    for (sink, h) in uploads.drain(..) {
        let r = match h.await {
            Ok(r) => r.map(|_| ()),
            Err(e) => Err(SinkError::Internal {
                sink: sink.name().to_string(),
                message: e.to_string(),
            }),
        };
        let r = match r {
            Ok(()) => match sink.verify(&m.name, manifest).await {
                Ok(()) => sink.put_manifest(&m.name, manifest).await,
                Err(e) => {
                    let _ = sink.delete(&m.name, &manifest.archive).await;
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        if let Err(e) = &r {
            tracing::error!(member = %m.name, sink = %sink.name(), "{e}");
        }
        copies.push(SinkCopy {
            sink: sink.name().to_string(),
            ok: r.is_ok(),
            location: sink.location(&m.name, &manifest.archive),
            error: r.err().map(|e| e.to_string()),
        });
    }
    copies
}
