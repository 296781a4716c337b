//! What the web interface's manifest page reads beyond the manifest itself: the tags pointing at it and its
//! referrers, each one bounded statement (a page never reads a repository's every tag or referrer).

use sqlx::Row;
use wharf_format::{Digest, MediaType, RepositoryName, Tag};

use super::{parse, Ui};
use crate::{Error, Result, UnixTime};

/// A referrer as the manifest page lists it: no content, its size instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerSummary {
    pub digest: Digest,
    pub media_type: MediaType,
    /// `artifactType`, or an image manifest's config media type (as the referrers API reports it).
    pub artifact_type: Option<MediaType>,
    /// The manifest's length in bytes.
    pub size: u64,
    pub created_at: UnixTime,
}

impl Ui<'_> {
    /// The tags of `repo` pointing at `digest`, by name, at most `limit` (with when each was last set), and
    /// whether more follow.
    pub async fn tags_of(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        limit: u32,
    ) -> Result<(Vec<(Tag, UnixTime)>, bool)> {
        let rows =
            sqlx::query("SELECT tag, updated_at FROM tags WHERE repository = $1 AND digest = $2 ORDER BY tag LIMIT $3")
                .bind(repo.as_str())
                .bind(digest.to_string())
                .bind(i64::from(limit) + 1)
                .fetch_all(self.0.reader())
                .await?;
        let more = rows.len() > limit as usize;
        let tags = rows
            .iter()
            .take(limit as usize)
            .map(|r| Ok((parse(r.try_get::<String, _>("tag")?)?, r.try_get::<i64, _>("updated_at")?)))
            .collect::<Result<Vec<_>>>()?;
        Ok((tags, more))
    }

    /// The manifests of `repo` whose subject is `subject`, oldest first, at most `limit`, and whether more follow.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        limit: u32,
    ) -> Result<(Vec<ReferrerSummary>, bool)> {
        let rows = sqlx::query(
            "SELECT digest, media_type, artifact_type, CAST(LENGTH(content) AS BIGINT) AS size, created_at \
             FROM manifests WHERE repository = $1 AND subject = $2 ORDER BY created_at, digest LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(i64::from(limit) + 1)
        .fetch_all(self.0.reader())
        .await?;
        let more = rows.len() > limit as usize;
        let found = rows
            .iter()
            .take(limit as usize)
            .map(|r| {
                let artifact_type: Option<String> = r.try_get("artifact_type")?;
                Ok(ReferrerSummary {
                    digest: parse(r.try_get::<String, _>("digest")?)?,
                    media_type: parse(r.try_get::<String, _>("media_type")?)?,
                    artifact_type: artifact_type.map(parse).transpose()?,
                    size: u64::try_from(r.try_get::<i64, _>("size")?)
                        .map_err(|_| Error::Corrupt("a manifest of negative length".into()))?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((found, more))
    }
}
