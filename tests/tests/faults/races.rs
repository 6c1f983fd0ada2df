//! Faults: races.
