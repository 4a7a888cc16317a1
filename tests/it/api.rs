//! The public HTTP API through the local API gateway and the real function binaries: every
//! endpoint's happy path and main rejections, a whole war from declaration to scores, and
//! duplicate deliveries over HTTP and SQS never counted twice.

use chrono::{DateTime, Utc};
use clanwar_integration_tests::wait::{until, wait_until, Seen, PATIENCE, SLACK};
use clanwar_integration_tests::{
    aws_config, deadline, register_clan, register_territory, unique_tag, Api, Resources,
};
use serde_json::{json, Value};

async fn clan(api: &Api, id: &str, rating: i32) {
    register_clan(api, id, rating).await;
}

async fn territory(api: &Api, id: &str, owner: &str, x: f64) {
    register_territory(api, id, owner, x).await;
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// Phases of `active_s` seconds of fighting, one second everywhere else but ENDING (2 s).
fn declaration(attacker: &str, defender: &str, territories: &[String], active_s: u64) -> Value {
    clanwar_integration_tests::declaration(attacker, defender, territories, active_s, 2)
}

#[tokio::test]
async fn clans_and_territories_round_trip_and_bad_input_is_refused() {
    let api = Api::local();
    let t = unique_tag("reg");
    clan(&api, &format!("{t}-a"), 1200).await;
    let (status, body) = api.get(&format!("/clans/{t}-a")).await;
    assert_eq!((status, body["rating"].as_i64()), (200, Some(1200)));
    let (status, body) = api
        .put(
            &format!("/clans/{t}-b"),
            None,
            json!({"name": "x", "leader_id": "p", "level": 1, "colour": 1}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "INVALID_REQUEST"));
    assert_eq!(api.get(&format!("/clans/{t}-nobody")).await.0, 404);
    assert_eq!(api.get("/clans/bad%20id").await.0, 400);

    territory(&api, &format!("{t}-near"), &format!("{t}-a"), 100.0).await;
    territory(&api, &format!("{t}-far"), &format!("{t}-a"), 4_000.0).await;
    let (status, body) = api.get(&format!("/territories/{t}-near")).await;
    assert_eq!((status, body["defense_level"].as_i64()), (200, Some(1)));
    let (status, body) = api.get("/territories?x=0&y=0&radius=500").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["territories"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["territory"]["territory_id"].as_str())
        .collect();
    assert!(
        ids.contains(&format!("{t}-near").as_str()) && !ids.contains(&format!("{t}-far").as_str())
    );
    assert_eq!(api.get("/territories?x=0&y=0&radius=-1").await.0, 400);
    let (status, body) = api
        .put(
            &format!("/territories/{t}-bad"),
            None,
            json!({"name": "b", "region": "r", "x": 0, "y": 0, "tier": 9, "resource_yield": 1}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "INVALID_REQUEST"));
    assert_eq!(
        api.get(&format!("/territories/{t}-bad")).await.0,
        404,
        "nothing written"
    );
}

#[tokio::test]
async fn declarations_are_validated_idempotent_and_readable() {
    let api = Api::local();
    let t = unique_tag("decl");
    let (att, def) = (format!("{t}-att"), format!("{t}-def"));
    clan(&api, &att, 1000).await;
    clan(&api, &def, 1000).await;
    territory(&api, &format!("{t}-land"), &def, 0.0).await;
    let lands = vec![format!("{t}-land")];
    // A long PREPARATION: the leaders cancel below, which only an early phase allows, however
    // slow the emulator answers the requests in between.
    let mut body = declaration(&att, &def, &lands, 60);
    body["phase_durations"]["preparation_s"] = json!(120);

    let (status, err) = api.post("/wars", None, body.clone()).await;
    assert_eq!((status, code(&err)), (400, "MISSING_ACTOR"));
    let (status, err) = api
        .post("/wars", Some(&format!("{att}-m1")), body.clone())
        .await;
    assert_eq!((status, code(&err)), (403, "FORBIDDEN_ROLE"));
    let (status, err) = api
        .post(
            "/wars",
            Some(&format!("{att}-leader")),
            declaration(&att, &att, &lands, 60),
        )
        .await;
    assert_eq!((status, code(&err)), (422, "SAME_CLAN"));

    let leader = format!("{att}-leader");
    let (status, war) = api
        .post_with_key("/wars", &leader, "retry-1", body.clone())
        .await;
    assert_eq!(status, 201, "{war}");
    let (status, again) = api
        .post_with_key("/wars", &leader, "retry-1", body.clone())
        .await;
    assert_eq!((status, &again["war_id"]), (200, &war["war_id"]));
    let (status, err) = api.post("/wars", Some(&leader), body).await;
    assert_eq!((status, code(&err)), (409, "WAR_ALREADY_EXISTS"));

    let war_id = war["war_id"].as_str().unwrap();
    let (status, read) = api.get(&format!("/wars/{war_id}")).await;
    assert_eq!(status, 200);
    for field in [
        "status",
        "phase_deadlines",
        "sides",
        "territory_ids",
        "winner_side",
        "version",
    ] {
        assert!(read.get(field).is_some(), "{field} missing from {read}");
    }
    assert_eq!(read["sides"]["attacker"]["clan_ids"], json!([att]));
    assert_eq!(api.get(&format!("/wars/{t}-missing")).await.0, 404);
    let (status, log) = api.get(&format!("/clans/{def}/wars?limit=5")).await;
    assert_eq!(
        (status, log["wars"][0]["war_id"].as_str()),
        (200, Some(war_id))
    );

    // Both leaders cancel: the war ends without a result and the territory is free again.
    assert_eq!(
        api.post(
            &format!("/wars/{war_id}/cancel"),
            Some(&leader),
            json!({"clan_id": att})
        )
        .await
        .0,
        200
    );
    let (status, cancelled) = api
        .post(
            &format!("/wars/{war_id}/cancel"),
            Some(&format!("{def}-leader")),
            json!({"clan_id": def}),
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("CANCELLED"))
    );
    let (_, land) = api.get(&format!("/territories/{t}-land")).await;
    assert!(land["contested_by"].is_null());
}

#[tokio::test]
async fn alliances_form_and_an_ally_joins_the_defenders_war() {
    let api = Api::local();
    let t = unique_tag("ally");
    let (att, def, ally, other) = (
        format!("{t}-att"),
        format!("{t}-def"),
        format!("{t}-ally"),
        format!("{t}-x"),
    );
    for c in [&att, &def, &ally, &other] {
        clan(&api, c, 1000).await;
    }
    territory(&api, &format!("{t}-land"), &def, 0.0).await;
    let (status, alliance) = api
        .post(
            "/alliances",
            Some(&format!("{def}-leader")),
            json!({"name": "North", "founder_clan_id": def}),
        )
        .await;
    assert_eq!(status, 201, "{alliance}");
    let aid = alliance["alliance_id"].as_str().unwrap().to_owned();
    let invite = |c: &str| json!({ "clan_id": c });
    assert_eq!(
        api.post(
            &format!("/alliances/{aid}/invitations"),
            Some(&format!("{def}-m0")),
            invite(&ally)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        api.post(
            &format!("/alliances/{aid}/invitations"),
            Some(&format!("{def}-officer")),
            invite(&ally)
        )
        .await
        .0,
        201
    );
    assert_eq!(
        api.post(
            &format!("/alliances/{aid}/invitations"),
            Some(&format!("{def}-officer")),
            invite(&other)
        )
        .await
        .0,
        201
    );
    assert_eq!(
        api.post(
            &format!("/alliances/{aid}/invitations/{other}/decline"),
            Some(&format!("{other}-leader")),
            json!({})
        )
        .await
        .0,
        200
    );
    let (status, joined) = api
        .post(
            &format!("/alliances/{aid}/invitations/{ally}/accept"),
            Some(&format!("{ally}-leader")),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{joined}");
    let (_, view) = api.get(&format!("/alliances/{aid}")).await;
    assert_eq!(view["member_clan_ids"], json!([def, ally]));

    // A long PREPARATION: allies may join only before ACTIVE, however slow the emulator answers
    // the requests in between.
    let mut body = declaration(&att, &def, &[format!("{t}-land")], 60);
    body["phase_durations"]["preparation_s"] = json!(120);
    let (status, war) = api
        .post("/wars", Some(&format!("{att}-leader")), body)
        .await;
    assert_eq!(status, 201, "{war}");
    let war_id = war["war_id"].as_str().unwrap();
    let (status, err) = api
        .post(
            &format!("/wars/{war_id}/join"),
            Some(&format!("{other}-leader")),
            json!({"clan_id": other, "side": "defender"}),
        )
        .await;
    assert_eq!((status, code(&err)), (422, "NOT_ALLIED"));
    let (status, joined) = api
        .post(
            &format!("/wars/{war_id}/join"),
            Some(&format!("{ally}-leader")),
            json!({"clan_id": ally, "side": "defender"}),
        )
        .await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["sides"]["defender"]["clan_ids"], json!([def, ally]));
    let (status, err) = api
        .post(
            &format!("/alliances/{aid}/leave"),
            Some(&format!("{def}-leader")),
            json!({"clan_id": def}),
        )
        .await;
    assert_eq!((status, code(&err)), (422, "FOUNDER_CANNOT_LEAVE"));
    assert_eq!(
        api.post(
            &format!("/alliances/{aid}/leave"),
            Some(&format!("{ally}-leader")),
            json!({"clan_id": ally})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        api.delete(&format!("/alliances/{aid}"), &format!("{def}-leader"))
            .await
            .0,
        200
    );
    assert_eq!(api.get(&format!("/alliances/{aid}")).await.0, 404);
}

fn kill(
    id: &str,
    at: DateTime<Utc>,
    killer: (&str, &str),
    victim: (&str, &str),
    battle: Option<&str>,
) -> Value {
    json!({ "type": "kill", "event_id": id, "occurred_at": at, "killer_id": killer.0, "killer_clan_id": killer.1,
            "killer_level": 10, "victim_id": victim.0, "victim_clan_id": victim.1, "victim_level": 10, "battle_id": battle })
}

/// ACTIVE of the HTTP war: a battle, two batches, three queued messages, a capture, a result
/// and a read — about ten calls, each of which may take seconds on a loaded machine.
const ACTIVE_S: u64 = 30;

#[tokio::test]
async fn a_war_runs_on_its_timers_and_scores_battles_without_double_counting() {
    let api = Api::local();
    let resources = Resources::load();
    let t = unique_tag("war");
    let (att, def) = (format!("{t}-att"), format!("{t}-def"));
    clan(&api, &att, 1000).await;
    clan(&api, &def, 1000).await;
    let land = format!("{t}-land");
    territory(&api, &land, &def, 0.0).await;
    let (status, war) = api
        .post(
            "/wars",
            Some(&format!("{att}-leader")),
            declaration(&att, &def, std::slice::from_ref(&land), ACTIVE_S),
        )
        .await;
    assert_eq!(status, 201, "{war}");
    let war_id = war["war_id"].as_str().unwrap().to_owned();
    let (status, err) = api
        .post(
            &format!("/wars/{war_id}/battles"),
            None,
            json!({"territory_id": land, "max_players": 20}),
        )
        .await;
    assert_eq!(
        (status, code(&err)),
        (409, "INVALID_WAR_STATE"),
        "no battles before ACTIVE"
    );

    api.wait_for_status(
        &war_id,
        "ACTIVE",
        until(deadline(&war, "active_at")) + SLACK,
    )
    .await;
    let (status, battle) = api
        .post(
            &format!("/wars/{war_id}/battles"),
            None,
            json!({"territory_id": land, "max_players": 20}),
        )
        .await;
    assert_eq!(status, 201, "{battle}");
    let battle_id = battle["battle_id"].as_str().unwrap().to_owned();

    let now = Utc::now();
    let (a0, a1, d0) = (
        format!("{att}-m0"),
        format!("{att}-m1"),
        format!("{def}-m0"),
    );
    let batch = json!([
        kill(&format!("{t}-k1"), now, (&a0, &att), (&d0, &def), Some(&battle_id)),
        kill(&format!("{t}-k2"), now, (&d0, &def), (&a1, &att), Some(&battle_id)),
        { "type": "assist", "event_id": format!("{t}-a1"), "occurred_at": now, "player_id": a1, "clan_id": att },
        kill(&format!("{t}-k3"), now, (&a0, &att), (&a1, &att), None),
    ]);
    let (status, answer) = api
        .post(&format!("/wars/{war_id}/events"), None, batch.clone())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_i64(), answer["duplicates"].as_i64()),
        (Some(3), Some(0))
    );
    assert_eq!(answer["rejected"][0]["code"], "SAME_SIDE");
    let (_, again) = api
        .post(&format!("/wars/{war_id}/events"), None, batch)
        .await;
    assert_eq!(
        (again["accepted"].as_i64(), again["duplicates"].as_i64()),
        (Some(0), Some(3))
    );

    // The same kill delivered twice through the ingestion queue counts once; a poison message
    // goes to the DLQ without holding up the good one.
    let sqs = aws_sdk_sqs::Client::new(&aws_config().await);
    let queue = resources.queue_url("ScoreEventsQueue");
    let message = json!({ "war_id": war_id, "events": [kill(&format!("{t}-q1"), now, (&a1, &att), (&d0, &def), None)] });
    for body in [
        message.to_string(),
        message.to_string(),
        "{not json".to_owned(),
    ] {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let (status, capture) = api
        .post(
            &format!("/territories/{land}/capture"),
            Some(&a0),
            json!({"war_id": war_id, "clan_id": att}),
        )
        .await;
    assert_eq!(status, 200, "{capture}");
    assert_eq!(capture["points"], 200);
    let (status, resolved) = api
        .post(
            &format!("/wars/{war_id}/battles/{battle_id}/resolve"),
            None,
            json!({"winner_side": "attacker"}),
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    let (_, view) = api
        .get(&format!("/wars/{war_id}/battles/{battle_id}"))
        .await;
    assert_eq!(
        (
            view["kills"]["attacker"].as_i64(),
            view["kills"]["defender"].as_i64()
        ),
        (Some(1), Some(1))
    );

    // Attacker: 10 (k1) + 3 (assist) + 10 (queued kill, once) + 200 (capture) + 50 (battle) = 273.
    let scoreboard = format!("/wars/{war_id}/scoreboard?limit=3");
    let board = wait_until("the queued kill on the scoreboard", PATIENCE, || async {
        let (_, board) = api.get(&scoreboard).await;
        if board["sides"]["attacker"]["score"] == 273 {
            Seen::Ready(board)
        } else {
            Seen::NotYet(board.to_string())
        }
    })
    .await;
    assert_eq!(board["sides"]["defender"]["score"], 10);
    assert_eq!(
        board["top_players"][0]["player_id"],
        a1.as_str(),
        "13 points: assist + queued kill"
    );
    let (status, player) = api.get(&format!("/wars/{war_id}/players/{a0}")).await;
    assert_eq!((status, player["points"].as_i64()), (200, Some(10)));

    let dlq = resources.queue_url("ScoreEventsDlq");
    wait_until("the poison message in the DLQ", SLACK, || async {
        let out = sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let bodies: Vec<&str> = out.messages().iter().filter_map(|m| m.body()).collect();
        if bodies.contains(&"{not json") {
            Seen::Ready(())
        } else {
            Seen::NotYet(format!("DLQ messages {bodies:?}"))
        }
    })
    .await;

    // The war ends by its timers; the attacker holds more points and wins.
    let ended = api
        .wait_for_status(&war_id, "ENDED", until(deadline(&war, "ended_at")) + SLACK)
        .await;
    assert_eq!(ended["winner_side"], "attacker", "{ended}");
    let (_, final_board) = api.get(&format!("/wars/{war_id}/scoreboard")).await;
    assert_eq!(
        final_board["sides"]["attacker"]["score"],
        ended["sides"]["attacker"]["score"]
    );
    let (_, land_after) = api.get(&format!("/territories/{land}")).await;
    assert_eq!(land_after["owner_clan_id"].as_str(), Some(att.as_str()));
    assert!(
        land_after["contested_by"].is_null(),
        "released when the war ended"
    );
}

#[tokio::test]
async fn fortify_and_surrender_through_the_api() {
    let api = Api::local();
    let t = unique_tag("sur");
    let (att, def) = (format!("{t}-att"), format!("{t}-def"));
    clan(&api, &att, 1000).await;
    clan(&api, &def, 1000).await;
    let (land, keep) = (format!("{t}-land"), format!("{t}-keep"));
    territory(&api, &land, &def, 0.0).await;
    territory(&api, &keep, &def, 50.0).await;

    let path = format!("/territories/{keep}/fortify");
    let (status, err) = api
        .post(&path, Some(&format!("{def}-m0")), json!({"clan_id": def}))
        .await;
    assert_eq!((status, code(&err)), (403, "FORBIDDEN_ROLE"));
    let (status, err) = api
        .post(
            &path,
            Some(&format!("{att}-leader")),
            json!({"clan_id": att}),
        )
        .await;
    assert_eq!((status, code(&err)), (422, "NOT_TERRITORY_OWNER"), "{err}");
    let (status, fortified) = api
        .post(
            &path,
            Some(&format!("{def}-officer")),
            json!({"clan_id": def}),
        )
        .await;
    assert_eq!(
        (status, fortified["defense_level"].as_i64()),
        (200, Some(2)),
        "{fortified}"
    );

    let (status, war) = api
        .post(
            "/wars",
            Some(&format!("{att}-leader")),
            declaration(&att, &def, std::slice::from_ref(&land), 30),
        )
        .await;
    assert_eq!(status, 201, "{war}");
    let war_id = war["war_id"].as_str().unwrap().to_owned();
    api.wait_for_status(
        &war_id,
        "ACTIVE",
        until(deadline(&war, "active_at")) + SLACK,
    )
    .await;
    let surrender = format!("/wars/{war_id}/surrender");
    let (status, err) = api
        .post(
            &surrender,
            Some(&format!("{def}-m1")),
            json!({"clan_id": def}),
        )
        .await;
    assert_eq!((status, code(&err)), (403, "FORBIDDEN_ROLE"));
    let (status, ended) = api
        .post(
            &surrender,
            Some(&format!("{def}-leader")),
            json!({"clan_id": def}),
        )
        .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(
        (ended["status"].as_str(), ended["winner_side"].as_str()),
        (Some("ENDED"), Some("attacker"))
    );
    assert_eq!(ended["outcome"], "SURRENDER");
    let (status, again) = api
        .post(
            &surrender,
            Some(&format!("{def}-leader")),
            json!({"clan_id": def}),
        )
        .await;
    assert_eq!(
        (status, &again["version"]),
        (200, &ended["version"]),
        "a repeated surrender changes nothing"
    );
    let (_, released) = api.get(&format!("/territories/{land}")).await;
    assert!(released["contested_by"].is_null());
}
