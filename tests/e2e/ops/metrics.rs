//! Issue 23: metrics (skeleton; filled by its work).
