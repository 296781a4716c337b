//! 5.6.7: the pre-order depth-first search of the delegation tree for one target, as a pure state machine shared
//! by Wharf's pull and the standalone TUF client. The caller loads each role the search names and hands its
//! targets back; the search decides what comes next (delegation order, `terminating`, a bound on roles visited).

use std::collections::HashSet;

use super::Targets;

pub struct DelegationSearch {
    to_visit: Vec<(String, String)>,
    visited: HashSet<(String, String)>,
    max_roles: usize,
}

impl DelegationSearch {
    /// A search that starts at top-level targets (delegated by root) and visits at most `max_roles` roles.
    pub fn new(max_roles: usize) -> DelegationSearch {
        DelegationSearch { to_visit: vec![("targets".into(), "root".into())], visited: HashSet::new(), max_roles }
    }

    /// The next role to load and look in, with the role that delegated to it; `None` when the search is over.
    pub fn next_role(&mut self) -> Option<(String, String)> {
        while let Some(next) = self.to_visit.pop() {
            if self.visited.len() >= self.max_roles {
                self.to_visit.clear();
                return None;
            }
            if self.visited.insert(next.clone()) {
                return Some(next);
            }
        }
        None
    }

    /// After `role`'s targets `t` did not list `name`: queue the roles `t` delegates `name` to, in order. A
    /// terminating delegation ends the search of everything not yet visited, after its own subtree.
    pub fn descend(&mut self, role: &str, t: &Targets, name: &str) {
        let mut children = Vec::new();
        for (child, terminating) in t.delegations.iter().flat_map(|d| d.roles_for_target(name)) {
            children.push((child, role.to_string()));
            if terminating {
                self.to_visit.clear();
                break;
            }
        }
        self.to_visit.extend(children.into_iter().rev());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(roles: &[(&str, bool)]) -> Targets {
        let roles: Vec<serde_json::Value> = roles
            .iter()
            .map(
                |(n, t)| serde_json::json!({"name": n, "keyids": [], "threshold": 1, "terminating": t, "paths": ["*"]}),
            )
            .collect();
        serde_json::from_value(serde_json::json!({"_type": "targets", "spec_version": "1.0.31", "version": 1,
            "expires": "2030-01-01T00:00:00Z", "targets": {}, "delegations": {"keys": {}, "roles": roles}}))
        .unwrap()
    }

    #[test]
    fn order_terminating_and_bound() {
        let mut s = DelegationSearch::new(32);
        assert_eq!(s.next_role(), Some(("targets".into(), "root".into())));
        s.descend("targets", &targets(&[("a", false), ("b", true), ("c", false)]), "x");
        // Pre-order: a first; b is terminating, so c is never queued.
        assert_eq!(s.next_role(), Some(("a".into(), "targets".into())));
        s.descend("a", &targets(&[("a1", false)]), "x");
        assert_eq!(s.next_role(), Some(("a1".into(), "a".into())));
        assert_eq!(s.next_role(), Some(("b".into(), "targets".into())));
        assert_eq!(s.next_role(), None);
        // A terminating child clears what its parent's siblings left.
        let mut s = DelegationSearch::new(32);
        s.next_role();
        s.descend("targets", &targets(&[("a", false), ("b", false)]), "x");
        s.next_role();
        s.descend("a", &targets(&[("t", true)]), "x");
        assert_eq!(s.next_role(), Some(("t".into(), "a".into())));
        assert_eq!(s.next_role(), None);
        // At most max_roles roles.
        let mut s = DelegationSearch::new(1);
        s.next_role();
        s.descend("targets", &targets(&[("a", false)]), "x");
        assert_eq!(s.next_role(), None);
    }
}
