//! Wharf under faults (issue 25): the scrub, storage errors, crashes at every write, failing S3 and PostgreSQL,
//! backup and restore. Which stack each module runs on:
//! - `check` and `backup` run on the pass's stack (SQLite + disk, and again on PostgreSQL + S3 in `tests/run`);
//! - `disk` (a full disk, injected EIO) and `crash` (SIGKILL at write, fsync, rename and unlink calls) are about
//!   the local store and run on SQLite + disk;
//! - `s3` (a fault proxy in front of s3s-fs), `postgres` (restarting PostgreSQL mid-push and mid-collection) and
//!   `crash_remote` (SIGKILL at the socket calls that carry statements and S3 requests) always start their own
//!   stack.

mod backup;
mod check;
mod crash;
mod crash_remote;
mod disk;
mod postgres;
mod s3;
