use super::*;
use crate::clan::fixtures::clan;
use crate::config::Rules;
use crate::memory::{FakeClock, RacingStore};
use crate::services::{Deps, MemoryHandles};
use crate::war::fixtures::war;
use crate::war::{Side, WarStatus};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

const CLANS: [&str; 7] = ["f", "b", "c", "d", "e", "x", "y"];

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn id(c: &str) -> ClanId {
    ClanId::new(c).unwrap()
}

fn leader(c: &str) -> PlayerId {
    PlayerId::new(format!("{c}-leader")).unwrap()
}

fn officer(c: &str) -> PlayerId {
    PlayerId::new(format!("{c}-officer")).unwrap()
}

fn member(c: &str) -> PlayerId {
    PlayerId::new(format!("{c}-m0")).unwrap()
}

async fn setup_with(deps: Deps) -> AllianceService {
    let mut tx = Transaction::new();
    for c in CLANS {
        tx.insert(&mut clan(c, 12));
    }
    deps.store.commit(tx).await.unwrap();
    AllianceService::new((&deps).into())
}

async fn setup() -> (AllianceService, MemoryHandles) {
    let (deps, h) = Deps::in_memory(Rules::default(), FakeClock::at(t0()));
    (setup_with(deps).await, h)
}

/// An alliance founded by `f`.
async fn founded(svc: &AllianceService) -> AllianceId {
    svc.create("North", &id("f"), &leader("f"))
        .await
        .unwrap()
        .alliance_id
}

async fn join(svc: &AllianceService, a: &AllianceId, c: &str) {
    svc.invite(a, &id(c), &leader("f")).await.unwrap();
    svc.accept(a, &id(c), &officer(c)).await.unwrap();
}

/// Everything an alliance call could write, to prove a rejected call wrote nothing. Ids
/// come from `SequentialIds`, so every alliance a test can have made is among `id-1..=99`.
async fn state(svc: &AllianceService, h: &MemoryHandles) -> String {
    use crate::ports::Outbox;
    let store = &svc.ports.store;
    let mut out = String::new();
    for c in CLANS {
        out += &format!("{:?}\n", store.get(&RecordKey::Clan(id(c))).await.unwrap());
    }
    for n in 1..100 {
        let a = AllianceId::new(format!("id-{n}")).unwrap();
        out += &format!(
            "{:?}\n",
            store.get(&RecordKey::Alliance(a.clone())).await.unwrap()
        );
        out += &format!("{:?}\n", store.invitations_of_alliance(&a).await.unwrap());
    }
    let pending = h.store.pending(usize::MAX).await.unwrap().len();
    out + &format!("outbox {pending} published {}", h.events.published().len())
}

async fn assert_rejected<T: std::fmt::Debug>(
    svc: &AllianceService,
    h: &MemoryHandles,
    code: &str,
    call: impl std::future::Future<Output = DomainResult<T>>,
) {
    let before = state(svc, h).await;
    let err = call.await.unwrap_err();
    assert_eq!(err.code(), code, "{err}");
    assert_eq!(state(svc, h).await, before, "{code} wrote something");
}

async fn clan_record(svc: &AllianceService, c: &str) -> Clan {
    svc.ports.clan(&id(c)).await.unwrap()
}

#[tokio::test]
async fn an_officer_founds_an_alliance_and_it_is_announced() {
    let (svc, h) = setup().await;
    let a = svc
        .create("  North  ", &id("f"), &officer("f"))
        .await
        .unwrap();
    assert_eq!(
        (a.name.as_str(), a.member_clan_ids.clone()),
        ("North", vec![id("f")])
    );
    assert_eq!(
        clan_record(&svc, "f").await.alliance_id,
        Some(a.alliance_id.clone())
    );
    let view = svc.get(&a.alliance_id).await.unwrap();
    assert_eq!(view.alliance, a);
    let e = h.events.published().pop().unwrap();
    assert_eq!(
        e.event,
        DomainEvent::AllianceFormed {
            alliance_id: a.alliance_id.clone(),
            name: "North".into(),
            clan_id: id("f"),
            member_clan_ids: vec![id("f")],
        }
    );
}

#[tokio::test]
async fn creating_is_refused_for_bad_names_roles_and_allied_founders() {
    let (svc, h) = setup().await;
    assert_rejected(
        &svc,
        &h,
        "INVALID_REQUEST",
        svc.create(" ", &id("f"), &leader("f")),
    )
    .await;
    let long = "n".repeat(65);
    assert_rejected(
        &svc,
        &h,
        "INVALID_REQUEST",
        svc.create(&long, &id("f"), &leader("f")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "FORBIDDEN_ROLE",
        svc.create("N", &id("f"), &member("f")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "CLAN_NOT_FOUND",
        svc.create("N", &id("zz"), &leader("f")),
    )
    .await;
    founded(&svc).await;
    assert_rejected(
        &svc,
        &h,
        "ALREADY_IN_ALLIANCE",
        svc.create("S", &id("f"), &leader("f")),
    )
    .await;
}

#[tokio::test]
async fn an_invitation_lasts_48_hours_and_is_announced() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    let inv = svc.invite(&a, &id("b"), &officer("f")).await.unwrap();
    assert_eq!(inv.expires_at, t0() + Duration::hours(48));
    assert_eq!(inv.invited_by, officer("f"));
    let e = h.events.published().pop().unwrap();
    assert_eq!(e.event_type(), "AllianceInvited");
    assert_eq!(e.clan_ids, vec![id("f"), id("b")]);
    assert_eq!(svc.get(&a).await.unwrap().invitations, vec![inv]);
}

#[tokio::test]
async fn any_member_clans_officer_may_invite_but_nobody_else() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    join(&svc, &a, "b").await;
    svc.invite(&a, &id("c"), &officer("b")).await.unwrap();
    assert_rejected(
        &svc,
        &h,
        "FORBIDDEN_ROLE",
        svc.invite(&a, &id("d"), &member("f")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "FORBIDDEN_ROLE",
        svc.invite(&a, &id("d"), &leader("x")),
    )
    .await;
}

#[tokio::test]
async fn inviting_unknown_parties_is_not_found() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    let ghost = AllianceId::new("ghost").unwrap();
    assert_rejected(
        &svc,
        &h,
        "ALLIANCE_NOT_FOUND",
        svc.invite(&ghost, &id("b"), &leader("f")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "CLAN_NOT_FOUND",
        svc.invite(&a, &id("zz"), &leader("f")),
    )
    .await;
}

#[tokio::test]
async fn a_clan_is_in_at_most_one_alliance() {
    let (svc, h) = setup().await;
    let north = founded(&svc).await;
    let south = svc
        .create("South", &id("x"), &leader("x"))
        .await
        .unwrap()
        .alliance_id;
    // Invited to both, accepts the first: the second accept and new invitations fail.
    svc.invite(&north, &id("b"), &leader("f")).await.unwrap();
    svc.invite(&south, &id("b"), &leader("x")).await.unwrap();
    svc.accept(&north, &id("b"), &leader("b")).await.unwrap();
    assert_rejected(
        &svc,
        &h,
        "ALREADY_IN_ALLIANCE",
        svc.accept(&south, &id("b"), &leader("b")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "ALREADY_IN_ALLIANCE",
        svc.invite(&south, &id("f"), &leader("x")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "ALREADY_IN_ALLIANCE",
        svc.invite(&north, &id("b"), &leader("f")),
    )
    .await;
    assert_eq!(clan_record(&svc, "b").await.alliance_id, Some(north));
}

#[tokio::test]
async fn a_live_invitation_cannot_be_repeated_but_an_expired_one_is_replaced() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    svc.invite(&a, &id("b"), &leader("f")).await.unwrap();
    assert_rejected(
        &svc,
        &h,
        "ALREADY_INVITED",
        svc.invite(&a, &id("b"), &officer("f")),
    )
    .await;
    h.clock.advance(Duration::hours(48));
    let renewed = svc.invite(&a, &id("b"), &officer("f")).await.unwrap();
    assert_eq!(renewed.expires_at, t0() + Duration::hours(96));
    assert_eq!(renewed.version, 2);
    svc.accept(&a, &id("b"), &leader("b")).await.unwrap();
}

#[tokio::test]
async fn an_alliance_holds_at_most_four_clans_counting_the_founder() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    for c in ["b", "c", "d"] {
        join(&svc, &a, c).await;
    }
    assert_eq!(svc.get(&a).await.unwrap().alliance.member_clan_ids.len(), 4);
    assert_rejected(
        &svc,
        &h,
        "ALLIANCE_FULL",
        svc.invite(&a, &id("e"), &leader("f")),
    )
    .await;

    // Invitations sent while there was room: the accept that would overflow is refused.
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    for c in ["b", "c", "d"] {
        svc.invite(&a, &id(c), &leader("f")).await.unwrap();
    }
    svc.invite(&a, &id("e"), &leader("f")).await.unwrap();
    for c in ["b", "c", "d"] {
        svc.accept(&a, &id(c), &leader(c)).await.unwrap();
    }
    assert_rejected(
        &svc,
        &h,
        "ALLIANCE_FULL",
        svc.accept(&a, &id("e"), &leader("e")),
    )
    .await;
}

#[tokio::test]
async fn accepting_joins_the_clan_and_consumes_the_invitation() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    svc.invite(&a, &id("b"), &leader("f")).await.unwrap();
    let joined = svc.accept(&a, &id("b"), &officer("b")).await.unwrap();
    assert_eq!(joined.member_clan_ids, vec![id("f"), id("b")]);
    assert_eq!(clan_record(&svc, "b").await.alliance_id, Some(a.clone()));
    assert!(svc.get(&a).await.unwrap().invitations.is_empty());
    let e = h.events.published().pop().unwrap();
    assert!(matches!(
        e.event,
        DomainEvent::AllianceFormed { ref clan_id, ref member_clan_ids, .. }
            if clan_id == &id("b") && member_clan_ids.len() == 2
    ));
    // The invitation was consumed: accepting twice finds none.
    assert_rejected(
        &svc,
        &h,
        "INVITATION_NOT_FOUND",
        svc.accept(&a, &id("b"), &officer("b")),
    )
    .await;
}

#[tokio::test]
async fn an_invitation_expires_after_48_hours() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    svc.invite(&a, &id("b"), &leader("f")).await.unwrap();
    svc.invite(&a, &id("c"), &leader("f")).await.unwrap();
    h.clock.advance(Duration::hours(48) - Duration::seconds(1));
    svc.accept(&a, &id("c"), &leader("c")).await.unwrap();
    h.clock.advance(Duration::seconds(1));
    assert!(svc.get(&a).await.unwrap().invitations.is_empty());
    assert_rejected(
        &svc,
        &h,
        "INVITATION_EXPIRED",
        svc.accept(&a, &id("b"), &leader("b")),
    )
    .await;
}

#[tokio::test]
async fn accepting_needs_an_invitation_and_the_invited_clans_officer() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    assert_rejected(
        &svc,
        &h,
        "INVITATION_NOT_FOUND",
        svc.accept(&a, &id("b"), &leader("b")),
    )
    .await;
    svc.invite(&a, &id("b"), &leader("f")).await.unwrap();
    assert_rejected(
        &svc,
        &h,
        "FORBIDDEN_ROLE",
        svc.accept(&a, &id("b"), &member("b")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "FORBIDDEN_ROLE",
        svc.accept(&a, &id("b"), &leader("f")),
    )
    .await;
}

#[tokio::test]
async fn declining_removes_the_invitation_silently() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    svc.invite(&a, &id("b"), &leader("f")).await.unwrap();
    assert_rejected(
        &svc,
        &h,
        "FORBIDDEN_ROLE",
        svc.decline(&a, &id("b"), &member("b")),
    )
    .await;
    let published = h.events.published().len();
    svc.decline(&a, &id("b"), &officer("b")).await.unwrap();
    assert_eq!(h.events.published().len(), published);
    assert!(svc.get(&a).await.unwrap().invitations.is_empty());
    assert_rejected(
        &svc,
        &h,
        "INVITATION_NOT_FOUND",
        svc.decline(&a, &id("b"), &officer("b")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "INVITATION_NOT_FOUND",
        svc.accept(&a, &id("b"), &officer("b")),
    )
    .await;
    // Declined, the clan may be invited again.
    svc.invite(&a, &id("b"), &leader("f")).await.unwrap();
}

/// Stores a war between `attacker` (+ allies) and `defender` and books it on every clan.
async fn at_war(svc: &AllianceService, n: u32, attacker: &[&str], defender: &str) {
    let mut w = war(t0());
    w.war_id = WarId::new(format!("war-{n}")).unwrap();
    w.attacker_clan_id = id(attacker[0]);
    w.defender_clan_id = id(defender);
    w.sides.attacker.clan_ids = attacker.iter().map(|c| id(c)).collect();
    w.sides.defender.clan_ids = vec![id(defender)];
    let mut tx = Transaction::new();
    for c in w.all_clans() {
        let mut clan = svc.ports.clan(&c).await.unwrap();
        clan.enter_war(&w.war_id);
        tx.update(&mut clan);
    }
    tx.insert(&mut w);
    svc.ports.store.commit(tx).await.unwrap();
}

#[tokio::test]
async fn a_clan_at_war_with_any_member_cannot_be_invited() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    join(&svc, &a, "b").await;
    at_war(&svc, 1, &["x"], "b").await;
    assert_rejected(
        &svc,
        &h,
        "AT_WAR_WITH_MEMBER",
        svc.invite(&a, &id("x"), &leader("f")),
    )
    .await;
    // Fighting on the same side as a member is no obstacle.
    at_war(&svc, 2, &["y", "f"], "c").await;
    svc.invite(&a, &id("y"), &leader("f")).await.unwrap();
    // A war over is no obstacle either.
    let mut w = crate::services::load_war(&*svc.ports.store, &WarId::new("war-1").unwrap())
        .await
        .unwrap();
    w.status = WarStatus::Ended;
    let mut tx = Transaction::new();
    tx.update(&mut w);
    svc.ports.store.commit(tx).await.unwrap();
    svc.invite(&a, &id("x"), &leader("f")).await.unwrap();
}

#[tokio::test]
async fn a_war_started_after_the_invitation_blocks_the_accept() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    svc.invite(&a, &id("x"), &leader("f")).await.unwrap();
    at_war(&svc, 1, &["f"], "x").await;
    let w = crate::services::load_war(&*svc.ports.store, &WarId::new("war-1").unwrap())
        .await
        .unwrap();
    assert_eq!(w.side_of(&id("x")), Some(Side::Defender));
    assert_rejected(
        &svc,
        &h,
        "AT_WAR_WITH_MEMBER",
        svc.accept(&a, &id("x"), &leader("x")),
    )
    .await;
}

#[tokio::test]
async fn a_member_leaves_but_the_founder_cannot() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    join(&svc, &a, "b").await;
    assert_rejected(
        &svc,
        &h,
        "FOUNDER_CANNOT_LEAVE",
        svc.leave(&a, &id("f"), &leader("f")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "NOT_ALLIANCE_MEMBER",
        svc.leave(&a, &id("c"), &leader("c")),
    )
    .await;
    assert_rejected(
        &svc,
        &h,
        "FORBIDDEN_ROLE",
        svc.leave(&a, &id("b"), &member("b")),
    )
    .await;
    let left = svc.leave(&a, &id("b"), &officer("b")).await.unwrap();
    assert_eq!(left.member_clan_ids, vec![id("f")]);
    assert_eq!(clan_record(&svc, "b").await.alliance_id, None);
    let e = h.events.published().pop().unwrap();
    assert_eq!(
        e.event,
        DomainEvent::AllianceLeft {
            alliance_id: a.clone(),
            clan_id: id("b")
        }
    );
    // Free again: b can found its own alliance.
    svc.create("B", &id("b"), &leader("b")).await.unwrap();
}

#[tokio::test]
async fn only_the_founders_leader_dissolves_and_every_member_is_freed() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    join(&svc, &a, "b").await;
    join(&svc, &a, "c").await;
    assert_rejected(&svc, &h, "FORBIDDEN_ROLE", svc.dissolve(&a, &officer("f"))).await;
    assert_rejected(&svc, &h, "FORBIDDEN_ROLE", svc.dissolve(&a, &leader("b"))).await;
    svc.dissolve(&a, &leader("f")).await.unwrap();
    for c in ["f", "b", "c"] {
        assert_eq!(clan_record(&svc, c).await.alliance_id, None, "{c}");
    }
    assert_eq!(svc.get(&a).await.unwrap_err().code(), "ALLIANCE_NOT_FOUND");
    let e = h.events.published().pop().unwrap();
    assert_eq!(
        e.event,
        DomainEvent::AllianceDissolved {
            alliance_id: a.clone(),
            member_clan_ids: vec![id("f"), id("b"), id("c")]
        }
    );
    assert_rejected(
        &svc,
        &h,
        "ALLIANCE_NOT_FOUND",
        svc.dissolve(&a, &leader("f")),
    )
    .await;
}

#[tokio::test]
async fn an_invitation_outliving_its_alliance_cannot_be_accepted() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    svc.invite(&a, &id("b"), &leader("f")).await.unwrap();
    svc.dissolve(&a, &leader("f")).await.unwrap();
    assert_rejected(
        &svc,
        &h,
        "ALLIANCE_NOT_FOUND",
        svc.accept(&a, &id("b"), &leader("b")),
    )
    .await;
}

#[tokio::test]
async fn concurrent_accepts_into_two_alliances_cannot_both_succeed() {
    let (mut deps, h) = Deps::in_memory(Rules::default(), FakeClock::at(t0()));
    let racing = Arc::new(RacingStore::new(h.store.clone()));
    deps.store = racing.clone();
    let svc = setup_with(deps).await;
    let north = founded(&svc).await;
    let south = svc
        .create("South", &id("x"), &leader("x"))
        .await
        .unwrap()
        .alliance_id;
    svc.invite(&north, &id("b"), &leader("f")).await.unwrap();
    svc.invite(&south, &id("b"), &leader("x")).await.unwrap();

    // The rival is the south accept, committed after our north accept read clan b.
    let before_b = clan_record(&svc, "b").await;
    let mut b = before_b.clone();
    b.alliance_id = Some(south.clone());
    let mut rival = Transaction::new();
    rival.update(&mut b);
    racing.race_next_commit(rival);

    let err = svc
        .accept(&north, &id("b"), &leader("b"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "CONCURRENT_MODIFICATION");
    assert_eq!(
        svc.get(&north).await.unwrap().alliance.member_clan_ids,
        vec![id("f")]
    );
    assert_eq!(svc.get(&north).await.unwrap().invitations.len(), 1);
    assert_eq!(clan_record(&svc, "b").await.alliance_id, Some(south));
    assert_eq!(clan_record(&svc, "b").await.version, before_b.version + 1);
}

#[tokio::test]
async fn the_view_lists_only_live_invitations_in_clan_order() {
    let (svc, h) = setup().await;
    let a = founded(&svc).await;
    svc.invite(&a, &id("d"), &leader("f")).await.unwrap();
    h.clock.advance(Duration::hours(47));
    svc.invite(&a, &id("c"), &leader("f")).await.unwrap();
    svc.invite(&a, &id("b"), &leader("f")).await.unwrap();
    let listed = |v: &AllianceView| {
        v.invitations
            .iter()
            .map(|i| i.clan_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(&svc.get(&a).await.unwrap()),
        vec![id("b"), id("c"), id("d")]
    );
    h.clock.advance(Duration::hours(1));
    let view = svc.get(&a).await.unwrap();
    assert_eq!(listed(&view), vec![id("b"), id("c")]);
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["alliance_id"], a.as_str());
    assert_eq!(json["member_clan_ids"][0], "f");
    assert_eq!(json["invitations"][0]["clan_id"], "b");
}
