//! The operating commands of `wharf admin`: webhook deliveries, the audit log, quotas, the scrub (`check`),
//! backup and restore. One file each; the
//! subcommands are declared in `admin_cli.rs`.

pub mod audit;
pub mod backup;
pub mod check;
pub mod events;
pub mod gc_report;
pub mod human;
pub mod quota;
