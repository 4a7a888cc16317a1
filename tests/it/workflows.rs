//! The Step Functions workflows executing for real on the local stack: the declare-war saga, the
//! war lifecycle (phase timers on absolute deadlines) and the reward saga against the economy
//! simulator (SQS callback pattern).
//!
//! Wars are declared through `WarService` wired to the AWS adapters exactly as war-manager wires
//! it (a declaration starts the declare-war saga), so these tests do not depend on the HTTP API.
//! Each test has its own clans, territory and EventBridge rule (a unique tag), phases of
//! seconds (ACTIVE long enough for its work on a loaded machine), and waits on conditions with
//! deadlines tied to the war's own clock (`clanwar_integration_tests::wait`). Needs the stack up with
//! `LOCALAWS_PARAMS="PhaseMinSeconds=1 DeployEconomySimulator=true"`.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::ExecutionStatus;
use clanwar_aws::workflows::execution_arn;
use clanwar_aws::{
    DynamoDbStore, EventBridgePublisher, StateMachines, StepFunctionsWorkflows, TableConfig,
};
use clanwar_domain::clan::ClanSnapshot;
use clanwar_domain::config::{Bounds, Rules};
use clanwar_domain::declaration::{DeclareCommand, DeclareRequest};
use clanwar_domain::ids::{ClanId, PlayerId, TerritoryId, WarId};
use clanwar_domain::rewards::{GrantStatus, RewardPlan};
use clanwar_domain::scoring::BattleEvent;
use clanwar_domain::services::clans::ClanService;
use clanwar_domain::services::declaration::DeclarationService;
use clanwar_domain::services::lifecycle::LifecycleService;
use clanwar_domain::services::membership::MembershipService;
use clanwar_domain::services::rewards::RewardService;
use clanwar_domain::services::scores::ScoreService;
use clanwar_domain::services::territories::TerritoryService;
use clanwar_domain::services::wars::WarService;
use clanwar_domain::services::Deps;
use clanwar_domain::system::{SystemClock, UuidIds};
use clanwar_domain::territory::TerritoryInput;
use clanwar_domain::war::{Outcome, PhaseDurations, RewardStatus, War, WarStatus, WinnerSide};
use clanwar_integration_tests::wait::{until, wait_until, Seen, PATIENCE, SLACK};
use clanwar_integration_tests::{aws_config, unique_tag, ArmedFaults, Resources};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Players per clan: with both clans scoring, 130 grants make two chunks of the default 100.
const CLAN_SIZE: usize = 65;

/// A side's score after [`World::score`]: one 3-point assist per player.
const SIDE_SCORE: i64 = CLAN_SIZE as i64 * 3;

fn rules() -> Rules {
    Rules {
        phase_bounds: Bounds {
            min_s: 1,
            max_s: 604_800,
        },
        ..Rules::default()
    }
}

/// Phases of the wars that score during ACTIVE: a second each, and an ACTIVE long enough for a
/// 131-event ingest on a loaded machine.
const SCORED: [u64; 4] = [1, 1, 30, 1];

/// Source of the tap's marker events: matched by the tap's rule, by no rule of the stack.
const MARKER_SOURCE: &str = "clanwar.tests";

/// The domain events of one test's clans, copied to a queue of its own by an EventBridge rule.
struct EventTap {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    bus: String,
    rule: String,
    queue_url: String,
    clan: ClanId,
    /// Envelopes by event id (the outbox may deliver an event twice; consumers dedupe).
    seen: BTreeMap<String, Value>,
}

impl EventTap {
    async fn new(config: &aws_config::SdkConfig, bus: &str, tag: &str, clan: &ClanId) -> Self {
        let sqs = aws_sdk_sqs::Client::new(config);
        let events = aws_sdk_eventbridge::Client::new(config);
        let name = format!("{tag}-events");
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("create tap queue")
            .queue_url
            .expect("queue url");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("queue arn");
        events
            .put_rule()
            .name(&name)
            .event_bus_name(bus)
            .event_pattern(
                json!({"source": ["clanwar", MARKER_SOURCE], "detail": {"clan_ids": [clan]}})
                    .to_string(),
            )
            .send()
            .await
            .expect("put tap rule");
        events
            .put_targets()
            .rule(&name)
            .event_bus_name(bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("tap")
                    .arn(queue_arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("put tap target");
        Self {
            sqs,
            events,
            bus: bus.to_owned(),
            rule: name,
            queue_url,
            clan: clan.clone(),
            seen: BTreeMap::new(),
        }
    }

    async fn drain(&mut self) {
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive tapped events");
            if out.messages().is_empty() {
                return;
            }
            for message in out.messages() {
                let body: Value = serde_json::from_str(message.body().unwrap_or("{}")).unwrap();
                let envelope = body["detail"].clone();
                if let Some(id) = envelope["event_id"].as_str() {
                    self.seen.insert(id.to_owned(), envelope);
                }
                if let Some(handle) = message.receipt_handle() {
                    let _ = self
                        .sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
        }
    }

    /// Distinct events of `type` about `war`.
    fn of(&self, war: &WarId, event_type: &str) -> Vec<Value> {
        self.seen
            .values()
            .filter(|e| e["type"] == event_type && e["war_id"] == war.as_str())
            .cloned()
            .collect()
    }

    /// The types of every event seen so far (what a failed wait reports).
    fn types(&self) -> Vec<String> {
        let types = self.seen.values().filter_map(|e| e["type"].as_str());
        types.map(str::to_owned).collect()
    }

    /// Waits until at least `count` distinct events of `type` about `war` arrived.
    async fn wait_for(&mut self, war: &WarId, event_type: &str, count: usize) {
        let what = format!("{count} {event_type} event(s) for war {war}");
        // The probe borrows the tap anew on each look.
        let tap = tokio::sync::Mutex::new(self);
        wait_until(&what, PATIENCE, || async {
            let mut tap = tap.lock().await;
            tap.drain().await;
            let found = tap.of(war, event_type).len();
            if found >= count {
                Seen::Ready(())
            } else {
                Seen::NotYet(format!("{found}; all events: {:?}", tap.types()))
            }
        })
        .await;
    }

    /// Waits until everything the stack published so far has reached the tap: puts a marker
    /// on the bus and waits for it. The local bus delivers to its targets while it takes an
    /// event, so what was published before the marker is queued before it; what is absent
    /// afterwards was never published.
    async fn settle(&mut self, war: &WarId) {
        let marker = uuid::Uuid::new_v4().to_string();
        let detail = json!({"type": "TapMarker", "event_id": marker, "war_id": war,
                            "clan_ids": [self.clan]});
        let out = self
            .events
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(MARKER_SOURCE)
                    .detail_type("TapMarker")
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("put the tap marker");
        assert_eq!(out.failed_entry_count(), 0, "{out:?}");
        self.wait_for(war, "TapMarker", 1).await;
        // Everything queued before the marker is in `seen` once the queue reads empty.
        self.drain().await;
    }

    async fn remove(self) {
        let _ = self
            .events
            .remove_targets()
            .rule(&self.rule)
            .event_bus_name(&self.bus)
            .ids("tap")
            .send()
            .await;
        let _ = self
            .events
            .delete_rule()
            .name(&self.rule)
            .event_bus_name(&self.bus)
            .send()
            .await;
        let _ = self
            .sqs
            .delete_queue()
            .queue_url(&self.queue_url)
            .send()
            .await;
    }
}

/// One test's stack handles and fixtures: two clans of [`CLAN_SIZE`] players and one
/// defender territory.
struct World {
    deps: Deps,
    sfn: aws_sdk_sfn::Client,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    lifecycle_arn: String,
    declare_arn: String,
    rewards_arn: String,
    attacker: ClanId,
    defender: ClanId,
    territory: TerritoryId,
}

impl World {
    async fn new(test: &str) -> (Self, EventTap) {
        let resources = Resources::load();
        let config = aws_config().await;
        let tag = unique_tag(test);
        let table = resources.name("WarTable");
        let (lifecycle_arn, declare_arn, rewards_arn) = (
            resources.arn("WarLifecycleStateMachine"),
            resources.arn("DeclareWarStateMachine"),
            resources.arn("RewardDistributionStateMachine"),
        );
        let sfn = aws_sdk_sfn::Client::new(&config);
        let rules = rules();
        let store = Arc::new(DynamoDbStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            TableConfig {
                table: table.clone(),
            },
        ));
        // Wired as war-manager wires it (`clanwar_edge::deps_from_env`).
        let workflows = StepFunctionsWorkflows::new(
            sfn.clone(),
            StateMachines {
                declaration: Some(declare_arn.clone()),
                lifecycle: lifecycle_arn.clone(),
                rewards: rewards_arn.clone(),
            },
        );
        let deps = Deps {
            store: store.clone(),
            outbox: store.clone(),
            scores: store,
            events: Arc::new(EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::new(&config),
                resources.name("EventBus"),
            )),
            workflows: Arc::new(workflows),
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidIds),
            rules: Arc::new(rules),
        };
        let attacker = ClanId::new(format!("{tag}-att")).unwrap();
        let defender = ClanId::new(format!("{tag}-def")).unwrap();
        let territory = TerritoryId::new(format!("{tag}-t1")).unwrap();
        let world = Self {
            ddb: aws_sdk_dynamodb::Client::new(&config),
            deps,
            sfn,
            table,
            lifecycle_arn,
            declare_arn,
            rewards_arn,
            attacker: attacker.clone(),
            defender,
            territory,
        };
        world.seed().await;
        let tap = EventTap::new(&config, &resources.name("EventBus"), &tag, &attacker).await;
        (world, tap)
    }

    fn player(clan: &ClanId, role: &str) -> PlayerId {
        PlayerId::new(format!("{clan}-{role}")).unwrap()
    }

    fn players(clan: &ClanId) -> Vec<PlayerId> {
        let mut players = vec![Self::player(clan, "leader"), Self::player(clan, "officer")];
        players.extend((0..CLAN_SIZE - 2).map(|i| Self::player(clan, &format!("m{i:02}"))));
        players
    }

    async fn seed(&self) {
        let clans = ClanService::new((&self.deps).into());
        for clan in [&self.attacker, &self.defender] {
            let snapshot: ClanSnapshot = serde_json::from_value(json!({
                "name": format!("Clan {clan}"),
                "leader_id": Self::player(clan, "leader"),
                "officer_ids": [Self::player(clan, "officer")],
                "member_ids": Self::players(clan),
                "level": 10,
            }))
            .unwrap();
            clans
                .upsert(clan.clone(), snapshot)
                .await
                .expect("seed clan");
        }
        let input: TerritoryInput = serde_json::from_value(json!({
            "name": "Workflow Hill", "region": "tests", "x": 1000.0, "y": 2000.0,
            "tier": 1, "resource_yield": 10, "owner_clan_id": self.defender,
        }))
        .unwrap();
        TerritoryService::new((&self.deps).into())
            .upsert(self.territory.clone(), input)
            .await
            .expect("seed territory");
    }

    fn command(&self, durations: [u64; 4]) -> DeclareCommand {
        let [declared_s, preparation_s, active_s, ending_s] = durations;
        DeclareCommand {
            request: DeclareRequest {
                attacker_clan_id: self.attacker.clone(),
                defender_clan_id: self.defender.clone(),
                territory_ids: vec![self.territory.clone()],
                phase_durations: Some(PhaseDurations {
                    declared_s,
                    preparation_s,
                    active_s,
                    ending_s,
                }),
            },
            actor: Self::player(&self.attacker, "leader"),
            idempotency_key: None,
        }
    }

    fn wars(&self) -> WarService {
        WarService::new((&self.deps).into())
    }

    fn lifecycle(&self) -> LifecycleService {
        LifecycleService::new((&self.deps).into())
    }

    fn membership(&self) -> MembershipService {
        MembershipService::new((&self.deps).into())
    }

    fn declarations(&self) -> DeclarationService {
        DeclarationService::new((&self.deps).into())
    }

    /// Declares through the declare-war saga, as `POST /wars` does.
    async fn declare(&self, durations: [u64; 4]) -> War {
        self.wars()
            .declare(self.command(durations))
            .await
            .expect("declare")
            .war
    }

    async fn war(&self, war_id: &WarId) -> War {
        self.deps.war(war_id).await.expect("load war")
    }

    /// Waits until the war's timers moved it to `status`: by its deadline, plus [`SLACK`].
    async fn wait_for_status(&self, war: &War, status: WarStatus) -> War {
        let due = war
            .phase_deadlines
            .deadline_of(status)
            .expect("a timed status");
        let id = &war.war_id;
        wait_until(
            &format!("war {id} to be {status:?}"),
            until(due) + SLACK,
            || async {
                let war = self.war(id).await;
                if war.status == status {
                    Seen::Ready(war)
                } else {
                    Seen::NotYet(format!("{:?}, version {}", war.status, war.version))
                }
            },
        )
        .await
    }

    /// One assist (3 points) for every player of both clans plus one more for the leader of
    /// `ahead`, occurring now, in one batch: 131 events, which must land inside ACTIVE (a batch
    /// still running when the final tally reads the counters would be missing from the result);
    /// [`SCORED`] leaves ample time for that.
    async fn score(&self, war: &War, ahead: &ClanId) {
        let now = chrono::Utc::now();
        let assist = |player: &PlayerId, clan: &ClanId, n: usize| -> BattleEvent {
            serde_json::from_value(json!({
                "type": "assist", "event_id": format!("{player}-assist-{n}"),
                "occurred_at": now, "player_id": player, "clan_id": clan,
            }))
            .unwrap()
        };
        let mut events: Vec<BattleEvent> = [&self.attacker, &self.defender]
            .into_iter()
            .flat_map(|clan| Self::players(clan).into_iter().map(move |p| (p, clan)))
            .map(|(player, clan)| assist(&player, clan, 0))
            .collect();
        events.push(assist(&Self::player(ahead, "leader"), ahead, 1));
        let expected = events.len();
        let outcome = ScoreService::new((&self.deps).into())
            .ingest(&war.war_id, events)
            .await
            .expect("ingest");
        assert_eq!(outcome.accepted, expected, "{outcome:?}");
        assert!(
            chrono::Utc::now() < war.phase_deadlines.ending_at,
            "ingesting {expected} events outlasted ACTIVE: the emulator is overloaded \
             (a long-lived local stack slows down as its table grows: restart it)"
        );
    }

    /// Scores the war in ACTIVE, waits for its end and its rewards, and checks that it moved
    /// forward one phase at a time, ended once with the right winner and paid every grant
    /// exactly once, with one event per change.
    async fn plays_to_its_end_and_pays_once(&self, war: &War, tap: &mut EventTap) -> RewardPlan {
        let w = self;
        let id = war.war_id.clone();
        w.wait_for_status(war, WarStatus::Active).await;
        w.score(war, &w.attacker).await;

        let ended = w.wait_for_status(war, WarStatus::Ended).await;
        assert_eq!(ended.winner_side, Some(WinnerSide::Attacker));
        assert_eq!(ended.outcome, Some(Outcome::Score));
        assert_eq!(
            (ended.sides.attacker.score, ended.sides.defender.score),
            (SIDE_SCORE + 3, SIDE_SCORE)
        );
        let moves: Vec<(WarStatus, WarStatus)> =
            ended.transitions.iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(
            moves,
            vec![
                (WarStatus::Declared, WarStatus::Preparation),
                (WarStatus::Preparation, WarStatus::Active),
                (WarStatus::Active, WarStatus::Ending),
                (WarStatus::Ending, WarStatus::Ended),
            ]
        );
        let lifecycle = w.finished(&w.lifecycle_arn, id.as_str(), PATIENCE).await;
        assert_eq!(lifecycle.status, ExecutionStatus::Succeeded);
        // Every phase move and the final tally stayed within 4 sequential AWS round trips (the
        // phase-controller's own count, from its metrics).
        let tasks: Vec<Value> = Resources::load()
            .aws_call_metrics("PhaseControllerFunction")
            .into_iter()
            .filter(|m| m["WarId"] == id.as_str() && m["Operation"] == "task advance")
            .collect();
        assert!(
            tasks.len() >= 4,
            "three phase moves and the tally: {tasks:?}"
        );
        for task in &tasks {
            println!(
                "phase-controller task: {} AWS calls, {} round trips",
                task["AwsCalls"], task["AwsRoundTrips"]
            );
            assert!(task["AwsRoundTrips"].as_u64().unwrap() <= 4, "{task}");
        }

        let rewards = w.finished(&w.rewards_arn, id.as_str(), SLACK).await;
        assert_eq!(rewards.status, ExecutionStatus::Succeeded, "{rewards:?}");
        let plan = w.plan(&id).await.expect("reward plan");
        assert_eq!(plan.status, RewardStatus::Distributed);
        assert_eq!(plan.grants.len(), 2 * CLAN_SIZE, "two chunks of grants");
        assert!(plan.grants.iter().all(|g| g.status == GrantStatus::Granted));
        assert_eq!(
            w.war(&id).await.rewards_status,
            Some(RewardStatus::Distributed)
        );
        let mut paid = 0;
        for grant in &plan.grants {
            let key = grant.idempotency_key(&id);
            let (status, net, requests) = w
                .ledger(&key)
                .await
                .unwrap_or_else(|| panic!("{key} never reached the economy"));
            assert_eq!(
                (status.as_str(), net),
                ("PAID", grant.amount as i64),
                "{key}"
            );
            assert!(requests >= 1);
            paid += net;
        }
        assert_eq!(
            paid,
            plan.total_amount() as i64,
            "the ledger paid the plan once"
        );
        tap.wait_for(&id, "RewardsDistributed", 1).await;
        tap.settle(&id).await;
        for (event_type, count) in [
            ("WarDeclared", 1),
            ("WarPhaseChanged", 3),
            ("WarEnded", 1),
            ("RewardsDistributed", 1),
        ] {
            assert_eq!(tap.of(&id, event_type).len(), count, "{event_type}");
        }
        plan
    }

    async fn execution(&self, machine_arn: &str, name: &str) -> Option<DescribeExecutionOutput> {
        self.sfn
            .describe_execution()
            .execution_arn(execution_arn(machine_arn, name))
            .send()
            .await
            .ok()
    }

    /// Waits until the execution exists and is no longer RUNNING.
    async fn finished(
        &self,
        machine_arn: &str,
        name: &str,
        within: Duration,
    ) -> DescribeExecutionOutput {
        wait_until(&format!("execution {name} to finish"), within, || async {
            match self.execution(machine_arn, name).await {
                Some(e) if e.status != ExecutionStatus::Running => Seen::Ready(e),
                Some(e) => Seen::NotYet(format!("{:?}", e.status)),
                None => Seen::NotYet("no such execution yet".into()),
            }
        })
        .await
    }

    async fn plan(&self, war_id: &WarId) -> Option<RewardPlan> {
        RewardService::new((&self.deps).into())
            .get(war_id)
            .await
            .ok()
    }

    /// Turns the economy simulator's failure switch on for this war.
    async fn fail_economy_on_grant(&self, war_id: &WarId, n: u64) {
        self.ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("ECONCFG#{war_id}")))
            .item("sk", AttributeValue::S("ECONCFG".into()))
            .item("fail_on_grant", AttributeValue::N(n.to_string()))
            .item("paid", AttributeValue::N("0".into()))
            .send()
            .await
            .expect("write economy switch");
    }

    /// The simulator's ledger entry of one idempotency key: (status, net, grant requests).
    async fn ledger(&self, key: &str) -> Option<(String, i64, i64)> {
        let item = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("ECON#{key}")))
            .key("sk", AttributeValue::S("ECON".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("read ledger")
            .item?;
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let status = item
            .get("status")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        Some((status, number("net"), number("grant_requests")))
    }

    /// The execution's output JSON.
    fn output(execution: &DescribeExecutionOutput) -> Value {
        serde_json::from_str(execution.output().unwrap_or("{}")).unwrap_or(Value::Null)
    }
}

/// Grant requests the economy received per grant of the plan.
async fn ledger_requests(w: &World, plan: &RewardPlan, war: &WarId) -> Vec<i64> {
    let mut requests = Vec::new();
    for grant in &plan.grants {
        let entry = w.ledger(&grant.idempotency_key(war)).await;
        requests.push(entry.map_or(0, |(_, _, n)| n));
    }
    requests
}

#[tokio::test]
async fn a_declared_war_runs_its_phases_on_timers_and_pays_its_rewards_exactly_once() {
    let (w, mut tap) = World::new("wf-full").await;
    let war = w.declare(SCORED).await;
    let id = war.war_id.clone();

    // The declare-war saga started the lifecycle and confirmed WarDeclared.
    let declaration = w.finished(&w.declare_arn, id.as_str(), PATIENCE).await;
    assert_eq!(
        declaration.status,
        ExecutionStatus::Succeeded,
        "{declaration:?}"
    );
    let output = World::output(&declaration);
    assert_eq!(
        output["StartLifecycleResult"]["started"],
        json!(true),
        "{output}"
    );
    assert!(w.execution(&w.lifecycle_arn, id.as_str()).await.is_some());

    let plan = w.plays_to_its_end_and_pays_once(&war, &mut tap).await;

    // Re-running the saga (another execution name) pays nothing more.
    let requests: Vec<i64> = ledger_requests(&w, &plan, &id).await;
    let rerun = format!("{id}-rerun");
    w.sfn
        .start_execution()
        .state_machine_arn(&w.rewards_arn)
        .name(&rerun)
        .input(json!({ "war_id": id }).to_string())
        .send()
        .await
        .expect("re-run the reward saga");
    let rerun = w.finished(&w.rewards_arn, &rerun, PATIENCE).await;
    assert_eq!(rerun.status, ExecutionStatus::Succeeded);
    assert_eq!(
        World::output(&rerun)["PreparePlanResult"]["status"],
        json!("DISTRIBUTED")
    );
    assert_eq!(
        ledger_requests(&w, &plan, &id).await,
        requests,
        "no economy call at all"
    );
    tap.settle(&id).await;
    assert_eq!(tap.of(&id, "RewardsDistributed").len(), 1, "and no event");

    tap.remove().await;
}

/// Faults at every step of a war's workflows, each scoped to this war: the answers of phase
/// moves and reward bookkeeping lost after they landed (the SDK sends them again, Step
/// Functions retries the task), throttled calls, EventBridge failing while the relay publishes.
/// The war still moves forward one phase at a time, ends once, and pays every grant once.
#[tokio::test]
async fn a_war_whose_workflow_steps_lose_their_answers_or_are_throttled_still_ends_and_pays_once() {
    let (w, mut tap) = World::new("wf-faults").await;
    let war = w.declare(SCORED).await;
    let id = war.war_id.as_str();
    let faults = ArmedFaults::arm(
        &unique_tag("wf-faults"),
        json!([
            {"function": "phase-controller", "operation": "TransactWriteItems",
             "fault": "timeout_after_write", "times": 2, "body_contains": id},
            {"function": "phase-controller", "operation": "*", "fault": "throttle",
             "times": 3, "body_contains": id},
            {"function": "reward-distributor", "operation": "TransactWriteItems",
             "fault": "timeout_after_write", "times": 2, "body_contains": id},
            {"function": "reward-distributor", "operation": "*", "fault": "unavailable",
             "times": 2, "body_contains": id},
            {"function": "outbox-relay", "operation": "PutEvents", "fault": "server_error",
             "times": 2, "body_contains": id},
        ]),
    );
    w.plays_to_its_end_and_pays_once(&war, &mut tap).await;
    for rule in 0..5 {
        assert!(faults.fired(rule) > 0, "fault {rule} was never injected");
    }
    tap.remove().await;
}

#[tokio::test]
async fn an_economy_failing_mid_distribution_is_compensated_and_pays_nothing_in_the_end() {
    let (w, mut tap) = World::new("wf-comp").await;
    let war = w.declare(SCORED).await;
    let id = war.war_id.clone();
    // 130 grants in chunks of 100: chunk 0 is paid, chunk 1 fails on its third grant.
    w.fail_economy_on_grant(&id, 103).await;

    w.wait_for_status(&war, WarStatus::Active).await;
    w.score(&war, &w.attacker).await;
    w.wait_for_status(&war, WarStatus::Ended).await;

    let rewards = w.finished(&w.rewards_arn, id.as_str(), SLACK).await;
    assert_eq!(rewards.status, ExecutionStatus::Failed, "{rewards:?}");
    assert_eq!(rewards.error(), Some("REWARDS_FAILED"));
    let plan = w.plan(&id).await.expect("reward plan");
    assert_eq!(plan.status, RewardStatus::RewardsFailed);
    assert!(
        plan.grants.iter().all(|g| g.status == GrantStatus::Revoked),
        "granted chunk and the chunk in doubt are revoked: {:?}",
        plan.grants.iter().map(|g| g.status).collect::<Vec<_>>()
    );
    assert_eq!(
        w.war(&id).await.rewards_status,
        Some(RewardStatus::RewardsFailed)
    );
    let mut net = 0;
    let mut reversed = 0;
    for grant in &plan.grants {
        if let Some((status, amount, _)) = w.ledger(&grant.idempotency_key(&id)).await {
            assert_eq!(status, "REVOKED");
            net += amount;
            reversed += 1;
        }
    }
    assert_eq!(net, 0, "no net reward paid");
    assert_eq!(
        reversed,
        plan.grants.len(),
        "every grant of both chunks was revoked"
    );

    tap.wait_for(&id, "RewardDistributionFailed", 1).await;
    tap.settle(&id).await;
    let failed = &tap.of(&id, "RewardDistributionFailed")[0];
    assert!(
        failed["detail"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("ECONOMY_REFUSED"),
        "{failed}"
    );
    assert!(tap.of(&id, "RewardsDistributed").is_empty());
    tap.remove().await;
}

#[tokio::test]
async fn a_duplicated_lifecycle_execution_changes_nothing() {
    let (w, mut tap) = World::new("wf-dup").await;
    let war = w.declare([1, 1, 2, 1]).await;
    let id = war.war_id.clone();
    let d = war.phase_deadlines;
    let input = json!({
        "war_id": id,
        "deadlines": {
            "PREPARATION": d.preparation_at, "ACTIVE": d.active_at,
            "ENDING": d.ending_at, "ENDED": d.ended_at,
        }
    });
    // A second timer for the same war, racing the first one through every phase.
    let duplicate = format!("{id}-dup");
    w.sfn
        .start_execution()
        .state_machine_arn(&w.lifecycle_arn)
        .name(&duplicate)
        .input(input.to_string())
        .send()
        .await
        .expect("start duplicate lifecycle");

    let first = w
        .finished(&w.lifecycle_arn, id.as_str(), until(d.ended_at) + SLACK)
        .await;
    let second = w.finished(&w.lifecycle_arn, &duplicate, PATIENCE).await;
    assert_eq!(first.status, ExecutionStatus::Succeeded, "{first:?}");
    assert_eq!(second.status, ExecutionStatus::Succeeded, "{second:?}");
    // Each phase moved exactly once, by whichever timer came first.
    let (a, b) = (World::output(&first), World::output(&second));
    for step in ["EnterPreparation", "EnterActive", "EnterEnding", "EndWar"] {
        let result = format!("{step}Result");
        let moved = [&a, &b]
            .iter()
            .filter(|o| o[&result]["moved"] == json!(true))
            .count();
        assert_eq!(moved, 1, "{step}: {a} / {b}");
    }
    let ended = w.war(&id).await;
    assert_eq!(ended.status, WarStatus::Ended);
    assert_eq!(ended.transitions.len(), 4, "{:?}", ended.transitions);

    // Once the rewards settled, a late replay of the timers changes nothing at all.
    let rewards = w.finished(&w.rewards_arn, id.as_str(), SLACK).await;
    assert_eq!(rewards.status, ExecutionStatus::Succeeded);
    let before = w.war(&id).await;
    let replay = format!("{id}-replay");
    w.sfn
        .start_execution()
        .state_machine_arn(&w.lifecycle_arn)
        .name(&replay)
        .input(input.to_string())
        .send()
        .await
        .expect("start late replay");
    let replayed = w.finished(&w.lifecycle_arn, &replay, PATIENCE).await;
    assert_eq!(replayed.status, ExecutionStatus::Succeeded);
    assert_eq!(
        World::output(&replayed)["EnterPreparationResult"]["moved"],
        json!(false)
    );
    let after = w.war(&id).await;
    assert_eq!(
        (after.version, &after.transitions),
        (before.version, &before.transitions)
    );

    tap.wait_for(&id, "WarEnded", 1).await;
    tap.settle(&id).await;
    assert_eq!(
        tap.of(&id, "WarPhaseChanged").len(),
        3,
        "no extra WarPhaseChanged"
    );
    assert_eq!(tap.of(&id, "WarEnded").len(), 1);
    tap.remove().await;
}

#[tokio::test]
async fn surrender_mid_active_ends_the_war_at_once_stops_its_timers_and_starts_rewards() {
    let (w, mut tap) = World::new("wf-surr").await;
    let war = w.declare([1, 1, 60, 1]).await;
    let id = war.war_id.clone();
    w.wait_for_status(&war, WarStatus::Active).await;
    w.score(&war, &w.defender).await;

    let ended = w
        .membership()
        .surrender(&id, &w.defender, &World::player(&w.defender, "officer"))
        .await
        .expect("surrender");
    assert_eq!(ended.status, WarStatus::Ended);
    assert_eq!(
        ended.winner_side,
        Some(WinnerSide::Attacker),
        "the surrendering side loses"
    );
    assert_eq!(ended.outcome, Some(Outcome::Surrender));
    assert_eq!(
        (ended.sides.attacker.score, ended.sides.defender.score),
        (SIDE_SCORE, SIDE_SCORE + 3),
        "scores freeze"
    );

    let lifecycle = w.finished(&w.lifecycle_arn, id.as_str(), PATIENCE).await;
    assert_eq!(lifecycle.status, ExecutionStatus::Aborted);
    let rewards = w.finished(&w.rewards_arn, id.as_str(), SLACK).await;
    assert_eq!(rewards.status, ExecutionStatus::Succeeded, "{rewards:?}");
    let plan = w.plan(&id).await.expect("reward plan");
    assert_eq!(plan.status, RewardStatus::Distributed);
    assert!(
        plan.attacker_pool > plan.defender_pool,
        "the winner's pool is the larger one"
    );
    let still = w.war(&id).await;
    assert_eq!(
        still.transitions.len(),
        ended.transitions.len(),
        "no timer moved it later"
    );

    tap.wait_for(&id, "WarSurrendered", 1).await;
    tap.wait_for(&id, "WarEnded", 1).await;
    tap.remove().await;
}

#[tokio::test]
async fn a_declaration_saga_that_cannot_start_the_timers_is_compensated() {
    let (w, mut tap) = World::new("wf-decl").await;
    // The war is written (saga steps 1+2) ...
    let war = w
        .declarations()
        .create(w.command([30, 30, 30, 30]))
        .await
        .expect("create")
        .war;
    let id = war.war_id.clone();
    // ... and its saga is started with an input that does not describe it, so StartLifecycle
    // refuses (INVALID_REQUEST, not retried) and the saga must compensate. (The `WarDeclared`
    // safety net starts the saga under the same name only after the event went through the
    // table stream, the bus and a queue; by then this execution exists and wins.)
    let wrong = json!({"war_id": id, "deadlines": {
        "PREPARATION": "2099-01-01T00:00:00Z", "ACTIVE": "2099-01-02T00:00:00Z",
        "ENDING": "2099-01-03T00:00:00Z", "ENDED": "2099-01-04T00:00:00Z"}});
    w.sfn
        .start_execution()
        .state_machine_arn(&w.declare_arn)
        .name(id.as_str())
        .input(wrong.to_string())
        .send()
        .await
        .expect("start the saga");

    let saga = w.finished(&w.declare_arn, id.as_str(), SLACK).await;
    assert_eq!(saga.status, ExecutionStatus::Failed, "{saga:?}");
    assert_eq!(saga.error(), Some("DECLARATION_FAILED"));
    let output = World::output(&saga);
    assert!(output.is_null() || output.get("PublishDeclaredResult").is_none());
    // Compensation 1 found no lifecycle to stop; compensation 2 cancelled the war and released
    // everything the declaration held, with no peace shield.
    assert!(w.execution(&w.lifecycle_arn, id.as_str()).await.is_none());
    let cancelled = w.war(&id).await;
    assert_eq!(cancelled.status, WarStatus::Cancelled);
    assert_eq!(cancelled.outcome, Some(Outcome::DeclarationFailed));
    let territory = TerritoryService::new((&w.deps).into())
        .get(&w.territory)
        .await
        .expect("territory");
    assert_eq!(territory.contested_by, None);
    for clan in [&w.attacker, &w.defender] {
        let clan = w.deps.clan(clan).await.unwrap();
        assert!(clan.active_war_ids.is_empty(), "{clan:?}");
        assert_eq!(clan.last_war_ended_at, None);
    }
    tap.wait_for(&id, "WarCancelled", 1).await;
    // The pair is free again.
    let again = w
        .declarations()
        .create(w.command([30, 30, 30, 30]))
        .await
        .expect("declare again");
    assert_eq!(again.war.status, WarStatus::Declared);
    w.lifecycle()
        .compensate_declaration(&again.war.war_id)
        .await
        .unwrap();
    tap.remove().await;
}

#[tokio::test]
async fn a_war_whose_declaring_process_died_after_the_commit_still_runs_on_its_timers() {
    let (w, mut tap) = World::new("wf-orphan").await;
    // What a war-manager that died between its commit and starting the saga leaves behind:
    // the war, its territories contested, its events in the outbox, no execution.
    let war = w
        .declarations()
        .create(w.command([2, 30, 2, 2]))
        .await
        .expect("create")
        .war;
    let id = war.war_id.clone();
    assert!(w.execution(&w.declare_arn, id.as_str()).await.is_none());
    // Its committed `WarDeclared` reaches the phase-controller, which starts the saga; the
    // saga starts the timers, which move the war on.
    let saga = w.finished(&w.declare_arn, id.as_str(), PATIENCE).await;
    assert_eq!(saga.status, ExecutionStatus::Succeeded, "{saga:?}");
    w.wait_for_status(&war, WarStatus::Preparation).await;
    assert!(w.execution(&w.lifecycle_arn, id.as_str()).await.is_some());
    tap.wait_for(&id, "WarPhaseChanged", 1).await;
    tap.remove().await;
}
