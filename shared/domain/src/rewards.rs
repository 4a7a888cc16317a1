//! Rewards (SPEC §7): the deterministic reward plan the reward saga executes.
//!
//! The plan is pure arithmetic over the ended war and its players' points. It is computed once,
//! persisted, and then only its grants' statuses change, so re-running the saga never re-plans.

use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::ids::{ClanId, PlayerId, WarId};
use crate::scoring::PlayerScore;
use crate::war::{RewardStatus, Side, War, WinnerSide};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where one grant stands with the economy service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrantStatus {
    Pending,
    Granted,
    Revoked,
}

/// One payment to one player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub player_id: PlayerId,
    pub clan_id: ClanId,
    pub side: Side,
    pub kind: String,
    pub amount: u64,
    pub status: GrantStatus,
    /// The rescore whose correction created this grant (0: the original plan).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rescore: u32,
    /// The distribution attempt this grant is paid under (1: the first; a re-drive pays a
    /// grant its compensation revoked under the re-drive's attempt).
    #[serde(default = "first_attempt", skip_serializing_if = "is_first_attempt")]
    pub attempt: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn first_attempt() -> u32 {
    1
}

fn is_first_attempt(n: &u32) -> bool {
    *n <= 1
}

impl Grant {
    /// The key the economy service deduplicates this grant (and its revocation) by:
    /// `war_id#player_id#kind`, then `#r<rescore>` for a rescore's correction and `#a<attempt>`
    /// for a re-drive's payment, so a correction or a re-drive can never pay a key twice.
    pub fn idempotency_key(&self, war_id: &WarId) -> String {
        let mut key = idempotency_key(war_id, &self.player_id, &self.kind);
        if self.rescore > 0 {
            key.push_str(&format!("#r{}", self.rescore));
        }
        if self.attempt > 1 {
            key.push_str(&format!("#a{}", self.attempt));
        }
        key
    }
}

/// The plan of a war's rewards and its distribution state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardPlan {
    pub war_id: WarId,
    pub status: RewardStatus,
    pub attacker_pool: u64,
    pub defender_pool: u64,
    /// One grant per player: what the plan pays that player now.
    pub grants: Vec<Grant>,
    /// Grants a rescore's correction replaced; the run that carries the correction revokes
    /// each (before it grants), so they must all end REVOKED.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<Grant>,
    /// The war's rescore the amounts follow (0: as the war ended).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rescore: u32,
    /// Distribution attempts (1: the first run; each re-drive adds one).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The run that distributes the plan now, when it is not the war's first: `r<rescore>`
    /// (a correction) or `a<attempt>` (a re-drive). The reward saga's execution is
    /// `<war_id>-<run>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    pub version: u64,
}

impl RewardPlan {
    pub fn pool(&self, side: Side) -> u64 {
        match side {
            Side::Attacker => self.attacker_pool,
            Side::Defender => self.defender_pool,
        }
    }

    /// Sum of the amounts granted to one side's players.
    pub fn side_total(&self, side: Side) -> u64 {
        self.grants
            .iter()
            .filter(|g| g.side == side)
            .map(|g| g.amount)
            .sum()
    }

    /// Sum of every grant's amount, whatever its status.
    pub fn total_amount(&self) -> u64 {
        self.grants.iter().map(|g| g.amount).sum()
    }

    pub fn count(&self, status: GrantStatus) -> usize {
        self.grants.iter().filter(|g| g.status == status).count()
    }

    /// DISTRIBUTED and REWARDS_FAILED are final: the saga has nothing left to do.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status,
            RewardStatus::Distributed | RewardStatus::RewardsFailed
        )
    }

    fn require(&self, allowed: &[RewardStatus], expected: &'static str) -> DomainResult<()> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(self.invalid_state(expected))
        }
    }

    fn invalid_state(&self, expected: &'static str) -> DomainError {
        DomainError::InvalidRewardState {
            war_id: self.war_id.clone(),
            actual: self.status,
            expected,
        }
    }

    /// PENDING → DISTRIBUTING. Returns whether the plan changed: a replayed step (or one after
    /// completion) changes nothing, so the saga may repeat it freely.
    pub fn begin(&mut self) -> DomainResult<bool> {
        match self.status {
            RewardStatus::Pending => {
                self.status = RewardStatus::Distributing;
                Ok(true)
            }
            RewardStatus::Distributing | RewardStatus::Distributed => Ok(false),
            RewardStatus::RewardsFailed => Err(self.invalid_state("PENDING or DISTRIBUTING")),
        }
    }

    /// Marks these players' PENDING grants GRANTED; returns how many changed. Grants already
    /// granted (a replay) or revoked (compensated) keep their status.
    pub fn mark_granted(&mut self, players: &[PlayerId]) -> DomainResult<usize> {
        self.mark(
            players,
            GrantStatus::Granted,
            &[RewardStatus::Distributing],
            "DISTRIBUTING",
        )
    }

    /// Marks these players' grants REVOKED (compensation); returns how many changed. A PENDING
    /// grant may be revoked too: it was in doubt (its economy call failed) and must never pay.
    pub fn mark_revoked(&mut self, players: &[PlayerId]) -> DomainResult<usize> {
        self.mark(
            players,
            GrantStatus::Revoked,
            &[RewardStatus::Distributing, RewardStatus::RewardsFailed],
            "DISTRIBUTING or REWARDS_FAILED",
        )
    }

    fn mark(
        &mut self,
        players: &[PlayerId],
        to: GrantStatus,
        allowed: &[RewardStatus],
        expected: &'static str,
    ) -> DomainResult<usize> {
        if let Some(unknown) = players
            .iter()
            .find(|p| !self.grants.iter().any(|g| &g.player_id == *p))
        {
            return Err(DomainError::invalid(
                "player_ids",
                format!(
                    "player {unknown} has no grant in the plan of war {}",
                    self.war_id
                ),
            ));
        }
        let changes = |g: &Grant| {
            players.contains(&g.player_id)
                && match to {
                    GrantStatus::Granted => g.status == GrantStatus::Pending,
                    _ => g.status != to,
                }
        };
        let changed = self.grants.iter().filter(|g| changes(g)).count();
        if changed == 0 {
            return Ok(0);
        }
        self.require(allowed, expected)?;
        for grant in self.grants.iter_mut().filter(|g| changes(g)) {
            grant.status = to;
        }
        Ok(changed)
    }

    /// Marks these superseded grants (by idempotency key) REVOKED; returns how many changed.
    pub fn mark_superseded_revoked(&mut self, keys: &[String]) -> DomainResult<usize> {
        let war_id = self.war_id.clone();
        if let Some(unknown) = keys.iter().find(|k| {
            !self
                .superseded
                .iter()
                .any(|g| &g.idempotency_key(&war_id) == *k)
        }) {
            return Err(DomainError::invalid(
                "keys",
                format!("{unknown} is no superseded grant of war {war_id}"),
            ));
        }
        let changes = |g: &Grant| {
            g.status != GrantStatus::Revoked && keys.contains(&g.idempotency_key(&war_id))
        };
        let changed = self.superseded.iter().filter(|g| changes(g)).count();
        if changed == 0 {
            return Ok(0);
        }
        self.require(&[RewardStatus::Distributing], "DISTRIBUTING")?;
        for grant in self.superseded.iter_mut().filter(|g| changes(g)) {
            grant.status = GrantStatus::Revoked;
        }
        Ok(changed)
    }

    /// A previous run stopped during its compensation (some grant is REVOKED and the plan is
    /// not finished): the saga resumes the compensation instead of granting.
    pub fn resumes_compensation(&self) -> bool {
        !self.is_finished() && self.count(GrantStatus::Revoked) > 0
    }

    /// The name of the run to start for this plan, if a correction or a re-drive is waiting
    /// for its saga: `Some("r1")` while PENDING with a run.
    pub fn waiting_run(&self) -> Option<&str> {
        match self.status {
            RewardStatus::Pending => self.run.as_deref(),
            _ => None,
        }
    }

    /// Makes the plan follow `target` (the plan of the war as rescore `rescore` left it), for a
    /// finished plan (DISTRIBUTED or REWARDS_FAILED). Only players whose amount changed are
    /// touched: the grant they had (unless already revoked) moves to `superseded`, and the new
    /// amount, if any, becomes a PENDING grant keyed by the rescore (`...#r<rescore>`). A
    /// DISTRIBUTED plan with changes goes back to PENDING with the run `r<rescore>` (the saga
    /// revokes the superseded grants, then pays the new ones); a failed plan stays failed (a
    /// re-drive pays it). Returns whether any grant changed.
    pub fn correct(&mut self, target: &RewardPlan, rescore: u32) -> DomainResult<bool> {
        self.require(
            &[RewardStatus::Distributed, RewardStatus::RewardsFailed],
            "DISTRIBUTED or REWARDS_FAILED",
        )?;
        if rescore <= self.rescore {
            return Ok(false);
        }
        self.rescore = rescore;
        self.attacker_pool = target.attacker_pool;
        self.defender_pool = target.defender_pool;
        let amount_of = |grants: &[Grant], player: &PlayerId| {
            grants
                .iter()
                .find(|g| &g.player_id == player)
                .map_or(0, |g| g.amount)
        };
        let mut changed = false;
        let mut kept = Vec::with_capacity(target.grants.len());
        for grant in std::mem::take(&mut self.grants) {
            if amount_of(&target.grants, &grant.player_id) == grant.amount {
                kept.push(grant);
                continue;
            }
            changed = true;
            if grant.status != GrantStatus::Revoked {
                self.superseded.push(grant);
            }
        }
        for wanted in &target.grants {
            if kept.iter().any(|g| g.player_id == wanted.player_id) {
                continue;
            }
            changed = true;
            kept.push(Grant {
                status: GrantStatus::Pending,
                rescore,
                attempt: 1,
                ..wanted.clone()
            });
        }
        kept.sort_by(|a, b| (a.side, &a.player_id).cmp(&(b.side, &b.player_id)));
        self.grants = kept;
        if changed && self.status == RewardStatus::Distributed {
            self.status = RewardStatus::Pending;
            self.run = Some(format!("r{rescore}"));
        }
        Ok(changed)
    }

    /// Re-drives a failed distribution: the next attempt pays what is not paid. Grants still
    /// GRANTED (a compensation that could not take them back) keep their keys and are not
    /// paid again; PENDING ones keep their keys (the economy deduplicates one that paid
    /// before its answer was lost); REVOKED ones — their keys are spent: a revoked key never
    /// pays again — become PENDING under the new attempt's keys (`...#a<attempt>`). The plan
    /// goes back to PENDING with the run `a<attempt>`; returns that run.
    pub fn redrive(&mut self) -> DomainResult<String> {
        self.require(&[RewardStatus::RewardsFailed], "REWARDS_FAILED")?;
        self.attempt += 1;
        for grant in self
            .grants
            .iter_mut()
            .filter(|g| g.status == GrantStatus::Revoked)
        {
            grant.status = GrantStatus::Pending;
            grant.attempt = self.attempt;
        }
        self.status = RewardStatus::Pending;
        let run = format!("a{}", self.attempt);
        self.run = Some(run.clone());
        Ok(run)
    }

    /// DISTRIBUTING with every grant GRANTED (and every superseded grant REVOKED) →
    /// DISTRIBUTED. Returns whether the plan changed.
    pub fn complete(&mut self) -> DomainResult<bool> {
        if self.status == RewardStatus::Distributed {
            return Ok(false);
        }
        let all_granted = self.grants.iter().all(|g| g.status == GrantStatus::Granted)
            && self
                .superseded
                .iter()
                .all(|g| g.status == GrantStatus::Revoked);
        if self.status != RewardStatus::Distributing || !all_granted {
            return Err(self.invalid_state(
                "DISTRIBUTING with every grant GRANTED and every superseded grant REVOKED",
            ));
        }
        self.status = RewardStatus::Distributed;
        Ok(true)
    }

    /// → REWARDS_FAILED (after compensation). A distribution that completed cannot fail.
    pub fn fail(&mut self) -> DomainResult<bool> {
        match self.status {
            RewardStatus::RewardsFailed => Ok(false),
            RewardStatus::Distributed => Err(self.invalid_state("PENDING or DISTRIBUTING")),
            RewardStatus::Pending | RewardStatus::Distributing => {
                self.status = RewardStatus::RewardsFailed;
                Ok(true)
            }
        }
    }
}

/// `war_id#player_id#kind`: ids never contain `#` (see `ids::validate_id`), so keys never collide.
pub fn idempotency_key(war_id: &WarId, player_id: &PlayerId, kind: &str) -> String {
    format!("{war_id}#{player_id}#{kind}")
}

/// The reward pool of each side, `(attacker, defender)`; `None` when the war has no winner
/// (cancelled or not yet ended): such a war pays nothing.
pub fn pools(war: &War, rules: &Rules) -> Option<(u64, u64)> {
    let base = u128::from(rules.base_reward);
    let winner_pool = |side: Side| {
        // base × (1 + 0.1 × captured) in integers: base × (10 + captured) / 10, rounded down.
        let captured = war.captured_by(side) as u128;
        saturate(base * (10 + captured) / 10)
    };
    let loser_pool = saturate(base / 5);
    Some(match war.winner_side? {
        WinnerSide::Attacker => (winner_pool(Side::Attacker), loser_pool),
        WinnerSide::Defender => (loser_pool, winner_pool(Side::Defender)),
        WinnerSide::Draw => (saturate(base / 2), saturate(base / 2)),
    })
}

fn saturate(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A player who takes part in the split, after merging and filtering.
struct Participant {
    player_id: PlayerId,
    clan_id: ClanId,
    side: Side,
    points: u64,
}

/// Computes the reward plan of an ended war (status PENDING, every grant PENDING).
///
/// Each side's pool is split in proportion to points among that side's players with at least
/// `min_participation_points` (and more than zero) points; each share is rounded down and
/// capped at `max_player_reward`. Zero-amount shares are left out: they would only cost an
/// economy call. Grants are sorted by (side, player id), so the plan depends only on the set of
/// inputs, never on their order.
///
/// **The grants of a side never exceed its pool.** With eligible points `p_i` summing to
/// `T > 0`, every share is `min(cap, ⌊pool·p_i / T⌋) ≤ pool·p_i / T`, hence
/// `Σ share_i ≤ pool·Σp_i / T = pool`. The products are computed in `u128`, so nothing overflows
/// (`u64 × u64` fits, and at most `usize` players with `i64` points sum below `2^127`).
pub fn plan(war: &War, players: &[PlayerScore], rules: &Rules) -> RewardPlan {
    let mut plan = RewardPlan {
        war_id: war.war_id.clone(),
        status: RewardStatus::Pending,
        attacker_pool: 0,
        defender_pool: 0,
        grants: Vec::new(),
        superseded: Vec::new(),
        rescore: 0,
        attempt: 1,
        run: None,
        version: 0,
    };
    let Some((attacker_pool, defender_pool)) = pools(war, rules) else {
        return plan;
    };
    plan.attacker_pool = attacker_pool;
    plan.defender_pool = defender_pool;
    let participants = participants(war, players, rules);
    for side in [Side::Attacker, Side::Defender] {
        let on_side: Vec<&Participant> = participants.iter().filter(|p| p.side == side).collect();
        plan.grants.extend(split(plan.pool(side), &on_side, rules));
    }
    plan
}

/// Eligible players, sorted by (side, player id). The score board keys players by id; should the
/// input still repeat a player, its points are summed under its smallest clan id, so every player
/// gets at most one grant (one idempotency key) and the result does not depend on input order.
fn participants(war: &War, players: &[PlayerScore], rules: &Rules) -> Vec<Participant> {
    let mut merged: BTreeMap<&PlayerId, (&ClanId, i128)> = BTreeMap::new();
    for p in players {
        let entry = merged.entry(&p.player_id).or_insert((&p.clan_id, 0));
        entry.0 = entry.0.min(&p.clan_id);
        entry.1 += i128::from(p.points);
    }
    let threshold = i128::from(rules.min_participation_points).max(1);
    let mut eligible: Vec<Participant> = merged
        .into_iter()
        .filter(|(_, (_, points))| *points >= threshold)
        .filter_map(|(player_id, (clan_id, points))| {
            Some(Participant {
                side: war.side_of(clan_id)?,
                player_id: player_id.clone(),
                clan_id: clan_id.clone(),
                points: u64::try_from(points).unwrap_or(u64::MAX),
            })
        })
        .collect();
    eligible.sort_by(|a, b| (a.side, &a.player_id).cmp(&(b.side, &b.player_id)));
    eligible
}

/// Splits one side's pool (see [`plan`] for why the sum never exceeds it).
fn split(pool: u64, players: &[&Participant], rules: &Rules) -> Vec<Grant> {
    let total: u128 = players.iter().map(|p| u128::from(p.points)).sum();
    if total == 0 {
        return Vec::new();
    }
    players
        .iter()
        .map(|p| {
            let share = saturate(u128::from(pool) * u128::from(p.points) / total);
            (p, share.min(rules.max_player_reward))
        })
        .filter(|(_, amount)| *amount > 0)
        .map(|(p, amount)| Grant {
            player_id: p.player_id.clone(),
            clan_id: p.clan_id.clone(),
            side: p.side,
            kind: rules.reward_kind.clone(),
            amount,
            status: GrantStatus::Pending,
            rescore: 0,
            attempt: 1,
        })
        .collect()
}

/// The grants in saga order, `size` per chunk (a zero size is treated as 1).
pub fn chunks(plan: &RewardPlan, size: usize) -> std::slice::Chunks<'_, Grant> {
    plan.grants.chunks(size.max(1))
}

/// The superseded grants in order, `size` per chunk.
pub fn superseded_chunks(plan: &RewardPlan, size: usize) -> std::slice::Chunks<'_, Grant> {
    plan.superseded.chunks(size.max(1))
}

/// The chunks a compensation revokes, last first: every chunk holding a GRANTED grant, and
/// the first chunk still holding a PENDING one — the chunk in doubt, whose economy call failed
/// after possibly paying part of it. Chunks run one at a time in order, so nothing after the
/// chunk in doubt was ever sent.
pub fn revocation_order(plan: &RewardPlan, size: usize) -> Vec<usize> {
    let chunks: Vec<&[Grant]> = chunks(plan, size).collect();
    let in_doubt = chunks
        .iter()
        .position(|c| c.iter().any(|g| g.status == GrantStatus::Pending));
    let mut order: Vec<usize> = chunks
        .iter()
        .enumerate()
        .filter(|(i, c)| Some(*i) == in_doubt || c.iter().any(|g| g.status == GrantStatus::Granted))
        .map(|(i, _)| i)
        .collect();
    order.reverse();
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TerritoryId;
    use crate::war::fixtures::war;
    use crate::war::{Capture, WarStatus};
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn ended(winner: Option<WinnerSide>) -> War {
        let mut w = war(t0());
        w.sides
            .attacker
            .clan_ids
            .push(ClanId::new("att-ally").unwrap());
        w.status = if winner.is_some() {
            WarStatus::Ended
        } else {
            WarStatus::Cancelled
        };
        w.winner_side = winner;
        w
    }

    fn capture(w: &mut War, side: Side, n: usize) {
        for i in 0..n {
            w.captures.push(Capture {
                territory_id: TerritoryId::new(format!("t{i}-{}", side.as_str())).unwrap(),
                from_clan_id: None,
                to_clan_id: w.primary_clan(side).clone(),
                side,
                at: t0(),
            });
        }
    }

    fn score(player: &str, clan: &str, points: i64) -> PlayerScore {
        PlayerScore {
            player_id: PlayerId::new(player).unwrap(),
            clan_id: ClanId::new(clan).unwrap(),
            points,
        }
    }

    fn rules() -> Rules {
        Rules {
            base_reward: 10_000,
            max_player_reward: 1_000_000,
            ..Rules::default()
        }
    }

    fn amounts(plan: &RewardPlan) -> Vec<(&str, u64)> {
        plan.grants
            .iter()
            .map(|g| (g.player_id.as_str(), g.amount))
            .collect()
    }

    #[test]
    fn the_winner_pool_grows_ten_percent_per_territory_it_captured() {
        let mut w = ended(Some(WinnerSide::Attacker));
        capture(&mut w, Side::Attacker, 3);
        capture(&mut w, Side::Defender, 2);
        assert_eq!(pools(&w, &rules()), Some((13_000, 2_000)));
    }

    #[test]
    fn the_loser_pool_is_a_fifth_of_the_base_reward() {
        let mut w = ended(Some(WinnerSide::Defender));
        capture(&mut w, Side::Attacker, 4);
        assert_eq!(pools(&w, &rules()), Some((2_000, 10_000)));
    }

    #[test]
    fn a_draw_gives_each_side_half_the_base_reward() {
        let mut w = ended(Some(WinnerSide::Draw));
        capture(&mut w, Side::Attacker, 2);
        assert_eq!(pools(&w, &rules()), Some((5_000, 5_000)));
    }

    #[test]
    fn a_war_without_winner_gets_an_empty_plan() {
        let w = ended(None);
        let p = plan(&w, &[score("a1", "att", 50)], &rules());
        assert_eq!(pools(&w, &rules()), None);
        assert_eq!((p.attacker_pool, p.defender_pool), (0, 0));
        assert!(p.grants.is_empty());
        assert_eq!(p.status, RewardStatus::Pending);
    }

    #[test]
    fn pools_are_split_in_proportion_to_points_and_rounded_down() {
        let w = ended(Some(WinnerSide::Attacker));
        let players = [
            score("a1", "att", 1),
            score("a2", "att", 1),
            score("a3", "att-ally", 1),
            score("d1", "def", 30),
            score("d2", "def", 10),
        ];
        let p = plan(&w, &players, &rules());
        // 10_000 / 3 = 3_333.33 → 3_333 each (1 left undistributed); 2_000 split 3:1.
        assert_eq!(
            amounts(&p),
            vec![
                ("a1", 3_333),
                ("a2", 3_333),
                ("a3", 3_333),
                ("d1", 1_500),
                ("d2", 500)
            ]
        );
        assert_eq!(p.grants[2].clan_id.as_str(), "att-ally");
        assert_eq!(p.grants[2].side, Side::Attacker);
        assert!(p
            .grants
            .iter()
            .all(|g| g.kind == "gold" && g.status == GrantStatus::Pending));
    }

    #[test]
    fn players_below_the_participation_threshold_get_nothing() {
        let w = ended(Some(WinnerSide::Attacker));
        let rules = Rules {
            min_participation_points: 10,
            ..rules()
        };
        let players = [
            score("a1", "att", 9),
            score("a2", "att", 10),
            score("a3", "att", 0),
            score("a4", "att", -5),
        ];
        let p = plan(&w, &players, &rules);
        assert_eq!(amounts(&p), vec![("a2", 10_000)]);
    }

    #[test]
    fn shares_are_capped_per_player_and_the_excess_is_not_redistributed() {
        let w = ended(Some(WinnerSide::Attacker));
        let rules = Rules {
            max_player_reward: 2_000,
            ..rules()
        };
        let p = plan(
            &w,
            &[score("a1", "att", 90), score("a2", "att", 10)],
            &rules,
        );
        assert_eq!(amounts(&p), vec![("a1", 2_000), ("a2", 1_000)]);
    }

    #[test]
    fn players_of_clans_outside_the_war_and_zero_shares_are_left_out() {
        let w = ended(Some(WinnerSide::Defender));
        let rules = Rules {
            base_reward: 10,
            ..rules()
        };
        // Loser pool 2: a1 gets ⌊2·1/1000⌋ = 0 → no grant.
        let players = [
            score("a1", "att", 1),
            score("a2", "att", 999),
            score("x1", "stranger", 500),
        ];
        let p = plan(&w, &players, &rules);
        assert_eq!(amounts(&p), vec![("a2", 1)]);
    }

    #[test]
    fn idempotency_keys_join_war_player_and_kind() {
        let key = idempotency_key(
            &WarId::new("w1").unwrap(),
            &PlayerId::new("p1").unwrap(),
            "gold",
        );
        assert_eq!(key, "w1#p1#gold");
    }

    #[test]
    fn chunks_keep_the_plan_order_and_size() {
        let w = ended(Some(WinnerSide::Attacker));
        let players: Vec<PlayerScore> = (0..7).map(|i| score(&format!("a{i}"), "att", 1)).collect();
        let p = plan(&w, &players, &rules());
        let c: Vec<&[Grant]> = chunks(&p, 3).collect();
        assert_eq!(c.iter().map(|c| c.len()).collect::<Vec<_>>(), vec![3, 3, 1]);
        assert_eq!(c.concat(), p.grants);
        assert_eq!(chunks(&p, 0).len(), 7);
    }

    fn ids(names: &[&str]) -> Vec<PlayerId> {
        names.iter().map(|n| PlayerId::new(*n).unwrap()).collect()
    }

    fn two_grant_plan() -> RewardPlan {
        let w = ended(Some(WinnerSide::Attacker));
        plan(
            &w,
            &[score("a1", "att", 1), score("a2", "att", 1)],
            &rules(),
        )
    }

    #[test]
    fn a_plan_moves_pending_distributing_distributed_and_replays_change_nothing() {
        let mut p = two_grant_plan();
        assert!(p.begin().unwrap());
        assert!(!p.begin().unwrap());
        assert_eq!(p.mark_granted(&ids(&["a1"])).unwrap(), 1);
        assert_eq!(p.mark_granted(&ids(&["a1"])).unwrap(), 0);
        assert_eq!(p.complete().unwrap_err().code(), "INVALID_REWARD_STATE");
        assert_eq!(p.mark_granted(&ids(&["a1", "a2"])).unwrap(), 1);
        assert!(p.complete().unwrap());
        assert!(!p.complete().unwrap());
        assert!(!p.begin().unwrap());
        assert_eq!(p.status, RewardStatus::Distributed);
        assert_eq!(p.fail().unwrap_err().class(), crate::ErrorClass::Conflict);
    }

    #[test]
    fn grants_are_recorded_only_while_distributing() {
        let mut p = two_grant_plan();
        assert_eq!(
            p.mark_granted(&ids(&["a1"])).unwrap_err().code(),
            "INVALID_REWARD_STATE"
        );
        assert_eq!(
            p.mark_granted(&ids(&["nobody"])).unwrap_err().code(),
            "INVALID_REQUEST"
        );
    }

    #[test]
    fn a_failed_plan_keeps_revoked_grants_revoked_and_cannot_restart() {
        let mut p = two_grant_plan();
        p.begin().unwrap();
        p.mark_granted(&ids(&["a1"])).unwrap();
        assert_eq!(p.mark_revoked(&ids(&["a1", "a2"])).unwrap(), 2);
        assert!(p.fail().unwrap());
        assert!(!p.fail().unwrap());
        assert_eq!(p.mark_granted(&ids(&["a1", "a2"])).unwrap(), 0);
        assert_eq!(p.count(GrantStatus::Revoked), 2);
        assert_eq!(p.begin().unwrap_err().code(), "INVALID_REWARD_STATE");
        assert_eq!(p.complete().unwrap_err().code(), "INVALID_REWARD_STATE");
    }

    fn winner() -> impl Strategy<Value = WinnerSide> {
        prop_oneof![
            Just(WinnerSide::Attacker),
            Just(WinnerSide::Defender),
            Just(WinnerSide::Draw),
        ]
    }

    fn players() -> impl Strategy<Value = Vec<PlayerScore>> {
        let clan = prop_oneof![Just("att"), Just("att-ally"), Just("def"), Just("other")];
        proptest::collection::vec((0u32..60, clan, -10i64..5_000), 0..60).prop_map(|v| {
            v.into_iter()
                .map(|(id, clan, points)| score(&format!("p{id}"), clan, points))
                .collect()
        })
    }

    fn any_rules() -> impl Strategy<Value = Rules> {
        (0u64..1_000_000, -5i64..50, 0u64..50_000).prop_map(|(base, min, cap)| Rules {
            base_reward: base,
            min_participation_points: min,
            max_player_reward: cap,
            ..Rules::default()
        })
    }

    proptest! {
        #[test]
        fn a_plan_never_exceeds_the_pool_of_either_side(
            w in winner(), caps in 0usize..6, ps in players(), r in any_rules()
        ) {
            let mut war = ended(Some(w));
            capture(&mut war, Side::Attacker, caps);
            let p = plan(&war, &ps, &r);
            for side in [Side::Attacker, Side::Defender] {
                prop_assert!(p.side_total(side) <= p.pool(side));
            }
        }

        #[test]
        fn a_plan_is_the_same_whatever_the_order_of_players(
            w in winner(),
            (ps, shuffled) in players().prop_flat_map(|ps| (Just(ps.clone()), Just(ps).prop_shuffle())),
            r in any_rules()
        ) {
            let war = ended(Some(w));
            prop_assert_eq!(plan(&war, &ps, &r), plan(&war, &shuffled, &r));
        }

        #[test]
        fn no_grant_goes_below_the_threshold_or_above_the_cap(
            w in winner(), ps in players(), r in any_rules()
        ) {
            let war = ended(Some(w));
            let p = plan(&war, &ps, &r);
            for g in &p.grants {
                let points: i64 = ps.iter().filter(|s| s.player_id == g.player_id).map(|s| s.points).sum();
                prop_assert!(points >= r.min_participation_points && points > 0);
                prop_assert!(g.amount <= r.max_player_reward);
                prop_assert!(g.amount > 0);
            }
            let keys: Vec<_> = p.grants.iter().map(|g| (g.side, g.player_id.clone())).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            prop_assert_eq!(&keys, &sorted);
            let players: std::collections::BTreeSet<_> = p.grants.iter().map(|g| &g.player_id).collect();
            prop_assert_eq!(players.len(), p.grants.len());
        }
    }
}
