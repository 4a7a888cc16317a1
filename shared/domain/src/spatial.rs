//! The spatial cell index behind "territories near a point" (SPEC §4).

use serde::{Deserialize, Serialize};

/// A square grid cell of the world map, `cell_size_m` on a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CellId {
    pub cx: i64,
    pub cy: i64,
}
