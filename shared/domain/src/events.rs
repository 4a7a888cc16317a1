//! Domain events of SPEC §9 and their envelope. Events are written to the outbox in the same
//! transaction as the state change they describe, then published to EventBridge.

use crate::ids::{AllianceId, BattleId, ClanId, EventId, TerritoryId, WarId};
use crate::territory::Position;
use crate::war::{OperatorAction, Outcome, PhaseDeadlines, Rescore, Side, WarStatus, WinnerSide};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// EventBridge `source` of every event this service publishes.
pub const EVENT_SOURCE: &str = "clanwar";
/// Bumped when a detail type changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// The envelope: `event_id, type, schema_version, occurred_at, war_id?, clan_ids, detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub event_id: EventId,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub war_id: Option<WarId>,
    pub clan_ids: Vec<ClanId>,
    /// Serialised as `"type"` + `"detail"` beside the other envelope fields.
    #[serde(flatten)]
    pub event: DomainEvent,
}

impl EventEnvelope {
    pub fn new(
        event_id: EventId,
        occurred_at: DateTime<Utc>,
        war_id: Option<WarId>,
        clan_ids: Vec<ClanId>,
        event: DomainEvent,
    ) -> Self {
        Self {
            event_id,
            schema_version: SCHEMA_VERSION,
            occurred_at,
            war_id,
            clan_ids,
            event,
        }
    }

    /// The `type` field (EventBridge `detail-type`).
    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }
}

/// Every event type, with its detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "detail")]
pub enum DomainEvent {
    WarDeclared {
        attacker_clan_id: ClanId,
        defender_clan_id: ClanId,
        territory_ids: Vec<TerritoryId>,
        phase_deadlines: PhaseDeadlines,
    },
    WarPhaseChanged {
        from: WarStatus,
        to: WarStatus,
        version: u64,
    },
    WarCancelled {
        outcome: Outcome,
    },
    WarEnded {
        winner_side: WinnerSide,
        outcome: Outcome,
        attacker_score: i64,
        defender_score: i64,
    },
    WarSurrendered {
        clan_id: ClanId,
        side: Side,
    },
    AllyJoined {
        clan_id: ClanId,
        side: Side,
    },
    TerritoryContested {
        territory_id: TerritoryId,
    },
    TerritoryCaptured {
        territory_id: TerritoryId,
        from_clan_id: Option<ClanId>,
        to_clan_id: ClanId,
        side: Side,
        points: i64,
    },
    TerritoryReleased {
        territory_id: TerritoryId,
        owner_clan_id: Option<ClanId>,
    },
    TerritoryFortified {
        territory_id: TerritoryId,
        defense_level: u8,
    },
    BattleCreated {
        battle_id: BattleId,
        territory_id: Option<TerritoryId>,
        position: Option<Position>,
        max_players: u32,
    },
    BattleResolved {
        battle_id: BattleId,
        winner_side: Side,
        bonus: i64,
    },
    ScoreSnapshot {
        attacker_score: i64,
        defender_score: i64,
    },
    RewardsDistributed {
        grants: usize,
        total_amount: u64,
    },
    RewardDistributionFailed {
        reason: String,
        revoked: usize,
    },
    AllianceInvited {
        alliance_id: AllianceId,
        clan_id: ClanId,
    },
    AllianceFormed {
        alliance_id: AllianceId,
        name: String,
        /// The clan that founded or joined it with this event.
        clan_id: ClanId,
        member_clan_ids: Vec<ClanId>,
    },
    AllianceLeft {
        alliance_id: AllianceId,
        clan_id: ClanId,
    },
    AllianceDissolved {
        alliance_id: AllianceId,
        member_clan_ids: Vec<ClanId>,
    },
    ClanRatingChanged {
        clan_id: ClanId,
        old_rating: i32,
        new_rating: i32,
    },
    /// An operator acted on a war through an admin route (the audit entry kept on the war).
    OperatorActed(OperatorAction),
    /// An operator voided ledger entries of an ended war and its result was recomputed (the
    /// rescoring audit entry kept on the war, with the result before and after).
    WarRescored(Box<Rescore>),
}

impl DomainEvent {
    pub fn event_type(&self) -> &'static str {
        use DomainEvent::*;
        match self {
            WarDeclared { .. } => "WarDeclared",
            WarPhaseChanged { .. } => "WarPhaseChanged",
            WarCancelled { .. } => "WarCancelled",
            WarEnded { .. } => "WarEnded",
            WarSurrendered { .. } => "WarSurrendered",
            AllyJoined { .. } => "AllyJoined",
            TerritoryContested { .. } => "TerritoryContested",
            TerritoryCaptured { .. } => "TerritoryCaptured",
            TerritoryReleased { .. } => "TerritoryReleased",
            TerritoryFortified { .. } => "TerritoryFortified",
            BattleCreated { .. } => "BattleCreated",
            BattleResolved { .. } => "BattleResolved",
            ScoreSnapshot { .. } => "ScoreSnapshot",
            RewardsDistributed { .. } => "RewardsDistributed",
            RewardDistributionFailed { .. } => "RewardDistributionFailed",
            AllianceInvited { .. } => "AllianceInvited",
            AllianceFormed { .. } => "AllianceFormed",
            AllianceLeft { .. } => "AllianceLeft",
            AllianceDissolved { .. } => "AllianceDissolved",
            ClanRatingChanged { .. } => "ClanRatingChanged",
            OperatorActed(_) => "OperatorActed",
            WarRescored(_) => "WarRescored",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_serialises_with_type_and_detail_beside_the_envelope_fields() {
        let env = EventEnvelope::new(
            EventId::new("e1").unwrap(),
            "2026-01-01T00:00:00Z".parse().unwrap(),
            Some(WarId::new("w1").unwrap()),
            vec![ClanId::new("a").unwrap()],
            DomainEvent::AllyJoined {
                clan_id: ClanId::new("a").unwrap(),
                side: Side::Defender,
            },
        );
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["type"], "AllyJoined");
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["war_id"], "w1");
        assert_eq!(json["detail"]["side"], "defender");
        assert_eq!(json["occurred_at"], "2026-01-01T00:00:00Z");
        let back: EventEnvelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.event_type(), "AllyJoined");
    }

    #[test]
    fn every_spec_event_type_has_a_variant() {
        let spec = "WarDeclared, WarPhaseChanged, WarCancelled, WarEnded, WarSurrendered, AllyJoined, \
            TerritoryContested, TerritoryCaptured, TerritoryReleased, BattleCreated, BattleResolved, \
            ScoreSnapshot, RewardsDistributed, RewardDistributionFailed, AllianceInvited, \
            AllianceFormed, AllianceLeft, ClanRatingChanged, \
            OperatorActed, WarRescored"; // the last two: live operations (issue 14)
        for name in spec.split(',').map(str::trim) {
            // An adjacently tagged enum names its variant in "type": a missing one fails here.
            let probe = serde_json::json!({ "type": name, "detail": {} });
            let err = serde_json::from_value::<DomainEvent>(probe)
                .err()
                .map(|e| e.to_string());
            let unknown = err
                .as_deref()
                .is_some_and(|e| e.contains("unknown variant"));
            assert!(!unknown, "{name} is not an event type");
        }
    }
}
