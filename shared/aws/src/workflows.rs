//! Step Functions adapter of the workflow starter. Execution names are derived from the war id,
//! so starting a workflow twice is refused by Step Functions itself and treated as done.

use async_trait::async_trait;
use aws_sdk_sfn::Client;
use clanwar_domain::ids::WarId;
use clanwar_domain::ports::{WorkflowError, WorkflowStarter};
use clanwar_domain::war::War;
use serde_json::json;

/// The ARNs of the state machines a function may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachines {
    /// The declare-war saga; only the war-manager starts it.
    pub declaration: Option<String>,
    pub lifecycle: String,
    pub rewards: String,
}

#[derive(Debug, Clone)]
pub struct StepFunctionsWorkflows {
    client: Client,
    machines: StateMachines,
}

impl StepFunctionsWorkflows {
    pub fn new(client: Client, machines: StateMachines) -> Self {
        Self { client, machines }
    }

    async fn start(
        &self,
        arn: &str,
        name: &str,
        input: serde_json::Value,
    ) -> Result<(), WorkflowError> {
        let result = self
            .client
            .start_execution()
            .state_machine_arn(arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_execution_already_exists()) =>
            {
                Ok(())
            }
            Err(err) => Err(WorkflowError {
                message: aws_sdk_sfn::error::DisplayErrorContext(&err).to_string(),
            }),
        }
    }
}

/// `arn:aws:states:r:a:stateMachine:M` + `N` → `arn:aws:states:r:a:execution:M:N`.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// The input of the declare-war saga and of the lifecycle: the war and its absolute deadlines.
fn timers_input(war: &War) -> serde_json::Value {
    let d = war.phase_deadlines;
    json!({
        "war_id": war.war_id,
        "deadlines": {
            "PREPARATION": d.preparation_at,
            "ACTIVE": d.active_at,
            "ENDING": d.ending_at,
            "ENDED": d.ended_at,
        }
    })
}

#[async_trait]
impl WorkflowStarter for StepFunctionsWorkflows {
    async fn start_declaration(&self, war: &War) -> Result<(), WorkflowError> {
        let arn = self
            .machines
            .declaration
            .as_deref()
            .ok_or_else(|| WorkflowError {
                message: "this function has no declare-war state machine configured".into(),
            })?;
        self.start(arn, war.war_id.as_str(), timers_input(war))
            .await
    }

    async fn start_lifecycle(&self, war: &War) -> Result<(), WorkflowError> {
        let name = war.war_id.as_str();
        self.start(&self.machines.lifecycle, name, timers_input(war))
            .await
    }

    async fn stop_lifecycle(&self, war: &WarId) -> Result<(), WorkflowError> {
        let arn = execution_arn(&self.machines.lifecycle, war.as_str());
        match self
            .client
            .stop_execution()
            .execution_arn(arn)
            .cause("war ended early")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already finished or never started: nothing left to stop.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_execution_does_not_exist()) =>
            {
                Ok(())
            }
            Err(err) => Err(WorkflowError {
                message: aws_sdk_sfn::error::DisplayErrorContext(&err).to_string(),
            }),
        }
    }

    async fn start_rewards(&self, war: &WarId) -> Result<(), WorkflowError> {
        self.start(
            &self.machines.rewards,
            war.as_str(),
            json!({ "war_id": war }),
        )
        .await
    }

    async fn start_rewards_run(&self, war: &WarId, run: &str) -> Result<(), WorkflowError> {
        self.start(
            &self.machines.rewards,
            &rewards_run_name(war, run),
            json!({ "war_id": war }),
        )
        .await
    }
}

/// The execution name of a later reward run: `<war_id>-<run>` (`r1`, `a2`, ...). War ids are at
/// most 64 characters and runs a few, within Step Functions' 80.
pub fn rewards_run_name(war: &WarId, run: &str) -> String {
    format!("{war}-{run}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn execution_arns_follow_the_state_machine_arn() {
        assert_eq!(
            super::execution_arn("arn:aws:states:us-east-1:123:stateMachine:life", "w1"),
            "arn:aws:states:us-east-1:123:execution:life:w1"
        );
    }
}
