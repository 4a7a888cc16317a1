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
            reward_chunk_size: 25,
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
        serde_json::from_value(json).map_err(|e| e.to_string())
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
}
