//! The tag of a push made by digest first ([`super::PushOptions::defer_tag`]).

use super::{refused, PushError, PushOptions, Pushed};
use crate::io::transport::Transport;

/// Points `opts.image`'s tag at the manifest [`push`] uploaded by digest (with `defer_tag`).
pub async fn put_tag(opts: &PushOptions, pushed: &Pushed) -> Result<(), PushError> {
    let t = Transport::new(&opts.image.host, &opts.insecure)?;
    let repo = &opts.image.repository;
    t.want_scopes(&[format!("repository:{repo}:pull,push")]).await;
    let url = t.url(&format!("/v2/{repo}/manifests/{}", opts.image.reference));
    let resp = t
        .send(|| t.http().put(&url).header("content-type", pushed.media_type.as_str()).body(pushed.manifest.clone()))
        .await?;
    refused(resp, &format!("tag {}", opts.image.reference)).await
}
