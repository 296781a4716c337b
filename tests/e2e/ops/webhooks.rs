//! Issue 23: webhooks (skeleton; filled by its work).
