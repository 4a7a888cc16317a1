//! The local stack is the template: every resource of `infra/template.yaml` (for the
//! parameters the stack was started with) is in the running stack's `resources.json`, with the
//! same type, and nothing else is; a resource whose `Condition` is false is absent. Resources
//! of types that have no local effect are listed with the reason they are skipped
//! (`LOCAL_SKIP` in tools/localaws/provisioner.py). A second test asks the emulator itself for
//! its functions, state machines, API routes, queue mappings and schedules
//! (`tools/infra_check.py --against`).

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn resources_json() -> PathBuf {
    std::env::var("LOCALAWS_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".localaws"))
        .join("resources.json")
}

fn local_state() -> Value {
    let path = resources_json();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (start the local stack: make emulator-up, or run make test)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Runs `tools/infra_check.py` with the project venv's Python.
fn infra_check(args: &[String]) -> std::process::Output {
    let python = repo().join(".venv/bin/python");
    Command::new(&python)
        .arg(repo().join("tools/infra_check.py"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (scripts/bootstrap.sh creates it): {e}",
                python.display()
            )
        })
}

fn object<'a>(value: &'a Value, key: &str) -> &'a Map<String, Value> {
    value[key]
        .as_object()
        .unwrap_or_else(|| panic!("no object {key:?} in {value}"))
}

#[test]
fn local_stack_has_exactly_the_resources_of_the_template() {
    let state = local_state();
    // The template evaluated with the parameters the local stack was started with.
    let mut args = vec!["--expected-resources".to_owned()];
    for (name, value) in object(&state, "parameters") {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        args.extend(["--param".to_owned(), format!("{name}={value}")]);
    }
    let output = infra_check(&args);
    assert!(
        output.status.success(),
        "infra_check.py --expected-resources failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected: Value = serde_json::from_slice(&output.stdout).expect("infra_check prints JSON");
    let wanted = object(&expected, "resources");
    let disabled = object(&expected, "disabled");
    let local = object(&state, "resources");

    let mut problems = Vec::new();
    let mut skipped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, want) in wanted {
        let kind = want["Type"].as_str().unwrap_or_default();
        match local.get(id) {
            None => problems.push(format!(
                "{id} ({kind}) is in the template but not in the local stack"
            )),
            Some(have) if have["Type"] != want["Type"] => problems.push(format!(
                "{id}: template type {kind}, local type {}",
                have["Type"]
            )),
            Some(_) => {}
        }
        if want["local"] == "skipped" {
            skipped
                .entry(want["reason"].as_str().unwrap_or("?"))
                .or_default()
                .push(id);
        }
    }
    for (id, have) in local {
        // SAM's implicit API for HttpApi events without ApiId is not a template resource.
        if !wanted.contains_key(id) && id != "ServerlessHttpApi" {
            problems.push(format!(
                "{id} ({}) is in the local stack but is not an enabled resource of the template",
                have["Type"]
            ));
        }
    }
    for (id, why) in disabled {
        if local.contains_key(id) {
            problems.push(format!(
                "{id} is in the local stack although its Condition {} is false",
                why["Condition"]
            ));
        }
    }
    for (reason, ids) in &skipped {
        println!("skipped locally ({reason}): {}", ids.join(", "));
    }
    for (id, why) in disabled {
        println!("absent (Condition {} is false): {id}", why["Condition"]);
    }
    assert!(
        problems.is_empty(),
        "the local stack ({}) and infra/template.yaml differ:\n  {}",
        resources_json().display(),
        problems.join("\n  ")
    );
    assert!(!wanted.is_empty(), "the template has no resources?");
}

#[test]
fn emulator_routes_queue_mappings_and_schedules_are_the_templates() {
    let path = resources_json();
    local_state(); // a clear message when the stack is not running
    let output = infra_check(&[
        "--against".to_owned(),
        path.display().to_string(),
        "--local-only".to_owned(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the emulator and infra/template.yaml differ:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
