//! The demo war, step by step, through the public HTTP API only: register clans and
//! territories, form two alliances, declare with short phases, let the allies join, fight
//! (battles, event batches, captures, resolutions) during ACTIVE, wait for the timers to end
//! the war, wait for the reward saga, and collect the result. The steps tied to a phase (joins,
//! the fight) are paced by the war's clock: one that no longer fits its phase is reported as
//! missed and the story goes on.

use crate::api::{Api, DemoError};
use crate::cast::{Cast, ATTACKER, ATTACKER_ALLY, DEFENDER, DEFENDER_ALLY};
use crate::config::DemoConfig;
use crate::fight;
use crate::live::Live;
use crate::model::{AllianceView, ClanView, RewardsView, Scoreboard, WarView};
use crate::outcome::{DemoOutcome, RatingChange, RewardRow, RewardTable};
use crate::pace::{Pacer, StepKind, Window};
use crate::stream::EventStream;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// How often a wait re-reads the war or the reward plan.
const POLL: std::time::Duration = std::time::Duration::from_millis(500);
/// Lifecycle order of the statuses a wait can ask for.
const ORDER: [&str; 5] = ["DECLARED", "PREPARATION", "ACTIVE", "ENDING", "ENDED"];

/// Aborts a background task when dropped (also on the error paths).
struct Background(Option<JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// One demo war: the API, what to play, who plays it, the live view and the event stream.
pub(crate) struct Story {
    api: Api,
    config: DemoConfig,
    cast: Arc<Cast>,
    live: Live,
    stream: EventStream,
}

impl Story {
    pub(crate) fn new(api: Api, config: DemoConfig, cast: Arc<Cast>, live: Live) -> Self {
        let stream = EventStream::new(config.seed, &config.run_id);
        Self {
            api,
            config,
            cast,
            live,
            stream,
        }
    }

    pub(crate) async fn run(mut self) -> Result<DemoOutcome, DemoError> {
        self.register().await?;
        self.form_alliances().await?;
        let war = self.declare().await?;
        let _poller = Background(Some(
            self.live.spawn_poller(self.api.clone(), war.war_id.clone()),
        ));
        let _feed = Background(self.config.ws_url.clone().map(|url| {
            crate::ws::spawn(
                url,
                self.api.clone(),
                war.war_id.clone(),
                self.live.clone(),
                self.cast.clone(),
            )
        }));
        self.join_allies(&war).await?;
        let war = self.wait_for(&war, "ACTIVE").await?;
        self.fight(&war).await?;
        let war = self.wait_for(&war, "ENDED").await?;
        let rewards = self.await_rewards(&war).await?;
        self.live.refresh(&self.api, &war.war_id).await;
        self.outcome(war, rewards).await
    }

    // ---- setup --------------------------------------------------------------------------

    async fn register(&self) -> Result<(), DemoError> {
        self.live
            .step("registering clans and territories (guild service snapshots)");
        for clan in &self.cast.clans {
            let _: Value = self
                .api
                .put(&format!("/clans/{}", clan.id), &clan.snapshot())
                .await?;
            self.live.milestone(format!(
                "clan {} ({}) registered: {} players, rating {}, {} side",
                clan.name,
                clan.id,
                clan.players.len(),
                clan.rating,
                clan.side.as_str()
            ));
        }
        let owner = &self.cast.defender().id;
        for t in &self.cast.territories {
            let _: Value = self
                .api
                .put(&format!("/territories/{}", t.id), &t.body(owner))
                .await?;
        }
        let names: Vec<String> = self
            .cast
            .territories
            .iter()
            .map(|t| format!("{} (tier {})", t.name, t.tier))
            .collect();
        self.live.milestone(format!(
            "territories of {}: {}",
            self.cast.defender().name,
            names.join(", ")
        ));
        Ok(())
    }

    async fn form_alliances(&self) -> Result<(), DemoError> {
        self.live
            .step("forming alliances: invitations and acceptances");
        self.alliance("Sunrise Pact", ATTACKER, ATTACKER_ALLY)
            .await?;
        self.alliance("Northern Shield", DEFENDER, DEFENDER_ALLY)
            .await
    }

    /// The founder's leader creates the alliance, its officer invites, the ally's leader accepts.
    async fn alliance(&self, name: &str, founder: usize, ally: usize) -> Result<(), DemoError> {
        let (founder, ally) = (&self.cast.clans[founder], &self.cast.clans[ally]);
        let body = json!({ "name": format!("{name} {}", self.cast.run_id), "founder_clan_id": founder.id });
        let alliance: AllianceView = self
            .api
            .post("/alliances", Some(&founder.leader), &body)
            .await?;
        let path = format!("/alliances/{}/invitations", alliance.alliance_id);
        let _: Value = self
            .api
            .post(
                &path,
                Some(&founder.officer),
                &json!({ "clan_id": ally.id }),
            )
            .await?;
        let _: Value = self
            .api
            .post(
                &format!("{path}/{}/accept", ally.id),
                Some(&ally.leader),
                &json!({}),
            )
            .await?;
        self.live.milestone(format!(
            "alliance {name}: {} invited {}, who accepted",
            founder.name, ally.name
        ));
        Ok(())
    }

    async fn declare(&self) -> Result<WarView, DemoError> {
        self.live.step("declaring war");
        let (attacker, defender) = (self.cast.attacker(), self.cast.defender());
        let targets: Vec<&str> = self.cast.targets().iter().map(|t| t.id.as_str()).collect();
        let body = json!({
            "attacker_clan_id": attacker.id, "defender_clan_id": defender.id, "territory_ids": targets,
            "phase_durations": self.config.phases.to_json()
        });
        let key = format!("{}-declare", self.cast.run_id);
        let war: WarView = self
            .api
            .post_once("/wars", &attacker.leader, &key, &body)
            .await?;
        let p = self.config.phases;
        let names: Vec<String> = self.cast.targets().iter().map(|t| t.name.clone()).collect();
        self.live.milestone(format!(
            "{} declares war on {} over {} (phases {}s/{}s/{}s/{}s): war {}",
            attacker.name,
            defender.name,
            names.join(", "),
            p.declared_s,
            p.preparation_s,
            p.active_s,
            p.ending_s,
            war.war_id
        ));
        self.live.set_war(war.clone());
        Ok(war)
    }

    /// The attacker's ally joins at once (DECLARED); the defender's ally answers the call during
    /// PREPARATION when that phase is long enough to wait for, else at once as well.
    async fn join_allies(&self, war: &WarView) -> Result<(), DemoError> {
        self.live.step("allies joining");
        self.join(war, ATTACKER_ALLY).await?;
        if self.config.phases.preparation_s >= 3 {
            self.live
                .step("waiting for PREPARATION: the defender calls its ally");
            self.wait_for(war, "PREPARATION").await?;
        }
        self.join(war, DEFENDER_ALLY).await
    }

    async fn join(&self, war: &WarView, ally: usize) -> Result<(), DemoError> {
        let clan = &self.cast.clans[ally];
        let body = json!({ "clan_id": clan.id, "side": clan.side.as_str() });
        let path = format!("/wars/{}/join", war.war_id);
        let pacer = Pacer {
            api: &self.api,
            live: &self.live,
            war_id: &war.war_id,
        };
        let needed = pacer.needed(&[("POST", &path)]);
        let joined = pacer
            .step(
                StepKind::Join,
                format!("{} joining the {} side", clan.name, clan.side.as_str()),
                Window::Rosters,
                needed,
                || self.api.post::<WarView>(&path, Some(&clan.leader), &body),
            )
            .await?;
        let Some(joined) = joined else {
            return Ok(());
        };
        self.live.milestone(format!(
            "{} joins the {} side during {}",
            clan.name,
            clan.side.as_str(),
            joined.status
        ));
        self.live.set_war(joined);
        Ok(())
    }

    // ---- waiting on the timers ------------------------------------------------------------

    /// Polls the war until it reached `wanted` (or later); CANCELLED or a timer far behind its
    /// deadline stops the demo.
    async fn wait_for(&self, war: &WarView, wanted: &str) -> Result<WarView, DemoError> {
        let rank = |s: &str| ORDER.iter().position(|o| *o == s);
        let target = rank(wanted).expect("a lifecycle status");
        let give_up = deadline_of(war, wanted) + to_chrono(self.config.slack);
        match wanted {
            "PREPARATION" => {}
            "ENDED" => self
                .live
                .step("ENDING: late events still count; waiting for the timers to end the war"),
            _ => self.live.step(format!("waiting for the timers: {wanted}")),
        }
        loop {
            let current: WarView = self.api.get(&format!("/wars/{}", war.war_id)).await?;
            self.live.set_war(current.clone());
            match rank(&current.status) {
                Some(r) if r >= target => return Ok(current),
                Some(_) => {}
                None => {
                    return Err(DemoError::Unexpected(format!(
                        "war {} is {} (outcome {:?}) while waiting for {wanted}",
                        war.war_id, current.status, current.outcome
                    )))
                }
            }
            if Utc::now() > give_up {
                return Err(DemoError::Timeout(format!(
                    "war {} still {} at {give_up}, expected {wanted} by {}",
                    war.war_id,
                    current.status,
                    deadline_of(war, wanted)
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    // ---- ACTIVE ------------------------------------------------------------------------------

    async fn fight(&mut self, war: &WarView) -> Result<(), DemoError> {
        let Story {
            api,
            config,
            cast,
            live,
            stream,
        } = self;
        let ctx = fight::Ctx {
            api,
            config,
            cast,
            live,
        };
        fight::play(ctx, stream, war).await
    }

    // ---- after the war -------------------------------------------------------------------

    /// Polls the reward plan until the saga finished (DISTRIBUTED or REWARDS_FAILED).
    async fn await_rewards(&self, war: &WarView) -> Result<RewardsView, DemoError> {
        self.live.step("ENDED: waiting for the reward saga");
        let give_up = Utc::now() + to_chrono(self.config.slack);
        loop {
            let path = format!("/wars/{}/rewards", war.war_id);
            if let Some(view) = self.api.get_if_exists::<RewardsView>(&path).await? {
                let granted = view.grants.iter().filter(|g| g.status == "GRANTED").count();
                self.live.set_rewards(format!(
                    "{}: {granted}/{} grants GRANTED",
                    view.status,
                    view.grants.len()
                ));
                if view.status == "DISTRIBUTED" || view.status == "REWARDS_FAILED" {
                    self.live
                        .milestone(format!("reward saga finished: {}", view.status));
                    return Ok(view);
                }
            } else {
                self.live.set_rewards("no plan yet");
            }
            if Utc::now() > give_up {
                return Err(DemoError::Timeout(format!(
                    "the rewards of war {} were not distributed in time",
                    war.war_id
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn outcome(&self, war: WarView, rewards: RewardsView) -> Result<DemoOutcome, DemoError> {
        self.live.step("collecting the result");
        let scoreboard: Scoreboard = self
            .api
            .get(&format!("/wars/{}/scoreboard?limit=10", war.war_id))
            .await?;
        let mut ratings = Vec::new();
        for clan in &self.cast.clans {
            let now: ClanView = self.api.get(&format!("/clans/{}", clan.id)).await?;
            ratings.push(RatingChange {
                clan_id: now.clan_id,
                name: clan.name.clone(),
                side: clan.side,
                before: i64::from(clan.rating),
                after: now.rating,
            });
        }
        self.live.step("done");
        Ok(DemoOutcome {
            cast: (*self.cast).clone(),
            war_id: war.war_id,
            status: war.status,
            winner_side: war.winner_side,
            outcome: war.outcome,
            scoreboard,
            captures: war.captures,
            ratings,
            rewards: self.reward_table(rewards),
            totals: self.live.totals(),
            missed: self.live.missed_steps(),
        })
    }

    fn reward_table(&self, view: RewardsView) -> RewardTable {
        let mut rows: Vec<RewardRow> = view
            .grants
            .into_iter()
            .map(|g| {
                let clan = self.cast.clan_of_player(&g.player_id);
                RewardRow {
                    clan_name: clan.map_or_else(|| "?".to_owned(), |c| c.name.clone()),
                    side: clan.map(|c| c.side),
                    player_id: g.player_id,
                    kind: g.kind,
                    amount: g.amount,
                    status: g.status,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.amount
                .cmp(&a.amount)
                .then_with(|| a.player_id.cmp(&b.player_id))
        });
        RewardTable {
            status: view.status,
            rows,
        }
    }
}

/// When the war is due to enter `status` by its timers.
fn deadline_of(war: &WarView, status: &str) -> DateTime<Utc> {
    let d = war.phase_deadlines;
    match status {
        "PREPARATION" => d.preparation_at,
        "ACTIVE" => d.active_at,
        "ENDING" => d.ending_at,
        _ => d.ended_at,
    }
}

fn to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or_else(|_| Duration::days(1))
}
