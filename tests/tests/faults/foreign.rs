//! Faults: foreign.
