//! Clan wars domain: every rule of the product spec as plain Rust over small port traits.
//! No AWS or Lambda dependency lives here (see `cargo tree -p clanwar-domain`).

pub mod alliance;
pub mod battle;
pub mod clan;
pub mod config;
pub mod declaration;
pub mod error;
pub mod events;
pub mod hash;
pub mod ids;
pub mod ledger;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod port_error;
pub mod ports;
pub mod realtime;
pub mod retry;
pub mod rewards;
pub mod scoring;
pub mod services;
pub mod session;
pub mod spatial;
pub mod status;
pub mod system;
pub mod territory;
#[cfg(any(test, feature = "testing"))]
pub mod testkit;
pub mod war;

pub use async_trait::async_trait;
pub use error::{DomainError, DomainResult, ErrorClass};
