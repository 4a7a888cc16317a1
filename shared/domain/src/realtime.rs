//! Real-time pushes (SPEC §9, §13): clients subscribe over the WebSocket API to a war or a clan;
//! every domain event is pushed to the subscribers of its war and of each of its clans, and a
//! connection the gateway reports gone is forgotten.

use crate::events::EventEnvelope;
use crate::ids::{ClanId, WarId};
use crate::ports::StoreError;
use crate::{DomainError, DomainResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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

/// Connections and their subscriptions.
#[async_trait]
pub trait Connections: Send + Sync {
    async fn connect(&self, connection: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    async fn subscribe(&self, connection: &str, topic: &Topic) -> Result<(), StoreError>;
    /// Forgets the connection and all its subscriptions.
    async fn disconnect(&self, connection: &str) -> Result<(), StoreError>;
    async fn subscribers(&self, topic: &Topic) -> Result<Vec<String>, StoreError>;
    /// Whether the war or clan the topic names exists (one can only subscribe to those).
    async fn topic_exists(&self, topic: &Topic) -> Result<bool, StoreError>;
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
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime").finish_non_exhaustive()
    }
}

impl Realtime {
    pub async fn connect(&self, connection: &str, at: DateTime<Utc>) -> DomainResult<()> {
        Ok(self.connections.connect(connection, at).await?)
    }

    pub async fn subscribe(
        &self,
        connection: &str,
        request: &SubscribeRequest,
    ) -> DomainResult<Topic> {
        if request.action != "subscribe" {
            return Err(DomainError::invalid("action", "expected \"subscribe\""));
        }
        let topic = request.topic()?;
        if !self.connections.topic_exists(&topic).await? {
            return Err(match topic {
                Topic::War(war) => DomainError::WarNotFound(war),
                Topic::Clan(clan) => DomainError::ClanNotFound(clan),
            });
        }
        self.connections.subscribe(connection, &topic).await?;
        Ok(topic)
    }

    pub async fn disconnect(&self, connection: &str) -> DomainResult<()> {
        Ok(self.connections.disconnect(connection).await?)
    }

    /// Pushes the event (as its JSON envelope) to every subscriber of its war and its clans,
    /// once per connection. A failed push to a live connection is reported, not retried: a
    /// notification is not worth re-sending the whole batch to everyone else.
    pub async fn fan_out(&self, event: &EventEnvelope) -> DomainResult<FanoutReport> {
        let mut topics: Vec<Topic> = event.clan_ids.iter().cloned().map(Topic::Clan).collect();
        if let Some(war) = &event.war_id {
            topics.push(Topic::War(war.clone()));
        }
        let mut targets = BTreeSet::new();
        for topic in &topics {
            targets.extend(self.connections.subscribers(topic).await?);
        }
        let payload =
            serde_json::to_vec(event).map_err(|e| DomainError::invalid("event", e.to_string()))?;
        let mut report = FanoutReport::default();
        for connection in targets {
            match self.pusher.push(&connection, &payload).await {
                Ok(()) => report.delivered += 1,
                Err(PushError::Gone) => {
                    self.connections.disconnect(&connection).await?;
                    report.stale_removed += 1;
                }
                Err(PushError::Failed(reason)) => {
                    tracing::warn!(connection, reason, "push failed");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}

/// In-memory connections and a recording pusher, for tests.
pub mod memory {
    use super::*;
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    pub struct MemoryConnections {
        subs: Mutex<BTreeMap<String, BTreeSet<Topic>>>,
        /// The wars and clans that exist (the only topics one can subscribe to).
        pub existing: Mutex<BTreeSet<Topic>>,
    }

    #[async_trait]
    impl Connections for MemoryConnections {
        async fn connect(&self, connection: &str, _: DateTime<Utc>) -> Result<(), StoreError> {
            self.subs
                .lock()
                .expect("poisoned")
                .entry(connection.to_owned())
                .or_default();
            Ok(())
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
            Ok(())
        }
        async fn topic_exists(&self, topic: &Topic) -> Result<bool, StoreError> {
            Ok(self.existing.lock().expect("poisoned").contains(topic))
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
    use crate::events::DomainEvent;
    use crate::ids::{EventId, TerritoryId};
    use crate::war::Side;

    fn realtime() -> (Realtime, Arc<RecordingPusher>, Arc<MemoryConnections>) {
        let pusher = Arc::new(RecordingPusher::default());
        let connections = Arc::new(MemoryConnections::default());
        connections.existing.lock().unwrap().extend([
            Topic::War(WarId::new("w1").unwrap()),
            Topic::War(WarId::new("other").unwrap()),
            Topic::Clan(ClanId::new("red").unwrap()),
            Topic::Clan(ClanId::new("blue").unwrap()),
        ]);
        (
            Realtime {
                connections: connections.clone(),
                pusher: pusher.clone(),
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
        let (rt, pusher, _) = realtime();
        for c in ["a", "b", "c", "d"] {
            rt.connect(c, Utc::now()).await.unwrap();
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
    async fn a_gone_connection_is_forgotten() {
        let (rt, pusher, connections) = realtime();
        rt.connect("stale", Utc::now()).await.unwrap();
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
        let (rt, _, connections) = realtime();
        rt.connect("x", Utc::now()).await.unwrap();
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
        let (rt, _, _) = realtime();
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
}
