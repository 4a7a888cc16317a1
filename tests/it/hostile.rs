//! Hostile input through the local HTTP gateway (issue 13): bytes a well-behaved HTTP client
//! library refuses to send (control characters in header values), repeated query parameters,
//! bodies on routes that take none, and integer-valued floats. Requests are written on a raw
//! TCP socket so nothing between the test and the gateway cleans them up.

use clanwar_integration_tests::{register_clan, unique_tag, Api, Resources};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one HTTP/1.1 request as raw bytes; the status and the JSON body of the answer.
async fn raw(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> (u16, Value) {
    let base = Resources::load().url("HttpApi");
    let authority = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let prefix = base
        .trim_start_matches("http://")
        .trim_start_matches(authority.as_str())
        .trim_end_matches('/')
        .to_owned();
    let mut request =
        format!("{method} {prefix}{path} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(
        format!(
            "Content-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    let mut socket = tokio::net::TcpStream::connect(&authority).await.unwrap();
    socket.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn assert_error_body(body: &Value) {
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["details"].is_object(), "{body}");
}

#[tokio::test]
async fn control_characters_in_headers_never_break_a_request() {
    let api = Api::local();
    let t = unique_tag("junk");
    let clan = format!("{t}-c");
    register_clan(&api, &clan, 1000).await;
    let path = format!("/clans/{clan}");
    for junk in [&b"a\x01b"[..], b"\x00", b"x\x7fy", b"\x1b[31m"] {
        let (status, body) = raw("GET", &path, &[("X-Junk", junk)], b"").await;
        assert_eq!(status, 200, "X-Junk {junk:?}: {body}");
        assert_eq!(body["clan_id"], clan.as_str());
        // A malformed actor is refused with the error body, before anything is written.
        let (status, body) = raw(
            "POST",
            &format!("/wars/{t}-w/surrender"),
            &[("x-actor-id", junk)],
            json!({ "clan_id": clan }).to_string().as_bytes(),
        )
        .await;
        assert_eq!(status, 400, "x-actor-id {junk:?}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_ID", "{body}");
        assert_error_body(&body);
    }
}

#[tokio::test]
async fn repeated_parameters_bodies_on_bodyless_routes_and_integral_floats() {
    let api = Api::local();
    let t = unique_tag("hostile");
    let (status, body) = raw("GET", "/territories?x=0&y=0&radius=10&radius=20", &[], b"").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "radius");
    assert_error_body(&body);

    // Body-less routes refuse a body before anything is written (the alliance stays).
    let [founder, guest] = ["f", "g"].map(|c| format!("{t}-{c}"));
    register_clan(&api, &founder, 1000).await;
    register_clan(&api, &guest, 1000).await;
    let leader = format!("{founder}-leader");
    let (status, alliance) = api
        .post(
            "/alliances",
            Some(&leader),
            json!({ "name": format!("A {t}"), "founder_clan_id": founder }),
        )
        .await;
    assert_eq!(status, 201, "{alliance}");
    let id = alliance["alliance_id"].as_str().unwrap().to_owned();
    let (status, invitation) = api
        .post(
            &format!("/alliances/{id}/invitations"),
            Some(&leader),
            json!({ "clan_id": guest }),
        )
        .await;
    assert_eq!(status, 201, "{invitation}");
    let guest_leader = format!("{guest}-leader");
    let accept = format!("/alliances/{id}/invitations/{guest}/accept");
    for bad in [&b"{not json"[..], br#"{"clan_id": "x"}"#, b"[]"] {
        for (method, path, actor) in [
            ("POST", accept.as_str(), guest_leader.as_str()),
            (
                "POST",
                &format!("/alliances/{id}/invitations/{guest}/decline"),
                guest_leader.as_str(),
            ),
            ("DELETE", &format!("/alliances/{id}"), leader.as_str()),
        ] {
            let (status, body) = raw(method, path, &[("x-actor-id", actor.as_bytes())], bad).await;
            assert_eq!(status, 400, "{method} {path} with {bad:?}: {body}");
            assert_error_body(&body);
        }
    }
    let (status, still) = api.get(&format!("/alliances/{id}")).await;
    assert_eq!(status, 200, "the alliance was not dissolved: {still}");
    let (status, body) = raw(
        "POST",
        &accept,
        &[("x-actor-id", guest_leader.as_bytes())],
        b"{}",
    )
    .await;
    assert_eq!(status, 200, "an empty object is no body: {body}");

    // A clan name with NUL is refused like a territory name; integral floats are integers.
    let (status, body) = api
        .put(
            &format!("/clans/{t}-nul"),
            None,
            json!({ "name": "bad\u{0}name", "leader_id": "p-1", "member_ids": [], "level": 1 }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["details"]["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
    let (status, body) = raw(
        "PUT",
        &format!("/clans/{t}-float"),
        &[],
        br#"{"name": "Floats", "leader_id": "p-1", "member_ids": [], "level": 20.0, "rating": 1000.0}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["level"], 20, "{body}");
    let (status, body) = raw(
        "PUT",
        &format!("/clans/{t}-frac"),
        &[],
        br#"{"name": "Fractions", "leader_id": "p-1", "member_ids": [], "level": 20.5}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
