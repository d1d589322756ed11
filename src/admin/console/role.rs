//! Console roles from group membership, mapped onto the API token scopes:
//! a console request passes the same `Access::allows` check as a token.

use crate::admin::auth::Access;
use crate::admin::tokens::Scope;
use crate::config::ConsoleConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read, replay, verify: the auditor scope.
    Auditor,
    /// Also terminate and lock: the auditor and killswitch scopes.
    Responder,
    /// Everything: the admin scope.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }

    /// The stored name back to the role; anything else is no role.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Auditor, Role::Responder, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// The token scopes this role holds.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::Auditor => &[Scope::Auditor],
            Role::Responder => &[Scope::Auditor, Scope::Killswitch],
            Role::Admin => &[Scope::Admin],
        }
    }

    /// The scope under which a route of `access` is served, if any.
    pub fn scope_for(self, access: Access) -> Option<Scope> {
        self.scopes().iter().copied().find(|s| access.allows(*s))
    }

    /// The highest role the groups give; none means no console.
    pub fn of(groups: &[String], cfg: &ConsoleConfig) -> Option<Role> {
        let has = |g: &str| groups.iter().any(|x| x == g);
        if has(&cfg.admin_group) {
            Some(Role::Admin)
        } else if has(&cfg.responder_group) {
            Some(Role::Responder)
        } else if has(&cfg.auditor_group) {
            Some(Role::Auditor)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_onto_the_token_scopes() {
        use Access::*;
        let a = Role::Auditor;
        assert!(a.scope_for(Read).is_some() && a.scope_for(Watch).is_some());
        assert!(a.scope_for(Kill).is_none() && a.scope_for(Admin).is_none());
        let r = Role::Responder;
        assert!(r.scope_for(Read).is_some() && r.scope_for(Kill).is_some());
        assert!(r.scope_for(Admin).is_none());
        for x in [Read, Watch, Kill, Admin] {
            assert!(Role::Admin.scope_for(x).is_some());
        }
    }

    #[test]
    fn the_highest_group_wins_and_none_gives_nothing() {
        let cfg = crate::config::Config::embedded(None).console;
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Role::of(&g(&["ops"]), &cfg), None);
        assert_eq!(Role::of(&g(&["auditors"]), &cfg), Some(Role::Auditor));
        assert_eq!(
            Role::of(&g(&["auditors", "responders"]), &cfg),
            Some(Role::Responder)
        );
        assert_eq!(
            Role::of(&g(&["admins", "auditors"]), &cfg),
            Some(Role::Admin)
        );
    }
}
