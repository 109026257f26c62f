//! Tenancy: which stores a person's work and view cover.
//!
//! Admins cover every store. A supervisor covers the stores they are
//! assigned to (or every store, when assigned to all): every page, answer,
//! export and figure they see is of those stores only, and anything else
//! is answered as if it did not exist. A labeler's scope is their pool:
//! the queue hands them only tasks of those stores.

use std::collections::BTreeSet;

/// The stores a person covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every store, including stores created later.
    #[default]
    All,
    /// These stores only (possibly none).
    Stores(BTreeSet<String>),
}

impl Scope {
    /// A scope of the given stores.
    pub fn of<I, S>(stores: I) -> Scope
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Scope::Stores(stores.into_iter().map(Into::into).collect())
    }

    /// Whether `store_id` is in the scope.
    pub fn sees(&self, store_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Stores(s) => s.contains(store_id),
        }
    }

    /// Whether every store of `other` is in this scope: a supervisor may
    /// manage a labeler only when the labeler's pool lies within their own
    /// stores, so no supervisor reaches into a store they do not cover.
    pub fn covers(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::All, _) => true,
            (Scope::Stores(_), Scope::All) => false,
            (Scope::Stores(mine), Scope::Stores(theirs)) => theirs.is_subset(mine),
        }
    }

    /// The listed stores, or `None` for every store.
    pub fn stores(&self) -> Option<&BTreeSet<String>> {
        match self {
            Scope::All => None,
            Scope::Stores(s) => Some(s),
        }
    }

    /// Whether the scope is every store.
    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }

    /// The stores of `ids` this scope sees, in their order.
    pub fn filter<'a, I>(&self, ids: I) -> Vec<&'a str>
    where
        I: IntoIterator<Item = &'a str>,
    {
        ids.into_iter().filter(|id| self.sees(id)).collect()
    }
}

/// Someone who manages people: an admin, or a supervisor of `scope`.
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    /// Admins manage everyone.
    pub is_admin: bool,
    /// The stores the manager covers.
    pub scope: &'a Scope,
}

impl Manager<'_> {
    /// Whether they may manage a person: admins anyone; a supervisor only a
    /// labeler whose pool lies within their own stores (so a supervisor
    /// never acts on anyone who works for a store they do not cover).
    pub fn manages(&self, is_labeler: bool, person: &Scope) -> bool {
        self.is_admin || (is_labeler && self.scope.covers(person))
    }

    /// Whether they may give someone the scope `to`: admins any; a
    /// supervisor only stores they cover themselves.
    pub fn may_assign(&self, to: &Scope) -> bool {
        self.is_admin || self.scope.covers(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_sees_every_store_and_covers_every_scope() {
        assert!(Scope::All.sees("anything"));
        assert!(Scope::All.covers(&Scope::All));
        assert!(Scope::All.covers(&Scope::of(["a", "b"])));
        assert!(Scope::All.is_all());
        assert_eq!(Scope::All.stores(), None);
    }

    #[test]
    fn listed_stores_see_only_themselves() {
        let s = Scope::of(["a", "b"]);
        assert!(s.sees("a") && s.sees("b"));
        assert!(!s.sees("c"));
        assert!(!s.sees(""));
        assert!(!Scope::of(Vec::<String>::new()).sees("a"));
        assert_eq!(s.filter(["c", "b", "a", "d"]), vec!["b", "a"]);
    }

    #[test]
    fn admins_manage_everyone_supervisors_only_labelers_within_their_stores() {
        let all = Scope::All;
        let ab = Scope::of(["a", "b"]);
        let admin = Manager {
            is_admin: true,
            scope: &all,
        };
        assert!(admin.manages(false, &Scope::All));
        assert!(admin.may_assign(&Scope::All));
        let sup = Manager {
            is_admin: false,
            scope: &ab,
        };
        assert!(sup.manages(true, &Scope::of(["a"])));
        assert!(!sup.manages(false, &Scope::of(["a"])), "not a supervisor");
        assert!(!sup.manages(true, &Scope::of(["a", "c"])));
        assert!(!sup.manages(true, &Scope::All), "a shared labeler");
        assert!(sup.may_assign(&Scope::of(["b"])));
        assert!(!sup.may_assign(&Scope::of(["c"])));
        assert!(!sup.may_assign(&Scope::All));
        let every = Manager {
            is_admin: false,
            scope: &all,
        };
        assert!(every.manages(true, &Scope::All));
        assert!(!every.manages(false, &Scope::of(["a"])));
    }

    #[test]
    fn covers_is_the_subset_relation() {
        let ab = Scope::of(["a", "b"]);
        assert!(ab.covers(&Scope::of(["a"])));
        assert!(ab.covers(&Scope::of(["a", "b"])));
        assert!(ab.covers(&Scope::of(Vec::<String>::new())));
        assert!(!ab.covers(&Scope::of(["a", "c"])));
        assert!(!ab.covers(&Scope::All), "a store list never covers all");
        assert!(!Scope::of(["a"]).covers(&ab));
    }
}
