//! The reward saga steps (SPEC §7) and an in-process runner of the saga.
//!
//! Every step is idempotent: the Step Functions reward saga calls them as Lambda tasks and may
//! retry any of them. [`run_saga`] runs the very same algorithm in process (tests, local stack).
//! Each step commits the plan and the war's mirrored `rewards_status` in one versioned
//! transaction, so two concurrent runs can never both move the plan.

use super::Deps;
use crate::error::{DomainError, DomainResult};
use crate::events::DomainEvent;
use crate::ids::{PlayerId, WarId};
use crate::ports::{RecordKey, StoreExt, Transaction};
use crate::rewards::{self, Grant, GrantStatus, RewardPlan};
use crate::war::{RewardStatus, War, WarStatus};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Attempts per economy call before a chunk (or a revocation) counts as failed. Mirrors the
/// state machine's Retry on the grant task; the in-process runner does not back off.
pub const ECONOMY_ATTEMPTS: u32 = 3;

/// The economy service refused or could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("economy call failed: {message}")]
pub struct EconomyError {
    pub message: String,
}

/// The game's economy service. `key` is the grant's idempotency key (`war_id#player_id#kind`):
/// the economy pays at most once per key, and a revocation takes back the grant of that key
/// (revoking a key that never paid is a no-op; granting a revoked key pays nothing).
#[async_trait]
pub trait Economy: Send + Sync {
    async fn grant(
        &self,
        key: &str,
        player: &PlayerId,
        kind: &str,
        amount: u64,
    ) -> Result<(), EconomyError>;
    async fn revoke(
        &self,
        key: &str,
        player: &PlayerId,
        kind: &str,
        amount: u64,
    ) -> Result<(), EconomyError>;
}

/// `GET /wars/{war_id}/rewards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardsView {
    pub war_id: WarId,
    pub status: RewardStatus,
    pub grants: Vec<GrantView>,
}

/// One grant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    pub player_id: PlayerId,
    pub kind: String,
    pub amount: u64,
    pub status: GrantStatus,
}

impl From<&RewardPlan> for RewardsView {
    fn from(plan: &RewardPlan) -> Self {
        Self {
            war_id: plan.war_id.clone(),
            status: plan.status,
            grants: plan
                .grants
                .iter()
                .map(|g| GrantView {
                    player_id: g.player_id.clone(),
                    kind: g.kind.clone(),
                    amount: g.amount,
                    status: g.status,
                })
                .collect(),
        }
    }
}

/// The saga's steps over the stored plan.
#[derive(Debug, Clone)]
pub struct RewardService {
    deps: Deps,
}

impl RewardService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Computes and stores the plan of an ENDED war; returns the stored plan unchanged if one
    /// exists, so re-running the saga never re-plans (scores read later could differ).
    pub async fn prepare(&self, war_id: &WarId) -> DomainResult<RewardPlan> {
        let mut war = self.deps.war(war_id).await?;
        if war.status != WarStatus::Ended {
            return Err(DomainError::InvalidWarState {
                war_id: war_id.clone(),
                actual: war.status,
                expected: "ENDED",
            });
        }
        if let Some(plan) = self.find(war_id).await? {
            return Ok(plan);
        }
        let players = self
            .deps
            .scores
            .all_players(war_id, war.score_shards)
            .await?;
        let mut plan = rewards::plan(&war, &players, &self.deps.rules_for(&war));
        let mut tx = Transaction::new();
        tx.insert(&mut plan);
        war.rewards_status = Some(plan.status);
        tx.update(&mut war);
        match self.deps.commit(tx).await {
            Ok(()) => Ok(plan),
            // A concurrent prepare won the insert: its plan is the plan.
            Err(DomainError::ConcurrentModification) => self
                .find(war_id)
                .await?
                .ok_or(DomainError::ConcurrentModification),
            Err(err) => Err(err),
        }
    }

    /// PENDING → DISTRIBUTING.
    pub async fn begin(&self, war_id: &WarId) -> DomainResult<RewardPlan> {
        self.step(war_id, |plan| Ok(Step::from(plan.begin()?, None)))
            .await
    }

    /// Records grants the economy confirmed. Already-granted ones stay as they are.
    pub async fn record_granted(
        &self,
        war_id: &WarId,
        player_ids: &[PlayerId],
    ) -> DomainResult<RewardPlan> {
        self.step(war_id, |plan| {
            Ok(Step::from(plan.mark_granted(player_ids)? > 0, None))
        })
        .await
    }

    /// Records grants the compensation took back.
    pub async fn record_revoked(
        &self,
        war_id: &WarId,
        player_ids: &[PlayerId],
    ) -> DomainResult<RewardPlan> {
        self.step(war_id, |plan| {
            Ok(Step::from(plan.mark_revoked(player_ids)? > 0, None))
        })
        .await
    }

    /// DISTRIBUTING (every grant GRANTED) → DISTRIBUTED, with `RewardsDistributed`.
    pub async fn complete(&self, war_id: &WarId) -> DomainResult<RewardPlan> {
        self.step(war_id, |plan| {
            let event = DomainEvent::RewardsDistributed {
                grants: plan.grants.len(),
                total_amount: plan.total_amount(),
            };
            Ok(Step::from(plan.complete()?, Some(event)))
        })
        .await
    }

    /// → REWARDS_FAILED, with `RewardDistributionFailed` (the alarm's source).
    pub async fn fail(&self, war_id: &WarId, reason: &str) -> DomainResult<RewardPlan> {
        self.step(war_id, |plan| {
            let changed = plan.fail()?;
            let revoked = plan.count(GrantStatus::Revoked);
            if changed {
                // The alarm on saga failures keys on this log line and on the event below.
                tracing::error!(
                    war_id = %war_id,
                    reason,
                    revoked,
                    still_granted = plan.count(GrantStatus::Granted),
                    "reward distribution failed"
                );
            }
            let event = DomainEvent::RewardDistributionFailed {
                reason: reason.to_owned(),
                revoked,
            };
            Ok(Step::from(changed, Some(event)))
        })
        .await
    }

    pub async fn get(&self, war_id: &WarId) -> DomainResult<RewardPlan> {
        self.find(war_id)
            .await?
            .ok_or_else(|| DomainError::RewardsNotFound(war_id.clone()))
    }

    /// The body of `GET /wars/{war_id}/rewards`.
    pub async fn view(&self, war_id: &WarId) -> DomainResult<RewardsView> {
        Ok(RewardsView::from(&self.get(war_id).await?))
    }

    async fn find(&self, war_id: &WarId) -> DomainResult<Option<RewardPlan>> {
        Ok(self
            .deps
            .store
            .load(RecordKey::RewardPlan(war_id.clone()))
            .await?)
    }

    /// Applies `change` to the stored plan and commits it with the war's mirrored status.
    async fn step(
        &self,
        war_id: &WarId,
        change: impl FnOnce(&mut RewardPlan) -> DomainResult<Step>,
    ) -> DomainResult<RewardPlan> {
        let mut plan = self.get(war_id).await?;
        let Step::Changed(event) = change(&mut plan)? else {
            return Ok(plan);
        };
        let mut war = self.deps.war(war_id).await?;
        let mut tx = Transaction::new();
        tx.update(&mut plan);
        if war.rewards_status != Some(plan.status) {
            war.rewards_status = Some(plan.status);
            tx.update(&mut war);
        }
        if let Some(event) = event {
            tx.emit(self.event(&war, event));
        }
        self.deps.commit(tx).await?;
        Ok(plan)
    }

    fn event(&self, war: &War, event: DomainEvent) -> crate::events::EventEnvelope {
        self.deps.event(Some(&war.war_id), war.all_clans(), event)
    }
}

/// What a step did to the plan.
enum Step {
    /// A replay: nothing to write.
    Unchanged,
    /// Write the plan, and this event if any.
    Changed(Option<DomainEvent>),
}

impl Step {
    fn from(changed: bool, event: Option<DomainEvent>) -> Self {
        if changed {
            Step::Changed(event)
        } else {
            Step::Unchanged
        }
    }
}

/// How one chunk went.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkOutcome {
    /// Every grant of the chunk is GRANTED.
    Granted(RewardPlan),
    /// A grant kept failing; the grants paid before it are recorded, `in_doubt` is not.
    Failed { in_doubt: PlayerId, reason: String },
}

/// The saga runner: the algorithm the Step Functions reward saga runs, in process.
#[derive(Debug, Clone)]
pub struct RewardSaga<'a, E: Economy + ?Sized> {
    service: RewardService,
    economy: &'a E,
    chunk_size: usize,
}

/// prepare → begin → grant chunk by chunk → complete; a failing chunk compensates instead.
/// Returns the final plan (DISTRIBUTED, or REWARDS_FAILED after compensation).
pub async fn run_saga<E: Economy + ?Sized>(
    deps: &Deps,
    economy: &E,
    war_id: &WarId,
) -> DomainResult<RewardPlan> {
    RewardSaga::new(deps.clone(), economy).run(war_id).await
}

impl<'a, E: Economy + ?Sized> RewardSaga<'a, E> {
    pub fn new(deps: Deps, economy: &'a E) -> Self {
        Self {
            chunk_size: deps.rules.reward_chunk_size,
            service: RewardService::new(deps),
            economy,
        }
    }

    pub async fn run(&self, war_id: &WarId) -> DomainResult<RewardPlan> {
        let plan = self.service.prepare(war_id).await?;
        if plan.is_finished() {
            return Ok(plan);
        }
        if plan.count(GrantStatus::Revoked) > 0 {
            // A previous run stopped half-way through its compensation: finish that instead.
            return self.compensate(war_id, None, "compensation resumed").await;
        }
        let plan = self.service.begin(war_id).await?;
        for index in 0..rewards::chunks(&plan, self.chunk_size).len() {
            if let ChunkOutcome::Failed { in_doubt, reason } =
                self.grant_chunk(war_id, index).await?
            {
                return self.compensate(war_id, Some(in_doubt), &reason).await;
            }
        }
        self.service.complete(war_id).await
    }

    /// Grants every still-PENDING grant of chunk `index` (GRANTED ones are skipped, so a re-run
    /// never pays twice; a payout whose recording was lost is deduplicated by the economy's key)
    /// and records those that succeeded.
    pub async fn grant_chunk(&self, war_id: &WarId, index: usize) -> DomainResult<ChunkOutcome> {
        let plan = self.service.get(war_id).await?;
        let chunk = rewards::chunks(&plan, self.chunk_size)
            .into_iter()
            .nth(index)
            .unwrap_or_default();
        let mut paid = Vec::new();
        for grant in chunk.iter().filter(|g| g.status == GrantStatus::Pending) {
            if let Err(err) = self.call(war_id, grant, Call::Grant).await {
                self.service.record_granted(war_id, &paid).await?;
                return Ok(ChunkOutcome::Failed {
                    in_doubt: grant.player_id.clone(),
                    reason: format!("grant to {} failed: {err}", grant.player_id),
                });
            }
            paid.push(grant.player_id.clone());
        }
        Ok(ChunkOutcome::Granted(
            self.service.record_granted(war_id, &paid).await?,
        ))
    }

    /// Revokes every GRANTED grant, last chunk first, plus the grant whose call failed (the
    /// economy may have paid it before the failure reached us), then marks the plan failed.
    pub async fn compensate(
        &self,
        war_id: &WarId,
        in_doubt: Option<PlayerId>,
        reason: &str,
    ) -> DomainResult<RewardPlan> {
        let plan = self.service.get(war_id).await?;
        let mut revoked = Vec::new();
        let mut failures = 0;
        for grant in
            plan.grants.iter().rev().filter(|g| {
                g.status == GrantStatus::Granted || in_doubt.as_ref() == Some(&g.player_id)
            })
        {
            match self.call(war_id, grant, Call::Revoke).await {
                Ok(()) => revoked.push(grant.player_id.clone()),
                Err(err) => {
                    failures += 1;
                    tracing::error!(war_id = %war_id, player_id = %grant.player_id, error = %err, "revocation failed");
                }
            }
        }
        self.service.record_revoked(war_id, &revoked).await?;
        let reason = match failures {
            0 => reason.to_owned(),
            n => format!("{reason}; {n} revocation(s) failed"),
        };
        self.service.fail(war_id, &reason).await
    }

    async fn call(&self, war_id: &WarId, grant: &Grant, call: Call) -> Result<(), EconomyError> {
        let key = grant.idempotency_key(war_id);
        let mut last = None;
        for _ in 0..ECONOMY_ATTEMPTS {
            let result = match call {
                Call::Grant => {
                    self.economy
                        .grant(&key, &grant.player_id, &grant.kind, grant.amount)
                        .await
                }
                Call::Revoke => {
                    self.economy
                        .revoke(&key, &grant.player_id, &grant.kind, grant.amount)
                        .await
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| EconomyError {
            message: "no attempt made".into(),
        }))
    }
}

#[derive(Debug, Clone, Copy)]
enum Call {
    Grant,
    Revoke,
}

/// An in-memory economy for tests and the local stack.
pub mod fake {
    use super::{Economy, EconomyError};
    use crate::ids::PlayerId;
    use async_trait::async_trait;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex, MutexGuard};

    #[derive(Debug, Default)]
    struct State {
        grant_calls: usize,
        fail_from: Option<usize>,
        fail_once: Option<usize>,
        fail_revokes: bool,
        /// Keys that paid, with what they paid.
        paid: BTreeMap<String, (PlayerId, u64)>,
        revoked: BTreeSet<String>,
        balances: BTreeMap<PlayerId, i64>,
    }

    /// Pays at most once per idempotency key and records each player's net balance.
    #[derive(Debug, Clone, Default)]
    pub struct MemoryEconomy {
        state: Arc<Mutex<State>>,
    }

    impl MemoryEconomy {
        fn state(&self) -> MutexGuard<'_, State> {
            self.state.lock().expect("economy poisoned")
        }

        /// Every grant call from the `n`-th on (1-based, retries included) fails: an outage.
        pub fn fail_from_grant(&self, n: usize) {
            self.state().fail_from = Some(n);
        }

        /// Only the `n`-th grant call fails: a blip a retry gets past.
        pub fn fail_grant_once(&self, n: usize) {
            self.state().fail_once = Some(n);
        }

        pub fn set_fail_revokes(&self, fail: bool) {
            self.state().fail_revokes = fail;
        }

        /// Net amount paid to the player (grants minus revocations).
        pub fn paid(&self, player: &PlayerId) -> i64 {
            self.state().balances.get(player).copied().unwrap_or(0)
        }

        pub fn total_paid(&self) -> i64 {
            self.state().balances.values().sum()
        }

        /// Grant calls received, failed ones and duplicates included.
        pub fn grant_calls(&self) -> usize {
            self.state().grant_calls
        }

        /// Grants that actually paid out.
        pub fn payouts(&self) -> usize {
            self.state().paid.len()
        }
    }

    fn refused() -> EconomyError {
        EconomyError {
            message: "economy switched off".into(),
        }
    }

    #[async_trait]
    impl Economy for MemoryEconomy {
        async fn grant(
            &self,
            key: &str,
            player: &PlayerId,
            _kind: &str,
            amount: u64,
        ) -> Result<(), EconomyError> {
            let mut s = self.state();
            s.grant_calls += 1;
            let n = s.grant_calls;
            if s.fail_from.is_some_and(|from| n >= from) || s.fail_once == Some(n) {
                return Err(refused());
            }
            if s.paid.contains_key(key) || s.revoked.contains(key) {
                return Ok(());
            }
            s.paid.insert(key.to_owned(), (player.clone(), amount));
            *s.balances.entry(player.clone()).or_default() += amount as i64;
            Ok(())
        }

        async fn revoke(
            &self,
            key: &str,
            _player: &PlayerId,
            _kind: &str,
            _amount: u64,
        ) -> Result<(), EconomyError> {
            let mut s = self.state();
            if s.fail_revokes {
                return Err(refused());
            }
            if !s.revoked.insert(key.to_owned()) {
                return Ok(());
            }
            if let Some((player, amount)) = s.paid.get(key).cloned() {
                *s.balances.entry(player).or_default() -= amount as i64;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::MemoryEconomy;
    use super::*;
    use crate::config::Rules;
    use crate::ids::ClanId;
    use crate::memory::FakeClock;
    use crate::ports::{PlayerPoints, ScoreDelta};
    use crate::services::MemoryHandles;
    use crate::war::fixtures::war;
    use crate::war::WinnerSide;
    use chrono::{DateTime, Utc};

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn war_id() -> WarId {
        WarId::new("war-1").unwrap()
    }

    fn player(id: &str) -> PlayerId {
        PlayerId::new(id).unwrap()
    }

    fn rules() -> Rules {
        Rules {
            reward_chunk_size: 2,
            ..Rules::default()
        }
    }

    /// An ENDED war won by the attacker with five scoring players: 3 attackers, 2 defenders.
    async fn setup(status: WarStatus) -> (Deps, MemoryHandles) {
        let (deps, handles) = Deps::in_memory(rules(), FakeClock::at(t0()));
        let mut w = war(t0());
        w.status = status;
        w.winner_side = Some(WinnerSide::Attacker);
        let mut tx = Transaction::new();
        tx.insert(&mut w);
        deps.store.commit(tx).await.unwrap();
        for (p, clan, points) in [
            ("a1", "att", 50),
            ("a2", "att", 30),
            ("a3", "att", 20),
            ("d1", "def", 10),
            ("d2", "def", 30),
        ] {
            add_points(&deps, p, clan, points).await;
        }
        (deps, handles)
    }

    async fn add_points(deps: &Deps, p: &str, clan: &str, points: i64) {
        deps.scores
            .apply(ScoreDelta {
                war_id: war_id(),
                dedupe_id: format!("{p}-{points}"),
                shards: crate::config::DEFAULT_SCORE_SHARDS,
                players: vec![PlayerPoints {
                    player_id: player(p),
                    clan_id: ClanId::new(clan).unwrap(),
                    points,
                }],
                clans: vec![],
                battle_kill: None,
                farm_guard: None,
                ledger: None,
            })
            .await
            .unwrap();
    }

    fn service(deps: &Deps) -> RewardService {
        RewardService::new(deps.clone())
    }

    fn assert_paid_exactly_the_plan(economy: &MemoryEconomy, plan: &RewardPlan) {
        for g in &plan.grants {
            assert_eq!(
                economy.paid(&g.player_id),
                g.amount as i64,
                "{}",
                g.player_id
            );
        }
        assert_eq!(economy.total_paid(), plan.total_amount() as i64);
    }

    #[tokio::test]
    async fn prepare_refuses_a_war_that_has_not_ended() {
        let (deps, _) = setup(WarStatus::Ending).await;
        let err = service(&deps).prepare(&war_id()).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_WAR_STATE");
        assert_eq!(
            service(&deps).get(&war_id()).await.unwrap_err().code(),
            "REWARDS_NOT_FOUND"
        );
    }

    #[tokio::test]
    async fn prepare_stores_the_plan_once_and_never_replans() {
        let (deps, _) = setup(WarStatus::Ended).await;
        let plan = service(&deps).prepare(&war_id()).await.unwrap();
        assert_eq!((plan.attacker_pool, plan.defender_pool), (10_000, 2_000));
        let amounts: Vec<u64> = plan.grants.iter().map(|g| g.amount).collect();
        // a1 would get 5_000 but the cap is 2_000.
        assert_eq!(amounts, vec![2_000, 2_000, 2_000, 500, 1_500]);
        assert_eq!(plan.version, 1);
        let w = deps.war(&war_id()).await.unwrap();
        assert_eq!(w.rewards_status, Some(RewardStatus::Pending));

        add_points(&deps, "d1", "def", 1_000).await;
        let again = service(&deps).prepare(&war_id()).await.unwrap();
        assert_eq!(again, plan);
        assert_eq!(service(&deps).get(&war_id()).await.unwrap(), plan);
    }

    #[tokio::test]
    async fn the_rewards_view_uses_the_contract_field_names() {
        let (deps, _) = setup(WarStatus::Ended).await;
        service(&deps).prepare(&war_id()).await.unwrap();
        let json = serde_json::to_value(service(&deps).view(&war_id()).await.unwrap()).unwrap();
        assert_eq!(json["war_id"], "war-1");
        assert_eq!(json["status"], "PENDING");
        assert_eq!(
            json["grants"][0],
            serde_json::json!({"player_id": "a1", "kind": "gold", "amount": 2000, "status": "PENDING"})
        );
    }

    #[tokio::test]
    async fn a_full_run_pays_exactly_the_plan_and_announces_it() {
        let (deps, h) = setup(WarStatus::Ended).await;
        let economy = MemoryEconomy::default();
        let plan = run_saga(&deps, &economy, &war_id()).await.unwrap();
        assert_eq!(plan.status, RewardStatus::Distributed);
        assert_eq!(plan.count(GrantStatus::Granted), 5);
        assert_paid_exactly_the_plan(&economy, &plan);
        assert_eq!(economy.grant_calls(), 5);
        let w = deps.war(&war_id()).await.unwrap();
        assert_eq!(w.rewards_status, Some(RewardStatus::Distributed));
        let events = h.events.published();
        let last = events.last().unwrap();
        assert_eq!(
            last.event,
            DomainEvent::RewardsDistributed {
                grants: 5,
                total_amount: 8_000
            }
        );
        assert_eq!(last.war_id, Some(war_id()));
    }

    #[tokio::test]
    async fn re_running_after_success_pays_nothing_more() {
        let (deps, h) = setup(WarStatus::Ended).await;
        let economy = MemoryEconomy::default();
        let first = run_saga(&deps, &economy, &war_id()).await.unwrap();
        let second = run_saga(&deps, &economy, &war_id()).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(economy.grant_calls(), 5);
        assert_paid_exactly_the_plan(&economy, &second);
        assert_eq!(h.events.types(), vec!["RewardsDistributed"]);
    }

    #[tokio::test]
    async fn a_chunk_failing_after_retries_is_compensated_and_the_plan_fails() {
        let (deps, h) = setup(WarStatus::Ended).await;
        let economy = MemoryEconomy::default();
        // Grants 1–3 pay (chunk 1 and half of chunk 2); the 4th call and its retries fail.
        economy.fail_from_grant(4);
        let plan = run_saga(&deps, &economy, &war_id()).await.unwrap();
        assert_eq!(plan.status, RewardStatus::RewardsFailed);
        assert_eq!(economy.payouts(), 3);
        assert_eq!(economy.total_paid(), 0);
        for g in &plan.grants {
            assert_eq!(economy.paid(&g.player_id), 0);
        }
        // The three paid grants and the in-doubt fourth are revoked; the fifth never started.
        let statuses: Vec<GrantStatus> = plan.grants.iter().map(|g| g.status).collect();
        use GrantStatus::*;
        assert_eq!(statuses, vec![Revoked, Revoked, Revoked, Revoked, Pending]);
        let w = deps.war(&war_id()).await.unwrap();
        assert_eq!(w.rewards_status, Some(RewardStatus::RewardsFailed));
        let failed = h.events.published().pop().unwrap();
        assert!(matches!(
            failed.event,
            DomainEvent::RewardDistributionFailed { revoked: 4, ref reason } if reason.contains("d1")
        ));
        assert_eq!(economy.grant_calls(), 3 + ECONOMY_ATTEMPTS as usize);

        // A re-run of a failed saga does nothing.
        let again = run_saga(&deps, &economy, &war_id()).await.unwrap();
        assert_eq!(again, plan);
        assert_eq!(economy.grant_calls(), 3 + ECONOMY_ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn a_transient_economy_failure_is_retried() {
        let (deps, _) = setup(WarStatus::Ended).await;
        let economy = MemoryEconomy::default();
        economy.fail_grant_once(2);
        let plan = run_saga(&deps, &economy, &war_id()).await.unwrap();
        assert_eq!(plan.status, RewardStatus::Distributed);
        assert_paid_exactly_the_plan(&economy, &plan);
        assert_eq!(economy.grant_calls(), 6);
    }

    #[tokio::test]
    async fn a_run_interrupted_mid_way_pays_each_grant_once() {
        let (deps, _) = setup(WarStatus::Ended).await;
        let economy = MemoryEconomy::default();
        let saga = RewardSaga::new(deps.clone(), &economy);
        let svc = service(&deps);
        svc.prepare(&war_id()).await.unwrap();
        svc.begin(&war_id()).await.unwrap();
        assert!(matches!(
            saga.grant_chunk(&war_id(), 0).await.unwrap(),
            ChunkOutcome::Granted(_)
        ));
        // Chunk 1's first grant paid, but the run died before recording it.
        let plan = svc.get(&war_id()).await.unwrap();
        let g = &plan.grants[2];
        economy
            .grant(
                &g.idempotency_key(&war_id()),
                &g.player_id,
                &g.kind,
                g.amount,
            )
            .await
            .unwrap();

        let plan = run_saga(&deps, &economy, &war_id()).await.unwrap();
        assert_eq!(plan.status, RewardStatus::Distributed);
        assert_paid_exactly_the_plan(&economy, &plan);
        assert_eq!(economy.payouts(), 5);
        // Chunk 0 was not called again; the unrecorded grant was, and was deduplicated.
        assert_eq!(economy.grant_calls(), 2 + 1 + 3);
    }

    #[tokio::test]
    async fn a_run_interrupted_during_compensation_finishes_it() {
        let (deps, _) = setup(WarStatus::Ended).await;
        let economy = MemoryEconomy::default();
        let saga = RewardSaga::new(deps.clone(), &economy);
        let svc = service(&deps);
        svc.prepare(&war_id()).await.unwrap();
        svc.begin(&war_id()).await.unwrap();
        saga.grant_chunk(&war_id(), 0).await.unwrap();
        saga.grant_chunk(&war_id(), 1).await.unwrap();
        // The compensation revoked a3 and a2, then stopped.
        for p in ["a3", "a2"] {
            let plan = svc.get(&war_id()).await.unwrap();
            let g = plan
                .grants
                .iter()
                .find(|g| g.player_id == player(p))
                .unwrap();
            economy
                .revoke(
                    &g.idempotency_key(&war_id()),
                    &g.player_id,
                    &g.kind,
                    g.amount,
                )
                .await
                .unwrap();
        }
        svc.record_revoked(&war_id(), &[player("a3"), player("a2")])
            .await
            .unwrap();

        let plan = run_saga(&deps, &economy, &war_id()).await.unwrap();
        assert_eq!(plan.status, RewardStatus::RewardsFailed);
        assert_eq!(economy.total_paid(), 0);
        assert_eq!(economy.grant_calls(), 4);
    }

    #[tokio::test]
    async fn failed_revocations_are_reported_in_the_failure() {
        let (deps, h) = setup(WarStatus::Ended).await;
        let economy = MemoryEconomy::default();
        economy.fail_from_grant(2);
        economy.set_fail_revokes(true);
        let plan = run_saga(&deps, &economy, &war_id()).await.unwrap();
        assert_eq!(plan.status, RewardStatus::RewardsFailed);
        assert_eq!(plan.count(GrantStatus::Granted), 1);
        let failed = h.events.published().pop().unwrap();
        assert!(matches!(
            failed.event,
            DomainEvent::RewardDistributionFailed { revoked: 0, ref reason }
                if reason.contains("2 revocation(s) failed")
        ));
    }

    #[tokio::test]
    async fn a_war_nobody_scored_in_completes_with_an_empty_plan() {
        let (deps, h) = Deps::in_memory(rules(), FakeClock::at(t0()));
        let mut w = war(t0());
        w.status = WarStatus::Ended;
        w.winner_side = Some(WinnerSide::Draw);
        let mut tx = Transaction::new();
        tx.insert(&mut w);
        deps.store.commit(tx).await.unwrap();
        let economy = MemoryEconomy::default();
        let plan = run_saga(&deps, &economy, &war_id()).await.unwrap();
        assert_eq!(plan.status, RewardStatus::Distributed);
        assert!(plan.grants.is_empty());
        assert_eq!(h.events.types(), vec!["RewardsDistributed"]);
    }

    #[tokio::test]
    async fn replayed_steps_write_nothing() {
        let (deps, h) = setup(WarStatus::Ended).await;
        let svc = service(&deps);
        svc.prepare(&war_id()).await.unwrap();
        let begun = svc.begin(&war_id()).await.unwrap();
        assert_eq!(svc.begin(&war_id()).await.unwrap().version, begun.version);
        let granted = svc
            .record_granted(&war_id(), &[player("a1")])
            .await
            .unwrap();
        let replay = svc
            .record_granted(&war_id(), &[player("a1")])
            .await
            .unwrap();
        assert_eq!(replay, granted);
        let war_version = deps.war(&war_id()).await.unwrap().version;
        assert_eq!(
            svc.complete(&war_id()).await.unwrap_err().code(),
            "INVALID_REWARD_STATE"
        );
        let all: Vec<PlayerId> = granted.grants.iter().map(|g| g.player_id.clone()).collect();
        svc.record_granted(&war_id(), &all).await.unwrap();
        // Recording grants leaves the war alone: its rewards status did not change.
        assert_eq!(deps.war(&war_id()).await.unwrap().version, war_version);
        svc.complete(&war_id()).await.unwrap();
        svc.complete(&war_id()).await.unwrap();
        assert_eq!(h.events.types(), vec!["RewardsDistributed"]);
        assert_eq!(
            svc.fail(&war_id(), "late").await.unwrap_err().code(),
            "INVALID_REWARD_STATE"
        );
    }

    #[tokio::test]
    async fn steps_of_an_unplanned_war_are_not_found() {
        let (deps, _) = setup(WarStatus::Ended).await;
        let err = service(&deps).begin(&war_id()).await.unwrap_err();
        assert_eq!(
            (err.code(), err.class()),
            ("REWARDS_NOT_FOUND", crate::ErrorClass::NotFound)
        );
    }
}
