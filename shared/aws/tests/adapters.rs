//! Adapter tests without an emulator: the SDK clients answer from `aws-smithy-mocks` rules, so
//! each test pins the requests an adapter sends and how it maps what AWS answers — cancellation
//! reasons (a lost condition, a sealed tally, competing and throttled transactions), unprocessed
//! keys and items (re-sent, bounded), `FailedEntryCount`, throttling (retried by the SDK, then a
//! retryable outage), idempotent starts — in
//! cases an emulator cannot be made to produce on demand. The clients are built from the same
//! loader the functions use (`clanwar_aws::sdk::defaults`), so the SDK's retry policy is the
//! production one.

use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, KeysAndAttributes};
use aws_smithy_mocks::{mock, MockResponse, MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use chrono::{TimeZone, Utc};
use clanwar_aws::{
    DynamoDbConnections, DynamoDbStore, EventBridgePublisher, StateMachines, StepFunctionsWorkflows,
};
use clanwar_domain::error::{DomainError, ErrorClass};
use clanwar_domain::events::{DomainEvent, EventEnvelope};
use clanwar_domain::ids::{ClanId, EventId, WarId};
use clanwar_domain::ports::{
    ApplyOutcome, EventPublisher, Outbox, PlayerPoints, RecordKey, ScoreBoard, ScoreDelta, Store,
    StoreError, Transaction, WorkflowStarter,
};
use clanwar_domain::realtime::Connections;
use clanwar_domain::testkit;
use clanwar_domain::war::WarStatus;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const TABLE: &str = "clanwar-test";

/// The functions' SDK configuration with the mock HTTP client (it never reaches a network).
async fn sdk() -> aws_config::SdkConfig {
    clanwar_aws::sdk::defaults()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .load()
        .await
}

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |i, rule| i.with_rule(rule),
    )
}

async fn store(rules: &[&Rule]) -> DynamoDbStore {
    store_on_the_wire(rules, WireLog::default()).await
}

/// A store whose every attempt's request body is also kept in `wire`.
async fn store_on_the_wire(rules: &[&Rule], wire: WireLog) -> DynamoDbStore {
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk().await)
        .interceptor(interceptor(rules))
        .interceptor(wire)
        .build();
    DynamoDbStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        clanwar_aws::TableConfig {
            table: TABLE.into(),
        },
    )
}

async fn publisher(rules: &[&Rule]) -> EventBridgePublisher {
    let config = aws_sdk_eventbridge::config::Builder::from(&sdk().await)
        .interceptor(interceptor(rules))
        .build();
    EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::from_conf(config),
        "clanwar-bus",
    )
}

async fn workflows(rules: &[&Rule]) -> StepFunctionsWorkflows {
    let config = aws_sdk_sfn::config::Builder::from(&sdk().await)
        .interceptor(interceptor(rules))
        .build();
    let arn = |name: &str| format!("arn:aws:states:us-east-1:123456789012:stateMachine:{name}");
    StepFunctionsWorkflows::new(
        aws_sdk_sfn::Client::from_conf(config),
        StateMachines {
            declaration: Some(arn("declare-war")),
            lifecycle: arn("war-lifecycle"),
            rewards: arn("reward-distribution"),
        },
    )
}

/// A DynamoDB error answer as the service sends it (status, `__type`), so the SDK's own
/// deserializer and retry classifier see exactly what they would in AWS.
fn dynamodb_error(status: u16, code: &str) -> HttpResponse {
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected {code}"}}"#
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

fn s(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.into())),
        ("sk".to_owned(), AttributeValue::S(sk.into())),
    ])
}

/// Every attempt's request body as sent (a mock rule's matcher sees an operation's input
/// once, not each retry of it).
#[derive(Debug, Clone, Default)]
struct WireLog(Arc<Mutex<Vec<serde_json::Value>>>);

impl WireLog {
    fn bodies(&self) -> Vec<serde_json::Value> {
        self.0.lock().unwrap().clone()
    }
}

impl Intercept for WireLog {
    fn name(&self) -> &'static str {
        "adapters::WireLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        let json = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        self.0.lock().unwrap().push(json);
        Ok(())
    }
}

/// Records what each matching request carried.
#[derive(Clone)]
struct Seen<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Clone> Seen<T> {
    fn push(&self, value: T) -> bool {
        self.0.lock().unwrap().push(value);
        true
    }
    fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
}

fn event(n: u32) -> EventEnvelope {
    EventEnvelope::new(
        EventId::new(format!("evt-{n:03}")).unwrap(),
        Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, n).unwrap(),
        Some(WarId::new("w1").unwrap()),
        vec![ClanId::new("att").unwrap()],
        DomainEvent::WarPhaseChanged {
            from: WarStatus::Declared,
            to: WarStatus::Preparation,
            version: 2,
        },
    )
}

// ---- DynamoDB: transactions ------------------------------------------------------------------

/// A clan insert and a war update in one transaction; the war's write comes second.
fn clan_and_war() -> Transaction {
    let declared = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
    let mut clan = testkit::clan("adapters", "c1");
    let mut war = testkit::war("adapters", "w1", "att", "def", declared);
    war.version = 3;
    let mut tx = Transaction::new();
    tx.insert(&mut clan);
    tx.update(&mut war);
    tx
}

#[tokio::test]
async fn a_cancelled_transaction_names_the_write_whose_condition_failed() {
    let seen = Seen::default();
    let recorder = seen.clone();
    // The war's item fails its version check; every other item's reason is "None".
    let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .match_requests(move |req| recorder.push(req.clone()))
        .then_compute_response(|req| {
            let reasons = req
                .transact_items()
                .iter()
                .map(|item| {
                    let is_war = item
                        .put()
                        .is_some_and(|p| s(p.item(), "sk") == "WAR" && s(p.item(), "pk").starts_with("WAR#"));
                    let code = if is_war { "ConditionalCheckFailed" } else { "None" };
                    CancellationReason::builder().code(code).build()
                })
                .collect();
            MockResponse::Error(
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                    aws_sdk_dynamodb::types::error::TransactionCanceledException::builder()
                        .set_cancellation_reasons(Some(reasons))
                        .build(),
                ),
            )
        });
    let store = store(&[&rule]).await;

    let err = store.commit(clan_and_war()).await.unwrap_err();

    assert!(
        matches!(err, StoreError::Conflict { index: Some(1) }),
        "the war (write #1) lost its condition: {err:?}"
    );
    let requests = seen.all();
    assert_eq!(requests.len(), 1, "a lost condition is not retried");
    let items = requests[0].transact_items();
    let clan = items[0].put().expect("the clan is a put");
    assert_eq!(clan.table_name(), TABLE);
    assert_eq!(
        clan.condition_expression(),
        Some("attribute_not_exists(pk)")
    );
    let war = items
        .iter()
        .filter_map(|i| i.put())
        .find(|p| s(p.item(), "sk") == "WAR")
        .expect("the war is a put");
    assert_eq!(war.condition_expression(), Some("ver = :v"));
    assert_eq!(
        war.expression_attribute_values()
            .and_then(|v| v.get(":v"))
            .and_then(|v| v.as_n().ok())
            .map(String::as_str),
        Some("3"),
        "the condition is on the version the war was read at"
    );
    assert_eq!(s(war.item(), "ver"), "", "ver is a number, not a string");
    assert_eq!(
        war.item()
            .get("ver")
            .and_then(|v| v.as_n().ok())
            .map(String::as_str),
        Some("4")
    );
}

#[tokio::test]
async fn a_throttled_transaction_is_retried_by_the_sdk_with_the_same_request_token() {
    let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_response(|| dynamodb_error(400, "ThrottlingException"))
        .http_response(|| dynamodb_error(400, "ProvisionedThroughputExceededException"))
        .output(|| {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
                .build()
        })
        .build();
    let wire = WireLog::default();
    let store = store_on_the_wire(&[&rule], wire.clone()).await;

    store
        .commit(clan_and_war())
        .await
        .expect("third attempt applies");

    let tokens: Vec<Option<String>> = wire
        .bodies()
        .iter()
        .map(|b| b["ClientRequestToken"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        tokens.len(),
        3,
        "two throttled attempts, then the one that applied"
    );
    assert!(
        tokens[0].is_some(),
        "every transaction carries a ClientRequestToken"
    );
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "a retry must resend the same token (DynamoDB then answers a landed write as done): {tokens:?}"
    );
}

#[tokio::test]
async fn a_store_that_keeps_failing_is_unavailable_after_the_sdk_retries() {
    let rule = mock!(aws_sdk_dynamodb::Client::get_item)
        .sequence()
        .http_response(|| dynamodb_error(500, "InternalServerError"))
        .repeatedly()
        .build();
    let store = store(&[&rule]).await;

    let err = store
        .get(&RecordKey::War(WarId::new("w1").unwrap()))
        .await
        .unwrap_err();

    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        rule.num_calls(),
        3,
        "the SDK's standard policy: three attempts"
    );
}

/// The cancellation DynamoDB answers: one reason per item, in item order, each from `code`.
fn cancelled(
    req: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput,
    code: impl Fn(&aws_sdk_dynamodb::types::TransactWriteItem) -> &'static str,
) -> aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError {
    let reasons = req
        .transact_items()
        .iter()
        .map(|item| CancellationReason::builder().code(code(item)).build())
        .collect();
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
        aws_sdk_dynamodb::types::error::TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(reasons))
            .build(),
    )
}

/// The partition key an item of a transaction writes.
fn item_pk(item: &aws_sdk_dynamodb::types::TransactWriteItem) -> String {
    if let Some(put) = item.put() {
        s(put.item(), "pk")
    } else if let Some(update) = item.update() {
        s(update.key(), "pk")
    } else if let Some(delete) = item.delete() {
        s(delete.key(), "pk")
    } else {
        String::new()
    }
}

fn war_id() -> WarId {
    WarId::new("w1").unwrap()
}

/// A scoring delta of one player: its marker, a clan-counter shard and the player's item.
fn score_delta(id: &str) -> ScoreDelta {
    ScoreDelta {
        war_id: war_id(),
        shards: 4,
        dedupe_id: id.into(),
        players: vec![PlayerPoints {
            player_id: clanwar_domain::ids::PlayerId::new("p1").unwrap(),
            clan_id: ClanId::new("att").unwrap(),
            points: 10,
        }],
        clans: vec![(ClanId::new("att").unwrap(), 10)],
        battle_kill: None,
        farm_guard: None,
        ledger: None,
    }
}

#[tokio::test]
async fn a_competing_or_throttled_transaction_is_a_conflict_that_names_no_losing_write() {
    // `TransactionConflict` (another transaction held an item) and `ThrottlingError` (an item's
    // partition was throttled) cancel the whole transaction without any condition failing:
    // the caller's optimistic retry (reload, apply again) is what fixes both.
    for code in ["TransactionConflict", "ThrottlingError"] {
        let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items).then_compute_response(
            move |req| {
                MockResponse::Error(cancelled(req, |item| {
                    if item_pk(item).starts_with("WAR#") {
                        code
                    } else {
                        "None"
                    }
                }))
            },
        );
        let store = store(&[&rule]).await;

        let err = store.commit(clan_and_war()).await.unwrap_err();

        assert!(
            matches!(err, StoreError::Conflict { index: None }),
            "{code}: {err:?}"
        );
        assert!(
            matches!(DomainError::from(err).class(), ErrorClass::Conflict),
            "{code}: a concurrent modification, not an outage"
        );
        assert_eq!(
            rule.num_calls(),
            1,
            "{code}: the SDK does not resend a cancelled transaction"
        );
    }
}

#[tokio::test]
async fn a_score_write_refused_by_the_seal_is_sealed_and_one_refused_by_its_marker_a_conflict() {
    let mut tx = Transaction::new();
    tx.score(score_delta("evt-1"));
    // The clan-counter shard fails its condition only once the final tally sealed it.
    let sealed =
        mock!(aws_sdk_dynamodb::Client::transact_write_items).then_compute_response(|req| {
            MockResponse::Error(cancelled(req, |item| {
                if item_pk(item).starts_with("SCORE#") {
                    "ConditionalCheckFailed"
                } else {
                    "None"
                }
            }))
        });
    let err = store(&[&sealed])
        .await
        .commit(tx.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Sealed(w) if *w == war_id()),
        "{err:?}"
    );

    // The exactly-once marker fails when the delta was applied before: a plain conflict.
    let replayed =
        mock!(aws_sdk_dynamodb::Client::transact_write_items).then_compute_response(|req| {
            MockResponse::Error(cancelled(req, |item| {
                if item_pk(item).starts_with("APPLIED#") {
                    "ConditionalCheckFailed"
                } else {
                    "None"
                }
            }))
        });
    let err = store(&[&replayed]).await.commit(tx).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { index: Some(0) }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_score_chunk_cancelled_by_a_competing_transaction_is_judged_again_and_applied() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let transact = mock!(aws_sdk_dynamodb::Client::transact_write_items).then_compute_response(
        move |req| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                MockResponse::Error(cancelled(req, |item| {
                    if item_pk(item).starts_with("PSCORE#") {
                        "TransactionConflict"
                    } else {
                        "None"
                    }
                }))
            } else {
                MockResponse::Output(
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
                        .build(),
                )
            }
        },
    );
    // The second pass reads the delta's exactly-once records first: none exists yet.
    let read = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(|| {
        aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder().build()
    });
    let store = store(&[&transact, &read]).await;

    let outcomes = store.apply_batch(vec![score_delta("evt-1")]).await.unwrap();

    assert_eq!(outcomes, vec![ApplyOutcome::Applied]);
    assert_eq!(
        transact.num_calls(),
        2,
        "the cancelled chunk went round once more"
    );
    assert_eq!(
        read.num_calls(),
        1,
        "its records were read back before the retry"
    );
}

#[tokio::test]
async fn a_score_chunk_refused_by_the_seal_is_sealed_without_a_retry() {
    let transact =
        mock!(aws_sdk_dynamodb::Client::transact_write_items).then_compute_response(|req| {
            MockResponse::Error(cancelled(req, |item| {
                if item_pk(item).starts_with("SCORE#") {
                    "ConditionalCheckFailed"
                } else {
                    "None"
                }
            }))
        });
    let store = store(&[&transact]).await;

    let outcomes = store.apply_batch(vec![score_delta("evt-1")]).await.unwrap();

    assert_eq!(outcomes, vec![ApplyOutcome::Sealed]);
    assert_eq!(transact.num_calls(), 1);
}

#[tokio::test]
async fn a_score_batch_that_keeps_conflicting_ends_in_retryable_contention_after_bounded_passes() {
    let transact =
        mock!(aws_sdk_dynamodb::Client::transact_write_items).then_compute_response(|req| {
            MockResponse::Error(cancelled(req, |_| "TransactionConflict"))
        });
    let read = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(|| {
        aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder().build()
    });
    let store = store(&[&transact, &read]).await;

    let err = store
        .apply_batch(vec![score_delta("evt-1")])
        .await
        .unwrap_err();

    assert!(
        matches!(err, StoreError::Contention { attempts: 5 }),
        "{err:?}"
    );
    assert_eq!(
        transact.num_calls(),
        5,
        "one optimistic pass and four re-judged ones"
    );
    assert_eq!(
        DomainError::from(err).class(),
        ErrorClass::Unavailable,
        "contention is answered 503 with a retry hint"
    );
}

#[tokio::test]
async fn a_read_that_stays_throttled_is_a_retryable_outage_after_the_sdk_retries() {
    for code in [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
    ] {
        let rule = mock!(aws_sdk_dynamodb::Client::get_item)
            .sequence()
            .http_response(move || dynamodb_error(400, code))
            .repeatedly()
            .build();
        let store = store(&[&rule]).await;

        let err = store.get(&RecordKey::War(war_id())).await.unwrap_err();

        assert!(
            matches!(err, StoreError::Unavailable { .. }),
            "{code}: {err:?}"
        );
        assert_eq!(
            rule.num_calls(),
            3,
            "{code}: the SDK retries a throttled call"
        );
        assert_eq!(
            DomainError::from(err).class(),
            ErrorClass::Unavailable,
            "{code}"
        );
    }
}

#[tokio::test]
async fn a_throttled_read_that_recovers_is_answered() {
    let rule = mock!(aws_sdk_dynamodb::Client::get_item)
        .sequence()
        .http_response(|| dynamodb_error(400, "ProvisionedThroughputExceededException"))
        .output(|| aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build())
        .build();
    let store = store(&[&rule]).await;

    let found = store.get(&RecordKey::War(war_id())).await.unwrap();

    assert!(found.is_none());
    assert_eq!(rule.num_calls(), 2);
}

// ---- DynamoDB: batches -----------------------------------------------------------------------

fn stored_clan(name: &str) -> HashMap<String, AttributeValue> {
    let mut clan = testkit::clan("adapters", name);
    clan.version = 1;
    let mut item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(clanwar_domain::ports::Record::from(clan.clone())).unwrap();
    item.extend(key(&format!("CLAN#{}", clan.clan_id), "CLAN"));
    item.insert("ver".into(), AttributeValue::N("1".into()));
    item
}

#[tokio::test]
async fn get_many_asks_again_for_exactly_the_unprocessed_keys() {
    let asked = Seen::default();
    let recorder = asked.clone();
    let first = stored_clan("c1");
    let second = stored_clan("c2");
    let (pk1, pk2) = (s(&first, "pk"), s(&second, "pk"));
    let left_over = key(&pk2, "CLAN");
    let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item)
        .match_requests(move |req| {
            let keys = req
                .request_items()
                .and_then(|r| r.get(TABLE))
                .map(|k| k.keys().iter().map(|k| s(k, "pk")).collect::<Vec<_>>());
            recorder.push(keys.unwrap_or_default())
        })
        .sequence()
        .output(move || {
            aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder()
                .responses(TABLE, vec![first.clone()])
                .unprocessed_keys(
                    TABLE,
                    KeysAndAttributes::builder()
                        .keys(left_over.clone())
                        .consistent_read(true)
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .output(move || {
            aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder()
                .responses(TABLE, vec![second.clone()])
                .build()
        })
        .build();
    let store = store(&[&rule]).await;
    let c = |name: &str| RecordKey::Clan(testkit::clan("adapters", name).clan_id);

    let mut fetched = store
        .get_many(&[c("c2"), c("c1"), c("c3")])
        .await
        .expect("both rounds answered");

    let clans: Vec<Option<clanwar_domain::clan::Clan>> = fetched.many(3).unwrap();
    let names: Vec<Option<String>> = clans
        .iter()
        .map(|c| c.as_ref().map(|c| c.clan_id.to_string()))
        .collect();
    let id = |name: &str| Some(testkit::clan("adapters", name).clan_id.to_string());
    assert_eq!(names, vec![id("c2"), id("c1"), None], "in the order asked");
    let asked = asked.all();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].len(), 3);
    assert_eq!(asked[1], vec![pk2], "only the left-over key is asked again");
    assert!(asked[0].contains(&pk1));
}

#[tokio::test]
async fn get_many_gives_up_with_contention_after_its_bounded_rounds() {
    let left_over = key("CLAN#x", "CLAN");
    let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item)
        .sequence()
        .output(move || {
            aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder()
                .unprocessed_keys(
                    TABLE,
                    KeysAndAttributes::builder()
                        .keys(left_over.clone())
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let store = store(&[&rule]).await;

    let err = store
        .get_many(&[RecordKey::Clan(ClanId::new("x").unwrap())])
        .await
        .map(|_| ())
        .unwrap_err();

    assert!(matches!(err, StoreError::Contention { .. }), "{err:?}");
    let calls = rule.num_calls();
    assert!(
        (2..=16).contains(&calls),
        "bounded: gave up after {calls} rounds"
    );
}

#[tokio::test]
async fn acknowledging_the_outbox_resends_only_the_unprocessed_deletes() {
    let sent = Seen::default();
    let recorder = sent.clone();
    let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(move |req| {
            let requests = req.request_items().and_then(|r| r.get(TABLE)).cloned();
            recorder.push(requests.unwrap_or_default())
        })
        .then_compute_response(|req| {
            let requests = req.request_items().and_then(|r| r.get(TABLE)).cloned();
            let requests = requests.unwrap_or_default();
            // The first call leaves its last delete unprocessed; the resend applies.
            let builder =
                aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput::builder();
            MockResponse::Output(if requests.len() > 1 {
                builder
                    .unprocessed_items(TABLE, vec![requests.last().unwrap().clone()])
                    .build()
            } else {
                builder.build()
            })
        });
    let store = store(&[&rule]).await;
    let events: Vec<EventEnvelope> = (1..=3).map(event).collect();

    store.acknowledge(&events).await.expect("acknowledged");

    let sent = sent.all();
    assert_eq!(sent.len(), 2, "one batch, then the left-over delete");
    assert_eq!(sent[0].len(), 3);
    assert!(sent[0].iter().all(|r| r.delete_request().is_some()));
    assert_eq!(sent[1], vec![sent[0][2].clone()]);
}

#[tokio::test]
async fn acknowledging_gives_up_with_contention_when_deletes_stay_unprocessed() {
    let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item).then_compute_response(|req| {
        let requests = req.request_items().and_then(|r| r.get(TABLE)).cloned();
        MockResponse::Output(
            aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput::builder()
                .unprocessed_items(TABLE, requests.unwrap_or_default())
                .build(),
        )
    });
    let store = store(&[&rule]).await;
    let events: Vec<EventEnvelope> = (1..=3).map(event).collect();

    let err = store.acknowledge(&events).await.unwrap_err();

    assert!(matches!(err, StoreError::Contention { .. }), "{err:?}");
    let calls = rule.num_calls();
    assert!(
        (2..=16).contains(&calls),
        "bounded: gave up after {calls} rounds"
    );
}

#[tokio::test]
async fn acknowledging_more_than_25_events_sends_batches_of_at_most_25() {
    let sizes = Seen::default();
    let recorder = sizes.clone();
    let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(move |req| {
            let n = req
                .request_items()
                .and_then(|r| r.get(TABLE))
                .map_or(0, Vec::len);
            recorder.push(n)
        })
        .then_output(|| {
            aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput::builder().build()
        });
    let store = store(&[&rule]).await;
    let events: Vec<EventEnvelope> = (0..60).map(event).collect();

    store.acknowledge(&events).await.expect("acknowledged");

    let mut sizes = sizes.all();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![10, 25, 25]);
}

// ---- DynamoDB: WebSocket connections --------------------------------------------------------

#[tokio::test]
async fn disconnecting_deletes_the_connection_and_its_subscriptions_resending_unprocessed_ones() {
    let get = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
        let mut item = key("WSCONN#c1", "WSCONN");
        item.insert(
            "topics".into(),
            AttributeValue::Ss(vec!["war:w1".into(), "clan:att".into()]),
        );
        aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
            .set_item(Some(item))
            .build()
    });
    let sent = Seen::default();
    let recorder = sent.clone();
    let write = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(move |req| {
            let keys: Vec<(String, String)> = req
                .request_items()
                .and_then(|r| r.get(TABLE))
                .map(|requests| {
                    requests
                        .iter()
                        .filter_map(|r| r.delete_request())
                        .map(|d| (s(d.key(), "pk"), s(d.key(), "sk")))
                        .collect()
                })
                .unwrap_or_default();
            recorder.push(keys)
        })
        .then_compute_response(|req| {
            let requests = req.request_items().and_then(|r| r.get(TABLE)).cloned();
            let requests = requests.unwrap_or_default();
            let builder =
                aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput::builder();
            // The first call leaves its first delete unprocessed.
            MockResponse::Output(if requests.len() > 1 {
                builder
                    .unprocessed_items(TABLE, vec![requests[0].clone()])
                    .build()
            } else {
                builder.build()
            })
        });
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk().await)
        .interceptor(interceptor(&[&get, &write]))
        .build();
    let connections = DynamoDbConnections::new(aws_sdk_dynamodb::Client::from_conf(config), TABLE);

    connections.disconnect("c1").await.expect("disconnected");

    let sent = sent.all();
    assert_eq!(sent.len(), 2, "one batch, then the left-over delete");
    let mut first = sent[0].clone();
    first.sort();
    assert_eq!(
        first,
        vec![
            ("WSCONN#c1".to_owned(), "WSCONN".to_owned()),
            ("WSTOPIC#clan:att".to_owned(), "c1".to_owned()),
            ("WSTOPIC#war:w1".to_owned(), "c1".to_owned()),
        ]
    );
    assert_eq!(sent[1], vec![sent[0][0].clone()]);
}

// ---- Key prefixes the IAM conditions rely on ----------------------------------------------
//
// infra/template.yaml holds the WebSocket functions and the outbox relay to some partitions
// with `dynamodb:LeadingKeys`; these tests pin that their adapters touch no other partition.

/// Every partition key a request body names: items, keys and `:pk`-style key values.
fn partition_keys(body: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    match body {
        serde_json::Value::Object(map) => {
            for (name, value) in map {
                let is_key = name == "pk" || name == ":pk";
                if let (true, Some(pk)) = (is_key, value.get("S").and_then(|v| v.as_str())) {
                    found.push(pk.to_owned());
                } else {
                    found.extend(partition_keys(value));
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|v| found.extend(partition_keys(v)))
        }
        _ => {}
    }
    found
}

#[tokio::test]
async fn the_connections_adapter_touches_only_connection_and_subscription_partitions() {
    let put = mock!(aws_sdk_dynamodb::Client::put_item)
        .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build());
    let update = mock!(aws_sdk_dynamodb::Client::update_item).then_output(|| {
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build()
    });
    let get = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
        let mut item = key("WSCONN#c1", "WSCONN");
        item.insert("player_id".into(), AttributeValue::S("p1".into()));
        item.insert("topics".into(), AttributeValue::Ss(vec!["war:w1".into()]));
        aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
            .set_item(Some(item))
            .build()
    });
    let write = mock!(aws_sdk_dynamodb::Client::batch_write_item).then_output(|| {
        aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput::builder().build()
    });
    let query = mock!(aws_sdk_dynamodb::Client::query).then_output(|| {
        aws_sdk_dynamodb::operation::query::QueryOutput::builder()
            .items(key("WSTOPIC#war:w1", "c1"))
            .build()
    });
    let wire = WireLog::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk().await)
        .interceptor(interceptor(&[&put, &update, &get, &write, &query]))
        .interceptor(wire.clone())
        .build();
    let connections = DynamoDbConnections::new(aws_sdk_dynamodb::Client::from_conf(config), TABLE);
    let player = clanwar_domain::ids::PlayerId::new("p1").unwrap();
    let topic = clanwar_domain::realtime::Topic::War(war_id());

    connections
        .connect("c1", &player, Utc::now())
        .await
        .unwrap();
    assert_eq!(connections.player_of("c1").await.unwrap(), Some(player));
    connections.subscribe("c1", &topic).await.unwrap();
    assert_eq!(connections.subscribers(&topic).await.unwrap(), vec!["c1"]);
    connections.disconnect("c1").await.unwrap();

    for rule in [&put, &update, &get, &write, &query] {
        assert!(rule.num_calls() > 0, "every operation was exercised");
    }
    let keys: Vec<String> = wire.bodies().iter().flat_map(partition_keys).collect();
    assert!(keys.len() >= 6, "{keys:?}");
    assert!(
        keys.iter()
            .all(|pk| pk.starts_with("WSCONN#") || pk.starts_with("WSTOPIC#")),
        "only WSCONN# / WSTOPIC# partitions (the template's LeadingKeys): {keys:?}"
    );
}

#[tokio::test]
async fn the_outbox_adapter_touches_only_outbox_partitions() {
    // One entry written under an earlier partition count: the sweep moves it first.
    let stray = event(7);
    let body = serde_json::to_string(&stray).unwrap();
    let home = clanwar_domain::hash::shard_of(stray.event_id.as_str(), 32);
    let old_partition = format!("OUTBOX#{}", (home + 1) % 32);
    let query = mock!(aws_sdk_dynamodb::Client::query).then_compute_response(move |req| {
        let pk = req
            .expression_attribute_values()
            .and_then(|v| v.get(":pk"))
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let builder = aws_sdk_dynamodb::operation::query::QueryOutput::builder();
        MockResponse::Output(if pk == old_partition {
            let mut item = key(&old_partition, "2026-02-01T00:00:07.000000Z#evt-007");
            item.insert("event".into(), AttributeValue::S(body.clone()));
            builder.items(item).build()
        } else {
            builder.build()
        })
    });
    let transact = mock!(aws_sdk_dynamodb::Client::transact_write_items).then_output(|| {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
            .build()
    });
    let write = mock!(aws_sdk_dynamodb::Client::batch_write_item).then_output(|| {
        aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput::builder().build()
    });
    let wire = WireLog::default();
    let store = store_on_the_wire(&[&query, &transact, &write], wire.clone()).await;

    let pending = store.pending(10).await.unwrap();
    store.acknowledge(&pending).await.unwrap();

    assert_eq!(pending, vec![stray]);
    assert_eq!(
        transact.num_calls(),
        1,
        "the stray entry was moved to its partition"
    );
    assert_eq!(write.num_calls(), 1);
    let keys: Vec<String> = wire.bodies().iter().flat_map(partition_keys).collect();
    assert!(keys.len() >= 32 + 3, "{keys:?}");
    assert!(
        keys.iter().all(|pk| pk.starts_with("OUTBOX#")),
        "only OUTBOX# partitions (the template's LeadingKeys): {keys:?}"
    );
}

// ---- EventBridge -----------------------------------------------------------------------------

#[tokio::test]
async fn put_events_sends_tens_and_reports_exactly_the_entries_that_failed() {
    let sent = Seen::default();
    let recorder = sent.clone();
    let rule = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(move |req| recorder.push(req.entries().to_vec()))
        .then_compute_response(|req| {
            use aws_sdk_eventbridge::types::PutEventsResultEntry;
            // In the first call the fourth entry is refused; the second call's all land.
            let entries: Vec<_> = req
                .entries()
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    if req.entries().len() == 10 && i == 3 {
                        PutEventsResultEntry::builder()
                            .error_code("InternalFailure")
                            .error_message("injected")
                            .build()
                    } else {
                        PutEventsResultEntry::builder()
                            .event_id(format!("eb-{i}"))
                            .build()
                    }
                })
                .collect();
            let failed = entries.iter().filter(|e| e.error_code().is_some()).count();
            MockResponse::Output(
                aws_sdk_eventbridge::operation::put_events::PutEventsOutput::builder()
                    .failed_entry_count(failed as i32)
                    .set_entries(Some(entries))
                    .build(),
            )
        });
    let publisher = publisher(&[&rule]).await;
    let events: Vec<EventEnvelope> = (1..=12).map(event).collect();

    let err = publisher.publish(&events).await.unwrap_err();

    assert_eq!(err.failed, vec![events[3].event_id.clone()]);
    assert!(err.message.contains("InternalFailure"), "{}", err.message);
    let sent = sent.all();
    assert_eq!(
        sent.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 2],
        "at most ten entries a call"
    );
    let first = &sent[0][0];
    assert_eq!(first.event_bus_name(), Some("clanwar-bus"));
    assert_eq!(first.source(), Some(clanwar_domain::events::EVENT_SOURCE));
    assert_eq!(first.detail_type(), Some("WarPhaseChanged"));
    let detail: serde_json::Value = serde_json::from_str(first.detail().unwrap()).unwrap();
    assert_eq!(detail["event_id"], "evt-001");
}

#[tokio::test]
async fn a_put_events_call_that_fails_reports_its_whole_chunk() {
    let rule = mock!(aws_sdk_eventbridge::Client::put_events)
        .sequence()
        .output(|| {
            aws_sdk_eventbridge::operation::put_events::PutEventsOutput::builder()
                .failed_entry_count(0)
                .build()
        })
        .http_status(500, None)
        .repeatedly()
        .build();
    let publisher = publisher(&[&rule]).await;
    let events: Vec<EventEnvelope> = (1..=12).map(event).collect();

    let err = publisher.publish(&events).await.unwrap_err();

    let ids: Vec<EventId> = events[10..].iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(
        err.failed, ids,
        "the first ten landed; the last two stay in the outbox"
    );
}

#[tokio::test]
async fn put_events_throttled_as_a_call_is_retried_and_throttled_entries_are_reported() {
    // A throttled call (the whole request) is the SDK's to retry...
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let rule = mock!(aws_sdk_eventbridge::Client::put_events)
        .sequence()
        .http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
            )
        })
        .output(move || {
            use aws_sdk_eventbridge::types::PutEventsResultEntry;
            counter.fetch_add(1, Ordering::SeqCst);
            // ...while throttled entries (FailedEntryCount) stay in the outbox for the relay.
            aws_sdk_eventbridge::operation::put_events::PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(PutEventsResultEntry::builder().event_id("eb-1").build())
                .entries(
                    PutEventsResultEntry::builder()
                        .error_code("ThrottlingException")
                        .error_message("Rate exceeded")
                        .build(),
                )
                .build()
        })
        .build();
    let publisher = publisher(&[&rule]).await;
    let events: Vec<EventEnvelope> = (1..=2).map(event).collect();

    let err = publisher.publish(&events).await.unwrap_err();

    assert_eq!(rule.num_calls(), 2, "the throttled call was sent again");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(err.failed, vec![events[1].event_id.clone()]);
    assert!(
        err.message.contains("ThrottlingException"),
        "{}",
        err.message
    );
}

// ---- Step Functions --------------------------------------------------------------------------

#[tokio::test]
async fn starting_a_workflow_twice_is_done_and_named_after_the_war() {
    let names = Seen::default();
    let recorder = names.clone();
    let rule = mock!(aws_sdk_sfn::Client::start_execution)
        .match_requests(move |req| {
            recorder.push((
                req.state_machine_arn().unwrap_or_default().to_owned(),
                req.name().unwrap_or_default().to_owned(),
            ))
        })
        .then_error(|| {
            aws_sdk_sfn::operation::start_execution::StartExecutionError::ExecutionAlreadyExists(
                aws_sdk_sfn::types::error::ExecutionAlreadyExists::builder().build(),
            )
        });
    let workflows = workflows(&[&rule]).await;
    let war = WarId::new("w-42").unwrap();

    workflows
        .start_rewards(&war)
        .await
        .expect("an execution of that name exists: the start already happened");

    assert_eq!(
        names.all(),
        vec![(
            "arn:aws:states:us-east-1:123456789012:stateMachine:reward-distribution".to_owned(),
            "w-42".to_owned()
        )]
    );
}

#[tokio::test]
async fn a_refused_start_is_a_workflow_error_and_stopping_a_finished_one_is_done() {
    let start = mock!(aws_sdk_sfn::Client::start_execution).then_error(|| {
        aws_sdk_sfn::operation::start_execution::StartExecutionError::StateMachineDoesNotExist(
            aws_sdk_sfn::types::error::StateMachineDoesNotExist::builder()
                .message("no such machine")
                .build(),
        )
    });
    let stop = mock!(aws_sdk_sfn::Client::stop_execution).then_error(|| {
        aws_sdk_sfn::operation::stop_execution::StopExecutionError::ExecutionDoesNotExist(
            aws_sdk_sfn::types::error::ExecutionDoesNotExist::builder().build(),
        )
    });
    let workflows = workflows(&[&start, &stop]).await;
    let war = WarId::new("w-43").unwrap();

    let err = workflows.start_rewards(&war).await.unwrap_err();
    assert!(err.message.contains("no such machine"), "{}", err.message);
    workflows
        .stop_lifecycle(&war)
        .await
        .expect("nothing left to stop is done");
    assert_eq!(stop.num_calls(), 1);
}
