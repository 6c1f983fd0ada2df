//! Faults: drill.
