//! `kind = "file"`: one JSON line per message, appended to a file (0600).

use super::{AmExtra, Kind, SendError, SendFuture, Sent, Transport};
use crate::model::{rfc3339, Notification};
use crate::redact::Redactor;
use crate::render;
use crate::AlertError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use vigil_core::config::channel::file::FileChannel;
use vigil_core::config::ChannelConfig;

impl Kind for FileChannel {
    fn target(&self) -> String {
        format!("file {}", self.path.display())
    }
    fn secrets(&self, _: &mut Redactor) {}
    fn transport(&self, _: &ChannelConfig) -> Result<Box<dyn Transport>, AlertError> {
        Ok(Box::new(File {
            path: self.path.clone(),
        }))
    }
}

#[derive(Debug)]
struct File {
    path: PathBuf,
}

impl Transport for File {
    fn send<'a>(&'a self, n: &'a Notification, _: &'a AmExtra, _: &'a Redactor) -> SendFuture<'a> {
        let line = render::file_line(n, &rfc3339(vigil_core::now()));
        Box::pin(std::future::ready(append_line(&self.path, &line)))
    }
}

fn append_line(path: &Path, v: &serde_json::Value) -> Result<Sent, SendError> {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| {
            f.write_all(&line)?;
            f.sync_data()
        });
    r.map(|()| Sent {
        reply: format!("appended to {}", path.display()),
    })
    .map_err(|e| SendError::plain(format!("appending to {}: {e}", path.display())))
}
