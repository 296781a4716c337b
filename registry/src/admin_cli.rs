//! The `wharf admin` and `wharf cert` command lines.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use wharf_storage::{AccountKind, Change, Clock, Metadata, Origin, Recorder, SystemClock};

use crate::admin::{self, ROBOT_PREFIX};
use crate::config::{RetentionConfig, Settings};
use crate::gc::{Gc, GcError, Report, RunOptions};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Users: people who log in with a password.
    #[command(subcommand)]
    User(UserCommand),
    /// Robot accounts: random secrets for CI, shown once, optionally expiring.
    #[command(subcommand)]
    Robot(RobotCommand),
    /// Give ACCOUNT (a user, `robot$NAME`, or `anonymous` for public repositories) ACTIONS on PATTERN.
    ///
    /// PATTERN: `team/app`, `team/*` (one level), `team/**` (any depth), `**` (everything). ACTIONS:
    /// comma-separated pull, push, delete, sign, admin.
    Grant {
        /// A user, `robot$NAME`, or `anonymous`.
        account: String,
        /// The repositories: `team/app`, `team/*`, `team/**` or `**`.
        pattern: String,
        /// Comma-separated: pull, push, delete, sign, admin.
        actions: String,
    },
    /// Take back what ACCOUNT has on PATTERN.
    Revoke {
        /// A user, `robot$NAME`, or `anonymous`.
        account: String,
        /// The pattern as granted.
        pattern: String,
    },
    /// Collect garbage now, online: apply the configured retention rules, then delete the bytes of blobs no
    /// manifest references (after the grace period) and expired uploads. Prints what went.
    Gc {
        /// Print what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also list the store for orphans that a crash left (slow: paced by gc.reconcile_rate).
        #[arg(long)]
        reconcile: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply retention rules: the configured `[[retention]]` ones, or one given here. Removes tags and untagged
    /// manifests only; their blobs go at the next collection.
    Retention {
        /// Print what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// A rule of its own instead of the configured ones: repository pattern (`team/**`).
        #[arg(long)]
        repositories: Option<String>,
        /// Tag pattern (`*` any run of characters); default `*`.
        #[arg(long, requires = "repositories")]
        tags: Option<String>,
        /// Keep the newest N matching tags.
        #[arg(long, requires = "repositories")]
        keep_last: Option<usize>,
        /// Remove matching tags pushed longer ago than this (90s, 45m, 12h, 30d, 2w).
        #[arg(long, requires = "repositories")]
        older_than: Option<crate::config::Secs>,
        /// Remove untagged manifests older than this.
        #[arg(long, requires = "repositories")]
        untagged_older_than: Option<crate::config::Secs>,
        /// Signed tags (and manifests signed targets name) may go too.
        #[arg(long, requires = "repositories")]
        include_signed: bool,
    },
    /// Webhook deliveries: those waiting and those failing, and retrying them now.
    #[command(subcommand)]
    Events(crate::admin_ops::events::EventsCommand),
    /// The audit log: who pushed, signed, deleted or logged in, from where, and when.
    Audit(crate::admin_ops::audit::AuditArgs),
    /// Storage quotas per repository pattern: set, remove, list, and `--recount`.
    Quota(crate::admin_ops::quota::QuotaArgs),
    /// Verify the store: every blob's bytes, rows against objects, manifests' references, tags, trust data.
    Check(crate::admin_ops::check::CheckArgs),
    /// Write a consistent copy of the registry (database and blobs) into DIR while it serves.
    Backup(crate::admin_ops::backup::BackupArgs),
    /// Restore a backup into this configuration's empty data directory, database and store.
    Restore(crate::admin_ops::backup::RestoreArgs),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user (the password is asked for, or read from stdin).
    Add {
        /// The user's name.
        name: String,
        /// Read the password from stdin instead of asking for it twice on the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user and its grants.
    Remove {
        /// The user's name.
        name: String,
    },
    /// List users and their grants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password.
    Passwd {
        /// The user's name.
        name: String,
        /// Read the password from stdin instead of asking for it twice on the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RobotCommand {
    /// Create `robot$NAME`; its secret is printed once.
    Create {
        /// The robot's name (`NAME` or `robot$NAME`).
        name: String,
        /// Expire after this long: 90s, 45m, 12h, 30d.
        #[arg(long)]
        expires_in: Option<String>,
        /// PATTERN=ACTIONS to grant at once (repeatable), e.g. `ci/**=push`.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Print the name and secret as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a robot and its grants.
    Remove {
        /// The robot's name (`NAME` or `robot$NAME`).
        name: String,
    },
    /// List robots, their expiry and grants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let a = rpassword::prompt_password("Password: ").context("no terminal to ask on; use --password-stdin")?;
    let b = rpassword::prompt_password("Again: ").context("no terminal to ask on; use --password-stdin")?;
    anyhow::ensure!(a == b, "the passwords differ");
    Ok(a)
}

fn robot_name(name: &str) -> String {
    if name.starts_with(ROBOT_PREFIX) {
        name.to_owned()
    } else {
        format!("{ROBOT_PREFIX}{name}")
    }
}

fn print_list(v: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    for a in v.as_array().into_iter().flatten() {
        let grants: Vec<String> = a["grants"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| format!("{}={}", g["pattern"].as_str().unwrap_or(""), g["actions"].as_str().unwrap_or("")))
            .collect();
        let expires = a["expires_at"]
            .as_i64()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| format!(" expires {}", t.to_rfc3339()))
            .unwrap_or_default();
        println!("{}{expires}\t{}", a["name"].as_str().unwrap_or(""), grants.join(" "));
    }
    Ok(())
}

/// The collector over this configuration's database and store.
fn collector(settings: &Settings, meta: &Metadata) -> anyhow::Result<Gc> {
    let blobs = wharf_storage::BlobStore::connect(&settings.storage_url, &settings.s3).context("opening the store")?;
    let uploads = wharf_storage::Uploads::new(blobs.clone(), meta.clone(), settings.upload);
    let rec = std::sync::Arc::new(crate::ops::record::Record::new(&settings.ops));
    Ok(Gc::new(meta.clone(), blobs, uploads, settings.gc.clone()).with_recorder(rec))
}

/// Records an operator's collection or retention run (not a dry run) as an admin action, with what it removed.
async fn record_run(meta: &Metadata, rec: &dyn Recorder, action: &str, r: &Report) -> anyhow::Result<()> {
    if r.dry_run {
        return Ok(());
    }
    let detail = format!(
        "tags={} manifests={} blobs={} bytes={}",
        r.tags_removed, r.manifests_removed, r.blobs_removed, r.bytes_removed
    );
    let change = Change::Admin { action: action.into(), detail };
    let journal = rec.journal(&Origin::system("admin"), &change, SystemClock.now());
    meta.journals().record(&journal).await.context("recording the run in the audit log")
}

/// Runs the collector, waiting (up to a minute past a lease's 30 s) while another replica's run holds the lease.
async fn run_waiting(gc: &Gc, opts: RunOptions, rules: &[crate::retention::Rule]) -> anyhow::Result<Report> {
    let started = std::time::Instant::now();
    loop {
        match gc.run(opts, rules, SystemClock.now()).await {
            Err(GcError::Busy) if started.elapsed() < std::time::Duration::from_secs(90) => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// Opens the configuration's database. Without `init`, a database that is not there is refused before anything
/// is created (a mistyped `--data-dir` or URL must not leave an empty registry behind); with it, it is created.
async fn open(settings: &Settings, init: bool) -> anyhow::Result<Metadata> {
    let url = &settings.database_url;
    if !init && !Metadata::exists(url).await.with_context(|| format!("looking for the database at {}", shown(url)))? {
        anyhow::bail!("no Wharf database at {}; run with --init to create one", shown(url));
    }
    wharf_storage::modes::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    Metadata::open(url).await.context("opening the database")
}

/// A database URL as messages show it: a SQLite file's path, a PostgreSQL URL without its password.
fn shown(url: &str) -> String {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return path.to_owned();
    }
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(the configured database URL)".into(),
    }
}

/// Runs `cmd`; `init` lets it create the database when there is none.
pub async fn run(settings: &Settings, cmd: AdminCommand, init: bool) -> anyhow::Result<()> {
    // A restore creates what `open` would refuse to find missing.
    if let AdminCommand::Restore(a) = cmd {
        return crate::admin_ops::backup::restore(settings, a).await;
    }
    let meta = open(settings, init).await?;
    let now = SystemClock.now();
    // What an operator's change records (audit rows, webhook deliveries), as the server would.
    let rec = crate::ops::record::Record::new(&settings.ops);
    match cmd {
        AdminCommand::User(UserCommand::Add { name, password_stdin }) => {
            admin::user_add(&meta, &rec, &name, &password(password_stdin)?, now).await?;
            eprintln!("added user {name}");
        }
        AdminCommand::User(UserCommand::Remove { name }) => admin::remove(&meta, &rec, &name, now).await?,
        AdminCommand::User(UserCommand::List { json }) => {
            print_list(&admin::list(&meta, AccountKind::User).await?, json)?
        }
        AdminCommand::User(UserCommand::Passwd { name, password_stdin }) => {
            admin::passwd(&meta, &rec, &name, &password(password_stdin)?, now).await?;
            eprintln!("password of {name} changed");
        }
        AdminCommand::Robot(RobotCommand::Create { name, expires_in, grants, json }) => {
            let short = name.strip_prefix(ROBOT_PREFIX).unwrap_or(&name);
            let expires_at = expires_in.map(|d| admin::parse_duration(&d).map(|s| now + s)).transpose()?;
            let grants: Vec<(String, String)> = grants
                .iter()
                .map(|g| g.split_once('=').map(|(p, a)| (p.to_owned(), a.to_owned())))
                .collect::<Option<_>>()
                .context("--grant takes PATTERN=ACTIONS")?;
            let (full, secret) = admin::robot_create(&meta, &rec, short, expires_at, &grants, now).await?;
            if json {
                println!("{}", serde_json::json!({ "name": full, "secret": secret, "expires_at": expires_at }));
            } else {
                println!("{full}\n{secret}");
                eprintln!("the secret is shown only now; log in with: wharf login HOST -u '{full}' --password-stdin");
            }
        }
        AdminCommand::Robot(RobotCommand::Remove { name }) => {
            admin::remove(&meta, &rec, &robot_name(&name), now).await?
        }
        AdminCommand::Robot(RobotCommand::List { json }) => {
            print_list(&admin::list(&meta, AccountKind::Robot).await?, json)?
        }
        AdminCommand::Grant { account, pattern, actions } => {
            admin::grant(&meta, &rec, &account, &pattern, &actions, now).await?;
        }
        AdminCommand::Revoke { account, pattern } => admin::revoke(&meta, &rec, &account, &pattern, now).await?,
        AdminCommand::Events(c) => crate::admin_ops::events::run(settings, &meta, c).await?,
        AdminCommand::Audit(a) => crate::admin_ops::audit::run(settings, &meta, a).await?,
        AdminCommand::Quota(c) => crate::admin_ops::quota::run(settings, &meta, c).await?,
        AdminCommand::Check(a) => crate::admin_ops::check::run(settings, &meta, a).await?,
        AdminCommand::Backup(a) => crate::admin_ops::backup::backup(settings, &meta, a).await?,
        AdminCommand::Restore(_) => anyhow::bail!("a restore runs before the database is opened"),
        AdminCommand::Gc { dry_run, reconcile, json } => {
            let gc = collector(settings, &meta)?;
            let opts = RunOptions { dry_run, reconcile, retention_only: false };
            let report = run_waiting(&gc, opts, &settings.gc.rules).await?;
            record_run(&meta, &rec, "gc", &report).await?;
            crate::admin_ops::gc_report::print(&report, json)?;
        }
        AdminCommand::Retention {
            dry_run,
            json,
            repositories,
            tags,
            keep_last,
            older_than,
            untagged_older_than,
            include_signed,
        } => {
            let rules = match repositories {
                Some(repositories) => {
                    let r = RetentionConfig {
                        repositories,
                        tags,
                        keep_last,
                        older_than,
                        untagged_older_than,
                        include_signed,
                    };
                    vec![crate::config::rule(r).map_err(anyhow::Error::msg)?]
                }
                None if settings.gc.rules.is_empty() => {
                    anyhow::bail!("no retention rules: add [[retention]] to the config, or give --repositories")
                }
                None => settings.gc.rules.clone(),
            };
            let gc = collector(settings, &meta)?;
            let opts = RunOptions { dry_run, retention_only: true, reconcile: false };
            let report = run_waiting(&gc, opts, &rules).await?;
            record_run(&meta, &rec, "retention", &report).await?;
            crate::admin_ops::gc_report::print(&report, json)?;
        }
    }
    Ok(())
}

/// `wharf cert`: a throwaway CA and a server certificate for `hosts` (names or IP addresses), for tests and first
/// trials. Writes `ca.crt`, `ca.key`, `server.crt` (the server certificate, then the CA) and `server.key`.
pub fn write_certs(dir: &Path, hosts: &[String], days: u32) -> anyhow::Result<Vec<PathBuf>> {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
    anyhow::ensure!(!hosts.is_empty(), "name at least one host");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let now = time::OffsetDateTime::now_utc();
    let until = now + time::Duration::days(i64::from(days));
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, "Wharf throwaway CA");
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = until;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let mut leaf = CertificateParams::new(hosts.to_vec())?;
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, hosts[0].clone());
    leaf.not_before = now - time::Duration::hours(1);
    leaf.not_after = until;
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;
    let files = [
        ("ca.crt", ca_cert.pem(), 0o644),
        ("ca.key", ca_key.serialize_pem(), 0o600),
        ("server.crt", format!("{}{}", leaf_cert.pem(), ca_cert.pem()), 0o644),
        ("server.key", leaf_key.serialize_pem(), 0o600),
    ];
    let mut written = Vec::new();
    for (name, text, mode) in files {
        let path = dir.join(name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
        let mut f = opts.open(&path).with_context(|| format!("writing {}", path.display()))?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}
