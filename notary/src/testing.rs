//! What the validators' table tests share: the time they run at, and the row runner.

/// The time every fixture is checked at (2027), and a later expiry.
pub const NOW: i64 = 1_800_000_000;
pub const LATER: i64 = NOW + 365 * 86_400;

/// A row: what it breaks, the valid upload it starts from, the edit that breaks it, and the expected outcome:
/// `ok`, or the error's tag and words its message must contain.
pub type Row<C> = (&'static str, fn() -> C, fn(&mut C), &'static str);

/// Runs each row; `outcome` answers `ok` or `<tag> <message>` for a case.
pub fn table<C>(rows: &[Row<C>], outcome: impl Fn(&C) -> String) {
    for (name, base, edit, expect) in rows {
        let mut case = base();
        edit(&mut case);
        let got = outcome(&case);
        let (want_tag, want_words) = expect.split_once(' ').unwrap_or((expect, ""));
        let got_tag = got.split_once(' ').map_or(got.as_str(), |(t, _)| t);
        assert!(got_tag == want_tag && got.contains(want_words), "{name}: expected {expect:?}, got {got:?}");
    }
}
