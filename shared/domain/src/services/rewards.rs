//! The reward saga's steps (SPEC §7).
//!
//! The saga itself is one state machine, `statemachines/reward-distribution.asl.json`: its
//! Lambda tasks (`shared/edge/src/routes/rewards.rs`) call these steps, and its Retry and Catch
//! rules decide what is retried and when a distribution compensates. Every step is idempotent,
//! so Step Functions may retry any of them. Each step commits the plan and the war's mirrored
//! `rewards_status` in one versioned transaction, so two concurrent runs can never both move the
//! plan.
//!
//! Takes only the ports it uses ([`WarPorts`]): the store, the score board (the players' final
//! points), the clock, the id generator (event ids) and the deployment's rules.

use super::ServicePorts;
use super::WarPorts;
use crate::error::{DomainError, DomainResult};
use crate::events::DomainEvent;
use crate::ids::{PlayerId, WarId};
use crate::ports::{RecordKey, StoreExt, Transaction};
use crate::rewards::{self, Grant, GrantStatus, RewardPlan};
use crate::war::{RewardStatus, War, WarStatus};
use serde::{Deserialize, Serialize};

/// `GET /wars/{war_id}/rewards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardsView {
    pub war_id: WarId,
    pub status: RewardStatus,
    pub grants: Vec<GrantView>,
    /// Grants a rescore replaced (revoked by the correction's run).
    pub superseded: Vec<GrantView>,
    /// The war's rescore the amounts follow (0: as the war ended).
    pub rescore: u32,
    /// Distribution attempts so far (1 + re-drives).
    pub attempt: u32,
    /// The run distributing the plan now when it is not the first (`r<n>`, `a<n>`).
    pub run: Option<String>,
}

/// One grant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    pub player_id: PlayerId,
    pub kind: String,
    pub amount: u64,
    pub status: GrantStatus,
    /// The key the economy service pays (and revokes) this grant by.
    pub idempotency_key: String,
}

impl From<&RewardPlan> for RewardsView {
    fn from(plan: &RewardPlan) -> Self {
        let view = |grants: &[Grant]| {
            grants
                .iter()
                .map(|g| GrantView {
                    player_id: g.player_id.clone(),
                    kind: g.kind.clone(),
                    amount: g.amount,
                    status: g.status,
                    idempotency_key: g.idempotency_key(&plan.war_id),
                })
                .collect()
        };
        Self {
            war_id: plan.war_id.clone(),
            status: plan.status,
            grants: view(&plan.grants),
            superseded: view(&plan.superseded),
            rescore: plan.rescore,
            attempt: plan.attempt,
            run: plan.run.clone(),
        }
    }
}

/// The saga's steps over the stored plan.
#[derive(Debug, Clone)]
pub struct RewardService {
    ports: WarPorts,
}

impl RewardService {
    pub fn new(ports: WarPorts) -> Self {
        Self { ports }
    }

    /// Computes and stores the plan of an ENDED war; returns the stored plan unchanged if one
    /// exists, so re-running the saga never re-plans (scores read later could differ).
    pub async fn prepare(&self, war_id: &WarId) -> DomainResult<RewardPlan> {
        let mut war = self.ports.war(war_id).await?;
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
        let mut plan = self.plan_of(&war).await?;
        let mut tx = Transaction::new();
        tx.insert(&mut plan);
        war.rewards_status = Some(plan.status);
        tx.update(&mut war);
        match self.ports.commit(tx).await {
            Ok(()) => Ok(plan),
            // A concurrent prepare won the insert: its plan is the plan.
            Err(DomainError::ConcurrentModification) => self
                .find(war_id)
                .await?
                .ok_or(DomainError::ConcurrentModification),
            Err(err) => Err(err),
        }
    }

    /// The plan the war's result and players' points (after its voids) make now.
    async fn plan_of(&self, war: &War) -> DomainResult<RewardPlan> {
        let players = self
            .ports
            .scores
            .all_players(&war.war_id, war.score_shards)
            .await?;
        let mut plan = rewards::plan(war, &war.rescored(players), &self.ports.rules_for(war));
        plan.rescore = war.rescore_number();
        Ok(plan)
    }

    /// What follows a rescore or a re-drive (the war-endings queue, at least once): a finished
    /// plan that does not follow the war's last rescore yet is corrected
    /// ([`RewardPlan::correct`]); then the run waiting for its saga, if any, is returned for
    /// the caller to start (`<war_id>-<run>`; starting it twice is a no-op). A plan still being
    /// distributed is left alone: the run's end (`RewardsDistributed` or
    /// `RewardDistributionFailed`) calls this again, and the plan follows then. No plan yet:
    /// nothing to do — the plan, when made, follows the rescored war.
    pub async fn follow(&self, war_id: &WarId) -> DomainResult<Option<String>> {
        let Some(mut plan) = self.find(war_id).await? else {
            return Ok(None);
        };
        let mut war = self.ports.war(war_id).await?;
        if plan.rescore < war.rescore_number() {
            if !plan.is_finished() {
                tracing::info!(war_id = %war_id, status = ?plan.status, "rescore waits for the distribution to finish");
                return Ok(None);
            }
            let target = self.plan_of(&war).await?;
            plan.correct(&target, war.rescore_number())?;
            let mut tx = Transaction::new();
            tx.update(&mut plan);
            if war.rewards_status != Some(plan.status) {
                war.rewards_status = Some(plan.status);
                tx.update(&mut war);
            }
            self.ports.commit(tx).await?;
            tracing::info!(war_id = %war_id, rescore = plan.rescore, run = ?plan.run, superseded = plan.superseded.len(), "reward plan follows the rescore");
        }
        Ok(plan.waiting_run().map(str::to_owned))
    }

    /// An operator re-drives a failed distribution (`POST /admin/wars/{war_id}/rewards/redrive`):
    /// the plan's next attempt ([`RewardPlan::redrive`]), audited on the war and published as
    /// `OperatorActed` in the same transaction; the run `a<attempt>` starts from that event.
    /// A distribution that did not fail is 409 `INVALID_REWARD_STATE`.
    pub async fn redrive(
        &self,
        war_id: &WarId,
        op: &super::lifecycle::OperatorCommand,
    ) -> DomainResult<RewardPlan> {
        op.validate()?;
        let mut plan = self.get(war_id).await?;
        let mut war = self.ports.war(war_id).await?;
        let run = plan.redrive()?;
        let action = crate::war::OperatorAction {
            action: crate::war::OperatorActionKind::RedriveRewards,
            by: op.by.clone(),
            principal: op.principal.clone(),
            reason: op.reason.clone(),
            at: self.ports.clock.now(),
            from: war.status,
            to: war.status,
            rewards_run: Some(run),
        };
        war.operator_actions.push(action.clone());
        war.rewards_status = Some(plan.status);
        let mut tx = Transaction::new();
        tx.update(&mut plan);
        tx.update(&mut war);
        tx.emit(self.event(&war, DomainEvent::OperatorActed(action)));
        self.ports.commit(tx).await?;
        tracing::warn!(war_id = %war_id, attempt = plan.attempt, operator = %op.by, "reward distribution re-driven");
        Ok(plan)
    }

    /// Records superseded grants (by idempotency key) the economy took back.
    pub async fn record_superseded(
        &self,
        war_id: &WarId,
        keys: &[String],
    ) -> DomainResult<RewardPlan> {
        self.step(war_id, |plan| {
            Ok(Step::from(plan.mark_superseded_revoked(keys)? > 0, None))
        })
        .await
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

    /// The grants of chunk `index` (in saga order, `reward_chunk_size` per chunk) to send to
    /// the economy service for `purpose` (the `load_chunk` task). An index past the end is
    /// an empty chunk.
    pub async fn load_chunk(
        &self,
        war_id: &WarId,
        index: usize,
        purpose: Purpose,
    ) -> DomainResult<Vec<Grant>> {
        let plan = self.get(war_id).await?;
        let size = self.chunk_size();
        let lines = match purpose {
            Purpose::Supersede => nth_chunk(rewards::superseded_chunks(&plan, size), index),
            Purpose::Grant | Purpose::Revoke => nth_chunk(rewards::chunks(&plan, size), index),
        };
        Ok(lines
            .into_iter()
            .filter(|g| match purpose {
                Purpose::Grant => g.status == GrantStatus::Pending,
                Purpose::Revoke | Purpose::Supersede => g.status != GrantStatus::Revoked,
            })
            .collect())
    }

    /// The economy confirmed chunk `index` (`record_granted`): its PENDING grants become
    /// GRANTED.
    pub async fn record_granted_chunk(
        &self,
        war_id: &WarId,
        index: usize,
    ) -> DomainResult<RewardPlan> {
        let plan = self.get(war_id).await?;
        let players = self.chunk_players(&plan, index);
        self.step_on(plan, |plan| {
            Ok(Step::from(plan.mark_granted(&players)? > 0, None))
        })
        .await
    }

    /// The economy took superseded chunk `index` back (`record_superseded`).
    pub async fn record_superseded_chunk(
        &self,
        war_id: &WarId,
        index: usize,
    ) -> DomainResult<RewardPlan> {
        let plan = self.get(war_id).await?;
        let keys: Vec<String> =
            nth_chunk(rewards::superseded_chunks(&plan, self.chunk_size()), index)
                .iter()
                .map(|g| g.idempotency_key(war_id))
                .collect();
        self.step_on(plan, |plan| {
            Ok(Step::from(plan.mark_superseded_revoked(&keys)? > 0, None))
        })
        .await
    }

    /// Compensation (`order_revocations`): the chunks to revoke, last first
    /// ([`rewards::revocation_order`]).
    pub async fn revocation_order(&self, war_id: &WarId) -> DomainResult<Vec<usize>> {
        let plan = self.get(war_id).await?;
        Ok(rewards::revocation_order(&plan, self.chunk_size()))
    }

    /// The economy took chunk `index` back (`record_revoked`): its grants become REVOKED.
    pub async fn record_revoked_chunk(
        &self,
        war_id: &WarId,
        index: usize,
    ) -> DomainResult<RewardPlan> {
        let plan = self.get(war_id).await?;
        let players = self.chunk_players(&plan, index);
        self.step_on(plan, |plan| {
            Ok(Step::from(plan.mark_revoked(&players)? > 0, None))
        })
        .await
    }

    /// Grants per saga chunk (a deployment parameter, validated in 1..=
    /// [`crate::config::MAX_REWARD_CHUNK_SIZE`]).
    pub fn chunk_size(&self) -> usize {
        self.ports.rules.reward_chunk_size
    }

    fn chunk_players(&self, plan: &RewardPlan, index: usize) -> Vec<PlayerId> {
        nth_chunk(rewards::chunks(plan, self.chunk_size()), index)
            .into_iter()
            .map(|g| g.player_id)
            .collect()
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
            .ports
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
        self.step_on(self.get(war_id).await?, change).await
    }

    /// [`Self::step`] on a plan just read (a chunk step reads it once).
    async fn step_on(
        &self,
        mut plan: RewardPlan,
        change: impl FnOnce(&mut RewardPlan) -> DomainResult<Step>,
    ) -> DomainResult<RewardPlan> {
        let war_id = &plan.war_id.clone();
        let Step::Changed(event) = change(&mut plan)? else {
            return Ok(plan);
        };
        let mut war = self.ports.war(war_id).await?;
        let mut tx = Transaction::new();
        tx.update(&mut plan);
        if war.rewards_status != Some(plan.status) {
            war.rewards_status = Some(plan.status);
            tx.update(&mut war);
        }
        if let Some(event) = event {
            tx.emit(self.event(&war, event));
        }
        self.ports.commit(tx).await?;
        Ok(plan)
    }

    fn event(&self, war: &War, event: DomainEvent) -> crate::events::EventEnvelope {
        self.ports.event(Some(&war.war_id), war.all_clans(), event)
    }
}

/// What a chunk is loaded for (the `purpose` of the state machine's `load_chunk` task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Only PENDING grants: GRANTED ones are never sent again.
    Grant,
    /// Every grant not yet REVOKED: the granted ones and those in doubt (a failed call may
    /// have paid before failing).
    Revoke,
    /// The superseded grants (of a rescore's correction) of the chunk not yet REVOKED.
    Supersede,
}

fn nth_chunk<'a>(mut chunks: impl Iterator<Item = &'a [Grant]>, index: usize) -> Vec<Grant> {
    chunks.nth(index).map(<[Grant]>::to_vec).unwrap_or_default()
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

/// For unit tests of the steps: what the economy does with a chunk, and the steps in the
/// order the state machine's task payloads call them. There is no retry here and no choice of
/// what to do on a failure: each test runs the branch of the state machine it is about (the
/// retries and the Catch rules are the state machine's, tested through it by the workflow
/// integration tests).
#[cfg(test)]
pub(crate) mod steps {
    use super::{Purpose, RewardService};
    use crate::error::DomainResult;
    use crate::ids::{PlayerId, WarId};
    use crate::rewards::{Grant, RewardPlan};
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex, MutexGuard};

    #[derive(Debug, Default)]
    struct State {
        grant_calls: usize,
        refuse_from: Option<usize>,
        refuse_once: Option<usize>,
        refuse_revokes: bool,
        paid: BTreeMap<String, (PlayerId, u64)>,
        revoked: BTreeSet<String>,
        balances: BTreeMap<PlayerId, i64>,
    }

    /// The economy's contract (as the economy simulator keeps it): pays at most once per
    /// idempotency key, a revoked key never pays, revoking a key that never paid is a no-op.
    /// Grants of a chunk are paid in order; the first refused one fails the chunk.
    #[derive(Debug, Clone, Default)]
    pub struct Economy {
        state: Arc<Mutex<State>>,
    }

    impl Economy {
        fn state(&self) -> MutexGuard<'_, State> {
            self.state.lock().expect("economy poisoned")
        }

        /// Every grant call from the `n`-th on (1-based) is refused: an outage.
        pub fn refuse_from_grant(&self, n: usize) {
            self.state().refuse_from = Some(n);
        }

        /// Only the `n`-th grant call is refused: a blip.
        pub fn refuse_grant_once(&self, n: usize) {
            self.state().refuse_once = Some(n);
        }

        pub fn refuse_revokes(&self, refuse: bool) {
            self.state().refuse_revokes = refuse;
        }

        /// The economy is back.
        pub fn recover(&self) {
            let mut s = self.state();
            s.refuse_from = None;
            s.refuse_once = None;
            s.refuse_revokes = false;
        }

        /// Net amount paid to the player (grants minus revocations).
        pub fn paid(&self, player: &PlayerId) -> i64 {
            self.state().balances.get(player).copied().unwrap_or(0)
        }

        pub fn total_paid(&self) -> i64 {
            self.state().balances.values().sum()
        }

        /// Grant calls received, refused ones and duplicates included.
        pub fn grant_calls(&self) -> usize {
            self.state().grant_calls
        }

        /// Keys that actually paid out.
        pub fn payouts(&self) -> usize {
            self.state().paid.len()
        }

        pub fn grant(&self, war_id: &WarId, grant: &Grant) -> Result<(), String> {
            let key = grant.idempotency_key(war_id);
            let mut s = self.state();
            s.grant_calls += 1;
            let n = s.grant_calls;
            if s.refuse_from.is_some_and(|from| n >= from) || s.refuse_once == Some(n) {
                return Err(format!("grant to {} refused", grant.player_id));
            }
            if s.paid.contains_key(&key) || s.revoked.contains(&key) {
                return Ok(());
            }
            s.paid.insert(key, (grant.player_id.clone(), grant.amount));
            *s.balances.entry(grant.player_id.clone()).or_default() += grant.amount as i64;
            Ok(())
        }

        pub fn revoke(&self, war_id: &WarId, grant: &Grant) -> Result<(), String> {
            let key = grant.idempotency_key(war_id);
            let mut s = self.state();
            if s.refuse_revokes {
                return Err(format!("revoking {key} refused"));
            }
            if !s.revoked.insert(key.clone()) {
                return Ok(());
            }
            if let Some((player, amount)) = s.paid.get(&key).cloned() {
                *s.balances.entry(player).or_default() -= amount as i64;
            }
            Ok(())
        }
    }

    /// `GrantChunks`, one item: `load_chunk` (grant) → the economy pays it → `record_granted`.
    /// `Err` when the economy refused a grant: the chunk is not recorded (it is in doubt).
    pub async fn grant_chunk(
        svc: &RewardService,
        economy: &Economy,
        war_id: &WarId,
        index: usize,
    ) -> DomainResult<Result<RewardPlan, String>> {
        let grants = svc.load_chunk(war_id, index, Purpose::Grant).await?;
        for g in &grants {
            if let Err(reason) = economy.grant(war_id, g) {
                return Ok(Err(reason));
            }
        }
        Ok(Ok(svc.record_granted_chunk(war_id, index).await?))
    }

    /// `RevokeSupersededChunks`, one item: `load_chunk` (supersede) → revoke →
    /// `record_superseded`.
    pub async fn revoke_superseded_chunk(
        svc: &RewardService,
        economy: &Economy,
        war_id: &WarId,
        index: usize,
    ) -> DomainResult<Result<RewardPlan, String>> {
        let grants = svc.load_chunk(war_id, index, Purpose::Supersede).await?;
        for g in &grants {
            if let Err(reason) = economy.revoke(war_id, g) {
                return Ok(Err(reason));
            }
        }
        Ok(Ok(svc.record_superseded_chunk(war_id, index).await?))
    }

    /// The compensation branch: `order_revocations` → each chunk `load_chunk` (revoke) →
    /// revoke → `record_revoked` → `fail` with the caught failure's `reason`; a refused
    /// revocation stops the revocations and fails with `COMPENSATION_INCOMPLETE` instead
    /// (`NoteIncompleteCompensation`).
    pub async fn compensate(
        svc: &RewardService,
        economy: &Economy,
        war_id: &WarId,
        reason: &str,
    ) -> DomainResult<RewardPlan> {
        for index in svc.revocation_order(war_id).await? {
            for g in &svc.load_chunk(war_id, index, Purpose::Revoke).await? {
                if let Err(refusal) = economy.revoke(war_id, g) {
                    let reason = format!("COMPENSATION_INCOMPLETE: {refusal}");
                    return svc.fail(war_id, &reason).await;
                }
            }
            svc.record_revoked_chunk(war_id, index).await?;
        }
        svc.fail(war_id, reason).await
    }

    /// The path without failures: `prepare` → `begin` → every superseded chunk → every
    /// chunk → `complete`. `Err` with the refusal as soon as the economy refuses (the test
    /// then runs the compensation or not, as the state machine's Catch would).
    pub async fn distribute(
        svc: &RewardService,
        economy: &Economy,
        war_id: &WarId,
    ) -> DomainResult<Result<RewardPlan, String>> {
        let plan = svc.prepare(war_id).await?;
        if plan.is_finished() {
            return Ok(Ok(plan));
        }
        assert!(
            !plan.resumes_compensation(),
            "the run resumes a compensation"
        );
        let size = svc.chunk_size();
        let plan = svc.begin(war_id).await?;
        for index in 0..crate::rewards::superseded_chunks(&plan, size).len() {
            if let Err(reason) = revoke_superseded_chunk(svc, economy, war_id, index).await? {
                return Ok(Err(reason));
            }
        }
        for index in 0..crate::rewards::chunks(&plan, size).len() {
            if let Err(reason) = grant_chunk(svc, economy, war_id, index).await? {
                return Ok(Err(reason));
            }
        }
        Ok(Ok(svc.complete(war_id).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::steps::{self, Economy};
    use super::*;
    use crate::config::Rules;
    use crate::ids::ClanId;
    use crate::memory::FakeClock;
    use crate::ports::{PlayerPoints, ScoreDelta};
    use crate::services::{Deps, MemoryHandles};
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
        RewardService::new(deps.into())
    }

    fn assert_paid_exactly_the_plan(economy: &Economy, plan: &RewardPlan) {
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
            serde_json::json!({"player_id": "a1", "kind": "gold", "amount": 2000, "status": "PENDING", "idempotency_key": "war-1#a1#gold"})
        );
    }

    async fn distribute(svc: &RewardService, economy: &Economy) -> Result<RewardPlan, String> {
        steps::distribute(svc, economy, &war_id()).await.unwrap()
    }

    #[tokio::test]
    async fn a_full_run_pays_exactly_the_plan_and_announces_it() {
        let (deps, h) = setup(WarStatus::Ended).await;
        let economy = Economy::default();
        let plan = distribute(&service(&deps), &economy).await.unwrap();
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
        let economy = Economy::default();
        let first = distribute(&service(&deps), &economy).await.unwrap();
        let second = distribute(&service(&deps), &economy).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(economy.grant_calls(), 5);
        assert_paid_exactly_the_plan(&economy, &second);
        assert_eq!(h.events.types(), vec!["RewardsDistributed"]);
    }

    #[tokio::test]
    async fn a_chunk_failing_after_retries_is_compensated_and_the_plan_fails() {
        let (deps, h) = setup(WarStatus::Ended).await;
        let svc = service(&deps);
        let economy = Economy::default();
        // Grants 1–3 pay (chunk 0 and half of chunk 1); the 4th call and every later one fail.
        economy.refuse_from_grant(4);
        let reason = distribute(&svc, &economy).await.unwrap_err();
        let plan = steps::compensate(&svc, &economy, &war_id(), &reason)
            .await
            .unwrap();
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
        assert_eq!(economy.grant_calls(), 4);

        // A re-run of a failed saga does nothing.
        let again = distribute(&svc, &economy).await.unwrap();
        assert_eq!(again, plan);
        assert_eq!(economy.grant_calls(), 4);
    }

    fn operator() -> crate::services::lifecycle::OperatorCommand {
        crate::services::lifecycle::OperatorCommand {
            by: player("ops-1"),
            principal: None,
            reason: "economy is back".into(),
        }
    }

    #[tokio::test]
    async fn a_redrive_after_the_economy_recovers_pays_only_what_was_not_paid_once() {
        let (deps, h) = setup(WarStatus::Ended).await;
        let svc = service(&deps);
        let economy = Economy::default();
        economy.refuse_from_grant(4);
        let reason = distribute(&svc, &economy).await.unwrap_err();
        let failed = steps::compensate(&svc, &economy, &war_id(), &reason)
            .await
            .unwrap();
        assert_eq!(failed.status, RewardStatus::RewardsFailed);
        economy.recover();
        let plan = svc.redrive(&war_id(), &operator()).await.unwrap();
        assert_eq!(
            (plan.status, plan.attempt, plan.run.as_deref()),
            (RewardStatus::Pending, 2, Some("a2"))
        );
        let keys: Vec<String> = plan
            .grants
            .iter()
            .map(|g| g.idempotency_key(&war_id()))
            .collect();
        // The four revoked grants pay under the new attempt's keys; the fifth, never sent,
        // keeps its own.
        assert_eq!(
            keys,
            vec![
                "war-1#a1#gold#a2",
                "war-1#a2#gold#a2",
                "war-1#a3#gold#a2",
                "war-1#d1#gold#a2",
                "war-1#d2#gold"
            ]
        );
        // Not failed (any more): refused.
        let again = svc.redrive(&war_id(), &operator()).await.unwrap_err();
        assert_eq!(
            (again.code(), again.class()),
            ("INVALID_REWARD_STATE", crate::ErrorClass::Conflict)
        );
        let war = deps.war(&war_id()).await.unwrap();
        let audit = war.operator_actions.last().unwrap();
        assert_eq!(audit.action, crate::war::OperatorActionKind::RedriveRewards);
        assert_eq!(audit.rewards_run.as_deref(), Some("a2"));
        assert_eq!(war.rewards_status, Some(RewardStatus::Pending));
        // The war-endings consumer starts the run `a2` from the audit event.
        let wars = crate::services::wars::WarService::new((&deps).into());
        for event in h.events.published() {
            wars.react(&event).await.unwrap();
        }
        let run = crate::memory::WorkflowCall::StartRewardsRun(war_id(), "a2".into());
        // (The earlier failure's event finds the same run waiting: starting a run twice is a
        // no-op, Step Functions refuses a second execution of one name.)
        assert!(h.workflows.calls().contains(&run));

        let done = distribute(&svc, &economy).await.unwrap();
        assert_eq!(done.status, RewardStatus::Distributed);
        assert_paid_exactly_the_plan(&economy, &done);
        // 3 paid then revoked, 5 paid now: nothing paid twice, the first keys stay revoked.
        assert_eq!(economy.payouts(), 3 + 5);
        let calls = economy.grant_calls();
        assert_eq!(distribute(&svc, &economy).await.unwrap(), done);
        assert_eq!(economy.grant_calls(), calls);
        let late = svc.redrive(&war_id(), &operator()).await.unwrap_err();
        assert_eq!(late.code(), "INVALID_REWARD_STATE");
    }

    #[tokio::test]
    async fn a_redrive_keeps_grants_a_failed_compensation_left_paid() {
        let (deps, _) = setup(WarStatus::Ended).await;
        let svc = service(&deps);
        let economy = Economy::default();
        economy.refuse_from_grant(3);
        economy.refuse_revokes(true);
        let reason = distribute(&svc, &economy).await.unwrap_err();
        let failed = steps::compensate(&svc, &economy, &war_id(), &reason)
            .await
            .unwrap();
        assert_eq!(failed.status, RewardStatus::RewardsFailed);
        assert_eq!(failed.count(GrantStatus::Granted), 2);
        economy.recover();
        let plan = svc.redrive(&war_id(), &operator()).await.unwrap();
        assert_eq!(plan.count(GrantStatus::Granted), 2);
        let done = distribute(&svc, &economy).await.unwrap();
        assert_eq!(done.status, RewardStatus::Distributed);
        assert_paid_exactly_the_plan(&economy, &done);
        assert_eq!(economy.payouts(), 5);
    }

    #[tokio::test]
    async fn a_chunk_sent_again_after_a_refusal_pays_each_grant_once() {
        let (deps, _) = setup(WarStatus::Ended).await;
        let svc = service(&deps);
        let economy = Economy::default();
        economy.refuse_grant_once(2);
        svc.prepare(&war_id()).await.unwrap();
        svc.begin(&war_id()).await.unwrap();
        let first = steps::grant_chunk(&svc, &economy, &war_id(), 0)
            .await
            .unwrap();
        assert!(first.unwrap_err().contains("a2"));
        // The state machine's Retry on the grant task sends the chunk again.
        for index in 0..3 {
            steps::grant_chunk(&svc, &economy, &war_id(), index)
                .await
                .unwrap()
                .unwrap();
        }
        let plan = svc.complete(&war_id()).await.unwrap();
        assert_eq!(plan.status, RewardStatus::Distributed);
        assert_paid_exactly_the_plan(&economy, &plan);
        // a1 was sent twice (the second deduplicated by its key), a2 twice (refused, then paid).
        assert_eq!(economy.grant_calls(), 2 + 2 + 2 + 1);
        assert_eq!(economy.payouts(), 5);
    }

    #[tokio::test]
    async fn a_run_interrupted_mid_way_pays_each_grant_once() {
        let (deps, _) = setup(WarStatus::Ended).await;
        let economy = Economy::default();
        let svc = service(&deps);
        svc.prepare(&war_id()).await.unwrap();
        svc.begin(&war_id()).await.unwrap();
        let granted = steps::grant_chunk(&svc, &economy, &war_id(), 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(granted.count(GrantStatus::Granted), 2);
        // Chunk 1's first grant paid, but the run died before recording it.
        let plan = svc.get(&war_id()).await.unwrap();
        economy.grant(&war_id(), &plan.grants[2]).unwrap();

        let plan = distribute(&svc, &economy).await.unwrap();
        assert_eq!(plan.status, RewardStatus::Distributed);
        assert_paid_exactly_the_plan(&economy, &plan);
        assert_eq!(economy.payouts(), 5);
        // Chunk 0 was not sent again; the unrecorded grant was, and was deduplicated.
        assert_eq!(economy.grant_calls(), 2 + 1 + 3);
    }

    #[tokio::test]
    async fn a_run_interrupted_during_compensation_finishes_it() {
        let (deps, _) = setup(WarStatus::Ended).await;
        let economy = Economy::default();
        let svc = service(&deps);
        svc.prepare(&war_id()).await.unwrap();
        svc.begin(&war_id()).await.unwrap();
        for index in 0..2 {
            steps::grant_chunk(&svc, &economy, &war_id(), index)
                .await
                .unwrap()
                .unwrap();
        }
        // The compensation revoked a3 and a2, then stopped.
        for p in ["a3", "a2"] {
            let plan = svc.get(&war_id()).await.unwrap();
            let g = plan
                .grants
                .iter()
                .find(|g| g.player_id == player(p))
                .unwrap();
            economy.revoke(&war_id(), g).unwrap();
        }
        svc.record_revoked(&war_id(), &[player("a3"), player("a2")])
            .await
            .unwrap();

        // The next run's prepare finds the compensation to resume (`NoteResumedCompensation`).
        let prepared = svc.prepare(&war_id()).await.unwrap();
        assert!(prepared.resumes_compensation());
        assert_eq!(
            svc.revocation_order(&war_id()).await.unwrap(),
            vec![2, 1, 0]
        );
        let plan = steps::compensate(&svc, &economy, &war_id(), "COMPENSATION_RESUMED")
            .await
            .unwrap();
        assert_eq!(plan.status, RewardStatus::RewardsFailed);
        assert_eq!(economy.total_paid(), 0);
        assert_eq!(economy.grant_calls(), 4);
    }

    #[tokio::test]
    async fn failed_revocations_are_reported_in_the_failure() {
        let (deps, h) = setup(WarStatus::Ended).await;
        let svc = service(&deps);
        let economy = Economy::default();
        economy.refuse_from_grant(2);
        economy.refuse_revokes(true);
        let reason = distribute(&svc, &economy).await.unwrap_err();
        let plan = steps::compensate(&svc, &economy, &war_id(), &reason)
            .await
            .unwrap();
        assert_eq!(plan.status, RewardStatus::RewardsFailed);
        // a1 paid in the chunk in doubt, and its revocation was refused: it stays paid.
        assert_eq!(economy.paid(&player("a1")), 2_000);
        let failed = h.events.published().pop().unwrap();
        assert!(matches!(
            failed.event,
            DomainEvent::RewardDistributionFailed { revoked: 0, ref reason }
                if reason.starts_with("COMPENSATION_INCOMPLETE") && reason.contains("war-1#a1#gold")
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
        let economy = Economy::default();
        let plan = distribute(&service(&deps), &economy).await.unwrap();
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
