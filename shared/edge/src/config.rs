//! Typed configuration, read once per cold start from the environment the IaC sets. A missing
//! or malformed variable fails the cold start with a message naming it.

use clanwar_aws::calls;
use clanwar_aws::{
    ApiGatewayPusher, DynamoDbConnections, DynamoDbStore, EventBridgePublisher,
    SecretsManagerSessionKeys, StateMachines, StepFunctionsWorkflows, TableConfig,
};
use clanwar_domain::config::Rules;
use clanwar_domain::ports::WorkflowStarter;
use clanwar_domain::realtime::Realtime;
use clanwar_domain::services::Deps;
use clanwar_domain::session::Sessions;
use clanwar_domain::system::{SystemClock, UuidIds};
use not_configured::NotConfigured;
use std::sync::Arc;

/// A configuration problem found at cold start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is malformed: {message}")]
    Malformed { name: String, message: String },
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name).map_err(|_| ConfigError::Missing(name))
}

/// The rules: SPEC defaults overridden by `CLANWAR_RULE_<NAME>` variables.
pub fn rules_from_env() -> Result<Rules, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    Rules::default()
        .with_overrides(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|message| ConfigError::Malformed {
            name: "CLANWAR_RULE_*".into(),
            message,
        })
}

/// The SDK configuration, for a function that builds its own clients (`clanwar_aws::sdk`).
pub async fn sdk() -> aws_config::SdkConfig {
    clanwar_aws::sdk::load().await
}

/// The services' dependencies on AWS: table `TABLE_NAME`, bus `EVENT_BUS_NAME`, and — for the
/// functions that start workflows — `LIFECYCLE_STATE_MACHINE_ARN`, `REWARDS_STATE_MACHINE_ARN`
/// and (war-manager, phase-controller) `DECLARE_WAR_STATE_MACHINE_ARN`. SDK clients are built here, once.
pub async fn deps_from_env() -> Result<Deps, ConfigError> {
    let rules = rules_from_env()?;
    let sdk = clanwar_aws::sdk::load().await;
    let clients = calls::counted(&sdk);
    let store = Arc::new(DynamoDbStore::new(
        clients.dynamodb,
        TableConfig {
            table: required("TABLE_NAME")?,
        },
    ));
    let events = Arc::new(EventBridgePublisher::new(
        clients.eventbridge,
        required("EVENT_BUS_NAME")?,
    ));
    let workflows: Arc<dyn WorkflowStarter> = match (
        std::env::var("LIFECYCLE_STATE_MACHINE_ARN"),
        std::env::var("REWARDS_STATE_MACHINE_ARN"),
    ) {
        (Ok(lifecycle), Ok(rewards)) => Arc::new(StepFunctionsWorkflows::new(
            clients.sfn,
            StateMachines {
                declaration: std::env::var("DECLARE_WAR_STATE_MACHINE_ARN").ok(),
                lifecycle,
                rewards,
            },
        )),
        _ => Arc::new(NotConfigured),
    };
    Ok(Deps {
        store: store.clone(),
        outbox: store.clone(),
        scores: store,
        events,
        workflows,
        clock: Arc::new(SystemClock),
        ids: Arc::new(UuidIds),
        rules: Arc::new(rules),
    })
}

/// The real-time side: connections in `TABLE_NAME` (and the wars and clans subscriptions are
/// checked against, read with the store adapter), pushes through `WS_MANAGEMENT_ENDPOINT` (the
/// WebSocket API's `https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
pub async fn realtime_from_env() -> Result<Realtime, ConfigError> {
    let sdk = clanwar_aws::sdk::load().await;
    let table = required("TABLE_NAME")?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(Realtime {
        connections: Arc::new(DynamoDbConnections::new(dynamodb.clone(), table.clone())),
        pusher: Arc::new(ApiGatewayPusher::new(
            &sdk,
            &required("WS_MANAGEMENT_ENDPOINT")?,
        )),
        store: Arc::new(DynamoDbStore::new(dynamodb, TableConfig { table })),
    })
}

/// Default of `SESSION_TOKEN_TTL_S`: how long an issued session token is valid.
pub const DEFAULT_SESSION_TOKEN_TTL_S: u64 = 3_600;
/// Default of `SESSION_KEY_REFRESH_S`: how old the cached signing keys may get.
pub const DEFAULT_SESSION_KEY_REFRESH_S: u64 = 300;

/// Longest accepted `SESSION_TOKEN_TTL_S` / `SESSION_KEY_REFRESH_S`: 7 days.
const MAX_SESSION_SECONDS: u64 = 7 * 24 * 3_600;

fn seconds(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(raw) => match raw.parse::<u64>() {
            Ok(value) if (1..=MAX_SESSION_SECONDS).contains(&value) => Ok(value),
            _ => Err(ConfigError::Malformed {
                name: name.into(),
                message: format!("{raw:?} is not a number of seconds in 1..={MAX_SESSION_SECONDS}"),
            }),
        },
    }
}

/// Player session tokens: the signing keys in the Secrets Manager secret
/// `SESSION_KEY_SECRET_ARN` (read on first use, cached for `SESSION_KEY_REFRESH_S`), tokens
/// valid for `SESSION_TOKEN_TTL_S`.
pub async fn sessions_from_env() -> Result<Sessions, ConfigError> {
    let secret = required("SESSION_KEY_SECRET_ARN")?;
    let ttl = seconds("SESSION_TOKEN_TTL_S", DEFAULT_SESSION_TOKEN_TTL_S)?;
    let refresh = seconds("SESSION_KEY_REFRESH_S", DEFAULT_SESSION_KEY_REFRESH_S)?;
    let sdk = clanwar_aws::sdk::load().await;
    Ok(Sessions {
        keys: Arc::new(SecretsManagerSessionKeys::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            secret,
            std::time::Duration::from_secs(refresh),
        )),
        clock: Arc::new(SystemClock),
        ttl: chrono::Duration::seconds(ttl as i64), // at most MAX_SESSION_SECONDS
    })
}

mod not_configured {
    //! The workflow starter of functions that never start workflows: calling it is a wiring bug.
    use clanwar_domain::ids::WarId;
    use clanwar_domain::ports::{WorkflowError, WorkflowStarter};
    use clanwar_domain::war::War;

    #[derive(Debug)]
    pub struct NotConfigured;

    fn refuse() -> WorkflowError {
        WorkflowError {
            message: "this function has no state machine ARNs configured".into(),
        }
    }

    #[clanwar_domain::async_trait]
    impl WorkflowStarter for NotConfigured {
        async fn start_declaration(&self, _: &War) -> Result<(), WorkflowError> {
            Err(refuse())
        }
        async fn start_lifecycle(&self, _: &War) -> Result<(), WorkflowError> {
            Err(refuse())
        }
        async fn stop_lifecycle(&self, _: &WarId) -> Result<(), WorkflowError> {
            Err(refuse())
        }
        async fn start_rewards(&self, _: &WarId) -> Result<(), WorkflowError> {
            Err(refuse())
        }
    }
}
