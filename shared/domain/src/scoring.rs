//! Scoring (SPEC §6): kill weighting, assists, anti-farming, capture and hold points, the
//! scoring window, side totals, winner and tie-breaks, Elo rating change.
//!
//! Everything here is pure: the battle-event wire format, the evaluation of one event against
//! the war (what it is worth, or why it is refused) and the end-of-war arithmetic.

use crate::clan::DEFAULT_RATING;
use crate::config::Rules;
use crate::error::DomainError;
use crate::ids::{BattleId, ClanId, EventId, PlayerId, TerritoryId, WarId};
use crate::ledger::{recompute, Totals, Void};
use crate::ledger::{EffectKind, LedgerEntry};
use crate::territory::Territory;
use crate::war::{Capture, Outcome, Side, War, WinnerSide};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Lowest character level the game reports.
pub const MIN_LEVEL: u32 = 1;
/// Highest character level the game reports.
pub const MAX_LEVEL: u32 = 1_000;

/// A character level, validated on the way in so that kill weighting never divides by zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Level(u32);

/// A level outside `MIN_LEVEL..=MAX_LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("level {0} is outside {MIN_LEVEL}..={MAX_LEVEL}")]
pub struct LevelError(pub u32);

impl Level {
    pub fn new(raw: u32) -> Result<Self, LevelError> {
        if (MIN_LEVEL..=MAX_LEVEL).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(LevelError(raw))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Level {
    type Error = LevelError;
    fn try_from(raw: u32) -> Result<Self, LevelError> {
        Self::new(raw)
    }
}

impl From<Level> for u32 {
    fn from(level: Level) -> u32 {
        level.0
    }
}

/// `round(base × clamp(victim / killer, 0.5, 2.0))`.
pub fn kill_points(killer_level: Level, victim_level: Level, rules: &Rules) -> i64 {
    let ratio = (f64::from(victim_level.get()) / f64::from(killer_level.get())).clamp(0.5, 2.0);
    (rules.kill_base_points as f64 * ratio).round() as i64
}

// ---- battle events: the wire format of `POST /wars/{id}/events` and of ingestion messages ----

/// One reported battle event, tagged by `"type"`. Unknown types and unknown fields are refused
/// by deserialisation, so a malformed batch fails as a whole (400) before anything is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BattleEvent {
    Kill(KillEvent),
    Assist(AssistEvent),
    Capture(CaptureEvent),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillEvent {
    pub event_id: EventId,
    pub occurred_at: DateTime<Utc>,
    pub killer_id: PlayerId,
    pub killer_clan_id: ClanId,
    pub killer_level: Level,
    pub victim_id: PlayerId,
    pub victim_clan_id: ClanId,
    pub victim_level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battle_id: Option<BattleId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistEvent {
    pub event_id: EventId,
    pub occurred_at: DateTime<Utc>,
    pub player_id: PlayerId,
    pub clan_id: ClanId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battle_id: Option<BattleId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureEvent {
    pub event_id: EventId,
    pub occurred_at: DateTime<Utc>,
    pub territory_id: TerritoryId,
    pub clan_id: ClanId,
}

impl BattleEvent {
    pub fn event_id(&self) -> &EventId {
        match self {
            BattleEvent::Kill(e) => &e.event_id,
            BattleEvent::Assist(e) => &e.event_id,
            BattleEvent::Capture(e) => &e.event_id,
        }
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            BattleEvent::Kill(e) => e.occurred_at,
            BattleEvent::Assist(e) => e.occurred_at,
            BattleEvent::Capture(e) => e.occurred_at,
        }
    }

    /// The players the event claims for a clan: `(player, clan, what the player is)`.
    pub fn claimed_players(&self) -> Vec<(&PlayerId, &ClanId, &'static str)> {
        match self {
            BattleEvent::Kill(e) => vec![
                (&e.killer_id, &e.killer_clan_id, "killer"),
                (&e.victim_id, &e.victim_clan_id, "victim"),
            ],
            BattleEvent::Assist(e) => vec![(&e.player_id, &e.clan_id, "assisting player")],
            BattleEvent::Capture(_) => Vec::new(),
        }
    }

    /// The battle the event names, if any.
    pub fn battle_id(&self) -> Option<&BattleId> {
        match self {
            BattleEvent::Kill(e) => e.battle_id.as_ref(),
            BattleEvent::Assist(e) => e.battle_id.as_ref(),
            BattleEvent::Capture(_) => None,
        }
    }
}

/// Stable codes of refused events (the capture path adds the territory rules' error codes).
pub mod codes {
    /// The war is not ACTIVE/ENDING, or ENDING's grace is over.
    pub const WAR_NOT_ACCEPTING_EVENTS: &str = "WAR_NOT_ACCEPTING_EVENTS";
    /// `occurred_at` lies outside the ACTIVE phase.
    pub const OUTSIDE_ACTIVE_WINDOW: &str = "OUTSIDE_ACTIVE_WINDOW";
    /// `occurred_at` lies further in the future than the allowed clock skew.
    pub const FUTURE_EVENT: &str = "FUTURE_EVENT";
    /// A clan named by the event fights on no side of the war.
    pub const NOT_A_PARTICIPANT: &str = "NOT_A_PARTICIPANT";
    /// Killer and victim fight on the same side.
    pub const SAME_SIDE: &str = "SAME_SIDE";
    /// A player the event names is not on the roster of the clan it claims (SPEC §5: "the
    /// killer (or assisting player) is a member of the clan it names").
    pub const NOT_A_MEMBER: &str = "NOT_A_MEMBER";
    /// The event names a battle this war does not have.
    pub const UNKNOWN_BATTLE: &str = "UNKNOWN_BATTLE";
    /// The killer already scored on this victim within the refarm window.
    pub const ANTI_FARMING: &str = "ANTI_FARMING";
    /// The war ended while the event was being applied: its final tally is sealed.
    pub const SCORING_CLOSED: &str = "SCORING_CLOSED";
}

/// Why an event does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub reason: String,
}

impl Rejection {
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

impl From<&DomainError> for Rejection {
    fn from(err: &DomainError) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

/// What an acceptable event does.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// Points to add exactly once (kills and assists).
    Score(ScoreDelta),
    /// A capture inside the window: the territory rules decide the rest.
    Capture(CaptureEvent),
}

/// Checks one event against the war's scoring window and sides and prices it.
pub fn evaluate(
    war: &War,
    event: &BattleEvent,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Evaluation, Rejection> {
    check_window(war, event.occurred_at(), now, rules)?;
    match event {
        BattleEvent::Kill(kill) => evaluate_kill(war, kill, rules).map(Evaluation::Score),
        BattleEvent::Assist(assist) => evaluate_assist(war, assist, rules).map(Evaluation::Score),
        BattleEvent::Capture(capture) => Ok(Evaluation::Capture(capture.clone())),
    }
}

/// An event naming a battle counts only if the war has that battle.
pub fn require_known_battle(
    event: &BattleEvent,
    battles: &BTreeSet<BattleId>,
) -> Result<(), Rejection> {
    match event.battle_id() {
        Some(id) if !battles.contains(id) => Err(Rejection::new(
            codes::UNKNOWN_BATTLE,
            format!("battle {id} does not belong to this war"),
        )),
        _ => Ok(()),
    }
}

/// SPEC §5: every player an event names is on the roster (leader, officers, members) of the
/// clan it claims for them, as the clan registry's snapshot has it (`clans`: the records of
/// the clans the event names; a clan missing from it has no members).
pub fn require_members(
    event: &BattleEvent,
    clans: &BTreeMap<ClanId, crate::clan::Clan>,
) -> Result<(), Rejection> {
    for (player, clan, what) in event.claimed_players() {
        if clans.get(clan).is_none_or(|c| c.role_of(player).is_none()) {
            return Err(Rejection::new(
                codes::NOT_A_MEMBER,
                format!("{what} {player} is not a member of clan {clan}"),
            ));
        }
    }
    Ok(())
}

/// SPEC §6: counted only if it happened during ACTIVE and arrives before ENDING closes.
fn check_window(
    war: &War,
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<(), Rejection> {
    if !war.accepts_score_events(now) {
        return Err(Rejection::new(
            codes::WAR_NOT_ACCEPTING_EVENTS,
            format!(
                "war {} is {} and takes no score events now",
                war.war_id,
                war.status.as_str()
            ),
        ));
    }
    if occurred_at > now + Duration::seconds(rules.max_clock_skew_s) {
        return Err(Rejection::new(
            codes::FUTURE_EVENT,
            format!("occurred_at {occurred_at} is in the future"),
        ));
    }
    if !war.in_active_window(occurred_at) {
        let d = war.phase_deadlines;
        return Err(Rejection::new(
            codes::OUTSIDE_ACTIVE_WINDOW,
            format!(
                "occurred_at {occurred_at} is outside the ACTIVE phase [{}, {})",
                d.active_at, d.ending_at
            ),
        ));
    }
    Ok(())
}

fn side_of(war: &War, clan: &ClanId) -> Result<Side, Rejection> {
    war.side_of(clan).ok_or_else(|| {
        Rejection::new(
            codes::NOT_A_PARTICIPANT,
            format!("clan {clan} is not on a side of war {}", war.war_id),
        )
    })
}

fn evaluate_kill(war: &War, kill: &KillEvent, rules: &Rules) -> Result<ScoreDelta, Rejection> {
    let killer_side = side_of(war, &kill.killer_clan_id)?;
    let victim_side = side_of(war, &kill.victim_clan_id)?;
    if killer_side == victim_side {
        return Err(Rejection::new(
            codes::SAME_SIDE,
            format!(
                "clans {} and {} fight on the same side",
                kill.killer_clan_id, kill.victim_clan_id
            ),
        ));
    }
    let points = kill_points(kill.killer_level, kill.victim_level, rules);
    Ok(ScoreDelta {
        war_id: war.war_id.clone(),
        dedupe_id: kill.event_id.to_string(),
        shards: war.score_shards,
        players: vec![PlayerPoints {
            player_id: kill.killer_id.clone(),
            clan_id: kill.killer_clan_id.clone(),
            points,
        }],
        clans: vec![(kill.killer_clan_id.clone(), points)],
        battle_kill: kill.battle_id.clone().map(|b| (b, killer_side)),
        farm_guard: Some(FarmGuard {
            killer_id: kill.killer_id.clone(),
            victim_id: kill.victim_id.clone(),
            occurred_at: kill.occurred_at,
            window_s: rules.refarm_window_s,
        }),
        ledger: Some(Box::new(LedgerEntry::new(
            war,
            rules,
            kill.event_id.to_string(),
            EffectKind::Kill,
            kill.occurred_at,
            Some(kill.killer_id.clone()),
            kill.killer_clan_id.clone(),
            killer_side,
            points,
        ))),
    })
}

fn evaluate_assist(
    war: &War,
    assist: &AssistEvent,
    rules: &Rules,
) -> Result<ScoreDelta, Rejection> {
    let side = side_of(war, &assist.clan_id)?;
    Ok(ScoreDelta {
        war_id: war.war_id.clone(),
        dedupe_id: assist.event_id.to_string(),
        shards: war.score_shards,
        players: vec![PlayerPoints {
            player_id: assist.player_id.clone(),
            clan_id: assist.clan_id.clone(),
            points: rules.assist_points,
        }],
        clans: vec![(assist.clan_id.clone(), rules.assist_points)],
        battle_kill: None,
        farm_guard: None,
        ledger: Some(Box::new(LedgerEntry::new(
            war,
            rules,
            assist.event_id.to_string(),
            EffectKind::Assist,
            assist.occurred_at,
            Some(assist.player_id.clone()),
            assist.clan_id.clone(),
            side,
            rules.assist_points,
        ))),
    })
}

// ---- end of war -------------------------------------------------------------------------------

/// Hold points per clan: every full hour a clan of the war owned one of the war's territories
/// between `active_at` and `end` (clamped into ACTIVE) scores `hold_points_per_tier_hour × tier`.
/// Owners are rebuilt from `war.captures`; each owning stretch counts its own full hours.
pub fn hold_points(
    war: &War,
    territories: &[Territory],
    end: DateTime<Utc>,
    rules: &Rules,
) -> BTreeMap<ClanId, i64> {
    let start = war.phase_deadlines.active_at;
    let end = end.clamp(start, war.phase_deadlines.ending_at);
    let mut points = BTreeMap::new();
    for territory in war_territories(war, territories) {
        for (owner, from, to) in ownership_segments(war, territory, start, end) {
            let hours = (to - from).num_hours();
            if hours > 0 && war.side_of(&owner).is_some() {
                *points.entry(owner).or_insert(0) +=
                    rules.hold_points_per_tier_hour * i64::from(territory.tier) * hours;
            }
        }
    }
    points
}

/// The war's territories found in `territories`, each once.
fn war_territories<'a>(
    war: &'a War,
    territories: &'a [Territory],
) -> impl Iterator<Item = &'a Territory> + 'a {
    war.territory_ids
        .iter()
        .filter_map(|id| territories.iter().find(|t| &t.territory_id == id))
}

/// `(owner, from, to)` stretches of one territory within `[start, end)`.
fn ownership_segments(
    war: &War,
    territory: &Territory,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(ClanId, DateTime<Utc>, DateTime<Utc>)> {
    let mut captures: Vec<&Capture> = war
        .captures
        .iter()
        .filter(|c| c.territory_id == territory.territory_id)
        .collect();
    captures.sort_by_key(|c| c.at);
    let mut owner = match captures.first() {
        Some(first) => first.from_clan_id.clone(),
        None => territory.owner_clan_id.clone(),
    };
    let mut since = start;
    let mut segments = Vec::new();
    for capture in captures {
        let at = capture.at.clamp(start, end);
        if let Some(previous) = owner.take() {
            segments.push((previous, since, at));
        }
        owner = Some(capture.to_clan_id.clone());
        since = at;
    }
    if let Some(last) = owner {
        segments.push((last, since, end));
    }
    segments
}

/// `(attacker, defender)` totals: each clan's points count for the side it fights on.
pub fn side_totals(war: &War, clan_totals: &BTreeMap<ClanId, i64>) -> (i64, i64) {
    clan_totals
        .iter()
        .fold((0, 0), |(att, def), (clan, points)| {
            match war.side_of(clan) {
                Some(Side::Attacker) => (att + points, def),
                Some(Side::Defender) => (att, def + points),
                None => (att, def),
            }
        })
}

/// `(attacker, defender)` counts of the war's territories owned by a clan of each side.
pub fn territories_held(war: &War, territories: &[Territory]) -> (usize, usize) {
    war_territories(war, territories).fold((0, 0), |(att, def), t| {
        match t.owner_clan_id.as_ref().and_then(|o| war.side_of(o)) {
            Some(Side::Attacker) => (att + 1, def),
            Some(Side::Defender) => (att, def + 1),
            None => (att, def),
        }
    })
}

/// Winner: higher side score; tie → more territories held at the end; tie → draw.
pub fn decide_winner(
    attacker_score: i64,
    defender_score: i64,
    attacker_territories: usize,
    defender_territories: usize,
) -> (WinnerSide, Outcome) {
    use std::cmp::Ordering::*;
    match attacker_score.cmp(&defender_score) {
        Greater => (WinnerSide::Attacker, Outcome::Score),
        Less => (WinnerSide::Defender, Outcome::Score),
        Equal => match attacker_territories.cmp(&defender_territories) {
            Greater => (WinnerSide::Attacker, Outcome::Territories),
            Less => (WinnerSide::Defender, Outcome::Territories),
            Equal => (WinnerSide::Draw, Outcome::Draw),
        },
    }
}

// ---- Elo ----------------------------------------------------------------------------------------

/// Expected score of a player rated `ra` against one rated `rb`.
pub fn expected(ra: f64, rb: f64) -> f64 {
    1.0 / (1.0 + 10f64.powf((rb - ra) / 400.0))
}

/// Rounded Elo change for `a` scoring `score_a` (1 win, 0.5 draw, 0 loss) against `b`.
/// Always computed from the lower-rated player's view and mirrored, so that in floating point
/// too the two players of a 1v1 gain and lose exactly the same amount.
pub fn rating_change(ra: f64, rb: f64, score_a: f64, k: f64) -> i32 {
    if ra <= rb {
        (k * (score_a - expected(ra, rb))).round() as i32
    } else {
        -rating_change(rb, ra, 1.0 - score_a, k)
    }
}

/// `(clan, old, new)` for every clan of the war, each rated against the mean rating of the
/// opposing side. A clan missing from `ratings` is taken at [`DEFAULT_RATING`].
pub fn side_rating_changes(
    war: &War,
    ratings: &BTreeMap<ClanId, i32>,
    winner: WinnerSide,
    k: f64,
) -> Vec<(ClanId, i32, i32)> {
    let rating = |clan: &ClanId| ratings.get(clan).copied().unwrap_or(DEFAULT_RATING);
    let mean = |side: Side| {
        let clans = &war.sides.get(side).clan_ids;
        let sum: f64 = clans.iter().map(|c| f64::from(rating(c))).sum();
        sum / clans.len().max(1) as f64
    };
    let score = |side: Side| match winner {
        WinnerSide::Draw => 0.5,
        w if w == WinnerSide::from(side) => 1.0,
        _ => 0.0,
    };
    let mut changes = Vec::new();
    for side in [Side::Attacker, Side::Defender] {
        let opponents = mean(side.opponent());
        for clan in &war.sides.get(side).clan_ids {
            let old = rating(clan);
            let new = old + rating_change(f64::from(old), opponents, score(side), k);
            changes.push((clan.clone(), old, new));
        }
    }
    changes
}

/// Whether a throttled `ScoreSnapshot` may go out: none yet, or the last is old enough.
pub fn snapshot_due(last: Option<DateTime<Utc>>, now: DateTime<Utc>, min_interval_s: i64) -> bool {
    last.is_none_or(|last| now - last >= Duration::seconds(min_interval_s))
}

/// Points to add for one player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerPoints {
    pub player_id: PlayerId,
    pub clan_id: ClanId,
    pub points: i64,
}

/// "This killer may score on this victim only if they have not within the window."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FarmGuard {
    pub killer_id: PlayerId,
    pub victim_id: PlayerId,
    pub occurred_at: DateTime<Utc>,
    pub window_s: i64,
}

/// An exactly-once increment of a war's score counters, keyed by `dedupe_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreDelta {
    pub war_id: WarId,
    /// The war's counter shard count ([`War::score_shards`]).
    pub shards: u32,
    /// Applying the same id twice is a no-op (the event id, or an id derived from the action).
    pub dedupe_id: String,
    pub players: Vec<PlayerPoints>,
    /// Clan totals to add (players' points are not added to clans implicitly).
    pub clans: Vec<(ClanId, i64)>,
    /// A kill recorded against a battle's per-side tally.
    pub battle_kill: Option<(BattleId, Side)>,
    pub farm_guard: Option<FarmGuard>,
    /// The war-ledger entry of an accepted effect, recorded with its points (and only if
    /// they are applied); `None` for internal slots such as snapshot claims.
    pub ledger: Option<Box<LedgerEntry>>,
}

/// What applying a [`ScoreDelta`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    /// The dedupe id was applied before: nothing changed.
    Duplicate,
    /// The farm guard refused it: nothing changed but the dedupe id is remembered.
    Farmed,
    /// The war's counters are sealed (its final tally ran): nothing changed.
    Sealed,
}

/// A player's points in a war.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerScore {
    pub player_id: PlayerId,
    pub clan_id: ClanId,
    pub points: i64,
}

/// The `limit` best players: most points first, ties by player id (every score board ranks so).
pub fn leaderboard(mut players: Vec<PlayerScore>, limit: usize) -> Vec<PlayerScore> {
    players.sort_by(|a, b| {
        b.points
            .cmp(&a.points)
            .then_with(|| a.player_id.cmp(&b.player_id))
    });
    players.truncate(limit);
    players
}

/// Ledger entries are made by the scoring rules, for a war.
impl LedgerEntry {
    /// An entry of `war`, kept until its end deadline plus `rules.ledger_retention_days`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        war: &War,
        rules: &Rules,
        event_id: impl Into<String>,
        kind: EffectKind,
        occurred_at: DateTime<Utc>,
        player_id: Option<PlayerId>,
        clan_id: ClanId,
        side: Side,
        points: i64,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            kind,
            occurred_at,
            player_id,
            clan_id,
            side,
            points,
            retained_until: retention_end(war, rules),
            voided_by: None,
        }
    }
}

/// When a war's ledger entries may expire: the war's end deadline plus the retention. A war
/// that ends early (surrender) keeps them a little longer, never shorter.
pub fn retention_end(war: &War, rules: &Rules) -> DateTime<Utc> {
    war.phase_deadlines.ended_at + Duration::days(rules.ledger_retention_days)
}

/// A war's result as its ledger makes it, after `voids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescored {
    pub totals: Totals,
    pub winner: WinnerSide,
    pub outcome: Outcome,
    /// `(clan, rating before the war, rating after it)` for every clan of the war.
    pub ratings: Vec<(ClanId, i32, i32)>,
}

/// The war's result from its ledger without the voided entries: totals, winner (higher side
/// score; tie → more territories held at the end, `held`; tie → draw, as at the final tally)
/// and the Elo change from the ratings the clans had *before* the war. Pure and
/// deterministic: the same ledger, voids and inputs always give the same result.
pub fn rescore(
    war: &War,
    entries: &[LedgerEntry],
    voids: &[Void],
    held: (usize, usize),
    ratings_before: &BTreeMap<ClanId, i32>,
    rules: &Rules,
) -> Rescored {
    let kept = entries
        .iter()
        .filter(|e| !voids.iter().any(|v| v.covers(e)));
    let mut totals = recompute(kept);
    // Sides as the war defines them (an entry's side is the side its clan was on).
    let (attacker, defender) = side_totals(war, &totals.clans);
    (totals.attacker, totals.defender) = (attacker, defender);
    let (winner, outcome) = decide_winner(attacker, defender, held.0, held.1);
    let ratings = side_rating_changes(war, ratings_before, winner, rules.elo_k);
    Rescored {
        totals,
        winner,
        outcome,
        ratings,
    }
}

/// The war's view of its score board.
impl War {
    /// Players' points as the war counts them now: the counters' values, with the rescored
    /// players' points after voids (a player voided down to nothing is left out).
    pub fn rescored(&self, players: Vec<PlayerScore>) -> Vec<PlayerScore> {
        if self.rescored_players.is_empty() {
            return players;
        }
        players
            .into_iter()
            .filter_map(|mut p| match self.rescored_players.get(&p.player_id) {
                Some(points) if *points <= 0 => None,
                Some(points) => {
                    p.points = *points;
                    Some(p)
                }
                None => Some(p),
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::spatial::CellId;
    use crate::war::{PhaseDurations, WarStatus};

    pub fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    pub fn clan(id: &str) -> ClanId {
        ClanId::new(id).unwrap()
    }

    pub fn player(id: &str) -> PlayerId {
        PlayerId::new(id).unwrap()
    }

    pub fn level(n: u32) -> Level {
        Level::new(n).unwrap()
    }

    /// Phases of 60 s, except ACTIVE (`active_s`) and ENDING (10 min).
    pub fn durations(active_s: u64) -> PhaseDurations {
        PhaseDurations {
            declared_s: 60,
            preparation_s: 60,
            active_s,
            ending_s: 600,
        }
    }

    /// War `att` vs `def` over `t1` and `t2`, with `att-ally` on the attacker side, moved to
    /// ACTIVE (three hours long).
    pub fn active_war() -> War {
        let mut war = War::declare(
            crate::ids::WarId::new("war-1").unwrap(),
            clan("att"),
            clan("def"),
            vec![
                TerritoryId::new("t1").unwrap(),
                TerritoryId::new("t2").unwrap(),
            ],
            durations(3 * 3_600),
            t0(),
        );
        war.sides.attacker.clan_ids.push(clan("att-ally"));
        let d = war.phase_deadlines;
        war.advance(WarStatus::Preparation, d.preparation_at)
            .unwrap();
        war.advance(WarStatus::Active, d.active_at).unwrap();
        war
    }

    pub fn territory(id: &str, tier: u8, owner: Option<&str>) -> Territory {
        Territory {
            territory_id: TerritoryId::new(id).unwrap(),
            name: id.to_owned(),
            region: "north".to_owned(),
            x: 0.0,
            y: 0.0,
            tier,
            resource_yield: 10,
            owner_clan_id: owner.map(clan),
            defense_level: 1,
            contested_by: None,
            cell: CellId { cx: 0, cy: 0 },
            version: 1,
        }
    }

    pub fn kill(
        id: &str,
        at: DateTime<Utc>,
        killer: (&str, &str),
        victim: (&str, &str),
    ) -> BattleEvent {
        BattleEvent::Kill(KillEvent {
            event_id: EventId::new(id).unwrap(),
            occurred_at: at,
            killer_id: player(killer.0),
            killer_clan_id: clan(killer.1),
            killer_level: level(10),
            victim_id: player(victim.0),
            victim_clan_id: clan(victim.1),
            victim_level: level(10),
            battle_id: None,
        })
    }

    pub fn assist(id: &str, at: DateTime<Utc>, who: (&str, &str)) -> BattleEvent {
        BattleEvent::Assist(AssistEvent {
            event_id: EventId::new(id).unwrap(),
            occurred_at: at,
            player_id: player(who.0),
            clan_id: clan(who.1),
            battle_id: None,
        })
    }
}

#[cfg(test)]
mod tests;
