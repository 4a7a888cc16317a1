//! The world the war services' tests share (`wars`, `declaration`, `lifecycle`, `membership`):
//! four clans (`att`, `def`, `ally`, `other`) of eleven members, a leader and an officer each,
//! and the territories `t1` (tier 1) and `t2` (tier 2) held by `def`, on in-memory ports.

use super::clans::ClanService;
use super::declaration::DeclarationService;
use super::lifecycle::LifecycleService;
use super::membership::MembershipService;
use super::territories::TerritoryService;
use super::wars::WarService;
use super::{Deps, MemoryHandles};
use crate::clan::{Clan, ClanSnapshot};
use crate::config::Rules;
use crate::declaration::{DeclareCommand, DeclareRequest};
use crate::ids::{ClanId, PlayerId, TerritoryId};
use crate::memory::FakeClock;
use crate::ports::{PageRequest, PlayerPoints, Record, RecordKey, ScoreDelta, Store};
use crate::territory::fixtures::input;
use crate::territory::Territory;
use crate::war::{PhaseDurations, War, WarStatus};
use chrono::{DateTime, Utc};

pub(crate) fn t0() -> DateTime<Utc> {
    "2026-05-01T10:00:00Z".parse().unwrap()
}

pub(crate) fn clan(id: &str) -> ClanId {
    ClanId::new(id).unwrap()
}

pub(crate) fn player(id: &str) -> PlayerId {
    PlayerId::new(id).unwrap()
}

pub(crate) fn rules() -> Rules {
    Rules {
        phase_bounds: crate::config::Bounds {
            min_s: 1,
            max_s: 86_400,
        },
        ..Rules::default()
    }
}

/// Phases of one hour each, so hold points are easy to count.
pub(crate) fn hourly() -> PhaseDurations {
    PhaseDurations {
        declared_s: 3_600,
        preparation_s: 3_600,
        active_s: 3_600 * 2,
        ending_s: 600,
    }
}

pub(crate) struct World {
    pub(crate) deps: Deps,
    pub(crate) h: MemoryHandles,
    pub(crate) wars: WarService,
    pub(crate) declarations: DeclarationService,
    pub(crate) lifecycle: LifecycleService,
    pub(crate) membership: MembershipService,
}

impl World {
    /// What the war-endings queue's consumer does with every event published so far.
    pub(crate) async fn react_to_published(&self) {
        for event in self.h.events.published() {
            self.wars.react(&event).await.unwrap();
        }
    }

    pub(crate) async fn new() -> Self {
        let (deps, h) = Deps::in_memory(rules(), FakeClock::at(t0()));
        let clans = ClanService::new((&deps).into());
        for id in ["att", "def", "ally", "other"] {
            let members = (0..11).map(|i| player(&format!("{id}-m{i}"))).collect();
            let snap = ClanSnapshot {
                name: format!("Clan {id}"),
                leader_id: player(&format!("{id}-leader")),
                officer_ids: vec![player(&format!("{id}-officer"))],
                member_ids: members,
                level: 5,
                rating: Some(1_000),
                active: true,
            };
            clans.upsert(clan(id), snap).await.unwrap();
        }
        let territories = TerritoryService::new((&deps).into());
        for (id, tier) in [("t1", 1), ("t2", 2)] {
            territories
                .upsert(
                    TerritoryId::new(id).unwrap(),
                    input(Some("def"), 0.0, 0.0, tier),
                )
                .await
                .unwrap();
        }
        Self {
            wars: WarService::new((&deps).into()),
            declarations: DeclarationService::new((&deps).into()),
            lifecycle: LifecycleService::new((&deps).into()),
            membership: MembershipService::new((&deps).into()),
            deps,
            h,
        }
    }

    pub(crate) fn command(&self, territories: &[&str], key: Option<&str>) -> DeclareCommand {
        DeclareCommand {
            request: DeclareRequest {
                attacker_clan_id: clan("att"),
                defender_clan_id: clan("def"),
                territory_ids: territories
                    .iter()
                    .map(|t| TerritoryId::new(*t).unwrap())
                    .collect(),
                phase_durations: Some(hourly()),
            },
            actor: player("att-leader"),
            idempotency_key: key.map(str::to_owned),
        }
    }

    pub(crate) async fn declare(&self) -> War {
        self.wars
            .declare(self.command(&["t1", "t2"], None))
            .await
            .unwrap()
            .war
    }

    pub(crate) async fn clan(&self, id: &str) -> Clan {
        self.deps.clan(&clan(id)).await.unwrap()
    }

    pub(crate) async fn territory(&self, id: &str) -> Territory {
        TerritoryService::new((&self.deps).into())
            .get(&TerritoryId::new(id).unwrap())
            .await
            .unwrap()
    }

    /// Moves the clock to the deadline of `target` and advances the war there.
    pub(crate) async fn reach(&self, war: &War, target: WarStatus) -> War {
        let at = war.phase_deadlines.deadline_of(target).unwrap();
        self.h.clock.set(at);
        self.lifecycle.advance(&war.war_id, target).await.unwrap().0
    }

    pub(crate) async fn score(&self, war: &War, id: &str, clan_id: &str, points: i64) {
        self.deps
            .scores
            .apply(ScoreDelta {
                war_id: war.war_id.clone(),
                dedupe_id: id.to_owned(),
                shards: war.score_shards,
                players: vec![PlayerPoints {
                    player_id: player(&format!("{clan_id}-m0")),
                    clan_id: clan(clan_id),
                    points,
                }],
                clans: vec![(clan(clan_id), points)],
                battle_kill: None,
                farm_guard: None,
                ledger: None,
            })
            .await
            .unwrap();
    }

    /// Everything stored, for "nothing was written" checks.
    pub(crate) async fn snapshot(&self) -> Vec<Option<Record>> {
        let mut keys = vec![
            RecordKey::Clan(clan("att")),
            RecordKey::Clan(clan("def")),
            RecordKey::Clan(clan("ally")),
            RecordKey::pair(&clan("att"), &clan("def")),
            RecordKey::Territory(TerritoryId::new("t1").unwrap()),
            RecordKey::Territory(TerritoryId::new("t2").unwrap()),
        ];
        let page = self
            .h
            .store
            .wars_of_clan(
                &clan("att"),
                None,
                PageRequest {
                    limit: 50,
                    cursor: None,
                },
            )
            .await
            .unwrap();
        keys.extend(page.items.iter().map(|w| RecordKey::War(w.war_id.clone())));
        let mut out = Vec::new();
        for key in keys {
            out.push(self.h.store.get(&key).await.unwrap());
        }
        out
    }
}
