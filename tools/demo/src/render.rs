//! Pure rendering of the live state: the block the terminal redraws (phase and countdown, a
//! progress bar over the whole war timeline, side scores, top players, territories, the last
//! events and pushes) and the one-line status the headless log prints.

use crate::cast::Cast;
use crate::live::LiveState;
use crate::model::{Scoreboard, WarView};
use chrono::{DateTime, Duration, Utc};

/// Width of the phase bar in characters (segments are at least [`MIN_SEGMENT`] wide).
const BAR_WIDTH: usize = 52;
const MIN_SEGMENT: usize = 5;

/// The phases of the timeline: (label, status).
const PHASES: [(&str, &str); 4] = [
    ("DECL", "DECLARED"),
    ("PREP", "PREPARATION"),
    ("ACTIVE", "ACTIVE"),
    ("END", "ENDING"),
];

/// The label column: `label` on a block's first line, blanks on the others.
fn head(label: &str, line: usize) -> String {
    format!(" {:<8} ", if line == 0 { label } else { "" })
}

/// Position of a status on the timeline (ENDED and CANCELLED are past its end).
fn phase_index(status: &str) -> usize {
    PHASES
        .iter()
        .position(|(_, s)| *s == status)
        .unwrap_or(PHASES.len())
}

/// `(start, end)` of each phase.
fn spans(war: &WarView) -> [(DateTime<Utc>, DateTime<Utc>); 4] {
    let d = war.phase_deadlines;
    let declared = war
        .declared_at
        .unwrap_or(d.preparation_at - Duration::seconds(1));
    [
        (declared, d.preparation_at),
        (d.preparation_at, d.active_at),
        (d.active_at, d.ending_at),
        (d.ending_at, d.ended_at),
    ]
}

/// How far along phase `index` is, 0..=1 (finished phases are full even if a timer is late).
fn fill(war: &WarView, index: usize, now: DateTime<Utc>) -> f64 {
    let current = phase_index(&war.status);
    if index != current {
        return if index < current { 1.0 } else { 0.0 };
    }
    let (start, end) = spans(war)[index];
    let total = (end - start).num_milliseconds().max(1) as f64;
    ((now - start).num_milliseconds() as f64 / total).clamp(0.0, 1.0)
}

/// The bar, its label line and the share of the war's timeline behind us (percent).
pub fn phase_bar(war: &WarView, now: DateTime<Utc>) -> (String, String, u32) {
    let spans = spans(war);
    let lengths: Vec<f64> = spans
        .iter()
        .map(|(s, e)| (*e - *s).num_milliseconds().max(1) as f64)
        .collect();
    let total: f64 = lengths.iter().sum();
    let (mut bar, mut labels, mut done) = (String::from("["), String::from(" "), 0.0);
    for (i, length) in lengths.iter().enumerate() {
        let width = ((BAR_WIDTH as f64 * length / total).round() as usize).max(MIN_SEGMENT);
        let share = fill(war, i, now);
        let filled = (share * width as f64).round() as usize;
        bar.push_str(&"█".repeat(filled));
        bar.push_str(&"░".repeat(width - filled));
        bar.push(if i + 1 == lengths.len() { ']' } else { '│' });
        let label: String = PHASES[i].0.chars().take(width).collect();
        labels.push_str(&format!("{label:<width$} "));
        done += share * length;
    }
    (
        bar,
        labels.trim_end().to_owned(),
        (100.0 * done / total).round() as u32,
    )
}

/// `ACTIVE · ENDING in 00:23` (or `· ENDING due now` while the timer is catching up).
pub fn countdown(war: &WarView, now: DateTime<Utc>) -> String {
    let index = phase_index(&war.status);
    let Some((_, end)) = spans(war).get(index).copied() else {
        return match &war.winner_side {
            Some(w) => format!("{} · winner {w}", war.status),
            None => war.status.clone(),
        };
    };
    let next = PHASES.get(index + 1).map_or("ENDED", |(_, s)| *s);
    let left = (end - now).num_milliseconds();
    if left <= 0 {
        return format!("{} · {next} due now", war.status);
    }
    let secs = (left + 999) / 1000;
    format!(
        "{} · {next} in {:02}:{:02}",
        war.status,
        secs / 60,
        secs % 60
    )
}

/// Side scores: the scoreboard's live totals, else the war's own.
fn side_scores(war: &WarView, board: Option<&Scoreboard>) -> (i64, i64) {
    match board {
        Some(b) => (b.sides.attacker.score, b.sides.defender.score),
        None => (war.sides.attacker.score, war.sides.defender.score),
    }
}

fn score_lines(cast: &Cast, war: &WarView, board: Option<&Scoreboard>) -> Vec<String> {
    let (attacker, defender) = side_scores(war, board);
    let clans_of = |side: &str, ids: &[String]| -> String {
        ids.iter()
            .map(|id| {
                let score = board
                    .and_then(|b| b.clans.iter().find(|c| &c.clan_id == id && c.side == side))
                    .map_or(0, |c| c.score);
                format!("{} {score}", cast.clan_name(id))
            })
            .collect::<Vec<_>>()
            .join(" · ")
    };
    vec![
        format!(
            "{}attacker {attacker:>6}   {}",
            head("Score", 0),
            clans_of("attacker", &war.sides.attacker.clan_ids)
        ),
        format!(
            "{}defender {defender:>6}   {}",
            head("Score", 1),
            clans_of("defender", &war.sides.defender.clan_ids)
        ),
    ]
}

fn top_lines(cast: &Cast, board: Option<&Scoreboard>) -> Vec<String> {
    let players = board.map(|b| b.top_players.as_slice()).unwrap_or_default();
    if players.is_empty() {
        return vec![format!("{}(no points yet)", head("Top", 0))];
    }
    players
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (player, clan) = (cast.short(&p.player_id), cast.clan_name(&p.clan_id));
            format!(
                "{}{}. {player:<18} {clan:<15} {:>5}",
                head("Top", i),
                i + 1,
                p.points
            )
        })
        .collect()
}

/// One line per territory of the war: captured (from → to) or still held.
pub fn territory_lines(cast: &Cast, war: &WarView) -> Vec<String> {
    war.territory_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let name = cast.territory_name(id);
            let status = match war.captures.iter().rfind(|c| &c.territory_id == id) {
                Some(c) => {
                    let from = c
                        .from_clan_id
                        .as_deref()
                        .map_or_else(|| "nobody".to_owned(), |f| cast.clan_name(f));
                    format!(
                        "captured  {from} → {} ({})",
                        cast.clan_name(&c.to_clan_id),
                        c.side
                    )
                }
                None => format!("held by {}", cast.clan_name(&war.defender_clan_id)),
            };
            format!("{}{name:<12} {status}", head("Land", i))
        })
        .collect()
}

fn event_lines(state: &LiveState) -> Vec<String> {
    let t = &state.totals;
    let mut reasons: Vec<String> = t
        .rejected
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    if reasons.is_empty() {
        reasons.push("none".into());
    }
    let mut lines = vec![format!(
        "{}{} batches · {} sent · {} accepted · {} duplicates · {} rejected ({})",
        head("Events", 0),
        t.batches,
        t.sent,
        t.accepted,
        t.duplicates,
        t.rejected_total(),
        reasons.join(", ")
    )];
    lines.extend(state.recent.iter().map(|l| format!("{}{l}", head("", 1))));
    if state.pushes_received > 0 {
        let last: Vec<&str> = state.pushes.iter().map(String::as_str).collect();
        lines.push(format!(
            "{}{} over WebSocket; last: {}",
            head("Pushed", 0),
            state.pushes_received,
            last.join(" · ")
        ));
    }
    lines
}

/// The block the terminal view redraws.
pub fn view_lines(state: &LiveState, now: DateTime<Utc>) -> Vec<String> {
    let cast = &state.cast;
    let war_label = state.war.as_ref().map_or_else(
        || "not declared yet".to_owned(),
        |w| format!("war {}", w.war_id),
    );
    let mut lines = vec![
        format!("━━ Clan War demo {} · {war_label} ━━", cast.run_id),
        format!("{}{}", head("Doing", 0), state.step),
    ];
    if let Some(war) = &state.war {
        let (bar, labels, percent) = phase_bar(war, now);
        lines.push(format!("{}{}", head("Phase", 0), countdown(war, now)));
        lines.push(format!(" {bar} {percent:>3}%"));
        lines.push(format!(" {labels}"));
        lines.extend(score_lines(cast, war, state.board.as_ref()));
        lines.extend(top_lines(cast, state.board.as_ref()));
        lines.extend(territory_lines(cast, war));
    }
    lines.extend(event_lines(state));
    for (i, step) in state.missed.iter().enumerate() {
        lines.push(format!("{}{step}", head("Missed", i)));
    }
    if let Some(rewards) = &state.rewards {
        lines.push(format!("{}{rewards}", head("Rewards", 0)));
    }
    if let Some(error) = &state.poll_error {
        lines.push(format!("{}{error}", head("! poll", 0)));
    }
    lines
}

/// One line for headless logs: phase, countdown, scores, captures, event totals.
pub fn status_line(state: &LiveState, now: DateTime<Utc>) -> String {
    let Some(war) = &state.war else {
        return format!("[setup] {}", state.step);
    };
    let (attacker, defender) = side_scores(war, state.board.as_ref());
    let (_, _, percent) = phase_bar(war, now);
    let missed = match state.missed.len() {
        0 => String::new(),
        n => format!(" | {n} step(s) missed"),
    };
    format!(
        "[{percent:>3}%] {} | attacker {attacker} vs defender {defender} | {} captured | {} events sent, {} accepted, {} duplicates, {} rejected | {} pushes{missed}",
        countdown(war, now),
        war.captures.len(),
        state.totals.sent,
        state.totals.accepted,
        state.totals.duplicates,
        state.totals.rejected_total(),
        state.pushes_received
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::live::Live;
    use crate::model::{CaptureView, Deadlines, PlayerScore, ScoreSides, SideView, Sides};
    use crate::rng::Rng;
    use std::sync::Arc;

    pub(crate) fn t(s: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::seconds(s)
    }

    /// A war declared at t(0) with phases 5/5/40/3 seconds.
    pub(crate) fn war(cast: &Cast, status: &str) -> WarView {
        let side = |clans: &[usize]| SideView {
            clan_ids: clans.iter().map(|i| cast.clans[*i].id.clone()).collect(),
            score: 0,
        };
        WarView {
            war_id: "w-1".into(),
            status: status.into(),
            attacker_clan_id: cast.clans[0].id.clone(),
            defender_clan_id: cast.clans[2].id.clone(),
            declared_at: Some(t(0)),
            phase_deadlines: Deadlines {
                preparation_at: t(5),
                active_at: t(10),
                ending_at: t(50),
                ended_at: t(53),
            },
            sides: Sides {
                attacker: side(&[0, 1]),
                defender: side(&[2, 3]),
            },
            territory_ids: cast.targets().iter().map(|t| t.id.clone()).collect(),
            captures: vec![],
            winner_side: None,
            outcome: None,
            version: 1,
        }
    }

    fn cast() -> Cast {
        Cast::new("dt", 10, &mut Rng::new(1))
    }

    #[test]
    fn the_bar_fills_finished_phases_and_part_of_the_current_one() {
        let cast = cast();
        let war = war(&cast, "ACTIVE");
        let (bar, labels, percent) = phase_bar(&war, t(30));
        assert!(bar.starts_with("[█████│█████│"), "{bar}");
        assert!(bar.ends_with("░░░░░]"), "{bar}");
        assert!(labels.starts_with(" DECL  PREP  ACTIVE"), "{labels:?}");
        assert!(labels.ends_with(" END"), "{labels:?}");
        assert_eq!(percent, 57, "30 of 53 seconds");
        // A late timer: the clock says ENDING, the war is still ACTIVE — ENDING stays empty.
        let (late, _, _) = phase_bar(&war, t(51));
        assert!(late.ends_with("│░░░░░]"), "{late}");
        let (_, _, all) = phase_bar(&self::war(&cast, "ENDED"), t(60));
        assert_eq!(all, 100);
    }

    #[test]
    fn the_countdown_names_the_next_phase() {
        let cast = cast();
        assert_eq!(
            countdown(&war(&cast, "DECLARED"), t(1)),
            "DECLARED · PREPARATION in 00:04"
        );
        assert_eq!(
            countdown(&war(&cast, "ACTIVE"), t(10)),
            "ACTIVE · ENDING in 00:40"
        );
        assert_eq!(
            countdown(&war(&cast, "ACTIVE"), t(52)),
            "ACTIVE · ENDING due now"
        );
        let mut ended = war(&cast, "ENDED");
        ended.winner_side = Some("attacker".into());
        assert_eq!(countdown(&ended, t(60)), "ENDED · winner attacker");
    }

    #[test]
    fn the_view_shows_scores_top_players_and_captures() {
        let cast = Arc::new(cast());
        let live = Live::new(cast.clone());
        let mut war = war(&cast, "ACTIVE");
        war.captures.push(CaptureView {
            territory_id: cast.targets()[0].id.clone(),
            from_clan_id: Some(cast.clans[2].id.clone()),
            to_clan_id: cast.clans[0].id.clone(),
            side: "attacker".into(),
        });
        live.set_war(war);
        live.set_board(Scoreboard {
            sides: ScoreSides {
                attacker: crate::model::Score { score: 412 },
                defender: crate::model::Score { score: 287 },
            },
            clans: vec![],
            top_players: vec![PlayerScore {
                player_id: "dt-wolves-p03".into(),
                clan_id: "dt-wolves".into(),
                points: 86,
            }],
        });
        live.milestone("batch #1: ...");
        let text = live.read(|s| view_lines(s, t(20))).join("\n");
        assert!(text.contains("ACTIVE · ENDING in 00:30"), "{text}");
        assert!(text.contains("attacker    412"), "{text}");
        assert!(text.contains("1. wolves-p03"), "{text}");
        assert!(
            text.contains("Iron Ford    captured  Azure Guard → Crimson Wolves (attacker)"),
            "{text}"
        );
        assert!(text.contains("Amber Keep   held by Azure Guard"), "{text}");
        assert!(text.contains("batch #1"), "{text}");
        let line = live.read(|s| status_line(s, t(20)));
        assert!(
            line.contains("attacker 412 vs defender 287 | 1 captured"),
            "{line}"
        );
    }

    #[test]
    fn missed_steps_stay_in_the_view_and_the_status_line() {
        let cast = Arc::new(cast());
        let live = Live::new(cast.clone());
        live.set_war(war(&cast, "ENDING"));
        live.missed(crate::pace::MissedStep {
            kind: crate::pace::StepKind::Capture,
            what: "capture of Iron Ford".into(),
            reason: "ACTIVE ends in 0.4 s, the step takes about 1.9 s".into(),
        });
        let text = live.read(|s| view_lines(s, t(50))).join("\n");
        assert!(
            text.contains(
                " Missed   capture of Iron Ford: ACTIVE ends in 0.4 s, the step takes about 1.9 s"
            ),
            "{text}"
        );
        let line = live.read(|s| status_line(s, t(50)));
        assert!(line.ends_with("| 1 step(s) missed"), "{line}");
    }

    #[test]
    fn before_the_declaration_only_the_step_shows() {
        let live = Live::new(Arc::new(cast()));
        live.step("registering clans");
        let lines = live.read(|s| view_lines(s, t(0)));
        assert!(lines[0].contains("not declared yet"));
        assert_eq!(lines[1], " Doing    registering clans");
        assert_eq!(
            live.read(|s| status_line(s, t(0))),
            "[setup] registering clans"
        );
    }
}
