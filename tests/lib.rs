//! End-to-end tests live in this crate's test targets; `common/` holds the helpers that start the real binary.
