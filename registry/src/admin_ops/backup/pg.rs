//! PostgreSQL's own tools for a backup's database: `pg_dump` in the snapshot the backup read its blob rows from,
//! and `pg_restore` into an empty database in one transaction. The password goes in `PGPASSWORD`, never on a
//! command line another local user could read.

use std::path::Path;

use anyhow::Context;
use std::process::Command;

/// `pg_dump --snapshot=SNAPSHOT` of the database at `url` into `dest` (custom format, mode 0600), without the rows
/// of `upload_sessions` (a backup holds no session's bytes: a restored session would name what is not there).
pub async fn dump(url: &str, snapshot: &str, dest: &Path) -> anyhow::Result<()> {
    // Created first with mode 0600: pg_dump would make it with the umask's mode, and it holds every account's hash.
    wharf_storage::modes::file_options()
        .write(true)
        .create_new(true)
        .open(dest)
        .with_context(|| format!("creating {}", dest.display()))?;
    let mut cmd = command("pg_dump", url)?;
    cmd.args(["--format=custom", "--no-owner", "--no-privileges", "--exclude-table-data=upload_sessions"]);
    cmd.args(["--snapshot", snapshot, "--file"]).arg(dest);
    run(cmd, "pg_dump").await?;
    std::fs::File::open(dest).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", dest.display()))
}

/// `pg_restore` of `src` into the (empty) database at `url`, all or nothing.
pub async fn restore(url: &str, src: &Path) -> anyhow::Result<()> {
    let mut cmd = command("pg_restore", url)?;
    cmd.args(["--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error"]).arg(src);
    run(cmd, "pg_restore").await
}

/// `program` aimed at `url`'s database: the URL without its password as `--dbname`, the password in the
/// environment.
fn command(program: &str, url: &str) -> anyhow::Result<Command> {
    let mut u = url::Url::parse(url).context("the database URL does not parse")?;
    let password = u.password().map(decode);
    u.set_password(None).map_err(|()| anyhow::anyhow!("the database URL cannot lose its password"))?;
    let mut cmd = Command::new(program);
    cmd.arg("--dbname").arg(u.as_str());
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    Ok(cmd)
}

async fn run(mut cmd: Command, program: &str) -> anyhow::Result<()> {
    let out = match tokio::task::spawn_blocking(move || cmd.output())
        .await
        .with_context(|| format!("a task running {program}"))?
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "{program} is not installed: a backup on PostgreSQL needs PostgreSQL's client tools \
             (Debian: postgresql-client) of the server's version or newer"
        ),
        Err(e) => return Err(e).with_context(|| format!("running {program}")),
    };
    anyhow::ensure!(
        out.status.success(),
        "{program} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A URL's percent-encoded component, decoded (`%40` is `@`).
fn decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_decoded() {
        for (text, want) in [("p%40ss", "p@ss"), ("plain", "plain"), ("100%", "100%"), ("%2", "%2"), ("a%2Fb", "a/b")] {
            assert_eq!(super::decode(text), want, "{text}");
        }
    }
}
