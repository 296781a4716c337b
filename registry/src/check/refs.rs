//! The metadata's phases: every manifest's content hashes to its digest and its references resolve with the
//! sizes its descriptors give; every tag points at a manifest; every repository's trust data verifies.

use std::collections::BTreeMap;

use wharf_format::{Digest, MediaType, ParsedManifest};
use wharf_storage::meta::CheckedManifest;

use super::report::{Kind, Problem};
use super::{CheckError, Run};

/// Rows per page.
const PAGE: u32 = 500;

impl Run<'_> {
    pub(super) async fn manifests(&mut self) -> Result<(), CheckError> {
        loop {
            let (repo, digest) = self.cur.after.split_once('@').unwrap_or(("", ""));
            let page = self.meta().check().manifests((repo, digest), PAGE).await?;
            if page.is_empty() {
                return Ok(());
            }
            for m in page {
                self.judge_manifest(&m).await?;
                self.progress(format!("{}@{}", m.repo, m.digest)).await?;
            }
        }
    }

    async fn judge_manifest(&mut self, m: &CheckedManifest) -> Result<(), CheckError> {
        self.cur.report.manifests_checked += 1;
        let check = self.meta().check();
        let mut found = Vec::new();
        if !m.digest.matches(&m.content) {
            let actual = Digest::sha256_of(&m.content);
            found.push(Problem::damage(Kind::DigestMismatch, format!("the stored manifest hashes to {actual}")));
        }
        // A mirror records a manifest's references before it has fetched them: absent there is not damage.
        let mirrored = self.checker.mirrors.as_ref().is_some_and(|mi| mi.route(&m.repo).is_some());
        let sizes = descriptor_sizes(m);
        for r in check.references(&m.repo, &m.digest).await? {
            match r.resolved {
                None if mirrored || self.cur.removed.contains(&r.digest.to_string()) => {}
                None => found.push(Problem::damage(
                    Kind::ManifestReferenceMissing,
                    format!("references {} {}, which the repository does not have", r.kind, r.digest),
                )),
                Some(size) if r.kind == "blob" && sizes.get(&r.digest).is_some_and(|s| *s != size) => {
                    found.push(Problem::damage(
                        Kind::SizeMismatch,
                        format!("its descriptor of {} says {} bytes; the blob has {size}", r.digest, sizes[&r.digest]),
                    ))
                }
                Some(_) => {}
            }
        }
        // Deleted while this run read it: its rows went with it, nothing to report.
        if found.is_empty() || !check.manifest_exists(&m.repo, &m.digest).await? {
            return Ok(());
        }
        for p in found {
            self.found(p.repository(&m.repo).digest(&m.digest));
        }
        Ok(())
    }

    pub(super) async fn tags(&mut self) -> Result<(), CheckError> {
        loop {
            let (repo, tag) = self.cur.after.split_once(':').unwrap_or(("", ""));
            let page = self.meta().check().tags((repo, tag), PAGE).await?;
            if page.is_empty() {
                return Ok(());
            }
            for t in page {
                self.cur.report.tags_checked += 1;
                if !t.manifest_present {
                    let detail = format!("points at {}, which the repository does not have", t.digest);
                    self.found(
                        Problem::damage(Kind::TagDangling, detail).repository(&t.repo).tag(&t.tag).digest(&t.digest),
                    );
                }
                self.progress(format!("{}:{}", t.repo, t.tag)).await?;
            }
        }
    }

    pub(super) async fn trust(&mut self) -> Result<(), CheckError> {
        loop {
            let page = self.meta().check().repositories(&self.cur.after, PAGE).await?;
            if page.is_empty() {
                return Ok(());
            }
            for repo in page {
                self.cur.report.repositories_checked += 1;
                for p in super::trust::check(self.meta(), &repo, self.now).await {
                    self.found(p);
                }
                self.progress(repo.to_string()).await?;
            }
        }
    }
}

/// The sizes the manifest's descriptors give its config, layers and children, by digest.
fn descriptor_sizes(m: &CheckedManifest) -> BTreeMap<Digest, u64> {
    let media_type: Option<MediaType> = m.media_type.parse().ok();
    let Ok(parsed) = ParsedManifest::parse(&m.content, media_type.as_ref()) else { return BTreeMap::new() };
    parsed.config.iter().chain(&parsed.layers).chain(&parsed.manifests).map(|d| (d.digest.clone(), d.size)).collect()
}
