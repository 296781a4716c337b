//! Progress bars on a terminal (indicatif); nothing otherwise, so scripts and logs stay quiet.

use super::Global;
use crate::io::store::ContentStore;

/// A progress bar on stderr when it is a terminal; nothing otherwise (quiet in scripts and logs).
struct Bar(indicatif::ProgressBar);

impl crate::io::progress::Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

pub(super) fn bar(what: &str) -> crate::io::progress::ProgressSink {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    b.set_style(style.progress_chars("=> "));
    b.set_message(what.to_string());
    Some(std::sync::Arc::new(Bar(b)))
}

pub(super) fn store_with_bar(g: &Global, what: &str) -> std::io::Result<ContentStore> {
    let mut s = g.store()?;
    s.set_progress(bar(what));
    Ok(s)
}
