//! Issue 23: quota (skeleton; filled by its work).
