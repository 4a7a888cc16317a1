//! The pseudo-random stream of battle events a game server would report once a second: kills
//! between players of varying levels, assists, now and then a killer farming the same victim
//! again (refused as ANTI_FARMING), now and then a retried delivery of an event already sent
//! (counted as a duplicate), and a capture when the story asks for one. Deterministic given the
//! seed (and, when the API slows down and batches are capped, its pace); the timestamps follow
//! the wall clock.

use crate::cast::{Cast, Side};
use crate::rng::Rng;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

/// Share of kills the attacking side makes (they came prepared).
const ATTACKER_EDGE: f64 = 0.58;
/// Share of kills inside a battle instance (the rest happen in the open world).
const IN_BATTLE: f64 = 0.85;
/// Chance that a kill has an assisting teammate.
const ASSIST_CHANCE: f64 = 0.5;
/// Chance, per batch after the first, of a killer scoring again on the same victim.
const REFARM_CHANCE: f64 = 0.45;
/// Chance, per batch after the first, of a game server re-sending an event (network retry).
const REPLAY_CHANCE: f64 = 0.3;
/// Kills per battle (or in the open world) per batch, `(fewest, most)`: about one second of a
/// busy fight, and what the local stack absorbs within the one-second cadence.
const KILLS_PER_BATTLE: (u32, u32) = (2, 4);
/// Kill pairs remembered for refarming.
const HISTORY: usize = 64;

/// A player of the cast: (clan index, player index).
type PlayerRef = (usize, usize);

/// What one batch holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mix {
    pub kills: usize,
    pub assists: usize,
    pub captures: usize,
    /// Kills repeating an earlier killer → victim pair (expected ANTI_FARMING).
    pub refarms: usize,
    /// Events sent before, sent again with the same id (expected duplicates).
    pub replays: usize,
}

/// One `POST /wars/{war_id}/events` body and what is in it.
#[derive(Debug, Clone)]
pub struct Batch {
    pub events: Vec<Value>,
    pub mix: Mix,
}

/// A capture the story wants reported in the next batch.
#[derive(Debug, Clone)]
pub struct CaptureOrder {
    pub territory_id: String,
    pub clan_id: String,
}

/// Generates the batches of one war.
#[derive(Debug, Clone)]
pub struct EventStream {
    rng: Rng,
    prefix: String,
    next_id: u64,
    batches: u64,
    pairs: Vec<(PlayerRef, PlayerRef)>,
    /// Plain kills and assists of the previous batch (replay candidates).
    previous: Vec<Value>,
    /// Most kills in one batch (backpressure from a slow API).
    max_kills: usize,
}

impl EventStream {
    /// `prefix` starts every event id (the run id keeps runs apart).
    pub fn new(seed: u64, prefix: &str) -> Self {
        Self {
            rng: Rng::new(seed ^ 0x5EED_0FBA_771E),
            prefix: prefix.to_owned(),
            next_id: 0,
            batches: 0,
            pairs: Vec::new(),
            previous: Vec::new(),
            max_kills: usize::MAX,
        }
    }

    /// Caps the kills of the next batches (at least one): a client that sees the API slow
    /// down reports what it must in smaller batches instead of queueing up more work.
    pub fn set_max_kills(&mut self, max: usize) {
        self.max_kills = max.max(1);
    }

    /// The next batch: events happen between `from` and `to`; kills happen in `battles`
    /// (or the open world when there are none).
    pub fn batch(
        &mut self,
        cast: &Cast,
        battles: &[String],
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        capture: Option<&CaptureOrder>,
    ) -> Batch {
        let mut out = Batch {
            events: Vec::new(),
            mix: Mix::default(),
        };
        let mut plain = Vec::new();
        let earlier = self.pairs.clone();
        let kills = (self.rng.between(KILLS_PER_BATTLE.0, KILLS_PER_BATTLE.1) as usize
            * battles.len().max(1))
        .min(self.max_kills);
        for _ in 0..kills {
            let at = self.instant(from, to);
            let battle = self.battle(battles);
            let (killer, victim) = self.duel(cast);
            plain.push(self.kill(cast, killer, victim, battle.as_deref(), at));
            out.mix.kills += 1;
            if self.rng.chance(ASSIST_CHANCE) {
                let helper = self.teammate(cast, killer);
                plain.push(self.assist(cast, helper, battle.as_deref(), at));
                out.mix.assists += 1;
            }
        }
        out.events.extend(plain.iter().cloned());
        if let Some(kill) = self.refarm(cast, &earlier, (from, to)) {
            out.events.push(kill);
            out.mix.refarms += 1;
        }
        if let Some(replayed) = self.replay() {
            out.events.push(replayed);
            out.mix.replays += 1;
        }
        if let Some(order) = capture {
            let at = self.instant(from, to);
            out.events.push(self.capture(order, at));
            out.mix.captures += 1;
        }
        self.previous = plain;
        self.batches += 1;
        out
    }

    fn next_event_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-e{:05}", self.prefix, self.next_id)
    }

    fn instant(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
        let span = (to - from).num_milliseconds().max(0);
        from + Duration::milliseconds((self.rng.unit() * span as f64) as i64)
    }

    fn battle(&mut self, battles: &[String]) -> Option<String> {
        (!battles.is_empty() && self.rng.chance(IN_BATTLE)).then(|| self.rng.pick(battles).clone())
    }

    fn player_of(&mut self, cast: &Cast, side: Side) -> PlayerRef {
        let clans: Vec<usize> = (0..cast.clans.len())
            .filter(|i| cast.clans[*i].side == side)
            .collect();
        let clan = *self.rng.pick(&clans);
        (clan, self.rng.below(cast.clans[clan].players.len()))
    }

    /// A killer and a victim on opposite sides; every new pair is remembered for refarming.
    fn duel(&mut self, cast: &Cast) -> (PlayerRef, PlayerRef) {
        let side = if self.rng.chance(ATTACKER_EDGE) {
            Side::Attacker
        } else {
            Side::Defender
        };
        let pair = (
            self.player_of(cast, side),
            self.player_of(cast, side.opponent()),
        );
        if self.pairs.len() == HISTORY {
            self.pairs.remove(0);
        }
        self.pairs.push(pair);
        pair
    }

    /// Another player of the killer's side.
    fn teammate(&mut self, cast: &Cast, killer: PlayerRef) -> PlayerRef {
        let side = cast.clans[killer.0].side;
        loop {
            let helper = self.player_of(cast, side);
            if helper != killer {
                return helper;
            }
        }
    }

    /// From the second batch on, sometimes (always in the second) a killer finds a victim of an
    /// earlier batch again within the refarm window.
    fn refarm(
        &mut self,
        cast: &Cast,
        earlier: &[(PlayerRef, PlayerRef)],
        window: (DateTime<Utc>, DateTime<Utc>),
    ) -> Option<Value> {
        let wanted = self.batches == 1 || (self.batches > 1 && self.rng.chance(REFARM_CHANCE));
        if !wanted || earlier.is_empty() {
            return None;
        }
        let (killer, victim) = *self.rng.pick(earlier);
        let at = self.instant(window.0, window.1);
        Some(self.kill(cast, killer, victim, None, at))
    }

    /// From the second batch on, sometimes (always in the second) an event of the previous
    /// batch is delivered again, same id.
    fn replay(&mut self) -> Option<Value> {
        let wanted = self.batches == 1 || (self.batches > 1 && self.rng.chance(REPLAY_CHANCE));
        (wanted && !self.previous.is_empty()).then(|| self.rng.pick(&self.previous).clone())
    }

    fn kill(
        &mut self,
        cast: &Cast,
        killer: PlayerRef,
        victim: PlayerRef,
        battle: Option<&str>,
        at: DateTime<Utc>,
    ) -> Value {
        let (k, v) = (&cast.clans[killer.0], &cast.clans[victim.0]);
        let (kp, vp) = (&k.players[killer.1], &v.players[victim.1]);
        let mut event = json!({
            "type": "kill", "event_id": self.next_event_id(), "occurred_at": at,
            "killer_id": kp.id, "killer_clan_id": k.id, "killer_level": kp.level,
            "victim_id": vp.id, "victim_clan_id": v.id, "victim_level": vp.level
        });
        if let Some(battle) = battle {
            event["battle_id"] = battle.into();
        }
        event
    }

    fn assist(
        &mut self,
        cast: &Cast,
        helper: PlayerRef,
        battle: Option<&str>,
        at: DateTime<Utc>,
    ) -> Value {
        let clan = &cast.clans[helper.0];
        let mut event = json!({
            "type": "assist", "event_id": self.next_event_id(), "occurred_at": at,
            "player_id": clan.players[helper.1].id, "clan_id": clan.id
        });
        if let Some(battle) = battle {
            event["battle_id"] = battle.into();
        }
        event
    }

    fn capture(&mut self, order: &CaptureOrder, at: DateTime<Utc>) -> Value {
        json!({
            "type": "capture", "event_id": self.next_event_id(), "occurred_at": at,
            "territory_id": order.territory_id, "clan_id": order.clan_id
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn fixture() -> (Cast, Vec<String>, (DateTime<Utc>, DateTime<Utc>)) {
        let cast = Cast::new("dtest01", 12, &mut Rng::new(3));
        let t0 = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (
            cast,
            vec!["b1".to_owned(), "b2".to_owned()],
            (t0, t0 + Duration::seconds(1)),
        )
    }

    fn run(seed: u64, batches: usize) -> Vec<Batch> {
        let (cast, battles, window) = fixture();
        let mut stream = EventStream::new(seed, "dtest01");
        (0..batches)
            .map(|_| stream.batch(&cast, &battles, window, None))
            .collect()
    }

    fn side(cast: &Cast, clan_id: &Value) -> Side {
        cast.clan_by_id(clan_id.as_str().unwrap()).unwrap().side
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let ids = |batches: Vec<Batch>| -> Vec<Value> {
            batches.into_iter().flat_map(|b| b.events).collect()
        };
        assert_eq!(ids(run(9, 6)), ids(run(9, 6)));
        assert_ne!(ids(run(9, 6)), ids(run(10, 6)));
    }

    #[test]
    fn kills_cross_sides_and_assists_help_their_own_side() {
        let (cast, _, (from, to)) = fixture();
        for event in run(4, 8).iter().flat_map(|b| b.events.iter()) {
            let at: DateTime<Utc> = serde_json::from_value(event["occurred_at"].clone()).unwrap();
            assert!(from <= at && at <= to, "{event}");
            match event["type"].as_str().unwrap() {
                "kill" => {
                    assert_ne!(
                        side(&cast, &event["killer_clan_id"]),
                        side(&cast, &event["victim_clan_id"])
                    );
                    assert!(event["killer_level"].as_u64().unwrap() >= 1);
                }
                "assist" => assert!(cast
                    .clan_of_player(event["player_id"].as_str().unwrap())
                    .is_some()),
                other => panic!("unexpected {other}"),
            }
        }
    }

    #[test]
    fn the_second_batch_refarms_and_replays() {
        let batches = run(1, 2);
        assert_eq!(batches[0].mix.refarms + batches[0].mix.replays, 0);
        assert_eq!((batches[1].mix.refarms, batches[1].mix.replays), (1, 1));
        let earlier: HashSet<(String, String)> = batches[0]
            .events
            .iter()
            .filter(|e| e["type"] == "kill")
            .map(|e| (e["killer_id"].to_string(), e["victim_id"].to_string()))
            .collect();
        let n = batches[1].events.len();
        let (refarm, replayed) = (&batches[1].events[n - 2], &batches[1].events[n - 1]);
        let pair = (
            refarm["killer_id"].to_string(),
            refarm["victim_id"].to_string(),
        );
        assert!(earlier.contains(&pair));
        assert!(batches[0]
            .events
            .iter()
            .any(|e| e["event_id"] == replayed["event_id"]));
    }

    #[test]
    fn event_ids_are_unique_apart_from_replays() {
        let batches = run(2, 20);
        let replays: usize = batches.iter().map(|b| b.mix.replays).sum();
        let all: Vec<&Value> = batches
            .iter()
            .flat_map(|b| b.events.iter().map(|e| &e["event_id"]))
            .collect();
        let unique: HashSet<String> = all.iter().map(|v| v.to_string()).collect();
        assert_eq!(unique.len() + replays, all.len());
        assert!(replays >= 1 && batches.iter().map(|b| b.mix.refarms).sum::<usize>() >= 2);
    }

    #[test]
    fn a_capture_order_becomes_a_capture_event() {
        let (cast, battles, window) = fixture();
        let order = CaptureOrder {
            territory_id: "dtest01-keep".into(),
            clan_id: "dtest01-hawks".into(),
        };
        let batch = EventStream::new(1, "x").batch(&cast, &battles, window, Some(&order));
        let capture = batch
            .events
            .iter()
            .find(|e| e["type"] == "capture")
            .unwrap();
        assert_eq!(
            (
                capture["territory_id"].as_str(),
                capture["clan_id"].as_str()
            ),
            (Some("dtest01-keep"), Some("dtest01-hawks"))
        );
        assert_eq!(batch.mix.captures, 1);
    }

    #[test]
    fn a_cap_keeps_batches_small() {
        let (cast, battles, window) = fixture();
        let mut stream = EventStream::new(1, "x");
        stream.set_max_kills(2);
        for _ in 0..5 {
            assert!(stream.batch(&cast, &battles, window, None).mix.kills <= 2);
        }
        stream.set_max_kills(0);
        assert_eq!(stream.batch(&cast, &battles, window, None).mix.kills, 1);
    }

    #[test]
    fn without_battles_kills_happen_in_the_open_world() {
        let (cast, _, window) = fixture();
        let batch = EventStream::new(1, "x").batch(&cast, &[], window, None);
        assert!(batch.mix.kills >= 2);
        assert!(batch.events.iter().all(|e| e.get("battle_id").is_none()));
    }
}
