//! Issue 23: audit (skeleton; filled by its work).
