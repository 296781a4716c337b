//! The end-to-end tests: the real `wharf` binary driven over HTTP, by our client and by real third-party clients.
//! One test binary with a module per suite (as crates.io's `tests/all.rs`), so the program and its dependencies
//! are compiled into a test and linked once; `common/` holds the helpers every suite shares (starting the servers,
//! the real clients and the test images). `cargo test --test e2e -- SUITE::` runs one suite.
//!
//! The suites run in one process, in parallel: a test keeps its state in its own temp directories and servers on
//! port 0, never in the process's environment or working directory. Tests that start system-wide container engines
//! take [`common::engines`] first, so only one runs at a time.

mod common;

mod architecture;
mod auth;
mod auth_clients;
mod balancer;
mod client_e2e;
mod client_seams;
mod durability;
mod faults;
mod file_modes;
mod fuzz_replay;
mod gc;
mod health;
mod hostile;
mod image;
mod interop;
mod messages;
mod migrate;
mod mirror;
mod notary_v1;
mod notary_v1_uploads;
mod notation;
mod ops;
mod policy_client;
mod policy_mirror;
mod policy_registry;
mod redirect;
mod registry_api;
mod registry_faults;
mod replicas;
mod seams;
mod sigstore;
mod snapshots;
mod tls;
mod trust;
mod tuf_client;
mod ui;
mod unpack_umoci;
