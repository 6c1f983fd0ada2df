//! The fault-injection suite (issue 14): every case runs the real binaries
//! against real etcd, stores and receivers, and asserts the three promises of
//! README "What vigil guarantees": nothing verified is lost, no plaintext is
//! left behind, and a human hears about it.
//!
//! One module per kind of fault, so that each stays readable on its own.

mod channels;
mod cli;
mod clock;
mod corrupt;
mod drill;
mod foreign;
mod races;
mod startup;
mod stores;
