//! The cast of the demo: four clans on two sides (each primary clan with one ally), their
//! players with levels, and the defender's territories — plus the request bodies that register
//! them through the API. All ids start with the run id, so runs never collide.

use crate::rng::Rng;
use serde_json::{json, Value};

/// A side of the war.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Attacker,
    Defender,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Attacker => "attacker",
            Side::Defender => "defender",
        }
    }

    pub fn opponent(self) -> Side {
        match self {
            Side::Attacker => Side::Defender,
            Side::Defender => Side::Attacker,
        }
    }
}

/// Index of each clan in [`Cast::clans`].
pub const ATTACKER: usize = 0;
pub const ATTACKER_ALLY: usize = 1;
pub const DEFENDER: usize = 2;
pub const DEFENDER_ALLY: usize = 3;

/// (id suffix, name, side, rating) of the four clans, in index order.
const CLANS: [(&str, &str, Side, i32); 4] = [
    ("wolves", "Crimson Wolves", Side::Attacker, 1000),
    ("hawks", "Golden Hawks", Side::Attacker, 1040),
    ("guard", "Azure Guard", Side::Defender, 1080),
    ("vipers", "Teal Vipers", Side::Defender, 990),
];

/// (id suffix, name, tier, targeted by the war) of the defender's territories.
const TERRITORIES: [(&str, &str, u8, bool); 4] = [
    ("ford", "Iron Ford", 2, true),
    ("keep", "Amber Keep", 3, true),
    ("pass", "Wolf Pass", 1, true),
    ("marsh", "Salt Marsh", 1, false),
];

#[derive(Debug, Clone)]
pub struct Player {
    pub id: String,
    /// Index of the player's clan in [`Cast::clans`].
    pub clan: usize,
    pub level: u32,
}

#[derive(Debug, Clone)]
pub struct Clan {
    pub id: String,
    pub name: String,
    pub side: Side,
    pub rating: i32,
    pub leader: String,
    pub officer: String,
    /// Leader, officer and members, in that order.
    pub players: Vec<Player>,
}

impl Clan {
    /// The guild service's snapshot (`PUT /clans/{clan_id}`).
    pub fn snapshot(&self) -> Value {
        let members: Vec<&str> = self.players[2..].iter().map(|p| p.id.as_str()).collect();
        json!({
            "name": self.name, "leader_id": self.leader, "officer_ids": [self.officer],
            "member_ids": members, "level": 20, "rating": self.rating
        })
    }
}

#[derive(Debug, Clone)]
pub struct Territory {
    pub id: String,
    pub name: String,
    pub tier: u8,
    pub x: f64,
    pub y: f64,
    pub targeted: bool,
}

impl Territory {
    /// `PUT /territories/{territory_id}`.
    pub fn body(&self, owner_clan_id: &str) -> Value {
        json!({
            "name": self.name, "region": "Northmarch", "x": self.x, "y": self.y, "tier": self.tier,
            "resource_yield": 40 * u32::from(self.tier), "owner_clan_id": owner_clan_id
        })
    }
}

/// Everyone and everything the demo creates.
#[derive(Debug, Clone)]
pub struct Cast {
    pub run_id: String,
    pub clans: Vec<Clan>,
    pub territories: Vec<Territory>,
}

impl Cast {
    /// The cast of run `run_id`: `players_per_clan` players per clan with levels 8..=60.
    pub fn new(run_id: &str, players_per_clan: usize, rng: &mut Rng) -> Self {
        let clans = CLANS
            .iter()
            .enumerate()
            .map(|(index, (suffix, name, side, rating))| {
                let id = format!("{run_id}-{suffix}");
                let players = (0..players_per_clan)
                    .map(|n| Player {
                        id: player_id(&id, n),
                        clan: index,
                        level: rng.between(8, 60),
                    })
                    .collect::<Vec<_>>();
                Clan {
                    leader: players[0].id.clone(),
                    officer: players[1].id.clone(),
                    id,
                    name: (*name).to_owned(),
                    side: *side,
                    rating: *rating,
                    players,
                }
            })
            .collect();
        // One corner of a 100 km world per run, the territories a few hundred metres apart.
        let (ox, oy) = (
            f64::from(rng.between(0, 90_000)),
            f64::from(rng.between(0, 90_000)),
        );
        let territories = TERRITORIES
            .iter()
            .enumerate()
            .map(|(i, (suffix, name, tier, targeted))| Territory {
                id: format!("{run_id}-{suffix}"),
                name: (*name).to_owned(),
                tier: *tier,
                x: ox + 350.0 * i as f64,
                y: oy + 120.0 * (i % 2) as f64,
                targeted: *targeted,
            })
            .collect();
        Self {
            run_id: run_id.to_owned(),
            clans,
            territories,
        }
    }

    pub fn attacker(&self) -> &Clan {
        &self.clans[ATTACKER]
    }

    pub fn defender(&self) -> &Clan {
        &self.clans[DEFENDER]
    }

    /// Every player fighting for `side` (primary clan and ally).
    pub fn side_players(&self, side: Side) -> Vec<&Player> {
        self.clans
            .iter()
            .filter(|c| c.side == side)
            .flat_map(|c| c.players.iter())
            .collect()
    }

    pub fn clan_by_id(&self, clan_id: &str) -> Option<&Clan> {
        self.clans.iter().find(|c| c.id == clan_id)
    }

    /// The clan of a player of this cast.
    pub fn clan_of_player(&self, player_id: &str) -> Option<&Clan> {
        self.clans
            .iter()
            .find(|c| c.players.iter().any(|p| p.id == player_id))
    }

    pub fn territory(&self, territory_id: &str) -> Option<&Territory> {
        self.territories.iter().find(|t| t.id == territory_id)
    }

    /// The territories the war is declared over.
    pub fn targets(&self) -> Vec<&Territory> {
        self.territories.iter().filter(|t| t.targeted).collect()
    }

    /// A clan's name, or the raw id for clans not in the cast.
    pub fn clan_name(&self, clan_id: &str) -> String {
        self.clan_by_id(clan_id)
            .map_or_else(|| clan_id.to_owned(), |c| c.name.clone())
    }

    /// A territory's name, or the raw id.
    pub fn territory_name(&self, territory_id: &str) -> String {
        self.territory(territory_id)
            .map_or_else(|| territory_id.to_owned(), |t| t.name.clone())
    }

    /// An id without the run prefix (`d1x2y3z-wolves-p03` → `wolves-p03`).
    pub fn short<'a>(&self, id: &'a str) -> &'a str {
        id.strip_prefix(&self.run_id)
            .and_then(|s| s.strip_prefix('-'))
            .unwrap_or(id)
    }
}

fn player_id(clan_id: &str, n: usize) -> String {
    match n {
        0 => format!("{clan_id}-leader"),
        1 => format!("{clan_id}-officer"),
        _ => format!("{clan_id}-p{:02}", n - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast() -> Cast {
        Cast::new("dtest01", 12, &mut Rng::new(1))
    }

    #[test]
    fn four_clans_two_per_side_with_unique_prefixed_players() {
        let cast = cast();
        assert_eq!(cast.clans.len(), 4);
        assert_eq!(cast.side_players(Side::Attacker).len(), 24);
        assert_eq!(cast.side_players(Side::Defender).len(), 24);
        let mut ids: Vec<&str> = cast
            .clans
            .iter()
            .flat_map(|c| c.players.iter().map(|p| p.id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 48);
        assert!(ids
            .iter()
            .all(|id| id.starts_with("dtest01-") && id.len() <= 64));
        assert_eq!(cast.attacker().leader, "dtest01-wolves-leader");
        assert_eq!(cast.short("dtest01-wolves-p03"), "wolves-p03");
    }

    #[test]
    fn snapshots_list_ten_members_besides_leader_and_officer() {
        let snapshot = cast().defender().snapshot();
        assert_eq!(snapshot["member_ids"].as_array().unwrap().len(), 10);
        assert_eq!(snapshot["officer_ids"][0], "dtest01-guard-officer");
    }

    #[test]
    fn the_defender_owns_territories_of_which_some_are_targeted() {
        let cast = cast();
        assert_eq!(cast.targets().len(), 3);
        let body = cast.territories[0].body(&cast.defender().id);
        assert_eq!(body["owner_clan_id"], "dtest01-guard");
        assert!((1..=3).contains(&body["tier"].as_u64().unwrap()));
    }

    #[test]
    fn levels_depend_only_on_the_seed() {
        let levels = |seed| -> Vec<u32> {
            Cast::new("r", 12, &mut Rng::new(seed))
                .clans
                .iter()
                .flat_map(|c| c.players.iter().map(|p| p.level))
                .collect()
        };
        assert_eq!(levels(5), levels(5));
        assert_ne!(levels(5), levels(6));
        assert!(levels(5).iter().all(|l| (8..=60).contains(l)));
    }
}
