//! Declaring a war (SPEC §3): the twelve rules, the write of a new war with everything it
//! takes (pair lock, clans' bookkeeping, contested territories, idempotency record) and the dry
//! run that reports every failing rule. Starting the declare-war saga, and compensating when it
//! cannot start, is [`super::wars::WarService::declare`].
//!
//! Takes only the ports it uses ([`DeclarationPorts`]): the store, the clock (retry back-off and
//! "now"), the id generator (war and event ids) and the deployment's rules.

use super::ServicePorts;
use crate::clan::Clan;
use crate::config::Rules;
use crate::declaration::{self, DeclarationContext, DeclareCommand};
use crate::error::{DomainError, DomainResult};
use crate::events::DomainEvent;
use crate::ids::WarId;
use crate::ports::{
    Clock, IdGenerator, IdempotencyRecord, PairLock, RecordKey, Store, Transaction,
};
use crate::territory::Territory;
use crate::war::War;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::sync::Arc;

ports! {
    /// The ports a declaration uses.
    pub struct DeclarationPorts {
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        rules: Arc<Rules>,
    }
}

/// A declaration's result: `replayed` when an `Idempotency-Key` returned an earlier war.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub war: War,
    pub replayed: bool,
}

/// What a declaration's rules read, in one round trip.
#[derive(Debug)]
struct DeclarationState {
    attacker: Option<Clan>,
    defender: Option<Clan>,
    pair: Option<PairLock>,
    /// In request order; `None` where the territory does not exist.
    territories: Vec<Option<Territory>>,
    idempotency: Option<IdempotencyRecord>,
}

/// The rules' verdict on a declaration.
#[derive(Debug)]
struct Judged {
    /// Rule 12: the key returns this earlier war.
    replays: Option<WarId>,
    /// Every failed rule, in the SPEC's order.
    violations: Vec<DomainError>,
}

/// The answer of a dry-run declaration: every rule that fails, nothing written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    /// True if the declaration would be accepted now.
    pub valid: bool,
    /// The `Idempotency-Key` names an earlier declaration of this request: declaring would
    /// return that war.
    pub replays_war_id: Option<WarId>,
    pub violations: Vec<Violation>,
}

/// One failed rule of a dry run: the error a declaration would answer, and when it clears.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// The SPEC §3 rule (1–12).
    pub rule: Option<u8>,
    pub code: &'static str,
    /// The class of the error the real declaration would answer (the edge adds its status).
    #[serde(skip)]
    pub class: crate::ErrorClass,
    pub message: String,
    pub details: serde_json::Value,
    /// When time alone clears it (pair cooldown, peace shield, rate limit); null otherwise.
    pub clears_at: Option<DateTime<Utc>>,
}

impl Violation {
    pub fn of(err: &DomainError) -> Self {
        Self {
            rule: declaration::rule_of(err),
            code: err.code(),
            class: err.class(),
            message: err.to_string(),
            details: err.details(),
            clears_at: err.clears_at(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeclarationService {
    ports: DeclarationPorts,
}

impl DeclarationService {
    pub fn new(ports: DeclarationPorts) -> Self {
        Self { ports }
    }

    /// Saga step 1+2: validate and write the war, the pair lock, the clans' bookkeeping, the
    /// contested territories and the outbox events in one transaction.
    pub async fn create(&self, cmd: DeclareCommand) -> DomainResult<Declared> {
        let rules = &self.ports.rules;
        let durations = cmd.validate_shape(rules)?;
        if let Some(first) = declaration::request_violations(&cmd.request, rules)
            .into_iter()
            .next()
        {
            return Err(first);
        }
        let fingerprint = cmd.fingerprint();
        let mut attempts = crate::retry::Attempts::new(&*self.ports.clock);
        loop {
            attempts.next().await?;
            let req = &cmd.request;
            let state = self.load_declaration(&cmd).await?;
            let now = self.now();
            let judged = self.judge(&cmd, &fingerprint, &state, now);
            if let Some(war_id) = judged.replays {
                let war = self.ports.war(&war_id).await?;
                return Ok(Declared {
                    war,
                    replayed: true,
                });
            }
            if let Some(first) = judged.violations.into_iter().next() {
                return Err(first);
            }
            let DeclarationState {
                attacker,
                defender,
                pair,
                territories,
                idempotency,
            } = state;
            let (Some(mut attacker), Some(mut defender)) = (attacker, defender) else {
                unreachable!("a missing clan is a violation");
            };
            let mut territories: Vec<Territory> = territories.into_iter().flatten().collect();

            let war_id = self.new_war_id();
            let mut war = War::declare(
                war_id.clone(),
                attacker.clan_id.clone(),
                defender.clan_id.clone(),
                req.territory_ids.clone(),
                durations,
                now,
            );
            war.score_shards = rules.score_shards;
            war.ruleset = Some(Box::new(rules.current_ruleset()));
            let clans = vec![attacker.clan_id.clone(), defender.clan_id.clone()];
            let mut tx = Transaction::new();
            tx.insert(&mut war);
            let mut pair =
                pair.unwrap_or_else(|| PairLock::new(&attacker.clan_id, &defender.clan_id));
            pair.active_war_id = Some(war_id.clone());
            tx.upsert(&mut pair);
            attacker.enter_war(&war_id);
            attacker
                .recent_declarations
                .retain(|at| *at > now - Duration::hours(24));
            attacker.recent_declarations.push(now);
            tx.update(&mut attacker);
            defender.enter_war(&war_id);
            tx.update(&mut defender);
            for territory in &mut territories {
                territory.contest(&war_id)?;
                tx.update(territory);
                tx.emit(self.ports.event(
                    Some(&war_id),
                    clans.clone(),
                    DomainEvent::TerritoryContested {
                        territory_id: territory.territory_id.clone(),
                    },
                ));
            }
            if let Some(key) = &cmd.idempotency_key {
                let mut record = IdempotencyRecord {
                    clan_id: attacker.clan_id.clone(),
                    key: key.clone(),
                    request_hash: fingerprint.clone(),
                    war_id: war_id.clone(),
                    expires_at: now + Duration::seconds(rules.idempotency_ttl_s),
                    version: idempotency.as_ref().map_or(0, |r| r.version),
                };
                tx.upsert(&mut record);
            }
            tx.emit(self.ports.event(
                Some(&war_id),
                clans,
                DomainEvent::WarDeclared {
                    attacker_clan_id: war.attacker_clan_id.clone(),
                    defender_clan_id: war.defender_clan_id.clone(),
                    territory_ids: war.territory_ids.clone(),
                    phase_deadlines: war.phase_deadlines,
                },
            ));
            match self.ports.commit(tx).await {
                Ok(()) => {
                    return Ok(Declared {
                        war,
                        replayed: false,
                    })
                }
                Err(DomainError::ConcurrentModification) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// A dry run of a declaration (`POST /wars?dry_run=true`): the same rule evaluation as
    /// [`Self::create`], with every failing rule reported instead of the first, and nothing
    /// written. Malformed requests are still refused with their 400.
    pub async fn dry_run(&self, cmd: DeclareCommand) -> DomainResult<DryRun> {
        let rules = &self.ports.rules;
        cmd.validate_shape(rules)?;
        let mut violations = declaration::request_violations(&cmd.request, rules);
        let state = self.load_declaration(&cmd).await?;
        let judged = self.judge(&cmd, &cmd.fingerprint(), &state, self.now());
        violations.extend(judged.violations);
        Ok(DryRun {
            valid: violations.is_empty(),
            replays_war_id: judged.replays,
            violations: violations.iter().map(Violation::of).collect(),
        })
    }

    /// Everything the twelve rules look at, in one read: both clans, the pair lock, every
    /// target territory and the idempotency record.
    async fn load_declaration(&self, cmd: &DeclareCommand) -> DomainResult<DeclarationState> {
        let req = &cmd.request;
        let mut keys = vec![
            RecordKey::Clan(req.attacker_clan_id.clone()),
            RecordKey::Clan(req.defender_clan_id.clone()),
            RecordKey::pair(&req.attacker_clan_id, &req.defender_clan_id),
        ];
        keys.extend(req.territory_ids.iter().cloned().map(RecordKey::Territory));
        if let Some(key) = &cmd.idempotency_key {
            keys.push(RecordKey::Idempotency(
                req.attacker_clan_id.clone(),
                key.clone(),
            ));
        }
        let mut fetched = self.ports.store.get_many(&keys).await?;
        Ok(DeclarationState {
            attacker: fetched.one()?,
            defender: fetched.one()?,
            pair: fetched.one()?,
            territories: fetched.many(req.territory_ids.len())?,
            idempotency: match &cmd.idempotency_key {
                Some(_) => fetched.one()?,
                None => None,
            },
        })
    }

    /// Rule 12, the records that must exist, and rules 1–11 against what was read: the one
    /// evaluation behind both a declaration (which answers the first violation) and a dry run
    /// (which answers them all).
    fn judge(
        &self,
        cmd: &DeclareCommand,
        fingerprint: &str,
        state: &DeclarationState,
        now: DateTime<Utc>,
    ) -> Judged {
        let req = &cmd.request;
        if let Some(record) = state.idempotency.as_ref().filter(|r| r.expires_at > now) {
            if record.request_hash != fingerprint {
                return Judged {
                    replays: None,
                    violations: vec![DomainError::IdempotencyKeyReused],
                };
            }
            return Judged {
                replays: Some(record.war_id.clone()),
                violations: Vec::new(),
            };
        }
        let mut violations = Vec::new();
        if state.attacker.is_none() {
            violations.push(DomainError::ClanNotFound(req.attacker_clan_id.clone()));
        }
        if state.defender.is_none() {
            violations.push(DomainError::ClanNotFound(req.defender_clan_id.clone()));
        }
        for (territory, id) in state.territories.iter().zip(&req.territory_ids) {
            if territory.is_none() {
                violations.push(DomainError::TerritoryNotFound(id.clone()));
            }
        }
        if let (Some(attacker), Some(defender)) = (&state.attacker, &state.defender) {
            let territories: Vec<Territory> = state.territories.iter().flatten().cloned().collect();
            violations.extend(declaration::violations(
                cmd,
                &DeclarationContext {
                    attacker,
                    defender,
                    pair: state.pair.as_ref(),
                    territories: &territories,
                    now,
                    rules: &self.ports.rules,
                },
            ));
        }
        Judged {
            replays: None,
            violations,
        }
    }

    fn new_war_id(&self) -> WarId {
        WarId::new(self.ports.ids.new_id()).expect("generated ids are valid")
    }

    fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }
}

#[cfg(test)]
mod tests;
