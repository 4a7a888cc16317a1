//! The clan registry (SPEC §1): the guild service's snapshots, and the clan view of the API.

use super::Deps;
use crate::clan::{Clan, ClanSnapshot};
use crate::error::DomainResult;
use crate::ids::ClanId;
use crate::ports::{RecordKey, StoreExt, Transaction};

#[derive(Debug, Clone)]
pub struct ClanService {
    deps: Deps,
}

impl ClanService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Inserts or refreshes a clan from a registry snapshot; war bookkeeping, alliance and
    /// (unless given) rating are kept. Concurrent upserts retry on the fresh version.
    pub async fn upsert(&self, clan_id: ClanId, snapshot: ClanSnapshot) -> DomainResult<Clan> {
        snapshot.validate()?;
        crate::retry::optimistic(&*self.deps.clock, || async {
            let stored: Option<Clan> = self
                .deps
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
            self.deps.commit(tx).await?;
            Ok(clan)
        })
        .await
    }

    /// The clan with its rating, alliance and current wars.
    pub async fn get(&self, clan_id: &ClanId) -> DomainResult<Clan> {
        self.deps.clan(clan_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rules;
    use crate::ids::{PlayerId, WarId};
    use crate::memory::FakeClock;

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
        let svc = ClanService::new(deps.clone());
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
        let svc = ClanService::new(deps);
        let id = ClanId::new("wolves").unwrap();
        let err = svc
            .upsert(id.clone(), snapshot(Some(99_999)))
            .await
            .unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Malformed);
        assert_eq!(svc.get(&id).await.unwrap_err().code(), "CLAN_NOT_FOUND");
    }
}
