//! The war aggregate and its lifecycle state machine (SPEC §2): absolute phase deadlines,
//! forward-only versioned transitions, surrender and mutual cancel.

use crate::clan::Clan;
use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::ids::{BattleId, ClanId, TerritoryId, WarId};
pub use crate::status::{RewardStatus, Side, WarStatus};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WinnerSide {
    Attacker,
    Defender,
    Draw,
}

impl From<Side> for WinnerSide {
    fn from(side: Side) -> Self {
        match side {
            Side::Attacker => WinnerSide::Attacker,
            Side::Defender => WinnerSide::Defender,
        }
    }
}

/// How the war was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Higher side score.
    Score,
    /// Equal scores, more territories held at the end.
    Territories,
    /// Equal scores and territories.
    Draw,
    Surrender,
    MutualCancel,
    /// The declare-war saga failed after the war was written and compensated it.
    DeclarationFailed,
    /// An operator cancelled the war (`POST /admin/wars/{war_id}/cancel`, with a reason).
    OperatorCancelled,
}

/// What an operator did to a war (the admin routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorActionKind {
    /// Moved the war to its next phase before the deadline.
    Advance,
    /// Ran the final tally now (from ACTIVE or ENDING).
    End,
    /// Cancelled the war: territories released, no cooldown or peace shield.
    Cancel,
    /// Re-drove a failed reward distribution (`POST /admin/wars/{war_id}/rewards/redrive`).
    RedriveRewards,
}

/// One entry of a war's audit trail of operator actions: who (the operator's id and, on AWS,
/// the caller's IAM principal), when, why, and the move it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorAction {
    pub action: OperatorActionKind,
    pub by: crate::ids::PlayerId,
    pub principal: Option<String>,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub from: WarStatus,
    pub to: WarStatus,
    /// The reward run the action started (a re-drive's `a<attempt>`): the reward saga's
    /// execution is `<war_id>-<run>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewards_run: Option<String>,
}

/// One clan's war rating around the war's end: before the tally, and after it (as rescored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingChange {
    pub clan_id: ClanId,
    pub old_rating: i32,
    pub new_rating: i32,
}

/// What the final tally decided from besides the ledger, kept so that a rescore recomputes the
/// result exactly: the territories each side held at the end (the tie-break) and every clan's
/// rating before the war with the change the result made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tally {
    pub held_attacker: usize,
    pub held_defender: usize,
    pub ratings: Vec<RatingChange>,
}

/// The result a rescore starts from or arrives at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoredResult {
    pub attacker_score: i64,
    pub defender_score: i64,
    pub winner_side: Option<WinnerSide>,
    pub outcome: Option<Outcome>,
}

impl ScoredResult {
    pub fn of(war: &War) -> Self {
        Self {
            attacker_score: war.sides.attacker.score,
            defender_score: war.sides.defender.score,
            winner_side: war.winner_side,
            outcome: war.outcome,
        }
    }
}

/// One entry of a war's rescoring audit trail (`POST /admin/wars/{war_id}/void`): who, when,
/// why, what was voided and the result before and after. `rescore` numbers them from 1; the
/// reward correction it causes runs as `r<rescore>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rescore {
    pub rescore: u32,
    pub by: crate::ids::PlayerId,
    pub principal: Option<String>,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub void: crate::ledger::Void,
    /// Ledger entries this void took out (entries an earlier void had taken out not counted).
    pub voided_entries: usize,
    pub before: ScoredResult,
    pub after: ScoredResult,
}

/// Per-war phase lengths in seconds (`phase_durations` of the declaration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseDurations {
    pub declared_s: u64,
    pub preparation_s: u64,
    pub active_s: u64,
    pub ending_s: u64,
}

impl PhaseDurations {
    pub fn from_rules(rules: &Rules) -> Self {
        Self {
            declared_s: rules.declared_s,
            preparation_s: rules.preparation_s,
            active_s: rules.active_s,
            ending_s: rules.ending_s,
        }
    }

    /// Each phase must lie within the configured bounds.
    pub fn validate(&self, rules: &Rules) -> DomainResult<()> {
        let b = rules.phase_bounds;
        for (phase, seconds) in [
            ("declared_s", self.declared_s),
            ("preparation_s", self.preparation_s),
            ("active_s", self.active_s),
            ("ending_s", self.ending_s),
        ] {
            if seconds < b.min_s || seconds > b.max_s {
                return Err(DomainError::PhaseDurationOutOfRange {
                    phase,
                    seconds,
                    min: b.min_s,
                    max: b.max_s,
                });
            }
        }
        Ok(())
    }
}

/// Absolute deadlines: the moment the war enters each phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseDeadlines {
    pub preparation_at: DateTime<Utc>,
    pub active_at: DateTime<Utc>,
    pub ending_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

impl PhaseDeadlines {
    pub fn from_durations(declared_at: DateTime<Utc>, d: PhaseDurations) -> Self {
        let secs = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1_000_000));
        let preparation_at = declared_at + secs(d.declared_s);
        let active_at = preparation_at + secs(d.preparation_s);
        let ending_at = active_at + secs(d.active_s);
        let ended_at = ending_at + secs(d.ending_s);
        Self {
            preparation_at,
            active_at,
            ending_at,
            ended_at,
        }
    }

    /// When the war may enter `status` by timer.
    pub fn deadline_of(&self, status: WarStatus) -> Option<DateTime<Utc>> {
        match status {
            WarStatus::Preparation => Some(self.preparation_at),
            WarStatus::Active => Some(self.active_at),
            WarStatus::Ending => Some(self.ending_at),
            WarStatus::Ended => Some(self.ended_at),
            WarStatus::Declared | WarStatus::Cancelled => None,
        }
    }
}

/// Clans on one side (primary clan first) and the side's frozen score once the war ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideState {
    pub clan_ids: Vec<ClanId>,
    pub score: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sides {
    pub attacker: SideState,
    pub defender: SideState,
}

impl Sides {
    pub fn get(&self, side: Side) -> &SideState {
        match side {
            Side::Attacker => &self.attacker,
            Side::Defender => &self.defender,
        }
    }
    pub fn get_mut(&mut self, side: Side) -> &mut SideState {
        match side {
            Side::Attacker => &mut self.attacker,
            Side::Defender => &mut self.defender,
        }
    }
}

/// A territory that changed hands during ACTIVE (kept for hold points and reward pools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capture {
    pub territory_id: TerritoryId,
    pub from_clan_id: Option<ClanId>,
    pub to_clan_id: ClanId,
    pub side: Side,
    pub at: DateTime<Utc>,
}

/// A battle counted against `max_concurrent_battles` until resolved or expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenBattle {
    pub battle_id: BattleId,
    pub expires_at: DateTime<Utc>,
}

/// One recorded lifecycle move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: WarStatus,
    pub to: WarStatus,
    pub at: DateTime<Utc>,
    /// The war version the move produced.
    pub version: u64,
}

/// The war aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct War {
    pub war_id: WarId,
    pub status: WarStatus,
    pub attacker_clan_id: ClanId,
    pub defender_clan_id: ClanId,
    pub declared_at: DateTime<Utc>,
    pub phase_deadlines: PhaseDeadlines,
    pub sides: Sides,
    pub territory_ids: Vec<TerritoryId>,
    pub captures: Vec<Capture>,
    pub open_battles: Vec<OpenBattle>,
    pub cancel_requests: Vec<ClanId>,
    pub winner_side: Option<WinnerSide>,
    pub outcome: Option<Outcome>,
    pub surrendered_by: Option<ClanId>,
    /// When the war actually reached ENDED or CANCELLED.
    pub closed_at: Option<DateTime<Utc>>,
    pub rewards_status: Option<RewardStatus>,
    pub transitions: Vec<Transition>,
    /// Shards of this war's score counters, stamped at declaration so that changing the
    /// deployment's parameter never hides the counters of a running war.
    #[serde(default = "shards_before_stamping")]
    pub score_shards: u32,
    /// Every clan's final points (hold points included), recorded with the result when the war
    /// ends; the sealed counters plus the tally's own additions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub final_clan_scores: BTreeMap<ClanId, i64>,
    /// The rules this war is governed by, frozen at declaration with their version. Absent on
    /// wars declared before rulesets existed: those follow the deployment's current rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<Box<crate::config::Ruleset>>,
    /// The audit trail of operator actions, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_actions: Vec<OperatorAction>,
    /// What the result was decided from besides the ledger (set when the war ends with a
    /// result); a rescore needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tally: Option<Tally>,
    /// The rescoring audit trail, oldest first; its voids together say which ledger entries
    /// no longer count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rescores: Vec<Rescore>,
    /// The points, after every void, of each player with a voided ledger entry (the sealed
    /// counters keep what was scored; reads of players apply these).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rescored_players: BTreeMap<crate::ids::PlayerId, i64>,
    pub version: u64,
}

/// Wars written before the shard count was stamped used the deployment default of that time.
fn shards_before_stamping() -> u32 {
    8
}

/// Whether a move waits for its deadline (timers) or happens now (operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timing {
    AtDeadline,
    Now,
}

/// Result of asking the war to move to a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The war moved; persist it.
    Moved { from: WarStatus, to: WarStatus },
    /// The war is already at or past that phase (a duplicate or late timer): nothing to do.
    AlreadyDone,
}

impl War {
    /// A freshly declared war (version 0: the store assigns version 1 on insert).
    pub fn declare(
        war_id: WarId,
        attacker: ClanId,
        defender: ClanId,
        territory_ids: Vec<TerritoryId>,
        durations: PhaseDurations,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            war_id,
            status: WarStatus::Declared,
            sides: Sides {
                attacker: SideState {
                    clan_ids: vec![attacker.clone()],
                    score: 0,
                },
                defender: SideState {
                    clan_ids: vec![defender.clone()],
                    score: 0,
                },
            },
            attacker_clan_id: attacker,
            defender_clan_id: defender,
            declared_at: now,
            phase_deadlines: PhaseDeadlines::from_durations(now, durations),
            territory_ids,
            captures: Vec::new(),
            open_battles: Vec::new(),
            cancel_requests: Vec::new(),
            winner_side: None,
            outcome: None,
            surrendered_by: None,
            closed_at: None,
            rewards_status: None,
            transitions: Vec::new(),
            score_shards: crate::config::DEFAULT_SCORE_SHARDS,
            final_clan_scores: BTreeMap::new(),
            ruleset: None,
            operator_actions: Vec::new(),
            tally: None,
            rescores: Vec::new(),
            rescored_players: BTreeMap::new(),
            version: 0,
        }
    }

    /// Every void of the war's rescores, in order.
    pub fn voids(&self) -> Vec<crate::ledger::Void> {
        self.rescores.iter().map(|r| r.void.clone()).collect()
    }

    /// The number of the last rescore (0: never rescored).
    pub fn rescore_number(&self) -> u32 {
        self.rescores.last().map_or(0, |r| r.rescore)
    }

    /// How late the war entered `status` against that phase's deadline (negative: early, by an
    /// operator); `None` if it never entered it or the phase has no deadline. The
    /// `PhaseTransitionLateness` health metric.
    pub fn lateness_of(&self, status: WarStatus) -> Option<Duration> {
        let deadline = self.phase_deadlines.deadline_of(status)?;
        let moved = self.transitions.iter().find(|t| t.to == status)?;
        Some(moved.at - deadline)
    }

    /// How long the reward saga took: from the war's close (its `WarEnded` starts the saga) to
    /// `done`. The `RewardSagaDuration` health metric.
    pub fn reward_saga_duration(&self, done: DateTime<Utc>) -> Option<Duration> {
        self.closed_at.map(|closed| done - closed)
    }

    /// The side a clan fights on, if it takes part.
    pub fn side_of(&self, clan: &ClanId) -> Option<Side> {
        if self.sides.attacker.clan_ids.contains(clan) {
            Some(Side::Attacker)
        } else if self.sides.defender.clan_ids.contains(clan) {
            Some(Side::Defender)
        } else {
            None
        }
    }

    /// The primary clan (declarer or declared-upon) of a side.
    pub fn primary_clan(&self, side: Side) -> &ClanId {
        match side {
            Side::Attacker => &self.attacker_clan_id,
            Side::Defender => &self.defender_clan_id,
        }
    }

    /// Every clan in the war, attackers first.
    pub fn all_clans(&self) -> Vec<ClanId> {
        self.sides
            .attacker
            .clan_ids
            .iter()
            .chain(&self.sides.defender.clan_ids)
            .cloned()
            .collect()
    }

    /// Whether an event that happened at `at` falls in the scoring window (the ACTIVE phase):
    /// from when ACTIVE opened to when ENDING did.
    pub fn in_active_window(&self, at: DateTime<Utc>) -> bool {
        at >= self.opens_at(WarStatus::Active) && at < self.opens_at(WarStatus::Ending)
    }

    /// When phase `status` opens: its deadline, or the moment the war entered it if that was
    /// earlier (an operator's advance; a timer's move is never early). A timer's late move
    /// does not shorten the phase before it.
    fn opens_at(&self, status: WarStatus) -> DateTime<Utc> {
        let deadline = self
            .phase_deadlines
            .deadline_of(status)
            .expect("timed phases have deadlines");
        self.transitions
            .iter()
            .filter(|t| t.to == status)
            .map(|t| t.at)
            .fold(deadline, DateTime::min)
    }

    /// Whether score events are still taken at `now`: during ACTIVE, and during ENDING's grace.
    pub fn accepts_score_events(&self, now: DateTime<Utc>) -> bool {
        matches!(self.status, WarStatus::Active | WarStatus::Ending)
            && now < self.phase_deadlines.ended_at
    }

    fn require(&self, allowed: &[WarStatus], expected: &'static str) -> DomainResult<()> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(DomainError::InvalidWarState {
                war_id: self.war_id.clone(),
                actual: self.status,
                expected,
            })
        }
    }

    /// Only DECLARED and PREPARATION take allies and cancellations.
    pub fn require_open_for_allies(&self) -> DomainResult<()> {
        self.require(
            &[WarStatus::Declared, WarStatus::Preparation],
            "DECLARED or PREPARATION",
        )
    }

    pub fn require_active(&self) -> DomainResult<()> {
        self.require(&[WarStatus::Active], "ACTIVE")
    }

    /// A scoring action (capture, battle result) that happened at `at` still counts: during
    /// ACTIVE, and during ENDING when `at` lies inside ACTIVE (a late report, SPEC §2).
    pub fn require_scoring_at(&self, at: DateTime<Utc>) -> DomainResult<()> {
        let in_time = match self.status {
            WarStatus::Active => at <= self.phase_deadlines.ending_at,
            WarStatus::Ending => self.in_active_window(at),
            _ => false,
        };
        if in_time {
            return Ok(());
        }
        Err(DomainError::InvalidWarState {
            war_id: self.war_id.clone(),
            actual: self.status,
            expected: "ACTIVE (or ENDING, for what happened during ACTIVE)",
        })
    }

    fn record(&mut self, to: WarStatus, at: DateTime<Utc>) {
        let from = self.status;
        self.status = to;
        // The store bumps the version on write; the transition names the version it produces.
        self.transitions.push(Transition {
            from,
            to,
            at,
            version: self.version + 1,
        });
        if to.is_terminal() {
            self.closed_at = Some(at);
        }
    }

    /// Timer-driven move to `target` (PREPARATION, ACTIVE or ENDING). Forward only, one step at
    /// a time, never before the phase's deadline. ENDED is reached through [`War::conclude`].
    pub fn advance(&mut self, target: WarStatus, now: DateTime<Utc>) -> DomainResult<Advance> {
        self.step(target, now, Timing::AtDeadline)
    }

    /// An operator's move to `target` now: the same forward-only, one-step move as the timer's
    /// ([`War::advance`]), without waiting for the deadline. The later phases keep their
    /// deadlines; a timer firing afterwards finds the move done and changes nothing. The
    /// scoring window follows the move: ACTIVE advanced early takes events from now, ENDING
    /// advanced early takes none that happen after it ([`War::in_active_window`]).
    pub fn advance_now(&mut self, target: WarStatus, now: DateTime<Utc>) -> DomainResult<Advance> {
        self.step(target, now, Timing::Now)
    }

    fn step(
        &mut self,
        target: WarStatus,
        now: DateTime<Utc>,
        timing: Timing,
    ) -> DomainResult<Advance> {
        if self.status >= target || self.status.is_terminal() {
            return Ok(Advance::AlreadyDone);
        }
        if self.status.next_timed() != Some(target) || target == WarStatus::Ended {
            return Err(DomainError::InvalidWarState {
                war_id: self.war_id.clone(),
                actual: self.status,
                expected: "the phase just before the target",
            });
        }
        let deadline = self
            .phase_deadlines
            .deadline_of(target)
            .expect("timed phases have deadlines");
        if timing == Timing::AtDeadline && now < deadline {
            return Err(DomainError::PhaseDeadlineNotReached {
                war_id: self.war_id.clone(),
                target,
                deadline,
            });
        }
        let from = self.status;
        self.record(target, now);
        Ok(Advance::Moved { from, to: target })
    }

    /// Final tally at the close of ENDING: records the result and moves to ENDED.
    pub fn conclude(&mut self, result: WarResult, now: DateTime<Utc>) -> DomainResult<Advance> {
        self.finish_with(result, now, Timing::AtDeadline)
    }

    /// An operator's final tally now, from ACTIVE or ENDING (the rest as [`War::conclude`]).
    pub fn conclude_now(&mut self, result: WarResult, now: DateTime<Utc>) -> DomainResult<Advance> {
        self.finish_with(result, now, Timing::Now)
    }

    fn finish_with(
        &mut self,
        result: WarResult,
        now: DateTime<Utc>,
        timing: Timing,
    ) -> DomainResult<Advance> {
        if self.status.is_terminal() {
            return Ok(Advance::AlreadyDone);
        }
        match timing {
            Timing::AtDeadline => self.require(&[WarStatus::Ending], "ENDING")?,
            Timing::Now => {
                self.require(&[WarStatus::Active, WarStatus::Ending], "ACTIVE or ENDING")?
            }
        }
        if timing == Timing::AtDeadline && now < self.phase_deadlines.ended_at {
            return Err(DomainError::PhaseDeadlineNotReached {
                war_id: self.war_id.clone(),
                target: WarStatus::Ended,
                deadline: self.phase_deadlines.ended_at,
            });
        }
        self.sides.attacker.score = result.attacker_score;
        self.sides.defender.score = result.defender_score;
        self.winner_side = Some(result.winner);
        self.outcome = Some(result.outcome);
        let from = self.status;
        self.record(WarStatus::Ended, now);
        Ok(Advance::Moved {
            from,
            to: WarStatus::Ended,
        })
    }

    /// An operator's cancel, from any phase before the end: CANCELLED with outcome
    /// `OPERATOR_CANCELLED`. A repeat on a war it already cancelled is `AlreadyDone`.
    pub fn cancel_by_operator(&mut self, now: DateTime<Utc>) -> DomainResult<Advance> {
        if self.outcome == Some(Outcome::OperatorCancelled) {
            return Ok(Advance::AlreadyDone);
        }
        self.require(
            &[
                WarStatus::Declared,
                WarStatus::Preparation,
                WarStatus::Active,
                WarStatus::Ending,
            ],
            "not yet ENDED or CANCELLED",
        )?;
        let from = self.status;
        self.outcome = Some(Outcome::OperatorCancelled);
        self.winner_side = None;
        self.record(WarStatus::Cancelled, now);
        Ok(Advance::Moved {
            from,
            to: WarStatus::Cancelled,
        })
    }

    /// The surrendering clan's side loses at once; scores freeze at `frozen` (SPEC §6).
    pub fn surrender(
        &mut self,
        clan: &ClanId,
        frozen: (i64, i64),
        now: DateTime<Utc>,
    ) -> DomainResult<Side> {
        self.require(
            &[
                WarStatus::Declared,
                WarStatus::Preparation,
                WarStatus::Active,
                WarStatus::Ending,
            ],
            "not yet ENDED or CANCELLED",
        )?;
        let side = self.primary_side_of(clan)?;
        self.sides.attacker.score = frozen.0;
        self.sides.defender.score = frozen.1;
        self.winner_side = Some(side.opponent().into());
        self.outcome = Some(Outcome::Surrender);
        self.surrendered_by = Some(clan.clone());
        self.record(WarStatus::Ended, now);
        Ok(side)
    }

    /// Records one primary clan's wish to cancel; returns true when both agreed and the war
    /// is now CANCELLED.
    pub fn request_cancel(&mut self, clan: &ClanId, now: DateTime<Utc>) -> DomainResult<bool> {
        self.require_open_for_allies()?;
        self.primary_side_of(clan)?;
        if !self.cancel_requests.contains(clan) {
            self.cancel_requests.push(clan.clone());
        }
        let both = self.cancel_requests.contains(&self.attacker_clan_id)
            && self.cancel_requests.contains(&self.defender_clan_id);
        if both {
            self.outcome = Some(Outcome::MutualCancel);
            self.record(WarStatus::Cancelled, now);
        }
        Ok(both)
    }

    /// Compensation of the declare-war saga: the war never really started.
    pub fn cancel_failed_declaration(&mut self, now: DateTime<Utc>) -> Advance {
        if self.status.is_terminal() {
            return Advance::AlreadyDone;
        }
        let from = self.status;
        self.outcome = Some(Outcome::DeclarationFailed);
        self.record(WarStatus::Cancelled, now);
        Advance::Moved {
            from,
            to: WarStatus::Cancelled,
        }
    }

    fn primary_side_of(&self, clan: &ClanId) -> DomainResult<Side> {
        if clan == &self.attacker_clan_id {
            Ok(Side::Attacker)
        } else if clan == &self.defender_clan_id {
            Ok(Side::Defender)
        } else {
            Err(DomainError::NotAParticipant {
                clan_id: clan.clone(),
                war_id: self.war_id.clone(),
            })
        }
    }

    /// An allied clan joins `side` (SPEC §8): only while DECLARED/PREPARATION, only an ally of
    /// that side's primary clan, never on both sides, within the ally and concurrent-war limits.
    pub fn add_ally(
        &mut self,
        clan: &Clan,
        side: Side,
        primary: &Clan,
        rules: &Rules,
    ) -> DomainResult<()> {
        self.require_open_for_allies()?;
        if self.side_of(&clan.clan_id).is_some() {
            return Err(DomainError::AlreadyInWar {
                clan_id: clan.clan_id.clone(),
                war_id: self.war_id.clone(),
            });
        }
        if clan.alliance_id.is_none() || clan.alliance_id != primary.alliance_id {
            return Err(DomainError::NotAllied {
                clan_id: clan.clan_id.clone(),
                war_id: self.war_id.clone(),
                side: side.as_str(),
            });
        }
        let allies = self.sides.get(side).clan_ids.len() - 1;
        if allies >= rules.max_allies_per_side {
            return Err(DomainError::AllyLimitReached {
                side: side.as_str(),
                max: rules.max_allies_per_side,
            });
        }
        if clan.active_war_ids.len() >= rules.max_concurrent_wars {
            return Err(DomainError::ConcurrentWarLimit {
                clan_id: clan.clan_id.clone(),
                max: rules.max_concurrent_wars,
            });
        }
        self.sides.get_mut(side).clan_ids.push(clan.clan_id.clone());
        Ok(())
    }

    /// Open battles that have not expired at `now`.
    pub fn live_battles(&self, now: DateTime<Utc>) -> usize {
        self.open_battles
            .iter()
            .filter(|b| b.expires_at > now)
            .count()
    }

    /// Number of territories each side took from the other during the war.
    pub fn captured_by(&self, side: Side) -> usize {
        self.captures.iter().filter(|c| c.side == side).count()
    }
}

/// The outcome of the final tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarResult {
    pub attacker_score: i64,
    pub defender_score: i64,
    pub winner: WinnerSide,
    pub outcome: Outcome,
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn seconds(n: u64) -> PhaseDurations {
        PhaseDurations {
            declared_s: n,
            preparation_s: n,
            active_s: n,
            ending_s: n,
        }
    }

    pub fn war(now: DateTime<Utc>) -> War {
        War::declare(
            WarId::new("war-1").unwrap(),
            ClanId::new("att").unwrap(),
            ClanId::new("def").unwrap(),
            vec![TerritoryId::new("t1").unwrap()],
            seconds(60),
            now,
        )
    }
}

#[cfg(test)]
mod tests;
