//! What a finished demo war produced — winner, scores, captures, ratings and the reward table —
//! and how it is printed at the end.

use crate::cast::{Cast, Side};
use crate::live::Totals;
use crate::model::{CaptureView, Scoreboard};
use crate::pace::MissedStep;
use std::fmt;

/// A clan's war rating before and after the war (`GET /clans/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingChange {
    pub clan_id: String,
    pub name: String,
    pub side: Side,
    pub before: i64,
    pub after: i64,
}

/// One grant of the reward plan, with the player's clan from the cast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewardRow {
    pub player_id: String,
    pub clan_name: String,
    pub side: Option<Side>,
    pub kind: String,
    pub amount: u64,
    pub status: String,
}

/// `GET /wars/{id}/rewards`, sorted by amount (largest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewardTable {
    pub status: String,
    pub rows: Vec<RewardRow>,
}

impl RewardTable {
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|r| r.amount).sum()
    }

    pub fn side_total(&self, side: Side) -> u64 {
        self.rows
            .iter()
            .filter(|r| r.side == Some(side))
            .map(|r| r.amount)
            .sum()
    }
}

/// The result of [`crate::play`].
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    pub cast: Cast,
    pub war_id: String,
    /// The war's final status (ENDED).
    pub status: String,
    /// `attacker`, `defender` or `draw`.
    pub winner_side: Option<String>,
    /// How it was decided (`SCORE`, `TERRITORIES`, `DRAW`, ...).
    pub outcome: Option<String>,
    pub scoreboard: Scoreboard,
    pub captures: Vec<CaptureView>,
    pub ratings: Vec<RatingChange>,
    pub rewards: RewardTable,
    pub totals: Totals,
    /// Timed steps the war's clock left no time for.
    pub missed: Vec<MissedStep>,
}

impl DemoOutcome {
    /// Whether the reward saga paid every grant.
    pub fn rewards_paid(&self) -> bool {
        self.rewards.status == "DISTRIBUTED"
    }

    fn side_names(&self, side: &str) -> String {
        let names: Vec<&str> = self
            .cast
            .clans
            .iter()
            .filter(|c| c.side.as_str() == side)
            .map(|c| c.name.as_str())
            .collect();
        names.join(" + ")
    }

    fn write_result(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let winner = self.winner_side.as_deref().unwrap_or("none");
        let by = self.outcome.as_deref().unwrap_or("-");
        writeln!(f, "══ Result of war {} ({}) ══", self.war_id, self.status)?;
        match winner {
            "attacker" | "defender" => writeln!(
                f,
                " Winner    {} — {} (decided by {by})",
                winner.to_uppercase(),
                self.side_names(winner)
            )?,
            other => writeln!(f, " Winner    {other} (decided by {by})")?,
        }
        let s = &self.scoreboard.sides;
        writeln!(
            f,
            " Score     attacker {} · defender {}",
            s.attacker.score, s.defender.score
        )?;
        for c in &self.scoreboard.clans {
            writeln!(
                f,
                "           {:<15} {:<8} {:>6}",
                self.cast.clan_name(&c.clan_id),
                c.side,
                c.score
            )?;
        }
        self.write_captures(f)?;
        let t = &self.totals;
        let reasons: Vec<String> = t
            .rejected
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        writeln!(
            f,
            " Events    {} batches · {} sent · {} accepted · {} duplicates · {} rejected ({})",
            t.batches,
            t.sent,
            t.accepted,
            t.duplicates,
            t.rejected_total(),
            if reasons.is_empty() {
                "none".to_owned()
            } else {
                reasons.join(", ")
            }
        )?;
        for (i, step) in self.missed.iter().enumerate() {
            let head = if i == 0 { " Missed" } else { "" };
            writeln!(f, "{head:<11}{step}")?;
        }
        for (i, r) in self.ratings.iter().enumerate() {
            let head = if i == 0 { " Ratings" } else { "" };
            writeln!(
                f,
                "{head:<11}{:<15} {:>5} → {:>5} ({:+})",
                r.name,
                r.before,
                r.after,
                r.after - r.before
            )?;
        }
        for (i, p) in self.scoreboard.top_players.iter().take(5).enumerate() {
            let head = if i == 0 { " Top" } else { "" };
            writeln!(
                f,
                "{head:<11}{}. {:<18} {:<15} {:>5}",
                i + 1,
                self.cast.short(&p.player_id),
                self.cast.clan_name(&p.clan_id),
                p.points
            )?;
        }
        Ok(())
    }

    fn write_captures(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.captures.is_empty() {
            return writeln!(f, " Captured  nothing changed hands");
        }
        for (i, c) in self.captures.iter().enumerate() {
            let head = if i == 0 { " Captured" } else { "" };
            let from = c
                .from_clan_id
                .as_deref()
                .map_or_else(|| "nobody".to_owned(), |id| self.cast.clan_name(id));
            writeln!(
                f,
                "{head:<11}{}: {from} → {}",
                self.cast.territory_name(&c.territory_id),
                self.cast.clan_name(&c.to_clan_id)
            )?;
        }
        Ok(())
    }

    fn write_rewards(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.rewards;
        writeln!(
            f,
            "══ Rewards: {} — {} grants, {} in all ══",
            r.status,
            r.rows.len(),
            r.total()
        )?;
        writeln!(
            f,
            " {:<20} {:<15} {:<8} {:>7} {:<6} status",
            "player", "clan", "side", "amount", "kind"
        )?;
        for row in &r.rows {
            let side = row.side.map_or("?", Side::as_str);
            writeln!(
                f,
                " {:<20} {:<15} {:<8} {:>7} {:<6} {}",
                self.cast.short(&row.player_id),
                row.clan_name,
                side,
                row.amount,
                row.kind,
                row.status
            )?;
        }
        writeln!(
            f,
            " {:<45} {:>7}   (attacker side {}, defender side {})",
            "total",
            r.total(),
            r.side_total(Side::Attacker),
            r.side_total(Side::Defender)
        )
    }
}

impl fmt::Display for DemoOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_result(f)?;
        self.write_rewards(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PlayerScore, Score, ScoreSides};
    use crate::rng::Rng;

    #[test]
    fn the_result_and_the_reward_table_print() {
        let cast = Cast::new("dt", 10, &mut Rng::new(1));
        let row = |player: &str, clan: &str, side, amount| RewardRow {
            player_id: player.into(),
            clan_name: clan.into(),
            side: Some(side),
            kind: "gold".into(),
            amount,
            status: "GRANTED".into(),
        };
        let outcome = DemoOutcome {
            war_id: "w-1".into(),
            status: "ENDED".into(),
            winner_side: Some("attacker".into()),
            outcome: Some("SCORE".into()),
            scoreboard: Scoreboard {
                sides: ScoreSides {
                    attacker: Score { score: 700 },
                    defender: Score { score: 300 },
                },
                clans: vec![],
                top_players: vec![PlayerScore {
                    player_id: "dt-wolves-p01".into(),
                    clan_id: "dt-wolves".into(),
                    points: 90,
                }],
            },
            captures: vec![CaptureView {
                territory_id: "dt-ford".into(),
                from_clan_id: Some("dt-guard".into()),
                to_clan_id: "dt-wolves".into(),
                side: "attacker".into(),
            }],
            ratings: vec![RatingChange {
                clan_id: "dt-wolves".into(),
                name: "Crimson Wolves".into(),
                side: Side::Attacker,
                before: 1000,
                after: 1018,
            }],
            rewards: RewardTable {
                status: "DISTRIBUTED".into(),
                rows: vec![
                    row("dt-wolves-p01", "Crimson Wolves", Side::Attacker, 2000),
                    row("dt-guard-p02", "Azure Guard", Side::Defender, 150),
                ],
            },
            totals: Totals::default(),
            missed: vec![MissedStep {
                kind: crate::pace::StepKind::Resolve,
                what: "result of the battle at Amber Keep".into(),
                reason: "the war is already ENDING".into(),
            }],
            cast,
        };
        let text = outcome.to_string();
        assert!(
            text.contains("Winner    ATTACKER — Crimson Wolves + Golden Hawks (decided by SCORE)"),
            "{text}"
        );
        assert!(
            text.contains("Iron Ford: Azure Guard → Crimson Wolves"),
            "{text}"
        );
        assert!(
            text.contains(
                " Missed    result of the battle at Amber Keep: the war is already ENDING"
            ),
            "{text}"
        );
        assert!(
            text.contains("Crimson Wolves   1000 →  1018 (+18)"),
            "{text}"
        );
        assert!(
            text.contains("══ Rewards: DISTRIBUTED — 2 grants, 2150 in all ══"),
            "{text}"
        );
        assert!(
            text.contains(" wolves-p01           Crimson Wolves  attacker    2000 gold   GRANTED"),
            "{text}"
        );
        assert!(
            text.contains("(attacker side 2000, defender side 150)"),
            "{text}"
        );
        assert!(outcome.rewards_paid());
    }
}
