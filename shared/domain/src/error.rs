//! The error model of SPEC §10: every business failure has a stable code, a message, details
//! and a class (what kind of refusal it is). The HTTP status of each class is the edge's
//! business (`clanwar_edge::status`, one table); the domain knows no transport.

use crate::ids::{AllianceId, BattleId, ClanId, IdError, PlayerId, TerritoryId, WarId};
use crate::port_error::{StoreError, WorkflowError};
use crate::status::{RewardStatus, WarStatus};
use serde_json::{json, Value};

/// The kinds of refusal of SPEC §10. Each has one HTTP status, decided at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request itself is malformed (bad JSON, ids, numbers, fields).
    Malformed,
    /// The actor lacks the role the operation needs.
    Forbidden,
    /// Something the request names does not exist.
    NotFound,
    /// The current state refuses it (a state machine, a concurrent change, a duplicate).
    Conflict,
    /// A business rule refuses it.
    RuleViolated,
    /// A quota or limit refuses it (for now).
    LimitReached,
    /// A dependency failed: retrying later may succeed.
    Unavailable,
}

/// Every way a domain operation can be refused or fail.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    // ---- 400: malformed input -------------------------------------------------------------
    #[error("invalid request: {message}")]
    InvalidRequest { field: String, message: String },
    #[error("invalid id in `{field}`: {source}")]
    InvalidId {
        field: String,
        #[source]
        source: IdError,
    },
    #[error("missing x-actor-id header")]
    MissingActor,
    #[error("phase duration `{phase}` = {seconds}s is outside {min}..={max}s")]
    PhaseDurationOutOfRange {
        phase: &'static str,
        seconds: u64,
        min: u64,
        max: u64,
    },

    // ---- 403: role --------------------------------------------------------------------------
    #[error("player {actor} must be {required} of clan {clan_id}")]
    Forbidden {
        actor: PlayerId,
        clan_id: ClanId,
        required: &'static str,
    },
    /// A WebSocket subscription to a war or clan the connection's player may not see.
    #[error("player {player_id} may not see {topic}")]
    TopicForbidden { player_id: String, topic: String },

    // ---- 404: unknown ---------------------------------------------------------------------
    #[error("clan {0} not found")]
    ClanNotFound(ClanId),
    #[error("war {0} not found")]
    WarNotFound(WarId),
    #[error("territory {0} not found")]
    TerritoryNotFound(TerritoryId),
    #[error("battle {0} not found")]
    BattleNotFound(BattleId),
    #[error("alliance {0} not found")]
    AllianceNotFound(AllianceId),
    #[error("no pending invitation of clan {clan_id} to alliance {alliance_id}")]
    InvitationNotFound {
        alliance_id: AllianceId,
        clan_id: ClanId,
    },
    #[error("player {player_id} has no points in war {war_id}")]
    PlayerNotFound { war_id: WarId, player_id: PlayerId },
    #[error("war {0} has no reward plan yet")]
    RewardsNotFound(WarId),
    #[error("no ledger entry of war {war_id} matches {selector}")]
    LedgerEntriesNotFound { war_id: WarId, selector: String },

    // ---- 409: conflict / state --------------------------------------------------------------
    #[error("the record changed concurrently; retry")]
    ConcurrentModification,
    #[error("war {0} has ended: its final tally is sealed and takes no more points")]
    ScoringClosed(WarId),
    #[error("war {war_id} is {actual:?}; this needs {expected}")]
    InvalidWarState {
        war_id: WarId,
        actual: WarStatus,
        expected: &'static str,
    },
    #[error("war {war_id} cannot move to {target:?} before {deadline}")]
    PhaseDeadlineNotReached {
        war_id: WarId,
        target: WarStatus,
        deadline: chrono::DateTime<chrono::Utc>,
    },
    #[error("a war between these clans is already in progress ({0})")]
    WarAlreadyExists(WarId),
    #[error("territory {territory_id} is already contested by war {war_id}")]
    TerritoryAlreadyContested {
        territory_id: TerritoryId,
        war_id: WarId,
    },
    #[error("clan {clan_id} already takes part in war {war_id}")]
    AlreadyInWar { clan_id: ClanId, war_id: WarId },
    #[error("clan {0} already owns this territory")]
    AlreadyOwner(ClanId),
    #[error("territory {0} is contested by an active war and cannot be fortified or reassigned")]
    TerritoryUnderAttack(TerritoryId),
    #[error("battle {battle_id} is {state}; it must be open")]
    BattleNotOpen {
        battle_id: BattleId,
        state: &'static str,
    },
    #[error("clan {0} is already in an alliance")]
    AlreadyInAlliance(ClanId),
    #[error("clan {clan_id} is already invited to alliance {alliance_id}")]
    AlreadyInvited {
        alliance_id: AllianceId,
        clan_id: ClanId,
    },
    #[error("war {war_id} cannot be rescored: {reason}")]
    RescoreUnavailable { war_id: WarId, reason: String },
    #[error("rewards of war {war_id} are {actual:?}; this needs {expected}")]
    InvalidRewardState {
        war_id: WarId,
        actual: RewardStatus,
        expected: &'static str,
    },

    // ---- 422: rule violated ------------------------------------------------------------------
    #[error("a clan cannot declare war on itself")]
    SameClan,
    #[error("clan {0} is not active")]
    ClanInactive(ClanId),
    #[error("clan {clan_id} has {members} members; at least {min} are needed")]
    ClanTooSmall {
        clan_id: ClanId,
        members: usize,
        min: usize,
    },
    #[error("clans {0} and {1} fought recently; the pair cooldown lasts until {2}")]
    PairCooldownActive(ClanId, ClanId, chrono::DateTime<chrono::Utc>),
    #[error("clan {0} is under a peace shield until {1}")]
    PeaceShieldActive(ClanId, chrono::DateTime<chrono::Utc>),
    #[error("rating gap {gap} exceeds {max} and the defender is weaker")]
    RatingGapTooLarge { gap: i64, max: i64 },
    #[error("between 1 and {max} distinct target territories are required, got {given}")]
    InvalidTargetTerritories { given: usize, max: usize },
    #[error("territory {territory_id} is not owned by the defender {defender}")]
    TerritoryNotOwnedByDefender {
        territory_id: TerritoryId,
        defender: ClanId,
    },
    #[error("clans {0} and {1} are in the same alliance")]
    CannotDeclareOnAlly(ClanId, ClanId),
    #[error("Idempotency-Key was already used for a different declaration")]
    IdempotencyKeyReused,
    #[error("clan {clan_id} is not allied with the {side} side of war {war_id}")]
    NotAllied {
        clan_id: ClanId,
        war_id: WarId,
        side: &'static str,
    },
    #[error("side {side} already has {max} allies")]
    AllyLimitReached { side: &'static str, max: usize },
    #[error("clan {clan_id} is not a participant of war {war_id}")]
    NotAParticipant { clan_id: ClanId, war_id: WarId },
    #[error("territory {territory_id} is not contested by war {war_id}")]
    TerritoryNotInWar {
        territory_id: TerritoryId,
        war_id: WarId,
    },
    #[error("clan {clan_id} does not own territory {territory_id}")]
    NotTerritoryOwner {
        territory_id: TerritoryId,
        clan_id: ClanId,
    },
    #[error("territory {0} is already at the maximum defense level")]
    MaxDefenseLevel(TerritoryId),
    #[error("alliance {alliance_id} is full ({max} clans)")]
    AllianceFull { alliance_id: AllianceId, max: usize },
    #[error("invitation of clan {clan_id} to alliance {alliance_id} has expired")]
    InvitationExpired {
        alliance_id: AllianceId,
        clan_id: ClanId,
    },
    #[error("clan {clan_id} is at war with alliance member {member}")]
    AtWarWithMember { clan_id: ClanId, member: ClanId },
    #[error("clan {clan_id} is not a member of alliance {alliance_id}")]
    NotAllianceMember {
        alliance_id: AllianceId,
        clan_id: ClanId,
    },
    #[error("the founder clan cannot leave its alliance; dissolve it instead")]
    FounderCannotLeave,

    // ---- 429: limits ----------------------------------------------------------------------
    #[error("clan {clan_id} is already in {max} wars")]
    ConcurrentWarLimit { clan_id: ClanId, max: usize },
    #[error(
        "clan {clan_id} declared {max} wars in the last 24 hours; it may declare again at {until}"
    )]
    DeclarationRateLimited {
        clan_id: ClanId,
        max: usize,
        until: chrono::DateTime<chrono::Utc>,
    },
    #[error("war {war_id} already has {max} open battles")]
    BattleLimitReached { war_id: WarId, max: usize },

    // ---- 503: retry -----------------------------------------------------------------------
    #[error("a dependency is unavailable; retry")]
    Unavailable(#[source] StoreError),
    #[error("the workflow service is unavailable; retry")]
    WorkflowUnavailable(#[source] WorkflowError),
}

impl DomainError {
    /// The stable, machine-readable code of SPEC §10.
    pub fn code(&self) -> &'static str {
        use DomainError::*;
        match self {
            InvalidRequest { .. } => "INVALID_REQUEST",
            InvalidId { .. } => "INVALID_ID",
            MissingActor => "MISSING_ACTOR",
            PhaseDurationOutOfRange { .. } => "PHASE_DURATION_OUT_OF_RANGE",
            Forbidden { .. } => "FORBIDDEN_ROLE",
            TopicForbidden { .. } => "FORBIDDEN_TOPIC",
            ClanNotFound(_) => "CLAN_NOT_FOUND",
            WarNotFound(_) => "WAR_NOT_FOUND",
            TerritoryNotFound(_) => "TERRITORY_NOT_FOUND",
            BattleNotFound(_) => "BATTLE_NOT_FOUND",
            AllianceNotFound(_) => "ALLIANCE_NOT_FOUND",
            InvitationNotFound { .. } => "INVITATION_NOT_FOUND",
            PlayerNotFound { .. } => "PLAYER_NOT_FOUND",
            RewardsNotFound(_) => "REWARDS_NOT_FOUND",
            LedgerEntriesNotFound { .. } => "LEDGER_ENTRIES_NOT_FOUND",
            RescoreUnavailable { .. } => "RESCORE_UNAVAILABLE",
            ConcurrentModification => "CONCURRENT_MODIFICATION",
            ScoringClosed(_) => "SCORING_CLOSED",
            InvalidWarState { .. } => "INVALID_WAR_STATE",
            PhaseDeadlineNotReached { .. } => "PHASE_DEADLINE_NOT_REACHED",
            WarAlreadyExists(_) => "WAR_ALREADY_EXISTS",
            TerritoryAlreadyContested { .. } => "TERRITORY_ALREADY_CONTESTED",
            AlreadyInWar { .. } => "ALREADY_IN_WAR",
            AlreadyOwner(_) => "ALREADY_OWNER",
            TerritoryUnderAttack(_) => "TERRITORY_UNDER_ATTACK",
            BattleNotOpen { .. } => "BATTLE_NOT_OPEN",
            AlreadyInAlliance(_) => "ALREADY_IN_ALLIANCE",
            AlreadyInvited { .. } => "ALREADY_INVITED",
            InvalidRewardState { .. } => "INVALID_REWARD_STATE",
            SameClan => "SAME_CLAN",
            ClanInactive(_) => "CLAN_INACTIVE",
            ClanTooSmall { .. } => "CLAN_TOO_SMALL",
            PairCooldownActive(..) => "PAIR_COOLDOWN_ACTIVE",
            PeaceShieldActive(..) => "PEACE_SHIELD_ACTIVE",
            RatingGapTooLarge { .. } => "RATING_GAP_TOO_LARGE",
            InvalidTargetTerritories { .. } => "INVALID_TARGET_TERRITORIES",
            TerritoryNotOwnedByDefender { .. } => "TERRITORY_NOT_OWNED_BY_DEFENDER",
            CannotDeclareOnAlly(..) => "CANNOT_DECLARE_ON_ALLY",
            IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            NotAllied { .. } => "NOT_ALLIED",
            AllyLimitReached { .. } => "ALLY_LIMIT_REACHED",
            NotAParticipant { .. } => "NOT_A_PARTICIPANT",
            TerritoryNotInWar { .. } => "TERRITORY_NOT_IN_WAR",
            NotTerritoryOwner { .. } => "NOT_TERRITORY_OWNER",
            MaxDefenseLevel(_) => "MAX_DEFENSE_LEVEL",
            AllianceFull { .. } => "ALLIANCE_FULL",
            InvitationExpired { .. } => "INVITATION_EXPIRED",
            AtWarWithMember { .. } => "AT_WAR_WITH_MEMBER",
            NotAllianceMember { .. } => "NOT_ALLIANCE_MEMBER",
            FounderCannotLeave => "FOUNDER_CANNOT_LEAVE",
            ConcurrentWarLimit { .. } => "CONCURRENT_WAR_LIMIT",
            DeclarationRateLimited { .. } => "DECLARATION_RATE_LIMITED",
            BattleLimitReached { .. } => "BATTLE_LIMIT_REACHED",
            Unavailable(_) => "SERVICE_UNAVAILABLE",
            WorkflowUnavailable(_) => "WORKFLOW_UNAVAILABLE",
        }
    }

    /// The SPEC §10 class of this error: what kind of refusal it is.
    pub fn class(&self) -> ErrorClass {
        use DomainError::*;
        match self {
            InvalidRequest { .. }
            | InvalidId { .. }
            | MissingActor
            | PhaseDurationOutOfRange { .. } => ErrorClass::Malformed,
            Forbidden { .. } | TopicForbidden { .. } => ErrorClass::Forbidden,
            ClanNotFound(_)
            | WarNotFound(_)
            | TerritoryNotFound(_)
            | BattleNotFound(_)
            | AllianceNotFound(_)
            | InvitationNotFound { .. }
            | PlayerNotFound { .. }
            | RewardsNotFound(_)
            | LedgerEntriesNotFound { .. } => ErrorClass::NotFound,
            ConcurrentModification
            | ScoringClosed(_)
            | InvalidWarState { .. }
            | PhaseDeadlineNotReached { .. }
            | WarAlreadyExists(_)
            | TerritoryAlreadyContested { .. }
            | AlreadyInWar { .. }
            | AlreadyOwner(_)
            | TerritoryUnderAttack(_)
            | BattleNotOpen { .. }
            | AlreadyInAlliance(_)
            | AlreadyInvited { .. }
            | RescoreUnavailable { .. }
            | InvalidRewardState { .. } => ErrorClass::Conflict,
            SameClan
            | ClanInactive(_)
            | ClanTooSmall { .. }
            | PairCooldownActive(..)
            | PeaceShieldActive(..)
            | RatingGapTooLarge { .. }
            | InvalidTargetTerritories { .. }
            | TerritoryNotOwnedByDefender { .. }
            | CannotDeclareOnAlly(..)
            | IdempotencyKeyReused
            | NotAllied { .. }
            | AllyLimitReached { .. }
            | NotAParticipant { .. }
            | TerritoryNotInWar { .. }
            | NotTerritoryOwner { .. }
            | MaxDefenseLevel(_)
            | AllianceFull { .. }
            | InvitationExpired { .. }
            | AtWarWithMember { .. }
            | NotAllianceMember { .. }
            | FounderCannotLeave => ErrorClass::RuleViolated,
            ConcurrentWarLimit { .. }
            | DeclarationRateLimited { .. }
            | BattleLimitReached { .. } => ErrorClass::LimitReached,
            Unavailable(_) | WorkflowUnavailable(_) => ErrorClass::Unavailable,
        }
    }

    /// Structured details for the error body; empty object when there is nothing to add.
    pub fn details(&self) -> Value {
        use DomainError::*;
        match self {
            InvalidRequest { field, .. } | InvalidId { field, .. } => json!({ "field": field }),
            PhaseDurationOutOfRange {
                phase,
                seconds,
                min,
                max,
            } => {
                json!({ "phase": phase, "seconds": seconds, "min": min, "max": max })
            }
            PairCooldownActive(_, _, until) | PeaceShieldActive(_, until) => {
                json!({ "until": until })
            }
            DeclarationRateLimited { max, until, .. } => json!({ "max": max, "until": until }),
            PhaseDeadlineNotReached { deadline, .. } => json!({ "deadline": deadline }),
            WarAlreadyExists(war_id) => json!({ "war_id": war_id }),
            TopicForbidden { topic, .. } => json!({ "topic": topic }),
            RatingGapTooLarge { gap, max } => json!({ "gap": gap, "max": max }),
            ClanTooSmall { members, min, .. } => json!({ "members": members, "min": min }),
            _ => json!({}),
        }
    }

    /// The instant this refusal clears by itself (pair cooldown, peace shield, declaration rate
    /// limit), if time alone clears it.
    pub fn clears_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        use DomainError::*;
        match self {
            PairCooldownActive(_, _, until)
            | PeaceShieldActive(_, until)
            | DeclarationRateLimited { until, .. } => Some(*until),
            _ => None,
        }
    }

    /// The SPEC §10 JSON body: `{ "error": { "code", "message", "details" } }`.
    pub fn to_body(&self) -> Value {
        json!({ "error": { "code": self.code(), "message": self.to_string(), "details": self.details() } })
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { .. } => DomainError::ConcurrentModification,
            StoreError::Sealed(war_id) => DomainError::ScoringClosed(war_id),
            StoreError::BadCursor => {
                DomainError::invalid("cursor", "not a cursor returned by this API")
            }
            other => DomainError::Unavailable(other),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;

/// The one rule for every display name (clans, alliances, territories, regions): not blank, at
/// most `max` characters, no control characters (NUL, escape sequences, ...) — 400 naming
/// `field` otherwise.
pub fn validate_label(field: &str, value: &str, max: usize) -> DomainResult<()> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_follows_spec_shape() {
        let clan = ClanId::new("a").unwrap();
        let err = DomainError::PairCooldownActive(clan.clone(), clan, chrono::Utc::now());
        let body = err.to_body();
        assert_eq!(body["error"]["code"], "PAIR_COOLDOWN_ACTIVE");
        assert_eq!(err.class(), ErrorClass::RuleViolated);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cooldown"));
        assert!(body["error"]["details"]["until"].is_string());
    }

    #[test]
    fn errors_fall_into_the_spec_classes() {
        let clan = ClanId::new("a").unwrap();
        assert_eq!(
            DomainError::invalid("x", "bad").class(),
            ErrorClass::Malformed
        );
        assert_eq!(
            DomainError::ClanNotFound(clan.clone()).class(),
            ErrorClass::NotFound
        );
        assert_eq!(
            DomainError::ConcurrentModification.class(),
            ErrorClass::Conflict
        );
        assert_eq!(DomainError::SameClan.class(), ErrorClass::RuleViolated);
        assert_eq!(
            DomainError::DeclarationRateLimited {
                clan_id: clan,
                max: 5,
                until: chrono::Utc::now(),
            }
            .class(),
            ErrorClass::LimitReached
        );
    }
}
