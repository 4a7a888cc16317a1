//! War operations within their round-trip budgets (issue 11): every request answers with the
//! AWS calls its function made (`Server-Timing`, counted by the SDK interceptor in
//! `clanwar_aws::calls`), and each operation's sequential round trips are pinned here. On AWS a
//! round trip to DynamoDB costs a few milliseconds, so these counts are what keeps the seed's
//! P99 targets (SPEC §12) within reach. Publishing events costs the caller nothing: the table's
//! stream hands new outbox entries to the relay. (Phase moves and the final tally, at most 4,
//! are pinned by the lifecycle test in `workflows.rs` from the phase-controller's metrics.)

use clanwar_integration_tests::wait::{until, SLACK};
use clanwar_integration_tests::{
    deadline, register_clan, register_territory, unique_tag, Api, AwsCalls,
};
use serde_json::{json, Value};

/// Budgets: sequential AWS round trips on the request path.
const DECLARE: u32 = 3;
const MUTATION: u32 = 3;
const READ: u32 = 2;

/// The answer must be the expected status, or the budget says nothing.
fn answered(
    what: &str,
    ((status, body), calls): ((u16, Value), AwsCalls),
    want: u16,
) -> (Value, AwsCalls) {
    assert_eq!(status, want, "{what}: {body}");
    (body, calls)
}

fn phases(declared_s: u64, active_s: u64) -> Value {
    json!({ "declared_s": declared_s, "preparation_s": 1, "active_s": active_s, "ending_s": 2 })
}

#[tokio::test]
async fn war_operations_and_reads_stay_within_their_round_trip_budgets() {
    let api = Api::local();
    let t = unique_tag("wbudget");
    let [att, def, ally, foe] = ["att", "def", "ally", "foe"].map(|c| format!("{t}-{c}"));
    for clan in [&att, &def, &ally, &foe] {
        register_clan(&api, clan, 1000).await;
    }
    let lands: Vec<String> = (0..3).map(|i| format!("{t}-land{i}")).collect();
    for (i, land) in lands.iter().enumerate() {
        register_territory(&api, land, &def, 100.0 * i as f64).await;
    }
    let (_, calls) = answered(
        "PUT territory (unchanged)",
        api.put_counted(
            &format!("/territories/{}", lands[0]),
            json!({ "name": lands[0], "region": "north", "x": 0.0, "y": 0.0, "tier": 2,
                    "resource_yield": 50, "owner_clan_id": def }),
        )
        .await,
        200,
    );
    calls.within("PUT /territories/{id}", MUTATION);

    // Alliances: the defender's ally joins through an invitation.
    let (alliance, calls) = answered(
        "create alliance",
        api.post_counted(
            "/alliances",
            Some(&format!("{def}-leader")),
            json!({"name": "Budget", "founder_clan_id": def}),
        )
        .await,
        201,
    );
    calls.within("POST /alliances", MUTATION);
    let aid = alliance["alliance_id"].as_str().unwrap().to_owned();
    let (_, calls) = answered(
        "invite",
        api.post_counted(
            &format!("/alliances/{aid}/invitations"),
            Some(&format!("{def}-officer")),
            json!({ "clan_id": ally }),
        )
        .await,
        201,
    );
    calls.within("POST /alliances/{id}/invitations", MUTATION);
    let (_, calls) = answered(
        "accept",
        api.post_counted(
            &format!("/alliances/{aid}/invitations/{ally}/accept"),
            Some(&format!("{ally}-leader")),
            json!({}),
        )
        .await,
        200,
    );
    calls.within("POST .../invitations/{clan}/accept", MUTATION);
    let (_, calls) = answered(
        "read alliance",
        api.get_counted(&format!("/alliances/{aid}")).await,
        200,
    );
    calls.within("GET /alliances/{id}", READ);

    // A declaration on three territories: everything the twelve rules read, in one step.
    let (war, calls) = answered(
        "declare",
        api.post_counted(
            "/wars",
            Some(&format!("{att}-leader")),
            json!({ "attacker_clan_id": att, "defender_clan_id": def, "territory_ids": lands,
                    "phase_durations": phases(20, 600) }),
        )
        .await,
        201,
    );
    calls.within("POST /wars (3 territories)", DECLARE);
    let id = war["war_id"].as_str().unwrap().to_owned();
    let (_, calls) = answered(
        "join",
        api.post_counted(
            &format!("/wars/{id}/join"),
            Some(&format!("{ally}-leader")),
            json!({"clan_id": ally, "side": "defender"}),
        )
        .await,
        200,
    );
    calls.within("POST /wars/{id}/join", MUTATION);

    // Reads.
    for (what, path) in [
        ("GET /wars/{id}", format!("/wars/{id}")),
        ("GET /clans/{id}", format!("/clans/{att}")),
        ("GET /clans/{id}/wars", format!("/clans/{att}/wars")),
        (
            "GET /territories/{id}",
            format!("/territories/{}", lands[0]),
        ),
        (
            "GET /territories?radius=500",
            "/territories?x=0&y=0&radius=500".to_owned(),
        ),
        (
            "GET /territories?radius=5000",
            "/territories?x=0&y=0&radius=5000".to_owned(),
        ),
        (
            "GET /wars/{id}/scoreboard",
            format!("/wars/{id}/scoreboard"),
        ),
    ] {
        let (_, calls) = answered(what, api.get_counted(&path).await, 200);
        calls.within(what, READ);
    }

    // ACTIVE: battles and captures.
    api.wait_for_status(&id, "ACTIVE", until(deadline(&war, "active_at")) + SLACK)
        .await;
    let (battle, calls) = answered(
        "open battle",
        api.post_counted(
            &format!("/wars/{id}/battles"),
            None,
            json!({"territory_id": lands[0], "max_players": 20}),
        )
        .await,
        201,
    );
    calls.within("POST /wars/{id}/battles", MUTATION);
    let bid = battle["battle_id"].as_str().unwrap().to_owned();
    let (_, calls) = answered(
        "read battle",
        api.get_counted(&format!("/wars/{id}/battles/{bid}")).await,
        200,
    );
    calls.within("GET /wars/{id}/battles/{b}", READ);
    let (_, calls) = answered(
        "resolve",
        api.post_counted(
            &format!("/wars/{id}/battles/{bid}/resolve"),
            None,
            json!({"winner_side": "attacker"}),
        )
        .await,
        200,
    );
    calls.within("POST .../battles/{b}/resolve", MUTATION);
    let (_, calls) = answered(
        "capture",
        api.post_counted(
            &format!("/territories/{}/capture", lands[1]),
            Some(&format!("{att}-m0")),
            json!({"war_id": id, "clan_id": att}),
        )
        .await,
        200,
    );
    calls.within("POST /territories/{id}/capture", MUTATION);

    // The end: the defender gives up; the war ends, its territories and clans are released.
    let (ended, calls) = answered(
        "surrender",
        api.post_counted(
            &format!("/wars/{id}/surrender"),
            Some(&format!("{def}-leader")),
            json!({"clan_id": def}),
        )
        .await,
        200,
    );
    assert_eq!(ended["status"], "ENDED", "{ended}");
    calls.within("POST /wars/{id}/surrender", MUTATION);

    // Leaving and dissolving the alliance once the war is over.
    let (_, calls) = answered(
        "leave",
        api.post_counted(
            &format!("/alliances/{aid}/leave"),
            Some(&format!("{ally}-leader")),
            json!({"clan_id": ally}),
        )
        .await,
        200,
    );
    calls.within("POST /alliances/{id}/leave", MUTATION);
    let (_, calls) = answered(
        "dissolve",
        api.delete_counted(&format!("/alliances/{aid}"), &format!("{def}-leader"))
            .await,
        200,
    );
    calls.within("DELETE /alliances/{id}", MUTATION);

    // A war both leaders call off: the second request ends it.
    let land = format!("{t}-foe-land");
    register_territory(&api, &land, &foe, 900.0).await;
    let (war, _) = answered(
        "declare on the foe",
        api.post_counted(
            "/wars",
            Some(&format!("{att}-leader")),
            json!({ "attacker_clan_id": att, "defender_clan_id": foe, "territory_ids": [land],
                    "phase_durations": phases(60, 60) }),
        )
        .await,
        201,
    );
    let id = war["war_id"].as_str().unwrap().to_owned();
    let (_, calls) = answered(
        "first cancel",
        api.post_counted(
            &format!("/wars/{id}/cancel"),
            Some(&format!("{att}-leader")),
            json!({"clan_id": att}),
        )
        .await,
        200,
    );
    calls.within("POST /wars/{id}/cancel (first side)", MUTATION);
    let (cancelled, calls) = answered(
        "second cancel",
        api.post_counted(
            &format!("/wars/{id}/cancel"),
            Some(&format!("{foe}-leader")),
            json!({"clan_id": foe}),
        )
        .await,
        200,
    );
    assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
    calls.within("POST /wars/{id}/cancel (ends the war)", MUTATION);
}
