//! The economy's answer to one request of the reward saga: pay (or take back) every grant of a
//! chunk through the ledger, then report to Step Functions with the request's task token.
//!
//! Failure injection (tests, demo): a `ECONCFG#<war_id>` item with `fail_on_grant: N` makes the
//! N-th distinct grant of that war — and every later grant of a key not yet paid — fail with
//! `ECONOMY_REFUSED`, like an economy outage that retries cannot get past. Other wars are not
//! affected, so tests need no special function configuration.

use crate::ledger::{Ledger, LedgerError, Line, Paid};
use aws_sdk_sfn::Client as SfnClient;
use serde::{Deserialize, Serialize};

/// The error name the state machine retries and then compensates on.
pub const REFUSED: &str = "ECONOMY_REFUSED";

/// A message of the economy grants queue (built by the reward-distribution state machine).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Request {
    pub task_token: String,
    pub action: Action,
    pub war_id: String,
    pub chunk: u64,
    pub grants: Vec<GrantLine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Grant,
    Revoke,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GrantLine {
    pub player_id: String,
    pub kind: String,
    pub amount: u64,
    pub idempotency_key: String,
}

/// The task output the state machine receives on success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Settled {
    pub action: Option<Action>,
    pub chunk: u64,
    /// Grants paid now / reversed now.
    pub applied: usize,
    /// Grants that had been paid (or revoked) before: nothing changed.
    pub unchanged: usize,
}

/// What to tell Step Functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Success(Settled),
    Failure { error: &'static str, cause: String },
}

/// Why a message could not be handled; SQS redelivers it (and dead-letters it in the end).
#[derive(Debug, thiserror::Error)]
pub enum EconomyError {
    #[error("malformed economy request")]
    Malformed(#[source] serde_json::Error),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("could not answer Step Functions")]
    Answer(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Applies one request to the ledger.
pub async fn settle(ledger: &dyn Ledger, request: &Request) -> Result<Answer, LedgerError> {
    let mut settled = Settled {
        action: Some(request.action),
        chunk: request.chunk,
        ..Settled::default()
    };
    let switch = match request.action {
        Action::Grant => ledger.switch(&request.war_id).await?,
        Action::Revoke => None,
    };
    let mut paid_so_far = switch.map_or(0, |s| s.paid);
    for grant in &request.grants {
        let line = Line {
            war_id: &request.war_id,
            key: &grant.idempotency_key,
            player_id: &grant.player_id,
            kind: &grant.kind,
            amount: grant.amount,
        };
        let applied = match request.action {
            Action::Grant => {
                if let Some(switch) = switch.filter(|s| s.fail_on_grant > 0) {
                    let refused = paid_so_far + 1 >= switch.fail_on_grant
                        && !ledger.knows(&grant.idempotency_key).await?;
                    if refused {
                        tracing::warn!(war_id = %request.war_id, key = %grant.idempotency_key, fail_on_grant = switch.fail_on_grant, "grant refused by the failure switch");
                        return Ok(Answer::Failure {
                            error: REFUSED,
                            cause: format!(
                                "grant {} refused: the economy of war {} fails from its grant #{}",
                                grant.idempotency_key, request.war_id, switch.fail_on_grant
                            ),
                        });
                    }
                }
                let paid = ledger.grant(&line).await? == Paid::Now;
                if paid && switch.is_some() {
                    ledger.count_paid(&request.war_id).await?;
                    paid_so_far += 1;
                }
                paid
            }
            Action::Revoke => ledger.revoke(&line).await?,
        };
        if applied {
            settled.applied += 1;
        } else {
            settled.unchanged += 1;
        }
    }
    tracing::info!(war_id = %request.war_id, chunk = request.chunk, action = ?request.action, applied = settled.applied, unchanged = settled.unchanged, "economy request settled");
    Ok(Answer::Success(settled))
}

/// The simulator: the ledger plus the Step Functions client that answers task tokens.
#[derive(Debug)]
pub struct Economy<L> {
    ledger: L,
    sfn: SfnClient,
}

impl<L: Ledger> Economy<L> {
    pub fn new(ledger: L, sfn: SfnClient) -> Self {
        Self { ledger, sfn }
    }

    /// Handles one queue message.
    pub async fn handle(&self, body: &str) -> Result<(), EconomyError> {
        let request: Request = serde_json::from_str(body).map_err(EconomyError::Malformed)?;
        let answer = settle(&self.ledger, &request).await?;
        self.answer(&request.task_token, answer).await
    }

    async fn answer(&self, token: &str, answer: Answer) -> Result<(), EconomyError> {
        let result = match answer {
            Answer::Success(settled) => self
                .sfn
                .send_task_success()
                .task_token(token)
                .output(serde_json::to_string(&settled).expect("settled serialises"))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let gone = e.as_service_error().is_some_and(|e| {
                        e.is_task_timed_out() || e.is_task_does_not_exist() || e.is_invalid_token()
                    });
                    (
                        gone,
                        Box::new(e) as Box<dyn std::error::Error + Send + Sync>,
                    )
                }),
            Answer::Failure { error, cause } => self
                .sfn
                .send_task_failure()
                .task_token(token)
                .error(error)
                .cause(cause)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let gone = e.as_service_error().is_some_and(|e| {
                        e.is_task_timed_out() || e.is_task_does_not_exist() || e.is_invalid_token()
                    });
                    (
                        gone,
                        Box::new(e) as Box<dyn std::error::Error + Send + Sync>,
                    )
                }),
        };
        match result {
            Ok(()) => Ok(()),
            // The task timed out or its execution ended: nobody waits for this answer any more,
            // and the ledger already holds the (idempotent) effect.
            Err((true, err)) => {
                tracing::warn!(error = %err, "task token no longer valid; answer dropped");
                Ok(())
            }
            Err((false, err)) => Err(EconomyError::Answer(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Switch;
    use async_trait::async_trait;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// `key → (status, amount)` plus switches.
    #[derive(Default)]
    struct MemoryLedger {
        entries: Mutex<BTreeMap<String, (&'static str, u64)>>,
        switches: Mutex<BTreeMap<String, Switch>>,
    }

    impl MemoryLedger {
        fn net(&self) -> u64 {
            let entries = self.entries.lock().unwrap();
            entries
                .values()
                .filter(|(status, _)| *status == "PAID")
                .map(|(_, amount)| amount)
                .sum()
        }
    }

    #[async_trait]
    impl Ledger for MemoryLedger {
        async fn switch(&self, war_id: &str) -> Result<Option<Switch>, LedgerError> {
            Ok(self.switches.lock().unwrap().get(war_id).copied())
        }
        async fn count_paid(&self, war_id: &str) -> Result<(), LedgerError> {
            self.switches
                .lock()
                .unwrap()
                .entry(war_id.to_owned())
                .or_default()
                .paid += 1;
            Ok(())
        }
        async fn knows(&self, key: &str) -> Result<bool, LedgerError> {
            Ok(self.entries.lock().unwrap().contains_key(key))
        }
        async fn grant(&self, line: &Line<'_>) -> Result<Paid, LedgerError> {
            let mut entries = self.entries.lock().unwrap();
            if entries.contains_key(line.key) {
                return Ok(Paid::Already);
            }
            entries.insert(line.key.to_owned(), ("PAID", line.amount));
            Ok(Paid::Now)
        }
        async fn revoke(&self, line: &Line<'_>) -> Result<bool, LedgerError> {
            let mut entries = self.entries.lock().unwrap();
            let old = entries.insert(line.key.to_owned(), ("REVOKED", line.amount));
            Ok(matches!(old, Some(("PAID", _))))
        }
    }

    fn request(action: Action, players: &[&str]) -> Request {
        Request {
            task_token: "token".into(),
            action,
            war_id: "w1".into(),
            chunk: 0,
            grants: players
                .iter()
                .map(|p| GrantLine {
                    player_id: (*p).into(),
                    kind: "gold".into(),
                    amount: 10,
                    idempotency_key: format!("w1#{p}#gold"),
                })
                .collect(),
        }
    }

    fn applied(answer: Answer) -> usize {
        match answer {
            Answer::Success(s) => s.applied,
            Answer::Failure { .. } => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn a_repeated_grant_pays_once_and_a_revoke_reverses_it() {
        let ledger = MemoryLedger::default();
        let grant = request(Action::Grant, &["a", "b"]);
        assert_eq!(applied(settle(&ledger, &grant).await.unwrap()), 2);
        assert_eq!(applied(settle(&ledger, &grant).await.unwrap()), 0);
        assert_eq!(ledger.net(), 20);
        let revoke = request(Action::Revoke, &["a", "b"]);
        assert_eq!(applied(settle(&ledger, &revoke).await.unwrap()), 2);
        assert_eq!(applied(settle(&ledger, &revoke).await.unwrap()), 0);
        assert_eq!(ledger.net(), 0);
        // A revoked key never pays again.
        assert_eq!(applied(settle(&ledger, &grant).await.unwrap()), 0);
        assert_eq!(ledger.net(), 0);
    }

    #[tokio::test]
    async fn the_failure_switch_refuses_the_nth_distinct_grant_and_every_new_one_after() {
        let ledger = MemoryLedger::default();
        ledger.switches.lock().unwrap().insert(
            "w1".into(),
            Switch {
                fail_on_grant: 3,
                paid: 0,
            },
        );
        let answer = settle(&ledger, &request(Action::Grant, &["a", "b", "c", "d"]))
            .await
            .unwrap();
        assert!(matches!(answer, Answer::Failure { error: REFUSED, .. }));
        assert_eq!(ledger.net(), 20, "a and b were paid before c was refused");
        // A retry is refused again, but the grants already paid stay acknowledged.
        let again = settle(&ledger, &request(Action::Grant, &["a", "b", "c"]))
            .await
            .unwrap();
        assert!(matches!(again, Answer::Failure { .. }));
        assert_eq!(
            applied(
                settle(&ledger, &request(Action::Grant, &["a", "b"]))
                    .await
                    .unwrap()
            ),
            0
        );
    }

    #[test]
    fn queue_messages_of_the_state_machine_deserialise() {
        let request: Request = serde_json::from_str(
            r#"{"task_token":"t","action":"revoke","war_id":"w1","chunk":3,
                "grants":[{"player_id":"p","kind":"gold","amount":5,"idempotency_key":"w1#p#gold"}]}"#,
        )
        .unwrap();
        assert_eq!(request.action, Action::Revoke);
        assert_eq!(request.grants[0].amount, 5);
    }
}
