//! Faults: stores.
