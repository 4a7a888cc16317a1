//! Real-time pushes and the WebSocket trust boundary: player clients connect with a session
//! token (the `$connect` REQUEST authorizer), subscribe only to wars and clans their player may
//! see, and see the war's `WarDeclared` and `TerritoryCaptured` events pushed by the event
//! handler through the management API.

use clanwar_domain::ids::PlayerId;
use clanwar_domain::session::{sign, Claims, SigningKey};
use clanwar_integration_tests::wait::{next_matching, until, wait_until, Seen, PATIENCE, SLACK};
use clanwar_integration_tests::{aws_config, unique_tag, Api, Resources};
use futures_util::{SinkExt, Stream, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket; `Err(status)` when the handshake is refused with an HTTP status.
pub(crate) async fn open(url: &str) -> Result<Socket, u16> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("websocket handshake with {url} failed: {other}"),
    }
}

/// Sends a subscription and returns its reply (`{"subscribed"}` or a §10 `{"error"}`).
pub(crate) async fn request_subscription(socket: &mut Socket, topic: Value) -> Value {
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
    next_matching(
        "a subscription reply",
        PATIENCE,
        &mut pushes(socket),
        |m: &Value| m.get("subscribed").is_some() || m.get("error").is_some(),
    )
    .await
}

/// Connects as `player` and subscribes to `topic`.
async fn subscribe_as(api: &Api, player: &str, topic: Value) -> Socket {
    let url = api.websocket_url_as(player).await;
    let mut socket = open(&url).await.expect("a player with a token connects");
    let reply = request_subscription(&mut socket, topic).await;
    assert!(reply["subscribed"].is_string(), "{reply}");
    socket
}

/// The JSON texts the socket receives (other frames skipped; the stream ends with the socket).
pub(crate) fn pushes(socket: &mut Socket) -> impl Stream<Item = Value> + Unpin + '_ {
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

async fn register_clan(api: &Api, id: &str) {
    let members: Vec<String> = (0..10).map(|i| format!("{id}-m{i}")).collect();
    let body =
        json!({"name": id, "leader_id": format!("{id}-leader"), "member_ids": members, "level": 3});
    assert_eq!(api.put(&format!("/clans/{id}"), None, body).await.0, 200);
}

/// Two clans, a territory of the defender and a war between them (short phases).
async fn war_between(api: &Api, att: &str, def: &str, land: &str) -> Value {
    register_clan(api, att).await;
    register_clan(api, def).await;
    let body = json!({"name": "L", "region": "r", "x": 1.0, "y": 1.0, "tier": 1, "resource_yield": 5, "owner_clan_id": def});
    assert_eq!(
        api.put(&format!("/territories/{land}"), None, body).await.0,
        200
    );
    let declaration = json!({
        "attacker_clan_id": att, "defender_clan_id": def, "territory_ids": [land],
        "phase_durations": { "declared_s": 1, "preparation_s": 1, "active_s": 30, "ending_s": 1 }
    });
    let (status, war) = api
        .post("/wars", Some(&format!("{att}-leader")), declaration)
        .await;
    assert_eq!(status, 201, "{war}");
    war
}

#[tokio::test]
async fn a_subscribed_client_sees_war_declared_and_territory_captured() {
    let api = Api::local();
    let t = unique_tag("ws");
    let (att, def, land) = (format!("{t}-att"), format!("{t}-def"), format!("{t}-land"));
    register_clan(&api, &att).await;
    register_clan(&api, &def).await;
    let body = json!({"name": "L", "region": "r", "x": 1.0, "y": 1.0, "tier": 1, "resource_yield": 5, "owner_clan_id": def});
    assert_eq!(
        api.put(&format!("/territories/{land}"), None, body).await.0,
        200
    );

    // A defender's member subscribed to their clan before the war exists; an attacker's
    // member to the war once it does.
    let mut clan_socket = subscribe_as(&api, &format!("{def}-m3"), json!({ "clan_id": def })).await;
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

    let mut war_socket =
        subscribe_as(&api, &format!("{att}-m0"), json!({ "war_id": war_id })).await;
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

/// SPEC §1: a player sees the wars of their clans (and their allies' wars only through their
/// own clan's side) and their own clans; anything else is refused with the §10 body, and a
/// refused subscription gets no pushes.
#[tokio::test]
async fn a_player_may_subscribe_only_to_their_own_wars_and_clans() {
    let api = Api::local();
    let t = unique_tag("wsscope");
    let (att, def, land) = (format!("{t}-att"), format!("{t}-def"), format!("{t}-land"));
    let war = war_between(&api, &att, &def, &land).await;
    let war_id = war["war_id"].as_str().unwrap().to_owned();
    let outsider_clan = format!("{t}-out");
    register_clan(&api, &outsider_clan).await;

    let url = api.websocket_url_as(&format!("{outsider_clan}-m1")).await;
    let mut outsider = open(&url).await.expect("the outsider connects");
    for (topic, shown) in [
        (json!({ "war_id": war_id }), format!("war:{war_id}")),
        (json!({ "clan_id": att }), format!("clan:{att}")),
    ] {
        let reply = request_subscription(&mut outsider, topic).await;
        assert_eq!(reply["error"]["code"], "FORBIDDEN_TOPIC", "{reply}");
        assert_eq!(
            reply["error"]["details"]["topic"],
            shown.as_str(),
            "{reply}"
        );
        assert!(reply["error"]["message"].is_string(), "{reply}");
    }
    // Their own clan is fine on the same connection.
    let reply = request_subscription(&mut outsider, json!({ "clan_id": outsider_clan })).await;
    assert_eq!(
        reply["subscribed"],
        format!("clan:{outsider_clan}"),
        "{reply}"
    );

    // The defender's leader follows the war and sees its end; the outsider sees nothing of it.
    let mut own = subscribe_as(&api, &format!("{def}-leader"), json!({ "war_id": war_id })).await;
    let active_at = serde_json::from_value(war["phase_deadlines"]["active_at"].clone()).unwrap();
    api.wait_for_status(&war_id, "ACTIVE", until(active_at) + SLACK)
        .await;
    let (status, _) = api
        .post(
            &format!("/wars/{war_id}/surrender"),
            Some(&format!("{def}-leader")),
            json!({ "clan_id": def }),
        )
        .await;
    assert_eq!(status, 200);
    let surrendered = wait_for(&mut own, "WarSurrendered").await;
    assert_eq!(surrendered["war_id"], war_id.as_str());
    // Whatever reached the outsider's socket up to a later reply names none of that war.
    outsider
        .send(Message::text(
            json!({"action": "subscribe", "clan_id": outsider_clan}).to_string(),
        ))
        .await
        .unwrap();
    let seen = {
        let mut seen = Vec::new();
        let mut stream = pushes(&mut outsider);
        loop {
            let message =
                next_matching("the outsider's probe reply", PATIENCE, &mut stream, |_| {
                    true
                })
                .await;
            let done = message.get("subscribed").is_some();
            seen.push(message);
            if done {
                break seen;
            }
        }
    };
    assert!(
        seen.iter().all(|m| m["war_id"] != war_id.as_str()),
        "{seen:?}"
    );
}

/// The `$connect` authorizer: no token is a 401 from the gateway itself; a malformed, tampered,
/// forged, unknown-key or expired token a 403; a valid one connects.
#[tokio::test]
async fn connections_without_a_valid_session_token_are_refused() {
    let api = Api::local();
    let resources = Resources::load();
    let base = resources.url("WebSocketApi");
    let player = format!("{}-p", unique_tag("wsauth"));
    let token = api.session_token(&player).await;

    assert_eq!(open(&base).await.err(), Some(401), "no token");
    assert_eq!(
        open(&format!("{base}?token=")).await.err(),
        Some(401),
        "empty token"
    );
    assert_eq!(
        open(&format!("{base}?other=1")).await.err(),
        Some(401),
        "no token parameter"
    );

    let (payload, mac) = token.split_once('.').unwrap();
    let mut tampered_mac: Vec<char> = mac.chars().collect();
    tampered_mac[5] = if tampered_mac[5] == 'A' { 'B' } else { 'A' };
    let tampered_mac: String = tampered_mac.into_iter().collect();
    let key = current_key().await;
    let claims = |sub: &str, exp: i64, kid: &str| Claims {
        sub: PlayerId::new(sub).unwrap(),
        iat: chrono::Utc::now().timestamp() - 7_200,
        exp,
        kid: kid.to_owned(),
    };
    let hour_ago = chrono::Utc::now().timestamp() - 3_600;
    let in_an_hour = chrono::Utc::now().timestamp() + 3_600;
    let stranger = SigningKey::new(b"a key this stack never had, 32+ bytes".to_vec()).unwrap();
    // Claims naming the stack's key id, with a MAC made by a stranger's key.
    let forged = {
        let by_stranger = sign(&stranger, &claims(&player, in_an_hour, stranger.kid()));
        let naming_ours = sign(&key, &claims(&player, in_an_hour, key.kid()));
        let claims_part = naming_ours.split_once('.').unwrap().0;
        format!("{claims_part}.{}", by_stranger.split_once('.').unwrap().1)
    };
    // A token signed here with the stack's key connects: the authorizer knows the key the
    // forgeries below are made with (the rotation test may rotate it meanwhile, and a reload is
    // rate-limited, hence the wait).
    let own = sign(&key, &claims(&player, in_an_hour, key.kid()));
    let own_url = format!("{base}?token={own}");
    wait_until(
        "a token signed with the stack's key to connect",
        PATIENCE,
        || async {
            match open(&own_url).await {
                Ok(_) => Seen::Ready(()),
                Err(status) => Seen::NotYet(format!("refused with {status}")),
            }
        },
    )
    .await;
    for (what, bad) in [
        ("garbage", "not-a-token".to_owned()),
        ("tampered signature", format!("{payload}.{tampered_mac}")),
        ("claims swapped under a valid signature", {
            let other = api.session_token(&format!("{player}-other")).await;
            format!("{}.{mac}", other.split_once('.').unwrap().0)
        }),
        ("forged with another key", forged),
        (
            "unknown key",
            sign(&stranger, &claims(&player, in_an_hour, stranger.kid())),
        ),
        ("expired", sign(&key, &claims(&player, hour_ago, key.kid()))),
    ] {
        assert_eq!(
            open(&format!("{base}?token={bad}")).await.err(),
            Some(403),
            "{what}"
        );
    }
    // The genuine token connects.
    let mut socket = open(&format!("{base}?token={token}"))
        .await
        .expect("valid token");
    socket.close(None).await.ok();
}

/// The signing key of the stack's secret (`{"key", "previous_key"?}`).
async fn secret_value() -> (String, Value) {
    let arn = Resources::load().name("SessionSigningKeySecret");
    let client = aws_sdk_secretsmanager::Client::new(&aws_config().await);
    let out = client
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("GetSecretValue");
    let value = serde_json::from_str(out.secret_string().expect("a SecretString")).unwrap();
    (arn, value)
}

async fn current_key() -> SigningKey {
    let (_, value) = secret_value().await;
    SigningKey::new(value["key"].as_str().expect("key").as_bytes().to_vec()).unwrap()
}

/// Rotation (README, "Real-time"): the new key signs, the previous one still verifies, so
/// players holding tokens from before the rotation stay able to connect.
#[tokio::test]
async fn after_a_key_rotation_tokens_of_the_previous_key_still_connect() {
    let api = Api::local();
    let base = Resources::load().url("WebSocketApi");
    let player = format!("{}-p", unique_tag("wsrot"));
    let before = api.session_token(&player).await;
    assert!(open(&format!("{base}?token={before}")).await.is_ok());

    let (arn, value) = secret_value().await;
    let old = value["key"].as_str().unwrap().to_owned();
    let new = format!("rotated{}", uuid::Uuid::new_v4().simple());
    let client = aws_sdk_secretsmanager::Client::new(&aws_config().await);
    client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(json!({ "key": new, "previous_key": old }).to_string())
        .send()
        .await
        .expect("PutSecretValue");

    // A token of the new key: the authorizer reads the secret again when a token names a key
    // its cache lacks (at most every few seconds, so this may take one more try).
    let new_key_text = new.clone();
    let new_key = SigningKey::new(new.into_bytes()).unwrap();
    let fresh = sign(
        &new_key,
        &Claims {
            sub: PlayerId::new(player.clone()).unwrap(),
            iat: chrono::Utc::now().timestamp(),
            exp: chrono::Utc::now().timestamp() + 600,
            kid: new_key.kid().to_owned(),
        },
    );
    let url = format!("{base}?token={fresh}");
    wait_until(
        "a token of the rotated key to connect",
        PATIENCE,
        || async {
            match open(&url).await {
                Ok(_) => Seen::Ready(()),
                Err(status) => Seen::NotYet(format!("refused with {status}")),
            }
        },
    )
    .await;
    // The token issued before the rotation still connects.
    assert!(open(&format!("{base}?token={before}")).await.is_ok());
    // And tokens issued now still connect (signed with the new key or, by a function whose
    // cache is older, with the previous one).
    let after = api.session_token(&player).await;
    assert!(open(&format!("{base}?token={after}")).await.is_ok());
    // Rotate back, so the stack's key is the one it started with: functions whose cache still
    // holds it keep issuing tokens that verify, whoever rotates next (a test run again on the
    // same stack; two rotations within the refresh interval would strand such tokens).
    client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(json!({ "key": old, "previous_key": new_key_text }).to_string())
        .send()
        .await
        .expect("PutSecretValue back");
}

/// Issue 13: a hostile frame gets a SPEC §10 error reply and the connection stays; a
/// subscription to a war or clan that does not exist is refused with the error body, not
/// acknowledged.
#[tokio::test]
async fn hostile_frames_and_unknown_topics_get_error_replies_on_a_connection_that_stays() {
    let api = Api::local();
    let t = unique_tag("wsbad");
    let clan = format!("{t}-clan");
    register_clan(&api, &clan).await;

    let url = api.websocket_url_as(&format!("{clan}-leader")).await;
    let mut socket = open(&url).await.expect("websocket connects");
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let nested_action = format!(
        r#"{{"action": "subscribe", "war_id": {}1{}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    for frame in [
        Message::text(deep),
        Message::text(nested_action),
        Message::text("not json"),
        Message::text(r#"{"action": "no-such-action"}"#),
        Message::binary(vec![0u8, 159, 146, 150]),
    ] {
        socket.send(frame).await.unwrap();
        let reply = next_matching("an error reply", PATIENCE, &mut pushes(&mut socket), |_| {
            true
        })
        .await;
        assert_eq!(reply["error"]["code"], "INVALID_REQUEST", "{reply}");
        assert!(reply["error"]["message"].is_string(), "{reply}");
        assert!(reply.get("subscribed").is_none(), "{reply}");
    }
    for (topic, code) in [
        (json!({ "war_id": format!("{t}-no-war") }), "WAR_NOT_FOUND"),
        (
            json!({ "clan_id": format!("{t}-no-clan") }),
            "CLAN_NOT_FOUND",
        ),
    ] {
        let reply = request_subscription(&mut socket, topic).await;
        assert_eq!(reply["error"]["code"], code, "{reply}");
        assert!(reply["error"]["message"].is_string(), "{reply}");
        assert!(reply.get("subscribed").is_none(), "{reply}");
    }
    // The same connection still works.
    let reply = request_subscription(&mut socket, json!({ "clan_id": clan })).await;
    assert_eq!(reply["subscribed"], format!("clan:{clan}"), "{reply}");
}
