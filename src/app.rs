//! Shared state of a running bastion, passed by value (an `Arc`) to every
//! connection; nothing global.

use crate::auth::PasswordChecker;
use crate::auth::budget::{BudgetConfig, SecondFactorBudget};
use crate::auth::throttle::{Throttle, ThrottleConfig};
use crate::config::Config;
use crate::registry::Registry;
use crate::store::Store;
use crate::vault::Vault;
use std::sync::Arc;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub vault: Vault,
    pub passwords: PasswordChecker,
    pub registry: Registry,
    pub throttle: Throttle,
    /// Codes checked per user, whatever the source (issue 14).
    pub mfa_budget: SecondFactorBudget,
    pub blocks: crate::lock_state::SourceBlocks,
    /// Signs recording trailers.
    pub audit_key: crate::castfile::SigningKey,
    /// On while audit appends fail (for `/health`).
    pub audit_health: crate::audit::Health,
    pub locks: crate::lock_state::Locks,
    pub metrics: crate::metrics::Metrics,
    pub rules: crate::lock_state::Rules,
    /// Per-user caps on audit rows a user can cause at will.
    pub caps: crate::audit::rate::Caps,
    /// Connection and recorder tasks: a graceful stop waits for them, so
    /// every session gets its end row and every recording its trailer
    /// before the store closes.
    pub tasks: tokio_util::task::TaskTracker,
    /// This node and run in the `nodes` table (issue 19); `None` outside
    /// `serve` (unit tests).
    pub node: Option<crate::store::NodeIdent>,
    /// OpenID Connect sign-ins under way and the providers (issue 18).
    pub sso: crate::sso::Sso,
    /// Whether the database answers (issue 19 point 3): logins are refused
    /// at once while it does not.
    pub db: crate::store::Reach,
    /// On from the stop signal: `/health` turns red so a load balancer
    /// sends new connections elsewhere while live sessions drain.
    pub draining: std::sync::atomic::AtomicBool,
    /// Users' grants as read for the re-checks of live sessions, shared by
    /// all of a user's sessions for half a second.
    pub recent_grants: crate::grants::access::Recent,
}

impl App {
    pub fn new(
        config: Config,
        store: Store,
        vault: Vault,
        audit_key: crate::castfile::SigningKey,
    ) -> Arc<App> {
        let audit_health = store.audit_health().clone();
        let mfa_budget = SecondFactorBudget::new(BudgetConfig {
            failures: config.limits.second_factor_failures,
            window: config.limits.second_factor_window,
            ..BudgetConfig::default()
        });
        let node = store.node().cloned();
        // `serve` checks the secret files before it gets here; elsewhere a
        // provider whose secret cannot be read is simply unavailable.
        let sso = crate::sso::Sso::new(&config.sso).unwrap_or_else(|e| {
            tracing::error!(error = %e, "SSO unavailable");
            crate::sso::Sso::unavailable(&config.sso)
        });
        Arc::new(App {
            config,
            store,
            vault,
            passwords: PasswordChecker::default(),
            registry: Registry::default(),
            throttle: Throttle::new(ThrottleConfig::default()),
            mfa_budget,
            blocks: crate::lock_state::SourceBlocks::default(),
            audit_key,
            audit_health,
            locks: crate::lock_state::Locks::default(),
            metrics: crate::metrics::Metrics::default(),
            rules: crate::lock_state::Rules::default(),
            caps: crate::audit::rate::Caps::default(),
            tasks: tokio_util::task::TaskTracker::new(),
            node,
            sso,
            db: crate::store::Reach::default(),
            draining: Default::default(),
            recent_grants: Default::default(),
        })
    }
}
