//! One member's watch of the whole keyspace, turned into revisions of
//! [`Event`]s. etcd sends a revision whole in one response (vigil does not
//! ask for fragments), and every revision has at least one event, so the
//! revisions the journal holds are contiguous unless a gap is recorded.

use crate::format::{Event, Op};
use etcd_client::{EventType, WatchOptions};
use vigil_etcd::MemberClient;

/// A watch message larger than etcd's own default limit on requests (1.5 MiB)
/// times the 1000 revisions one response may batch would not fit a sane
/// bound; 256 MiB holds any response etcd 3.4-3.6 sends by default.
const MAX_MESSAGE: usize = 256 << 20;

/// What a watch response meant.
#[derive(Debug)]
pub enum Message {
    /// Events, grouped per revision, in order.
    Revisions(Vec<Vec<Event>>),
    /// No events: the member has sent everything up to this revision.
    Progress(i64),
    /// `start` was compacted away; the oldest revision left is this.
    Compacted(i64),
    /// The member ended the watch.
    Canceled(String),
}

pub struct Watch {
    stream: etcd_client::WatchStream,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish()
    }
}

impl Watch {
    /// Watches every key from revision `start` (inclusive).
    pub async fn open(m: &MemberClient, start: i64) -> Result<Watch, vigil_etcd::EtcdError> {
        let mut wc = m
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let opts = WatchOptions::new()
            .with_from_key()
            .with_start_revision(start)
            .with_progress_notify();
        let stream = m.call("watch", wc.watch(vec![0u8], Some(opts))).await?;
        Ok(Watch { stream })
    }

    /// Asks for a progress message (the member's revision, once synced).
    pub async fn request_progress(&mut self) -> Result<(), etcd_client::Error> {
        self.stream.request_progress().await
    }

    /// The next meaningful message; `None` when the stream ended.
    pub async fn next(
        &mut self,
        received_at: impl Fn() -> String,
    ) -> Result<Option<Message>, etcd_client::Error> {
        loop {
            let Some(resp) = self.stream.message().await? else {
                return Ok(None);
            };
            if resp.compact_revision() > 0 {
                return Ok(Some(Message::Compacted(resp.compact_revision())));
            }
            if resp.canceled() {
                return Ok(Some(Message::Canceled(resp.cancel_reason().to_string())));
            }
            if resp.created() && resp.events().is_empty() {
                continue;
            }
            if resp.events().is_empty() {
                let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
                return Ok(Some(Message::Progress(rev)));
            }
            let t = received_at();
            let mut out: Vec<Vec<Event>> = Vec::new();
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let e = Event {
                    revision: kv.mod_revision(),
                    op: match ev.event_type() {
                        EventType::Put => Op::Put,
                        EventType::Delete => Op::Delete,
                    },
                    key: kv.key().to_vec(),
                    value: kv.value().to_vec(),
                    create_revision: kv.create_revision(),
                    mod_revision: kv.mod_revision(),
                    version: kv.version(),
                    lease: kv.lease(),
                    received_at: t.clone(),
                };
                match out.last_mut() {
                    Some(g) if g[0].revision == e.revision => g.push(e),
                    _ => out.push(vec![e]),
                }
            }
            return Ok(Some(Message::Revisions(out)));
        }
    }
}
