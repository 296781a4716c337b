//! Replays every fuzz target's corpus (`tests/fuzz/corpus/<target>/`) and past crashes
//! (`tests/fuzz/artifacts/<target>/`) through the same harness functions the libFuzzer binaries run, on the stable
//! compiler: a parser that regresses on an input the fuzzer once found fails here. Fuzzing itself is
//! `tests/fuzz/run`.

#[path = "../fuzz/harness/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.map(|e| e.expect("a directory entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn corpus_and_crashes_replay() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    for (name, target) in harness::TARGETS {
        let corpus = inputs(&fuzz.join("corpus").join(name));
        assert!(!corpus.is_empty(), "tests/fuzz/corpus/{name} is missing or empty: every target needs seeds");
        for file in corpus.iter().chain(&inputs(&fuzz.join("artifacts").join(name))) {
            let data = std::fs::read(file).expect("a corpus file reads");
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "fuzz inputs that fail their target: {failures:#?}");
}

#[test]
fn every_target_has_a_binary() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, _) in harness::TARGETS {
        let bin = fuzz.join("fuzz_targets").join(format!("{name}.rs"));
        assert!(bin.is_file(), "{} is missing", bin.display());
    }
}

/// The seeds of the stateful targets pass the signature and hash checks (in their re-signing modes), so fuzzing
/// starts from inputs that reach the rules behind them.
#[test]
fn seeds_reach_past_the_signatures() {
    let seed = |target: &str, name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target).join(format!("seed-{name}"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    assert_eq!(harness::tuf::trusted_reach(&seed("tuf_trusted", "chain")), 4);
    assert_eq!(harness::tuf::trusted_reach(&seed("tuf_trusted", "chain-strict")), 4);
    assert_eq!(harness::tuf::trusted_reach(&seed("tuf_trusted", "root-then-chain")), 4);
    assert_eq!(harness::notary::trusted_reach(&seed("notary_trusted", "chain")), 4);
    assert!(harness::notary::upload_accepted(&seed("notary_upload", "targets")));
    assert!(harness::token::jwt_accepted(&seed("jwt", "local")));
    assert!(harness::token::jwt_accepted(&seed("jwt", "external")));
}
