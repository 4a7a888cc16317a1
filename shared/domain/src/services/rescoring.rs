//! Rescoring (disputes, cheater removal): an operator voids a player's or a clan's
//! contributions, or named ledger entries, in an ended war (`POST /admin/wars/{war_id}/void`).
//!
//! The war keeps its voids (in its rescoring audit trail); the ledger keeps every entry as
//! scored and its reads mark the voided ones. Scores, clan totals, winner (with its tie-break
//! on the territories held at the end) and the Elo change are recomputed from the whole ledger
//! by [`crate::scoring::rescore`], from what the tally kept on the war ([`crate::war::Tally`]), so the
//! result is exactly what the final tally would have given without the voided entries. Clans'
//! ratings move by the difference, and `WarRescored` goes out with the state change; the reward
//! plan follows from that event ([`super::rewards::RewardService::follow`]).
//!
//! Takes only the ports it uses ([`WarPorts`]): the store, the score board (the ledger),
//! the clock (retention), the id generator (event ids) and the deployment's rules.

use super::lifecycle::OperatorCommand;
use super::ServicePorts;
use super::WarPorts;
use crate::clan::Clan;
use crate::error::{DomainError, DomainResult};
use crate::events::DomainEvent;
use crate::ids::{ClanId, PlayerId, WarId};
use crate::ledger::{LedgerEntry, Void};
use crate::ports::{RecordKey, Transaction};
use crate::war::{Outcome, RatingChange, Rescore, ScoredResult, War, WarStatus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most rescores one war takes (each is kept on the war item).
pub const MAX_RESCORES: usize = 50;

/// `POST /admin/wars/{war_id}/void` body: exactly one of `player_id`, `clan_id`, `event_ids`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    #[serde(default)]
    pub player_id: Option<PlayerId>,
    #[serde(default)]
    pub clan_id: Option<ClanId>,
    #[serde(default)]
    pub event_ids: Option<Vec<String>>,
    pub reason: String,
}

impl VoidRequest {
    /// The selector, checked: exactly one of the three (an empty `event_ids` counts as none).
    pub fn void(&self) -> DomainResult<Void> {
        if self.event_ids.as_ref().is_some_and(Vec::is_empty) {
            return Err(DomainError::invalid(
                "event_ids",
                "must name at least one event id",
            ));
        }
        let void = Void {
            player_id: self.player_id.clone(),
            clan_id: self.clan_id.clone(),
            event_ids: self.event_ids.clone().unwrap_or_default(),
        };
        void.validate()?;
        Ok(void)
    }
}

/// The answer of a void: whether it rescored the war (false: everything it names was voided
/// before — nothing written), the rescore it made, and the war.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoidOutcome {
    pub rescored: bool,
    pub rescore: Option<Rescore>,
    pub war: War,
}

#[derive(Debug, Clone)]
pub struct RescoreService {
    ports: WarPorts,
}

impl RescoreService {
    pub fn new(ports: WarPorts) -> Self {
        Self { ports }
    }

    /// Voids what `void` names in the ended war and rescores it (see the module docs). Voiding
    /// what is already void changes nothing. Refused before any write: a war not ENDED (409
    /// `INVALID_WAR_STATE`), one ended before tallies were kept or past its ledger retention
    /// (409 `RESCORE_UNAVAILABLE`), a clan not in the war (422 `NOT_A_PARTICIPANT`), a selector
    /// matching no ledger entry or an event id not in the ledger (404
    /// `LEDGER_ENTRIES_NOT_FOUND`).
    pub async fn void(
        &self,
        war_id: &WarId,
        void: Void,
        op: &OperatorCommand,
    ) -> DomainResult<VoidOutcome> {
        op.validate()?;
        void.validate()?;
        let mut attempts = crate::retry::Attempts::new(&*self.ports.clock);
        loop {
            attempts.next().await?;
            let war = self.ports.war(war_id).await?;
            self.check(&war, &void)?;
            let entries = self
                .ports
                .scores
                .ledger_all(war_id, war.score_shards)
                .await?;
            let newly = newly_voided(&war, &entries, &void)?;
            if newly == 0 {
                return Ok(VoidOutcome {
                    rescored: false,
                    rescore: None,
                    war,
                });
            }
            if war.rescores.len() >= MAX_RESCORES {
                return Err(DomainError::RescoreUnavailable {
                    war_id: war_id.clone(),
                    reason: format!("it was rescored {MAX_RESCORES} times already"),
                });
            }
            let (war, rescore, tx) = self.rescore(war, &entries, void.clone(), newly, op).await?;
            match self.ports.commit(tx).await {
                Ok(()) => {
                    tracing::warn!(war_id = %war_id, rescore = rescore.rescore, voided = newly, operator = %op.by, "war rescored");
                    return Ok(VoidOutcome {
                        rescored: true,
                        rescore: Some(rescore),
                        war,
                    });
                }
                Err(DomainError::ConcurrentModification) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    fn check(&self, war: &War, void: &Void) -> DomainResult<()> {
        if war.status != WarStatus::Ended {
            return Err(DomainError::InvalidWarState {
                war_id: war.war_id.clone(),
                actual: war.status,
                expected: "ENDED",
            });
        }
        let unavailable = |reason: &str| DomainError::RescoreUnavailable {
            war_id: war.war_id.clone(),
            reason: reason.to_owned(),
        };
        if war.tally.is_none() {
            return Err(unavailable(
                "it ended before the tally kept what a rescore needs",
            ));
        }
        let rules = self.ports.rules_for(war);
        if self.ports.clock.now() >= crate::scoring::retention_end(war, &rules) {
            return Err(unavailable("its ledger is past its retention"));
        }
        if let Some(clan) = &void.clan_id {
            if war.side_of(clan).is_none() {
                return Err(DomainError::NotAParticipant {
                    clan_id: clan.clone(),
                    war_id: war.war_id.clone(),
                });
            }
        }
        Ok(())
    }

    /// The rescored war, its audit entry and the transaction: the war, the clans whose rating
    /// change moved, `ClanRatingChanged` for each and `WarRescored`.
    async fn rescore(
        &self,
        mut war: War,
        entries: &[LedgerEntry],
        void: Void,
        newly: usize,
        op: &OperatorCommand,
    ) -> DomainResult<(War, Rescore, Transaction)> {
        let rules = self.ports.rules_for(&war);
        let tally = war.tally.clone().expect("checked");
        let mut voids = war.voids();
        voids.push(void.clone());
        let before_ratings: BTreeMap<ClanId, i32> = tally
            .ratings
            .iter()
            .map(|r| (r.clan_id.clone(), r.old_rating))
            .collect();
        let mut result = crate::scoring::rescore(
            &war,
            entries,
            &voids,
            (tally.held_attacker, tally.held_defender),
            &before_ratings,
            &rules,
        );
        if war.outcome == Some(Outcome::Surrender) {
            // A surrender decided the war, whatever the scores: they change, the result not.
            result.winner = war.winner_side.expect("ended wars have a winner");
            result.outcome = Outcome::Surrender;
            result.ratings = tally
                .ratings
                .iter()
                .map(|r| (r.clan_id.clone(), r.old_rating, r.new_rating))
                .collect();
        }
        let before = ScoredResult::of(&war);
        war.sides.attacker.score = result.totals.attacker;
        war.sides.defender.score = result.totals.defender;
        war.winner_side = Some(result.winner);
        war.outcome = Some(result.outcome);
        war.final_clan_scores = war
            .all_clans()
            .into_iter()
            .map(|clan| {
                let points = result.totals.clans.get(&clan).copied().unwrap_or(0);
                (clan, points)
            })
            .collect();
        let touched: BTreeSet<&PlayerId> = entries
            .iter()
            .filter(|e| voids.iter().any(|v| v.covers(e)))
            .filter_map(|e| e.player_id.as_ref())
            .collect();
        war.rescored_players = touched
            .into_iter()
            .map(|p| {
                let points = result
                    .totals
                    .players
                    .get(p)
                    .map_or(0, |(_, points)| *points);
                (p.clone(), points)
            })
            .collect();

        // Ratings move by the difference between the new change and the one already applied
        // (other wars may have moved them since).
        let moves: Vec<(ClanId, i32)> = result
            .ratings
            .iter()
            .filter_map(|(clan, _, new)| {
                let applied = tally.ratings.iter().find(|r| &r.clan_id == clan)?;
                let delta = new - applied.new_rating;
                (delta != 0).then(|| (clan.clone(), delta))
            })
            .collect();
        let keys: Vec<RecordKey> = moves
            .iter()
            .map(|(c, _)| RecordKey::Clan(c.clone()))
            .collect();
        let mut fetched = self.ports.store.get_many(&keys).await?;
        let clans: Vec<Option<Clan>> = fetched.many(keys.len())?;
        let mut tx = Transaction::new();
        let mut rating_events = Vec::new();
        for ((clan_id, delta), clan) in moves.iter().zip(clans) {
            let mut clan = clan.ok_or_else(|| DomainError::ClanNotFound(clan_id.clone()))?;
            let old_rating = clan.rating;
            clan.rating += delta;
            rating_events.push(DomainEvent::ClanRatingChanged {
                clan_id: clan_id.clone(),
                old_rating,
                new_rating: clan.rating,
            });
            tx.update(&mut clan);
        }
        war.tally = Some(crate::war::Tally {
            ratings: result
                .ratings
                .iter()
                .map(|(clan_id, old, new)| RatingChange {
                    clan_id: clan_id.clone(),
                    old_rating: *old,
                    new_rating: *new,
                })
                .collect(),
            ..tally
        });
        let rescore = Rescore {
            rescore: war.rescore_number() + 1,
            by: op.by.clone(),
            principal: op.principal.clone(),
            reason: op.reason.clone(),
            at: self.ports.clock.now(),
            void,
            voided_entries: newly,
            before,
            after: ScoredResult::of(&war),
        };
        war.rescores.push(rescore.clone());
        tx.update(&mut war);
        let clans = war.all_clans();
        for event in rating_events {
            tx.emit(self.ports.event(Some(&war.war_id), clans.clone(), event));
        }
        tx.emit(self.ports.event(
            Some(&war.war_id),
            clans,
            DomainEvent::WarRescored(Box::new(rescore.clone())),
        ));
        Ok((war, rescore, tx))
    }
}

/// How many ledger entries `void` takes out that no earlier void of the war did; refuses a
/// selector that matches nothing in the ledger (an event id not in it, a player or clan
/// without entries).
fn newly_voided(war: &War, entries: &[LedgerEntry], void: &Void) -> DomainResult<usize> {
    let not_found = |selector: String| DomainError::LedgerEntriesNotFound {
        war_id: war.war_id.clone(),
        selector,
    };
    let missing: Vec<&str> = void
        .event_ids
        .iter()
        .filter(|id| !entries.iter().any(|e| &e.event_id == *id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(not_found(format!("event ids {}", missing.join(", "))));
    }
    let matching: Vec<&LedgerEntry> = entries.iter().filter(|e| void.covers(e)).collect();
    if matching.is_empty() {
        return Err(not_found(void.describe()));
    }
    let earlier = war.voids();
    let mut seen = BTreeSet::new();
    Ok(matching
        .into_iter()
        .filter(|e| !earlier.iter().any(|v| v.covers(e)))
        .filter(|e| seen.insert(e.event_id.as_str()))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clan::ClanSnapshot;
    use crate::config::Rules;
    use crate::declaration::{DeclareCommand, DeclareRequest};
    use crate::ids::TerritoryId;
    use crate::ledger::LedgerFilter;
    use crate::memory::{FakeClock, WorkflowCall};
    use crate::rewards::GrantStatus;
    use crate::scoring::BattleEvent;
    use crate::services::clans::ClanService;
    use crate::services::lifecycle::LifecycleService;
    use crate::services::rewards::steps::{self, Economy};
    use crate::services::rewards::RewardService;
    use crate::services::scores::ScoreService;
    use crate::services::territories::TerritoryService;
    use crate::services::wars::WarService;
    use crate::services::{Deps, MemoryHandles};
    use crate::territory::fixtures::input;
    use crate::war::{PhaseDurations, RewardStatus, WinnerSide};
    use chrono::{DateTime, Duration, Utc};

    fn t0() -> DateTime<Utc> {
        "2026-05-01T10:00:00Z".parse().unwrap()
    }

    fn clan(id: &str) -> ClanId {
        ClanId::new(id).unwrap()
    }

    fn player(id: &str) -> PlayerId {
        PlayerId::new(id).unwrap()
    }

    fn operator(reason: &str) -> OperatorCommand {
        OperatorCommand {
            by: player("ops-7"),
            principal: None,
            reason: reason.into(),
        }
    }

    fn cheater() -> Void {
        Void {
            player_id: Some(player("att-m0")),
            ..Void::default()
        }
    }

    fn kill(id: &str, at: DateTime<Utc>, killer: &str, victim: &str) -> BattleEvent {
        let clan_of = |p: &str| p.split('-').next().unwrap().to_owned();
        let event = serde_json::json!({
            "type": "kill", "event_id": id, "occurred_at": at,
            "killer_id": killer, "killer_clan_id": clan_of(killer), "killer_level": 10,
            "victim_id": victim, "victim_clan_id": clan_of(victim), "victim_level": 10,
        });
        serde_json::from_value(event).unwrap()
    }

    struct World {
        deps: Deps,
        h: MemoryHandles,
        wars: WarService,
    }

    impl World {
        /// `att` vs `def` over t1 (tier 1) and t2 (tier 2), both held by `def` to the end
        /// (2 h of ACTIVE: 10 + 20 hold points). The cheater `att-m0` kills five times, the
        /// honest `att-m1` once, `def-m0` and `def-m1` once each (10 points a kill): attacker
        /// 60, defender 20 + 30 = 50 — the attacker wins; without the cheater it is 10 to 50.
        async fn ended() -> (Self, War) {
            let mut kills: Vec<(String, String, String)> = (1..=5)
                .map(|i| (format!("cheat-{i}"), "att-m0".into(), format!("def-m{i}")))
                .collect();
            kills.push(("honest-1".into(), "att-m1".into(), "def-m6".into()));
            kills.push(("def-1".into(), "def-m0".into(), "att-m2".into()));
            kills.push(("def-2".into(), "def-m1".into(), "att-m3".into()));
            let (w, war) = Self::played(&kills).await;
            assert_eq!(
                w.deps
                    .scores
                    .ledger_all(&war.war_id, war.score_shards)
                    .await
                    .unwrap()
                    .len(),
                8 + 1,
                "eight kills and the defender's hold"
            );
            (w, war)
        }

        /// The war above with these kills `(event id, killer, victim)`, ended by its timers.
        async fn played(kills: &[(String, String, String)]) -> (Self, War) {
            let rules = Rules {
                phase_bounds: crate::config::Bounds {
                    min_s: 1,
                    max_s: 86_400,
                },
                ..Rules::default()
            };
            let (deps, h) = Deps::in_memory(rules, FakeClock::at(t0()));
            let clans = ClanService::new((&deps).into());
            for id in ["att", "def"] {
                let snap = ClanSnapshot {
                    name: format!("Clan {id}"),
                    leader_id: player(&format!("{id}-leader")),
                    officer_ids: vec![],
                    member_ids: (0..11).map(|i| player(&format!("{id}-m{i}"))).collect(),
                    level: 5,
                    rating: Some(1_000),
                    active: true,
                };
                clans.upsert(clan(id), snap).await.unwrap();
            }
            for (id, tier) in [("t1", 1), ("t2", 2)] {
                TerritoryService::new((&deps).into())
                    .upsert(
                        TerritoryId::new(id).unwrap(),
                        input(Some("def"), 0.0, 0.0, tier),
                    )
                    .await
                    .unwrap();
            }
            let wars = WarService::new((&deps).into());
            let lifecycle = LifecycleService::new((&deps).into());
            let war = wars
                .declare(DeclareCommand {
                    request: DeclareRequest {
                        attacker_clan_id: clan("att"),
                        defender_clan_id: clan("def"),
                        territory_ids: vec![
                            TerritoryId::new("t1").unwrap(),
                            TerritoryId::new("t2").unwrap(),
                        ],
                        phase_durations: Some(PhaseDurations {
                            declared_s: 3_600,
                            preparation_s: 3_600,
                            active_s: 7_200,
                            ending_s: 600,
                        }),
                    },
                    actor: player("att-leader"),
                    idempotency_key: None,
                })
                .await
                .unwrap()
                .war;
            let d = war.phase_deadlines;
            for (target, at) in [
                (WarStatus::Preparation, d.preparation_at),
                (WarStatus::Active, d.active_at),
            ] {
                h.clock.set(at);
                lifecycle.advance(&war.war_id, target).await.unwrap();
            }
            let at = d.active_at + Duration::minutes(10);
            let events: Vec<BattleEvent> = kills
                .iter()
                .map(|(id, killer, victim)| kill(id, at, killer, victim))
                .collect();
            h.clock.set(at + Duration::seconds(1));
            ScoreService::new((&deps).into())
                .ingest(&war.war_id, events)
                .await
                .unwrap();
            h.clock.set(d.ending_at);
            lifecycle
                .advance(&war.war_id, WarStatus::Ending)
                .await
                .unwrap();
            h.clock.set(d.ended_at);
            let (war, _) = lifecycle.finish(&war.war_id).await.unwrap();
            (Self { deps, h, wars }, war)
        }

        fn rescoring(&self) -> RescoreService {
            RescoreService::new((&self.deps).into())
        }

        /// What the war-endings queue's consumer does with every event published so far.
        async fn react_to_published(&self) {
            for event in self.h.events.published() {
                self.wars.react(&event).await.unwrap();
            }
        }

        async fn rating(&self, id: &str) -> i32 {
            self.deps.clan(&clan(id)).await.unwrap().rating
        }

        /// The war's totals recomputed from its whole ledger minus its voids.
        async fn recomputed(&self, war: &War) -> crate::ledger::Totals {
            let entries = self
                .deps
                .scores
                .ledger_all(&war.war_id, war.score_shards)
                .await
                .unwrap();
            let voids = war.voids();
            let mut totals = crate::ledger::recompute(
                entries
                    .iter()
                    .filter(|e| !voids.iter().any(|v| v.covers(e))),
            );
            for clan in war.all_clans() {
                totals.clans.entry(clan).or_insert(0);
            }
            totals
        }
    }

    #[tokio::test]
    async fn voiding_a_cheater_after_the_war_flips_the_winner_ratings_and_scores_exactly() {
        let (w, ended) = World::ended().await;
        assert_eq!(ended.winner_side, Some(WinnerSide::Attacker));
        assert_eq!(
            (ended.sides.attacker.score, ended.sides.defender.score),
            (60, 50)
        );
        assert_eq!((w.rating("att").await, w.rating("def").await), (1_016, 984));
        let tally = ended.tally.clone().unwrap();
        assert_eq!((tally.held_attacker, tally.held_defender), (0, 2));
        // The stored totals are what the ledger makes them.
        let totals = w.recomputed(&ended).await;
        assert_eq!(totals.clans, ended.final_clan_scores);

        let done = w
            .rescoring()
            .void(&ended.war_id, cheater(), &operator("aimbot, ticket 4711"))
            .await
            .unwrap();
        assert!(done.rescored);
        let war = done.war;
        assert_eq!(
            (war.sides.attacker.score, war.sides.defender.score),
            (10, 50)
        );
        assert_eq!(
            (war.winner_side, war.outcome),
            (Some(WinnerSide::Defender), Some(Outcome::Score))
        );
        assert_eq!(war.final_clan_scores[&clan("att")], 10);
        assert_eq!(w.recomputed(&war).await.clans, war.final_clan_scores);
        // Ratings move from their pre-war values as the new result says.
        assert_eq!((w.rating("att").await, w.rating("def").await), (984, 1_016));
        let audit = &war.rescores[0];
        assert_eq!(
            (
                audit.rescore,
                audit.by.as_str(),
                audit.reason.as_str(),
                audit.voided_entries
            ),
            (1, "ops-7", "aimbot, ticket 4711", 5)
        );
        assert_eq!(
            (audit.before.attacker_score, audit.after.attacker_score),
            (60, 10)
        );
        assert_eq!(audit.before.winner_side, Some(WinnerSide::Attacker));
        assert_eq!(audit.after.winner_side, Some(WinnerSide::Defender));
        let types = w.h.events.types();
        assert_eq!(types.iter().filter(|t| **t == "WarRescored").count(), 1);
        assert_eq!(
            types.iter().filter(|t| **t == "ClanRatingChanged").count(),
            4,
            "two at the end, two at the rescore"
        );

        // Reads follow: the scoreboard, the player, the ledger.
        let scores = ScoreService::new((&w.deps).into());
        let board = scores.scoreboard(&war.war_id, 10).await.unwrap();
        assert_eq!(
            (board.sides.attacker.score, board.sides.defender.score),
            (10, 50)
        );
        assert!(board
            .top_players
            .iter()
            .all(|p| p.player_id != player("att-m0")));
        assert_eq!(board.top_players.len(), 3);
        assert_eq!(
            scores
                .player(&war.war_id, &player("att-m0"))
                .await
                .unwrap()
                .points,
            0
        );
        assert_eq!(
            scores
                .player(&war.war_id, &player("att-m1"))
                .await
                .unwrap()
                .points,
            10
        );
        let page = scores
            .ledger(&war.war_id, &LedgerFilter::default(), 100, None)
            .await
            .unwrap();
        for entry in &page.items {
            let cheat = entry.player_id == Some(player("att-m0"));
            assert_eq!(entry.voided_by, cheat.then_some(1), "{}", entry.event_id);
        }

        // Voiding the same again, or an entry it covers, changes nothing.
        for again in [
            cheater(),
            Void {
                event_ids: vec!["cheat-3".into()],
                ..Void::default()
            },
        ] {
            let same = w
                .rescoring()
                .void(&war.war_id, again, &operator("again"))
                .await
                .unwrap();
            assert!(!same.rescored);
            assert_eq!(same.war.version, war.version);
        }
        assert_eq!(w.h.events.types().len(), types.len());
    }

    #[tokio::test]
    async fn a_void_is_refused_before_any_write_when_it_names_nothing_or_the_war_has_not_ended() {
        let (w, ended) = World::ended().await;
        let refuse = |void: Void| {
            let svc = w.rescoring();
            let war_id = ended.war_id.clone();
            async move { svc.void(&war_id, void, &operator("x")).await.unwrap_err() }
        };
        let unknown = refuse(Void {
            event_ids: vec!["cheat-1".into(), "nope".into()],
            ..Void::default()
        })
        .await;
        assert_eq!(
            (unknown.code(), unknown.class()),
            ("LEDGER_ENTRIES_NOT_FOUND", crate::ErrorClass::NotFound)
        );
        assert!(unknown.to_string().contains("nope"));
        let nobody = refuse(Void {
            player_id: Some(player("att-m9")),
            ..Void::default()
        })
        .await;
        assert_eq!(nobody.code(), "LEDGER_ENTRIES_NOT_FOUND");
        let stranger = refuse(Void {
            clan_id: Some(clan("other")),
            ..Void::default()
        })
        .await;
        assert_eq!(stranger.code(), "NOT_A_PARTICIPANT");
        let two = refuse(Void {
            clan_id: Some(clan("att")),
            ..cheater()
        })
        .await;
        assert_eq!(
            (two.code(), two.class()),
            ("INVALID_REQUEST", crate::ErrorClass::Malformed)
        );
        let none = refuse(Void::default()).await;
        assert_eq!(none.class(), crate::ErrorClass::Malformed);
        let blank = w
            .rescoring()
            .void(&ended.war_id, cheater(), &operator("  "))
            .await
            .unwrap_err();
        assert_eq!(blank.class(), crate::ErrorClass::Malformed);
        // A war past its ledger retention cannot be rescored any more.
        w.h.clock.advance(Duration::days(365));
        assert_eq!(refuse(cheater()).await.code(), "RESCORE_UNAVAILABLE");
        let after = w.deps.war(&ended.war_id).await.unwrap();
        assert_eq!(after.version, ended.version);
        assert!(after.rescores.is_empty());
    }

    #[tokio::test]
    async fn a_clan_void_takes_its_hold_points_too_and_voids_compose() {
        let (w, ended) = World::ended().await;
        let def = Void {
            clan_id: Some(clan("def")),
            ..Void::default()
        };
        let war = w
            .rescoring()
            .void(&ended.war_id, def, &operator("collusion"))
            .await
            .unwrap()
            .war;
        assert_eq!(
            (war.sides.attacker.score, war.sides.defender.score),
            (60, 0)
        );
        assert_eq!(war.winner_side, Some(WinnerSide::Attacker));
        let war = w
            .rescoring()
            .void(&ended.war_id, cheater(), &operator("aimbot"))
            .await
            .unwrap()
            .war;
        // 10 to 0: the attacker still wins; the ratings keep their first change.
        assert_eq!(
            (war.sides.attacker.score, war.sides.defender.score),
            (10, 0)
        );
        assert_eq!(war.rescore_number(), 2);
        assert_eq!(w.recomputed(&war).await.clans, war.final_clan_scores);
        assert_eq!((w.rating("att").await, w.rating("def").await), (1_016, 984));
    }

    #[tokio::test]
    async fn rewards_already_paid_are_corrected_by_a_second_run_and_paying_it_twice_changes_nothing(
    ) {
        let (w, ended) = World::ended().await;
        let economy = Economy::default();
        let rewards = RewardService::new((&w.deps).into());
        let distribute = || steps::distribute(&rewards, &economy, &ended.war_id);
        let paid = distribute().await.unwrap().unwrap();
        assert_eq!(paid.status, RewardStatus::Distributed);
        // Winner pool 10_000 (cap 2_000 each), loser pool 2_000 split 1:1 between def-m0, -m1.
        assert_eq!(economy.paid(&player("att-m0")), 2_000);
        assert_eq!(economy.paid(&player("def-m0")), 1_000);

        w.rescoring()
            .void(&ended.war_id, cheater(), &operator("aimbot"))
            .await
            .unwrap();
        w.react_to_published().await;
        let plan = rewards.get(&ended.war_id).await.unwrap();
        assert_eq!(
            (plan.status, plan.rescore, plan.run.as_deref()),
            (RewardStatus::Pending, 1, Some("r1"))
        );
        let run = WorkflowCall::StartRewardsRun(ended.war_id.clone(), "r1".into());
        assert!(w.h.workflows.calls().contains(&run));
        // Every grant changed: the cheater's is gone, the honest attacker has the loser pool
        // (1_666 → 2_000), the defenders the winner pool (1_000 → 2_000, capped).
        let keys: Vec<String> = plan
            .superseded
            .iter()
            .map(|g| g.idempotency_key(&ended.war_id))
            .collect();
        let war = ended.war_id.as_str();
        assert_eq!(
            keys,
            vec![
                format!("{war}#att-m0#gold"),
                format!("{war}#att-m1#gold"),
                format!("{war}#def-m0#gold"),
                format!("{war}#def-m1#gold")
            ]
        );
        let pending: Vec<String> = plan
            .grants
            .iter()
            .filter(|g| g.status == GrantStatus::Pending)
            .map(|g| g.idempotency_key(&ended.war_id))
            .collect();
        assert_eq!(
            pending,
            vec![
                format!("{war}#att-m1#gold#r1"),
                format!("{war}#def-m0#gold#r1"),
                format!("{war}#def-m1#gold#r1")
            ]
        );

        // The run r1 (the same saga) revokes the superseded grants and pays the difference.
        let corrected = distribute().await.unwrap().unwrap();
        assert!(corrected
            .superseded
            .iter()
            .all(|g| g.status == GrantStatus::Revoked));
        assert_eq!(corrected.status, RewardStatus::Distributed);
        assert_eq!(economy.paid(&player("att-m0")), 0);
        assert_eq!(economy.paid(&player("att-m1")), 2_000);
        assert_eq!(economy.paid(&player("def-m0")), 2_000);
        assert_eq!(economy.paid(&player("def-m1")), 2_000);
        assert_eq!(economy.total_paid(), corrected.total_amount() as i64);
        w.react_to_published().await;
        let calls = economy.grant_calls();
        assert_eq!(distribute().await.unwrap().unwrap(), corrected);
        assert_eq!(economy.grant_calls(), calls);
        assert_eq!(economy.total_paid(), 6_000);
    }

    #[tokio::test]
    async fn a_void_before_the_plan_is_made_makes_the_plan_follow_the_new_scores() {
        let (w, ended) = World::ended().await;
        w.rescoring()
            .void(&ended.war_id, cheater(), &operator("aimbot"))
            .await
            .unwrap();
        w.react_to_published().await;
        let economy = Economy::default();
        let rewards = RewardService::new((&w.deps).into());
        let plan = steps::distribute(&rewards, &economy, &ended.war_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (plan.status, plan.rescore, plan.run.clone()),
            (RewardStatus::Distributed, 1, None)
        );
        assert!(plan.grants.iter().all(|g| g.player_id != player("att-m0")));
        assert_eq!(economy.paid(&player("def-m0")), 2_000);
        assert_eq!(economy.paid(&player("att-m1")), 2_000);
    }

    fn member() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        (prop_oneof![Just("att"), Just("def")], 0..4u8).prop_map(|(c, i)| format!("{c}-m{i}"))
    }

    fn a_void(kills: usize) -> impl proptest::strategy::Strategy<Value = Void> {
        use proptest::prelude::*;
        prop_oneof![
            member().prop_map(|p| Void {
                player_id: Some(player(&p)),
                ..Void::default()
            }),
            prop_oneof![Just("att"), Just("def")].prop_map(|c| Void {
                clan_id: Some(clan(c)),
                ..Void::default()
            }),
            proptest::collection::btree_set(0..kills.max(1), 1..4).prop_map(|ids| Void {
                event_ids: ids.into_iter().map(|i| format!("k{i}")).collect(),
                ..Void::default()
            }),
        ]
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Whatever was scored and whatever is voided, in any order and repeated: after every
        /// void the war's stored totals (sides, clans, rescored players) are exactly what its
        /// ledger without the voided entries makes them, and the winner is the one the rules
        /// pick from them.
        #[test]
        fn after_any_voids_the_stored_totals_are_the_ledger_s(
            (pairs, voids) in proptest::collection::vec((member(), member()), 1..12)
                .prop_flat_map(|pairs| {
                    let n = pairs.len();
                    (proptest::strategy::Just(pairs), proptest::collection::vec(a_void(n), 1..5))
                })
        ) {
            use proptest::prelude::*;
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                // A kill of one's own clan is refused by the rules; those simply never score.
                let kills: Vec<(String, String, String)> = pairs
                    .iter()
                    .enumerate()
                    .map(|(i, (k, v))| (format!("k{i}"), k.clone(), v.clone()))
                    .collect();
                let (w, war) = World::played(&kills).await;
                let ids: Vec<String> = w
                    .deps
                    .scores
                    .ledger_all(&war.war_id, war.score_shards)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.event_id)
                    .collect();
                for void in voids {
                    let known = void.event_ids.iter().all(|id| ids.contains(id));
                    match w.rescoring().void(&war.war_id, void, &operator("p")).await {
                        Ok(_) => {}
                        Err(err) if err.class() == crate::ErrorClass::NotFound || !known => continue,
                        Err(err) => panic!("{err}"),
                    }
                    let war = w.deps.war(&war.war_id).await.unwrap();
                    let totals = w.recomputed(&war).await;
                    prop_assert_eq!(&totals.clans, &war.final_clan_scores);
                    let (a, d) = crate::scoring::side_totals(&war, &totals.clans);
                    prop_assert_eq!((a, d), (war.sides.attacker.score, war.sides.defender.score));
                    for (p, points) in &war.rescored_players {
                        let expected = totals.players.get(p).map_or(0, |(_, n)| *n);
                        prop_assert_eq!(*points, expected);
                    }
                    let tally = war.tally.clone().unwrap();
                    let (winner, _) = crate::scoring::decide_winner(
                        a, d, tally.held_attacker, tally.held_defender,
                    );
                    prop_assert_eq!(war.winner_side, Some(winner));
                }
                Ok(())
            })?;
        }
    }
}
