//! What a demo run plays: API endpoints, phase lengths, cast size, the seed of the event stream
//! and the run id that prefixes every id it creates (so runs never collide on one stack).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Phase lengths of the declared war, in seconds (the declaration's `phase_durations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    pub declared_s: u64,
    pub preparation_s: u64,
    pub active_s: u64,
    pub ending_s: u64,
}

impl Phases {
    /// The human demo: about a minute of war.
    pub const DEMO: Phases = Phases {
        declared_s: 5,
        preparation_s: 5,
        active_s: 40,
        ending_s: 3,
    };
    /// Tests: short, yet with room for the allies to join before ACTIVE and for the must-do
    /// steps and some batches during it on a loaded machine whose local stack is shared with
    /// other tests (a call then takes seconds), and an ENDING long enough for a batch still in
    /// flight to land before the final tally. The demo paces itself by the war either way: on a
    /// machine slower still, steps are missed, not the war.
    pub const TEST: Phases = Phases {
        declared_s: 3,
        preparation_s: 3,
        active_s: 20,
        ending_s: 4,
    };

    pub fn total_s(&self) -> u64 {
        self.declared_s + self.preparation_s + self.active_s + self.ending_s
    }

    /// `"5,5,40,3"` → declared, preparation, active, ending.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let parts: Vec<u64> = raw
            .split(',')
            .map(|p| p.trim().parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("phases must be four whole seconds like 5,5,40,3, got {raw:?}"))?;
        match parts[..] {
            [declared_s, preparation_s, active_s, ending_s] if parts.iter().all(|s| *s >= 1) => {
                Ok(Self {
                    declared_s,
                    preparation_s,
                    active_s,
                    ending_s,
                })
            }
            _ => Err(format!(
                "phases must be four values ≥ 1 like 5,5,40,3, got {raw:?}"
            )),
        }
    }

    /// The declaration body's `phase_durations`.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "declared_s": self.declared_s, "preparation_s": self.preparation_s,
            "active_s": self.active_s, "ending_s": self.ending_s
        })
    }
}

/// Fewest players per clan: the declaration rules want clans of at least ten.
pub const MIN_PLAYERS_PER_CLAN: usize = 10;
/// Most players per clan the demo creates (keeps the reward table readable).
pub const MAX_PLAYERS_PER_CLAN: usize = 40;

/// One demo run.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Base URL of the HTTP API, e.g. `http://127.0.0.1:8080`.
    pub api_url: String,
    /// WebSocket API URL; `None` skips the push feed.
    pub ws_url: Option<String>,
    pub phases: Phases,
    /// Leader and officer included; at least [`MIN_PLAYERS_PER_CLAN`].
    pub players_per_clan: usize,
    /// Seed of the cast levels and the event stream.
    pub seed: u64,
    /// Prefix of every clan, player, territory and event id this run creates.
    pub run_id: String,
    /// Pause between two event batches.
    pub batch_interval: Duration,
    /// How long to wait beyond the war's own deadlines (timer lag, reward saga) before giving up.
    pub slack: Duration,
}

impl DemoConfig {
    /// Defaults of the human demo against `api_url`, with a fresh run id.
    pub fn new(api_url: impl Into<String>) -> Self {
        Self {
            api_url: api_url.into().trim_end_matches('/').to_owned(),
            ws_url: None,
            phases: Phases::DEMO,
            players_per_clan: 12,
            seed: 2024,
            run_id: fresh_run_id(),
            batch_interval: Duration::from_secs(1),
            slack: Duration::from_secs(60),
        }
    }

    /// The binary's configuration: `CLANWAR_API_URL` / `CLANWAR_WS_URL` (else the local stack's
    /// `resources.json`), and `DEMO_PHASES`, `DEMO_PLAYERS`, `DEMO_SEED`, `DEMO_RUN_ID`.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let recorded = recorded_urls();
        let api_url = var("CLANWAR_API_URL")
            .or_else(|| recorded.as_ref().map(|r| r.0.clone()))
            .ok_or("CLANWAR_API_URL is not set and no local stack resources.json was found")?;
        let mut config = Self::new(api_url);
        config.ws_url = var("CLANWAR_WS_URL").or_else(|| recorded.and_then(|r| r.1));
        if let Some(raw) = var("DEMO_PHASES") {
            config.phases = Phases::parse(&raw)?;
        }
        if let Some(raw) = var("DEMO_PLAYERS") {
            config.players_per_clan = parse_players(&raw)?;
        }
        if let Some(raw) = var("DEMO_SEED") {
            config.seed = raw
                .parse()
                .map_err(|_| format!("DEMO_SEED must be a number, got {raw:?}"))?;
        }
        if let Some(raw) = var("DEMO_RUN_ID") {
            config.run_id = parse_run_id(&raw)?;
        }
        Ok(config)
    }

    /// Checks what the API would refuse later anyway, with a clearer message.
    pub fn validate(&self) -> Result<(), String> {
        parse_run_id(&self.run_id)?;
        parse_players(&self.players_per_clan.to_string())?;
        if [
            self.phases.declared_s,
            self.phases.preparation_s,
            self.phases.active_s,
            self.phases.ending_s,
        ]
        .contains(&0)
        {
            return Err("every phase must last at least one second".into());
        }
        Ok(())
    }
}

fn parse_players(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (MIN_PLAYERS_PER_CLAN..=MAX_PLAYERS_PER_CLAN).contains(&n) => Ok(n),
        _ => Err(format!(
            "players per clan must be {MIN_PLAYERS_PER_CLAN}..={MAX_PLAYERS_PER_CLAN}, got {raw:?}"
        )),
    }
}

/// Run ids end up inside ids of at most 64 characters: short, `[a-z0-9]`.
fn parse_run_id(raw: &str) -> Result<String, String> {
    let ok = (1..=12).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "run id must be 1..=12 characters of [a-z0-9], got {raw:?}"
        ))
    }
}

/// `d` + six base-36 digits from the clock and the process id: unique enough per stack.
pub fn fresh_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut n = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    let mut digits = String::new();
    for _ in 0..6 {
        digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
    }
    format!("d{digits}")
}

/// `(HttpApi.Url, WebSocketApi.Url)` from `$LOCALAWS_STATE_DIR/resources.json` (default
/// `.localaws/`), for running the binary by hand next to `make emulator-up`.
fn recorded_urls() -> Option<(String, Option<String>)> {
    let dir = std::env::var("LOCALAWS_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| ".localaws".into());
    let raw = std::fs::read_to_string(dir.join("resources.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&raw).ok()?;
    let resources = json.get("resources")?;
    let http = resources.get("HttpApi")?.get("Url")?.as_str()?.to_owned();
    let ws = resources
        .pointer("/WebSocketApi/Url")
        .and_then(|u| u.as_str())
        .map(str::to_owned);
    Some((http, ws))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_and_refuse_nonsense() {
        assert_eq!(Phases::parse("5, 5,40,3"), Ok(Phases::DEMO));
        assert!(Phases::parse("5,5,40").is_err());
        assert!(Phases::parse("5,0,40,3").is_err());
        assert!(Phases::parse("a,b,c,d").is_err());
        assert_eq!(Phases::DEMO.total_s(), 53);
    }

    #[test]
    fn run_ids_are_short_and_safe() {
        let id = fresh_run_id();
        assert_eq!(id.len(), 7);
        assert!(parse_run_id(&id).is_ok());
        assert!(parse_run_id("Bad-Id").is_err());
        assert!(parse_run_id("").is_err());
    }

    #[test]
    fn the_defaults_validate() {
        let config = DemoConfig::new("http://127.0.0.1:8080/");
        assert_eq!(config.api_url, "http://127.0.0.1:8080");
        assert_eq!(config.validate(), Ok(()));
        let small = DemoConfig {
            players_per_clan: 4,
            ..config
        };
        assert!(small.validate().is_err());
    }
}
