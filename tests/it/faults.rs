//! Faults injected into the functions' AWS calls (`clanwar_aws::faults`, armed per test through
//! `CLANWAR_FAULTS`): throttling and conflicts are retried and never reach the caller; a
//! process that dies right after its commit, or loses the commit's answer, leaves no war
//! without its workflow.

use clanwar_integration_tests::wait::{until, SLACK};
use clanwar_integration_tests::{
    deadline, declaration, register_clan, register_territory, unique_tag, Api, ArmedFaults,
};
use serde_json::{json, Value};

struct Pair {
    api: Api,
    att: String,
    def: String,
    lands: Vec<String>,
}

impl Pair {
    async fn new(test: &str) -> Self {
        let api = Api::local();
        let t = unique_tag(test);
        let (att, def) = (format!("{t}-att"), format!("{t}-def"));
        register_clan(&api, &att, 1000).await;
        register_clan(&api, &def, 1000).await;
        let lands = vec![format!("{t}-land")];
        register_territory(&api, &lands[0], &def, 0.0).await;
        Self {
            api,
            att,
            def,
            lands,
        }
    }

    async fn declare(&self) -> (u16, Value) {
        let body = declaration(&self.att, &self.def, &self.lands, 30, 2);
        let leader = format!("{}-leader", self.att);
        self.api.post("/wars", Some(&leader), body).await
    }

    /// The attacker's wars, as the API lists them.
    async fn wars(&self) -> Vec<Value> {
        let (status, body) = self.api.get(&format!("/clans/{}/wars", self.att)).await;
        assert_eq!(status, 200, "{body}");
        body["wars"].as_array().cloned().unwrap_or_default()
    }

    /// The one war the declaration left, run on to ACTIVE by its timers.
    async fn only_war_runs_on_its_timers(&self) -> Value {
        let wars = self.wars().await;
        assert_eq!(wars.len(), 1, "exactly one war for the pair: {wars:?}");
        let id = wars[0]["war_id"].as_str().expect("a war id").to_owned();
        let (_, war) = self.api.get(&format!("/wars/{id}")).await;
        let due = until(deadline(&war, "active_at")) + SLACK;
        let active = self.api.wait_for_status(&id, "ACTIVE", due).await;
        let (status, land) = self
            .api
            .get(&format!("/territories/{}", self.lands[0]))
            .await;
        assert_eq!(status, 200);
        assert_eq!(land["contested_by"], json!(id), "{land}");
        active
    }
}

#[tokio::test]
async fn throttling_and_transaction_conflicts_are_retried_and_never_reach_the_caller() {
    let pair = Pair::new("fault-retry").await;
    let faults = ArmedFaults::arm(
        &unique_tag("fault-retry"),
        json!([
            {"function": "war-manager", "operation": "BatchGetItem", "fault": "throttle",
             "times": 2, "body_contains": pair.att},
            {"function": "war-manager", "operation": "TransactWriteItems",
             "fault": "transaction_conflict", "times": 1, "body_contains": pair.att},
        ]),
    );
    let (status, war) = pair.declare().await;
    assert_eq!(status, 201, "{war}");
    assert_eq!(
        (faults.fired(0), faults.fired(1)),
        (2, 1),
        "both faults were injected"
    );
    let active = pair.only_war_runs_on_its_timers().await;
    assert_eq!(active["war_id"], war["war_id"]);
}

#[tokio::test]
async fn a_declaring_process_that_dies_right_after_its_commit_leaves_a_war_that_still_runs() {
    let pair = Pair::new("fault-crash").await;
    let faults = ArmedFaults::arm(
        &unique_tag("fault-crash"),
        json!([{"function": "war-manager", "operation": "TransactWriteItems",
                "fault": "crash_after_write", "times": 1, "body_contains": pair.att}]),
    );
    let (status, body) = pair.declare().await;
    assert_eq!(faults.fired(0), 1, "the process was killed");
    assert!(status >= 500, "the caller saw the crash: {status} {body}");
    // Nobody started the saga; the committed `WarDeclared` does.
    pair.only_war_runs_on_its_timers().await;
}

#[tokio::test]
async fn a_declaration_whose_commit_answer_was_lost_leaves_one_war_that_still_runs() {
    let pair = Pair::new("fault-lost").await;
    let faults = ArmedFaults::arm(
        &unique_tag("fault-lost"),
        json!([{"function": "war-manager", "operation": "TransactWriteItems",
                "fault": "timeout_after_write", "times": 1, "body_contains": pair.att}]),
    );
    // The SDK resends the transaction with its client request token, which DynamoDB (and the
    // moto stack's shim, tools/localaws/ddb_transactions.py) answers as the success it was.
    let (status, body) = pair.declare().await;
    assert_eq!(faults.fired(0), 1, "the answer was lost");
    assert_eq!(status, 201, "{body}");
    let war = pair.only_war_runs_on_its_timers().await;
    assert_eq!(war["war_id"], body["war_id"]);
}
