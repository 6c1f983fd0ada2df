//! vigil-restore against real etcd members and age keys: list, fetch,
//! restores (etcd and RKE2), drills, the revision bump, the RKE2 token
//! proof, the etcd tool versions and a recovery from S3, Azure or GCS alone.

mod azure;
mod bump;
mod cli;
mod gcs;
mod journal;
mod restore;
mod rke2_token;
mod s3;
mod versions;
