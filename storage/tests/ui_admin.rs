//! The administration pages' reads and the name query `docker search` shares with the repository list (`meta.ui()`), run unchanged against SQLite
//! and PostgreSQL: pages by key, no secret read, `LIKE` wildcards matching only themselves, ranges honoured.

#[path = "../../tests/e2e/common/pg.rs"]
mod pg;

use wharf_format::{Digest, RepositoryName};
use wharf_storage::{AccountKind, AccountRow, AuditQuery, AuditRow, GrantRow, Journal, Metadata, NameRange};

async fn suite(m: Metadata) {
    search(&m).await;
    accounts_and_audit(&m).await;
    m.settings().set("ui.test", b"one").await.unwrap();
    m.settings().set("ui.test", b"two").await.unwrap();
    assert_eq!(m.settings().get("ui.test").await.unwrap().as_deref(), Some(&b"two"[..]), "set replaces");
}

async fn search(m: &Metadata) {
    let blob = Digest::sha256_of(b"search");
    for name in ["pub/app", "pub/my_app", "pub/myxapp", "pub/web", "team/app", "team/app-x", "team/app/sub", "zz"] {
        m.blobs().link(&name.parse().unwrap(), &blob, 1, None, 0).await.unwrap();
    }
    let ui = m.ui();
    let find = |range: NameRange, term: &'static str, last: Option<&'static str>, limit: u32| async move {
        let (names, more) = ui.names(&range, term, last, limit).await.unwrap();
        let next = if more { names.last().map(RepositoryName::to_string) } else { None };
        (names.iter().map(RepositoryName::to_string).collect::<Vec<_>>(), next)
    };
    let all = NameRange::all;
    assert_eq!(
        find(all(), "app", None, 10).await.0,
        ["pub/app", "pub/my_app", "pub/myxapp", "team/app", "team/app-x", "team/app/sub"]
    );
    // `_` and `%` match only themselves.
    assert_eq!(find(all(), "my_app", None, 10).await.0, ["pub/my_app"]);
    assert!(find(all(), "%", None, 10).await.0.is_empty());
    // Inside a range only; an exact name's neighbours are read but not answered.
    assert_eq!(
        find(NameRange::prefix("pub/").unwrap(), "app", None, 10).await.0,
        ["pub/app", "pub/my_app", "pub/myxapp"]
    );
    assert_eq!(find(NameRange::exact("team/app".parse().unwrap()), "app", None, 10).await.0, ["team/app"]);
    // Paged by the last name read.
    let (first, next) = find(all(), "app", None, 2).await;
    assert_eq!((first, next.as_deref()), (vec!["pub/app".to_string(), "pub/my_app".into()], Some("pub/my_app")));
    let (rest, next) = find(all(), "app", Some("pub/my_app"), 10).await;
    assert_eq!((rest.len(), next), (4, None));
}

async fn accounts_and_audit(m: &Metadata) {
    let accounts = m.accounts();
    for (i, name) in ["alice", "bob", "robot$ci", "carol"].into_iter().enumerate() {
        let kind = if name.starts_with("robot$") { AccountKind::Robot } else { AccountKind::User };
        let row = AccountRow {
            name: name.into(),
            kind,
            secret_hash: "$argon2id$secret".into(),
            expires_at: None,
            created_at: i as i64,
        };
        let audit = AuditRow {
            at: 100 + i as i64,
            action: "account_add".into(),
            actor: "admin".into(),
            actor_kind: "account".into(),
            address: None,
            repository: (i % 2 == 0).then(|| "team/app".into()),
            digest: None,
            tag: None,
            detail: None,
        };
        accounts.add_recorded(&row, &Journal { audit: vec![audit], events: Vec::new() }).await.unwrap();
        let grant = GrantRow { account: name.into(), pattern: format!("{name}/**"), actions: "pull".into() };
        accounts.grant(&grant, 0).await.unwrap();
    }
    accounts
        .grant(&GrantRow { account: "anonymous".into(), pattern: "pub/**".into(), actions: "pull".into() }, 0)
        .await
        .unwrap();
    let ui = m.ui();
    let (page, more) = ui.accounts(None, 2).await.unwrap();
    assert_eq!(page.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert!(more);
    let (page, more) = ui.accounts(Some("bob"), 2).await.unwrap();
    assert_eq!(
        page.iter().map(|a| (a.name.as_str(), a.kind)).collect::<Vec<_>>(),
        [("carol", AccountKind::User), ("robot$ci", AccountKind::Robot)]
    );
    assert!(!more);
    // The grants of one page of accounts, and the anonymous ones.
    let (grants, cut) = ui.grants_of("alice", "bob", 10).await.unwrap();
    let who: Vec<&str> = grants.iter().map(|g| g.account.as_str()).collect();
    assert_eq!((who, cut), (vec!["alice", "anonymous", "bob"], false));
    assert!(ui.grants_of("alice", "bob", 2).await.unwrap().1, "cut at the limit");

    // The audit log: newest first, filtered, paged before an id.
    let q = |repository: Option<&str>, limit| AuditQuery {
        repository: repository.map(Into::into),
        limit,
        ..AuditQuery::default()
    };
    let first = ui.audit(&q(None, 3), None).await.unwrap();
    let ats: Vec<i64> = first.rows.iter().map(|(_, r)| r.at).collect();
    assert_eq!((ats, first.more), (vec![103, 102, 101], true));
    let older = ui.audit(&q(None, 3), Some(first.rows[2].0)).await.unwrap();
    assert_eq!((older.rows.iter().map(|(_, r)| r.at).collect::<Vec<_>>(), older.more), (vec![100], false));
    let filtered = ui.audit(&q(Some("team/app"), 10), None).await.unwrap();
    assert_eq!(filtered.rows.iter().map(|(_, r)| r.at).collect::<Vec<_>>(), [102, 100]);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    suite(Metadata::open_sqlite(&dir.path().join("meta.db")).await.unwrap()).await;
}

#[test]
fn postgres() {
    let url = pg::database();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { suite(Metadata::open(&url).await.unwrap()).await });
}
