//! The trust service. Its design is in `../shared/DESIGN.md`; it is built by issue 3 and is empty until then.
