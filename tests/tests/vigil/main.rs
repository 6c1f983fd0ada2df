//! The jobs end to end against real etcd members (and radosgw for sinks):
//! vigil-snapshot and its restore proof, shipping to sinks, the revision
//! record, bad configs from every binary, the installed layout (contract 5)
//! and the bastion (units, metrics, vigild).

mod bastion;
mod config;
mod installed;
mod progress;
mod revision_seen;
mod sinks;
mod snapshot;
mod status;
