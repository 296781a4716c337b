//! The data directory closed to other local users before anything is opened in it: created 0700, and what an
//! older version left open (0755 directories, a 0644 `wharf.db` with every account's password hash, blobs)
//! narrowed to the server's user with one log line. `storage::modes` has the mechanism; this picks the roots.

use std::path::Path;

use wharf_storage::modes;

use super::ServeError;
use crate::config::Settings;

/// Creates the data directory (mode 0700) and narrows it, a local store and the blob cache (where they are
/// outside it) to their owner: directories 0700, files 0600.
pub(super) async fn close_data(settings: &Settings) -> Result<(), ServeError> {
    let data = settings.data_dir.clone();
    modes::create_dir_all(&data)
        .map_err(|e| ServeError::Storage(wharf_storage::Error::Config(format!("creating {}: {e}", data.display()))))?;
    let mut roots = vec![data.clone()];
    let store = (settings.storage_url.scheme() == "file").then(|| settings.storage_url.to_file_path().ok()).flatten();
    let cache = settings.blob_cache.as_ref().map(|(dir, _)| dir.clone());
    roots.extend([store, cache].into_iter().flatten().filter(|r| !inside(r, &data)));
    let walked = roots.clone();
    let t = tokio::task::spawn_blocking(move || {
        walked.iter().map(|r| modes::tighten(r)).fold(modes::Tightened::default(), |mut all, t| {
            all.dirs += t.dirs;
            all.files += t.files;
            all.failed += t.failed;
            all.first_error = all.first_error.or(t.first_error);
            all
        })
    })
    .await
    .map_err(|e| ServeError::Storage(wharf_storage::Error::Config(format!("tightening modes: {e}"))))?;
    let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    if t.changed() > 0 {
        tracing::warn!(
            dirs = t.dirs,
            files = t.files,
            roots = ?roots,
            "closed the data directory to other users: group and other access removed (directories 0700, files 0600)"
        );
    }
    if t.failed > 0 {
        tracing::warn!(
            failed = t.failed,
            first = t.first_error.as_deref().unwrap_or(""),
            roots = ?roots,
            "could not close some of the data directory's entries to other users"
        );
    }
    Ok(())
}

/// Whether `path` is `dir` or below it, compared as written (a root walked twice costs a second look, no more).
fn inside(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}
