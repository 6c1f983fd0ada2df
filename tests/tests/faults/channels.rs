//! Faults: channels.
