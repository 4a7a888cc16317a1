//! The optional push feed: a WebSocket client subscribed to the war (`{"action":"subscribe",
//! "war_id": ...}`) whose pushed domain events appear in the live view. It connects as a player
//! client would: as the attacking clan's leader, with a session token the demo (playing the
//! game server) asks the API for.

use crate::api::Api;
use crate::cast::Cast;
use crate::live::Live;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Connects, subscribes and reports every push until aborted; failures are shown in the view
/// (the feed is optional, the API calls are what the demo stands on).
pub fn spawn(url: String, api: Api, war_id: String, live: Live, cast: Arc<Cast>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(message) = listen(&url, &api, &war_id, &live, &cast).await {
            live.push(format!("websocket: {message}"));
            live.milestone(format!("websocket feed stopped: {message}"));
        }
    })
}

async fn listen(
    url: &str,
    api: &Api,
    war_id: &str,
    live: &Live,
    cast: &Cast,
) -> Result<(), String> {
    let player = &cast.attacker().leader;
    let session: Value = api
        .post(
            &format!("/players/{player}/session-token"),
            None,
            &json!({}),
        )
        .await
        .map_err(|e| format!("session token: {e}"))?;
    let token = session["token"]
        .as_str()
        .ok_or_else(|| format!("session token: no token in {session}"))?;
    // The token is a credential: never shown, only sent.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}?token={token}"))
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let subscribe = json!({ "action": "subscribe", "war_id": war_id });
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    live.milestone(format!(
        "websocket connected to {url} as {player}, subscribed to the war"
    ));
    while let Some(message) = socket.next().await {
        match message.map_err(|e| format!("read: {e}"))? {
            Message::Text(text) => {
                if let Some(line) = describe(&text, cast) {
                    live.push(line);
                }
            }
            Message::Close(_) => return Err("the server closed the connection".into()),
            _ => {}
        }
    }
    Err("the connection ended".into())
}

/// A short line for a pushed event (`TerritoryCaptured Iron Ford → Crimson Wolves`); the
/// subscription acknowledgement and unreadable frames show nothing.
pub fn describe(text: &str, cast: &Cast) -> Option<String> {
    let event: Value = serde_json::from_str(text).ok()?;
    let kind = event["type"].as_str()?;
    let detail = &event["detail"];
    let extra = match kind {
        "TerritoryCaptured" => format!(
            " {} → {}",
            cast.territory_name(detail["territory_id"].as_str().unwrap_or("?")),
            cast.clan_name(detail["to_clan_id"].as_str().unwrap_or("?"))
        ),
        "WarPhaseChanged" => detail["to"]
            .as_str()
            .map(|to| format!(" → {to}"))
            .unwrap_or_default(),
        "AllyJoined" => detail["clan_id"]
            .as_str()
            .map(|c| format!(" {}", cast.clan_name(c)))
            .unwrap_or_default(),
        _ => String::new(),
    };
    Some(format!("{kind}{extra}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn pushes_read_as_short_lines() {
        let cast = Cast::new("dt", 10, &mut Rng::new(1));
        let capture = r#"{"type":"TerritoryCaptured","war_id":"w","detail":{"territory_id":"dt-ford","to_clan_id":"dt-wolves"}}"#;
        assert_eq!(
            describe(capture, &cast).as_deref(),
            Some("TerritoryCaptured Iron Ford → Crimson Wolves")
        );
        assert_eq!(
            describe(r#"{"type":"BattleCreated"}"#, &cast).as_deref(),
            Some("BattleCreated")
        );
        assert_eq!(describe(r#"{"subscribed":"war#w"}"#, &cast), None);
        assert_eq!(describe("not json", &cast), None);
    }
}
