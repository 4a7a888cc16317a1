//! The war's vocabulary that lower modules share: its lifecycle state, its sides and its
//! reward state. Re-exported by [`crate::war`]; here so that the error and the ledger can name
//! them without importing the war aggregate.

use serde::{Deserialize, Serialize};

/// Lifecycle states. The declaration order is the only allowed direction of travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WarStatus {
    Declared,
    Preparation,
    Active,
    Ending,
    Ended,
    Cancelled,
}

impl WarStatus {
    /// ENDED and CANCELLED never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, WarStatus::Ended | WarStatus::Cancelled)
    }

    /// The phase a timer moves this one to, if any.
    pub fn next_timed(self) -> Option<WarStatus> {
        match self {
            WarStatus::Declared => Some(WarStatus::Preparation),
            WarStatus::Preparation => Some(WarStatus::Active),
            WarStatus::Active => Some(WarStatus::Ending),
            WarStatus::Ending => Some(WarStatus::Ended),
            WarStatus::Ended | WarStatus::Cancelled => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WarStatus::Declared => "DECLARED",
            WarStatus::Preparation => "PREPARATION",
            WarStatus::Active => "ACTIVE",
            WarStatus::Ending => "ENDING",
            WarStatus::Ended => "ENDED",
            WarStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(raw.to_owned())).ok()
    }
}

/// One side of a war.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Attacker,
    Defender,
}

impl Side {
    pub fn opponent(self) -> Side {
        match self {
            Side::Attacker => Side::Defender,
            Side::Defender => Side::Attacker,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Attacker => "attacker",
            Side::Defender => "defender",
        }
    }
}

/// Distribution state of the reward saga, mirrored on the war for reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RewardStatus {
    Pending,
    Distributing,
    Distributed,
    RewardsFailed,
}
