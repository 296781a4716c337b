//! Issue 23: admin (skeleton; filled by its work).
