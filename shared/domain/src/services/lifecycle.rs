//! A war's lifecycle (SPEC §2, §8): the phase moves of its timers (`advance`), the final tally
//! (`finish`), the operator controls (`operator_advance`, `operator_end`, `operator_cancel`,
//! audited on the war) and the compensation of a declaration whose saga could not start
//! (`compensate_declaration`). The loop over the war and the writes that close it are shared
//! with [`super::membership`] ([`super::closing`]).
//!
//! Takes only the ports it uses ([`WarPorts`]): the store, the score board (sealing a
//! war's counters for its tally), the clock, the id generator (event ids) and the deployment's
//! rules.

use super::closing::{final_scores, Close, WarWriter};
use super::ServicePorts;
use super::WarPorts;
use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::events::{DomainEvent, EventEnvelope};
use crate::ids::{ClanId, PlayerId, WarId};
use crate::ledger::{EffectKind, LedgerEntry, LedgerWrite};
use crate::ports::Transaction;
use crate::scoring;
use crate::war::{Advance, OperatorAction, OperatorActionKind, Outcome, War, WarResult, WarStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

#[derive(Debug, Clone)]
pub struct LifecycleService {
    ports: WarPorts,
    writer: WarWriter,
}

impl LifecycleService {
    pub fn new(ports: WarPorts) -> Self {
        let writer = WarWriter::new(&ports);
        Self { ports, writer }
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
        self.writer
            .retrying_with(war_id, |mut war| async move {
                let now = self.writer.now();
                let from = war.status;
                let outcome = war.cancel_by_operator(now)?;
                if outcome == Advance::AlreadyDone {
                    return Ok((war, None, outcome));
                }
                let closing = self.writer.closing(&war).await?;
                let audited = self.audit(&mut war, op, OperatorActionKind::Cancel, from, now);
                let mut tx = self.writer.close(&mut war, Close::Abandoned, closing);
                tx.emit(self.writer.war_event(
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
        self.writer
            .war_event(war, DomainEvent::OperatorActed(entry))
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
        self.writer
            .retrying_with(war_id, |mut war| async move {
                let now = self.writer.now();
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
                tx.emit(self.writer.war_event(
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
        let war = self.writer.war(war_id).await?;
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
            self.writer.now(),
        )?;
        let (sealed, closing) = futures_util::future::try_join(
            async { Ok(self.ports.scores.seal(war_id, war.score_shards).await?) },
            self.writer.closing(&war),
        )
        .await?;
        let sealed = &sealed;
        let (war, outcome) = self
            .writer
            .retrying_from(war, closing, |mut war, closing| async move {
                if war.status.is_terminal() {
                    return Ok((war, None, Advance::AlreadyDone));
                }
                let rules = self.writer.rules_for(&war);
                let territories = &closing.territories;
                let now = self.writer.now();
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
                let mut tx = self.writer.close(&mut war, Close::Ended(winner), closing);
                if !hold_entries.is_empty() {
                    tx.ledger(LedgerWrite {
                        war_id: war.war_id.clone(),
                        entries: hold_entries,
                    });
                }
                tx.emit(self.writer.war_ended_event(&war));
                if let Some(audited) = audited {
                    tx.emit(audited);
                }
                Ok((war, Some(tx), outcome))
            })
            .await?;
        Ok((war, outcome))
    }

    /// Saga compensation: cancels a war whose timers could not start and releases its
    /// territories, clans and pair lock — without peace shield or cooldown. Idempotent.
    pub async fn compensate_declaration(&self, war_id: &WarId) -> DomainResult<War> {
        self.writer
            .retrying(war_id, |mut war| async move {
                let now = self.writer.now();
                if war.cancel_failed_declaration(now) == Advance::AlreadyDone {
                    return Ok((war, None));
                }
                let closing = self.writer.closing(&war).await?;
                let mut tx = self.writer.close(&mut war, Close::Abandoned, closing);
                tx.emit(self.writer.war_event(
                    &war,
                    DomainEvent::WarCancelled {
                        outcome: war.outcome.expect("set by cancel"),
                    },
                ));
                Ok((war, Some(tx)))
            })
            .await
    }
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
mod tests;
