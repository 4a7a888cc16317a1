use super::*;
use crate::ids::AllianceId;
use crate::memory::WorkflowCall;
use crate::services::fixtures::{clan, player, World};
use crate::war::WinnerSide;

#[tokio::test]
async fn surrender_mid_active_ends_the_war_at_once_and_is_idempotent() {
    let w = World::new().await;
    let war = w.declare().await;
    w.reach(&war, WarStatus::Preparation).await;
    w.reach(&war, WarStatus::Active).await;
    w.score(&war, "e1", "att", 10).await;
    w.score(&war, "e2", "def", 50).await;
    let ended = w
        .membership
        .surrender(&war.war_id, &clan("def"), &player("def-officer"))
        .await
        .unwrap();
    assert_eq!(ended.status, WarStatus::Ended);
    assert_eq!(ended.winner_side, Some(WinnerSide::Attacker));
    assert_eq!(
        (ended.sides.attacker.score, ended.sides.defender.score),
        (10, 50)
    );
    w.react_to_published().await;
    let calls = w.h.workflows.calls();
    assert!(calls.contains(&WorkflowCall::StopLifecycle(war.war_id.clone())));
    assert!(calls.contains(&WorkflowCall::StartRewards(war.war_id.clone())));
    let again = w
        .membership
        .surrender(&war.war_id, &clan("def"), &player("def-officer"))
        .await
        .unwrap();
    assert_eq!(again.version, ended.version);
    let err = w
        .membership
        .surrender(&war.war_id, &clan("att"), &player("att-leader"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
}

#[tokio::test]
async fn a_member_cannot_surrender_for_the_clan() {
    let w = World::new().await;
    let war = w.declare().await;
    let err = w
        .membership
        .surrender(&war.war_id, &clan("def"), &player("def-m1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN_ROLE");
    assert_eq!(
        w.deps.war(&war.war_id).await.unwrap().status,
        WarStatus::Declared
    );
}

#[tokio::test]
async fn mutual_cancel_needs_both_leaders() {
    let w = World::new().await;
    let war = w.declare().await;
    let err = w
        .membership
        .cancel(&war.war_id, &clan("att"), &player("att-officer"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN_ROLE");
    let half = w
        .membership
        .cancel(&war.war_id, &clan("att"), &player("att-leader"))
        .await
        .unwrap();
    assert_eq!(half.status, WarStatus::Declared);
    let done = w
        .membership
        .cancel(&war.war_id, &clan("def"), &player("def-leader"))
        .await
        .unwrap();
    assert_eq!(done.status, WarStatus::Cancelled);
    w.react_to_published().await;
    assert!(w
        .h
        .workflows
        .calls()
        .contains(&WorkflowCall::StopLifecycle(war.war_id.clone())));
    assert_eq!(w.territory("t1").await.contested_by, None);
    assert_eq!(w.clan("def").await.last_war_ended_at, None);
    // Nothing to wait for: the pair may fight again at once.
    w.wars.declare(w.command(&["t1"], None)).await.unwrap();
}

#[tokio::test]
async fn an_ally_joins_the_defender_and_counts_for_its_side() {
    let w = World::new().await;
    for id in ["def", "ally"] {
        let mut c = w.clan(id).await;
        c.alliance_id = Some(AllianceId::new("al").unwrap());
        let mut tx = Transaction::new();
        tx.update(&mut c);
        w.deps.commit(tx).await.unwrap();
    }
    let war = w.declare().await;
    let req = JoinRequest {
        clan_id: clan("ally"),
        side: Side::Defender,
    };
    let err = w
        .membership
        .join(&war.war_id, req.clone(), &player("ally-m0"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN_ROLE");
    let joined = w
        .membership
        .join(&war.war_id, req.clone(), &player("ally-leader"))
        .await
        .unwrap();
    assert_eq!(
        joined.sides.defender.clan_ids,
        vec![clan("def"), clan("ally")]
    );
    assert!(w.h.events.types().contains(&"AllyJoined"));
    assert_eq!(
        w.clan("ally").await.active_war_ids,
        vec![war.war_id.clone()]
    );
    let err = w
        .membership
        .join(&war.war_id, req, &player("ally-leader"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_IN_WAR");

    w.reach(&war, WarStatus::Preparation).await;
    w.reach(&war, WarStatus::Active).await;
    w.score(&war, "e1", "ally", 40).await;
    let live = w.wars.get(&war.war_id).await.unwrap();
    assert_eq!(live.sides.defender.score, 40);
}
