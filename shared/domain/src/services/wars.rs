//! War operations (SPEC §2, §3, §8): declare (the saga around [`DeclarationService`]), join,
//! surrender, cancel, phase moves, final tally.
//!
//! Every operation follows the same loop: load → check the pure rules → commit one transaction
//! guarded by the versions it read. A conflict means somebody else changed what we read, so we
//! load and check again (up to [`crate::retry::MAX_ATTEMPTS`], backing off with jitter): the
//! second pass reports the precise rule the
//! concurrent change now violates, or succeeds.

use super::declaration::{DeclarationService, Declared};
use super::territories::TerritoryService;
use super::{require_role, Deps};
use crate::clan::{Clan, Role};
use crate::config::Rules;
use crate::declaration::DeclareCommand;
use crate::error::{DomainError, DomainResult};
use crate::events::{DomainEvent, EventEnvelope};
use crate::ids::{ClanId, PlayerId, WarId};
use crate::ledger::{EffectKind, LedgerEntry, LedgerWrite};
use crate::ports::{Fetched, Page, PageRequest, PairLock, RecordKey, Transaction};
use crate::scoring;
use crate::territory::Territory;
use crate::war::{
    Advance, OperatorAction, OperatorActionKind, Outcome, RatingChange, Side, Tally, War,
    WarResult, WarStatus, WinnerSide,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest page of the war log.
pub const MAX_PAGE: usize = 100;

/// `POST /wars/{id}/join` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub clan_id: ClanId,
    pub side: Side,
}

/// `POST /wars/{id}/surrender` and `/cancel` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClanRequest {
    pub clan_id: ClanId,
}

/// Longest reason an operator may give.
pub const MAX_REASON_LEN: usize = 500;

/// An operator's request on an admin route: who asks (the route's `x-actor-id`, and on AWS the
/// caller's IAM principal) and why. Both go into the war's audit trail and its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorCommand {
    pub by: PlayerId,
    pub principal: Option<String>,
    pub reason: String,
}

impl OperatorCommand {
    /// A reason is required: 1 to 500 characters, not only blanks.
    pub fn validate(&self) -> DomainResult<()> {
        let len = self.reason.chars().count();
        if self.reason.trim().is_empty() || len > MAX_REASON_LEN {
            return Err(DomainError::invalid(
                "reason",
                format!("must be 1 to {MAX_REASON_LEN} characters, not only blanks"),
            ));
        }
        Ok(())
    }
}

/// `POST /admin/wars/{id}/advance` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminAdvanceRequest {
    /// The phase to move to: the next one after the war's current phase.
    pub to: WarStatus,
    pub reason: String,
}

/// `POST /admin/wars/{id}/end` and `/cancel` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
}

/// The answer of an operator action: whether it moved the war (false: already done), and the war.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorOutcome {
    pub moved: bool,
    pub war: War,
}

impl From<(War, Advance)> for OperatorOutcome {
    fn from((war, advance): (War, Advance)) -> Self {
        Self {
            moved: matches!(advance, Advance::Moved { .. }),
            war,
        }
    }
}

/// How a war leaves the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Ended with a result: ratings move, peace shield and pair cooldown start.
    Ended(WinnerSide),
    /// Never really fought (mutual cancel, failed declaration): no shield, no cooldown.
    Abandoned,
}

/// What closing a war changes besides the war, as read before the change.
#[derive(Debug, Clone)]
struct Closing {
    clans: BTreeMap<ClanId, Clan>,
    pair: Option<PairLock>,
    /// The war's territories that exist (sorted by id).
    territories: Vec<Territory>,
}

#[derive(Debug, Clone)]
pub struct WarService {
    deps: Deps,
}

impl WarService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// A declaration: validate and write the war, then start its declare-war saga (which
    /// starts the timers and compensates if they cannot start). If even the saga cannot start,
    /// compensate here (cancel the war, release everything) and report the outage.
    pub async fn declare(&self, cmd: DeclareCommand) -> DomainResult<Declared> {
        let declared = DeclarationService::new((&self.deps).into())
            .create(cmd)
            .await?;
        if let Err(err) = self.deps.workflows.start_declaration(&declared.war).await {
            self.compensate_declaration(&declared.war.war_id).await?;
            return Err(DomainError::WorkflowUnavailable(err));
        }
        Ok(declared)
    }

    /// Saga compensation: cancels a war whose timers could not start and releases its
    /// territories, clans and pair lock — without peace shield or cooldown. Idempotent.
    pub async fn compensate_declaration(&self, war_id: &WarId) -> DomainResult<War> {
        self.retrying(war_id, |mut war| async move {
            let now = self.now();
            if war.cancel_failed_declaration(now) == Advance::AlreadyDone {
                return Ok((war, None));
            }
            let closing = self.closing(&war).await?;
            let mut tx = self.close(&mut war, Close::Abandoned, closing);
            tx.emit(self.war_event(
                &war,
                DomainEvent::WarCancelled {
                    outcome: war.outcome.expect("set by cancel"),
                },
            ));
            Ok((war, Some(tx)))
        })
        .await
    }

    /// A war with live side scores (frozen ones once it ended).
    pub async fn get(&self, war_id: &WarId) -> DomainResult<War> {
        let mut war = self.deps.war(war_id).await?;
        if !war.status.is_terminal() {
            let totals = self
                .deps
                .scores
                .clan_totals(war_id, war.score_shards)
                .await?;
            let (attacker, defender) = scoring::side_totals(&war, &totals);
            war.sides.attacker.score = attacker;
            war.sides.defender.score = defender;
        }
        Ok(war)
    }

    /// A clan's war log, newest first.
    pub async fn list_for_clan(
        &self,
        clan_id: &ClanId,
        status: Option<WarStatus>,
        limit: usize,
        cursor: Option<String>,
    ) -> DomainResult<Page<War>> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(DomainError::invalid(
                "limit",
                format!("must be 1..={MAX_PAGE}"),
            ));
        }
        // The clan must exist; its log is read side by side with that check.
        let (clan, page) = futures_util::future::join(
            self.deps.clan(clan_id),
            self.deps
                .store
                .wars_of_clan(clan_id, status, PageRequest { limit, cursor }),
        )
        .await;
        clan?;
        Ok(page?)
    }

    /// An allied clan joins a side during DECLARED/PREPARATION.
    pub async fn join(
        &self,
        war_id: &WarId,
        req: JoinRequest,
        actor: &PlayerId,
    ) -> DomainResult<War> {
        let joining = RecordKey::Clan(req.clan_id.clone());
        self.retrying_with_records(war_id, vec![joining], |mut war, mut fetched| {
            let req = req.clone();
            async move {
                let mut clan: Clan = fetched
                    .one()?
                    .ok_or_else(|| DomainError::ClanNotFound(req.clan_id.clone()))?;
                require_role(&clan, actor, Role::Officer)?;
                let primary = self.deps.clan(war.primary_clan(req.side)).await?;
                war.add_ally(&clan, req.side, &primary, &self.deps.rules_for(&war))?;
                clan.enter_war(war_id);
                let mut tx = Transaction::new();
                tx.update(&mut war);
                tx.update(&mut clan);
                tx.emit(self.war_event(
                    &war,
                    DomainEvent::AllyJoined {
                        clan_id: req.clan_id.clone(),
                        side: req.side,
                    },
                ));
                Ok((war, Some(tx), ()))
            }
        })
        .await
        .map(|(war, ())| war)
    }

    /// The surrendering side loses at once; scores freeze; timers stop; rewards start.
    /// Repeating a surrender that already happened returns the ended war.
    ///
    /// The surrender is checked first, then the war's counters are sealed (no later score
    /// write lands), and the frozen scores are the sealed values themselves.
    pub async fn surrender(
        &self,
        war_id: &WarId,
        clan_id: &ClanId,
        actor: &PlayerId,
    ) -> DomainResult<War> {
        let mut fetched = self
            .deps
            .store
            .get_many(&[
                RecordKey::War(war_id.clone()),
                RecordKey::Clan(clan_id.clone()),
            ])
            .await?;
        let war: War = fetched
            .one()?
            .ok_or_else(|| DomainError::WarNotFound(war_id.clone()))?;
        if war.surrendered_by.as_ref() == Some(clan_id) {
            // A repeated surrender: what followed the first (timers stopped, rewards started)
            // is driven by its committed events, which are delivered at least once.
            return Ok(war);
        }
        let clan: Clan = fetched
            .one()?
            .ok_or_else(|| DomainError::ClanNotFound(clan_id.clone()))?;
        require_role(&clan, actor, Role::Officer)?;
        war.clone().surrender(clan_id, (0, 0), self.now())?;
        let (sealed, closing) = futures_util::future::try_join(
            async { Ok(self.deps.scores.seal(war_id, war.score_shards).await?) },
            self.closing(&war),
        )
        .await?;
        let sealed = &sealed;
        let (war, ()) = self
            .retrying_from(war, closing, |mut war, closing| async move {
                if war.surrendered_by.as_ref() == Some(clan_id) {
                    return Ok((war, None, ()));
                }
                let now = self.now();
                let side = war.surrender(clan_id, scoring::side_totals(&war, sealed), now)?;
                war.final_clan_scores = final_scores(&war, sealed);
                let winner = war.winner_side.expect("set by surrender");
                let mut tx = self.close(&mut war, Close::Ended(winner), closing);
                tx.emit(self.war_event(
                    &war,
                    DomainEvent::WarSurrendered {
                        clan_id: clan_id.clone(),
                        side,
                    },
                ));
                tx.emit(self.war_ended_event(&war));
                Ok((war, Some(tx), ()))
            })
            .await?;
        Ok(war)
    }

    /// Records a primary leader's cancel request; the war is CANCELLED once both asked.
    pub async fn cancel(
        &self,
        war_id: &WarId,
        clan_id: &ClanId,
        actor: &PlayerId,
    ) -> DomainResult<War> {
        let leader = RecordKey::Clan(clan_id.clone());
        let (war, ()) = self
            .retrying_with_records(war_id, vec![leader], |mut war, mut fetched| async move {
                if war.status == WarStatus::Cancelled && war.cancel_requests.contains(clan_id) {
                    return Ok((war, None, ()));
                }
                let clan: Clan = fetched
                    .one()?
                    .ok_or_else(|| DomainError::ClanNotFound(clan_id.clone()))?;
                require_role(&clan, actor, Role::Leader)?;
                let now = self.now();
                if !war.request_cancel(clan_id, now)? {
                    let mut tx = Transaction::new();
                    tx.update(&mut war);
                    return Ok((war, Some(tx), ()));
                }
                let closing = self.closing(&war).await?;
                let mut tx = self.close(&mut war, Close::Abandoned, closing);
                tx.emit(self.war_event(
                    &war,
                    DomainEvent::WarCancelled {
                        outcome: war.outcome.expect("set by cancel"),
                    },
                ));
                Ok((war, Some(tx), ()))
            })
            .await?;
        Ok(war)
    }

    /// Phase controller: moves the war to `target` once its deadline passed. A duplicate or
    /// late call changes nothing. ENDED runs the final tally.
    pub async fn advance(&self, war_id: &WarId, target: WarStatus) -> DomainResult<(War, Advance)> {
        self.advance_as(war_id, target, None).await
    }

    /// An operator moves the war to `target` now (`POST /admin/wars/{id}/advance`): the same
    /// forward-only conditional move as the timers' (one step, on the war's version), minus the
    /// deadline, audited on the war and published (`OperatorActed`). A timer firing later finds
    /// the move made and changes nothing; a target already reached is `AlreadyDone`. ENDED runs
    /// the final tally now (as [`Self::operator_end`]).
    pub async fn operator_advance(
        &self,
        war_id: &WarId,
        target: WarStatus,
        op: &OperatorCommand,
    ) -> DomainResult<(War, Advance)> {
        op.validate()?;
        if matches!(target, WarStatus::Declared | WarStatus::Cancelled) {
            return Err(DomainError::invalid(
                "to",
                "must be PREPARATION, ACTIVE, ENDING or ENDED (cancel has its own route)",
            ));
        }
        self.advance_as(war_id, target, Some(op)).await
    }

    /// An operator ends an ACTIVE or ENDING war now (`POST /admin/wars/{id}/end`): the final
    /// tally as at the close of ENDING (hold points up to now), audited and published.
    pub async fn operator_end(
        &self,
        war_id: &WarId,
        op: &OperatorCommand,
    ) -> DomainResult<(War, Advance)> {
        op.validate()?;
        self.finish_as(war_id, Some(op)).await
    }

    /// An operator cancels a war before its end (`POST /admin/wars/{id}/cancel`): CANCELLED
    /// with outcome `OPERATOR_CANCELLED`, territories, clans' war slots and the pair lock
    /// released, no peace shield or cooldown (as a mutual cancel); audited and published.
    /// Repeating it changes nothing.
    pub async fn operator_cancel(
        &self,
        war_id: &WarId,
        op: &OperatorCommand,
    ) -> DomainResult<(War, Advance)> {
        op.validate()?;
        self.retrying_with(war_id, |mut war| async move {
            let now = self.now();
            let from = war.status;
            let outcome = war.cancel_by_operator(now)?;
            if outcome == Advance::AlreadyDone {
                return Ok((war, None, outcome));
            }
            let closing = self.closing(&war).await?;
            let audited = self.audit(&mut war, op, OperatorActionKind::Cancel, from, now);
            let mut tx = self.close(&mut war, Close::Abandoned, closing);
            tx.emit(self.war_event(
                &war,
                DomainEvent::WarCancelled {
                    outcome: Outcome::OperatorCancelled,
                },
            ));
            tx.emit(audited);
            Ok((war, Some(tx), outcome))
        })
        .await
    }

    /// Records an operator's action on the war (before the war is written) and returns its
    /// event, to commit in the same transaction.
    fn audit(
        &self,
        war: &mut War,
        op: &OperatorCommand,
        action: OperatorActionKind,
        from: WarStatus,
        at: DateTime<Utc>,
    ) -> EventEnvelope {
        let entry = OperatorAction {
            action,
            by: op.by.clone(),
            principal: op.principal.clone(),
            reason: op.reason.clone(),
            at,
            from,
            to: war.status,
            rewards_run: None,
        };
        war.operator_actions.push(entry.clone());
        self.war_event(war, DomainEvent::OperatorActed(entry))
    }

    async fn advance_as(
        &self,
        war_id: &WarId,
        target: WarStatus,
        op: Option<&OperatorCommand>,
    ) -> DomainResult<(War, Advance)> {
        if target == WarStatus::Ended {
            return self.finish_as(war_id, op).await;
        }
        self.retrying_with(war_id, |mut war| async move {
            let now = self.now();
            let outcome = match op {
                None => war.advance(target, now)?,
                Some(_) => war.advance_now(target, now)?,
            };
            let Advance::Moved { from, to } = outcome else {
                return Ok((war, None, outcome));
            };
            let mut tx = Transaction::new();
            if let Some(op) = op {
                let audited = self.audit(&mut war, op, OperatorActionKind::Advance, from, now);
                tx.emit(audited);
            }
            tx.update(&mut war);
            tx.emit(self.war_event(
                &war,
                DomainEvent::WarPhaseChanged {
                    from,
                    to,
                    version: war.version,
                },
            ));
            Ok((war, Some(tx), outcome))
        })
        .await
    }

    /// Final tally at the close of ENDING: hold points, side totals, winner, ratings; the war
    /// ends, its territories are released and the reward saga starts. Idempotent.
    ///
    /// Once the deadline is checked, the war's counters are sealed: every score write still in
    /// flight either landed before (and is in the sealed values) or fails as a whole. The
    /// tally reads the sealed values, so side scores, clans, players and rewards agree.
    pub async fn finish(&self, war_id: &WarId) -> DomainResult<(War, Advance)> {
        self.finish_as(war_id, None).await
    }

    /// [`Self::finish`] for the timers (`op` none: at the deadline) or an operator (now).
    async fn finish_as(
        &self,
        war_id: &WarId,
        op: Option<&OperatorCommand>,
    ) -> DomainResult<(War, Advance)> {
        let war = self.deps.war(war_id).await?;
        if war.status.is_terminal() {
            // A retried tally (e.g. after a timeout that followed the commit): the reward saga
            // follows from the committed `WarEnded`, delivered at least once.
            return Ok((war, Advance::AlreadyDone));
        }
        let conclude = |war: &mut War, result: WarResult, now: DateTime<Utc>| match op {
            None => war.conclude(result, now),
            Some(_) => war.conclude_now(result, now),
        };
        conclude(
            &mut war.clone(),
            WarResult {
                attacker_score: 0,
                defender_score: 0,
                winner: crate::war::WinnerSide::Draw,
                outcome: crate::war::Outcome::Draw,
            },
            self.now(),
        )?;
        let (sealed, closing) = futures_util::future::try_join(
            async { Ok(self.deps.scores.seal(war_id, war.score_shards).await?) },
            self.closing(&war),
        )
        .await?;
        let sealed = &sealed;
        let (war, outcome) = self
            .retrying_from(war, closing, |mut war, closing| async move {
                if war.status.is_terminal() {
                    return Ok((war, None, Advance::AlreadyDone));
                }
                let rules = self.deps.rules_for(&war);
                let territories = &closing.territories;
                let now = self.now();
                // An operator's early end counts holding up to now.
                let held_until = match op {
                    None => war.phase_deadlines.ending_at,
                    Some(_) => now.min(war.phase_deadlines.ending_at),
                };
                let hold = scoring::hold_points(&war, territories, held_until, &rules);
                let mut totals = sealed.clone();
                for (clan, points) in &hold {
                    *totals.entry(clan.clone()).or_default() += points;
                }
                let (attacker_score, defender_score) = scoring::side_totals(&war, &totals);
                let (held_a, held_d) = scoring::territories_held(&war, territories);
                let (winner, how) =
                    scoring::decide_winner(attacker_score, defender_score, held_a, held_d);
                let from = war.status;
                let outcome = conclude(
                    &mut war,
                    WarResult {
                        attacker_score,
                        defender_score,
                        winner,
                        outcome: how,
                    },
                    now,
                )?;
                war.final_clan_scores = final_scores(&war, &totals);
                let audited =
                    op.map(|op| self.audit(&mut war, op, OperatorActionKind::End, from, now));
                let hold_entries = hold_ledger(&war, &hold, &rules);
                let mut tx = self.close(&mut war, Close::Ended(winner), closing);
                if !hold_entries.is_empty() {
                    tx.ledger(LedgerWrite {
                        war_id: war.war_id.clone(),
                        entries: hold_entries,
                    });
                }
                tx.emit(self.war_ended_event(&war));
                if let Some(audited) = audited {
                    tx.emit(audited);
                }
                Ok((war, Some(tx), outcome))
            })
            .await?;
        Ok((war, outcome))
    }

    /// What follows a war's committed events (so it happens at least once, off the caller's
    /// path): `WarDeclared` makes sure the declare-war saga runs, `WarEnded` starts the reward
    /// saga, a surrender or a cancellation stops the phase timers. Every call is idempotent, so
    /// a redelivered event changes nothing.
    pub async fn react(&self, event: &EventEnvelope) -> DomainResult<()> {
        let Some(war_id) = &event.war_id else {
            return Ok(());
        };
        let workflows = &self.deps.workflows;
        let done = match &event.event {
            DomainEvent::WarDeclared { .. } => return self.ensure_declaration_saga(war_id).await,
            DomainEvent::WarEnded { .. } => workflows.start_rewards(war_id).await,
            DomainEvent::WarSurrendered { .. } | DomainEvent::WarCancelled { .. } => {
                workflows.stop_lifecycle(war_id).await
            }
            DomainEvent::WarRescored(_)
            | DomainEvent::RewardsDistributed { .. }
            | DomainEvent::RewardDistributionFailed { .. } => {
                return self.follow_rewards(war_id).await
            }
            DomainEvent::OperatorActed(action)
                if action.action == OperatorActionKind::RedriveRewards =>
            {
                return self.follow_rewards(war_id).await
            }
            _ => return Ok(()),
        };
        done.map_err(DomainError::WorkflowUnavailable)
    }

    /// After a rescore, a re-drive or the end of a distribution run: the reward plan follows
    /// the war's last rescore ([`RewardService::follow`]; a run still going is corrected when it
    /// ends) and the run waiting for it starts (`<war_id>-<run>`, once whatever the
    /// redeliveries).
    async fn follow_rewards(&self, war_id: &WarId) -> DomainResult<()> {
        let run = super::rewards::RewardService::new(self.deps.clone())
            .follow(war_id)
            .await?;
        if let Some(run) = run {
            self.deps
                .workflows
                .start_rewards_run(war_id, &run)
                .await
                .map_err(DomainError::WorkflowUnavailable)?;
        }
        Ok(())
    }

    /// The safety net of a declaration. The declaring request starts the saga right after its
    /// commit, but a process that dies (or times out) in between leaves a war that nothing
    /// moves. Its committed `WarDeclared` reaches here at least once: a war still DECLARED gets
    /// its saga (started under the war id, so when the request did start it, this is the same
    /// execution and nothing changes). A war past DECLARED, or cancelled by the request's own
    /// compensation, needs nothing.
    async fn ensure_declaration_saga(&self, war_id: &WarId) -> DomainResult<()> {
        let war = match self.deps.war(war_id).await {
            Ok(war) => war,
            Err(DomainError::WarNotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        if war.status != WarStatus::Declared {
            return Ok(());
        }
        self.deps
            .workflows
            .start_declaration(&war)
            .await
            .map_err(DomainError::WorkflowUnavailable)
    }

    /// Load the war, let `step` decide, commit; on a version conflict start over.
    async fn retrying<F, Fut>(&self, war_id: &WarId, mut step: F) -> DomainResult<War>
    where
        F: FnMut(War) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>)>>,
    {
        let (war, ()) = self
            .retrying_with(war_id, |war| {
                let attempt = step(war);
                async move {
                    let (war, tx) = attempt.await?;
                    Ok((war, tx, ()))
                }
            })
            .await?;
        Ok(war)
    }

    /// [`Self::retrying`] for steps that also report a value.
    async fn retrying_with<F, Fut, T>(&self, war_id: &WarId, step: F) -> DomainResult<(War, T)>
    where
        F: FnMut(War) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>, T)>>,
    {
        self.attempts(None, || self.deps.war(war_id), step).await
    }

    /// [`Self::retrying_with`] where the step also needs `keys`: read with the war, in one
    /// round trip.
    async fn retrying_with_records<F, Fut, T>(
        &self,
        war_id: &WarId,
        keys: Vec<RecordKey>,
        mut step: F,
    ) -> DomainResult<(War, T)>
    where
        F: FnMut(War, Fetched) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>, T)>>,
    {
        let mut all = vec![RecordKey::War(war_id.clone())];
        all.extend(keys);
        let all = &all;
        let load = || async move {
            let mut fetched = self.deps.store.get_many(all).await?;
            let war: War = fetched
                .one()?
                .ok_or_else(|| DomainError::WarNotFound(war_id.clone()))?;
            Ok((war, fetched))
        };
        self.attempts(None, load, |(war, fetched)| step(war, fetched))
            .await
    }

    /// [`Self::retrying_with`] for a war on its way out, whose first attempt runs on the war
    /// and [`Closing`] the caller already read; a retry reads both again.
    async fn retrying_from<F, Fut, T>(
        &self,
        war: War,
        closing: Closing,
        mut step: F,
    ) -> DomainResult<(War, T)>
    where
        F: FnMut(War, Closing) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>, T)>>,
    {
        let war_id = &war.war_id.clone();
        let load = || async move {
            let war = self.deps.war(war_id).await?;
            let closing = self.closing(&war).await?;
            Ok((war, closing))
        };
        self.attempts(Some((war, closing)), load, |(war, closing)| {
            step(war, closing)
        })
        .await
    }

    /// The optimistic-locking loop: take the state (`first`, then `load` again after each
    /// lost race), let `step` decide, commit: [`crate::retry::Attempts`] bounds the rounds.
    async fn attempts<S, L, LFut, F, Fut, T>(
        &self,
        mut first: Option<S>,
        load: L,
        mut step: F,
    ) -> DomainResult<(War, T)>
    where
        L: Fn() -> LFut,
        LFut: std::future::Future<Output = DomainResult<S>>,
        F: FnMut(S) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>, T)>>,
    {
        let mut attempts = crate::retry::Attempts::new(&*self.deps.clock);
        loop {
            attempts.next().await?;
            let state = match first.take() {
                Some(state) => state,
                None => load().await?,
            };
            let (war, tx, value) = step(state).await?;
            let Some(tx) = tx else {
                return Ok((war, value));
            };
            match self.deps.commit(tx).await {
                Ok(()) => return Ok((war, value)),
                Err(DomainError::ConcurrentModification) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// What closing `war` writes besides the war, read in one round trip.
    async fn closing(&self, war: &War) -> DomainResult<Closing> {
        let clan_ids = war.all_clans();
        let mut territory_ids = war.territory_ids.clone();
        territory_ids.sort();
        territory_ids.dedup();
        let mut keys: Vec<RecordKey> = clan_ids.iter().cloned().map(RecordKey::Clan).collect();
        keys.push(RecordKey::pair(
            &war.attacker_clan_id,
            &war.defender_clan_id,
        ));
        keys.extend(territory_ids.iter().cloned().map(RecordKey::Territory));
        let mut fetched = self.deps.store.get_many(&keys).await?;
        let mut clans = BTreeMap::new();
        for (id, clan) in clan_ids.iter().zip(fetched.many::<Clan>(clan_ids.len())?) {
            let clan = clan.ok_or_else(|| DomainError::ClanNotFound(id.clone()))?;
            clans.insert(id.clone(), clan);
        }
        let pair = fetched.one()?;
        let mut territories = Vec::with_capacity(territory_ids.len());
        for (id, territory) in territory_ids
            .iter()
            .zip(fetched.many::<Territory>(territory_ids.len())?)
        {
            match territory {
                Some(territory) => territories.push(territory),
                None => {
                    tracing::warn!(war_id = %war.war_id, territory_id = %id, "war territory missing")
                }
            }
        }
        Ok(Closing {
            clans,
            pair,
            territories,
        })
    }

    /// The writes that take a war off the stage: the war itself, every clan's bookkeeping (and
    /// ratings when it ended), the pair lock and the released territories.
    fn close(&self, war: &mut War, how: Close, closing: Closing) -> Transaction {
        let now = self.now();
        let Closing {
            mut clans,
            pair,
            territories,
        } = closing;
        let mut tx = Transaction::new();
        if let Close::Ended(winner) = how {
            let ratings = clans.iter().map(|(id, c)| (id.clone(), c.rating)).collect();
            let changes =
                scoring::side_rating_changes(war, &ratings, winner, self.deps.rules_for(war).elo_k);
            // What a rescore needs to recompute this result exactly (held land is read before
            // the territories are released below).
            let (held_attacker, held_defender) = scoring::territories_held(war, &territories);
            war.tally = Some(Tally {
                held_attacker,
                held_defender,
                ratings: changes
                    .iter()
                    .map(|(clan_id, old, new)| RatingChange {
                        clan_id: clan_id.clone(),
                        old_rating: *old,
                        new_rating: *new,
                    })
                    .collect(),
            });
            for (clan_id, old, new) in changes {
                if let Some(clan) = clans.get_mut(&clan_id) {
                    clan.rating = new;
                }
                tx.emit(self.war_event(
                    war,
                    DomainEvent::ClanRatingChanged {
                        clan_id,
                        old_rating: old,
                        new_rating: new,
                    },
                ));
            }
        }
        for clan in clans.values_mut() {
            match how {
                Close::Ended(_) => clan.leave_war(&war.war_id, now),
                Close::Abandoned => clan.abandon_war(&war.war_id),
            }
            tx.update(clan);
        }
        if let Some(mut pair) = pair.filter(|p| p.active_war_id.as_ref() == Some(&war.war_id)) {
            pair.active_war_id = None;
            if matches!(how, Close::Ended(_)) {
                pair.last_ended_at = Some(now);
            }
            tx.update(&mut pair);
        }
        TerritoryService::new(self.deps.clone()).release_for_war(war, territories, &mut tx);
        tx.update(war);
        tx
    }

    fn war_event(&self, war: &War, event: DomainEvent) -> EventEnvelope {
        self.deps.event(Some(&war.war_id), war.all_clans(), event)
    }

    fn war_ended_event(&self, war: &War) -> EventEnvelope {
        self.war_event(
            war,
            DomainEvent::WarEnded {
                winner_side: war.winner_side.expect("ended wars have a winner"),
                outcome: war.outcome.expect("ended wars have an outcome"),
                attacker_score: war.sides.attacker.score,
                defender_score: war.sides.defender.score,
            },
        )
    }

    fn now(&self) -> DateTime<Utc> {
        self.deps.clock.now()
    }
}

/// Every clan of the war with its final points (0 for a clan that scored none).
fn final_scores(war: &War, totals: &BTreeMap<ClanId, i64>) -> BTreeMap<ClanId, i64> {
    war.all_clans()
        .into_iter()
        .map(|clan| {
            let points = totals.get(&clan).copied().unwrap_or(0);
            (clan, points)
        })
        .collect()
}

/// The ledger entries of a war's hold points: one per clan that held territory, dated at the
/// close of ACTIVE (`hold#<clan>` is unique in the war: the tally runs once).
fn hold_ledger(war: &War, hold: &BTreeMap<ClanId, i64>, rules: &Rules) -> Vec<LedgerEntry> {
    hold.iter()
        .filter(|(_, points)| **points != 0)
        .filter_map(|(clan, points)| {
            let side = war.side_of(clan)?;
            Some(LedgerEntry::new(
                war,
                rules,
                format!("hold#{clan}"),
                EffectKind::Hold,
                war.phase_deadlines.ending_at,
                None,
                clan.clone(),
                side,
                *points,
            ))
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests;
