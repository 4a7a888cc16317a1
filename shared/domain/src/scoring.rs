//! Scoring (SPEC §6): kill weighting, assists, anti-farming, capture and hold points, the
//! scoring window, side totals, winner and tie-breaks, Elo rating change.

use crate::war::{Outcome, WinnerSide};

/// Winner: higher side score; tie → more territories held at the end; tie → draw.
pub fn decide_winner(
    attacker_score: i64,
    defender_score: i64,
    attacker_territories: usize,
    defender_territories: usize,
) -> (WinnerSide, Outcome) {
    use std::cmp::Ordering::*;
    match attacker_score.cmp(&defender_score) {
        Greater => (WinnerSide::Attacker, Outcome::Score),
        Less => (WinnerSide::Defender, Outcome::Score),
        Equal => match attacker_territories.cmp(&defender_territories) {
            Greater => (WinnerSide::Attacker, Outcome::Territories),
            Less => (WinnerSide::Defender, Outcome::Territories),
            Equal => (WinnerSide::Draw, Outcome::Draw),
        },
    }
}
