//! Storage errors on the local store (SQLite + disk): a full disk answers 507 and an I/O error 503, each naming
//! its cause; nothing half-written becomes visible, a chunked upload stays resumable, and the server recovers by
//! itself once space is freed or the device answers again.

pub(super) mod store;

use std::time::Duration;

use store::{Answer, Client, Strace, Tmpfs};

use crate::common::{data, sha256};

/// A 507 or 503 with the OCI error body the table gives it, naming the cause.
fn assert_refused(a: &Answer, status: u16, names: &str, what: &str) {
    let (code, message) = a.error();
    assert_eq!(a.status, status, "{what}: {a:?}");
    assert_eq!(code, "UNAVAILABLE", "{what}: {a:?}");
    assert!(message.contains(names), "{what}: the message does not say {names:?}: {message}");
}

fn blob_file(data_dir: &std::path::Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    data_dir.join("store/blobs/sha256").join(&hex[..2]).join(hex)
}

/// Files left under `uploads/` by sessions: a failed monolithic upload must leave none.
fn upload_files(data_dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(data_dir.join("store/uploads")).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            out.push(format!("{} ({} bytes)", f.path().display(), f.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
    out
}

#[test]
fn a_full_disk_answers_507_and_the_next_push_goes_through_once_space_is_freed() {
    let fs = Tmpfs::mount("40m");
    let dir = fs.path.join("data");
    let s = store::serve(&dir, &[]);
    let c = Client::new(&s);
    let env = store::local_env(&dir, &[]);

    // What was there before the disk filled.
    let (config, layer) = (data(600, 1), data(256 << 10, 2));
    assert_eq!(c.mono("full/before", &config).status, 201);
    assert_eq!(c.mono("full/before", &layer).status, 201);
    let before = store::manifest(&config, &[&layer]);
    assert_eq!(c.put_manifest("full/before", "v1", &before).status, 201);

    let filler = fs.fill("filler", 3 << 20);
    // A monolithic push bigger than what is left.
    let big = data(6 << 20, 3);
    let a = c.mono("full/mono", &big);
    assert_refused(&a, 507, "storage is full", "a monolithic push on a full disk");
    assert!(!blob_file(&dir, &sha256(&big)).exists(), "a blob that did not fit is under blobs/");
    assert_eq!(c.head(&format!("/v2/full/mono/blobs/{}", sha256(&big))), 404);
    assert!(upload_files(&dir).is_empty(), "a failed monolithic upload left {:?}", upload_files(&dir));

    // A chunked push: the first chunk fits, the second does not; the session keeps what it recorded.
    let chunked = data(6 << 20, 4);
    let started = c.start("full/mono");
    assert_eq!(started.status, 202, "{started:?}");
    let loc = started.location.unwrap();
    assert_eq!(c.patch(&loc, 0, &chunked[..1 << 20]).status, 202);
    let a = c.patch(&loc, 1 << 20, &chunked[1 << 20..]);
    assert_refused(&a, 507, "storage is full", "a chunk on a full disk");
    let status = c.get(&loc);
    assert_eq!((status.status, status.range.as_deref()), (204, Some("0-1048575")), "the session after a full disk");
    let held: u64 = upload_files(&dir).len() as u64;
    assert_eq!(held, 1, "the session keeps one file: {:?}", upload_files(&dir));

    // While full: alive, the API answers, reads are served (so the server stays ready), and what was there pulls.
    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(c.get("/v2/").status, 200);
    assert_eq!(c.get("/readyz").status, 200, "reads still work on a full disk");
    assert_eq!(c.pull("full/before", "v1").unwrap(), sha256(before.as_bytes()));

    // With nothing left at all, the database cannot grow either: a large manifest is refused as full too.
    let rest = fs.fill("filler-2", 0);
    let huge = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config),
                    "size": config.len() },
        "layers": [], "annotations": { "filler": "x".repeat(3 << 20) },
    })
    .to_string();
    let a = c.put_manifest("full/before", "huge", &huge);
    assert_refused(&a, 507, "storage is full", "a manifest when the database cannot grow");
    std::fs::remove_file(rest).unwrap();
    assert_eq!(c.get("/healthz").status, 200);

    // Space freed: no restart; the session continues where it was, the monolithic push goes through.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(c.patch(&loc, 1 << 20, &chunked[1 << 20..]).status, 202);
    assert_eq!(c.finish(&loc, &sha256(&chunked)).status, 201);
    assert_eq!(c.mono("full/mono", &big).status, 201);
    assert_eq!(c.mono("full/mono", &config).status, 201);
    let after = store::manifest(&config, &[&big, &chunked]);
    let a = c.put_manifest("full/mono", "v1", &after);
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(c.pull("full/mono", "v1").unwrap(), sha256(after.as_bytes()));
    assert_eq!(c.pull("full/before", "v1").unwrap(), sha256(before.as_bytes()));
    store::assert_rows_have_bytes(&dir, "after a full disk");
    store::assert_blob_files_match(&dir, "after a full disk");
    store::assert_check_clean(&dir, &env, "after a full disk");
}

/// One I/O error injected under strace into a request: the request's answer and the trace.
fn with_eio(c: &Client, pid: u32, syscall: &str, when: &str, request: impl FnOnce(&Client) -> Answer) -> Answer {
    let tmp = tempfile::tempdir().unwrap();
    let st = Strace::attach(pid, syscall, "error=EIO", when, tmp.path().join("trace"));
    let a = request(c);
    let trace = st.detach();
    assert!(trace.contains("(INJECTED)"), "no {syscall} was failed by the request:\n{trace}");
    a
}

#[test]
fn an_io_error_answers_503_and_the_next_request_succeeds() {
    let fs = Tmpfs::mount("64m");
    let dir = fs.path.join("data");
    let s = store::serve(&dir, &[]);
    let c = Client::new(&s);
    let env = store::local_env(&dir, &[]);
    let pid = s.pid();
    let (config, layer, chunked) = (data(700, 11), data(300 << 10, 12), data(200 << 10, 13));

    // Writing a monolithic blob (pwrite64), syncing it before its rename (fsync), the rename itself.
    for (syscall, when) in [("pwrite64", "1"), ("fsync", "1"), ("renameat2", "1")] {
        let a = with_eio(&c, pid, syscall, when, |c| c.mono("eio/a", &layer));
        assert_refused(&a, 503, "I/O error", &format!("a monolithic push with EIO on {syscall}"));
        assert_eq!(c.head(&format!("/v2/eio/a/blobs/{}", sha256(&layer))), 404, "after EIO on {syscall}");
        assert!(!blob_file(&dir, &sha256(&layer)).exists(), "EIO on {syscall} left the blob under blobs/");
        assert!(upload_files(&dir).is_empty(), "EIO on {syscall} left {:?}", upload_files(&dir));
        assert_eq!(c.get("/healthz").status, 200, "the server went down after EIO on {syscall}");
    }
    assert_eq!(c.mono("eio/a", &layer).status, 201, "the next push after the I/O errors");

    // A chunk whose write fails (a PATCH's 202 does not wait for a sync): 503, and the session continues from
    // what it recorded.
    let started = c.start("eio/a");
    let loc = started.location.unwrap();
    assert_eq!(c.patch(&loc, 0, &chunked[..100 << 10]).status, 202);
    let a = with_eio(&c, pid, "pwrite64", "1", |c| c.patch(&loc, 100 << 10, &chunked[100 << 10..]));
    assert_refused(&a, 503, "I/O error", "a chunk with EIO on its write");
    assert_eq!(c.get(&loc).range.as_deref(), Some("0-102399"), "the session after EIO on its write");
    assert_eq!(c.patch(&loc, 100 << 10, &chunked[100 << 10..]).status, 202);
    assert_eq!(c.finish(&loc, &sha256(&chunked)).status, 201);

    // The database's write-ahead log: a write (SQLITE_IOERR_WRITE) or its sync (SQLITE_IOERR_FSYNC) fails.
    assert_eq!(c.mono("eio/a", &config).status, 201);
    let m = store::manifest(&config, &[&layer, &chunked]);
    for (syscall, when) in [("pwrite64", "1"), ("fsync", "1")] {
        let a = with_eio(&c, pid, syscall, when, |c| c.put_manifest("eio/a", "v1", &m));
        assert_refused(&a, 503, "I/O error", &format!("a manifest with EIO on {syscall}"));
        assert_eq!(c.get("/healthz").status, 200);
    }
    // The writer connection is not poisoned: the next write and read succeed without a restart.
    std::thread::sleep(Duration::from_millis(50));
    let a = c.put_manifest("eio/a", "v1", &m);
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(c.pull("eio/a", "v1").unwrap(), sha256(m.as_bytes()));
    store::assert_rows_have_bytes(&dir, "after I/O errors");
    store::assert_blob_files_match(&dir, "after I/O errors");
    store::assert_check_clean(&dir, &env, "after I/O errors");
}
