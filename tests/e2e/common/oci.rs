//! A small OCI client over HTTP for tests that push and pull many images: HEAD before upload as docker does,
//! cross-repository mounts, monolithic uploads, and pulls that verify every byte.

use std::time::Duration;

use serde_json::{json, Value};

use super::{sha256, Server};

pub struct Oci {
    http: reqwest::blocking::Client,
    base: String,
}

/// An image as pushed: its manifest's digest and its blobs (config first).
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub blobs: Vec<String>,
}

/// Why a push did not get its `201`.
#[derive(Debug)]
pub enum Refused {
    /// `MANIFEST_BLOB_UNKNOWN`: a blob went between its upload and the manifest.
    BlobUnknown,
}

impl Oci {
    pub fn new(s: &Server) -> Oci {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Oci { http, base: s.url("") }
    }

    /// A client that sends Basic credentials with every request (to a server with access control on).
    pub fn with_basic(s: &Server, user: &str, password: &str) -> Oci {
        use base64::Engine;
        let value = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("authorization", format!("Basic {value}").parse().unwrap());
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .unwrap();
        Oci { http, base: s.url("") }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads a blob unless the repository has it (HEAD), or mounts it from `from`; retries a `503`.
    pub fn ensure_blob(&self, repo: &str, blob: &[u8], from: Option<&str>) -> String {
        let d = sha256(blob);
        let head = self.http.head(self.url(&format!("/v2/{repo}/blobs/{d}"))).send().unwrap();
        if head.status() == 200 {
            return d;
        }
        if let Some(from) = from {
            let r =
                self.http.post(self.url(&format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}"))).send().unwrap();
            if r.status() == 201 {
                return d;
            }
            assert_eq!(r.status(), 202, "mount");
        }
        for _ in 0..20 {
            let r = self
                .http
                .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
                .body(blob.to_vec())
                .send()
                .unwrap();
            match r.status().as_u16() {
                201 => return d,
                503 => std::thread::sleep(Duration::from_millis(50)),
                other => panic!("upload of {d}: {other} {}", r.text().unwrap_or_default()),
            }
        }
        panic!("upload of {d} kept answering 503");
    }

    /// Pushes config and layers (concurrently), then the manifest under `tag`.
    pub fn push(
        &self,
        repo: &str,
        tag: &str,
        config: &[u8],
        layers: &[&[u8]],
        from: Option<&str>,
    ) -> Result<Pushed, Refused> {
        // Every blob at once, as docker does, so the manifest follows the first upload closely.
        let blobs: Vec<String> = std::thread::scope(|scope| {
            let config = scope.spawn(|| self.ensure_blob(repo, config, None));
            let layers: Vec<_> = layers.iter().map(|l| scope.spawn(move || self.ensure_blob(repo, l, from))).collect();
            std::iter::once(config).chain(layers).map(|h| h.join().expect("blob upload")).collect()
        });
        let sizes: Vec<usize> = std::iter::once(config.len()).chain(layers.iter().map(|l| l.len())).collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[0], "size": sizes[0] },
            "layers": blobs[1..].iter().zip(&sizes[1..]).map(|(d, n)| json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n
            })).collect::<Vec<_>>(),
        })
        .to_string();
        let r = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .unwrap();
        match r.status().as_u16() {
            201 => Ok(Pushed { digest: sha256(manifest.as_bytes()), blobs }),
            400 => {
                let body: Value = r.json().unwrap();
                assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN", "{body}");
                Err(Refused::BlobUnknown)
            }
            other => panic!("manifest PUT: {other} {}", r.text().unwrap_or_default()),
        }
    }

    /// Pulls `reference` completely: the manifest, then every blob, each checked against its digest. Returns the
    /// manifest's digest.
    pub fn pull(&self, repo: &str, reference: &str) -> Result<String, String> {
        let r = self
            .http
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        if r.status() != 200 {
            return Err(format!("manifest {repo}:{reference}: {}", r.status()));
        }
        let bytes = r.bytes().unwrap();
        let digest = sha256(&bytes);
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        let descs = std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap());
        for d in descs {
            let want = d["digest"].as_str().unwrap();
            let b = self.http.get(self.url(&format!("/v2/{repo}/blobs/{want}"))).send().unwrap();
            if b.status() != 200 {
                return Err(format!("blob {want} of {repo}:{reference}: {}", b.status()));
            }
            let got = sha256(&b.bytes().unwrap());
            if got != want {
                return Err(format!("blob {want} of {repo}:{reference} hashes to {got}"));
            }
        }
        Ok(digest)
    }

    /// PUT of a manifest as given (OCI image manifest); the status.
    pub fn put_manifest(&self, repo: &str, reference: &str, manifest: &Value) -> u16 {
        let r = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_string())
            .send()
            .unwrap();
        r.status().as_u16()
    }

    /// DELETE of a manifest (by digest) or a tag; the status.
    pub fn delete(&self, repo: &str, reference: &str) -> u16 {
        self.http.delete(self.url(&format!("/v2/{repo}/manifests/{reference}"))).send().unwrap().status().as_u16()
    }

    pub fn tags(&self, repo: &str) -> Vec<String> {
        let v: Value = self.http.get(self.url(&format!("/v2/{repo}/tags/list"))).send().unwrap().json().unwrap();
        let mut t: Vec<String> = v["tags"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        t.sort();
        t
    }
}
