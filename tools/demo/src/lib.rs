//! The demo war player: plays a complete clan war against a running stack through the public
//! HTTP API only — clans, territories, alliances, a declaration with short phases, allies
//! joining, battles, a stream of kill/assist/capture batches, captures, battle results, the war
//! ending by its timers, the winner and the reward saga — while a live view shows the phase
//! with a countdown, a progress bar over the war's timeline, side scores, top players,
//! captured territories and the last events.
//!
//! ```no_run
//! # async fn demo() -> Result<(), clanwar_demo::DemoError> {
//! use clanwar_demo::{play, DemoConfig, LogProgress, Phases};
//! let mut config = DemoConfig::new("http://127.0.0.1:8080");
//! config.phases = Phases::TEST;
//! let outcome = play(config, Box::new(LogProgress::stderr())).await?;
//! println!("{outcome}");
//! # Ok(()) }
//! ```

mod api;
mod cast;
mod config;
mod fight;
mod live;
mod model;
mod outcome;
mod pace;
mod progress;
mod render;
mod rng;
mod story;
mod stream;
mod ws;

pub use api::{ApiError, DemoError};
pub use cast::{Cast, Clan, Player, Side, Territory};
pub use config::{fresh_run_id, DemoConfig, Phases};
pub use live::{LiveState, Totals};
pub use model::{CaptureView, ClanScore, PlayerScore, Scoreboard};
pub use outcome::{DemoOutcome, RatingChange, RewardRow, RewardTable};
pub use pace::{MissedStep, StepKind};
pub use progress::{LogProgress, Progress, Silent, TerminalProgress};

use std::sync::Arc;

/// Plays one demo war and returns its result. Progress goes to `progress` (a redrawn terminal
/// view, plain log lines, or nothing) until the end. A timed step the war's clock leaves no
/// time for is reported as missed (and listed in the outcome) while the war plays on; any other
/// error answer of the API stops the demo with that error (SPEC code and message).
pub async fn play(
    config: DemoConfig,
    progress: Box<dyn Progress>,
) -> Result<DemoOutcome, DemoError> {
    config.validate().map_err(DemoError::Unexpected)?;
    let api = api::Api::new(&config.api_url)?;
    let cast = Arc::new(Cast::new(
        &config.run_id,
        config.players_per_clan,
        &mut rng::Rng::new(config.seed),
    ));
    let live = live::Live::new(cast.clone());
    live.milestone(format!(
        "demo run {} against {}",
        config.run_id, config.api_url
    ));
    let renderer = progress::Renderer::spawn(live.clone(), progress);
    let result = story::Story::new(api, config, cast, live.clone())
        .run()
        .await;
    if let Err(error) = &result {
        live.step("failed");
        live.milestone(format!("FAILED: {error}"));
    }
    renderer.stop().await;
    result
}
