//! What one load run does: the targets (loopback only), the operations, the offered rates,
//! the window of each step and the bounds (per-request timeout, whole-run budget).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The operations the generator offers, each at increasing rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `GET /wars/{war_id}`: the war status with live side scores.
    WarStatus,
    /// `GET /wars/{war_id}/scoreboard?limit=10`.
    Scoreboard,
    /// `GET /wars/{war_id}/players/{player_id}`.
    Player,
    /// `POST /wars/{war_id}/events`: a batch of kills.
    Events,
    /// `POST /wars`: a declaration between two fresh clans.
    Declare,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::WarStatus,
        Op::Scoreboard,
        Op::Player,
        Op::Events,
        Op::Declare,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::WarStatus => "war",
            Op::Scoreboard => "scoreboard",
            Op::Player => "player",
            Op::Events => "events",
            Op::Declare => "declare",
        }
    }

    pub fn route(self) -> &'static str {
        match self {
            Op::WarStatus => "GET /wars/{war_id}",
            Op::Scoreboard => "GET /wars/{war_id}/scoreboard",
            Op::Player => "GET /wars/{war_id}/players/{player_id}",
            Op::Events => "POST /wars/{war_id}/events",
            Op::Declare => "POST /wars",
        }
    }

    fn parse(raw: &str) -> Result<Op, String> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == raw)
            .ok_or_else(|| {
                let names: Vec<_> = Op::ALL.iter().map(|o| o.name()).collect();
                format!("unknown operation {raw:?} (one of {})", names.join(", "))
            })
    }
}

/// A load run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The local HTTP API.
    pub api: String,
    /// The emulator (`AWS_ENDPOINT_URL`), for the raw calls.
    pub aws_endpoint: String,
    pub table: String,
    pub ops: Vec<Op>,
    /// Offered rates (requests per second) of the read and event steps, in increasing order.
    pub rates: Vec<f64>,
    /// Offered rates of the declaration step (each declaration needs two fresh clans).
    pub declare_rates: Vec<f64>,
    /// How long each step offers its rate.
    pub window: Duration,
    /// Longest a request may take; a step ends at most this long after its window.
    pub timeout: Duration,
    /// The whole run (setup included) stops starting new steps after this long.
    pub budget: Duration,
    /// Kills per event batch.
    pub batch: usize,
    /// Members per clan of the scored war (killer → victim pairs: members², per direction).
    pub members: usize,
    /// Where the results go (JSON).
    pub out: PathBuf,
}

pub const USAGE: &str = "\
clanwar-loadgen: open-loop load against the LOCAL stack (loopback only), with the raw
emulator calls of each operation at the same rates, side by side.

  --api URL             HTTP API (default: HttpApi of $LOCALAWS_STATE_DIR/resources.json)
  --endpoint URL        the emulator (default: $AWS_ENDPOINT_URL)
  --table NAME          the table (default: WarTable of resources.json)
  --ops LIST            war,scoreboard,player,events,declare (default: all)
  --rates LIST          offered rates per second of reads and events (default 5,10,25,50,100,200)
  --declare-rates LIST  offered rates of declarations (default 1,2,5,10)
  --window SECONDS      length of each step (default 5)
  --timeout SECONDS     per request (default 10)
  --budget SECONDS      the whole run (default 600)
  --batch N             kills per event batch (default 10)
  --out PATH            results as JSON (default target/bench/loadgen.json)
";

impl Config {
    /// Parses `--name value` arguments; defaults from the environment and the local stack's
    /// `resources.json`.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let get = |name: &str| -> Option<String> {
            let at = args.iter().position(|a| a == name)?;
            args.get(at + 1).cloned()
        };
        for (i, arg) in args.iter().enumerate() {
            let known = [
                "--api",
                "--endpoint",
                "--table",
                "--ops",
                "--rates",
                "--declare-rates",
                "--window",
                "--timeout",
                "--budget",
                "--batch",
                "--out",
            ];
            let is_value = i > 0 && known.contains(&args[i - 1].as_str());
            if !is_value && !known.contains(&arg.as_str()) {
                return Err(format!("unknown argument {arg:?}\n\n{USAGE}"));
            }
        }
        let resources = Resources::load();
        let api = match get("--api") {
            Some(api) => api,
            None => resources.http_api()?,
        };
        let aws_endpoint = get("--endpoint")
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .ok_or("no emulator: set AWS_ENDPOINT_URL or --endpoint")?;
        let table = match get("--table") {
            Some(table) => table,
            None => resources.table()?,
        };
        require_loopback("--api", &api)?;
        require_loopback("--endpoint", &aws_endpoint)?;
        let ops = match get("--ops") {
            Some(list) => list
                .split(',')
                .map(|o| Op::parse(o.trim()))
                .collect::<Result<Vec<_>, _>>()?,
            None => Op::ALL.to_vec(),
        };
        let seconds = |raw: Option<String>, default: f64, name: &str| -> Result<Duration, String> {
            let value = raw.map_or(Ok(default), |r| {
                r.parse::<f64>()
                    .map_err(|_| format!("{name}: not a number: {r:?}"))
            })?;
            if !(value > 0.0 && value <= 3_600.0) {
                return Err(format!("{name} must be in (0, 3600] seconds"));
            }
            Ok(Duration::from_secs_f64(value))
        };
        let batch = get("--batch")
            .map_or(Ok(10), |b| b.parse::<usize>())
            .map_err(|_| "--batch: not a whole number".to_owned())?;
        if !(1..=49).contains(&batch) {
            return Err("--batch must be 1..=49 (one transaction of ≤ 100 items per batch)".into());
        }
        Ok(Config {
            api: api.trim_end_matches('/').to_owned(),
            aws_endpoint,
            table,
            ops,
            rates: rates(get("--rates").as_deref().unwrap_or("5,10,25,50,100,200"))?,
            declare_rates: rates(get("--declare-rates").as_deref().unwrap_or("1,2,5,10"))?,
            window: seconds(get("--window"), 5.0, "--window")?,
            timeout: seconds(get("--timeout"), 10.0, "--timeout")?,
            budget: seconds(get("--budget"), 600.0, "--budget")?,
            batch,
            members: 100,
            out: PathBuf::from(
                get("--out").unwrap_or_else(|| "target/bench/loadgen.json".to_owned()),
            ),
        })
    }

    pub fn rates_of(&self, op: Op) -> &[f64] {
        match op {
            Op::Declare => &self.declare_rates,
            _ => &self.rates,
        }
    }
}

/// `"10,25,50"` → increasing positive rates, at most 1,000/s (a local stack on a few cores).
pub fn rates(raw: &str) -> Result<Vec<f64>, String> {
    let rates: Vec<f64> = raw
        .split(',')
        .map(|r| r.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("rates must be numbers like 10,25,50, got {raw:?}"))?;
    let increasing = rates.windows(2).all(|w| w[0] < w[1]);
    if rates.is_empty() || !increasing || rates.iter().any(|r| !(*r > 0.0 && *r <= 1_000.0)) {
        return Err(format!(
            "rates must increase, each in (0, 1000] per second, got {raw:?}"
        ));
    }
    Ok(rates)
}

/// Refuses any target that is not this machine: the generator must never load a real
/// deployment (or anyone else's machine) by mistake.
pub fn require_loopback(name: &str, url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{name} must be a plain http:// URL on loopback, got {url:?}"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("{name}: no credentials in the URL, got {url:?}"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{name} must be on loopback (127.0.0.0/8, ::1, localhost), got {url:?}: \
             the load generator only loads the local stack"
        ))
    }
}

/// The local stack's `resources.json` (written by `tools/localaws`).
struct Resources(serde_json::Value);

impl Resources {
    fn load() -> Self {
        let dir = std::env::var("LOCALAWS_STATE_DIR").unwrap_or_else(|_| ".localaws".into());
        let path = PathBuf::from(dir).join("resources.json");
        let json = std::fs::read_to_string(path)
            .ok()
            .and_then(|raw| serde_json::from_str(&raw).ok())
            .unwrap_or(serde_json::Value::Null);
        Self(json)
    }

    fn field(&self, logical: &str, attribute: &str) -> Result<String, String> {
        self.0["resources"][logical][attribute]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "no {logical}.{attribute} in $LOCALAWS_STATE_DIR/resources.json: start the \
                     local stack (scripts/localaws.sh up) or pass it as an argument"
                )
            })
    }

    fn http_api(&self) -> Result<String, String> {
        self.field("HttpApi", "Url")
    }

    fn table(&self) -> Result<String, String> {
        self.field("WarTable", "Name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:4680",
            "http://127.0.0.2:80/dev",
            "http://localhost:8080",
            "http://[::1]:4666/",
        ] {
            assert_eq!(require_loopback("--api", ok), Ok(()), "{ok}");
        }
        for refused in [
            "https://abc.execute-api.eu-west-1.amazonaws.com",
            "http://10.0.0.5:4566",
            "http://192.168.1.1",
            "http://127.0.0.1.example.com:80",
            "http://user@127.0.0.1:80",
            "ftp://127.0.0.1",
        ] {
            assert!(require_loopback("--api", refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn rates_increase_and_stay_modest() {
        assert_eq!(rates("10, 25,50"), Ok(vec![10.0, 25.0, 50.0]));
        assert!(rates("25,10").is_err());
        assert!(rates("0,10").is_err());
        assert!(rates("10,5000").is_err());
        assert!(rates("ten").is_err());
    }

    #[test]
    fn arguments_are_checked() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = [
            "--api",
            "http://127.0.0.1:1",
            "--endpoint",
            "http://127.0.0.1:2",
            "--table",
            "t",
        ];
        let config = Config::from_args(&args(&base)).unwrap();
        assert_eq!(config.ops, Op::ALL.to_vec());
        assert_eq!(config.rates_of(Op::Declare), &[1.0, 2.0, 5.0, 10.0]);
        let mut remote = base.to_vec();
        remote[1] = "http://203.0.113.9:80";
        assert!(Config::from_args(&args(&remote)).is_err());
        let mut unknown = base.to_vec();
        unknown.push("--fast");
        assert!(Config::from_args(&args(&unknown)).is_err());
        let mut some = base.to_vec();
        some.extend(["--ops", "events,war", "--batch", "20"]);
        let config = Config::from_args(&args(&some)).unwrap();
        assert_eq!(
            (config.ops, config.batch),
            (vec![Op::Events, Op::WarStatus], 20)
        );
    }
}
