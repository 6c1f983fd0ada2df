//! `[state]`: where vigil keeps its lock, outcome records and alert state.

use super::{ConfigError, Validator};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The lock, outcome records, alert state and outbox (0700).
    pub dir: PathBuf,
}

impl StateConfig {
    pub(super) fn resolve(self, v: &Validator<'_>) -> Result<StateConfig, ConfigError> {
        if self.dir.as_os_str().is_empty() {
            return Err(v.err("state.dir", None, "must not be empty"));
        }
        Ok(self)
    }
}
