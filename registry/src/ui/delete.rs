//! Deleting a tag or a manifest: a confirmation page (`GET`, which changes nothing), then a form post (with its
//! CSRF token, checked first) by a viewer who may delete in the repository.
//!
//! The delete itself is the API's (`manifest::remove`): the same signature-policy check, the same audit row (with
//! the viewer as actor) and webhook events in the delete's transaction, the same quota accounting. Afterwards the
//! browser goes (303) to the repository's page, whose `#flash` says what went (`?deleted=TAG` or `?deleted=DIGEST`:
//! a digest has a `:`, a tag never does).

use askama::Template;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use wharf_format::{Digest, Reference, RepositoryName, Tag};

use super::layout::{html, time, Chrome};
use super::manifest::MAX_TAGS;
use super::{field, form, path, query, Viewer};
use crate::error::{ApiError, Kind};
use crate::Registry;

#[derive(Template)]
#[template(path = "ui/delete.html")]
struct Page {
    chrome: Chrome,
    repo: String,
    repo_href: String,
    action: String,
    /// `tag` or `digest`: the hidden field's name.
    key: &'static str,
    value: String,
    /// The manifest the tag points at, or the manifest to delete.
    digest: String,
    manifest_href: String,
    /// Deleting a manifest: the tags that go with it (at most [`MAX_TAGS`]), and whether there are more.
    tags: Vec<(String, String)>,
    tags_more: bool,
}

/// What the form deletes.
enum Target {
    Tag(Tag),
    Manifest(Digest),
}

impl Target {
    /// Exactly one of the fields `tag` and `digest`, parsed.
    fn of(fields: &[(String, String)]) -> Result<Target, ApiError> {
        match (field(fields, "tag"), field(fields, "digest")) {
            (Some(t), None) => {
                t.parse().map(Target::Tag).map_err(|_| ApiError::new(Kind::TagInvalid, "the tag to delete is invalid"))
            }
            (None, Some(d)) => d
                .parse()
                .map(Target::Manifest)
                .map_err(|_| ApiError::new(Kind::DigestInvalid, "the digest to delete is invalid")),
            _ => Err(ApiError::new(Kind::RequestInvalid, "name either a tag or a digest to delete")),
        }
    }

    fn reference(&self) -> Reference {
        match self {
            Target::Tag(t) => Reference::Tag(t.clone()),
            Target::Manifest(d) => Reference::Digest(d.clone()),
        }
    }

    fn value(&self) -> String {
        match self {
            Target::Tag(t) => t.to_string(),
            Target::Manifest(d) => d.to_string(),
        }
    }
}

/// A repository the viewer may not pull is as missing as one that is not there; one they may pull but not delete
/// in refuses the delete.
fn allowed(viewer: &Viewer, repo: &RepositoryName) -> Result<(), ApiError> {
    if !viewer.may_pull(repo.as_str()) {
        return Err(ApiError::new(Kind::NameUnknown, format!("no repository {repo}")));
    }
    if !viewer.may_delete(repo.as_str()) {
        return Err(ApiError::new(Kind::Denied, format!("you may not delete in {repo}")));
    }
    Ok(())
}

/// The confirmation: what will go. Nothing changes.
pub async fn confirm(st: &Registry, viewer: &Viewer, repo: &RepositoryName, req: &Parts) -> Result<Response, ApiError> {
    allowed(viewer, repo)?;
    let target = Target::of(&query(req))?;
    // A delete the signature policy would refuse is refused here already, with its reason.
    crate::policy::gate::check_delete(st, repo, &target.reference())?;
    let unknown = || ApiError::new(Kind::ManifestUnknown, format!("{repo} has no {}", target.value()));
    let manifests = st.meta.manifests();
    let (digest, tags, tags_more) = match &target {
        Target::Tag(t) => (manifests.by_tag(repo, t).await?.ok_or_else(unknown)?.digest, Vec::new(), false),
        Target::Manifest(d) => {
            let record = manifests.by_digest(repo, d).await?.ok_or_else(unknown)?;
            let (tags, more) = st.meta.ui().tags_of(repo, d, MAX_TAGS).await?;
            (record.digest, tags.into_iter().map(|(t, at)| (t.to_string(), time(at))).collect(), more)
        }
    };
    let title = match &target {
        Target::Tag(t) => format!("Delete tag {t}"),
        Target::Manifest(_) => "Delete a manifest".to_owned(),
    };
    html(&Page {
        chrome: Chrome::new(viewer, title, req),
        repo: repo.to_string(),
        repo_href: path::repository(repo),
        action: path::delete(repo),
        key: match target {
            Target::Tag(_) => "tag",
            Target::Manifest(_) => "digest",
        },
        value: target.value(),
        manifest_href: path::manifest(repo, &digest),
        digest: digest.to_string(),
        tags,
        tags_more,
    })
}

/// The delete: the CSRF token first, then the right to delete, then the API's delete; 303 to the repository.
pub async fn submit(st: &Registry, viewer: &Viewer, repo: &RepositoryName, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let origin = crate::ops::origin::from_parts(&parts);
    let fields = form(Request::from_parts(parts, body)).await?;
    viewer.check_csrf(field(&fields, "csrf"))?;
    allowed(viewer, repo)?;
    let target = Target::of(&fields)?;
    crate::manifest::remove(st, repo, &target.reference(), &origin).await?;
    let done = url::form_urlencoded::Serializer::new(String::new()).append_pair("deleted", &target.value()).finish();
    Ok(Redirect::to(&format!("{}?{done}", path::repository(repo))).into_response())
}

/// The `#flash` line of a repository page the delete redirected to, from its `deleted` query field (only the
/// shape of a tag or a digest is believed: the message names it, nothing more).
pub fn flash(deleted: &str) -> Option<String> {
    if let Ok(d) = deleted.parse::<Digest>() {
        return Some(format!("Deleted manifest {d} and the tags that pointed at it."));
    }
    deleted.parse::<Tag>().ok().map(|t| format!("Deleted tag {t}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_form_names_exactly_one_valid_target() {
        let d = Digest::sha256_of(b"m").to_string();
        assert!(matches!(Target::of(&fields(&[("tag", "v1")])), Ok(Target::Tag(_))));
        assert!(matches!(Target::of(&fields(&[("digest", &d)])), Ok(Target::Manifest(_))));
        let rows: [(&[(&str, &str)], Kind); 5] = [
            (&[], Kind::RequestInvalid),
            (&[("tag", "v1"), ("digest", &d)], Kind::RequestInvalid),
            (&[("tag", "no/slash")], Kind::TagInvalid),
            (&[("tag", "")], Kind::TagInvalid),
            (&[("digest", "sha256:zz")], Kind::DigestInvalid),
        ];
        for (row, want) in rows {
            match Target::of(&fields(row)) {
                Err(e) => assert_eq!(e.kind, want, "{row:?}"),
                Ok(_) => panic!("{row:?} accepted"),
            }
        }
    }

    #[test]
    fn flash_names_only_a_tag_or_a_digest() {
        let d = Digest::sha256_of(b"m");
        assert_eq!(flash("v1").as_deref(), Some("Deleted tag v1."));
        assert_eq!(flash(&d.to_string()), Some(format!("Deleted manifest {d} and the tags that pointed at it.")));
        for bad in ["", "two words", "<script>", "a/b"] {
            assert_eq!(flash(bad), None, "{bad:?}");
        }
    }
}
