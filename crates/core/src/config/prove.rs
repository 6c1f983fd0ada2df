//! `[snapshot.prove_restore]`: the restore proof inside every snapshot run
//! (issue 19). The plaintext that etcd streamed is restored into a scratch
//! etcd held in memory and compared with the live member, so no private key
//! is needed on the bastion to know that an archive restores.

use super::{ConfigError, Validator};
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;

/// Where the proof's plaintext lives when `dir` is not set: what the unit
/// names (`VIGIL_PROOF_DIR`, a tmpfs of the unit's own mount namespace,
/// `TemporaryFileSystem=`), else /dev/shm.
pub const PROOF_DIR_ENV: &str = "VIGIL_PROOF_DIR";
pub const FALLBACK_DIR: &str = "/dev/shm";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProveRestore {
    /// Prove every member's snapshot in each run (default on).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A member's database larger than this is not proven (the proof holds
    /// about 2.3 times the database in memory at the peak); the run says so.
    #[serde(default = "default_max_db_size")]
    pub max_db_size: ByteSize,
    /// A tmpfs directory for the plaintext and the scratch etcd; vigil
    /// refuses any other filesystem (the plaintext never touches a disk).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Bound for one member's proof (restore, start, checks).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Keys read from the scratch etcd and compared with the live member.
    #[serde(default = "default_sample_keys")]
    pub sample_keys: u32,
}

impl Default for ProveRestore {
    fn default() -> Self {
        Self {
            enabled: true,
            max_db_size: default_max_db_size(),
            dir: None,
            timeout: default_timeout(),
            sample_keys: default_sample_keys(),
        }
    }
}

impl ProveRestore {
    /// `dir`, else `$VIGIL_PROOF_DIR`, else /dev/shm.
    pub fn root(&self) -> PathBuf {
        if let Some(d) = &self.dir {
            return d.clone();
        }
        std::env::var_os(PROOF_DIR_ENV)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from(FALLBACK_DIR))
    }

    /// Its errors point at `prove_restore` in the `[snapshot]` table at `span`.
    pub(super) fn check(&self, v: &Validator<'_>, span: Range<usize>) -> Result<(), ConfigError> {
        if self.timeout.get().is_zero() {
            return Err(v.err(
                "snapshot.prove_restore.timeout",
                v.field_span(span, "prove_restore"),
                "must be more than 0s (it bounds one member's proof)",
            ));
        }
        if self.sample_keys > 10_000 {
            return Err(v.err(
                "snapshot.prove_restore.sample_keys",
                v.field_span(span, "prove_restore"),
                format!("{} is more than 10000", self.sample_keys),
            ));
        }
        if self.dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return Err(v.err(
                "snapshot.prove_restore.dir",
                v.field_span(span, "prove_restore"),
                "must be an absolute path (a tmpfs directory, e.g. /dev/shm)",
            ));
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}

fn default_max_db_size() -> ByteSize {
    ByteSize(2 << 30)
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(600)
}

fn default_sample_keys() -> u32 {
    10
}
