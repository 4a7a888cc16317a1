//! Declaring a war (SPEC §3): the request, and the twelve validation rules as one pure function.
//! Each failed rule has its own error code. The store re-checks the race-prone ones (pair lock,
//! clan versions, territory versions) at commit time, so a concurrent declaration cannot slip by.

use crate::clan::{require_role, Clan, Role};
use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::ids::{ClanId, PlayerId, TerritoryId, WarId};
use crate::territory::Territory;
use crate::war::PhaseDurations;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// `POST /wars` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclareRequest {
    pub attacker_clan_id: ClanId,
    pub defender_clan_id: ClanId,
    pub territory_ids: Vec<TerritoryId>,
    #[serde(default)]
    pub phase_durations: Option<PhaseDurations>,
}

/// A declaration with its caller.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclareCommand {
    pub request: DeclareRequest,
    pub actor: PlayerId,
    /// Rule 12: a retried declaration with the same key returns the same war.
    pub idempotency_key: Option<String>,
}

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// An `Idempotency-Key` header: 1 to 128 visible ASCII characters.
pub fn validate_idempotency_key(key: &str) -> DomainResult<()> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(DomainError::invalid(
            "Idempotency-Key",
            "must be 1 to 128 visible ASCII characters",
        ));
    }
    Ok(())
}

impl DeclareCommand {
    /// Checks the shape of the request (400s) before anything is read.
    pub fn validate_shape(&self, rules: &Rules) -> DomainResult<PhaseDurations> {
        if let Some(key) = &self.idempotency_key {
            validate_idempotency_key(key)?;
        }
        let durations = self
            .request
            .phase_durations
            .unwrap_or_else(|| PhaseDurations::from_rules(rules));
        durations.validate(rules)?;
        Ok(durations)
    }

    /// A stable fingerprint of the request, to refuse an `Idempotency-Key` reused for another one.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_string(&self.request).expect("request serialises");
        // Stable across Rust releases, and enough to tell requests of one clan under one key apart.
        format!("{:016x}", crate::hash::stable_hash(canonical.as_bytes()))
    }
}

/// What the rules look at, loaded by the service.
#[derive(Debug)]
pub struct DeclarationContext<'a> {
    pub attacker: &'a Clan,
    pub defender: &'a Clan,
    pub pair: Option<&'a PairLock>,
    /// The target territories, in request order (the service reports missing ones as 404).
    pub territories: &'a [Territory],
    pub now: DateTime<Utc>,
    pub rules: &'a Rules,
}

/// Rule 1 (first half), checked before loading anything.
pub fn check_distinct_clans(request: &DeclareRequest) -> DomainResult<()> {
    if request.attacker_clan_id == request.defender_clan_id {
        return Err(DomainError::SameClan);
    }
    Ok(())
}

/// Rule 9 (shape): 1..=max distinct target territories.
pub fn check_target_count(request: &DeclareRequest, rules: &Rules) -> DomainResult<()> {
    let distinct: BTreeSet<&TerritoryId> = request.territory_ids.iter().collect();
    let given = request.territory_ids.len();
    if given == 0 || given > rules.max_target_territories || distinct.len() != given {
        return Err(DomainError::InvalidTargetTerritories {
            given,
            max: rules.max_target_territories,
        });
    }
    Ok(())
}

/// The rules the request alone decides (rule 1's same clan, rule 9's target count), checked
/// before anything is read: a real declaration stops at the first, a dry run reports them all.
pub fn request_violations(request: &DeclareRequest, rules: &Rules) -> Vec<DomainError> {
    [
        check_distinct_clans(request),
        check_target_count(request, rules),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// Rules 1–11 of SPEC §3 against loaded state: the first rule that fails, in the SPEC's order
/// (the real declaration). The same evaluation as [`violations`], which a dry run reports whole.
pub fn validate(cmd: &DeclareCommand, ctx: &DeclarationContext<'_>) -> DomainResult<()> {
    match violations(cmd, ctx).into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

/// Rules 1–11 of SPEC §3 against loaded state (the target count aside): every rule that fails,
/// in the SPEC's order
/// (the first one is what a real declaration answers). Each carries its code and, where time
/// clears it (pair cooldown, peace shield, rate limit), the instant it clears
/// ([`DomainError::clears_at`]).
pub fn violations(cmd: &DeclareCommand, ctx: &DeclarationContext<'_>) -> Vec<DomainError> {
    let DeclarationContext {
        attacker,
        defender,
        rules,
        now,
        ..
    } = ctx;
    let mut failed = Vec::new();
    // 1. both clans active
    for clan in [attacker, defender] {
        if !clan.active {
            failed.push(DomainError::ClanInactive(clan.clan_id.clone()));
        }
    }
    // 2. actor is leader or officer of the attacker
    if let Err(err) = require_role(attacker, &cmd.actor, Role::Officer) {
        failed.push(err);
    }
    // 3. minimum size
    for clan in [attacker, defender] {
        let members = clan.member_count();
        if members < rules.min_clan_size {
            failed.push(DomainError::ClanTooSmall {
                clan_id: clan.clan_id.clone(),
                members,
                min: rules.min_clan_size,
            });
        }
    }
    // 4. no running war between the pair, either direction
    if let Some(war_id) = ctx.pair.and_then(|p| p.active_war_id.as_ref()) {
        failed.push(DomainError::WarAlreadyExists(war_id.clone()));
    }
    // 5. concurrent war limit (joined wars as an ally included)
    for clan in [attacker, defender] {
        if clan.active_war_ids.len() >= rules.max_concurrent_wars {
            failed.push(DomainError::ConcurrentWarLimit {
                clan_id: clan.clan_id.clone(),
                max: rules.max_concurrent_wars,
            });
        }
    }
    // 6. pair cooldown
    if let Some(ended) = ctx.pair.and_then(|p| p.last_ended_at) {
        let until = ended + rules.pair_cooldown();
        if *now < until {
            failed.push(DomainError::PairCooldownActive(
                attacker.clan_id.clone(),
                defender.clan_id.clone(),
                until,
            ));
        }
    }
    // 7. peace shield of the defender
    if let Some(ended) = defender.last_war_ended_at {
        let until = ended + rules.peace_shield();
        if *now < until {
            failed.push(DomainError::PeaceShieldActive(
                defender.clan_id.clone(),
                until,
            ));
        }
    }
    // 8. matchmaking fairness: a big gap is allowed only upwards (defender stronger)
    let gap = i64::from(attacker.rating) - i64::from(defender.rating);
    if gap > rules.max_rating_gap {
        failed.push(DomainError::RatingGapTooLarge {
            gap,
            max: rules.max_rating_gap,
        });
    }
    // 9. targets (their count is a request rule, see `request_violations`): owned by the
    // defender, not contested by another war
    for territory in ctx.territories {
        if territory.owner_clan_id.as_ref() != Some(&defender.clan_id) {
            failed.push(DomainError::TerritoryNotOwnedByDefender {
                territory_id: territory.territory_id.clone(),
                defender: defender.clan_id.clone(),
            });
        }
        if let Some(war_id) = &territory.contested_by {
            failed.push(DomainError::TerritoryAlreadyContested {
                territory_id: territory.territory_id.clone(),
                war_id: war_id.clone(),
            });
        }
    }
    // 10. not on a member of one's own alliance
    if attacker.alliance_id.is_some() && attacker.alliance_id == defender.alliance_id {
        failed.push(DomainError::CannotDeclareOnAlly(
            attacker.clan_id.clone(),
            defender.clan_id.clone(),
        ));
    }
    // 11. declarations per attacker per 24 h; it clears when enough of them leave the window
    let window = Duration::hours(24);
    let mut recent: Vec<DateTime<Utc>> = attacker
        .recent_declarations
        .iter()
        .copied()
        .filter(|at| *at > *now - window)
        .collect();
    if recent.len() >= rules.max_declarations_per_day {
        recent.sort();
        let until = recent
            .get(recent.len() - rules.max_declarations_per_day)
            .map_or(*now, |oldest_counted| *oldest_counted + window);
        failed.push(DomainError::DeclarationRateLimited {
            clan_id: attacker.clan_id.clone(),
            max: rules.max_declarations_per_day,
            until,
        });
    }
    failed
}

/// The number of the SPEC §3 rule a declaration error breaks (1–12), if it is one of them.
pub fn rule_of(err: &DomainError) -> Option<u8> {
    use DomainError::*;
    Some(match err {
        SameClan | ClanInactive(_) | ClanNotFound(_) => 1,
        Forbidden { .. } => 2,
        ClanTooSmall { .. } => 3,
        WarAlreadyExists(_) => 4,
        ConcurrentWarLimit { .. } => 5,
        PairCooldownActive(..) => 6,
        PeaceShieldActive(..) => 7,
        RatingGapTooLarge { .. } => 8,
        InvalidTargetTerritories { .. }
        | TerritoryNotFound(_)
        | TerritoryNotOwnedByDefender { .. }
        | TerritoryAlreadyContested { .. } => 9,
        CannotDeclareOnAlly(..) => 10,
        DeclarationRateLimited { .. } => 11,
        IdempotencyKeyReused => 12,
        _ => return None,
    })
}

/// The war history of one pair of clans (rules 4 and 6 of SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairLock {
    pub first: ClanId,
    pub second: ClanId,
    /// The pair's war that is not yet ENDED/CANCELLED, if any.
    pub active_war_id: Option<WarId>,
    pub last_ended_at: Option<DateTime<Utc>>,
    pub version: u64,
}

impl PairLock {
    pub fn new(a: &ClanId, b: &ClanId) -> Self {
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        Self {
            first: first.clone(),
            second: second.clone(),
            active_war_id: None,
            last_ended_at: None,
            version: 0,
        }
    }
}

/// A remembered declaration for rule 12.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub clan_id: ClanId,
    pub key: String,
    /// Fingerprint of the request body: the same key with another body is refused.
    pub request_hash: String,
    pub war_id: WarId,
    pub expires_at: DateTime<Utc>,
    pub version: u64,
}

#[cfg(test)]
mod tests;
