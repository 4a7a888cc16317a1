//! The demo war player (`tools/demo`) run headless with short phases against the local stack,
//! then its result checked independently through the public API: the war ENDED by its timers,
//! the winner agrees with the final scores, a territory changed hands, the scoreboard has top
//! players, and the rewards were paid in full within the pools.

use clanwar_demo::{play, DemoConfig, DemoOutcome, LogProgress, Phases};
use clanwar_domain::config::Rules;
use clanwar_integration_tests::{Api, Resources};
use serde_json::Value;
use std::cmp::Ordering;
use std::time::Duration;

/// The whole test: setup, ~12 s of phases (timers lag a little locally), the reward saga.
const BUDGET: Duration = Duration::from_secs(90);

async fn run_demo() -> DemoOutcome {
    let url = std::env::var("CLANWAR_API_URL").unwrap_or_else(|_| Resources::load().url("HttpApi"));
    let mut config = DemoConfig::new(url);
    config.phases = Phases::TEST;
    config.players_per_clan = 12;
    config.seed = 7;
    config.slack = Duration::from_secs(40);
    let played = tokio::time::timeout(BUDGET, play(config, Box::new(LogProgress::stderr()))).await;
    played
        .expect("the demo finishes within its budget")
        .unwrap_or_else(|e| panic!("the demo failed: {e}"))
}

fn score(board: &Value, side: &str) -> i64 {
    board["sides"][side]["score"]
        .as_i64()
        .unwrap_or_else(|| panic!("no {side} score in {board}"))
}

/// SPEC §6: higher side score; tie → more of the war's territories held at the end; else draw.
fn expected_winner(board: &Value, war: &Value, owners: &[String]) -> &'static str {
    let held = |side: &str| {
        let clans = war["sides"][side]["clan_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        owners
            .iter()
            .filter(|o| clans.iter().any(|c| c == o.as_str()))
            .count()
    };
    let by_territories = held("attacker").cmp(&held("defender"));
    match score(board, "attacker")
        .cmp(&score(board, "defender"))
        .then(by_territories)
    {
        Ordering::Greater => "attacker",
        Ordering::Less => "defender",
        Ordering::Equal => "draw",
    }
}

/// SPEC §7 pools `(attacker, defender)`, from the rules the local stack runs with (defaults).
fn pools(winner: &str, war: &Value) -> (u64, u64) {
    let base = Rules::default().base_reward;
    let captured = |side: &str| {
        let captures = war["captures"].as_array().cloned().unwrap_or_default();
        captures.iter().filter(|c| c["side"] == side).count() as u64
    };
    match winner {
        "attacker" => (base * (10 + captured("attacker")) / 10, base / 5),
        "defender" => (base / 5, base * (10 + captured("defender")) / 10),
        _ => (base / 2, base / 2),
    }
}

#[tokio::test]
async fn the_demo_plays_a_whole_war_and_the_api_confirms_its_result() {
    let outcome = run_demo().await;
    let api = Api::local();
    let war_id = &outcome.war_id;

    let (status, war) = api.get(&format!("/wars/{war_id}")).await;
    assert_eq!(
        (status, war["status"].as_str()),
        (200, Some("ENDED")),
        "{war}"
    );
    let (status, board) = api.get(&format!("/wars/{war_id}/scoreboard?limit=5")).await;
    assert_eq!(status, 200, "{board}");
    assert!(
        board["top_players"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{board}"
    );

    // Territories: released, and at least one no longer the defender's.
    let defender = &outcome.cast.defender().id;
    let mut owners = Vec::new();
    for territory in outcome.cast.targets() {
        let (status, t) = api.get(&format!("/territories/{}", territory.id)).await;
        assert_eq!(status, 200, "{t}");
        assert!(t["contested_by"].is_null(), "released at the end: {t}");
        owners.push(t["owner_clan_id"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        owners.iter().any(|o| o != defender),
        "a territory changed hands: {owners:?}"
    );
    assert!(!war["captures"].as_array().unwrap().is_empty(), "{war}");

    let winner = expected_winner(&board, &war, &owners);
    assert_eq!(war["winner_side"], winner, "war {war}\nscoreboard {board}");
    assert_eq!(outcome.winner_side.as_deref(), Some(winner));

    // The stream showed the service's guards at work.
    assert!(
        outcome
            .totals
            .rejected
            .get("ANTI_FARMING")
            .is_some_and(|n| *n > 0),
        "{:?}",
        outcome.totals
    );
    assert!(outcome.totals.duplicates > 0, "{:?}", outcome.totals);

    // Rewards: paid in full, each side within its pool.
    let (status, rewards) = api.get(&format!("/wars/{war_id}/rewards")).await;
    assert_eq!(
        (status, rewards["status"].as_str()),
        (200, Some("DISTRIBUTED")),
        "{rewards}"
    );
    let grants = rewards["grants"].as_array().expect("grants");
    assert!(!grants.is_empty());
    assert!(grants.iter().all(|g| g["status"] == "GRANTED"), "{rewards}");
    let (attacker_pool, defender_pool) = pools(winner, &war);
    let side_total = |side: &str| -> u64 {
        let on_side = |g: &&Value| {
            let player = g["player_id"].as_str().unwrap_or_default();
            outcome
                .cast
                .clan_of_player(player)
                .is_some_and(|c| c.side.as_str() == side)
        };
        grants
            .iter()
            .filter(on_side)
            .map(|g| g["amount"].as_u64().unwrap_or(0))
            .sum()
    };
    let (paid_attackers, paid_defenders) = (side_total("attacker"), side_total("defender"));
    let total: u64 = grants
        .iter()
        .map(|g| g["amount"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        paid_attackers + paid_defenders,
        total,
        "every grant goes to a player of the cast"
    );
    assert!(
        paid_attackers <= attacker_pool,
        "{paid_attackers} > {attacker_pool}"
    );
    assert!(
        paid_defenders <= defender_pool,
        "{paid_defenders} > {defender_pool}"
    );
    assert_eq!(outcome.rewards.total(), total);
}
