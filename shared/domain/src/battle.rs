//! Battles (SPEC §5): PvP zone instances inside an ACTIVE war. Pure rules for creating,
//! reading and resolving one; `services::battles` loads, checks and commits.

use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::ids::{BattleId, TerritoryId, WarId};
use crate::spatial::validate_coordinate;
use crate::territory::Position;
use crate::war::{Side, War};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Fewest players a PvP instance makes sense with.
pub const MIN_BATTLE_PLAYERS: u32 = 2;

/// Stored battle state. IN_PROGRESS and EXPIRED are also derived on read (see `Battle::state_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BattleStatus {
    Open,
    InProgress,
    Resolved,
    Expired,
}

impl BattleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BattleStatus::Open => "OPEN",
            BattleStatus::InProgress => "IN_PROGRESS",
            BattleStatus::Resolved => "RESOLVED",
            BattleStatus::Expired => "EXPIRED",
        }
    }
}

/// The body of `POST /wars/{war_id}/battles`: a territory of the war or a free position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BattleInput {
    #[serde(default)]
    pub territory_id: Option<TerritoryId>,
    #[serde(default)]
    pub position: Option<Position>,
    pub max_players: u32,
}

impl BattleInput {
    /// Shape checks (400): exactly one place, a sane player cap, a finite position.
    pub fn validate(&self, rules: &Rules) -> DomainResult<()> {
        if !(MIN_BATTLE_PLAYERS..=rules.max_battle_players).contains(&self.max_players) {
            return Err(DomainError::invalid(
                "max_players",
                format!(
                    "must be between {MIN_BATTLE_PLAYERS} and {}",
                    rules.max_battle_players
                ),
            ));
        }
        match (&self.territory_id, &self.position) {
            (Some(_), None) => Ok(()),
            (None, Some(p)) => {
                validate_coordinate("position.x", p.x)?;
                validate_coordinate("position.y", p.y)
            }
            _ => Err(DomainError::invalid(
                "territory_id",
                "give exactly one of territory_id and position",
            )),
        }
    }
}

/// The body of `POST /wars/{war_id}/battles/{battle_id}/resolve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveInput {
    pub winner_side: Side,
    /// When the battle ended in the game; a result reported late, during ENDING, counts if
    /// this lies inside ACTIVE (SPEC §2). Defaults to the time of the request.
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// A battle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Battle {
    pub battle_id: BattleId,
    pub war_id: WarId,
    pub territory_id: Option<TerritoryId>,
    pub position: Option<Position>,
    pub max_players: u32,
    pub status: BattleStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub winner_side: Option<Side>,
    pub version: u64,
}

impl Battle {
    /// A new OPEN battle in an ACTIVE war that still has room for one more live battle.
    pub fn create(
        war: &War,
        battle_id: BattleId,
        input: BattleInput,
        now: DateTime<Utc>,
        rules: &Rules,
    ) -> DomainResult<Battle> {
        input.validate(rules)?;
        war.require_active()?;
        if let Some(territory_id) = &input.territory_id {
            if !war.territory_ids.contains(territory_id) {
                return Err(DomainError::TerritoryNotInWar {
                    territory_id: territory_id.clone(),
                    war_id: war.war_id.clone(),
                });
            }
        }
        if war.live_battles(now) >= rules.max_concurrent_battles {
            return Err(DomainError::BattleLimitReached {
                war_id: war.war_id.clone(),
                max: rules.max_concurrent_battles,
            });
        }
        Ok(Battle {
            battle_id,
            war_id: war.war_id.clone(),
            territory_id: input.territory_id,
            position: input.position,
            max_players: input.max_players,
            status: BattleStatus::Open,
            created_at: now,
            expires_at: now + rules.battle_max_duration(),
            resolved_at: None,
            winner_side: None,
            version: 0,
        })
    }

    /// The state as seen at `now`: RESOLVED sticks; otherwise EXPIRED past `expires_at`,
    /// IN_PROGRESS once a kill was recorded, else OPEN.
    pub fn state_at(&self, now: DateTime<Utc>, kills: SideKills) -> BattleStatus {
        match self.status {
            BattleStatus::Resolved | BattleStatus::Expired => self.status,
            _ if now >= self.expires_at => BattleStatus::Expired,
            _ if kills.attacker + kills.defender > 0 => BattleStatus::InProgress,
            _ => self.status,
        }
    }

    /// Records the winner of an OPEN or IN_PROGRESS battle that has not expired.
    pub fn resolve(&mut self, winner: Side, now: DateTime<Utc>) -> DomainResult<()> {
        // Kills do not matter here: only RESOLVED and EXPIRED refuse a result.
        let state = self.state_at(now, SideKills::default());
        if matches!(state, BattleStatus::Resolved | BattleStatus::Expired) {
            return Err(DomainError::BattleNotOpen {
                battle_id: self.battle_id.clone(),
                state: state.as_str(),
            });
        }
        self.status = BattleStatus::Resolved;
        self.resolved_at = Some(now);
        self.winner_side = Some(winner);
        Ok(())
    }
}

/// Kills per side in a battle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideKills {
    pub attacker: i64,
    pub defender: i64,
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn on_territory(id: &str) -> BattleInput {
        BattleInput {
            territory_id: Some(TerritoryId::new(id).unwrap()),
            position: None,
            max_players: 40,
        }
    }

    pub fn at_position(x: f64, y: f64) -> BattleInput {
        BattleInput {
            territory_id: None,
            position: Some(Position { x, y }),
            max_players: 40,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::scoring::fixtures::active_war;
    use crate::war::{OpenBattle, WarStatus};
    use chrono::Duration;
    use serde_json::json;

    fn rules() -> Rules {
        Rules::default()
    }

    fn id(n: usize) -> BattleId {
        BattleId::new(format!("b{n}")).unwrap()
    }

    fn now_in(war: &War) -> DateTime<Utc> {
        war.phase_deadlines.active_at + Duration::minutes(10)
    }

    fn code(result: DomainResult<Battle>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn a_battle_on_a_territory_of_the_war_opens_for_the_max_duration() {
        let war = active_war();
        let now = now_in(&war);
        let battle = Battle::create(&war, id(1), on_territory("t1"), now, &rules()).unwrap();
        assert_eq!(battle.status, BattleStatus::Open);
        assert_eq!(battle.expires_at, now + Duration::minutes(30));
        assert_eq!(battle.war_id, war.war_id);
        assert_eq!(battle.max_players, 40);
    }

    #[test]
    fn a_battle_at_a_free_position_opens_too() {
        let war = active_war();
        let battle =
            Battle::create(&war, id(1), at_position(10.0, -5.0), now_in(&war), &rules()).unwrap();
        assert_eq!(battle.position, Some(Position { x: 10.0, y: -5.0 }));
        assert_eq!(battle.territory_id, None);
    }

    #[test]
    fn exactly_one_of_territory_and_position_is_required() {
        let war = active_war();
        let now = now_in(&war);
        let mut both = on_territory("t1");
        both.position = Some(Position { x: 0.0, y: 0.0 });
        let mut neither = on_territory("t1");
        neither.territory_id = None;
        for input in [both, neither] {
            let err = Battle::create(&war, id(1), input, now, &rules()).unwrap_err();
            assert_eq!(
                (err.code(), err.class()),
                ("INVALID_REQUEST", crate::ErrorClass::Malformed)
            );
        }
    }

    #[test]
    fn a_position_must_be_finite_and_on_the_map() {
        let war = active_war();
        let err = Battle::create(
            &war,
            id(1),
            at_position(f64::NAN, 0.0),
            now_in(&war),
            &rules(),
        )
        .unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Malformed);
    }

    #[test]
    fn a_territory_outside_the_war_is_refused() {
        let war = active_war();
        let result = Battle::create(&war, id(1), on_territory("t9"), now_in(&war), &rules());
        assert_eq!(code(result), "TERRITORY_NOT_IN_WAR");
    }

    #[test]
    fn the_player_cap_must_be_between_two_and_the_configured_maximum() {
        let war = active_war();
        let now = now_in(&war);
        for (cap, ok) in [(1, false), (2, true), (200, true), (201, false)] {
            let mut input = on_territory("t1");
            input.max_players = cap;
            let result = Battle::create(&war, id(1), input, now, &rules());
            assert_eq!(result.is_ok(), ok, "cap {cap}");
            if let Err(err) = result {
                assert_eq!(err.details()["field"], "max_players");
            }
        }
    }

    #[test]
    fn battles_open_only_in_an_active_war() {
        let mut war = active_war();
        let now = now_in(&war);
        for status in [WarStatus::Preparation, WarStatus::Ending, WarStatus::Ended] {
            war.status = status;
            let result = Battle::create(&war, id(1), on_territory("t1"), now, &rules());
            assert_eq!(code(result), "INVALID_WAR_STATE");
        }
    }

    #[test]
    fn at_most_the_configured_number_of_live_battles_are_open() {
        let mut war = active_war();
        let now = now_in(&war);
        let rules = Rules {
            max_concurrent_battles: 2,
            ..Rules::default()
        };
        for n in 0..2 {
            war.open_battles.push(OpenBattle {
                battle_id: id(n),
                expires_at: now + Duration::minutes(1),
            });
        }
        let err = Battle::create(&war, id(9), on_territory("t1"), now, &rules).unwrap_err();
        assert_eq!(
            (err.code(), err.class()),
            ("BATTLE_LIMIT_REACHED", crate::ErrorClass::LimitReached)
        );
        // Expired battles no longer count.
        war.open_battles[0].expires_at = now;
        assert!(Battle::create(&war, id(9), on_territory("t1"), now, &rules).is_ok());
    }

    #[test]
    fn a_battle_is_in_progress_after_the_first_kill_and_expires_unresolved() {
        let war = active_war();
        let now = now_in(&war);
        let battle = Battle::create(&war, id(1), on_territory("t1"), now, &rules()).unwrap();
        let one_kill = SideKills {
            attacker: 0,
            defender: 1,
        };
        assert_eq!(
            battle.state_at(now, SideKills::default()),
            BattleStatus::Open
        );
        assert_eq!(battle.state_at(now, one_kill), BattleStatus::InProgress);
        assert_eq!(
            battle.state_at(battle.expires_at, one_kill),
            BattleStatus::Expired
        );
    }

    #[test]
    fn resolving_records_the_winner_and_sticks() {
        let war = active_war();
        let now = now_in(&war);
        let mut battle = Battle::create(&war, id(1), on_territory("t1"), now, &rules()).unwrap();
        battle.resolve(Side::Defender, now).unwrap();
        assert_eq!(battle.winner_side, Some(Side::Defender));
        assert_eq!(battle.resolved_at, Some(now));
        let later = battle.expires_at + Duration::hours(1);
        assert_eq!(
            battle.state_at(later, SideKills::default()),
            BattleStatus::Resolved
        );
        let err = battle.resolve(Side::Attacker, now).unwrap_err();
        assert_eq!(err.code(), "BATTLE_NOT_OPEN");
        assert!(err.to_string().contains("RESOLVED"));
    }

    #[test]
    fn an_expired_battle_cannot_be_resolved() {
        let war = active_war();
        let now = now_in(&war);
        let mut battle = Battle::create(&war, id(1), on_territory("t1"), now, &rules()).unwrap();
        let err = battle
            .resolve(Side::Attacker, battle.expires_at)
            .unwrap_err();
        assert_eq!(err.code(), "BATTLE_NOT_OPEN");
        assert!(err.to_string().contains("EXPIRED"));
        assert_eq!(battle.status, BattleStatus::Open);
    }

    #[test]
    fn battle_bodies_refuse_unknown_fields_and_sides() {
        let ok: BattleInput =
            serde_json::from_value(json!({"territory_id": "t1", "max_players": 10})).unwrap();
        assert_eq!(ok.position, None);
        assert!(serde_json::from_value::<BattleInput>(
            json!({"territory_id": "t1", "max_players": 10, "mode": "ctf"})
        )
        .is_err());
        assert!(serde_json::from_value::<BattleInput>(json!({"max_players": -1})).is_err());
        let resolve: ResolveInput =
            serde_json::from_value(json!({"winner_side": "attacker"})).unwrap();
        assert_eq!(resolve.winner_side, Side::Attacker);
        assert!(serde_json::from_value::<ResolveInput>(json!({"winner_side": "draw"})).is_err());
    }
}
