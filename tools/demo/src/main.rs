//! `clanwar-demo`: plays a demo war against the stack named by `CLANWAR_API_URL` (and
//! `CLANWAR_WS_URL` for pushes), shows it live, then prints the result and the reward table.
//! Exits non-zero on any API error, a timeout, or rewards that were not paid.

use clanwar_demo::{play, DemoConfig, LogProgress, Progress, TerminalProgress};
use std::io::IsTerminal;
use std::process::ExitCode;

const USAGE: &str = "\
clanwar-demo: plays a complete demo war through the public HTTP API.

environment:
  CLANWAR_API_URL   HTTP API base URL (default: the local stack's resources.json)
  CLANWAR_WS_URL    WebSocket API URL for live pushes (optional)
  DEMO_PHASES       declared,preparation,active,ending seconds (default 5,5,40,3)
  DEMO_PLAYERS      players per clan, 10..=40 (default 12)
  DEMO_SEED         seed of the event stream (default 2024)
  DEMO_RUN_ID       id prefix, [a-z0-9]{1,12} (default: fresh)
  DEMO_HEADLESS=1   plain log lines instead of the redrawn view";

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match DemoConfig::from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("clanwar-demo: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let headless =
        std::env::var("DEMO_HEADLESS").is_ok_and(|v| v == "1") || !std::io::stdout().is_terminal();
    let progress: Box<dyn Progress> = if headless {
        Box::new(LogProgress::stdout())
    } else {
        Box::new(TerminalProgress::new())
    };
    match play(config, progress).await {
        Ok(outcome) => {
            println!("\n{outcome}");
            if outcome.rewards_paid() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "clanwar-demo: the reward saga ended {}, not DISTRIBUTED",
                    outcome.rewards.status
                );
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("clanwar-demo: demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}
