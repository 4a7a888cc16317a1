//! Every tunable rule of the SPEC, with its default. Loaded once per cold start by the edge
//! (environment / IaC parameters); the domain only ever reads this struct.

use chrono::Duration;
use serde::{Deserialize, Serialize};

/// Shards of a war's score counters unless the deployment says otherwise (see `docs/scores.md`).
pub const DEFAULT_SCORE_SHARDS: u32 = 16;

/// Allowed range of one phase's length, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    pub min_s: u64,
    pub max_s: u64,
}

/// All rule parameters of SPEC §2–§8. Field names match the SPEC's option names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rules {
    // §2 lifecycle: default phase lengths and the bounds for per-war overrides.
    pub declared_s: u64,
    pub preparation_s: u64,
    pub active_s: u64,
    pub ending_s: u64,
    pub phase_bounds: Bounds,
    // §3 declaration
    pub min_clan_size: usize,
    pub max_concurrent_wars: usize,
    pub pair_cooldown_s: i64,
    pub peace_shield_s: i64,
    pub max_rating_gap: i64,
    pub max_target_territories: usize,
    pub max_declarations_per_day: usize,
    pub idempotency_ttl_s: i64,
    // §4 territories
    pub max_defense_level: u8,
    pub cell_size_m: f64,
    pub max_query_radius_m: f64,
    // §5 battles
    pub battle_max_duration_s: i64,
    pub max_concurrent_battles: usize,
    pub max_battle_players: u32,
    pub battle_win_bonus: i64,
    pub max_events_per_batch: usize,
    // §6 scoring
    pub refarm_window_s: i64,
    pub kill_base_points: i64,
    pub assist_points: i64,
    pub capture_base_points: i64,
    pub hold_points_per_tier_hour: i64,
    /// How far in the future an event's `occurred_at` may lie (clock skew of game servers).
    pub max_clock_skew_s: i64,
    pub elo_k: f64,
    pub score_shards: u32,
    /// Minimum spacing of `ScoreSnapshot` events per war (SPEC §9: throttled).
    pub score_snapshot_interval_s: i64,
    /// Days a war's ledger is kept after its end deadline (DynamoDB TTL).
    pub ledger_retention_days: i64,
    // §7 rewards
    pub base_reward: u64,
    pub min_participation_points: i64,
    pub max_player_reward: u64,
    pub reward_kind: String,
    pub reward_chunk_size: usize,
    // §8 alliances
    pub invitation_ttl_s: i64,
    pub max_alliance_size: usize,
    pub max_allies_per_side: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            declared_s: 3_600,
            preparation_s: 24 * 3_600,
            active_s: 48 * 3_600,
            ending_s: 600,
            phase_bounds: Bounds {
                min_s: 60,
                max_s: 7 * 24 * 3_600,
            },
            min_clan_size: 10,
            max_concurrent_wars: 3,
            pair_cooldown_s: 72 * 3_600,
            peace_shield_s: 24 * 3_600,
            max_rating_gap: 500,
            max_target_territories: 5,
            max_declarations_per_day: 5,
            idempotency_ttl_s: 24 * 3_600,
            max_defense_level: 5,
            cell_size_m: 1_000.0,
            max_query_radius_m: 5_000.0,
            battle_max_duration_s: 30 * 60,
            max_concurrent_battles: 20,
            max_battle_players: 200,
            battle_win_bonus: 50,
            max_events_per_batch: 500,
            refarm_window_s: 5 * 60,
            kill_base_points: 10,
            assist_points: 3,
            capture_base_points: 100,
            hold_points_per_tier_hour: 5,
            max_clock_skew_s: 5,
            elo_k: 32.0,
            score_shards: DEFAULT_SCORE_SHARDS,
            score_snapshot_interval_s: 5,
            ledger_retention_days: 90,
            base_reward: 10_000,
            min_participation_points: 1,
            max_player_reward: 2_000,
            reward_kind: "gold".to_owned(),
            reward_chunk_size: MAX_REWARD_CHUNK_SIZE,
            invitation_ttl_s: 48 * 3_600,
            max_alliance_size: 4,
            max_allies_per_side: 2,
        }
    }
}

impl Rules {
    pub fn pair_cooldown(&self) -> Duration {
        Duration::seconds(self.pair_cooldown_s)
    }
    pub fn peace_shield(&self) -> Duration {
        Duration::seconds(self.peace_shield_s)
    }
    pub fn refarm_window(&self) -> Duration {
        Duration::seconds(self.refarm_window_s)
    }
    pub fn battle_max_duration(&self) -> Duration {
        Duration::seconds(self.battle_max_duration_s)
    }
    pub fn invitation_ttl(&self) -> Duration {
        Duration::seconds(self.invitation_ttl_s)
    }

    /// Overrides defaults from `CLANWAR_<FIELD>` style key/value pairs (e.g. from the process
    /// environment). Unknown keys are ignored; a malformed value is an error naming the key.
    pub fn with_overrides<'a>(
        self,
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut json = serde_json::to_value(&self).map_err(|e| e.to_string())?;
        let map = json.as_object_mut().expect("Rules serialises to an object");
        for (key, raw) in vars {
            let Some(field) = key.strip_prefix("CLANWAR_RULE_") else {
                continue;
            };
            let field = field.to_ascii_lowercase();
            if field == "phase_min_s" || field == "phase_max_s" {
                let n: u64 = raw
                    .parse()
                    .map_err(|_| format!("{key}: not a number: {raw}"))?;
                let bound = if field == "phase_min_s" {
                    "min_s"
                } else {
                    "max_s"
                };
                map["phase_bounds"][bound] = n.into();
                continue;
            }
            let Some(slot) = map.get_mut(&field) else {
                return Err(format!("{key}: unknown rule"));
            };
            *slot = match slot {
                serde_json::Value::String(_) => raw.into(),
                _ => serde_json::from_str(raw).map_err(|_| format!("{key}: bad value {raw}"))?,
            };
        }
        let rules: Self = serde_json::from_value(json).map_err(|e| e.to_string())?;
        rules.validate()?;
        Ok(rules)
    }

    /// Refuses parameters no deployment can run with, naming the variable to fix.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_REWARD_CHUNK_SIZE).contains(&self.reward_chunk_size) {
            return Err(format!(
                "CLANWAR_RULE_REWARD_CHUNK_SIZE: {} is out of range: grants per reward chunk \
                 must be 1 to {MAX_REWARD_CHUNK_SIZE}",
                self.reward_chunk_size
            ));
        }
        if self.max_allies_per_side > MAX_ALLIES_PER_SIDE {
            return Err(format!(
                "CLANWAR_RULE_MAX_ALLIES_PER_SIDE: {} is out of range: at most \
                 {MAX_ALLIES_PER_SIDE} allies a side",
                self.max_allies_per_side
            ));
        }
        Ok(())
    }
}

/// Most allies a side may have. With 1,000 players a clan ([`crate::clan::MAX_ROSTER`]) a war
/// has at most 8,000 players, and its reward plan, rewritten whole by a rescore's correction,
/// still fits one store transaction (the DynamoDB adapter's chunks, `reward_plan.rs`).
pub const MAX_ALLIES_PER_SIDE: usize = 3;

/// Most grants per reward-saga chunk, and the default. A chunk's grants are recorded in one
/// transaction of the plan and travel whole in one Step Functions state and one economy (SQS)
/// message, both limited to 256 KB: 100 grants of at most ~400 bytes each (ids are at most 64
/// characters) stay far below that. The default is the largest: a war of 5,000 rewarded players
/// is 50 chunks (each three Lambda tasks and one economy call), not 200 at 25.
pub const MAX_REWARD_CHUNK_SIZE: usize = 100;

/// The rules that govern one war once it is declared (issue 14, item 3): phase lengths and
/// bounds, score weights, the anti-farming window, caps, Elo, the shard count and the reward
/// parameters. Snapshotted onto the war at declaration ([`Ruleset`]), so changing the
/// deployment's parameters affects new wars only. Declaration-time rules (clan size, cooldowns,
/// rate limits...) and rules of other aggregates (alliances, territories) are not part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarRules {
    pub declared_s: u64,
    pub preparation_s: u64,
    pub active_s: u64,
    pub ending_s: u64,
    pub phase_bounds: Bounds,
    pub kill_base_points: i64,
    pub assist_points: i64,
    pub capture_base_points: i64,
    pub hold_points_per_tier_hour: i64,
    pub battle_win_bonus: i64,
    pub refarm_window_s: i64,
    pub elo_k: f64,
    pub score_shards: u32,
    pub max_concurrent_battles: usize,
    pub max_battle_players: u32,
    pub battle_max_duration_s: i64,
    pub max_allies_per_side: usize,
    pub base_reward: u64,
    pub min_participation_points: i64,
    pub max_player_reward: u64,
    pub reward_kind: String,
}

/// A [`WarRules`] with its version: `rs-` and the stable hash of the rules' canonical JSON, so
/// two deployments with the same parameters name the same ruleset and any change names a new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ruleset {
    pub version: String,
    pub rules: WarRules,
}

impl WarRules {
    /// The version of these rules (see [`Ruleset`]).
    pub fn version(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("war rules serialise");
        format!("rs-{:016x}", crate::hash::stable_hash(&canonical))
    }

    pub fn into_ruleset(self) -> Ruleset {
        Ruleset {
            version: self.version(),
            rules: self,
        }
    }

    /// `live` with this war's rules in place of the deployment's: everything a decision about
    /// this war reads comes from the war's snapshot, the rest from the deployment.
    pub fn apply_to(&self, live: &Rules) -> Rules {
        let w = self.clone();
        Rules {
            declared_s: w.declared_s,
            preparation_s: w.preparation_s,
            active_s: w.active_s,
            ending_s: w.ending_s,
            phase_bounds: w.phase_bounds,
            kill_base_points: w.kill_base_points,
            assist_points: w.assist_points,
            capture_base_points: w.capture_base_points,
            hold_points_per_tier_hour: w.hold_points_per_tier_hour,
            battle_win_bonus: w.battle_win_bonus,
            refarm_window_s: w.refarm_window_s,
            elo_k: w.elo_k,
            score_shards: w.score_shards,
            max_concurrent_battles: w.max_concurrent_battles,
            max_battle_players: w.max_battle_players,
            battle_max_duration_s: w.battle_max_duration_s,
            max_allies_per_side: w.max_allies_per_side,
            base_reward: w.base_reward,
            min_participation_points: w.min_participation_points,
            max_player_reward: w.max_player_reward,
            reward_kind: w.reward_kind,
            ..live.clone()
        }
    }
}

impl Rules {
    /// The part of these rules a war is governed by, to snapshot at declaration.
    pub fn war_rules(&self) -> WarRules {
        let r = self.clone();
        WarRules {
            declared_s: r.declared_s,
            preparation_s: r.preparation_s,
            active_s: r.active_s,
            ending_s: r.ending_s,
            phase_bounds: r.phase_bounds,
            kill_base_points: r.kill_base_points,
            assist_points: r.assist_points,
            capture_base_points: r.capture_base_points,
            hold_points_per_tier_hour: r.hold_points_per_tier_hour,
            battle_win_bonus: r.battle_win_bonus,
            refarm_window_s: r.refarm_window_s,
            elo_k: r.elo_k,
            score_shards: r.score_shards,
            max_concurrent_battles: r.max_concurrent_battles,
            max_battle_players: r.max_battle_players,
            battle_max_duration_s: r.battle_max_duration_s,
            max_allies_per_side: r.max_allies_per_side,
            base_reward: r.base_reward,
            min_participation_points: r.min_participation_points,
            max_player_reward: r.max_player_reward,
            reward_kind: r.reward_kind,
        }
    }

    /// The live ruleset of this deployment (`GET /rulesets/current`).
    pub fn current_ruleset(&self) -> Ruleset {
        self.war_rules().into_ruleset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let r = Rules::default();
        assert_eq!(
            (r.min_clan_size, r.max_concurrent_wars, r.max_rating_gap),
            (10, 3, 500)
        );
        assert_eq!(r.pair_cooldown(), Duration::hours(72));
        assert_eq!(r.peace_shield(), Duration::hours(24));
        assert_eq!(
            (r.max_target_territories, r.max_declarations_per_day),
            (5, 5)
        );
        assert_eq!(
            (
                r.max_concurrent_battles,
                r.battle_win_bonus,
                r.max_events_per_batch
            ),
            (20, 50, 500)
        );
        assert_eq!(r.refarm_window(), Duration::minutes(5));
        assert_eq!((r.max_alliance_size, r.max_allies_per_side), (4, 2));
        assert_eq!(r.invitation_ttl(), Duration::hours(48));
    }

    #[test]
    fn a_reward_chunk_size_out_of_range_is_refused_by_name() {
        for bad in ["0", "101"] {
            let err = Rules::default()
                .with_overrides([("CLANWAR_RULE_REWARD_CHUNK_SIZE", bad)])
                .unwrap_err();
            assert!(
                err.starts_with("CLANWAR_RULE_REWARD_CHUNK_SIZE: ") && err.contains("1 to 100"),
                "{err}"
            );
        }
        for good in ["1", "100"] {
            let r = Rules::default()
                .with_overrides([("CLANWAR_RULE_REWARD_CHUNK_SIZE", good)])
                .unwrap();
            assert_eq!(r.reward_chunk_size.to_string(), good);
        }
        assert_eq!(Rules::default().validate(), Ok(()));
    }

    #[test]
    fn more_allies_a_side_than_a_reward_plan_can_hold_are_refused_by_name() {
        let err = Rules::default()
            .with_overrides([("CLANWAR_RULE_MAX_ALLIES_PER_SIDE", "4")])
            .unwrap_err();
        assert!(
            err.starts_with("CLANWAR_RULE_MAX_ALLIES_PER_SIDE: "),
            "{err}"
        );
        let r = Rules::default()
            .with_overrides([("CLANWAR_RULE_MAX_ALLIES_PER_SIDE", "3")])
            .unwrap();
        assert_eq!(r.max_allies_per_side, MAX_ALLIES_PER_SIDE);
    }

    #[test]
    fn overrides_parse_typed_values_and_reject_bad_ones() {
        let r = Rules::default()
            .with_overrides([
                ("CLANWAR_RULE_MIN_CLAN_SIZE", "3"),
                ("CLANWAR_RULE_PHASE_MIN_S", "1"),
                ("CLANWAR_RULE_REWARD_KIND", "gems"),
                ("PATH", "/bin"),
            ])
            .unwrap();
        assert_eq!(r.min_clan_size, 3);
        assert_eq!(r.phase_bounds.min_s, 1);
        assert_eq!(r.reward_kind, "gems");
        assert!(Rules::default()
            .with_overrides([("CLANWAR_RULE_MIN_CLAN_SIZE", "many")])
            .is_err());
        assert!(Rules::default()
            .with_overrides([("CLANWAR_RULE_NO_SUCH", "1")])
            .is_err());
    }

    #[test]
    fn a_war_ruleset_round_trips_through_the_live_rules_and_its_version_is_stable() {
        let live = Rules::default();
        let ruleset = live.current_ruleset();
        assert_eq!(ruleset.version, live.current_ruleset().version);
        assert!(ruleset.version.starts_with("rs-") && ruleset.version.len() == 19);
        assert_eq!(ruleset.rules.apply_to(&live), live);
        // Any governing parameter names a new version; a declaration-only one does not.
        let changed = Rules {
            kill_base_points: 12,
            ..Rules::default()
        };
        assert_ne!(changed.current_ruleset().version, ruleset.version);
        let declaration_only = Rules {
            min_clan_size: 3,
            ..Rules::default()
        };
        assert_eq!(declaration_only.current_ruleset().version, ruleset.version);
        // Applying a war's snapshot to changed live rules restores the war's weights only.
        let applied = ruleset.rules.apply_to(&Rules {
            kill_base_points: 12,
            min_clan_size: 3,
            ..Rules::default()
        });
        assert_eq!((applied.kill_base_points, applied.min_clan_size), (10, 3));
    }
}
