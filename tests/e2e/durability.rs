//! A `201 Created` means the data survives a power cut: under strace, a blob PUT shows the upload's file synced
//! before its rename to the content address, and the blob's directory synced after the rename, all before the
//! response is written. A chunk's `202 Accepted` means only that its bytes were received: no sync of the upload's
//! file comes before it (the final `201` syncs them all).

use crate::common;

/// Starts a server under strace, tracing what matters for durability into a file; returns the server and the file.
fn traced(tmp: &std::path::Path) -> (common::Server, std::path::PathBuf) {
    let trace = tmp.join("trace");
    let trace_s = trace.to_str().unwrap().to_string();
    let wrapper = [
        "strace",
        "-f",
        "-y",
        "-s",
        "16",
        "-o",
        &trace_s,
        "-e",
        "trace=fsync,fdatasync,rename,renameat,renameat2,write,writev,sendto,sendmsg",
    ];
    (common::start_wrapped(&wrapper), trace)
}

/// The trace, once strace (which writes each line as the call returns) has had a moment to write it.
async fn read_trace(trace: &std::path::Path) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    std::fs::read_to_string(trace).unwrap()
}

fn is_sync(l: &str) -> bool {
    l.contains("fsync(") || l.contains("fdatasync(")
}

/// Checks what a `201` for `digest` promises: the upload's file synced, then renamed to the blob's address, then
/// the blob's directory synced, all before the `201` is written.
fn assert_committed_durably(text: &str, digest: &str) {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let pos =
        |pred: &dyn Fn(&str) -> bool, from: usize| lines.iter().skip(from).position(|l| pred(l)).map(|p| p + from);
    // With several threads traced, strace may split a call into `<unfinished ...>` and `<... resumed>` lines; the
    // rename counts from its first line and must succeed on its own line or on its thread's resumed line.
    let rename = pos(&|l: &str| l.contains("rename") && l.contains(hex), 0)
        .unwrap_or_else(|| panic!("no rename to the blob's address in:\n{text}"));
    let succeeded = lines[rename].contains("= 0")
        || lines[rename].ends_with("<unfinished ...>") && {
            let pid = lines[rename].split_whitespace().next().unwrap_or_default();
            let pid = format!("{pid} ");
            let resumed = pos(&|l: &str| l.starts_with(&pid) && l.contains("resumed>"), rename + 1);
            resumed.is_some_and(|r| lines[r].contains("rename") && lines[r].trim_end().ends_with("= 0"))
        };
    assert!(succeeded, "the rename to the blob's address failed:\n{text}");
    let file_sync = lines[..rename].iter().rposition(|l| is_sync(l) && l.contains("/uploads/") && l.contains("/data>"));
    assert!(file_sync.is_some(), "the upload file was not synced before the rename:\n{text}");
    let dir = format!("/blobs/sha256/{}>", &hex[..2]);
    let dir_sync = pos(&|l: &str| l.contains("fsync(") && l.contains(&dir), rename)
        .unwrap_or_else(|| panic!("the blob directory was not synced after the rename:\n{text}"));
    let answer = pos(&|l: &str| l.contains("HTTP/1.1 201"), 0).unwrap_or_else(|| panic!("no 201 in:\n{text}"));
    assert!(dir_sync < answer, "the directory sync came after the 201:\n{text}");
}

#[tokio::test]
async fn blob_put_syncs_file_then_renames_then_syncs_directory_before_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, trace) = traced(tmp.path());
    let body = common::data(300_000, 7);
    let digest = common::sha256(&body);
    let http = reqwest::Client::new();
    let r = http.post(s.url(&format!("/v2/durable/blobs/uploads/?digest={digest}"))).body(body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_committed_durably(&read_trace(&trace).await, &digest);
}

#[tokio::test]
async fn chunks_are_answered_unsynced_and_the_final_put_syncs_them_before_its_201() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, trace) = traced(tmp.path());
    let body = common::data(900_000, 9);
    let digest = common::sha256(&body);
    let http = reqwest::Client::new();
    let r = http.post(s.url("/v2/durable/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let mut loc = r.headers()["location"].to_str().unwrap().to_string();
    let id = loc.rsplit('/').next().unwrap().to_string();
    for (i, chunk) in body.chunks(300_000).enumerate() {
        let range = format!("{}-{}", i * 300_000, i * 300_000 + chunk.len() - 1);
        let r = http.patch(s.url(&loc)).header("content-range", range).body(chunk.to_vec()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
        loc = r.headers()["location"].to_str().unwrap().to_string();
    }
    let text = read_trace(&trace).await;
    let accepted = text.lines().filter(|l| l.contains("HTTP/1.1 202")).count();
    assert_eq!(accepted, 4, "the POST's and three PATCHes' 202s are traced:\n{text}");
    let data = format!("/uploads/{id}/data>");
    let synced: Vec<&str> = text.lines().filter(|l| is_sync(l) && l.contains(&data)).collect();
    assert!(synced.is_empty(), "a chunk's 202 waited for a sync of the upload's file: {synced:?}");
    let r = http.put(s.url(&format!("{loc}?digest={digest}"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let text = read_trace(&trace).await;
    assert!(text.lines().any(|l| is_sync(l) && l.contains(&data)), "the PUT synced the upload's file:\n{text}");
    assert_committed_durably(&text, &digest);
    let got = http.get(s.url(&format!("/v2/durable/blobs/{digest}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(common::sha256(&got), digest);
}
