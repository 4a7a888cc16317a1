//! Real-time pushes: a WebSocket client subscribed to a war sees its `WarDeclared` and
//! `TerritoryCaptured` events, pushed by the event handler through the management API.

use clanwar_integration_tests::wait::{next_matching, until, PATIENCE, SLACK};
use clanwar_integration_tests::{unique_tag, Api, Resources};
use futures_util::{SinkExt, Stream, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(url: &str, topic: Value) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    let mut message = json!({ "action": "subscribe" });
    message
        .as_object_mut()
        .unwrap()
        .extend(topic.as_object().unwrap().clone());
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
    // A push of the topic may arrive before the reply (a war moving on at once): skip it.
    let reply = next_matching(
        "a subscription reply",
        PATIENCE,
        &mut pushes(&mut socket),
        |m| m.get("subscribed").is_some() || m.get("error").is_some(),
    )
    .await;
    assert!(reply["subscribed"].is_string(), "{reply}");
    socket
}

/// The JSON texts the socket receives (other frames skipped; the stream ends with the socket).
fn pushes(socket: &mut Socket) -> impl Stream<Item = Value> + Unpin + '_ {
    socket
        .take_while(|frame| std::future::ready(frame.is_ok()))
        .filter_map(|frame| {
            std::future::ready(match frame {
                Ok(Message::Text(text)) => serde_json::from_str(&text).ok(),
                _ => None,
            })
        })
}

/// Reads pushes until one of type `kind` arrives.
async fn wait_for(socket: &mut Socket, kind: &str) -> Value {
    let what = format!("a {kind} push");
    next_matching(&what, PATIENCE, &mut pushes(socket), |event| {
        event["type"] == kind
    })
    .await
}

#[tokio::test]
async fn a_subscribed_client_sees_war_declared_and_territory_captured() {
    let api = Api::local();
    let ws_url = Resources::load().url("WebSocketApi");
    let t = unique_tag("ws");
    let (att, def) = (format!("{t}-att"), format!("{t}-def"));
    for id in [&att, &def] {
        let members: Vec<String> = (0..10).map(|i| format!("{id}-m{i}")).collect();
        let body = json!({"name": id, "leader_id": format!("{id}-leader"), "member_ids": members, "level": 3});
        assert_eq!(api.put(&format!("/clans/{id}"), None, body).await.0, 200);
    }
    let land = format!("{t}-land");
    let body = json!({"name": "L", "region": "r", "x": 1.0, "y": 1.0, "tier": 1, "resource_yield": 5, "owner_clan_id": def});
    assert_eq!(
        api.put(&format!("/territories/{land}"), None, body).await.0,
        200
    );

    // Subscribed to the defending clan before the war exists; to the war once it does.
    let mut clan_socket = subscribe(&ws_url, json!({ "clan_id": def })).await;
    let declaration = json!({
        "attacker_clan_id": att, "defender_clan_id": def, "territory_ids": [land],
        "phase_durations": { "declared_s": 1, "preparation_s": 1, "active_s": 30, "ending_s": 1 }
    });
    let (status, war) = api
        .post("/wars", Some(&format!("{att}-leader")), declaration)
        .await;
    assert_eq!(status, 201, "{war}");
    let war_id = war["war_id"].as_str().unwrap().to_owned();
    let declared = wait_for(&mut clan_socket, "WarDeclared").await;
    assert_eq!(declared["war_id"], war_id.as_str());

    let mut war_socket = subscribe(&ws_url, json!({ "war_id": war_id })).await;
    let active_at = serde_json::from_value(war["phase_deadlines"]["active_at"].clone()).unwrap();
    api.wait_for_status(&war_id, "ACTIVE", until(active_at) + SLACK)
        .await;
    let (status, capture) = api
        .post(
            &format!("/territories/{land}/capture"),
            Some(&format!("{att}-m0")),
            json!({"war_id": war_id, "clan_id": att}),
        )
        .await;
    assert_eq!(status, 200, "{capture}");
    let captured = wait_for(&mut war_socket, "TerritoryCaptured").await;
    assert_eq!(captured["detail"]["to_clan_id"], att.as_str());
    assert_eq!(captured["detail"]["territory_id"], land.as_str());
}

/// Issue 13: a hostile frame gets an error reply and the connection stays; a subscription to a
/// war or clan that does not exist is refused with the SPEC §10 error body, not acknowledged.
#[tokio::test]
async fn hostile_frames_and_unknown_topics_get_error_replies_on_a_connection_that_stays() {
    let api = Api::local();
    let ws_url = Resources::load().url("WebSocketApi");
    let t = unique_tag("wsbad");
    let clan = format!("{t}-clan");
    let members: Vec<String> = (0..10).map(|i| format!("{clan}-m{i}")).collect();
    let body = json!({"name": clan, "leader_id": format!("{clan}-leader"), "member_ids": members, "level": 3});
    assert_eq!(api.put(&format!("/clans/{clan}"), None, body).await.0, 200);

    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("websocket connects");
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let nested_action = format!(
        r#"{{"action": "subscribe", "war_id": {}1{}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    for frame in [deep, nested_action] {
        socket.send(Message::text(frame)).await.unwrap();
        let reply = next_matching("an error reply", PATIENCE, &mut pushes(&mut socket), |_| {
            true
        })
        .await;
        assert!(
            reply["message"].is_string() || reply["error"]["code"].is_string(),
            "{reply}"
        );
        assert!(reply.get("subscribed").is_none(), "{reply}");
    }
    for (topic, code) in [
        (
            json!({ "action": "subscribe", "war_id": format!("{t}-no-war") }),
            "WAR_NOT_FOUND",
        ),
        (
            json!({ "action": "subscribe", "clan_id": format!("{t}-no-clan") }),
            "CLAN_NOT_FOUND",
        ),
    ] {
        socket.send(Message::text(topic.to_string())).await.unwrap();
        let reply = next_matching("an error reply", PATIENCE, &mut pushes(&mut socket), |_| {
            true
        })
        .await;
        assert_eq!(reply["error"]["code"], code, "{reply}");
        assert!(reply["error"]["message"].is_string(), "{reply}");
        assert!(reply.get("subscribed").is_none(), "{reply}");
    }
    // The same connection still works.
    let topic = json!({ "action": "subscribe", "clan_id": clan });
    socket.send(Message::text(topic.to_string())).await.unwrap();
    // A push of the topic may arrive before the reply (a war moving on at once): skip it.
    let reply = next_matching(
        "a subscription reply",
        PATIENCE,
        &mut pushes(&mut socket),
        |m| m.get("subscribed").is_some() || m.get("error").is_some(),
    )
    .await;
    assert_eq!(reply["subscribed"], format!("clan:{clan}"), "{reply}");
}
