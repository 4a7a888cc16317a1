//! The DynamoDB adapter against the store contract, under concurrency, and the outbox path
//! through EventBridge to SQS when the first publish fails.

use clanwar_aws::{DynamoDbStore, TableConfig};
use clanwar_domain::config::Rules;
use clanwar_domain::ids::{ClanId, PlayerId, WarId};
use clanwar_domain::memory::{FakeClock, MemoryPublisher, MemoryWorkflows};
use clanwar_domain::ports::{ApplyOutcome, Outbox, PlayerPoints, ScoreBoard, ScoreDelta};
use clanwar_domain::services::Deps;
use clanwar_domain::system::UuidIds;
use clanwar_integration_tests::wait::{wait_until, Seen, PATIENCE};
use clanwar_integration_tests::{aws_config, unique_tag, Resources};
use std::sync::Arc;

/// Counter shards of the made-up wars of these tests.
const SHARDS: u32 = 8;

async fn store() -> DynamoDbStore {
    let resources = Resources::load();
    let client = aws_sdk_dynamodb::Client::new(&aws_config().await);
    DynamoDbStore::new(
        client,
        TableConfig {
            table: resources.name("WarTable"),
        },
    )
}

/// The contract runs on a table of its own, made from the template's definition by
/// `scripts/test.sh` (`CLANWAR_CONTRACTTABLE`): the stack's table has the outbox relay reading
/// its stream, which would take the outbox entries the contract checks.
#[tokio::test]
async fn dynamodb_store_passes_the_store_contract() {
    let client = aws_sdk_dynamodb::Client::new(&aws_config().await);
    let table = Resources::load().name("ContractTable");
    let store = DynamoDbStore::new(client, TableConfig { table });
    clanwar_domain::testkit::run_all(&store, &unique_tag("contract")).await;
}

#[tokio::test]
async fn concurrent_duplicated_score_events_are_applied_exactly_once() {
    let store = Arc::new(store().await);
    let tag = unique_tag("conc");
    let war = WarId::new(format!("{tag}-war")).unwrap();
    let clans = ["red", "blue"].map(|c| ClanId::new(format!("{tag}-{c}")).unwrap());
    // 400 distinct events, each delivered twice by different tasks, 16 tasks in parallel.
    let events: Vec<usize> = (0..400).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16usize {
        let store = store.clone();
        let war = war.clone();
        let clans = clans.clone();
        let mine: Vec<usize> = events
            .iter()
            .copied()
            .filter(|e| e % 8 == worker % 8)
            .collect();
        tasks.spawn(async move {
            let mut applied = 0;
            for e in mine {
                let clan = clans[e % 2].clone();
                let delta = ScoreDelta {
                    war_id: war.clone(),
                    dedupe_id: format!("evt-{e}"),
                    shards: SHARDS,
                    players: vec![PlayerPoints {
                        player_id: PlayerId::new(format!("p{}", e % 10)).unwrap(),
                        clan_id: clan.clone(),
                        points: 3,
                    }],
                    clans: vec![(clan, 3)],
                    battle_kill: None,
                    farm_guard: None,
                    ledger: None,
                };
                if store.apply(delta).await.expect("apply") == ApplyOutcome::Applied {
                    applied += 1;
                }
            }
            applied
        });
    }
    let mut applied = 0;
    while let Some(done) = tasks.join_next().await {
        applied += done.expect("task");
    }
    assert_eq!(
        applied, 400,
        "each event applied by exactly one of its two deliveries"
    );
    let totals = store.clan_totals(&war, SHARDS).await.unwrap();
    assert_eq!(totals[&clans[0]], 600);
    assert_eq!(totals[&clans[1]], 600);
    let players = store.all_players(&war, SHARDS).await.unwrap();
    assert_eq!(players.iter().map(|p| p.points).sum::<i64>(), 1200);
    assert!(
        players.iter().all(|p| p.points == 120),
        "40 events of 3 points each"
    );
}

#[tokio::test]
async fn a_committed_event_reaches_the_bus_through_the_table_stream_with_nobody_publishing_it() {
    let resources = Resources::load();
    let config = aws_config().await;
    let store = Arc::new(store().await);
    // The caller cannot publish at all: delivery must not depend on it.
    let failing = MemoryPublisher::default();
    failing.set_failing(true);
    let deps = Deps {
        store: store.clone(),
        outbox: store.clone(),
        scores: store.clone(),
        events: Arc::new(failing.clone()),
        workflows: Arc::new(MemoryWorkflows::default()),
        clock: Arc::new(FakeClock::at(chrono::Utc::now())),
        ids: Arc::new(UuidIds),
        rules: Arc::new(Rules::default()),
    };
    let tag = unique_tag("outbox");
    let clan_id = ClanId::new(format!("{tag}-clan")).unwrap();
    let event = deps.event(
        None,
        vec![clan_id.clone()],
        clanwar_domain::events::DomainEvent::AllianceInvited {
            alliance_id: clanwar_domain::ids::AllianceId::new(format!("{tag}-al")).unwrap(),
            clan_id: clan_id.clone(),
        },
    );
    // Watch the bus through a queue and rule of this test's own, then commit.
    let queue = observe_bus(
        &config,
        &resources.name("EventBus"),
        &tag,
        event.event_id.as_str(),
    )
    .await;
    let mut tx = clanwar_domain::ports::Transaction::new();
    tx.emit(event.clone());
    deps.commit(tx).await.expect("commit");

    let sqs = aws_sdk_sqs::Client::new(&config);
    wait_until("the committed event on the bus", PATIENCE, || async {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let bodies: Vec<&str> = out.messages().iter().filter_map(|m| m.body()).collect();
        let seen = bodies.iter().any(|b| b.contains(event.event_id.as_str()));
        Seen::ready_if(seen, bodies.len())
    })
    .await;
    // The relay acknowledged it: the outbox no longer holds it, and the caller published nothing.
    wait_until("the outbox entry acknowledged", PATIENCE, || async {
        let pending = store.pending(10_000).await.unwrap();
        let held = pending.iter().any(|e| e.event_id == event.event_id);
        Seen::ready_if(!held, pending.len())
    })
    .await;
    assert!(failing.published().is_empty());
}

/// A queue of the test's own, fed by a rule on the bus that matches one event id.
async fn observe_bus(
    config: &aws_config::SdkConfig,
    bus: &str,
    tag: &str,
    event_id: &str,
) -> String {
    let sqs = aws_sdk_sqs::Client::new(config);
    let events = aws_sdk_eventbridge::Client::new(config);
    let name = format!("{tag}-observer");
    let queue = sqs.create_queue().queue_name(&name).send().await.unwrap();
    let url = queue.queue_url().unwrap().to_owned();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn =
        attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let pattern =
        serde_json::json!({ "source": ["clanwar"], "detail": { "event_id": [event_id] } });
    events
        .put_rule()
        .name(&name)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("observer")
        .arn(arn)
        .build()
        .unwrap();
    events
        .put_targets()
        .rule(&name)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .unwrap();
    url
}
