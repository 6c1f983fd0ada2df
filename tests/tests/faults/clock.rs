//! Faults: clock.
