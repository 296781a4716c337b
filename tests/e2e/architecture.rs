//! ARCHITECTURE.md's claims, checked: every fenced block tagged `check` in that file holds one claim per line, in a
//! small language this module runs, so that a claim the code stops honouring fails CI.
//!
//! - `deps CRATE: A B ...`: the Wharf crates CRATE depends on (normal dependencies, optional ones included) are
//!   exactly A, B, ... (an empty list: none).
//! - `exists PATH ...`: each path exists.
//! - `absent "TEXT" in PATH ...`: no Rust file under the paths has TEXT outside its `#[cfg(test)]` tail.
//! - `once "TEXT" in PATH ...`: exactly one line of the Rust files under the paths has TEXT (outside tests).
//! - `lines N in PATH ...`: no Rust file under the paths has more than N lines.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

/// The `check` blocks' lines, with their line numbers in ARCHITECTURE.md.
fn claims(doc: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for (i, line) in doc.lines().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            inside = !inside && t == "```check";
            continue;
        }
        if inside && !t.is_empty() && !t.starts_with('#') {
            out.push((i + 1, t.to_owned()));
        }
    }
    out
}

/// The Rust files under `path` (a file or a folder), skipping build output and fuzz corpora.
fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_path_buf());
        }
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !matches!(name, "target" | "corpus" | "artifacts" | ".git") {
            rust_files(&p, out);
        }
    }
}

/// A file's lines before its inline `#[cfg(test)] mod ... {` (tests may do what the code may not); a
/// `#[cfg(test)]` on anything else (a `mod x;` line, one item) does not end the code.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let lines: Vec<&str> = text.lines().collect();
    let end = (0..lines.len())
        .find(|&i| {
            let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
            lines[i].trim() == "#[cfg(test)]" && next.starts_with("mod ") && next.ends_with('{')
        })
        .unwrap_or(lines.len());
    lines.into_iter().take(end).enumerate().map(|(i, l)| (i + 1, l))
}

/// Splits `"TEXT" in PATH ...` into the text and the paths.
fn quoted_in(rest: &str) -> Result<(String, Vec<PathBuf>), String> {
    let rest = rest.strip_prefix('"').ok_or("expected a quoted text")?;
    let end = rest.find('"').ok_or("unterminated text")?;
    let (text, tail) = (&rest[..end], rest[end + 1..].trim());
    let paths = tail.strip_prefix("in ").ok_or("expected `in PATH ...`")?;
    Ok((text.to_owned(), paths.split_whitespace().map(|p| root().join(p)).collect()))
}

fn files_under(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(format!("{} does not exist", p.display()));
        }
        rust_files(p, &mut files);
    }
    Ok(files)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The workspace's crates: package name -> manifest folder.
fn crates() -> Vec<(String, PathBuf)> {
    let ws: toml::Table = read(&root().join("Cargo.toml")).and_then(|t| t.parse().map_err(|e| format!("{e}"))).unwrap();
    let members = ws["workspace"]["members"].as_array().expect("members");
    members
        .iter()
        .filter_map(|m| m.as_str())
        .map(|m| {
            let dir = root().join(m);
            let manifest: toml::Table = read(&dir.join("Cargo.toml")).unwrap().parse().unwrap();
            (manifest["package"]["name"].as_str().unwrap().to_owned(), dir)
        })
        .collect()
}

fn check_deps(rest: &str) -> Result<(), String> {
    let (name, want) = rest.split_once(':').ok_or("expected `deps CRATE: A B ...`")?;
    let all = crates();
    let dir = &all.iter().find(|(n, _)| n == name.trim()).ok_or(format!("no crate {name}"))?.1;
    let manifest: toml::Table = read(&dir.join("Cargo.toml"))?.parse().map_err(|e| format!("{e}"))?;
    let deps = manifest.get("dependencies").and_then(|d| d.as_table()).cloned().unwrap_or_default();
    let mut have: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).filter(|n| deps.contains_key(*n)).collect();
    let mut want: Vec<&str> = want.split_whitespace().collect();
    have.sort();
    want.sort();
    if have == want {
        Ok(())
    } else {
        Err(format!("{name} depends on {have:?}, the document says {want:?}"))
    }
}

fn check_text(rest: &str, once: bool) -> Result<(), String> {
    let (text, paths) = quoted_in(rest)?;
    let mut hits = Vec::new();
    for f in files_under(&paths)? {
        let body = read(&f)?;
        for (n, line) in code_lines(&body).filter(|(_, l)| l.contains(&text)) {
            hits.push(format!("{}:{n}: {}", f.strip_prefix(root()).unwrap_or(&f).display(), line.trim()));
        }
    }
    match (once, hits.len()) {
        (false, 0) | (true, 1) => Ok(()),
        (false, _) => Err(format!("{text:?} found:\n  {}", hits.join("\n  "))),
        (true, n) => Err(format!("{text:?} found {n} times, the document says once:\n  {}", hits.join("\n  "))),
    }
}

fn check_lines(rest: &str) -> Result<(), String> {
    let (n, paths) = rest.split_once(" in ").ok_or("expected `lines N in PATH ...`")?;
    let max: usize = n.trim().parse().map_err(|_| "expected a number of lines")?;
    let paths: Vec<PathBuf> = paths.split_whitespace().map(|p| root().join(p)).collect();
    let long: Vec<String> = files_under(&paths)?
        .into_iter()
        .filter_map(|f| {
            let count = read(&f).ok()?.lines().count();
            (count > max).then(|| format!("{} ({count} lines)", f.strip_prefix(root()).unwrap_or(&f).display()))
        })
        .collect();
    if long.is_empty() {
        Ok(())
    } else {
        Err(format!("over {max} lines: {}", long.join(", ")))
    }
}

fn check(claim: &str) -> Result<(), String> {
    let (verb, rest) = claim.split_once(' ').unwrap_or((claim, ""));
    let rest = rest.trim();
    match verb {
        "deps" => check_deps(rest),
        "exists" => match rest.split_whitespace().find(|p| !root().join(p).exists()) {
            Some(p) => Err(format!("{p} does not exist")),
            None => Ok(()),
        },
        "absent" => check_text(rest, false),
        "once" => check_text(rest, true),
        "lines" => check_lines(rest),
        other => Err(format!("unknown check `{other}`")),
    }
}

#[test]
fn every_claim_of_architecture_md_holds() {
    let doc = read(&root().join("ARCHITECTURE.md")).unwrap();
    let claims = claims(&doc);
    assert!(claims.len() >= 10, "ARCHITECTURE.md has only {} checked claims", claims.len());
    let failed: Vec<String> =
        claims.iter().filter_map(|(n, c)| check(c).err().map(|e| format!("line {n}: `{c}`: {e}"))).collect();
    assert!(failed.is_empty(), "ARCHITECTURE.md claims that no longer hold:\n{}", failed.join("\n"));
}

#[test]
fn the_checks_can_fail() {
    // Each kind of check refuses a claim that is false, so a check that passes means something.
    assert!(check("deps wharf-format: wharf-client").is_err());
    assert!(check("exists no/such/path").is_err());
    assert!(check("absent \"fn\" in client/format/src").is_err());
    assert!(check("once \"fn\" in client/format/src").is_err());
    assert!(check("lines 1 in client/format/src").is_err());
    assert!(check("frobnicate x").is_err());
    // Code after a `#[cfg(test)] mod x;` line still counts; an inline test module's does not.
    let text = "#[cfg(test)]\nmod sim;\npub struct A;\n#[cfg(test)]\nmod tests {\n    struct B;\n}\n";
    let seen: Vec<&str> = code_lines(text).map(|(_, l)| l).collect();
    assert!(seen.contains(&"pub struct A;") && !seen.iter().any(|l| l.contains("struct B")), "{seen:?}");
}
