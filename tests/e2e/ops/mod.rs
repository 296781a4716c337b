//! Operating Wharf (issue 23): metrics, webhooks, audit, quotas, rate limits, admin commands, each against the
//! real binary. `tests/run` runs this module again on PostgreSQL + S3.

mod admin;
mod audit;
mod limits;
mod metrics;
mod quota;
mod webhooks;
