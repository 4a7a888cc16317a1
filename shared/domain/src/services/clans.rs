//! The clan registry (SPEC §1): the guild service's snapshots, and the clan view of the API.
//!
//! Takes only the ports it uses ([`ClanPorts`]): the store and the clock (retry back-off).

use crate::clan::{Clan, ClanSnapshot};
use crate::error::DomainResult;
use crate::ids::ClanId;
use crate::ports::{Clock, RecordKey, Store, StoreExt, Transaction};
use std::sync::Arc;

/// The ports the clan registry uses. Written out rather than with `ports!`: it takes no rules,
/// so its `Debug` has nothing to show.
#[derive(Clone)]
pub struct ClanPorts {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ClanPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClanPorts").finish_non_exhaustive()
    }
}

impl From<&super::Deps> for ClanPorts {
    fn from(deps: &super::Deps) -> Self {
        Self {
            store: deps.store.clone(),
            clock: deps.clock.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClanService {
    ports: ClanPorts,
}

impl ClanService {
    pub fn new(ports: ClanPorts) -> Self {
        Self { ports }
    }

    /// Inserts or refreshes a clan from a registry snapshot; war bookkeeping, alliance and
    /// (unless given) rating are kept. Concurrent upserts retry on the fresh version.
    pub async fn upsert(&self, clan_id: ClanId, snapshot: ClanSnapshot) -> DomainResult<Clan> {
        snapshot.validate()?;
        crate::retry::optimistic(&*self.ports.clock, || async {
            let stored: Option<Clan> = self
                .ports
                .store
                .load(RecordKey::Clan(clan_id.clone()))
                .await?;
            let mut clan = match stored {
                Some(mut clan) => {
                    clan.apply_snapshot(snapshot.clone());
                    clan
                }
                None => Clan::from_snapshot(clan_id.clone(), snapshot.clone()),
            };
            let mut tx = Transaction::new();
            tx.upsert(&mut clan);
            self.ports.store.commit(tx).await?;
            Ok(clan)
        })
        .await
    }

    /// The clan with its rating, alliance and current wars.
    pub async fn get(&self, clan_id: &ClanId) -> DomainResult<Clan> {
        super::load_clan(&*self.ports.store, clan_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rules;
    use crate::ids::{PlayerId, WarId};
    use crate::memory::FakeClock;
    use crate::services::Deps;

    fn snapshot(rating: Option<i32>) -> ClanSnapshot {
        ClanSnapshot {
            name: "Wolves".into(),
            leader_id: PlayerId::new("p1").unwrap(),
            officer_ids: vec![],
            member_ids: vec![PlayerId::new("p2").unwrap()],
            level: 3,
            rating,
            active: true,
        }
    }

    #[tokio::test]
    async fn an_upsert_creates_then_refreshes_without_losing_war_bookkeeping() {
        let (deps, handles) = Deps::in_memory(Rules::default(), FakeClock::at(chrono::Utc::now()));
        let svc = ClanService::new((&deps).into());
        let id = ClanId::new("wolves").unwrap();
        let created = svc.upsert(id.clone(), snapshot(Some(1200))).await.unwrap();
        assert_eq!((created.version, created.rating), (1, 1200));

        let mut stored = svc.get(&id).await.unwrap();
        stored.enter_war(&WarId::new("w1").unwrap());
        let mut tx = Transaction::new();
        tx.update(&mut stored);
        deps.commit(tx).await.unwrap();

        let refreshed = svc.upsert(id.clone(), snapshot(None)).await.unwrap();
        assert_eq!(refreshed.version, 3);
        assert_eq!(refreshed.rating, 1200);
        assert_eq!(refreshed.active_war_ids.len(), 1);
        assert!(handles.events.published().is_empty());
    }

    #[tokio::test]
    async fn an_invalid_snapshot_writes_nothing() {
        let (deps, _) = Deps::in_memory(Rules::default(), FakeClock::at(chrono::Utc::now()));
        let svc = ClanService::new((&deps).into());
        let id = ClanId::new("wolves").unwrap();
        let err = svc
            .upsert(id.clone(), snapshot(Some(99_999)))
            .await
            .unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Malformed);
        assert_eq!(svc.get(&id).await.unwrap_err().code(), "CLAN_NOT_FOUND");
    }
}
