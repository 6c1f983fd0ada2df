//! The checkers: vigil-health against real etcd, node_exporter and loopback
//! API and TLS servers, and vigil-quota against a real CephFS. The shared
//! report readers are `vigil_tests::health::report`.

mod endpoints;
mod etcd;
mod monitoring;
mod quota;
