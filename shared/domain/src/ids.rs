//! Identifier newtypes. Every id that crosses the API is validated once, here.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest id accepted from callers; keeps DynamoDB keys (and composite keys built from them) small.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id must not be empty")]
    Empty,
    #[error("id must be at most {MAX_ID_LEN} characters")]
    TooLong,
    #[error("id may contain only ASCII letters, digits, '-', '_' and '.'")]
    BadCharacter,
}

/// Checks the id alphabet. `#` is excluded because composite DynamoDB keys use it as separator.
pub fn validate_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a raw id.
            pub fn new(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                validate_id(&raw)?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::new(raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A clan, as named by the game's guild service.
    ClanId
);
id_type!(
    /// A player, as named by the game.
    PlayerId
);
id_type!(
    /// A territory on the world map.
    TerritoryId
);
id_type!(
    /// A war (UUID, generated here).
    WarId
);
id_type!(
    /// A battle instance inside a war (UUID, generated here).
    BattleId
);
id_type!(
    /// An alliance of clans (UUID, generated here).
    AllianceId
);
id_type!(
    /// A caller-supplied unique id of a battle event or a domain event.
    EventId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuid_and_game_style_ids() {
        assert!(ClanId::new("clan-42_eu.1").is_ok());
        assert!(WarId::new(uuid::Uuid::new_v4().to_string()).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_separator_ids() {
        assert_eq!(ClanId::new(""), Err(IdError::Empty));
        assert_eq!(ClanId::new("x".repeat(65)), Err(IdError::TooLong));
        assert_eq!(ClanId::new("a#b"), Err(IdError::BadCharacter));
        assert_eq!(ClanId::new("a b"), Err(IdError::BadCharacter));
    }

    #[test]
    fn deserializing_a_bad_id_fails() {
        let parsed: Result<ClanId, _> = serde_json::from_str("\"bad id\"");
        assert!(parsed.is_err());
    }
}
