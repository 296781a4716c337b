//! The web interface, end to end: pages over HTTP with access control on, and in a real browser (Debian's
//! chromium through chromium-driver), with axe-core's accessibility checks, the browser's console and performance
//! logs, and screenshots kept as artefacts. `docker search` against the v1 search API.

mod admin;
mod browser;
mod lists;
mod manifest;
mod pages;
mod search;
mod trust;
