//! Real-time pushes (SPEC §9, §13): player clients subscribe over the WebSocket API to a war or a
//! clan they may see (SPEC §1); every domain event is pushed to the subscribers of its war and of
//! each of its clans, and a connection the gateway reports gone is forgotten.
//!
//! Each connection belongs to the player its session token named (the `$connect` authorizer,
//! [`crate::session`]). A player may see a clan they are on the roster of (leader, officer or
//! member, from the clan registry's snapshot), and a war one of whose clans — either side's
//! declaring clan or an ally that joined — they may see.

use crate::clan::Clan;
use crate::events::EventEnvelope;
use crate::ids::{ClanId, PlayerId, WarId};
use crate::ports::{RecordKey, Store, StoreError};
use crate::war::War;
use crate::{DomainError, DomainResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What a client can subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    War(WarId),
    Clan(ClanId),
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topic::War(w) => write!(f, "war:{w}"),
            Topic::Clan(c) => write!(f, "clan:{c}"),
        }
    }
}

/// The `subscribe` message: `{"action": "subscribe", "war_id": ...}` or `... "clan_id": ...`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    pub action: String,
    #[serde(default)]
    pub war_id: Option<WarId>,
    #[serde(default)]
    pub clan_id: Option<ClanId>,
}

impl SubscribeRequest {
    /// Exactly one of `war_id` and `clan_id`.
    pub fn topic(&self) -> DomainResult<Topic> {
        match (&self.war_id, &self.clan_id) {
            (Some(war), None) => Ok(Topic::War(war.clone())),
            (None, Some(clan)) => Ok(Topic::Clan(clan.clone())),
            _ => Err(DomainError::invalid(
                "war_id",
                "give exactly one of war_id and clan_id",
            )),
        }
    }
}

/// Connections (each with its player) and their subscriptions.
#[async_trait]
pub trait Connections: Send + Sync {
    async fn connect(
        &self,
        connection: &str,
        player: &PlayerId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The player of a connection; `None` for a connection that is not (or no longer) known.
    async fn player_of(&self, connection: &str) -> Result<Option<PlayerId>, StoreError>;
    async fn subscribe(&self, connection: &str, topic: &Topic) -> Result<(), StoreError>;
    /// Forgets the connection and all its subscriptions.
    async fn disconnect(&self, connection: &str) -> Result<(), StoreError>;
    async fn subscribers(&self, topic: &Topic) -> Result<Vec<String>, StoreError>;
}

/// Whether `player` may see a topic whose clans are `clans` (a clan topic: that clan; a war: the
/// clans of both sides, allies included): when they are on one of those clans' rosters.
pub fn may_see(player: &PlayerId, clans: &[Clan]) -> bool {
    clans.iter().any(|clan| clan.role_of(player).is_some())
}

/// The clans whose players may see a war: every clan on either side.
pub fn war_audience(war: &War) -> Vec<ClanId> {
    war.all_clans()
}

/// Why a push did not reach its connection.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The client is gone (API Gateway answers 410): forget the connection.
    #[error("connection gone")]
    Gone,
    #[error("push failed: {0}")]
    Failed(String),
}

/// Sends bytes to one connection (API Gateway's `@connections` in AWS).
#[async_trait]
pub trait Pusher: Send + Sync {
    async fn push(&self, connection: &str, payload: &[u8]) -> Result<(), PushError>;
}

/// What one fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FanoutReport {
    pub delivered: usize,
    pub stale_removed: usize,
    pub failed: usize,
}

/// Connection handling and event fan-out.
#[derive(Clone)]
pub struct Realtime {
    pub connections: Arc<dyn Connections>,
    pub pusher: Arc<dyn Pusher>,
    /// The wars and clans (the clan registry's snapshots) subscriptions are checked against.
    pub store: Arc<dyn Store>,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime").finish_non_exhaustive()
    }
}

impl Realtime {
    /// Records a connection the authorizer let in, with the player its token named.
    pub async fn connect(
        &self,
        connection: &str,
        player: &PlayerId,
        at: DateTime<Utc>,
    ) -> DomainResult<()> {
        Ok(self.connections.connect(connection, player, at).await?)
    }

    /// Subscribes the connection to a war or clan that exists (404 otherwise) and that its
    /// player may see (403 `FORBIDDEN_TOPIC` otherwise). Reads: the connection's player and the
    /// topic's record side by side, then, for a war, its clans in one batch.
    pub async fn subscribe(
        &self,
        connection: &str,
        request: &SubscribeRequest,
    ) -> DomainResult<Topic> {
        if request.action != "subscribe" {
            return Err(DomainError::invalid("action", "expected \"subscribe\""));
        }
        let topic = request.topic()?;
        let key = match &topic {
            Topic::War(war) => RecordKey::War(war.clone()),
            Topic::Clan(clan) => RecordKey::Clan(clan.clone()),
        };
        let (player, record) = futures_util::future::join(
            self.connections.player_of(connection),
            self.store.get(&key),
        )
        .await;
        let (player, record) = (player?, record?);
        let clans: Vec<Clan> = match &topic {
            Topic::War(war_id) => {
                let war =
                    War::try_from(record.ok_or_else(|| DomainError::WarNotFound(war_id.clone()))?)?;
                let keys: Vec<RecordKey> = war_audience(&war)
                    .into_iter()
                    .map(RecordKey::Clan)
                    .collect();
                let mut fetched = self.store.get_many(&keys).await?;
                fetched
                    .many::<Clan>(keys.len())?
                    .into_iter()
                    .flatten()
                    .collect()
            }
            Topic::Clan(clan_id) => {
                vec![Clan::try_from(record.ok_or_else(|| {
                    DomainError::ClanNotFound(clan_id.clone())
                })?)?]
            }
        };
        let forbidden = |player_id: String| DomainError::TopicForbidden {
            player_id,
            topic: topic.to_string(),
        };
        match player {
            Some(player) if may_see(&player, &clans) => {}
            Some(player) => return Err(forbidden(player.to_string())),
            None => return Err(forbidden("(unknown connection)".into())),
        }
        self.connections.subscribe(connection, &topic).await?;
        Ok(topic)
    }

    pub async fn disconnect(&self, connection: &str) -> DomainResult<()> {
        Ok(self.connections.disconnect(connection).await?)
    }

    /// Pushes the event (as its JSON envelope) to every subscriber of its war and its clans,
    /// once per connection; [`Realtime::fan_out_all`] for one event.
    pub async fn fan_out(&self, event: &EventEnvelope) -> DomainResult<FanoutReport> {
        self.fan_out_all(std::slice::from_ref(event))
            .await
            .pop()
            .expect("one report per event")
    }

    /// Pushes a batch of events, each (as its JSON envelope) to every subscriber of its war and
    /// its clans, once per connection, and reports on each event in batch order.
    ///
    /// The batch costs one subscriber read per distinct topic, all side by side, then one push
    /// per (connection, event): each connection gets its events in batch order, up to
    /// [`PUSH_CONCURRENCY`] connections at once. An event fails (to be retried) only when a
    /// subscriber read or forgetting a gone connection failed; a failed push to a live
    /// connection is reported, not retried: a notification is not worth re-sending the whole
    /// batch to everyone else.
    pub async fn fan_out_all(&self, events: &[EventEnvelope]) -> Vec<DomainResult<FanoutReport>> {
        let topics: Vec<Vec<Topic>> = events.iter().map(topics_of).collect();
        let distinct: BTreeSet<&Topic> = topics.iter().flatten().collect();
        let read: BTreeMap<&Topic, Result<Vec<String>, StoreError>> =
            futures_util::stream::iter(distinct)
                .map(|topic| async move { (topic, self.connections.subscribers(topic).await) })
                .buffer_unordered(PUSH_CONCURRENCY)
                .collect()
                .await;

        // Each event's payload and targets, or why it fails.
        let mut results: Vec<DomainResult<FanoutReport>> = Vec::with_capacity(events.len());
        let mut payloads: Vec<Vec<u8>> = Vec::with_capacity(events.len());
        let mut queues: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, (event, topics)) in events.iter().zip(&topics).enumerate() {
            let payload =
                serde_json::to_vec(event).map_err(|e| DomainError::invalid("event", e.to_string()));
            let mut targets = BTreeSet::new();
            let mut failed = None;
            for topic in topics {
                match &read[topic] {
                    Ok(subscribers) => targets.extend(subscribers.iter().map(String::as_str)),
                    Err(e) => {
                        failed = Some(DomainError::from(StoreError::Unavailable {
                            message: format!("reading the subscribers of {topic}: {e}"),
                            source: None,
                        }))
                    }
                }
            }
            match (payload, failed) {
                (Ok(payload), None) => {
                    payloads.push(payload);
                    for connection in targets {
                        queues.entry(connection).or_default().push(i);
                    }
                    results.push(Ok(FanoutReport::default()));
                }
                (Err(e), _) | (_, Some(e)) => {
                    payloads.push(Vec::new());
                    results.push(Err(e));
                }
            }
        }

        let outcomes: Vec<PushOutcome> = futures_util::stream::iter(queues)
            .map(|(connection, queue)| self.push_in_order(connection, queue, &payloads))
            .buffer_unordered(PUSH_CONCURRENCY)
            .collect()
            .await;
        for (deliveries, forget_failed) in outcomes {
            for (i, delivery) in deliveries {
                if let Ok(report) = &mut results[i] {
                    match delivery {
                        Delivery::Delivered => report.delivered += 1,
                        Delivery::Gone => report.stale_removed += 1,
                        Delivery::Failed => report.failed += 1,
                    }
                }
            }
            if let Some((i, e)) = forget_failed {
                results[i] = Err(e.into());
            }
        }
        results
    }

    /// Pushes one connection its events in order. A connection that is gone is forgotten once
    /// and gets nothing more; if forgetting it fails, the event that found it gone fails.
    async fn push_in_order(
        &self,
        connection: &str,
        queue: Vec<usize>,
        payloads: &[Vec<u8>],
    ) -> PushOutcome {
        let mut deliveries = Vec::with_capacity(queue.len());
        for i in queue {
            match self.pusher.push(connection, &payloads[i]).await {
                Ok(()) => deliveries.push((i, Delivery::Delivered)),
                Err(PushError::Gone) => {
                    deliveries.push((i, Delivery::Gone));
                    let forgotten = self.connections.disconnect(connection).await;
                    return (deliveries, forgotten.err().map(|e| (i, e)));
                }
                Err(PushError::Failed(reason)) => {
                    tracing::warn!(connection, reason, "push failed");
                    deliveries.push((i, Delivery::Failed));
                }
            }
        }
        (deliveries, None)
    }
}

/// Connections pushed to (and distinct topics read) at once by one fan-out.
pub const PUSH_CONCURRENCY: usize = 16;

/// One connection's pushes: each event's delivery (by index), and the stale-connection
/// removal that failed, if any.
type PushOutcome = (Vec<(usize, Delivery)>, Option<(usize, StoreError)>);

/// What became of one push.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    Delivered,
    Gone,
    Failed,
}

/// The topics an event is pushed to: each of its clans, and its war.
fn topics_of(event: &EventEnvelope) -> Vec<Topic> {
    let mut topics: Vec<Topic> = event.clan_ids.iter().cloned().map(Topic::Clan).collect();
    if let Some(war) = &event.war_id {
        topics.push(Topic::War(war.clone()));
    }
    topics
}

/// In-memory connections and a recording pusher, for tests.
#[cfg(any(test, feature = "testing"))]
pub mod memory {
    use super::*;
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    pub struct MemoryConnections {
        subs: Mutex<BTreeMap<String, BTreeSet<Topic>>>,
        players: Mutex<BTreeMap<String, PlayerId>>,
    }

    #[async_trait]
    impl Connections for MemoryConnections {
        async fn connect(
            &self,
            connection: &str,
            player: &PlayerId,
            _: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.subs
                .lock()
                .expect("poisoned")
                .entry(connection.to_owned())
                .or_default();
            self.players
                .lock()
                .expect("poisoned")
                .insert(connection.to_owned(), player.clone());
            Ok(())
        }
        async fn player_of(&self, connection: &str) -> Result<Option<PlayerId>, StoreError> {
            Ok(self
                .players
                .lock()
                .expect("poisoned")
                .get(connection)
                .cloned())
        }
        async fn subscribe(&self, connection: &str, topic: &Topic) -> Result<(), StoreError> {
            let mut subs = self.subs.lock().expect("poisoned");
            subs.entry(connection.to_owned())
                .or_default()
                .insert(topic.clone());
            Ok(())
        }
        async fn disconnect(&self, connection: &str) -> Result<(), StoreError> {
            self.subs.lock().expect("poisoned").remove(connection);
            self.players.lock().expect("poisoned").remove(connection);
            Ok(())
        }
        async fn subscribers(&self, topic: &Topic) -> Result<Vec<String>, StoreError> {
            let subs = self.subs.lock().expect("poisoned");
            Ok(subs
                .iter()
                .filter(|(_, t)| t.contains(topic))
                .map(|(c, _)| c.clone())
                .collect())
        }
    }

    /// Records pushes; connections listed in `gone` answer 410.
    #[derive(Debug, Default)]
    pub struct RecordingPusher {
        pub pushed: Mutex<Vec<(String, Vec<u8>)>>,
        pub gone: Mutex<HashSet<String>>,
    }

    #[async_trait]
    impl Pusher for RecordingPusher {
        async fn push(&self, connection: &str, payload: &[u8]) -> Result<(), PushError> {
            if self.gone.lock().expect("poisoned").contains(connection) {
                return Err(PushError::Gone);
            }
            self.pushed
                .lock()
                .expect("poisoned")
                .push((connection.to_owned(), payload.to_vec()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::*;
    use super::*;
    use crate::clan::ClanSnapshot;
    use crate::events::DomainEvent;
    use crate::ids::{EventId, TerritoryId};
    use crate::memory::MemoryStore;
    use crate::ports::Transaction;
    use crate::war::{PhaseDurations, Side};

    fn pid(id: &str) -> PlayerId {
        PlayerId::new(id).unwrap()
    }

    /// A clan `<id>` whose leader is `<id>-leader` and whose one member is `<id>-m`.
    fn clan(id: &str) -> Clan {
        Clan::from_snapshot(
            ClanId::new(id).unwrap(),
            ClanSnapshot {
                name: format!("Clan {id}"),
                leader_id: pid(&format!("{id}-leader")),
                officer_ids: vec![pid(&format!("{id}-officer"))],
                member_ids: vec![pid(&format!("{id}-m"))],
                level: 5,
                rating: None,
                active: true,
            },
        )
    }

    fn war(id: &str, attacker: &str, defender: &str) -> War {
        War::declare(
            WarId::new(id).unwrap(),
            ClanId::new(attacker).unwrap(),
            ClanId::new(defender).unwrap(),
            vec![TerritoryId::new("t1").unwrap()],
            PhaseDurations {
                declared_s: 60,
                preparation_s: 60,
                active_s: 60,
                ending_s: 60,
            },
            Utc::now(),
        )
    }

    /// Clans red, blue, green (red's ally, joined on the attacking side) and grey; wars w1
    /// (red + green vs blue) and other (grey vs blue).
    async fn realtime() -> (Realtime, Arc<RecordingPusher>, Arc<MemoryConnections>) {
        let pusher = Arc::new(RecordingPusher::default());
        let connections = Arc::new(MemoryConnections::default());
        let store = Arc::new(MemoryStore::new());
        let mut tx = Transaction::new();
        for id in ["red", "blue", "green", "grey"] {
            tx.insert(&mut clan(id));
        }
        let mut w1 = war("w1", "red", "blue");
        w1.sides
            .attacker
            .clan_ids
            .push(ClanId::new("green").unwrap());
        tx.insert(&mut w1);
        tx.insert(&mut war("other", "grey", "blue"));
        store.commit(tx).await.unwrap();
        (
            Realtime {
                connections: connections.clone(),
                pusher: pusher.clone(),
                store,
            },
            pusher,
            connections,
        )
    }

    fn subscribe(war: Option<&str>, clan: Option<&str>) -> SubscribeRequest {
        SubscribeRequest {
            action: "subscribe".into(),
            war_id: war.map(|w| WarId::new(w).unwrap()),
            clan_id: clan.map(|c| ClanId::new(c).unwrap()),
        }
    }

    fn captured() -> EventEnvelope {
        EventEnvelope::new(
            EventId::new("e1").unwrap(),
            Utc::now(),
            Some(WarId::new("w1").unwrap()),
            vec![ClanId::new("red").unwrap(), ClanId::new("blue").unwrap()],
            DomainEvent::TerritoryCaptured {
                territory_id: TerritoryId::new("t1").unwrap(),
                from_clan_id: Some(ClanId::new("blue").unwrap()),
                to_clan_id: ClanId::new("red").unwrap(),
                side: Side::Attacker,
                points: 100,
            },
        )
    }

    #[tokio::test]
    async fn subscribers_of_the_war_and_its_clans_get_the_event_once_each() {
        let (rt, pusher, _) = realtime().await;
        for (c, player) in [
            ("a", "red-m"),
            ("b", "red-leader"),
            ("c", "blue-m"),
            ("d", "grey-m"),
        ] {
            rt.connect(c, &pid(player), Utc::now()).await.unwrap();
        }
        rt.subscribe("a", &subscribe(Some("w1"), None))
            .await
            .unwrap();
        rt.subscribe("b", &subscribe(None, Some("red")))
            .await
            .unwrap();
        rt.subscribe("c", &subscribe(Some("w1"), None))
            .await
            .unwrap();
        rt.subscribe("c", &subscribe(None, Some("blue")))
            .await
            .unwrap();
        rt.subscribe("d", &subscribe(Some("other"), None))
            .await
            .unwrap();
        let report = rt.fan_out(&captured()).await.unwrap();
        assert_eq!(report.delivered, 3);
        let pushed = pusher.pushed.lock().unwrap();
        let targets: BTreeSet<&str> = pushed.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(targets, BTreeSet::from(["a", "b", "c"]));
        let body: serde_json::Value = serde_json::from_slice(&pushed[0].1).unwrap();
        assert_eq!(body["type"], "TerritoryCaptured");
    }

    #[tokio::test]
    async fn a_player_sees_the_wars_of_their_clans_and_allies_and_their_own_clans_only() {
        let (rt, _, connections) = realtime().await;
        for (c, player) in [
            ("officer", "red-officer"),
            ("ally", "green-m"),
            ("defender", "blue-leader"),
            ("outsider", "grey-m"),
            ("clanless", "nobody"),
        ] {
            rt.connect(c, &pid(player), Utc::now()).await.unwrap();
        }
        for c in ["officer", "ally", "defender"] {
            assert_eq!(
                rt.subscribe(c, &subscribe(Some("w1"), None)).await.unwrap(),
                Topic::War(WarId::new("w1").unwrap()),
                "{c}"
            );
        }
        for c in ["outsider", "clanless"] {
            let err = rt
                .subscribe(c, &subscribe(Some("w1"), None))
                .await
                .unwrap_err();
            assert_eq!(
                (err.class(), err.code()),
                (crate::ErrorClass::Forbidden, "FORBIDDEN_TOPIC"),
                "{c}"
            );
            assert_eq!(err.details()["topic"], "war:w1");
        }
        // Clan topics: one's own clan only (an ally's clan is not one's own).
        assert!(rt
            .subscribe("ally", &subscribe(None, Some("green")))
            .await
            .is_ok());
        for (c, clan) in [("ally", "red"), ("outsider", "red"), ("defender", "red")] {
            let err = rt
                .subscribe(c, &subscribe(None, Some(clan)))
                .await
                .unwrap_err();
            assert_eq!(err.code(), "FORBIDDEN_TOPIC", "{c} -> {clan}");
        }
        // A refused subscription is not recorded.
        let red = Topic::Clan(ClanId::new("red").unwrap());
        assert!(connections.subscribers(&red).await.unwrap().is_empty());
        // A connection nobody authenticated sees nothing.
        let err = rt
            .subscribe("unknown", &subscribe(None, Some("red")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "FORBIDDEN_TOPIC");
    }

    #[tokio::test]
    async fn a_gone_connection_is_forgotten() {
        let (rt, pusher, connections) = realtime().await;
        rt.connect("stale", &pid("red-m"), Utc::now())
            .await
            .unwrap();
        rt.subscribe("stale", &subscribe(Some("w1"), None))
            .await
            .unwrap();
        pusher.gone.lock().unwrap().insert("stale".into());
        let report = rt.fan_out(&captured()).await.unwrap();
        assert_eq!(report.stale_removed, 1);
        assert!(connections
            .subscribers(&Topic::War(WarId::new("w1").unwrap()))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn only_wars_and_clans_that_exist_can_be_subscribed_to() {
        let (rt, _, connections) = realtime().await;
        rt.connect("x", &pid("red-m"), Utc::now()).await.unwrap();
        let err = rt
            .subscribe("x", &subscribe(Some("no-such-war"), None))
            .await
            .unwrap_err();
        assert_eq!(
            (err.class(), err.code()),
            (crate::ErrorClass::NotFound, "WAR_NOT_FOUND")
        );
        let err = rt
            .subscribe("x", &subscribe(None, Some("no-such-clan")))
            .await
            .unwrap_err();
        assert_eq!(
            (err.class(), err.code()),
            (crate::ErrorClass::NotFound, "CLAN_NOT_FOUND")
        );
        let war = Topic::War(WarId::new("no-such-war").unwrap());
        assert!(connections.subscribers(&war).await.unwrap().is_empty());
        assert!(rt
            .subscribe("x", &subscribe(Some("w1"), None))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_subscription_needs_exactly_one_target() {
        let (rt, _, _) = realtime().await;
        assert_eq!(
            rt.subscribe("x", &subscribe(None, None))
                .await
                .unwrap_err()
                .class(),
            crate::ErrorClass::Malformed
        );
        assert_eq!(
            rt.subscribe("x", &subscribe(Some("w"), Some("c")))
                .await
                .unwrap_err()
                .class(),
            crate::ErrorClass::Malformed
        );
        let bad: Result<SubscribeRequest, _> =
            serde_json::from_str(r#"{"action":"subscribe","war_id":"w","extra":1}"#);
        assert!(bad.is_err());
    }

    /// Connections that count the subscriber reads, and fail them for the topics in `broken`.
    struct Counted {
        inner: Arc<MemoryConnections>,
        reads: std::sync::Mutex<Vec<Topic>>,
        broken: BTreeSet<Topic>,
    }

    #[async_trait]
    impl Connections for Counted {
        async fn connect(
            &self,
            connection: &str,
            player: &PlayerId,
            at: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.inner.connect(connection, player, at).await
        }
        async fn player_of(&self, connection: &str) -> Result<Option<PlayerId>, StoreError> {
            self.inner.player_of(connection).await
        }
        async fn subscribe(&self, connection: &str, topic: &Topic) -> Result<(), StoreError> {
            self.inner.subscribe(connection, topic).await
        }
        async fn disconnect(&self, connection: &str) -> Result<(), StoreError> {
            self.inner.disconnect(connection).await
        }
        async fn subscribers(&self, topic: &Topic) -> Result<Vec<String>, StoreError> {
            self.reads.lock().unwrap().push(topic.clone());
            if self.broken.contains(topic) {
                return Err(StoreError::Unavailable {
                    message: "throttled".into(),
                    source: None,
                });
            }
            self.inner.subscribers(topic).await
        }
    }

    /// `realtime()` whose connections count reads; "a" watches w1, "c" w1 and blue, "d" other.
    async fn counted(broken: &[Topic]) -> (Realtime, Arc<RecordingPusher>, Arc<Counted>) {
        let (rt, pusher, inner) = realtime().await;
        let counted = Arc::new(Counted {
            inner,
            reads: Default::default(),
            broken: broken.iter().cloned().collect(),
        });
        let rt = Realtime {
            connections: counted.clone(),
            ..rt
        };
        for (c, player, war, clan) in [
            ("a", "red-m", Some("w1"), None),
            ("c", "blue-m", Some("w1"), Some("blue")),
            ("d", "grey-m", Some("other"), None),
        ] {
            rt.connect(c, &pid(player), Utc::now()).await.unwrap();
            rt.subscribe(c, &subscribe(war, None)).await.unwrap();
            if clan.is_some() {
                rt.subscribe(c, &subscribe(None, clan)).await.unwrap();
            }
        }
        (rt, pusher, counted)
    }

    /// Event `id` of war `war` between `clans`.
    fn event_of(id: &str, war: &str, clans: [&str; 2]) -> EventEnvelope {
        EventEnvelope::new(
            EventId::new(id).unwrap(),
            Utc::now(),
            Some(WarId::new(war).unwrap()),
            clans.iter().map(|c| ClanId::new(*c).unwrap()).collect(),
            DomainEvent::WarPhaseChanged {
                from: crate::war::WarStatus::Active,
                to: crate::war::WarStatus::Ending,
                version: 3,
            },
        )
    }

    fn pushed_ids(pusher: &RecordingPusher, connection: &str) -> Vec<String> {
        pusher
            .pushed
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == connection)
            .map(|(_, body)| {
                let body: serde_json::Value = serde_json::from_slice(body).unwrap();
                body["event_id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batch_reads_each_topic_once_and_gives_each_connection_its_events_in_order() {
        let (rt, pusher, counted) = counted(&[]).await;
        let mut batch: Vec<EventEnvelope> = (1..=6)
            .map(|n| event_of(&format!("e{n}"), "w1", ["red", "blue"]))
            .collect();
        batch.push(event_of("o1", "other", ["grey", "blue"]));
        let reports = rt.fan_out_all(&batch).await;
        let reports: Vec<FanoutReport> = reports.into_iter().map(Result::unwrap).collect();
        // Seven events over five distinct topics (red, blue, grey, w1, other): five reads, not
        // 7 × 3 = 21.
        let mut reads = counted.reads.lock().unwrap().clone();
        reads.sort();
        let distinct: Vec<Topic> = BTreeSet::<Topic>::from_iter(reads.iter().cloned())
            .into_iter()
            .collect();
        assert_eq!(reads, distinct, "each topic read once");
        assert_eq!(reads.len(), 5);
        let in_order: Vec<String> = (1..=6).map(|n| format!("e{n}")).collect();
        assert_eq!(pushed_ids(&pusher, "a"), in_order);
        // "c" watches w1 and blue: still once per event, and o1 (blue's other war) too.
        let mut c_wants = in_order.clone();
        c_wants.push("o1".into());
        assert_eq!(pushed_ids(&pusher, "c"), c_wants);
        assert_eq!(pushed_ids(&pusher, "d"), vec!["o1".to_owned()]);
        assert!(reports[..6].iter().all(|r| r.delivered == 2), "{reports:?}");
        assert_eq!(reports[6].delivered, 2);
    }

    #[tokio::test]
    async fn a_gone_connection_in_a_batch_is_forgotten_once_and_gets_nothing_more() {
        let (rt, pusher, counted) = counted(&[]).await;
        pusher.gone.lock().unwrap().insert("a".into());
        let batch: Vec<EventEnvelope> = (1..=3)
            .map(|n| event_of(&format!("e{n}"), "w1", ["red", "blue"]))
            .collect();
        let reports: Vec<FanoutReport> = rt
            .fan_out_all(&batch)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            reports.iter().map(|r| r.stale_removed).collect::<Vec<_>>(),
            [1, 0, 0]
        );
        assert!(reports.iter().all(|r| r.delivered == 1));
        let w1 = Topic::War(WarId::new("w1").unwrap());
        assert_eq!(counted.inner.subscribers(&w1).await.unwrap(), vec!["c"]);
    }

    #[tokio::test]
    async fn a_failed_subscriber_read_fails_only_the_events_that_need_it() {
        let grey = Topic::Clan(ClanId::new("grey").unwrap());
        let (rt, pusher, _) = counted(&[grey]).await;
        let batch = vec![
            event_of("e1", "w1", ["red", "blue"]),
            event_of("o1", "other", ["grey", "blue"]),
            event_of("e2", "w1", ["red", "blue"]),
        ];
        let reports = rt.fan_out_all(&batch).await;
        assert!(reports[0].is_ok() && reports[2].is_ok(), "{reports:?}");
        let failed = reports[1].as_ref().unwrap_err();
        assert_eq!(failed.class(), crate::ErrorClass::Unavailable, "{failed}");
        // The failed event reached nobody (it is retried whole); the others were delivered.
        assert_eq!(pushed_ids(&pusher, "d"), Vec::<String>::new());
        assert_eq!(pushed_ids(&pusher, "c"), vec!["e1", "e2"]);
    }
}
