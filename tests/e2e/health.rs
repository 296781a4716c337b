//! `/healthz` (the process answers) and `/readyz` (the database and the object store answer), for load balancers
//! and Kubernetes; here on PostgreSQL, whose database the test takes away.

use crate::common;

use std::process::Command;

use common::{pg, Server};

#[test]
fn readiness_follows_the_database_and_liveness_does_not() {
    let url = pg::database();
    let s = Server::start(&[("WHARF_DATABASE_URL", &url), ("WHARF_TRUST_KEY_ENCRYPTION_KEY", "test-secret")]);
    let get = |path: &str| {
        let r = reqwest::blocking::get(s.url(path)).unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(get("/healthz"), (200, "ok\n".into()));
    assert_eq!(get("/readyz"), (200, "ready\n".into()));

    // Take the database away under the running server.
    let (base, name) = url.rsplit_once('/').unwrap();
    let out = Command::new("psql")
        .args([&format!("{base}/postgres"), "-qc", &format!("DROP DATABASE {name} WITH (FORCE)")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    assert_eq!(get("/healthz").0, 200, "alive though not ready");
}
