//! vigil-snapshot: pulls a verified snapshot from every etcd member (in turns,
//! `snapshot.max_concurrent_members`),
//! compresses and encrypts it as it streams, stores it privately and
//! atomically, checks the members agree, prunes, and records the outcome.

pub mod cluster;
pub mod consistency;
pub mod gentle;
pub mod keep;
pub mod list;
pub mod metrics;
pub mod output;
pub mod prove;
pub mod prune;
pub mod repin;
pub mod run;
pub mod scrub;
pub mod ship;

pub use run::{run, Deps, RunError, RunReport};
