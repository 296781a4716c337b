//! A repository's trust data checked as the policy and the web interface verify it (`policy::tuf`,
//! `policy::notary`): the TUF chain from the first root to targets and every delegated role reachable from it, and
//! each Notary v1 collection naming the repository, at the check's time. A document that does not verify is
//! `trust_invalid`; an expired one `trust_expired`, naming the role and when.

use wharf_format::notary::Gun;
use wharf_format::RepositoryName;
use wharf_storage::Metadata;

use super::report::{Kind, Problem};
use crate::policy::notary::{self as nv, NotaryDocuments, MAX_COLLECTIONS};
use crate::policy::tuf::{self, TufDocuments};

/// The findings about `repo`'s trust data at `now` (empty: it verifies, or it has none).
pub async fn check(meta: &Metadata, repo: &RepositoryName, now: i64) -> Vec<Problem> {
    let docs = Docs { meta, repo };
    let mut out = Vec::new();
    let mut found = |label: String, p: crate::policy::Problem| out.push(finding(repo, &label, p, now));
    match tuf::open(&docs, now).await {
        Ok(None) => {}
        Ok(Some(mut v)) => {
            for ((role, delegator), p) in v.load_all(tuf::MAX_DELEGATIONS).await {
                found(format!("TUF role {role} (delegated by {delegator})"), p);
            }
        }
        Err(p) => found("TUF".into(), p),
    }
    match docs.guns().await {
        Err(why) => found("Notary v1".into(), crate::policy::Problem::Invalid(why)),
        Ok(guns) => {
            for gun in guns {
                match nv::open(&docs, &gun, now).await {
                    Ok(None) => {}
                    Ok(Some(mut c)) => {
                        for (role, p) in c.load_all(wharf_format::notary::MAX_VISITED).await {
                            found(format!("Notary v1 collection {gun}, role {role}"), p);
                        }
                    }
                    Err(p) => found(format!("Notary v1 collection {gun}"), p),
                }
            }
        }
    }
    out
}

fn finding(repo: &RepositoryName, label: &str, p: crate::policy::Problem, now: i64) -> Problem {
    match p {
        crate::policy::Problem::Expired { why, at } => {
            let when = chrono::DateTime::from_timestamp(at, 0).map_or(at.to_string(), |t| t.to_rfc3339());
            let ago = now.saturating_sub(at);
            Problem::damage(Kind::TrustExpired, format!("{label}: {why} (expired {when}, {ago} s ago)"))
                .repository(repo)
        }
        crate::policy::Problem::Invalid(why) => {
            Problem::damage(Kind::TrustInvalid, format!("{label}: {why}")).repository(repo)
        }
    }
}

/// The stored documents of one repository, read from the metadata alone (the check runs beside the server, not in
/// it).
struct Docs<'a> {
    meta: &'a Metadata,
    repo: &'a RepositoryName,
}

fn chain(e: &wharf_storage::Error) -> String {
    crate::error::chain(e)
}

impl TufDocuments for Docs<'_> {
    async fn latest(&self, role: &str) -> Result<Option<Vec<u8>>, String> {
        let role: wharf_format::tuf::RoleName = role.parse().map_err(|_| format!("{role:?} is not a role name"))?;
        Ok(self.meta.trust().latest(self.repo, &role).await.map_err(|e| chain(&e))?.map(|r| r.content))
    }

    async fn version(&self, role: &str, version: u64) -> Result<Option<Vec<u8>>, String> {
        let role: wharf_format::tuf::RoleName = role.parse().map_err(|_| format!("{role:?} is not a role name"))?;
        Ok(self.meta.trust().version(self.repo, &role, version).await.map_err(|e| chain(&e))?.map(|r| r.content))
    }
}

impl NotaryDocuments for Docs<'_> {
    async fn guns(&self) -> Result<Vec<Gun>, String> {
        self.meta.notary_v1().guns_for(self.repo, MAX_COLLECTIONS).await.map_err(|e| chain(&e))
    }

    async fn current(&self, gun: &Gun, role: &str) -> Result<Option<Vec<u8>>, String> {
        let role: wharf_format::notary::RoleName =
            role.parse().map_err(|_| format!("{role:?} is not a Notary role"))?;
        Ok(self.meta.notary_v1().current(gun, &role).await.map_err(|e| chain(&e))?.map(|r| r.content))
    }

    async fn by_hash(&self, gun: &Gun, role: &str, sha256: &str) -> Result<Option<Vec<u8>>, String> {
        let role: wharf_format::notary::RoleName =
            role.parse().map_err(|_| format!("{role:?} is not a Notary role"))?;
        Ok(self.meta.notary_v1().by_hash(gun, &role, sha256).await.map_err(|e| chain(&e))?.map(|r| r.content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_name_the_role_and_when() {
        let repo: RepositoryName = "team/app".parse().unwrap();
        let why = "timestamp expired".to_string();
        let p = finding(&repo, "TUF", crate::policy::Problem::Expired { why, at: 1_700_000_000 }, 1_700_000_060);
        assert_eq!(p.kind, Kind::TrustExpired);
        assert_eq!(p.detail, "TUF: timestamp expired (expired 2023-11-14T22:13:20+00:00, 60 s ago)");
        assert_eq!(p.repository.as_deref(), Some("team/app"));
        let p = finding(&repo, "Notary v1 collection x/team/app", crate::policy::Problem::Invalid("bad".into()), 0);
        assert_eq!((p.kind, p.detail.as_str()), (Kind::TrustInvalid, "Notary v1 collection x/team/app: bad"));
    }
}
