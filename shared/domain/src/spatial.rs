//! The spatial cell index behind "territories near a point" (SPEC §4).
//!
//! The world map is cut into square cells of `cell_size_m`; every territory stores the cell of its
//! position (a DynamoDB GSI key). A nearby query asks only the cells its circle touches, so its
//! cost depends on `radius / cell_size_m`, never on how many territories exist.

use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A point on the world map, in metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

/// Largest absolute world coordinate accepted, in metres. Far beyond any game map, and small
/// enough that cell numbers and distances stay exact-ish in `f64` and fit in `i64`.
pub const MAX_ABS_COORDINATE_M: f64 = 1.0e9;

/// A square grid cell of the world map, `cell_size_m` on a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CellId {
    pub cx: i64,
    pub cy: i64,
}

/// `"cx:cy"`, the form stored as the GSI partition key.
impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.cx, self.cy)
    }
}

/// Why a string is not a `"cx:cy"` cell id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cell id must look like `cx:cy` with integer parts, got `{0}`")]
pub struct ParseCellIdError(pub String);

impl FromStr for CellId {
    type Err = ParseCellIdError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || ParseCellIdError(raw.to_owned());
        let (cx, cy) = raw.split_once(':').ok_or_else(bad)?;
        Ok(CellId {
            cx: cx.parse().map_err(|_| bad())?,
            cy: cy.parse().map_err(|_| bad())?,
        })
    }
}

/// The cell holding the point. Floor division, so `-0.5` lies in cell `-1`, not `0`.
pub fn cell_of(x: f64, y: f64, cell_size_m: f64) -> CellId {
    CellId {
        cx: (x / cell_size_m).floor() as i64,
        cy: (y / cell_size_m).floor() as i64,
    }
}

/// Euclidean distance in metres.
pub fn distance(a: Position, b: Position) -> f64 {
    (a.x - b.x).hypot(a.y - b.y)
}

/// Distance from the point to the nearest point of the cell's square (0 when inside it).
fn distance_to_cell(x: f64, y: f64, cell: CellId, cell_size_m: f64) -> f64 {
    let axis = |p: f64, c: i64| {
        let low = c as f64 * cell_size_m;
        let high = (c + 1) as f64 * cell_size_m;
        (low - p).max(p - high).max(0.0)
    };
    axis(x, cell.cx).hypot(axis(y, cell.cy))
}

/// Every cell that intersects the circle, sorted by `(cx, cy)`.
///
/// Corner cells of the bounding square whose nearest point lies beyond `radius` are left out.
/// The scan starts one cell wider than the bounding square and the circle test allows a tiny
/// tolerance, because `floor(x / size)` and `cx * size` can round differently: a cell is never
/// missed for a point right on its edge, at worst a cell just outside is read for nothing.
/// Expects a positive cell size and a validated query (see [`validate_query`]).
pub fn cells_covering(x: f64, y: f64, radius: f64, cell_size_m: f64) -> Vec<CellId> {
    debug_assert!(cell_size_m > 0.0 && radius >= 0.0);
    let low = cell_of(x - radius, y - radius, cell_size_m);
    let high = cell_of(x + radius, y + radius, cell_size_m);
    let tolerance = 1e-9 * (radius + cell_size_m + x.abs() + y.abs());
    let mut cells = Vec::new();
    for cx in low.cx - 1..=high.cx + 1 {
        for cy in low.cy - 1..=high.cy + 1 {
            let cell = CellId { cx, cy };
            if distance_to_cell(x, y, cell, cell_size_m) <= radius + tolerance {
                cells.push(cell);
            }
        }
    }
    cells
}

/// Upper bound of `cells_covering(..).len()`: depends on `radius / cell_size_m` only.
pub fn max_cells_covering(radius: f64, cell_size_m: f64) -> usize {
    let side = (2.0 * radius / cell_size_m).ceil() as usize + 3;
    side * side
}

/// Checks that a coordinate is a finite number inside the world bounds.
pub fn validate_coordinate(field: &str, value: f64) -> DomainResult<()> {
    if !value.is_finite() || value.abs() > MAX_ABS_COORDINATE_M {
        return Err(DomainError::invalid(
            field,
            format!("must be a finite number within ±{MAX_ABS_COORDINATE_M} m"),
        ));
    }
    Ok(())
}

/// A nearby query needs finite coordinates and `0 < radius <= max_query_radius_m`.
pub fn validate_query(x: f64, y: f64, radius: f64, rules: &Rules) -> DomainResult<()> {
    validate_coordinate("x", x)?;
    validate_coordinate("y", y)?;
    if !(radius.is_finite() && radius > 0.0 && radius <= rules.max_query_radius_m) {
        return Err(DomainError::invalid(
            "radius",
            format!(
                "must be greater than 0 and at most {} m",
                rules.max_query_radius_m
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TerritoryId;
    use crate::territory::{nearest_first, Territory};
    use proptest::prelude::*;

    fn at(id: &str, x: f64, y: f64) -> Territory {
        Territory {
            territory_id: TerritoryId::new(id).unwrap(),
            name: id.to_owned(),
            region: "r".to_owned(),
            x,
            y,
            tier: 1,
            resource_yield: 0,
            owner_clan_id: None,
            defense_level: 1,
            contested_by: None,
            cell: cell_of(x, y, 1.0),
            version: 1,
        }
    }

    fn origin() -> Position {
        Position { x: 0.0, y: 0.0 }
    }

    #[test]
    fn cell_ids_print_and_parse_as_cx_colon_cy() {
        let cell = CellId { cx: -3, cy: 12 };
        assert_eq!(cell.to_string(), "-3:12");
        assert_eq!("-3:12".parse::<CellId>(), Ok(cell));
        for bad in ["", "3", "3:", ":4", "a:b", "1:2:3", "1.5:2"] {
            assert!(bad.parse::<CellId>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn cells_use_floor_division_also_for_negative_positions() {
        assert_eq!(cell_of(0.0, 0.0, 1000.0), CellId { cx: 0, cy: 0 });
        assert_eq!(cell_of(999.9, 1000.0, 1000.0), CellId { cx: 0, cy: 1 });
        assert_eq!(cell_of(-0.5, -1000.0, 1000.0), CellId { cx: -1, cy: -1 });
        assert_eq!(cell_of(-1000.5, 2500.0, 1000.0), CellId { cx: -2, cy: 2 });
    }

    #[test]
    fn a_small_circle_inside_one_cell_touches_only_that_cell() {
        assert_eq!(
            cells_covering(500.0, 500.0, 100.0, 1000.0),
            vec![CellId { cx: 0, cy: 0 }]
        );
    }

    #[test]
    fn corner_cells_outside_the_circle_are_left_out() {
        // Centre in the middle of cell (0,0), radius reaching just past the four neighbours'
        // edges: the 3x3 bounding square minus its four corners.
        let cells = cells_covering(500.0, 500.0, 600.0, 1000.0);
        assert_eq!(cells.len(), 5);
        assert!(!cells.contains(&CellId { cx: 1, cy: 1 }));
        assert!(!cells.contains(&CellId { cx: -1, cy: -1 }));
        assert!(cells.contains(&CellId { cx: 1, cy: 0 }));
        let mut sorted = cells.clone();
        sorted.sort();
        assert_eq!(cells, sorted);
    }

    #[test]
    fn nearest_first_filters_exactly_and_breaks_ties_by_id() {
        let found = nearest_first(
            origin(),
            5.0,
            vec![
                at("far", 6.0, 0.0),
                at("b", 0.0, 3.0),
                at("edge", 3.0, 4.0),
                at("a", 3.0, 0.0),
                at("near", 1.0, 0.0),
            ],
        );
        let ids: Vec<&str> = found.iter().map(|(t, _)| t.territory_id.as_str()).collect();
        assert_eq!(ids, vec!["near", "a", "b", "edge"]);
        assert_eq!(found[3].1, 5.0);
    }

    #[test]
    fn queries_need_finite_coordinates_and_a_bounded_positive_radius() {
        let rules = Rules::default();
        assert!(validate_query(1.0, -1.0, 5_000.0, &rules).is_ok());
        for (x, y, r, field) in [
            (f64::NAN, 0.0, 1.0, "x"),
            (0.0, f64::INFINITY, 1.0, "y"),
            (2.0e9, 0.0, 1.0, "x"),
            (0.0, 0.0, 0.0, "radius"),
            (0.0, 0.0, -1.0, "radius"),
            (0.0, 0.0, 5_000.1, "radius"),
            (0.0, 0.0, f64::NAN, "radius"),
        ] {
            let err = validate_query(x, y, r, &rules).unwrap_err();
            assert_eq!(err.class(), crate::ErrorClass::Malformed);
            assert_eq!(err.details()["field"], field);
        }
    }

    fn territories(cell_size: f64) -> impl Strategy<Value = Vec<Territory>> {
        proptest::collection::vec((-5_000.0f64..5_000.0, -5_000.0f64..5_000.0), 0..150).prop_map(
            move |points| {
                points
                    .into_iter()
                    .enumerate()
                    .map(|(i, (x, y))| {
                        let mut t = at(&format!("t{i:03}"), x, y);
                        t.cell = cell_of(x, y, cell_size);
                        t
                    })
                    .collect()
            },
        )
    }

    proptest! {
        /// Reading only the covering cells loses nothing: the index answer equals a full scan,
        /// nearest first.
        #[test]
        fn the_cell_index_finds_exactly_what_a_full_scan_finds(
            (cell_size, all) in (1.0f64..3_000.0).prop_flat_map(|s| (Just(s), territories(s))),
            x in -6_000.0f64..6_000.0,
            y in -6_000.0f64..6_000.0,
            radius in 0.001f64..5_000.0,
            on_a_territory in any::<prop::sample::Index>(),
            snap in any::<bool>(),
        ) {
            // Sometimes put the radius exactly on a territory's distance: the boundary case.
            let center = Position { x, y };
            let radius = match (snap, all.is_empty()) {
                (true, false) => distance(center, on_a_territory.get(&all).position()).max(0.001),
                _ => radius,
            };
            let cells = cells_covering(x, y, radius, cell_size);
            let candidates: Vec<Territory> = all
                .iter()
                .filter(|t| cells.contains(&t.cell))
                .cloned()
                .collect();
            let found = nearest_first(center, radius, candidates);

            let mut expected: Vec<&str> = all
                .iter()
                .filter(|t| distance(center, t.position()) <= radius)
                .map(|t| t.territory_id.as_str())
                .collect();
            expected.sort();
            let mut got: Vec<&str> = found.iter().map(|(t, _)| t.territory_id.as_str()).collect();
            got.sort();
            prop_assert_eq!(got, expected);
            for pair in found.windows(2) {
                prop_assert!(pair[0].1 <= pair[1].1);
            }
        }

        /// The cells read depend on the radius and cell size only, whatever the map holds.
        #[test]
        fn cells_touched_are_bounded_by_radius_over_cell_size(
            cell_size in 1.0f64..3_000.0,
            x in -1.0e6f64..1.0e6,
            y in -1.0e6f64..1.0e6,
            radius in 0.001f64..5_000.0,
        ) {
            let cells = cells_covering(x, y, radius, cell_size);
            prop_assert!(!cells.is_empty());
            prop_assert!(cells.len() <= max_cells_covering(radius, cell_size));
            prop_assert!(cells.contains(&cell_of(x, y, cell_size)));
            // The area argument: a circle touches at most about π(r/s + √2)² cells.
            let bound = std::f64::consts::PI * (radius / cell_size + 2.0).powi(2) + 4.0;
            prop_assert!((cells.len() as f64) <= bound, "{} > {}", cells.len(), bound);
        }
    }
}
