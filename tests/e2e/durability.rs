//! A `201 Created` means the data survives a power cut: under strace, a blob PUT shows the upload's file synced
//! before its rename to the content address, and the blob's directory synced after the rename, all before the
//! response is written.

use crate::common;

#[tokio::test]
async fn blob_put_syncs_file_then_renames_then_syncs_directory_before_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
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
    let s = common::start_wrapped(&wrapper);
    let body = common::data(300_000, 7);
    let digest = common::sha256(&body);
    let http = reqwest::Client::new();
    let r = http.post(s.url(&format!("/v2/durable/blobs/uploads/?digest={digest}"))).body(body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let hex = digest.strip_prefix("sha256:").unwrap();
    // strace writes each line as the call returns; allow it a moment to reach the file.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&trace).unwrap();
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
    let file_sync = lines[..rename].iter().rposition(|l| {
        (l.contains("fsync(") || l.contains("fdatasync(")) && l.contains("/uploads/") && l.contains("/data>")
    });
    assert!(file_sync.is_some(), "the upload file was not synced before the rename:\n{text}");
    let dir = format!("/blobs/sha256/{}>", &hex[..2]);
    let dir_sync = pos(&|l: &str| l.contains("fsync(") && l.contains(&dir), rename)
        .unwrap_or_else(|| panic!("the blob directory was not synced after the rename:\n{text}"));
    let answer = pos(&|l: &str| l.contains("HTTP/1.1 201"), 0).unwrap_or_else(|| panic!("no 201 in:\n{text}"));
    assert!(dir_sync < answer, "the directory sync came after the 201:\n{text}");
}
