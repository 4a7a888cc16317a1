//! Test helpers shared by the integration tests: AWS clients on `AWS_ENDPOINT_URL`, resource
//! names from the local stack's `resources.json` (or environment overrides), unique test tags.

use std::collections::HashMap;
use std::path::PathBuf;

/// Resource names of the running stack, keyed by the template's logical ids.
#[derive(Debug, Clone)]
pub struct Resources {
    names: HashMap<String, String>,
}

impl Resources {
    /// Reads `$LOCALAWS_STATE_DIR/resources.json` (default `.localaws/` at the repository root).
    /// Panics with instructions when the stack is not up: these tests need it.
    pub fn load() -> Self {
        let dir = std::env::var("LOCALAWS_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.localaws"));
        let path = dir.join("resources.json");
        let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}. Start the local stack first (make emulator-up) or run `make test`.",
                path.display()
            )
        });
        let json: serde_json::Value = serde_json::from_str(&raw).expect("resources.json is JSON");
        let mut names = HashMap::new();
        if let Some(map) = json.as_object() {
            for (logical, value) in map {
                let name = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other
                        .get("name")
                        .or_else(|| other.get("url"))
                        .or_else(|| other.get("arn"))
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                };
                names.insert(logical.clone(), name);
            }
        }
        Self { names }
    }

    /// A resource's physical name; `CLANWAR_<LOGICAL_ID>` in the environment overrides it.
    pub fn name(&self, logical: &str) -> String {
        let var = format!("CLANWAR_{}", logical.to_ascii_uppercase());
        std::env::var(&var)
            .ok()
            .or_else(|| self.names.get(logical).cloned())
            .unwrap_or_else(|| {
                panic!("resource {logical} is not in resources.json (and {var} is not set)")
            })
    }

    /// The raw entry of a resource (url, arn, ...), for queues and state machines.
    pub fn get(&self, logical: &str) -> Option<&String> {
        self.names.get(logical)
    }
}

/// SDK configuration for whatever `AWS_ENDPOINT_URL` names (the SDK reads it natively).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A short unique prefix for the ids one test writes, so tests can share a table.
pub fn unique_tag(test: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{test}-{}", &id[..8])
}
