//! Territory operations (SPEC §4): upsert by the world service, reads, the nearby query over the
//! cell index, capture, fortify, and the release of a war's territories when it closes.

use super::{require_role, Deps};
use crate::clan::{Clan, Role};
use crate::error::{DomainError, DomainResult};
use crate::events::{DomainEvent, EventEnvelope};
use crate::ids::{ClanId, PlayerId, TerritoryId, WarId};
use crate::ledger::{EffectKind, LedgerEntry};
use crate::ports::{RecordKey, ScoreDelta, StoreError, StoreExt, Transaction};
use crate::spatial::{cells_covering, validate_query};
use crate::territory::{nearest_first, CaptureChange, Position, Territory, TerritoryInput};
use crate::war::{Capture, War};
use chrono::{DateTime, Utc};

/// Longest accepted capture dedupe id (it becomes part of a score-board key).
/// Room for `api-capture#<territory id>#<Idempotency-Key>` (12 + 64 + 1 + 128 bytes).
const MAX_DEDUPE_ID_LEN: usize = 256;

/// A capture, from the API (`actor` set) or from batch ingestion (trusted game server, no actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureCommand {
    pub territory_id: TerritoryId,
    pub war_id: WarId,
    pub clan_id: ClanId,
    pub actor: Option<PlayerId>,
    /// Makes the capture's points count once: the event id, or an id derived from the request.
    pub dedupe_id: String,
    /// When it happened, as the game server reports it (batch events always say; the API may):
    /// the time its hold points count from, and what lets a late report count during ENDING.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// A committed capture: the territory as stored now, and the points it scored.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureReceipt {
    pub territory: Territory,
    pub points: i64,
}

/// How one capture attempt ended.
enum Attempt {
    Committed(CaptureReceipt),
    /// The score write's dedupe id was applied before: this capture already happened.
    Duplicate,
    /// A territory or war write lost the version race.
    Conflict,
}

/// Territory operations over the ports.
#[derive(Debug, Clone)]
pub struct TerritoryService {
    deps: Deps,
}

impl TerritoryService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    async fn load(&self, id: &TerritoryId) -> DomainResult<Option<Territory>> {
        Ok(self
            .deps
            .store
            .load(RecordKey::Territory(id.clone()))
            .await?)
    }

    /// The territory, or `TerritoryNotFound`.
    pub async fn get(&self, id: &TerritoryId) -> DomainResult<Territory> {
        self.load(id)
            .await?
            .ok_or_else(|| DomainError::TerritoryNotFound(id.clone()))
    }

    /// `PUT /territories/{id}`: inserts, or updates at the read version. A PUT that changes
    /// nothing writes nothing (retries keep the version). The owner clan is not required to be
    /// known yet: the guild and world services sync independently. No event: SPEC §9 has none.
    pub async fn upsert(&self, id: TerritoryId, input: TerritoryInput) -> DomainResult<Territory> {
        input.validate()?;
        let rules = &self.deps.rules;
        let mut tx = Transaction::new();
        let territory = match self.load(&id).await? {
            Some(existing) if existing.matches_input(&input, rules) => return Ok(existing),
            Some(mut existing) => {
                existing.apply_input(input, rules)?;
                tx.update(&mut existing);
                existing
            }
            None => {
                let mut created = Territory::new(id, input, rules)?;
                tx.insert(&mut created);
                created
            }
        };
        self.deps.commit(tx).await?;
        Ok(territory)
    }

    /// Territories within `radius` of `(x, y)`, nearest first (ties by id), with their
    /// distances. Reads only the cells the circle touches.
    pub async fn nearby(&self, x: f64, y: f64, radius: f64) -> DomainResult<Vec<(Territory, f64)>> {
        validate_query(x, y, radius, &self.deps.rules)?;
        let cells = cells_covering(x, y, radius, self.deps.rules.cell_size_m);
        let candidates = self.deps.store.territories_in_cells(&cells).await?;
        Ok(nearest_first(Position { x, y }, radius, candidates))
    }

    /// Captures a contested territory for `cmd.clan_id` (rules in [`Territory::capture`]).
    ///
    /// One transaction: the capture's score delta (dedupe id `cmd.dedupe_id`), the territory,
    /// the war (its capture log; the versioned write also makes a capture lose against a
    /// concurrent phase change), and `TerritoryCaptured`. A lost version race is retried on
    /// fresh reads, so the rules are always checked against the state that is committed.
    ///
    /// Duplicates answer `AlreadyOwner` (409), never `ConcurrentModification`: retrying a
    /// duplicate cannot succeed, and the capture it repeats did take effect. That is the answer
    /// when the rules see the clan already owning the territory, when the store reports the
    /// dedupe id as applied, and when a conflict's re-read finds this capture recorded.
    pub async fn capture(&self, cmd: CaptureCommand) -> DomainResult<CaptureReceipt> {
        if cmd.dedupe_id.is_empty() || cmd.dedupe_id.len() > MAX_DEDUPE_ID_LEN {
            return Err(DomainError::invalid(
                "dedupe_id",
                format!("must be 1..={MAX_DEDUPE_ID_LEN} bytes"),
            ));
        }
        let skew = chrono::Duration::seconds(self.deps.rules.max_clock_skew_s);
        if cmd
            .occurred_at
            .is_some_and(|at| at > self.deps.clock.now() + skew)
        {
            return Err(DomainError::invalid("occurred_at", "lies in the future"));
        }
        // Another write to the territory or war (another capture, a battle, a phase change)
        // winning the optimistic-lock race is re-tried on fresh reads.
        let cmd = &cmd;
        crate::retry::optimistic(&*self.deps.clock, || async move {
            match self.try_capture(cmd).await? {
                Attempt::Committed(receipt) => Ok(receipt),
                Attempt::Duplicate => Err(DomainError::AlreadyOwner(cmd.clan_id.clone())),
                Attempt::Conflict if self.capture_recorded(cmd).await? => {
                    Err(DomainError::AlreadyOwner(cmd.clan_id.clone()))
                }
                Attempt::Conflict => Err(DomainError::ConcurrentModification),
            }
        })
        .await
    }

    /// One read (the territory, the war and, for a player, their clan), one transaction.
    async fn try_capture(&self, cmd: &CaptureCommand) -> DomainResult<Attempt> {
        let mut keys = vec![
            RecordKey::Territory(cmd.territory_id.clone()),
            RecordKey::War(cmd.war_id.clone()),
        ];
        if cmd.actor.is_some() {
            keys.push(RecordKey::Clan(cmd.clan_id.clone()));
        }
        let mut fetched = self.deps.store.get_many(&keys).await?;
        let territory: Option<Territory> = fetched.one()?;
        let war: Option<War> = fetched.one()?;
        if let Some(actor) = &cmd.actor {
            let clan: Clan = fetched
                .one()?
                .ok_or_else(|| DomainError::ClanNotFound(cmd.clan_id.clone()))?;
            require_role(&clan, actor, Role::Member)?;
        }
        let mut territory =
            territory.ok_or_else(|| DomainError::TerritoryNotFound(cmd.territory_id.clone()))?;
        let mut war = war.ok_or_else(|| DomainError::WarNotFound(cmd.war_id.clone()))?;
        let at = cmd.occurred_at.unwrap_or_else(|| self.deps.clock.now());
        let change = territory.capture(&war, &cmd.clan_id, at, &self.deps.rules_for(&war))?;
        war.captures.push(Capture {
            territory_id: change.territory_id.clone(),
            from_clan_id: change.from.clone(),
            to_clan_id: change.to.clone(),
            side: change.side,
            at,
        });
        let mut tx = Transaction::new();
        // First, so a backend reporting only the first failed condition names the duplicate.
        let score_write = tx.score(ScoreDelta {
            war_id: war.war_id.clone(),
            dedupe_id: cmd.dedupe_id.clone(),
            shards: war.score_shards,
            players: Vec::new(),
            clans: vec![(change.to.clone(), change.points)],
            battle_kill: None,
            farm_guard: None,
            ledger: Some(Box::new(LedgerEntry::new(
                &war,
                &self.deps.rules,
                cmd.dedupe_id.clone(),
                EffectKind::Capture,
                at,
                None,
                change.to.clone(),
                change.side,
                change.points,
            ))),
        });
        tx.update(&mut territory);
        tx.update(&mut war);
        tx.emit(self.captured_event(&war.war_id, &change));
        match self.deps.store.commit(tx).await {
            Ok(()) => Ok(Attempt::Committed(CaptureReceipt {
                territory,
                points: change.points,
            })),
            Err(StoreError::Conflict { index: Some(i) }) if i == score_write => {
                Ok(Attempt::Duplicate)
            }
            Err(StoreError::Conflict { .. }) => Ok(Attempt::Conflict),
            Err(other) => Err(other.into()),
        }
    }

    fn captured_event(&self, war_id: &WarId, change: &CaptureChange) -> EventEnvelope {
        let clan_ids = std::iter::once(change.to.clone())
            .chain(change.from.clone())
            .collect();
        self.deps.event(
            Some(war_id),
            clan_ids,
            DomainEvent::TerritoryCaptured {
                territory_id: change.territory_id.clone(),
                from_clan_id: change.from.clone(),
                to_clan_id: change.to.clone(),
                side: change.side,
                points: change.points,
            },
        )
    }

    /// Whether the territory is owned by the command's clan with that capture in the war's log.
    async fn capture_recorded(&self, cmd: &CaptureCommand) -> DomainResult<bool> {
        let territory = self.get(&cmd.territory_id).await?;
        let war = self.deps.war(&cmd.war_id).await?;
        Ok(territory.owner_clan_id.as_ref() == Some(&cmd.clan_id)
            && war
                .captures
                .iter()
                .any(|c| c.territory_id == cmd.territory_id && c.to_clan_id == cmd.clan_id))
    }

    /// `POST /territories/{id}/fortify` by a leader or officer of the owner clan (rules in
    /// [`Territory::fortify`]). When a not-yet-ACTIVE war contests the territory, the war is
    /// written back at its read version too: that makes the fortify fail rather than slip in if
    /// the war turns ACTIVE between the read and the commit.
    pub async fn fortify(
        &self,
        id: TerritoryId,
        clan_id: ClanId,
        actor: PlayerId,
    ) -> DomainResult<Territory> {
        let mut fetched = self
            .deps
            .store
            .get_many(&[
                RecordKey::Territory(id.clone()),
                RecordKey::Clan(clan_id.clone()),
            ])
            .await?;
        let territory: Option<Territory> = fetched.one()?;
        let clan: Option<Clan> = fetched.one()?;
        let mut territory = territory.ok_or_else(|| DomainError::TerritoryNotFound(id.clone()))?;
        let clan = clan.ok_or_else(|| DomainError::ClanNotFound(clan_id.clone()))?;
        require_role(&clan, &actor, Role::Officer)?;
        let mut war = self.contesting_war(&territory).await?;
        let level = territory.fortify(&clan_id, war.as_ref(), &self.deps.rules)?;
        let mut tx = Transaction::new();
        tx.update(&mut territory);
        if let Some(war) = war.as_mut().filter(|w| !w.status.is_terminal()) {
            tx.update(war);
        }
        tx.emit(self.deps.event(
            territory.contested_by.as_ref(),
            vec![clan_id],
            DomainEvent::TerritoryFortified {
                territory_id: id,
                defense_level: level,
            },
        ));
        self.deps.commit(tx).await?;
        Ok(territory)
    }

    /// The war named by `contested_by`; a dangling id (war gone) counts as not contested.
    async fn contesting_war(&self, territory: &Territory) -> DomainResult<Option<War>> {
        match &territory.contested_by {
            None => Ok(None),
            Some(war_id) => Ok(self.deps.store.load(RecordKey::War(war_id.clone())).await?),
        }
    }

    /// For the code that closes a war (end, surrender, cancellation, failed declaration): adds
    /// to `tx` the release of every territory of `territories` (the war's, as just read) that
    /// `war` still contests — a versioned update with `contested_by` cleared (owners stay) and
    /// a `TerritoryReleased` event each — and returns them as they will be stored. Territories
    /// already released or contested by another war are skipped, so calling it again is
    /// harmless. The caller commits `tx` (with its own war update) and must not write these
    /// territories in the same transaction.
    pub fn release_for_war(
        &self,
        war: &War,
        territories: Vec<Territory>,
        tx: &mut Transaction,
    ) -> Vec<Territory> {
        let mut released = Vec::new();
        for mut territory in territories {
            if !war.territory_ids.contains(&territory.territory_id)
                || !territory.release(&war.war_id)
            {
                continue;
            }
            tx.update(&mut territory);
            tx.emit(self.deps.event(
                Some(&war.war_id),
                war.all_clans(),
                DomainEvent::TerritoryReleased {
                    territory_id: territory.territory_id.clone(),
                    owner_clan_id: territory.owner_clan_id.clone(),
                },
            ));
            released.push(territory);
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clan::fixtures::clan;
    use crate::config::Rules;
    use crate::config::DEFAULT_SCORE_SHARDS;
    use crate::memory::{FakeClock, RacingStore};
    use crate::ports::{Outbox, Record, ScoreBoard, Store};
    use crate::services::MemoryHandles;
    use crate::territory::fixtures::input;
    use crate::war::fixtures::seconds;
    use crate::war::{Side, WarStatus};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }
    fn tid(id: &str) -> TerritoryId {
        TerritoryId::new(id).unwrap()
    }
    fn cid(id: &str) -> ClanId {
        ClanId::new(id).unwrap()
    }
    fn pid(id: &str) -> PlayerId {
        PlayerId::new(id).unwrap()
    }
    fn war_id() -> WarId {
        WarId::new("war-1").unwrap()
    }

    /// Clans `att`, `def`, `stranger`; war `war-1` (att vs def) contesting `t1` (def's, tier 3,
    /// defense 5); `t2` owned by def and uncontested. The clock stands at `status`'s start.
    struct World {
        svc: TerritoryService,
        deps: Deps,
        h: MemoryHandles,
    }

    fn war_in(status: WarStatus) -> War {
        let mut war = War::declare(
            war_id(),
            cid("att"),
            cid("def"),
            vec![tid("t1")],
            seconds(60),
            t0(),
        );
        let d = war.phase_deadlines;
        for (target, at) in [
            (WarStatus::Preparation, d.preparation_at),
            (WarStatus::Active, d.active_at),
            (WarStatus::Ending, d.ending_at),
        ] {
            if war.status < status {
                war.advance(target, at).unwrap();
            }
        }
        war
    }

    async fn world(status: WarStatus) -> World {
        let mut war = war_in(status);
        let now = war.transitions.last().map_or(t0(), |t| t.at);
        let (deps, h) = Deps::in_memory(Rules::default(), FakeClock::at(now));
        let mut tx = Transaction::new();
        for id in ["att", "def", "stranger"] {
            tx.insert(&mut clan(id, 12));
        }
        let mut t1 =
            Territory::new(tid("t1"), input(Some("def"), 100.0, 100.0, 3), &deps.rules).unwrap();
        t1.defense_level = 5;
        t1.contest(&war.war_id).unwrap();
        let mut t2 =
            Territory::new(tid("t2"), input(Some("def"), 900.0, 100.0, 1), &deps.rules).unwrap();
        tx.insert(&mut t1);
        tx.insert(&mut t2);
        tx.insert(&mut war);
        deps.commit(tx).await.unwrap();
        World {
            svc: TerritoryService::new(deps.clone()),
            deps,
            h,
        }
    }

    /// Everything a rejected call could have touched.
    type Snapshot = (Vec<Option<Record>>, usize, BTreeMap<ClanId, i64>, usize);

    async fn snapshot(w: &World) -> Snapshot {
        let mut records = Vec::new();
        for key in [
            RecordKey::Territory(tid("t1")),
            RecordKey::Territory(tid("t2")),
            RecordKey::War(war_id()),
        ] {
            records.push(w.h.store.get(&key).await.unwrap());
        }
        let outbox = w.h.store.pending(1_000).await.unwrap().len();
        let totals =
            w.h.store
                .clan_totals(&war_id(), DEFAULT_SCORE_SHARDS)
                .await
                .unwrap();
        (records, outbox, totals, w.h.events.published().len())
    }

    fn cmd(territory: &str, clan: &str, actor: Option<&str>, dedupe: &str) -> CaptureCommand {
        CaptureCommand {
            territory_id: tid(territory),
            war_id: war_id(),
            clan_id: cid(clan),
            actor: actor.map(pid),
            dedupe_id: dedupe.to_owned(),
            occurred_at: None,
        }
    }

    async fn totals(w: &World) -> BTreeMap<ClanId, i64> {
        w.h.store
            .clan_totals(&war_id(), DEFAULT_SCORE_SHARDS)
            .await
            .unwrap()
    }

    // ---- upsert / get / nearby -----------------------------------------------------------

    #[tokio::test]
    async fn upsert_inserts_a_new_territory_at_version_one_in_its_cell() {
        let w = world(WarStatus::Declared).await;
        let t = w
            .svc
            .upsert(tid("t9"), input(None, -10.0, 2_000.0, 2))
            .await
            .unwrap();
        assert_eq!(
            (t.version, t.defense_level, t.cell.to_string().as_str()),
            (1, 1, "-1:2")
        );
        assert_eq!(w.svc.get(&tid("t9")).await.unwrap(), t);
    }

    #[tokio::test]
    async fn upsert_updates_at_the_read_version_and_a_repeated_put_writes_nothing() {
        let w = world(WarStatus::Declared).await;
        let body = input(Some("att"), 5_000.0, 0.0, 1);
        let updated = w.svc.upsert(tid("t2"), body.clone()).await.unwrap();
        assert_eq!((updated.version, updated.cell.cx), (2, 5));
        assert_eq!(updated.owner_clan_id, Some(cid("att")));
        let again = w.svc.upsert(tid("t2"), body).await.unwrap();
        assert_eq!(again.version, 2);
    }

    #[tokio::test]
    async fn upsert_refuses_a_new_owner_for_a_contested_territory_and_writes_nothing() {
        let w = world(WarStatus::Declared).await;
        let before = snapshot(&w).await;
        let err = w
            .svc
            .upsert(tid("t1"), input(Some("att"), 100.0, 100.0, 3))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.class()),
            ("TERRITORY_UNDER_ATTACK", crate::ErrorClass::Conflict)
        );
        assert_eq!(snapshot(&w).await, before);
        // Same owner: the world service may still rename or move it.
        let renamed = w
            .svc
            .upsert(tid("t1"), input(Some("def"), 100.0, 100.0, 3))
            .await
            .unwrap();
        assert_eq!(renamed.contested_by, Some(war_id()));
    }

    #[tokio::test]
    async fn upsert_rejects_invalid_input_before_any_write() {
        let w = world(WarStatus::Declared).await;
        let before = snapshot(&w).await;
        let mut bad = input(None, 0.0, 0.0, 1);
        bad.tier = 7;
        let err = w.svc.upsert(tid("t2"), bad.clone()).await.unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Malformed);
        assert!(w.svc.upsert(tid("t9"), bad).await.is_err());
        assert_eq!(snapshot(&w).await, before);
        assert_eq!(
            w.svc.get(&tid("t9")).await.unwrap_err().code(),
            "TERRITORY_NOT_FOUND"
        );
    }

    #[tokio::test]
    async fn nearby_answers_from_the_cells_nearest_first() {
        let w = world(WarStatus::Declared).await;
        for (id, x, y) in [
            ("n1", -300.0, 0.0),
            ("n2", 0.0, 50.0),
            ("far", 4_000.0, 4_000.0),
        ] {
            w.svc.upsert(tid(id), input(None, x, y, 1)).await.unwrap();
        }
        let found = w.svc.nearby(0.0, 0.0, 1_000.0).await.unwrap();
        let ids: Vec<&str> = found.iter().map(|(t, _)| t.territory_id.as_str()).collect();
        assert_eq!(ids, vec!["n2", "t1", "n1", "t2"]);
        assert_eq!(found[0].1, 50.0);
        assert!(w.svc.nearby(0.0, 0.0, 10.0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn nearby_rejects_a_radius_beyond_the_configured_maximum() {
        let w = world(WarStatus::Declared).await;
        for (x, radius) in [(0.0, 5_001.0), (0.0, 0.0), (f64::NAN, 10.0)] {
            let err = w.svc.nearby(x, 0.0, radius).await.unwrap_err();
            assert_eq!(err.code(), "INVALID_REQUEST");
        }
    }

    // ---- capture -------------------------------------------------------------------------

    #[tokio::test]
    async fn a_capture_moves_the_territory_logs_it_on_the_war_and_scores_once() {
        let w = world(WarStatus::Active).await;
        let receipt = w
            .svc
            .capture(cmd("t1", "att", Some("att-m0"), "cap-1"))
            .await
            .unwrap();
        assert_eq!(receipt.points, 600);
        let t = receipt.territory;
        assert_eq!(
            (t.owner_clan_id.clone(), t.defense_level, t.version),
            (Some(cid("att")), 1, 2)
        );
        assert_eq!(w.svc.get(&tid("t1")).await.unwrap(), t);
        let war = w.deps.war(&war_id()).await.unwrap();
        assert_eq!(war.version, 2);
        assert_eq!(war.captures.len(), 1);
        let logged = &war.captures[0];
        assert_eq!(
            (logged.side, logged.from_clan_id.clone()),
            (Side::Attacker, Some(cid("def")))
        );
        assert_eq!(logged.at, w.deps.clock.now());
        assert_eq!(totals(&w).await, BTreeMap::from([(cid("att"), 600)]));
        let published = w.h.events.published();
        assert_eq!(w.h.events.types(), vec!["TerritoryCaptured"]);
        assert_eq!(published[0].clan_ids, vec![cid("att"), cid("def")]);
        assert_eq!(published[0].war_id, Some(war_id()));
    }

    #[tokio::test]
    async fn a_replayed_capture_is_already_owner_and_counts_nothing_more() {
        let w = world(WarStatus::Active).await;
        w.svc
            .capture(cmd("t1", "att", None, "cap-1"))
            .await
            .unwrap();
        let before = snapshot(&w).await;
        let err = w
            .svc
            .capture(cmd("t1", "att", None, "cap-1"))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.class()),
            ("ALREADY_OWNER", crate::ErrorClass::Conflict)
        );
        assert_eq!(snapshot(&w).await, before);
        assert_eq!(totals(&w).await[&cid("att")], 600);
    }

    #[tokio::test]
    async fn a_replay_after_a_recapture_is_caught_by_its_dedupe_id() {
        let w = world(WarStatus::Active).await;
        w.svc
            .capture(cmd("t1", "att", None, "cap-1"))
            .await
            .unwrap();
        let back = w
            .svc
            .capture(cmd("t1", "def", None, "cap-2"))
            .await
            .unwrap();
        assert_eq!(back.points, 300); // tier 3, defense reset to 1
        let before = snapshot(&w).await;
        let err = w
            .svc
            .capture(cmd("t1", "att", None, "cap-1"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ALREADY_OWNER");
        assert_eq!(snapshot(&w).await, before);
        assert_eq!(
            totals(&w).await,
            BTreeMap::from([(cid("att"), 600), (cid("def"), 300)])
        );
    }

    #[tokio::test]
    async fn capture_rejections_write_nothing() {
        let w = world(WarStatus::Active).await;
        let cases = [
            (cmd("t2", "att", None, "c"), "TERRITORY_NOT_IN_WAR"),
            (cmd("t1", "stranger", None, "c"), "NOT_A_PARTICIPANT"),
            (cmd("t1", "def", None, "c"), "ALREADY_OWNER"),
            (cmd("t1", "att", Some("def-m0"), "c"), "FORBIDDEN_ROLE"),
            (cmd("t1", "nobody", Some("x"), "c"), "CLAN_NOT_FOUND"),
            (cmd("t404", "att", None, "c"), "TERRITORY_NOT_FOUND"),
            (cmd("t1", "att", None, ""), "INVALID_REQUEST"),
            (
                CaptureCommand {
                    war_id: WarId::new("war-404").unwrap(),
                    ..cmd("t1", "att", None, "c")
                },
                "WAR_NOT_FOUND",
            ),
        ];
        let before = snapshot(&w).await;
        for (command, code) in cases {
            let err = w.svc.capture(command).await.unwrap_err();
            assert_eq!(err.code(), code);
        }
        assert_eq!(snapshot(&w).await, before);
    }

    #[tokio::test]
    async fn capture_outside_active_is_refused_without_writing() {
        for status in [WarStatus::Preparation, WarStatus::Ending] {
            let w = world(status).await;
            let before = snapshot(&w).await;
            let err = w
                .svc
                .capture(cmd("t1", "att", None, "c"))
                .await
                .unwrap_err();
            assert_eq!(
                (err.code(), err.class()),
                ("INVALID_WAR_STATE", crate::ErrorClass::Conflict)
            );
            assert_eq!(snapshot(&w).await, before);
        }
    }

    /// The service over a store where `change` is applied to the war by a concurrent writer
    /// right before the service's first commit.
    async fn racing_service(w: &World, change: impl FnOnce(&mut War)) -> TerritoryService {
        let mut war = w.deps.war(&war_id()).await.unwrap();
        change(&mut war);
        let mut race = Transaction::new();
        race.update(&mut war);
        let mut deps = w.deps.clone();
        let store = RacingStore::new(w.h.store.clone());
        store.race_next_commit(race);
        deps.store = Arc::new(store);
        TerritoryService::new(deps)
    }

    #[tokio::test]
    async fn a_capture_losing_a_version_race_is_retried_on_fresh_reads() {
        let w = world(WarStatus::Active).await;
        let svc = racing_service(&w, |war| war.cancel_requests.push(cid("att"))).await;
        let receipt = svc.capture(cmd("t1", "att", None, "cap-1")).await.unwrap();
        assert_eq!(receipt.points, 600);
        let war = w.deps.war(&war_id()).await.unwrap();
        assert_eq!((war.version, war.captures.len()), (3, 1));
        assert_eq!(war.cancel_requests, vec![cid("att")]);
        assert_eq!(totals(&w).await[&cid("att")], 600);
    }

    #[tokio::test]
    async fn a_capture_racing_the_end_of_active_counts_when_it_happened_during_active() {
        let w = world(WarStatus::Active).await;
        let ending_at = w
            .deps
            .war(&war_id())
            .await
            .unwrap()
            .phase_deadlines
            .ending_at;
        let svc = racing_service(&w, |war| {
            war.advance(WarStatus::Ending, ending_at).unwrap();
        })
        .await;
        // The race moves the war to ENDING; the capture happened during ACTIVE (SPEC §2).
        svc.capture(cmd("t1", "att", None, "cap-1")).await.unwrap();
        assert_eq!(
            w.svc.get(&tid("t1")).await.unwrap().owner_clan_id,
            Some(cid("att"))
        );
        assert_eq!(totals(&w).await[&cid("att")], 600);
    }

    #[tokio::test]
    async fn a_capture_reported_after_active_is_refused() {
        let w = world(WarStatus::Active).await;
        let ending_at = w
            .deps
            .war(&war_id())
            .await
            .unwrap()
            .phase_deadlines
            .ending_at;
        let svc = racing_service(&w, |war| {
            war.advance(WarStatus::Ending, ending_at).unwrap();
        })
        .await;
        let late = CaptureCommand {
            occurred_at: Some(ending_at),
            ..cmd("t1", "att", None, "cap-1")
        };
        w.h.clock.set(ending_at);
        let err = svc.capture(late).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_WAR_STATE");
        assert_eq!(
            w.svc.get(&tid("t1")).await.unwrap().owner_clan_id,
            Some(cid("def"))
        );
        assert!(totals(&w).await.is_empty());
    }

    // ---- fortify -------------------------------------------------------------------------

    #[tokio::test]
    async fn an_officer_fortifies_an_uncontested_territory_and_it_is_announced() {
        let w = world(WarStatus::Active).await;
        let t = w
            .svc
            .fortify(tid("t2"), cid("def"), pid("def-officer"))
            .await
            .unwrap();
        assert_eq!((t.defense_level, t.version), (2, 2));
        assert_eq!(w.svc.get(&tid("t2")).await.unwrap(), t);
        let published = w.h.events.published();
        assert_eq!(w.h.events.types(), vec!["TerritoryFortified"]);
        assert_eq!(published[0].clan_ids, vec![cid("def")]);
        assert_eq!(published[0].war_id, None);
    }

    #[tokio::test]
    async fn fortifying_during_preparation_also_guards_the_war_version() {
        let w = world(WarStatus::Preparation).await;
        let mut t1 = w.svc.get(&tid("t1")).await.unwrap();
        t1.defense_level = 2;
        let mut tx = Transaction::new();
        tx.update(&mut t1);
        w.deps.commit(tx).await.unwrap();
        let war_version = w.deps.war(&war_id()).await.unwrap().version;
        let t = w
            .svc
            .fortify(tid("t1"), cid("def"), pid("def-leader"))
            .await
            .unwrap();
        assert_eq!(t.defense_level, 3);
        assert_eq!(
            w.deps.war(&war_id()).await.unwrap().version,
            war_version + 1
        );
        assert_eq!(w.h.events.published()[0].war_id, Some(war_id()));
    }

    #[tokio::test]
    async fn a_fortify_racing_the_start_of_active_is_not_applied() {
        let w = world(WarStatus::Preparation).await;
        let mut t1 = w.svc.get(&tid("t1")).await.unwrap();
        t1.defense_level = 2;
        let mut tx = Transaction::new();
        tx.update(&mut t1);
        w.deps.commit(tx).await.unwrap();
        let active_at = w
            .deps
            .war(&war_id())
            .await
            .unwrap()
            .phase_deadlines
            .active_at;
        let svc = racing_service(&w, |war| {
            war.advance(WarStatus::Active, active_at).unwrap();
        })
        .await;
        let err = svc
            .fortify(tid("t1"), cid("def"), pid("def-leader"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "CONCURRENT_MODIFICATION");
        assert_eq!(w.svc.get(&tid("t1")).await.unwrap().defense_level, 2);
    }

    #[tokio::test]
    async fn fortify_rejections_write_nothing() {
        let w = world(WarStatus::Active).await;
        let mut maxed = w.svc.get(&tid("t2")).await.unwrap();
        maxed.defense_level = w.deps.rules.max_defense_level;
        let mut tx = Transaction::new();
        tx.update(&mut maxed);
        w.deps.commit(tx).await.unwrap();
        let before = snapshot(&w).await;
        let cases = [
            (("t2", "def", "def-m0"), "FORBIDDEN_ROLE"),
            (("t2", "att", "att-leader"), "NOT_TERRITORY_OWNER"),
            (("t1", "def", "def-leader"), "TERRITORY_UNDER_ATTACK"),
            (("t2", "def", "def-leader"), "MAX_DEFENSE_LEVEL"),
            (("t404", "def", "def-leader"), "TERRITORY_NOT_FOUND"),
            (("t2", "nobody", "def-leader"), "CLAN_NOT_FOUND"),
        ];
        for ((territory, clan_id, actor), code) in cases {
            let err = w
                .svc
                .fortify(tid(territory), cid(clan_id), pid(actor))
                .await
                .unwrap_err();
            assert_eq!(err.code(), code);
        }
        assert_eq!(snapshot(&w).await, before);
    }

    // ---- release -------------------------------------------------------------------------

    #[tokio::test]
    async fn releasing_a_war_clears_its_contests_keeps_owners_and_announces_each() {
        let w = world(WarStatus::Active).await;
        w.svc
            .capture(cmd("t1", "att", None, "cap-1"))
            .await
            .unwrap();
        let mut other = w.svc.get(&tid("t2")).await.unwrap();
        other.contest(&WarId::new("war-2").unwrap()).unwrap();
        let mut tx = Transaction::new();
        tx.update(&mut other);
        w.deps.commit(tx).await.unwrap();

        let mut war = w.deps.war(&war_id()).await.unwrap();
        war.territory_ids.push(tid("t2"));
        war.territory_ids.push(tid("t404"));
        let read = |ids: Vec<&'static str>| {
            let svc = w.svc.clone();
            async move {
                let mut found = Vec::new();
                for id in ids {
                    if let Ok(t) = svc.get(&tid(id)).await {
                        found.push(t);
                    }
                }
                found
            }
        };
        let mut tx = Transaction::new();
        let released = w
            .svc
            .release_for_war(&war, read(vec!["t1", "t2", "t404"]).await, &mut tx);
        assert_eq!(released.len(), 1);
        assert_eq!(tx.events().len(), 1);
        w.deps.commit(tx).await.unwrap();

        let t1 = w.svc.get(&tid("t1")).await.unwrap();
        assert_eq!(
            (t1.contested_by.clone(), t1.owner_clan_id.clone()),
            (None, Some(cid("att")))
        );
        assert_eq!(released[0], t1);
        assert_eq!(w.svc.get(&tid("t2")).await.unwrap(), other);
        let event = w.h.events.published().pop().unwrap();
        assert_eq!(
            event.event,
            DomainEvent::TerritoryReleased {
                territory_id: tid("t1"),
                owner_clan_id: Some(cid("att")),
            }
        );
        assert_eq!(event.clan_ids, vec![cid("att"), cid("def")]);

        let mut again = Transaction::new();
        assert!(w
            .svc
            .release_for_war(&war, read(vec!["t1", "t2"]).await, &mut again)
            .is_empty());
        assert!(again.writes.is_empty());
    }
}
