//! Domain services: each public operation reads aggregates through the ports, applies the pure
//! rules, and commits one [`Transaction`] (state + outbox events). Publishing is not on the
//! caller's path: the table's stream hands committed outbox entries to the relay
//! ([`outbox::deliver`]), and a periodic sweep ([`outbox::relay`]) catches any it missed.

pub use crate::clan::require_role;
use crate::clan::Clan;
use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::events::{DomainEvent, EventEnvelope};
use crate::ids::{ClanId, EventId, WarId};
#[cfg(any(test, feature = "testing"))]
use crate::memory::{FakeClock, MemoryPublisher, MemoryStore, MemoryWorkflows, SequentialIds};
use crate::ports::{
    Clock, EventPublisher, IdGenerator, Outbox, RecordKey, ScoreBoard, Store, StoreExt,
    Transaction, WorkflowStarter,
};
use crate::war::War;
use std::sync::Arc;

/// A service's ports struct: the [`Deps`] fields it uses, by the same names and types, with a
/// `Debug` that shows only `rules` (the ports are trait objects), `From<&Deps>` cloning each
/// field, so an edge builds a service with `XService::new(deps.into())`, and [`ServicePorts`].
/// The struct must have `store`, `clock`, `ids` and `rules` fields (a service that takes fewer
/// writes its struct out, as `clans` does). Defined
/// above the `mod`s: a `macro_rules!` is in scope only after its definition.
///
/// ```ignore
/// ports! {
///     /// The ports a battle uses.
///     pub struct TerritoryPorts { store: Arc<dyn Store>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>, rules: Arc<Rules> }
/// }
/// ```
macro_rules! ports {
    ($(#[$meta:meta])* pub struct $name:ident { $($field:ident: $ty:ty),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name {
            $(pub $field: $ty,)+
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("rules", &self.rules)
                    .finish_non_exhaustive()
            }
        }

        impl From<&$crate::services::Deps> for $name {
            fn from(deps: &$crate::services::Deps) -> Self {
                Self {
                    $($field: deps.$field.clone(),)+
                }
            }
        }

        impl $crate::services::ServicePorts for $name {
            fn store(&self) -> &dyn $crate::ports::Store {
                &*self.store
            }
            fn clock(&self) -> &dyn $crate::ports::Clock {
                &*self.clock
            }
            fn ids(&self) -> &dyn $crate::ports::IdGenerator {
                &*self.ids
            }
            fn deployment_rules(&self) -> &Arc<$crate::config::Rules> {
                &self.rules
            }
        }
    };
}

ports! {
    /// The ports of the services that write wars and their scores — lifecycle, membership,
    /// battles, rewards, rescoring: the store, the score board (a tally or a surrender seals
    /// the counters, a battle reads its kills, a plan its players' points, a rescore the
    /// ledger), the clock, the id generator and the rules.
    pub struct WarPorts {
        store: Arc<dyn Store>,
        scores: Arc<dyn ScoreBoard>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        rules: Arc<Rules>,
    }
}

pub mod alliances;
pub mod battles;
pub mod clans;
mod closing;
pub mod declaration;
#[cfg(test)]
mod fixtures;
pub mod lifecycle;
pub mod membership;
pub mod outbox;
pub mod rescoring;
pub mod rewards;
pub mod scores;
pub mod territories;
pub mod wars;

/// Everything a service needs from outside, built once per cold start.
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub outbox: Arc<dyn Outbox>,
    pub scores: Arc<dyn ScoreBoard>,
    pub events: Arc<dyn EventPublisher>,
    pub workflows: Arc<dyn WorkflowStarter>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub rules: Arc<Rules>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// The in-memory fakes behind a [`Deps`], kept by tests to steer and inspect them.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone)]
pub struct MemoryHandles {
    pub store: MemoryStore,
    pub events: MemoryPublisher,
    pub workflows: MemoryWorkflows,
    pub clock: FakeClock,
}

#[cfg(any(test, feature = "testing"))]
impl Deps {
    /// Services wired to in-memory fakes, at the fake clock's time.
    pub fn in_memory(rules: Rules, clock: FakeClock) -> (Self, MemoryHandles) {
        let events = MemoryPublisher::default();
        let store = MemoryStore::streaming_to(events.clone());
        let workflows = MemoryWorkflows::default();
        let deps = Self {
            store: Arc::new(store.clone()),
            outbox: Arc::new(store.clone()),
            scores: Arc::new(store.clone()),
            events: Arc::new(events.clone()),
            workflows: Arc::new(workflows.clone()),
            clock: Arc::new(clock.clone()),
            ids: Arc::new(SequentialIds::default()),
            rules: Arc::new(rules),
        };
        let handles = MemoryHandles {
            store,
            events,
            workflows,
            clock,
        };
        (deps, handles)
    }
}

impl Deps {
    /// A new envelope stamped now.
    pub fn event(
        &self,
        war_id: Option<&WarId>,
        clan_ids: Vec<ClanId>,
        event: DomainEvent,
    ) -> EventEnvelope {
        envelope(&*self.ids, &*self.clock, war_id, clan_ids, event)
    }

    /// Commits the transaction: state and outbox events together, or nothing.
    pub async fn commit(&self, tx: Transaction) -> DomainResult<()> {
        Ok(self.store.commit(tx).await?)
    }

    pub async fn clan(&self, id: &ClanId) -> DomainResult<Clan> {
        load_clan(&*self.store, id).await
    }

    /// The rules that govern `war` (see [`rules_for`]).
    pub fn rules_for(&self, war: &War) -> Arc<Rules> {
        rules_for(&self.rules, war)
    }

    pub async fn war(&self, id: &WarId) -> DomainResult<War> {
        load_war(&*self.store, id).await
    }
}

// What the services on their own ports structs share with `Deps`: one definition each.

/// A new envelope stamped now, with a fresh event id.
pub(crate) fn envelope(
    ids: &dyn IdGenerator,
    clock: &dyn Clock,
    war_id: Option<&WarId>,
    clan_ids: Vec<ClanId>,
    event: DomainEvent,
) -> EventEnvelope {
    let id = EventId::new(ids.new_id()).expect("generated ids are valid");
    EventEnvelope::new(id, clock.now(), war_id.cloned(), clan_ids, event)
}

/// The rules that govern `war`: its snapshot from the declaration over the deployment's
/// `rules`, or the deployment's own for a war declared before rulesets were snapshotted.
pub(crate) fn rules_for(rules: &Arc<Rules>, war: &War) -> Arc<Rules> {
    match &war.ruleset {
        Some(ruleset) if ruleset.rules != rules.war_rules() => {
            Arc::new(ruleset.rules.apply_to(rules))
        }
        _ => rules.clone(),
    }
}

/// The clan, or `ClanNotFound`.
pub(crate) async fn load_clan(store: &dyn Store, id: &ClanId) -> DomainResult<Clan> {
    store
        .load(RecordKey::Clan(id.clone()))
        .await?
        .ok_or_else(|| DomainError::ClanNotFound(id.clone()))
}

/// The war, or `WarNotFound`.
pub(crate) async fn load_war(store: &dyn Store, id: &WarId) -> DomainResult<War> {
    store
        .load(RecordKey::War(id.clone()))
        .await?
        .ok_or_else(|| DomainError::WarNotFound(id.clone()))
}

/// What a service does through the store, clock, id generator and rules of its ports struct —
/// load a war or a clan, commit, stamp an event, the rules of a war — defined once
/// (`ports!` implements the accessors).
pub(crate) trait ServicePorts: Sync {
    fn store(&self) -> &dyn Store;
    fn clock(&self) -> &dyn Clock;
    fn ids(&self) -> &dyn IdGenerator;
    /// The deployment's rules (a war's own: [`ServicePorts::rules_for`]).
    fn deployment_rules(&self) -> &Arc<Rules>;

    /// The war, or `WarNotFound`.
    async fn war(&self, id: &WarId) -> DomainResult<War> {
        load_war(self.store(), id).await
    }

    /// The clan, or `ClanNotFound`.
    async fn clan(&self, id: &ClanId) -> DomainResult<Clan> {
        load_clan(self.store(), id).await
    }

    /// Commits the transaction: state and outbox events together, or nothing.
    async fn commit(&self, tx: Transaction) -> DomainResult<()> {
        Ok(self.store().commit(tx).await?)
    }

    /// A new envelope stamped now.
    fn event(
        &self,
        war_id: Option<&WarId>,
        clan_ids: Vec<ClanId>,
        event: DomainEvent,
    ) -> EventEnvelope {
        envelope(self.ids(), self.clock(), war_id, clan_ids, event)
    }

    /// The rules that govern `war` (see [`rules_for`]).
    fn rules_for(&self, war: &War) -> Arc<Rules> {
        rules_for(self.deployment_rules(), war)
    }
}
