//! Which sections' files a program opens (contract 5: a binary opens only
//! the secrets of the sections it uses).
//!
//! Every section is still parsed and validated, so a typo anywhere is an
//! error everywhere; only the opening of secret and TLS files is limited.

use std::fmt;

/// A set of config sections whose files a program reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Uses {
    /// `[cluster.tls]`: the etcd client certificate and key.
    pub etcd: bool,
    /// `[snapshot]`: the RKE2 token.
    pub snapshot: bool,
    /// `[[sink]]`: object-store keys, CAs, service accounts.
    pub sinks: bool,
    /// `[restore]`: the drill key.
    pub restore: bool,
    /// `[alert]`: channel webhooks, SMTP passwords, CAs, the heartbeat URL.
    pub alert: bool,
    /// `[health]`: Kubernetes API and certificate-check material.
    pub health: bool,
    /// `[quota]`: the Ceph config and keyring.
    pub quota: bool,
}

impl Uses {
    /// No files at all: linting examples, the systemd generator.
    pub const NONE: Uses = Uses {
        etcd: false,
        snapshot: false,
        sinks: false,
        restore: false,
        alert: false,
        health: false,
        quota: false,
    };
    /// Every section: `check-config --all`, vigild (which runs every job).
    pub const ALL: Uses = Uses {
        etcd: true,
        snapshot: true,
        sinks: true,
        restore: true,
        alert: true,
        health: true,
        quota: true,
    };
    /// vigil-snapshot (run, prune, scrub, list): members, the token, the sinks.
    pub const SNAPSHOT: Uses = Uses {
        etcd: true,
        snapshot: true,
        sinks: true,
        ..Uses::NONE
    };
    /// vigil-journal: the members and the sinks (and what the snapshot it
    /// starts after a gap needs).
    pub const JOURNAL: Uses = Uses {
        etcd: true,
        snapshot: true,
        sinks: true,
        ..Uses::NONE
    };
    /// vigil-restore: the sinks as sources and the drill key.
    pub const RESTORE: Uses = Uses {
        sinks: true,
        restore: true,
        ..Uses::NONE
    };
    /// vigil-health: the members and its own checks' material.
    pub const HEALTH: Uses = Uses {
        etcd: true,
        health: true,
        ..Uses::NONE
    };
    /// vigil-quota: Ceph only.
    pub const QUOTA: Uses = Uses {
        quota: true,
        ..Uses::NONE
    };
    /// vigil-notify: the channels' secrets only.
    pub const NOTIFY: Uses = Uses {
        alert: true,
        ..Uses::NONE
    };

    /// The names of the sections in the set, for messages.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.etcd, "cluster.tls"),
            (self.snapshot, "snapshot"),
            (self.sinks, "sink"),
            (self.restore, "restore"),
            (self.alert, "alert"),
            (self.health, "health"),
            (self.quota, "quota"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

impl fmt::Display for Uses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.names();
        if n.is_empty() {
            f.write_str("no secret files")
        } else {
            f.write_str(&n.join(", "))
        }
    }
}
