//! Faults: cli.
