//! Issue 23: limits (skeleton; filled by its work).
