//! The HTTP status of every domain error (SPEC §10), in one table: the domain classifies its
//! errors ([`ErrorClass`]), the edge alone decides what each class answers on the wire.

use clanwar_domain::{DomainError, ErrorClass};

/// SPEC §10: "400 malformed, 403 role, 404 unknown, 409 conflict/state, 422 rule violated,
/// 429 limits, 503 retry".
pub const fn of_class(class: ErrorClass) -> u16 {
    match class {
        ErrorClass::Malformed => 400,
        ErrorClass::Forbidden => 403,
        ErrorClass::NotFound => 404,
        ErrorClass::Conflict => 409,
        ErrorClass::RuleViolated => 422,
        ErrorClass::LimitReached => 429,
        ErrorClass::Unavailable => 503,
    }
}

/// The HTTP status `err` answers with.
pub fn of(err: &DomainError) -> u16 {
    of_class(err.class())
}

/// [`of`] as a method, for call sites that read better so.
pub trait HttpStatus {
    fn http_status(&self) -> u16;
}

impl HttpStatus for DomainError {
    fn http_status(&self) -> u16 {
        of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clanwar_domain::ids::{ClanId, PlayerId, WarId};
    use clanwar_domain::ports::{StoreError, WorkflowError};

    #[test]
    fn statuses_follow_the_spec_classes() {
        let clan = ClanId::new("a").unwrap();
        let war = WarId::new("w").unwrap();
        let cases = [
            (DomainError::invalid("x", "bad"), 400),
            (DomainError::MissingActor, 400),
            (
                DomainError::Forbidden {
                    actor: PlayerId::new("p").unwrap(),
                    clan_id: clan.clone(),
                    required: "leader",
                },
                403,
            ),
            (DomainError::ClanNotFound(clan.clone()), 404),
            (DomainError::RewardsNotFound(war.clone()), 404),
            (DomainError::ConcurrentModification, 409),
            (DomainError::ScoringClosed(war.clone()), 409),
            (DomainError::SameClan, 422),
            (DomainError::FounderCannotLeave, 422),
            (DomainError::IdempotencyKeyReused, 422),
            (
                DomainError::DeclarationRateLimited {
                    clan_id: clan.clone(),
                    max: 5,
                    until: chrono::Utc::now(),
                },
                429,
            ),
            (
                DomainError::BattleLimitReached {
                    war_id: war,
                    max: 3,
                },
                429,
            ),
            (
                DomainError::Unavailable(StoreError::Contention { attempts: 5 }),
                503,
            ),
            (
                DomainError::WorkflowUnavailable(WorkflowError {
                    message: "down".into(),
                }),
                503,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(of(&err), status, "{}", err.code());
        }
    }
}
