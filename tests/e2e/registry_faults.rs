//! Faults against a real `wharf serve`: dropped connections, bodies that lie about their length, many clients
//! uploading one blob, SIGKILL mid-upload, graceful shutdown mid-transfer, idle sessions.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{data, raw, send_partial, sha256, Server};
use reqwest::{Client, StatusCode};

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

async fn start_upload(c: &Client, s: &Server, repo: &str) -> String {
    let r = c.post(s.url(&format!("/v2/{repo}/blobs/uploads/"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    header(&r, "location")
}

#[tokio::test]
async fn dropped_connection_mid_patch_resumes_and_shows_nothing_partial() {
    let s = Server::start(&[]);
    let c = Client::new();
    let bytes = data(300_000, 7);
    let d = sha256(&bytes);
    let loc = start_upload(&c, &s, "drop").await;
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    send_partial(&s.addr, &head, &bytes[..120_000]);
    let r = c.get(s.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let range = header(&r, "range");
    let have: usize = range.strip_prefix("0-").unwrap().parse::<usize>().unwrap() + 1;
    assert_eq!(have, 120_000, "every byte that arrived is kept");
    assert_eq!(c.head(s.url(&format!("/v2/drop/blobs/{d}"))).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    // Resume from the reported offset.
    let r = c
        .patch(s.url(&loc))
        .header("content-range", format!("{have}-{}", bytes.len() - 1))
        .body(bytes[have..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.put(s.url(&format!("{loc}?digest={d}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = c.get(s.url(&format!("/v2/drop/blobs/{d}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256(&got), d);

    // A monolithic upload cut off mid-body leaves nothing at all.
    let other = data(200_000, 8);
    let od = sha256(&other);
    let head = format!(
        "POST /v2/drop/blobs/uploads/?digest={od} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        other.len()
    );
    send_partial(&s.addr, &head, &other[..50_000]);
    assert_eq!(c.head(s.url(&format!("/v2/drop/blobs/{od}"))).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(s.stored_blobs().len(), 1, "{:?}", s.stored_blobs());
}

#[tokio::test]
async fn bodies_longer_or_shorter_than_declared() {
    let s = Server::start(&[]);
    let c = Client::new();
    // Longer: 20 bytes sent with Content-Length 10; the server reads 10 and the digest of 20 cannot match.
    let body = b"0123456789abcdefghij";
    let d = sha256(body);
    let mut req = format!(
        "POST /v2/len/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(body);
    let answer = raw(&s.addr, &req, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("DIGEST_INVALID"), "{answer}");
    assert_eq!(c.head(s.url(&format!("/v2/len/blobs/{d}"))).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    // Content-Range that disagrees with the body's length.
    let loc = start_upload(&c, &s, "len").await;
    let r = c.patch(s.url(&loc)).header("content-range", "0-99").body(vec![1u8; 50]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("BLOB_UPLOAD_INVALID"));
    // Shorter: Content-Length 100 with 40 bytes and the connection closed: nothing visible.
    let short = vec![2u8; 100];
    let sd = sha256(&short);
    let head = format!("POST /v2/len/blobs/uploads/?digest={sd} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
    send_partial(&s.addr, &head, &short[..40]);
    assert_eq!(c.head(s.url(&format!("/v2/len/blobs/{sd}"))).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert!(s.stored_blobs().is_empty());
}

#[tokio::test]
async fn many_clients_uploading_one_blob_store_one_copy() {
    let s = Server::start(&[]);
    let bytes = data(2_000_000, 11);
    let d = sha256(&bytes);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let url = s.url(&format!("/v2/same{}/blobs/uploads/?digest={d}", i % 4));
        let body = bytes.clone();
        tasks.push(tokio::spawn(async move { Client::new().post(url).body(body).send().await.unwrap().status() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    let stored = s.stored_blobs();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].1, 2_000_000);
    let got = Client::new().get(s.url(&format!("/v2/same3/blobs/{d}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256(&got), d);
}

#[tokio::test]
async fn sigkill_mid_upload_keeps_every_completed_object_and_nothing_half_visible() {
    let mut s = Server::start(&[]);
    let c = Client::new();
    let mut blobs = Vec::new();
    for seed in 0..3u8 {
        let b = data(500_000 + seed as usize, seed);
        let d = sha256(&b);
        let r = c.post(s.url(&format!("/v2/crash/blobs/uploads/?digest={d}"))).body(b).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        blobs.push(d);
    }
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[0], "size": 500_000},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blobs[1], "size": 500_001}]});
    let mbody = serde_json::to_vec(&manifest).unwrap();
    let r = c
        .put(s.url("/v2/crash/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(mbody.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // An upload in flight when the server dies: a session with bytes, and a request still streaming.
    let loc = start_upload(&c, &s, "crash").await;
    c.patch(s.url(&loc)).body(data(100_000, 40)).send().await.unwrap();
    let inflight = data(4_000_000, 41);
    let idg = sha256(&inflight);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    conn.write_all(
        format!(
            "POST /v2/crash/blobs/uploads/?digest={idg} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            inflight.len()
        )
        .as_bytes(),
    )
    .unwrap();
    conn.write_all(&inflight[..1_000_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.kill();
    drop(conn);

    s.restart();
    // A fresh client: pooled connections died with the old process.
    let c = Client::new();
    for d in &blobs {
        let got = c.get(s.url(&format!("/v2/crash/blobs/{d}"))).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(&sha256(&got), d);
    }
    let got = c.get(s.url("/v2/crash/manifests/v1")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], &mbody[..]);
    assert_eq!(c.head(s.url(&format!("/v2/crash/blobs/{idg}"))).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    // Sessions are rows in the database with their bytes in storage: the one the dead process held continues
    // where it was, and completes.
    let r = c.get(s.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range"), "0-99999");
    let mut whole = data(100_000, 40);
    let rest = data(50_000, 42);
    whole.extend_from_slice(&rest);
    let r = c.patch(s.url(&loc)).header("content-range", "100000-149999").body(rest).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = header(&r, "location");
    let dw = sha256(&whole);
    let r = c.put(s.url(&format!("{loc}?digest={dw}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = c.get(s.url(&format!("/v2/crash/blobs/{dw}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256(&got), dw);
    assert_eq!(s.stored_blobs().len(), 4, "{:?}", s.stored_blobs());
}

#[tokio::test]
async fn graceful_shutdown_lets_an_upload_in_flight_finish() {
    let mut s = Server::start(&[]);
    let bytes = data(3_000_000, 21);
    let d = sha256(&bytes);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    conn.write_all(format!("POST /v2/grace/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", bytes.len()).as_bytes()).unwrap();
    conn.write_all(&bytes[..1_000_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = s.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(&bytes[1_000_000..]).unwrap();
    let mut answer = String::new();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let status = s.terminate_wait();
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(&s.addr).is_err(), "no longer listening");
    // The blob survived into the next start.
    s.restart();
    let got = Client::new().get(s.url(&format!("/v2/grace/blobs/{d}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256(&got), d);
}

#[tokio::test]
async fn idle_sessions_expire_and_their_bytes_are_reclaimed() {
    let s = Server::start(&[("WHARF_UPLOAD_IDLE_TIMEOUT_SECS", "1")]);
    let c = Client::new();
    let loc = start_upload(&c, &s, "idle").await;
    assert_eq!(c.patch(s.url(&loc)).body(vec![0u8; 1000]).send().await.unwrap().status(), StatusCode::ACCEPTED);
    let id = loc.rsplit('/').next().unwrap().to_string();
    // On disk the staged bytes are files to look at; in S3 they are parts of a multipart upload that the expiry
    // aborts (the session's 404 is what this run can check).
    let staged = s.data_dir.join("store").join("uploads").join(&id);
    assert!(common::on_s3() || staged.exists(), "the session has bytes on disk");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(c.get(s.url(&loc)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let leftovers: Vec<_> = std::fs::read_dir(&staged).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
