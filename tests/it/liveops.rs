//! Live operations through the HTTP API (issue 14): dry-run declarations that answer every
//! failing rule with the instant it clears and write nothing, and per-war rulesets frozen at
//! declaration (a running war keeps being scored by its own rules).

use chrono::{DateTime, Duration, Utc};
use clanwar_integration_tests::wait::{wait_until, Seen, PATIENCE, SLACK};
use clanwar_integration_tests::{
    aws_config, declaration, register_clan, register_territory, unique_tag, Api, Resources,
};
use serde_json::{json, Value};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

fn instant(value: &Value) -> DateTime<Utc> {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("not an instant ({e}): {value}"))
}

/// Two instants a few moments apart (the service stamps a war's end and its clans' and pair's
/// bookkeeping from separate clock reads of one request).
fn close_to(what: &str, got: DateTime<Utc>, want: DateTime<Utc>) {
    assert!(
        (got - want).abs() < Duration::seconds(2),
        "{what}: {got} is not {want}"
    );
}

/// Declares `attacker` on `defender` over `land` and returns the war.
async fn declare(api: &Api, attacker: &str, defender: &str, land: &str) -> Value {
    let (status, war) = api
        .post(
            "/wars",
            Some(&format!("{attacker}-leader")),
            json!({
                "attacker_clan_id": attacker, "defender_clan_id": defender, "territory_ids": [land],
                "phase_durations": { "declared_s": 600, "preparation_s": 600, "active_s": 600, "ending_s": 60 }
            }),
        )
        .await;
    assert_eq!(status, 201, "declare {attacker} on {defender}: {war}");
    war
}

#[tokio::test]
async fn a_dry_run_lists_the_three_rules_time_clears_with_their_instants_and_writes_nothing() {
    let api = Api::local();
    let t = unique_tag("dryrun");
    let (att, def) = (format!("{t}-att"), format!("{t}-def"));
    let others: Vec<String> = (0..4).map(|i| format!("{t}-x{i}")).collect();
    for clan in [&att, &def].into_iter().chain(&others) {
        register_clan(&api, clan, 1000).await;
    }
    let def_land = format!("{t}-def-land");
    register_territory(&api, &def_land, &def, 0.0).await;

    // A war between att and def that ends (def surrenders): pair cooldown (72 h) and the
    // defender's peace shield (24 h) start.
    let first = declare(&api, &att, &def, &def_land).await;
    let first_id = first["war_id"].as_str().unwrap();
    let declared_at = instant(&first["declared_at"]);
    let (status, ended) = api
        .post(
            &format!("/wars/{first_id}/surrender"),
            Some(&format!("{def}-leader")),
            json!({ "clan_id": def }),
        )
        .await;
    assert_eq!(
        (status, ended["status"].as_str()),
        (200, Some("ENDED")),
        "{ended}"
    );
    let ended_at = instant(&ended["closed_at"]);
    // Four more declarations by att within the day (each cancelled by both leaders, so the
    // concurrent-war limit stays clear): rule 11's five a day are used up.
    for (i, other) in others.iter().enumerate() {
        let land = format!("{t}-x{i}-land");
        register_territory(&api, &land, other, 100.0 * (i + 1) as f64).await;
        let war = declare(&api, &att, other, &land).await;
        let id = war["war_id"].as_str().unwrap();
        for clan in [&att, other] {
            let (status, body) = api
                .post(
                    &format!("/wars/{id}/cancel"),
                    Some(&format!("{clan}-leader")),
                    json!({ "clan_id": clan }),
                )
                .await;
            assert_eq!(status, 200, "cancel {id} for {clan}: {body}");
        }
    }

    let again = declaration(&att, &def, std::slice::from_ref(&def_land), 600, 60);
    let before = (
        api.get(&format!("/clans/{att}")).await,
        api.get(&format!("/clans/{def}")).await,
        api.get(&format!("/clans/{att}/wars?limit=10")).await,
        api.get(&format!("/territories/{def_land}")).await,
    );
    let ((status, verdict), calls) = api
        .post_counted(
            "/wars?dry_run=true",
            Some(&format!("{att}-leader")),
            again.clone(),
        )
        .await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["valid"], false);
    let violations = verdict["violations"].as_array().expect("violations");
    let found: Vec<(i64, &str)> = violations
        .iter()
        .map(|v| (v["rule"].as_i64().unwrap(), v["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            (6, "PAIR_COOLDOWN_ACTIVE"),
            (7, "PEACE_SHIELD_ACTIVE"),
            (11, "DECLARATION_RATE_LIMITED"),
        ],
        "{verdict}"
    );
    close_to(
        "pair cooldown",
        instant(&violations[0]["clears_at"]),
        ended_at + Duration::hours(72),
    );
    close_to(
        "peace shield",
        instant(&violations[1]["clears_at"]),
        ended_at + Duration::hours(24),
    );
    // Five declarations in the window: it clears when the first leaves it, to the microsecond.
    assert_eq!(
        instant(&violations[2]["clears_at"]),
        declared_at + Duration::hours(24)
    );
    assert_eq!(violations[2]["status"], 429);

    // Nothing was written: one read and no other AWS call, and every record reads the same.
    assert_eq!((calls.calls, calls.round_trips), (1, 1), "{calls:?}");
    let after = (
        api.get(&format!("/clans/{att}")).await,
        api.get(&format!("/clans/{def}")).await,
        api.get(&format!("/clans/{att}/wars?limit=10")).await,
        api.get(&format!("/territories/{def_land}")).await,
    );
    assert_eq!(after, before);

    // The real declaration answers the first of them.
    let (status, body) = api
        .post("/wars", Some(&format!("{att}-leader")), again)
        .await;
    assert_eq!(
        (status, code(&body)),
        (422, "PAIR_COOLDOWN_ACTIVE"),
        "{body}"
    );
}

/// Rewrites part of a stored war's frozen ruleset, as if it had been declared by a deployment
/// with other parameters (the functions keep running with today's).
async fn freeze_other_rules(war_id: &str, kill_base_points: Option<i64>) {
    let client = aws_sdk_dynamodb::Client::new(&aws_config().await);
    let update = client
        .update_item()
        .table_name(Resources::load().name("WarTable"))
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("WAR#{war_id}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("WAR".into()),
        )
        // The record is stored under `data` (see `clanwar_aws::dynamodb`).
        .expression_attribute_names("#d", "data");
    let update = match kill_base_points {
        Some(points) => update
            .expression_attribute_names("#r", "rules")
            .expression_attribute_names("#v", "version")
            .update_expression("SET #d.ruleset.#r.kill_base_points = :k, #d.ruleset.#v = :v")
            .expression_attribute_values(
                ":k",
                aws_sdk_dynamodb::types::AttributeValue::N(points.to_string()),
            )
            .expression_attribute_values(
                ":v",
                aws_sdk_dynamodb::types::AttributeValue::S("rs-00000000000000aa".into()),
            ),
        // A war written before rulesets existed.
        None => update.update_expression("REMOVE #d.ruleset"),
    };
    update.send().await.expect("war item updated");
}

fn kill(id: &str, killer: (&str, &str), victim: (&str, &str)) -> Value {
    json!({
        "type": "kill", "event_id": id, "occurred_at": Utc::now(),
        "killer_id": killer.0, "killer_clan_id": killer.1, "killer_level": 20,
        "victim_id": victim.0, "victim_clan_id": victim.1, "victim_level": 20
    })
}

#[tokio::test]
async fn a_running_war_is_scored_by_its_frozen_ruleset_and_an_old_war_by_the_live_rules() {
    let api = Api::local();
    let (status, current) = api.get("/rulesets/current").await;
    assert_eq!(status, 200, "{current}");
    let live_points = current["rules"]["kill_base_points"].as_i64().unwrap();
    let t = unique_tag("ruleset");
    let mut wars = Vec::new();
    for name in ["frozen", "legacy"] {
        let (att, def) = (format!("{t}-{name}-a"), format!("{t}-{name}-d"));
        register_clan(&api, &att, 1000).await;
        register_clan(&api, &def, 1000).await;
        let land = format!("{t}-{name}-land");
        register_territory(&api, &land, &def, 0.0).await;
        let (status, war) = api
            .post(
                "/wars",
                Some(&format!("{att}-leader")),
                declaration(&att, &def, &[land], 120, 2),
            )
            .await;
        assert_eq!(status, 201, "{war}");
        // Frozen at declaration with the live ruleset, and shown by GET /wars/{id}.
        assert_eq!(war["ruleset"], current, "{war}");
        let id = war["war_id"].as_str().unwrap().to_owned();
        assert_eq!(api.get(&format!("/wars/{id}")).await.1["ruleset"], current);
        wars.push((id, att, def));
    }
    for (id, _, _) in &wars {
        api.wait_for_status(id, "ACTIVE", SLACK).await;
    }
    // The first war was declared when kills were worth 3 × today's; the second before
    // rulesets existed.
    let frozen_points = 3 * live_points;
    freeze_other_rules(&wars[0].0, Some(frozen_points)).await;
    freeze_other_rules(&wars[1].0, None).await;
    let (_, shown) = api.get(&format!("/wars/{}", wars[0].0)).await;
    assert_eq!(shown["ruleset"]["version"], "rs-00000000000000aa");
    assert!(api
        .get(&format!("/wars/{}", wars[1].0))
        .await
        .1
        .get("ruleset")
        .is_none());

    for ((id, att, def), want) in wars.iter().zip([frozen_points, live_points]) {
        let killer = format!("{att}-m0");
        let (status, outcome) = api
            .post(
                &format!("/wars/{id}/events"),
                None,
                json!([kill(
                    &format!("{id}-k1"),
                    (&killer, att),
                    (&format!("{def}-m0"), def)
                )]),
            )
            .await;
        assert_eq!(
            (status, outcome["accepted"].as_i64()),
            (200, Some(1)),
            "{outcome}"
        );
        let (status, score) = api.get(&format!("/wars/{id}/players/{killer}")).await;
        assert_eq!(
            (status, score["points"].as_i64()),
            (200, Some(want)),
            "{score}"
        );
    }
}

fn admin_path(war_id: &str, action: &str) -> String {
    format!("/admin/wars/{war_id}/{action}")
}

/// An admin request as an operator (the local gateway authorises nothing: on AWS only the
/// `OperatorInvokePolicy` reaches these routes).
async fn as_operator(api: &Api, path: &str, body: Value) -> (u16, Value) {
    api.post_as_operator(path, "ops-alice", body).await
}

#[tokio::test]
async fn an_operator_advance_racing_the_phase_timer_moves_the_war_exactly_once() {
    let api = Api::local();
    let t = unique_tag("race");
    let (att, def) = (format!("{t}-att"), format!("{t}-def"));
    register_clan(&api, &att, 1000).await;
    register_clan(&api, &def, 1000).await;
    let land = format!("{t}-land");
    register_territory(&api, &land, &def, 0.0).await;
    let (status, war) = api
        .post(
            "/wars",
            Some(&format!("{att}-leader")),
            json!({
                "attacker_clan_id": att, "defender_clan_id": def, "territory_ids": [land],
                "phase_durations": { "declared_s": 3, "preparation_s": 2, "active_s": 600, "ending_s": 60 }
            }),
        )
        .await;
    assert_eq!(status, 201, "{war}");
    let id = war["war_id"].as_str().unwrap().to_owned();
    let deadline: DateTime<Utc> = instant(&war["phase_deadlines"]["preparation_at"]);

    // Operators press "advance" around the deadline, every 100 ms from just before it until
    // well after, while the lifecycle's timer makes the same move at the deadline.
    let start = deadline - Duration::milliseconds(300);
    if let Ok(wait) = (start - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let presses = (0..25).map(|i| {
        let (api, id) = (api.clone(), id.clone());
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(100 * i)).await;
            as_operator(
                &api,
                &admin_path(&id, "advance"),
                json!({ "to": "PREPARATION", "reason": format!("press {i}") }),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(presses).await;
    let mut moved_by_operator = 0;
    for (status, body) in &answers {
        assert_eq!(status, &200, "{body}");
        if body["moved"] == true {
            moved_by_operator += 1;
        }
    }
    // The timers run on: ACTIVE is reached at its own deadline.
    let active = api.wait_for_status(&id, "ACTIVE", SLACK).await;
    let into_preparation = active["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] == "PREPARATION")
        .count();
    assert_eq!(into_preparation, 1, "{active}");
    let audited = active["operator_actions"].as_array().map_or(0, Vec::len);
    assert!(moved_by_operator <= 1, "{answers:?}");
    assert_eq!(audited, moved_by_operator, "{active}");
    println!(
        "race: the {} made the move",
        if moved_by_operator == 1 {
            "operator"
        } else {
            "timer"
        }
    );
    assert_eq!(
        instant(&active["phase_deadlines"]["active_at"]),
        instant(&war["phase_deadlines"]["active_at"]),
        "the later phases keep their deadlines"
    );
    // The timer's move into ACTIVE reported its lateness (EMF, Stage dimension, war id).
    let late: Vec<Value> = wait_until("the lateness metric of the move", PATIENCE, || async {
        let lines: Vec<Value> = Resources::load()
            .metric_lines("PhaseControllerFunction", "PhaseTransitionLateness")
            .into_iter()
            .filter(|line| line["WarId"] == json!(id))
            .collect();
        Seen::ready_if(!lines.is_empty(), lines)
    })
    .await;
    let seconds = late[0]["PhaseTransitionLateness"].as_f64().unwrap();
    assert!((0.0..SLACK.as_secs_f64()).contains(&seconds), "{late:?}");
    assert_eq!(
        late[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Stage"]])
    );
    assert!(late[0]["Stage"].is_string(), "{late:?}");
}

#[tokio::test]
async fn operators_cancel_a_war_with_a_reason_and_end_another_now_through_the_admin_routes() {
    let api = Api::local();
    let t = unique_tag("opsctl");
    let (att, def) = (format!("{t}-att"), format!("{t}-def"));
    register_clan(&api, &att, 1000).await;
    register_clan(&api, &def, 1000).await;
    let land = format!("{t}-land");
    register_territory(&api, &land, &def, 0.0).await;
    let body = declaration(&att, &def, std::slice::from_ref(&land), 600, 60);
    let (status, war) = api
        .post("/wars", Some(&format!("{att}-leader")), body.clone())
        .await;
    assert_eq!(status, 201, "{war}");
    let id = war["war_id"].as_str().unwrap().to_owned();
    api.wait_for_status(&id, "ACTIVE", SLACK).await;

    // A cancel needs the operator's id and a reason.
    let (status, refused) = api
        .post(
            &admin_path(&id, "cancel"),
            None,
            json!({ "reason": "dispute" }),
        )
        .await;
    assert_eq!(
        (status, code(&refused)),
        (400, "INVALID_REQUEST"),
        "{refused}"
    );
    let (status, refused) =
        as_operator(&api, &admin_path(&id, "cancel"), json!({ "reason": "" })).await;
    assert_eq!(
        (status, code(&refused)),
        (400, "INVALID_REQUEST"),
        "{refused}"
    );
    let (status, cancelled) = as_operator(
        &api,
        &admin_path(&id, "cancel"),
        json!({ "reason": "cheating dispute" }),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    let war_now = &cancelled["war"];
    assert_eq!(
        (&war_now["status"], &war_now["outcome"]),
        (&json!("CANCELLED"), &json!("OPERATOR_CANCELLED"))
    );
    let audit = &war_now["operator_actions"][0];
    assert_eq!(
        (
            &audit["action"],
            &audit["by"],
            &audit["reason"],
            &audit["from"]
        ),
        (
            &json!("cancel"),
            &json!("ops-alice"),
            &json!("cheating dispute"),
            &json!("ACTIVE")
        )
    );
    // Territories released, no cooldown or peace shield: the same declaration is valid again.
    let (_, territory) = api.get(&format!("/territories/{land}")).await;
    assert_eq!(territory["contested_by"], Value::Null, "{territory}");
    let (status, verdict) = api
        .post(
            "/wars?dry_run=true",
            Some(&format!("{att}-leader")),
            body.clone(),
        )
        .await;
    assert_eq!(
        (status, &verdict["valid"]),
        (200, &json!(true)),
        "{verdict}"
    );
    // A repeat changes nothing.
    let (status, again) = as_operator(
        &api,
        &admin_path(&id, "cancel"),
        json!({ "reason": "again" }),
    )
    .await;
    assert_eq!((status, &again["moved"]), (200, &json!(false)), "{again}");

    // The pair fights again; an operator ends that war during ACTIVE: final tally now, and
    // the reward saga pays as after a timed end.
    let (status, second) = api
        .post("/wars", Some(&format!("{att}-leader")), body)
        .await;
    assert_eq!(status, 201, "{second}");
    let second_id = second["war_id"].as_str().unwrap().to_owned();
    api.wait_for_status(&second_id, "ACTIVE", SLACK).await;
    let killer = format!("{att}-m0");
    let (status, outcome) = api
        .post(
            &format!("/wars/{second_id}/events"),
            None,
            json!([kill(
                &format!("{second_id}-k1"),
                (&killer, &att),
                (&format!("{def}-m0"), &def)
            )]),
        )
        .await;
    assert_eq!(
        (status, outcome["accepted"].as_i64()),
        (200, Some(1)),
        "{outcome}"
    );
    let (status, ended) = as_operator(
        &api,
        &admin_path(&second_id, "end"),
        json!({ "reason": "maintenance" }),
    )
    .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(
        (&ended["war"]["status"], &ended["war"]["winner_side"]),
        (&json!("ENDED"), &json!("attacker"))
    );
    let path = format!("/wars/{second_id}/rewards");
    wait_until("rewards of the ended war", SLACK, || async {
        let (status, rewards) = api.get(&path).await;
        Seen::ready_if(status == 200 && rewards["status"] == "DISTRIBUTED", rewards)
    })
    .await;
}
