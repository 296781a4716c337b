//! The rows of targets and delegated targets: the documents, their delegations, and the delegated roles.

use super::*;

#[test]
fn targets_rules() {
    let rows: &[Row] = &[
        ("_type is not targets", Case::first, |c| targets_doc(c).type_ = "root".into(), "WrongType(targets)"),
        (
            "not signed by the targets key",
            Case::first,
            |c| c.targets.as_mut().unwrap().1 = vec![K::Other],
            "Threshold(targets)",
        ),
        ("version 0", Case::first, |c| targets_doc(c).version = 0, "Version(targets) at least 1"),
        (
            "not above the stored version",
            Case::stored,
            |c| c.targets = Some((targets(1), vec![K::Targets])),
            "Version(targets) at least 2",
        ),
        ("expired", Case::first, |c| targets_doc(c).expires = Expires(NOW - 1), "Expired(targets)"),
        (
            "a target name that is not a tag",
            Case::first,
            |c| add_target(targets_doc(c), "a/b", target()),
            "BadTarget(targets) is a tag",
        ),
        (
            "a target without sha256",
            Case::first,
            |c| add_target(targets_doc(c), "v9", TargetFile { hashes: BTreeMap::new(), ..target() }),
            "BadTarget(targets) hashes.sha256",
        ),
        (
            "a target with uppercase sha256",
            Case::first,
            |c| {
                let hashes = BTreeMap::from([("sha256".into(), "AB".repeat(32))]);
                add_target(targets_doc(c), "v9", TargetFile { hashes, ..target() })
            },
            "BadTarget(targets) hashes.sha256",
        ),
        (
            "a target of length 0",
            Case::first,
            |c| add_target(targets_doc(c), "v9", TargetFile { length: 0, ..target() }),
            "BadTarget(targets) length",
        ),
    ];
    table(rows);
}

#[test]
fn delegation_rules() {
    let rows: &[Row] = &[
        (
            "a pattern over the length bound",
            Case::first,
            |c| team_role(targets_doc(c)).paths = Some(vec!["v".repeat(2000)]),
            "BadRole(targets) longer than",
        ),
        (
            "succinct_roles with a bad bit_length",
            Case::first,
            |c| targets_doc(c).delegations.as_mut().unwrap().succinct_roles = Some(succinct(33)),
            "BadRole(targets) bit_length",
        ),
        (
            "succinct_roles at all",
            Case::first,
            |c| {
                c.delegated.clear();
                let d = targets_doc(c).delegations.as_mut().unwrap();
                d.roles.clear();
                d.succinct_roles = Some(succinct(4));
            },
            "BadRole(targets) succinct_roles (hash-bin delegations) are not accepted",
        ),
        (
            "a delegation key of an unsupported type",
            Case::first,
            |c| targets_doc(c).delegations.as_mut().unwrap().keys.get_mut(&id(K::Team)).unwrap().scheme = "x".into(),
            "UnsupportedKey(targets)",
        ),
        (
            "a delegation key under another key's id",
            Case::first,
            |c| _ = targets_doc(c).delegations.as_mut().unwrap().keys.insert(id(K::Other), public(K::Team)),
            "KeyIdMismatch(targets)",
        ),
        (
            "a delegation to a top-level role",
            Case::first,
            |c| team_role(targets_doc(c)).name = "snapshot".into(),
            // Refused where the delegation is declared (its file would overwrite the top-level role's).
            "BadRole(targets) uses a top-level role name",
        ),
        (
            "the same role delegated twice",
            Case::first,
            |c| {
                let d = targets_doc(c).delegations.as_mut().unwrap();
                d.roles.push(d.roles[0].clone());
            },
            "BadRole(targets) delegates to team twice",
        ),
        (
            "a delegation with threshold 0",
            Case::first,
            |c| team_role(targets_doc(c)).threshold = 0,
            "BadRole(targets) threshold >= 1",
        ),
        (
            "a delegation naming a key it does not list",
            Case::first,
            |c| team_role(targets_doc(c)).keyids = vec![id(K::Other)],
            "BadRole(targets) keys listed in delegations.keys",
        ),
        (
            "a delegation with both paths and path_hash_prefixes",
            Case::first,
            |c| team_role(targets_doc(c)).path_hash_prefixes = Some(vec!["ab".into()]),
            "BadRole(targets) exactly one of paths and path_hash_prefixes",
        ),
        (
            "a delegation with neither paths nor path_hash_prefixes",
            Case::first,
            |c| team_role(targets_doc(c)).paths = None,
            "BadRole(targets) exactly one of paths and path_hash_prefixes",
        ),
    ];
    table(rows);
}

#[test]
fn delegated_rules() {
    let rows: &[Row] = &[
        (
            "a role no targets delegates to",
            Case::first,
            |c| c.delegated.push(("other".into(), team(1), vec![K::Other])),
            "BadRole(other) no targets metadata delegates to this role",
        ),
        (
            "a top-level role uploaded as a delegation",
            Case::first,
            |c| c.delegated.push(("snapshot".into(), team(1), vec![K::Snapshot])),
            "UnknownRole(snapshot)",
        ),
        ("not signed by the delegated key", Case::first, |c| c.delegated[0].2 = vec![K::Other], "Threshold(team)"),
        ("_type is not targets", Case::first, |c| team_doc(c).type_ = "snapshot".into(), "WrongType(targets)"),
        (
            "not above the stored version",
            Case::stored,
            |c| c.delegated = vec![("team".into(), team(1), vec![K::Team])],
            "Version(team) at least 2",
        ),
        ("expired", Case::first, |c| team_doc(c).expires = Expires(NOW - 1), "Expired(team)"),
        (
            "a target outside the delegated paths",
            Case::first,
            |c| add_target(team_doc(c), "latest", target()),
            "OutsideDelegation(team)",
        ),
        (
            "a target name that is not a tag",
            Case::first,
            |c| add_target(team_doc(c), "v/../x", target()),
            "BadTarget(team) is a tag",
        ),
        (
            "its own delegations break a rule",
            Case::first,
            |c| {
                let mut d = targets(1).delegations;
                d.as_mut().unwrap().roles[0].threshold = 0;
                team_doc(c).delegations = d;
            },
            "BadRole(team) threshold >= 1",
        ),
    ];
    table(rows);
}

fn succinct(bit_length: u32) -> SuccinctRoles {
    SuccinctRoles { keyids: vec![id(K::Team)], threshold: 1, bit_length, name_prefix: "bin".into() }
}

fn add_target(t: &mut Targets, name: &str, file: TargetFile) {
    t.targets.insert(name.into(), file);
}
