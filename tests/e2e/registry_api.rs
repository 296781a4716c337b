//! The OCI Distribution API of a real `wharf serve`, endpoint by endpoint, with its refusals.

use crate::common;

use common::{data, sha256, Server};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

struct T {
    s: Server,
    c: Client,
}

impl T {
    fn new() -> T {
        T::with_env(&[])
    }

    fn with_env(env: &[(&str, &str)]) -> T {
        T { s: Server::start(env), c: Client::new() }
    }

    fn req(&self, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.c.request(m, self.s.url(path))
    }

    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        let r = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "push blob");
        d
    }

    async fn start_upload(&self, repo: &str) -> String {
        let r = self.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(header(&r, "range"), "0-0");
        header(&r, "location")
    }

    async fn put_manifest(&self, repo: &str, reference: &str, body: &Value) -> Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", body["mediaType"].as_str().unwrap_or(OCI_MANIFEST))
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap()
    }

    async fn status(&self, m: Method, path: &str) -> StatusCode {
        self.req(m, path).send().await.unwrap().status()
    }

    /// Pushes a config and a layer and returns an image manifest naming them.
    async fn image(&self, repo: &str, seed: u8) -> Value {
        let config = format!("{{\"seed\":{seed}}}").into_bytes();
        let layer = data(1000 + seed as usize, seed);
        let cd = self.push_blob(repo, &config).await;
        let ld = self.push_blob(repo, &layer).await;
        json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": layer.len()}]
        })
    }
}

fn header(r: &Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

async fn code(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let v: Value = r.json().await.expect("error body is JSON");
    (status, v["errors"][0]["code"].as_str().expect("errors[0].code").to_string())
}

#[tokio::test]
async fn base_endpoint_announces_api_version() {
    let t = T::new();
    let r = t.req(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "docker-distribution-api-version"), "registry/2.0");
}

#[tokio::test]
async fn blob_monolithic_get_head_range_delete() {
    let t = T::new();
    let bytes = data(100_000, 1);
    let d = t.push_blob("lib/a", &bytes).await;
    let r = t.req(Method::HEAD, &format!("/v2/lib/a/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), "100000");
    assert_eq!(header(&r, "docker-content-digest"), d);
    let body = t.req(Method::GET, &format!("/v2/lib/a/blobs/{d}")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], &bytes[..]);
    let r = t.req(Method::GET, &format!("/v2/lib/a/blobs/{d}")).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&r, "content-range"), "bytes 10-19/100000");
    assert_eq!(&r.bytes().await.unwrap()[..], &bytes[10..20]);
    let r = t.req(Method::GET, &format!("/v2/lib/a/blobs/{d}")).header("range", "bytes=200000-").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Another repository cannot see it.
    let (s, c) = code(t.req(Method::GET, &format!("/v2/lib/b/blobs/{d}")).send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"));
    assert_eq!(t.status(Method::DELETE, &format!("/v2/lib/a/blobs/{d}")).await, StatusCode::ACCEPTED);
    assert_eq!(t.status(Method::HEAD, &format!("/v2/lib/a/blobs/{d}")).await, StatusCode::NOT_FOUND);
    assert_eq!(t.status(Method::DELETE, &format!("/v2/lib/a/blobs/{d}")).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn post_then_put_and_chunked_patch_with_status() {
    let t = T::new();
    let bytes = data(50_000, 2);
    let d = sha256(&bytes);
    // POST then PUT with the whole body.
    let loc = t.start_upload("x").await;
    let r = t.c.put(t.s.url(&format!("{loc}?digest={d}"))).body(bytes.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/x/blobs/{d}"));
    // Chunked: three PATCHes in order, a status check, then PUT with no body.
    let loc = t.start_upload("y").await;
    let mut off = 0;
    for chunk in bytes.chunks(20_000) {
        let end = off + chunk.len() - 1;
        let r =
            t.c.patch(t.s.url(&loc))
                .header("content-range", format!("{off}-{end}"))
                .body(chunk.to_vec())
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(header(&r, "range"), format!("0-{end}"));
        off = end + 1;
    }
    let r = t.c.get(t.s.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range"), "0-49999");
    assert_eq!(t.c.put(t.s.url(&format!("{loc}?digest={d}"))).send().await.unwrap().status(), StatusCode::CREATED);
    let got = t.c.get(t.s.url(&format!("/v2/y/blobs/{d}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256(&got), d);
    // The finished session is gone.
    let (s, c) = code(t.c.get(t.s.url(&loc)).send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"));
}

#[tokio::test]
async fn chunk_out_of_order_is_416_and_the_session_survives() {
    let t = T::new();
    let loc = t.start_upload("z").await;
    let r = t.c.patch(t.s.url(&loc)).header("content-range", "0-4").body("hello").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = t.c.patch(t.s.url(&loc)).header("content-range", "10-14").body("world").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "range"), "0-4");
    let r = t.c.patch(t.s.url(&loc)).header("content-range", "5-9").body("world").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let d = sha256(b"helloworld");
    assert_eq!(t.c.put(t.s.url(&format!("{loc}?digest={d}"))).send().await.unwrap().status(), StatusCode::CREATED);
}

#[tokio::test]
async fn wrong_digest_on_final_put_leaves_nothing_visible() {
    let t = T::new();
    let loc = t.start_upload("w").await;
    let wrong = sha256(b"something else");
    let r = t.c.put(t.s.url(&format!("{loc}?digest={wrong}"))).body("actual bytes").send().await.unwrap();
    let (s, c) = code(r).await;
    assert_eq!((s, c.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    assert_eq!(t.status(Method::HEAD, &format!("/v2/w/blobs/{wrong}")).await, StatusCode::NOT_FOUND);
    let right = sha256(b"actual bytes");
    assert_eq!(t.status(Method::HEAD, &format!("/v2/w/blobs/{right}")).await, StatusCode::NOT_FOUND);
    assert!(t.s.stored_blobs().is_empty(), "no blob file may exist: {:?}", t.s.stored_blobs());
    // Malformed and missing digests.
    let loc = t.start_upload("w").await;
    let (s, c) = code(t.c.put(t.s.url(&format!("{loc}?digest=sha256:xyz"))).send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    let (s, c) = code(t.c.put(t.s.url(&loc)).send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    let (s, c) = code(t.req(Method::GET, "/v2/w/blobs/sha256:1234").send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
}

#[tokio::test]
async fn sha512_blobs() {
    let t = T::new();
    let bytes = data(3000, 9);
    use sha2::Digest as _;
    let d = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&bytes)));
    let r = t.req(Method::POST, &format!("/v2/s/blobs/uploads/?digest={d}")).body(bytes.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = t.req(Method::GET, &format!("/v2/s/blobs/{d}")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], &bytes[..]);
}

#[tokio::test]
async fn blob_over_the_maximum_size_is_refused_and_nothing_is_stored() {
    let t = T::with_env(&[("WHARF_MAX_BLOB_SIZE", "1000")]);
    let big = data(2000, 3);
    let d = sha256(&big);
    let (s, c) =
        code(t.req(Method::POST, &format!("/v2/m/blobs/uploads/?digest={d}")).body(big.clone()).send().await.unwrap())
            .await;
    assert_eq!((s, c.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"));
    // Chunked: the chunk that crosses the limit ends the session.
    let loc = t.start_upload("m").await;
    let r = t.c.patch(t.s.url(&loc)).body(big[..600].to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = t.c.patch(t.s.url(&loc)).body(big[600..].to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(t.c.get(t.s.url(&loc)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(t.status(Method::HEAD, &format!("/v2/m/blobs/{d}")).await, StatusCode::NOT_FOUND);
    assert!(t.s.stored_blobs().is_empty());
    let small = data(1000, 4);
    t.push_blob("m", &small).await;
}

#[tokio::test]
async fn cancel_upload() {
    let t = T::new();
    let loc = t.start_upload("c").await;
    t.c.patch(t.s.url(&loc)).body("abc").send().await.unwrap();
    assert_eq!(t.c.delete(t.s.url(&loc)).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(t.c.get(t.s.url(&loc)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(t.c.delete(t.s.url(&loc)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cross_repository_mount_and_fallback() {
    let t = T::new();
    let d = t.push_blob("src/repo", b"mount me").await;
    let r = t.req(Method::POST, &format!("/v2/dst/blobs/uploads/?mount={d}&from=src/repo")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/dst/blobs/{d}"));
    assert_eq!(t.status(Method::HEAD, &format!("/v2/dst/blobs/{d}")).await, StatusCode::OK);
    // Not visible in the source: an ordinary upload session instead.
    let r = t.req(Method::POST, &format!("/v2/dst2/blobs/uploads/?mount={d}&from=elsewhere")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(header(&r, "location").starts_with("/v2/dst2/blobs/uploads/"));
    assert_eq!(t.status(Method::HEAD, &format!("/v2/dst2/blobs/{d}")).await, StatusCode::NOT_FOUND);
    // Mount without `from`: an ordinary upload session (202), never an error.
    let r = t.req(Method::POST, &format!("/v2/dst3/blobs/uploads/?mount={d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(header(&r, "location").starts_with("/v2/dst3/blobs/uploads/"));
}

#[tokio::test]
async fn manifests_by_tag_and_digest() {
    let t = T::new();
    let m = t.image("app", 1).await;
    let body = serde_json::to_vec(&m).unwrap();
    let d = sha256(&body);
    let r = t.put_manifest("app", "v1", &m).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "docker-content-digest"), d);
    assert_eq!(header(&r, "location"), format!("/v2/app/manifests/{d}"));
    for reference in ["v1", d.as_str()] {
        let r = t
            .req(Method::GET, &format!("/v2/app/manifests/{reference}"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&r, "docker-content-digest"), d);
        assert_eq!(&r.bytes().await.unwrap()[..], &body[..]);
        let r = t.req(Method::HEAD, &format!("/v2/app/manifests/{reference}")).send().await.unwrap();
        assert_eq!(header(&r, "content-length"), body.len().to_string());
    }
    // Accept negotiation: a client that only takes Docker manifest lists does not get an OCI manifest.
    let r = t
        .req(Method::GET, "/v2/app/manifests/v1")
        .header("accept", "application/vnd.docker.distribution.manifest.list.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await.1, "MANIFEST_UNKNOWN");
    // PUT by digest must match the body.
    let r = t.put_manifest("app", &sha256(b"other"), &m).await;
    assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
    assert_eq!(t.put_manifest("app", &d, &m).await.status(), StatusCode::CREATED);
    // Deleting a tag removes only the tag.
    t.put_manifest("app", "v2", &m).await;
    assert_eq!(t.status(Method::DELETE, "/v2/app/manifests/v1").await, StatusCode::ACCEPTED);
    assert_eq!(t.status(Method::GET, "/v2/app/manifests/v1").await, StatusCode::NOT_FOUND);
    assert_eq!(t.status(Method::GET, &format!("/v2/app/manifests/{d}")).await, StatusCode::OK);
    assert_eq!(t.status(Method::GET, "/v2/app/manifests/v2").await, StatusCode::OK);
    // Deleting by digest removes the manifest and its tags.
    assert_eq!(t.status(Method::DELETE, &format!("/v2/app/manifests/{d}")).await, StatusCode::ACCEPTED);
    assert_eq!(t.status(Method::GET, "/v2/app/manifests/v2").await, StatusCode::NOT_FOUND);
    let (s, c) = code(t.req(Method::GET, &format!("/v2/app/manifests/{d}")).send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"));
}

#[tokio::test]
async fn manifest_refusals() {
    let t = T::new();
    let put_raw = |body: Vec<u8>, ct: &str| {
        t.req(Method::PUT, "/v2/bad/manifests/t").header("content-type", ct.to_string()).body(body).send()
    };
    let (s, c) = code(put_raw(b"{not json".to_vec(), OCI_MANIFEST).await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"));
    let unknown = json!({"schemaVersion": 2, "mediaType": "application/x-unknown", "layers": []});
    let (s, c) = code(put_raw(serde_json::to_vec(&unknown).unwrap(), "application/x-unknown").await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"));
    let mut m = t.image("bad", 5).await;
    m["layers"][0]["digest"] = json!(sha256(b"never pushed"));
    let r = t.put_manifest("bad", "t", &m).await;
    let v: Value = {
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        r.json().await.unwrap()
    };
    assert_eq!(v["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(v["errors"][0]["detail"]["missing"][0], json!(sha256(b"never pushed")));
    // An index whose child manifest is not in the repository.
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"nope"), "size": 4}]});
    assert_eq!(code(t.put_manifest("bad", "i", &index).await).await.1, "MANIFEST_BLOB_UNKNOWN");
    // A reference that is neither a tag nor a digest: unknown to GET and HEAD (as the distribution-spec
    // conformance suite v1.1.1 expects), an invalid tag to PUT.
    let (s, c) = code(t.req(Method::GET, "/v2/bad/manifests/.INVALID_MANIFEST_NAME").send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"));
    assert_eq!(t.status(Method::HEAD, "/v2/bad/manifests/.INVALID_MANIFEST_NAME").await, StatusCode::NOT_FOUND);
    let bad_tag = t.req(Method::PUT, "/v2/bad/manifests/.INVALID_MANIFEST_NAME");
    let body = serde_json::to_vec(&m).unwrap();
    let (s, c) = code(bad_tag.header("content-type", OCI_MANIFEST).body(body).send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::BAD_REQUEST, "TAG_INVALID"));
    // Over 4 MiB: refused from the declared length, before the body is read.
    let head = format!("PUT /v2/bad/manifests/t HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\n\r\n", 4 * 1024 * 1024 + 1);
    let answer = common::raw(&t.s.addr, head.as_bytes(), std::time::Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("SIZE_INVALID"), "{answer}");
    // Over 4 MiB without a declared length (chunked): refused once the limit is crossed.
    let mut chunked = format!("PUT /v2/bad/manifests/t HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
    for _ in 0..5 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 1 << 20));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = common::raw(&t.s.addr, &chunked, std::time::Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("SIZE_INVALID"), "{answer}");
    assert_eq!(t.status(Method::GET, "/v2/bad/manifests/t").await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn index_with_children() {
    let t = T::new();
    let mut children = Vec::new();
    for seed in [1u8, 2] {
        let m = t.image("multi", seed).await;
        let body = serde_json::to_vec(&m).unwrap();
        let d = sha256(&body);
        assert_eq!(t.put_manifest("multi", &d, &m).await.status(), StatusCode::CREATED);
        children.push(json!({"mediaType": OCI_MANIFEST, "digest": d, "size": body.len()}));
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children});
    assert_eq!(t.put_manifest("multi", "latest", &index).await.status(), StatusCode::CREATED);
    let r = t.req(Method::GET, "/v2/multi/manifests/latest").header("accept", OCI_INDEX).send().await.unwrap();
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
}

#[tokio::test]
async fn invalid_names() {
    let t = T::new();
    let long = "a".repeat(256);
    for name in ["Upper", "a//b", "-lead", "trail-", "a%2Fb", &long] {
        let r = t.req(Method::GET, &format!("/v2/{name}/tags/list")).send().await.unwrap();
        assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "NAME_INVALID".into()), "{name}");
    }
    // Dot segments, sent raw because HTTP client libraries normalise them away.
    for name in ["a/../b", "a/./b", ".."] {
        let answer = common::raw(
            &t.s.addr,
            format!("GET /v2/{name}/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            std::time::Duration::from_secs(5),
        );
        assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("NAME_INVALID"), "{name}: {answer}");
    }
    // A leading separator: `/v2//x` names an empty first component.
    let r = t.req(Method::GET, "/v2//x/tags/list").send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "NAME_INVALID".into()));
    let ok = "a".repeat(255);
    assert_eq!(t.status(Method::GET, &format!("/v2/{ok}/tags/list")).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tag_list_and_catalog_pagination() {
    let t = T::new();
    let m = t.image("pg", 1).await;
    for tag in ["c", "a", "e", "b", "d"] {
        assert_eq!(t.put_manifest("pg", tag, &m).await.status(), StatusCode::CREATED);
    }
    let r = t.req(Method::GET, "/v2/pg/tags/list").send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"name": "pg", "tags": ["a", "b", "c", "d", "e"]}));
    let r = t.req(Method::GET, "/v2/pg/tags/list?n=2").send().await.unwrap();
    assert_eq!(header(&r, "link"), "</v2/pg/tags/list?last=b&n=2>; rel=\"next\"");
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["a", "b"]));
    let r = t.req(Method::GET, "/v2/pg/tags/list?n=2&last=d").send().await.unwrap();
    assert_eq!(header(&r, "link"), "");
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["e"]));
    let r = t.req(Method::GET, "/v2/pg/tags/list?n=0").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!([]));
    let (s, c) = code(t.req(Method::GET, "/v2/pg/tags/list?n=x").send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID"));
    let (s, c) = code(t.req(Method::GET, "/v2/nothere/tags/list").send().await.unwrap()).await;
    assert_eq!((s, c.as_str()), (StatusCode::NOT_FOUND, "NAME_UNKNOWN"));
    t.push_blob("other/one", b"1").await;
    t.push_blob("other/two", b"2").await;
    let r = t.req(Method::GET, "/v2/_catalog?n=2").send().await.unwrap();
    assert_eq!(header(&r, "link"), "</v2/_catalog?last=other%2Ftwo&n=2>; rel=\"next\"");
    assert_eq!(r.json::<Value>().await.unwrap()["repositories"], json!(["other/one", "other/two"]));
    let r = t.req(Method::GET, "/v2/_catalog?last=other%2Ftwo").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["repositories"], json!(["pg"]));
}

#[tokio::test]
async fn referrers_and_subject() {
    let t = T::new();
    let subject = t.image("ref", 1).await;
    let sbody = serde_json::to_vec(&subject).unwrap();
    let sd = sha256(&sbody);
    t.put_manifest("ref", "v1", &subject).await;
    let empty = t.push_blob("ref", b"{}").await;
    let mut artifacts = Vec::new();
    for (i, at) in ["application/vnd.example.sig", "application/vnd.example.sbom"].iter().enumerate() {
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": at,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [], "annotations": {"n": i.to_string()},
            "subject": {"mediaType": OCI_MANIFEST, "digest": sd, "size": sbody.len()}});
        let d = sha256(&serde_json::to_vec(&m).unwrap());
        let r = t.put_manifest("ref", &d, &m).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(header(&r, "oci-subject"), sd);
        artifacts.push(d);
    }
    let r = t.req(Method::GET, &format!("/v2/ref/referrers/{sd}")).send().await.unwrap();
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
    assert_eq!(header(&r, "oci-filters-applied"), "");
    let v: Value = r.json().await.unwrap();
    let digests: Vec<&str> = v["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap()).collect();
    assert_eq!(digests.len(), 2);
    assert!(artifacts.iter().all(|a| digests.contains(&a.as_str())));
    assert_eq!(v["manifests"][0]["annotations"]["n"], "0");
    let r = t
        .req(Method::GET, &format!("/v2/ref/referrers/{sd}?artifactType=application/vnd.example.sbom"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["artifactType"], "application/vnd.example.sbom");
    // An unknown subject has an empty list, not an error.
    let r = t.req(Method::GET, &format!("/v2/ref/referrers/{}", sha256(b"x"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["manifests"], json!([]));
}
