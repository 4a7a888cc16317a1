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
        // The record is stored under `data` (see `clanwar_aws`'s `store` module).
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

// ---- rescoring and re-drives (the economy simulator's ledger is the truth of what was paid) ----

/// The economy simulator's ledger, the failure switch and the reward saga's executions.
struct Economy {
    ddb: aws_sdk_dynamodb::Client,
    sfn: aws_sdk_sfn::Client,
    table: String,
    rewards_arn: String,
}

impl Economy {
    async fn new() -> Self {
        let config = aws_config().await;
        let resources = Resources::load();
        Self {
            ddb: aws_sdk_dynamodb::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            table: resources.name("WarTable"),
            rewards_arn: resources.arn("RewardDistributionStateMachine"),
        }
    }

    /// The ledger entry of one idempotency key: (status, net, grant requests).
    async fn entry(&self, key: &str) -> Option<(String, i64, i64)> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let item = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("ECON#{key}")))
            .key("sk", AttributeValue::S("ECON".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("read the economy ledger")
            .item?;
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let status = item
            .get("status")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        Some((status, number("net"), number("grant_requests")))
    }

    /// The N-th distinct grant of the war and every later new one are refused (an outage).
    async fn fail_from_grant(&self, war_id: &str, n: u64) {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("ECONCFG#{war_id}")))
            .item("sk", AttributeValue::S("ECONCFG".into()))
            .item("fail_on_grant", AttributeValue::N(n.to_string()))
            .item("paid", AttributeValue::N("0".into()))
            .send()
            .await
            .expect("write the economy switch");
    }

    /// The economy service recovers.
    async fn recover(&self, war_id: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.ddb
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("ECONCFG#{war_id}")))
            .key("sk", AttributeValue::S("ECONCFG".into()))
            .send()
            .await
            .expect("remove the economy switch");
    }

    /// The status of the reward saga's execution `name`, once it is no longer running.
    async fn finished(&self, name: &str) -> String {
        let arn = clanwar_aws::workflows::execution_arn(&self.rewards_arn, name);
        wait_until(&format!("reward run {name}"), SLACK, || async {
            match self
                .sfn
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await
            {
                Ok(e) if e.status != aws_sdk_sfn::types::ExecutionStatus::Running => {
                    Seen::Ready(e.status.as_str().to_owned())
                }
                Ok(e) => Seen::NotYet(format!("{:?}", e.status)),
                Err(_) => Seen::NotYet("no such execution yet".into()),
            }
        })
        .await
    }

    /// Every grant of the plan is paid exactly its amount under its key, once; every
    /// superseded grant is revoked; returns the net paid per player over all those keys.
    async fn check_paid(&self, rewards: &Value) -> std::collections::BTreeMap<String, i64> {
        let mut net = std::collections::BTreeMap::new();
        for grant in rewards["grants"].as_array().expect("grants") {
            let key = grant["idempotency_key"].as_str().unwrap();
            let (status, paid, requests) = self
                .entry(key)
                .await
                .unwrap_or_else(|| panic!("{key} never reached the economy"));
            assert_eq!(
                (status.as_str(), paid, grant["status"].as_str()),
                ("PAID", grant["amount"].as_i64().unwrap(), Some("GRANTED")),
                "{key}: {grant}"
            );
            assert!(requests >= 1, "{key}");
            *net.entry(grant["player_id"].as_str().unwrap().to_owned())
                .or_insert(0) += paid;
        }
        for grant in rewards["superseded"].as_array().expect("superseded") {
            let key = grant["idempotency_key"].as_str().unwrap();
            let (status, paid, _) = self
                .entry(key)
                .await
                .unwrap_or_else(|| panic!("{key} never reached the economy"));
            assert_eq!((status.as_str(), paid), ("REVOKED", 0), "{key}: {grant}");
            net.entry(grant["player_id"].as_str().unwrap().to_owned())
                .or_insert(0);
        }
        net
    }
}

async fn wait_for_rewards(
    api: &Api,
    war_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/wars/{war_id}/rewards");
    wait_until(what, SLACK, || async {
        let (status, rewards) = api.get(&path).await;
        Seen::ready_if(status == 200 && done(&rewards), rewards)
    })
    .await
}

/// A war `att` vs `def` (no land held long enough for hold points), fought as `kills`
/// `(killer member, victim member)` (10 points each), until it ended.
async fn fought(api: &Api, t: &str, kills: &[(&str, &str)]) -> (String, String, String) {
    let (att, def) = (format!("{t}-att"), format!("{t}-def"));
    register_clan(api, &att, 1000).await;
    register_clan(api, &def, 1000).await;
    let land = format!("{t}-land");
    register_territory(api, &land, &def, 0.0).await;
    let (status, war) = api
        .post(
            "/wars",
            Some(&format!("{att}-leader")),
            declaration(&att, &def, &[land], 12, 2),
        )
        .await;
    assert_eq!(status, 201, "{war}");
    let id = war["war_id"].as_str().unwrap().to_owned();
    api.wait_for_status(&id, "ACTIVE", SLACK).await;
    let clan_of = |member: &str| {
        if member.starts_with("att") {
            att.clone()
        } else {
            def.clone()
        }
    };
    let events: Vec<Value> = kills
        .iter()
        .enumerate()
        .map(|(i, (killer, victim))| {
            kill(
                &format!("{id}-k{i}"),
                (&format!("{t}-{killer}"), &clan_of(killer)),
                (&format!("{t}-{victim}"), &clan_of(victim)),
            )
        })
        .collect();
    let (status, outcome) = api
        .post(&format!("/wars/{id}/events"), None, json!(events))
        .await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(kills.len() as u64)),
        "{outcome}"
    );
    (id, att, def)
}

#[tokio::test]
async fn voiding_a_cheater_after_the_war_flips_the_winner_and_corrects_the_paid_rewards_once() {
    let api = Api::local();
    let economy = Economy::new().await;
    let t = unique_tag("void");
    // The cheater att-m0 kills five times, att-m1 once; def-m0 and def-m1 once each:
    // 60 to 20 for the attacker; without the cheater 10 to 20 for the defender.
    let kills = [
        ("att-m0", "def-m0"),
        ("att-m0", "def-m1"),
        ("att-m0", "def-m2"),
        ("att-m0", "def-m3"),
        ("att-m0", "def-m4"),
        ("att-m1", "def-m5"),
        ("def-m0", "att-m2"),
        ("def-m1", "att-m3"),
    ];
    let (id, att, def) = fought(&api, &t, &kills).await;
    let ended = api.wait_for_status(&id, "ENDED", SLACK).await;
    assert_eq!(
        (
            &ended["winner_side"],
            &ended["sides"]["attacker"]["score"],
            &ended["sides"]["defender"]["score"]
        ),
        (&json!("attacker"), &json!(60), &json!(20)),
        "{ended}"
    );
    let paid = wait_for_rewards(&api, &id, "the first distribution", |r| {
        r["status"] == "DISTRIBUTED"
    })
    .await;
    let cheater = format!("{t}-att-m0");
    let before = economy.check_paid(&paid).await;
    assert!(before.get(&cheater).is_some_and(|n| *n > 0), "{paid}");
    let (_, att_before) = api.get(&format!("/clans/{att}")).await;

    // A void needs exactly one selector, the operator's id and a reason; it names something.
    let void_path = admin_path(&id, "void");
    let (status, refused) = as_operator(
        &api,
        &void_path,
        json!({ "player_id": cheater, "clan_id": att, "reason": "aimbot" }),
    )
    .await;
    assert_eq!(
        (status, code(&refused)),
        (400, "INVALID_REQUEST"),
        "{refused}"
    );
    let (status, refused) = api
        .post(
            &void_path,
            None,
            json!({ "player_id": cheater, "reason": "aimbot" }),
        )
        .await;
    assert_eq!(
        (status, code(&refused)),
        (400, "INVALID_REQUEST"),
        "{refused}"
    );
    let (status, refused) = as_operator(
        &api,
        &void_path,
        json!({ "event_ids": ["nothing-like-it"], "reason": "aimbot" }),
    )
    .await;
    assert_eq!(
        (status, code(&refused)),
        (404, "LEDGER_ENTRIES_NOT_FOUND"),
        "{refused}"
    );

    let (status, voided) = as_operator(
        &api,
        &void_path,
        json!({ "player_id": cheater, "reason": "aimbot confirmed, ticket 4711" }),
    )
    .await;
    assert_eq!(
        (status, &voided["rescored"]),
        (200, &json!(true)),
        "{voided}"
    );
    let war = &voided["war"];
    assert_eq!(
        (
            &war["winner_side"],
            &war["outcome"],
            &war["sides"]["attacker"]["score"],
            &war["sides"]["defender"]["score"]
        ),
        (&json!("defender"), &json!("SCORE"), &json!(10), &json!(20)),
        "{war}"
    );
    let audit = &war["rescores"][0];
    assert_eq!(
        (
            &audit["rescore"],
            &audit["by"],
            &audit["reason"],
            &audit["voided_entries"]
        ),
        (
            &json!(1),
            &json!("ops-alice"),
            &json!("aimbot confirmed, ticket 4711"),
            &json!(5)
        ),
        "{audit}"
    );
    assert_eq!(
        (
            &audit["before"]["winner_side"],
            &audit["after"]["winner_side"]
        ),
        (&json!("attacker"), &json!("defender"))
    );
    // GET /wars shows the same; the attacker's rating moves from a win to a loss.
    let (_, shown) = api.get(&format!("/wars/{id}")).await;
    assert_eq!(shown["rescores"], war["rescores"]);
    let (_, att_after) = api.get(&format!("/clans/{att}")).await;
    assert!(
        att_after["rating"].as_i64() < att_before["rating"].as_i64(),
        "{att_before} → {att_after}"
    );
    let (_, def_after) = api.get(&format!("/clans/{def}")).await;
    assert!(def_after["rating"].as_i64() > Some(1000), "{def_after}");
    // The scoreboard, the player and the ledger follow.
    let (_, board) = api.get(&format!("/wars/{id}/scoreboard")).await;
    assert_eq!(
        (
            &board["sides"]["attacker"]["score"],
            &board["sides"]["defender"]["score"]
        ),
        (&json!(10), &json!(20)),
        "{board}"
    );
    assert!(
        board["top_players"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["player_id"] != json!(cheater)),
        "{board}"
    );
    let (_, points) = api.get(&format!("/wars/{id}/players/{cheater}")).await;
    assert_eq!(points["points"], 0, "{points}");
    let (_, ledger) = api
        .get(&format!("/wars/{id}/ledger?player_id={cheater}"))
        .await;
    let entries = ledger["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "{ledger}");
    assert!(entries.iter().all(|e| e["voided_by"] == 1), "{ledger}");

    // The paid rewards are corrected by the reward saga's run r1: the difference, once.
    let corrected = wait_for_rewards(&api, &id, "the correction r1", |r| {
        r["status"] == "DISTRIBUTED" && r["rescore"] == 1
    })
    .await;
    assert_eq!(corrected["run"], "r1", "{corrected}");
    assert_eq!(economy.finished(&format!("{id}-r1")).await, "SUCCEEDED");
    let after = economy.check_paid(&corrected).await;
    assert_eq!(
        after.get(&cheater),
        Some(&0),
        "the cheater keeps nothing: {corrected}"
    );
    assert!(
        corrected["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["idempotency_key"].as_str().unwrap().ends_with("#r1")),
        "{corrected}"
    );
    let cheater_key = format!("{id}#{cheater}#gold");
    assert_eq!(
        economy.entry(&cheater_key).await.map(|e| e.0),
        Some("REVOKED".into())
    );
    // Every player's net is what the corrected plan pays (the winner side now gets the big pool).
    for grant in corrected["grants"].as_array().unwrap() {
        let player = grant["player_id"].as_str().unwrap();
        assert_eq!(
            after.get(player),
            grant["amount"].as_i64().as_ref(),
            "{player}"
        );
    }

    // Voiding the same again changes nothing and pays nothing.
    let (status, again) = as_operator(
        &api,
        &void_path,
        json!({ "player_id": cheater, "reason": "again" }),
    )
    .await;
    assert_eq!(
        (status, &again["rescored"]),
        (200, &json!(false)),
        "{again}"
    );
    let (_, still) = api.get(&format!("/wars/{id}/rewards")).await;
    assert_eq!(still, corrected);
    assert_eq!(economy.check_paid(&still).await, after);
}

#[tokio::test]
async fn a_redrive_after_the_economy_recovers_pays_only_what_was_not_paid() {
    let api = Api::local();
    let economy = Economy::new().await;
    let t = unique_tag("redrive");
    let kills = [
        ("att-m0", "def-m0"),
        ("att-m1", "def-m1"),
        ("att-m2", "def-m2"),
        ("def-m0", "att-m0"),
    ];
    let (id, _, _) = fought(&api, &t, &kills).await;
    // The economy is down from the war's second grant on: the first is paid, then taken back.
    economy.fail_from_grant(&id, 2).await;
    api.wait_for_status(&id, "ENDED", SLACK).await;
    let failed = wait_for_rewards(&api, &id, "the failed distribution", |r| {
        r["status"] == "REWARDS_FAILED"
    })
    .await;
    assert_eq!(economy.finished(&id).await, "FAILED");
    let first_keys: Vec<String> = failed["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["idempotency_key"].as_str().unwrap().to_owned())
        .collect();
    let mut reached = 0;
    for key in &first_keys {
        if let Some((status, net, _)) = economy.entry(key).await {
            assert_eq!((status.as_str(), net), ("REVOKED", 0), "{key}");
            reached += 1;
        }
    }
    assert!(
        reached >= 1,
        "the first grant was paid, then revoked: {failed}"
    );

    // Only a failed distribution can be re-driven; an operator's id and a reason are needed.
    let redrive = admin_path(&id, "rewards/redrive");
    let (status, refused) = api
        .post(&redrive, None, json!({ "reason": "economy is back" }))
        .await;
    assert_eq!(
        (status, code(&refused)),
        (400, "INVALID_REQUEST"),
        "{refused}"
    );
    economy.recover(&id).await;
    let (status, redriven) =
        as_operator(&api, &redrive, json!({ "reason": "economy is back" })).await;
    assert_eq!(status, 200, "{redriven}");
    assert_eq!(
        (&redriven["attempt"], &redriven["run"]),
        (&json!(2), &json!("a2")),
        "{redriven}"
    );
    let (status, twice) = as_operator(&api, &redrive, json!({ "reason": "again" })).await;
    assert_eq!(
        (status, code(&twice)),
        (409, "INVALID_REWARD_STATE"),
        "{twice}"
    );

    let paid = wait_for_rewards(&api, &id, "the re-driven distribution", |r| {
        r["status"] == "DISTRIBUTED"
    })
    .await;
    assert_eq!(economy.finished(&format!("{id}-a2")).await, "SUCCEEDED");
    let net = economy.check_paid(&paid).await;
    for grant in paid["grants"].as_array().unwrap() {
        let key = grant["idempotency_key"].as_str().unwrap();
        let (_, _, requests) = economy.entry(key).await.unwrap();
        assert_eq!(requests, 1, "{key} was asked for once");
        assert_eq!(
            net[grant["player_id"].as_str().unwrap()],
            grant["amount"].as_i64().unwrap()
        );
    }
    // The first attempt's revoked keys stayed revoked (a revoked key never pays again).
    for key in &first_keys {
        if let Some((status, net, _)) = economy.entry(key).await {
            if !paid["grants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["idempotency_key"] == json!(key))
            {
                assert_eq!((status.as_str(), net), ("REVOKED", 0), "{key}");
            }
        }
    }
    let (_, war) = api.get(&format!("/wars/{id}")).await;
    let audit = war["operator_actions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (&audit["action"], &audit["by"], &audit["rewards_run"]),
        (&json!("redrive_rewards"), &json!("ops-alice"), &json!("a2")),
        "{audit}"
    );
    assert_eq!(war["rewards_status"], "DISTRIBUTED");
}
