"""End-to-end check of the local AWS stack; prints PASS/FAIL per check, exits 1 on any failure.

    .venv/bin/python tools/localaws/selfcheck.py

Runs its own stack (port $LOCALAWS_SELFCHECK_PORT, default 4599; state in .localaws/selfcheck/)
through scripts/localaws.sh, so it never disturbs a stack started for development. The API
checks provision tools/localaws/fixtures/apis.yaml (HTTP API, WebSocket API, schedules) with
its APIs on the three ports after that one. The Lambda
checks use a throwaway Rust `lambda_runtime` echo binary, written to /tmp/echo-lambda and built
there (debug, CARGO_TARGET_DIR=/tmp/echo-target) when missing or changed.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any
from collections.abc import Callable
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO_ROOT / ".venv/bin/python"

try:
    import boto3
except ImportError:  # started with the system python: rerun inside the project venv
    if VENV_PYTHON.exists() and Path(sys.executable) != VENV_PYTHON:
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])
    sys.exit("boto3 missing: run scripts/bootstrap.sh first")

PORT = int(os.environ.get("LOCALAWS_SELFCHECK_PORT", "4599"))
ENDPOINT = f"http://127.0.0.1:{PORT}"
# The fixture stack (tools/localaws/fixtures/apis.yaml) serves its APIs on the next ports.
API_PORT, WS_PORT, WS_MGMT_PORT = PORT + 1, PORT + 2, PORT + 3
FIXTURE = REPO_ROOT / "tools/localaws/fixtures/apis.yaml"
FIXTURE_ECHO = "clanwar-selfcheck-api-echo"
FIXTURE_TICK = "clanwar-selfcheck-tick"
STATE_DIR = REPO_ROOT / ".localaws/selfcheck"
ECHO_SRC = Path("/tmp/echo-lambda")
ECHO_TARGET = Path("/tmp/echo-target")
ECHO_BIN_DIR = ECHO_TARGET / "debug"
ECHO = "echo-lambda"
REGION = "us-east-1"

ECHO_CARGO_TOML = """\
[package]
name = "echo-lambda"
version = "0.1.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
lambda_runtime = "1"
serde_json = "1"
tokio = { version = "1", features = ["macros", "rt-multi-thread", "time"] }
"""

ECHO_MAIN_RS = r"""//! Throwaway echo Lambda for the localaws self-check (built outside the project).
//! {"fail": {"type": T, "message": M}} -> error with error_type T; {"sleep_ms": N} -> sleeps;
//! {"exit": true} -> the process dies mid-invocation; an SQS event reports every record whose
//! body contains "fail-item" as a batch item failure; an API Gateway event (one with a
//! requestContext) gets a proxy answer {statusCode, headers, cookies, body: the echo} (query
//! deny -> 403 at $connect, status=N -> statusCode N, fail -> error; a body containing "fail"
//! -> error); anything else is echoed back.
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::{json, Value};

#[derive(Debug)]
struct EchoError {
    error_type: String,
    message: String,
}

impl From<EchoError> for Diagnostic {
    fn from(e: EchoError) -> Self {
        Diagnostic { error_type: e.error_type, error_message: e.message }
    }
}

fn sqs_answer(records: &[Value]) -> Value {
    let failures: Vec<Value> = records
        .iter()
        .filter(|r| r["body"].as_str().unwrap_or("").contains("fail-item"))
        .map(|r| json!({ "itemIdentifier": r["messageId"] }))
        .collect();
    json!({ "batchItemFailures": failures })
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, EchoError> {
    let (payload, ctx) = event.into_parts();
    println!("EVENT {payload}");
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if payload.get("exit").and_then(Value::as_bool) == Some(true) {
        std::process::exit(3);
    }
    if let Some(fail) = payload.get("fail") {
        let text = |k: &str| fail.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Err(EchoError { error_type: text("type"), message: text("message") });
    }
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        return Ok(sqs_answer(records));
    }
    let echo = json!({
        "echo": payload,
        "function": std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        "request_id": ctx.request_id,
        "greeting": std::env::var("GREETING").unwrap_or_default(),
        "pid": std::process::id(),
    });
    if payload.get("requestContext").is_some() {
        return proxy_answer(&payload, echo);
    }
    Ok(echo)
}

fn proxy_answer(payload: &Value, echo: Value) -> Result<Value, EchoError> {
    let query = &payload["queryStringParameters"];
    let body = payload["body"].as_str().unwrap_or("");
    if query.get("fail").is_some() || body.contains("\"fail\"") {
        return Err(EchoError { error_type: "EchoFailure".into(), message: "asked to fail".into() });
    }
    if payload["requestContext"]["eventType"] == "CONNECT" && query.get("deny").is_some() {
        return Ok(json!({ "statusCode": 403 }));
    }
    let status = query["status"].as_str().and_then(|s| s.parse::<u16>().ok()).unwrap_or(200);
    Ok(json!({
        "statusCode": status,
        "headers": { "content-type": "application/json", "x-echo-function": echo["function"] },
        "cookies": ["echo=1; Path=/"],
        "body": echo.to_string(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(handle)).await
}
"""

# A second template exercising the handlers the project template does not use yet.
EXTRA_TEMPLATE = """\
AWSTemplateFormatVersion: 2010-09-09
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: { Type: String, Default: selfcheck }
  Greeting: { Type: String, Default: hello-from-template }
Conditions:
  IsSelfcheck: !Equals [!Ref Stage, selfcheck]
Globals:
  Function:
    Timeout: 10
    Environment:
      Variables:
        GREETING: !Ref Greeting
Resources:
  InQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub clanwar-${Stage}-in
  EchoFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties: { Binary: echo-lambda }
    Properties:
      FunctionName: !Sub clanwar-${Stage}-echo
      CodeUri: .
      Handler: bootstrap
      Runtime: provided.al2023
      Environment:
        Variables:
          STAGE: !If [IsSelfcheck, yes-selfcheck, other]
      Events:
        In:
          Type: SQS
          Properties:
            Queue: !GetAtt InQueue.Arn
            BatchSize: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
  EchoMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: !Sub clanwar-${Stage}-echo-machine
      DefinitionUri: echo.asl.json
      DefinitionSubstitutions:
        EchoArn: !GetAtt EchoFunction.Arn
      Policies:
        - LambdaInvokePolicy: { FunctionName: !Ref EchoFunction }
Outputs:
  MachineArn:
    Value: !Ref EchoMachine
"""

EXTRA_ASL = {
    "StartAt": "CallEcho",
    "States": {
        "CallEcho": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${EchoArn}", "Payload.$": "$"},
            "ResultSelector": {"echo.$": "$.Payload"},
            "ResultPath": "$.CallEchoResult",
            "End": True,
        }
    },
}


# ----- harness -----------------------------------------------------------------------------


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            detail = fn()
        except Exception as exc:
            self.failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            if os.environ.get("SELFCHECK_TRACEBACK"):
                traceback.print_exc()
            return None
        self.passed += 1
        print(f"PASS {name}" + (f" ({detail})" if isinstance(detail, str) and detail else ""),
              flush=True)
        return detail


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def client(service: str) -> Any:
    return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def stack_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"AWS_ENDPOINT_URL": ENDPOINT, "LOCALAWS_STATE_DIR": str(STATE_DIR),
                "CLANWAR_BIN_DIR": str(ECHO_BIN_DIR), "AWS_REGION": REGION})
    env.pop("CLANWAR_STAGE", None)
    env.update(extra)
    return env


def localaws(command: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO_ROOT / "scripts/localaws.sh"), command], env=stack_env(**extra),
                          capture_output=True, text=True, timeout=120)


def resources() -> dict:
    return json.loads((STATE_DIR / "resources.json").read_text())


def build_echo_lambda() -> str:
    (ECHO_SRC / "src").mkdir(parents=True, exist_ok=True)
    for path, text in ((ECHO_SRC / "Cargo.toml", ECHO_CARGO_TOML),
                       (ECHO_SRC / "src/main.rs", ECHO_MAIN_RS)):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    env = dict(os.environ, CARGO_TARGET_DIR=str(ECHO_TARGET))
    result = subprocess.run(["cargo", "build", "--quiet"], cwd=ECHO_SRC, env=env,
                            capture_output=True, text=True, timeout=1800)
    check(result.returncode == 0, f"cargo build failed:\n{result.stderr[-3000:]}")
    check((ECHO_BIN_DIR / ECHO).is_file(), "echo binary missing after build")
    return str(ECHO_BIN_DIR / ECHO)


def lambda_processes() -> list[int]:
    """Pids of processes running the echo binary (from /proc, no ps parsing)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "exe").startswith(str(ECHO_BIN_DIR / ECHO)):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def run_execution(sfn: Any, definition: dict, payload: dict, role: str) -> dict:
    name = f"selfcheck-{uuid.uuid4().hex[:8]}"
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                   roleArn=role)["stateMachineArn"]
    return start_and_wait(sfn, arn, payload)


def start_and_wait(sfn: Any, machine_arn: str, payload: dict, timeout: float = 30) -> dict:
    execution = sfn.start_execution(stateMachineArn=machine_arn, name=uuid.uuid4().hex,
                                    input=json.dumps(payload))["executionArn"]
    return wait_for(
        lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d,
        timeout, "the execution to finish")


def invoke(payload: dict, function: str = ECHO) -> tuple[str | None, Any]:
    response = client("lambda").invoke(FunctionName=function, Payload=json.dumps(payload))
    return response.get("FunctionError"), json.loads(response["Payload"].read())


def queue_drained(sqs: Any, url: str) -> bool:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return attrs["ApproximateNumberOfMessages"] == "0" and \
        attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def function_log(function: str) -> str:
    path = STATE_DIR / "logs" / f"{function}.log"
    return path.read_text() if path.exists() else ""


def logged_events(function: str) -> list[dict]:
    """The events the echo binary printed (`EVENT {json}` lines of its log)."""
    events = []
    for line in function_log(function).splitlines():
        _, found, text = line.partition(" EVENT ")
        if found:
            try:
                events.append(json.loads(text))
            except ValueError:
                continue
    return events


def http_request(url: str, method: str, path: str, body: bytes | None = None,
                 headers: list[tuple[str, str]] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request (repeated headers allowed); (status, lower-cased headers, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(method, parts.path.rstrip("/") + path, skip_accept_encoding=True)
        for name, value in headers or []:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# ----- checks: the project template ------------------------------------------------------------


def check_up_with_stale_pid() -> str:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / "launcher.pid").write_text("999999\n")
    started = time.monotonic()
    result = localaws("up")
    check(result.returncode == 0, f"up failed: {result.stderr[-2000:]}")
    check(localaws("status").returncode == 0, "status does not report running")
    return f"ready in {time.monotonic() - started:.1f}s"


def check_table() -> str:
    name = resources()["resources"]["WarTable"]["Ref"]
    ddb = client("dynamodb")
    table = ddb.describe_table(TableName=name)["Table"]
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    check(set(indexes) == {"gsi1", "gsi2"}, f"GSIs are {sorted(indexes)}")
    check(indexes["gsi2"]["KeySchema"][1]["AttributeName"] == "gsi2sk", "gsi2 range key")
    check(table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST", "billing mode")
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    check(ttl.get("AttributeName") == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED",
          f"TTL {ttl}")
    pitr = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    check(pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED", "PITR")
    return name


def check_ddb_concurrent_transactions() -> str:
    """moto's DynamoDB is not thread-safe: the launcher serializes its requests."""
    from botocore.config import Config

    ddb = client("dynamodb")
    table = f"selfcheck-tx-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    threads_n, per_thread = 16, 50
    errors: list[str] = []

    def transact(tx: Any, item: str) -> None:
        tx.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": {"pk": {"S": "counter"}},
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": table, "Item": {"pk": {"S": item}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ])

    def worker(i: int) -> None:
        # No retries: a 500 must show, not be retried away by botocore.
        tx = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name=REGION,
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(retries={"total_max_attempts": 1}))
        try:
            for j in range(per_thread):
                try:
                    transact(tx, f"item-{i}-{j}")
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        finally:
            tx.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    check(not errors, f"{len(errors)} of {threads_n * per_thread} failed, first: {errors[:1]}")
    count = int(ddb.get_item(TableName=table, Key={"pk": {"S": "counter"}})["Item"]["n"]["N"])
    check(count == threads_n * per_thread, f"counter {count}, want {threads_n * per_thread}")
    try:
        transact(ddb, "item-0-0")  # the conditional put fails: the whole transaction is cancelled
        raise AssertionError("a put on an existing item passed attribute_not_exists")
    except ddb.exceptions.TransactionCanceledException:
        pass
    count = int(ddb.get_item(TableName=table, Key={"pk": {"S": "counter"}})["Item"]["n"]["N"])
    check(count == threads_n * per_thread, f"cancelled transaction changed the counter: {count}")
    ddb.delete_table(TableName=table)
    return f"{threads_n * per_thread} transactions in {elapsed:.1f}s"


def check_bus_to_fanout() -> str:
    state = resources()
    bus = state["outputs"]["EventBusName"]
    url = state["outputs"]["FanoutQueueUrl"]
    events, sqs = client("events"), client("sqs")
    marker = uuid.uuid4().hex
    for source in ("not-clanwar", "clanwar"):
        result = events.put_events(Entries=[{
            "EventBusName": bus, "Source": source, "DetailType": "SelfCheck",
            "Detail": json.dumps({"marker": marker, "source": source}),
        }])
        check(result["FailedEntryCount"] == 0, f"put_events failed: {result}")
    messages = wait_for(lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                    WaitTimeSeconds=1).get("Messages"),
                        10, "the event in the fanout queue")
    bodies = [json.loads(m["Body"]) for m in messages]
    check(any(b["detail"]["marker"] == marker and b["source"] == "clanwar" for b in bodies),
          f"event not found in {bodies}")
    check(all(b["source"] == "clanwar" for b in bodies), "a non-clanwar event was routed")
    return f"{len(bodies)} message(s)"


def check_sfn_wait_pass(role: str) -> str:
    started = time.monotonic()
    result = run_execution(client("stepfunctions"), {
        "StartAt": "WaitASecond",
        "States": {"WaitASecond": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
                   "Done": {"Type": "Pass", "Result": {"ok": True}, "End": True}},
    }, {}, role)
    elapsed = time.monotonic() - started
    check(result["status"] == "SUCCEEDED", f"status {result['status']}")
    check(json.loads(result["output"]) == {"ok": True}, f"output {result['output']}")
    check(elapsed >= 1.0, f"finished in {elapsed:.2f}s: the Wait state did not wait")
    return f"{elapsed:.1f}s"


def create_echo_function(role: str) -> str:
    client("lambda").create_function(
        FunctionName=ECHO, Runtime="provided.al2023", Handler="bootstrap", Role=role,
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18}, Timeout=5,
        Environment={"Variables": {"GREETING": "hi"}},
    )
    return ECHO


def check_direct_invoke() -> str:
    error, body = invoke({"hello": "world"})
    check(error is None, f"FunctionError {error}: {body}")
    check(body["echo"] == {"hello": "world"} and body["function"] == ECHO, f"body {body}")
    check(body["greeting"] == "hi", "function Environment not passed to the binary")
    return f"pid {body['pid']}"


def check_sfn_lambda_task(role: str) -> str:
    arn = client("lambda").get_function(FunctionName=ECHO)["Configuration"]["FunctionArn"]
    result = run_execution(client("stepfunctions"), {
        "StartAt": "CallEcho",
        "States": {
            "CallEcho": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                         "Parameters": {"FunctionName": arn, "Payload.$": "$"},
                         "ResultSelector": {"echo.$": "$.Payload.echo"},
                         "ResultPath": "$.CallEchoResult", "Next": "CallEchoByArn"},
            "CallEchoByArn": {"Type": "Task", "Resource": arn,
                              "ResultPath": "$.ByArnResult", "End": True},
        },
    }, {"war_id": "w-1"}, role)
    check(result["status"] == "SUCCEEDED", f"status {result['status']}: {result.get('cause')}")
    output = json.loads(result["output"])
    check(output["CallEchoResult"]["echo"] == {"war_id": "w-1"}, f"output {output}")
    check(output["ByArnResult"]["echo"]["war_id"] == "w-1", f"output {output}")
    return "lambda:invoke and plain ARN tasks"


def check_sfn_error_name(role: str) -> str:
    arn = client("lambda").get_function(FunctionName=ECHO)["Configuration"]["FunctionArn"]
    message = f"no war {uuid.uuid4().hex}"
    fail = {"fail": {"type": "WarNotFound", "message": message}}
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": arn, "Payload.$": "$"}}
    sfn = client("stepfunctions")
    caught = run_execution(sfn, {
        "StartAt": "CallEcho",
        "States": {
            "CallEcho": {**task, "Retry": [{"ErrorEquals": ["WarNotFound"], "MaxAttempts": 1,
                                            "IntervalSeconds": 1}],
                         "Catch": [{"ErrorEquals": ["SomethingElse"], "Next": "Wrong"},
                                   {"ErrorEquals": ["WarNotFound"], "ResultPath": "$.error",
                                    "Next": "Compensate"}],
                         "End": True},
            "Wrong": {"Type": "Fail", "Error": "WrongCatch"},
            "Compensate": {"Type": "Pass", "End": True},
        },
    }, fail, role)
    check(caught["status"] == "SUCCEEDED", f"Catch on WarNotFound did not run: {caught}")
    error = json.loads(caught["output"])["error"]
    check(error["Error"] == "WarNotFound", f"caught error {error}")
    check(json.loads(error["Cause"])["errorMessage"] == message, f"cause {error}")
    uncaught = run_execution(sfn, {"StartAt": "CallEcho",
                                   "States": {"CallEcho": {**task, "End": True}}}, fail, role)
    check(uncaught["status"] == "FAILED" and uncaught.get("error") == "WarNotFound",
          f"uncaught: {uncaught.get('status')} {uncaught.get('error')}")
    attempts = function_log(ECHO).count(message)
    check(attempts >= 3, f"expected 2 attempts (Retry) + 1, the log shows {attempts}")
    return "Catch/Retry on the Rust error_type"


def check_sqs_event_source(role: str) -> str:
    sqs, lam = client("sqs"), client("lambda")
    url = sqs.create_queue(QueueName="selfcheck-esm")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    early = f"early-{uuid.uuid4().hex}"
    sqs.send_message(QueueUrl=url, MessageBody=early)  # before the mapping: the poller drains it
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=ECHO, BatchSize=1)
    bodies = [f"msg-{i}-{uuid.uuid4().hex}" for i in range(3)]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    wait_for(lambda: queue_drained(sqs, url), 15, "the queue to drain")
    log_text = function_log(ECHO)
    missing = [b for b in [early, *bodies] if b not in log_text]
    check(not missing, f"not seen by the binary: {missing}")
    return "4 messages through the binary"


def check_sqs_batch_failures_to_dlq() -> str:
    sqs, lam = client("sqs"), client("lambda")
    dlq = sqs.create_queue(QueueName="selfcheck-esm-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="selfcheck-esm-partial", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=ECHO, BatchSize=1,
                                    FunctionResponseTypes=["ReportBatchItemFailures"])
    bad = f"fail-item-{uuid.uuid4().hex}"
    sqs.send_message(QueueUrl=url, MessageBody=bad)
    sqs.send_message(QueueUrl=url, MessageBody=f"good-{uuid.uuid4().hex}")
    dead = wait_for(lambda: sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages"),
                    20, "the failing message in the DLQ")
    check(dead[0]["Body"] == bad, f"DLQ holds {dead[0]['Body']}")
    wait_for(lambda: queue_drained(sqs, url), 10, "the source queue to drain")
    attempts = function_log(ECHO).count(bad)
    check(attempts == 2, f"failing message delivered {attempts} times, want maxReceiveCount=2")
    return "retried twice, then DLQ"


def check_concurrency() -> str:
    results: list[Any] = [None, None]

    def call(i: int) -> None:
        results[i] = invoke({"sleep_ms": 1500, "n": i})

    started = time.monotonic()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    check(all(r and r[0] is None for r in results), f"results {results}")
    pids = {r[1]["pid"] for r in results}
    check(len(pids) == 2, f"both calls ran in one process {pids}")
    check(elapsed < 2.8, f"2 x 1.5 s calls took {elapsed:.1f}s: not parallel")
    return f"{elapsed:.1f}s for 2 parallel 1.5 s calls"


def check_crash_restart() -> str:
    error, body = invoke({"exit": True})
    check(error is not None and body["errorType"] == "Runtime.ExitError", f"{error} {body}")
    error, body = invoke({"after": "crash"})
    check(error is None and body["echo"] == {"after": "crash"}, f"after crash: {error} {body}")
    return "Runtime.ExitError, then a fresh process"


def check_timeout() -> str:
    lam = client("lambda")
    lam.update_function_configuration(FunctionName=ECHO, Timeout=1)  # new config: new processes
    try:
        started = time.monotonic()
        error, body = invoke({"sleep_ms": 3000})
        elapsed = time.monotonic() - started
        check(error is not None and body["errorType"] == "Sandbox.Timedout", f"{error} {body}")
        check(elapsed < 2.5, f"timed out only after {elapsed:.1f}s")
        error, body = invoke({"after": "timeout"})
        check(error is None, f"after timeout: {error} {body}")
    finally:
        lam.update_function_configuration(FunctionName=ECHO, Timeout=5)
    return f"Sandbox.Timedout after {elapsed:.1f}s"


def check_missing_binary(role: str) -> str:
    client("lambda").create_function(
        FunctionName="no-such-binary", Runtime="provided.al2023", Handler="bootstrap", Role=role,
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18})
    error, body = invoke({}, function="no-such-binary")
    check(error is not None and body["errorType"] == "Runtime.InvalidEntrypoint", f"{body}")
    return body["errorType"]


def check_down_leaves_nothing() -> str:
    pid = int((STATE_DIR / "launcher.pid").read_text())
    check(lambda_processes(), "expected warm Lambda processes before down")
    result = localaws("down")
    check(result.returncode == 0, f"down failed: {result.stderr}")
    check(not Path(f"/proc/{pid}").exists(), f"launcher {pid} still running")
    leftovers = lambda_processes()
    check(not leftovers, f"Lambda processes left: {leftovers}")
    check(localaws("status").returncode == 3, "status still reports running")
    return "no launcher, no Lambda process"


def check_port_taken() -> str:
    with socket.socket() as blocker:
        # As servers do: earlier checks' connections may leave the port in TIME_WAIT.
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", PORT))
        blocker.listen()
        result = localaws("up")
    check(result.returncode != 0, "up succeeded on a taken port")
    check("already served by another process" in result.stderr, f"message: {result.stderr}")
    return "clear error"


# ----- checks: function/state machine provisioning (extra template) ----------------------------


def check_template_functions() -> str:
    work = Path("/tmp/localaws-selfcheck")
    work.mkdir(exist_ok=True)
    (work / "template.yaml").write_text(EXTRA_TEMPLATE)
    (work / "echo.asl.json").write_text(json.dumps(EXTRA_ASL, indent=2))
    result = localaws("up", LOCALAWS_TEMPLATE=str(work / "template.yaml"))
    check(result.returncode == 0, f"up failed: {result.stderr[-2000:]}")
    try:
        state = resources()
        function = state["resources"]["EchoFunction"]
        check(function["Ref"] == "clanwar-selfcheck-echo" and function["Binary"] == ECHO,
              f"function {function}")
        config = client("lambda").get_function(FunctionName=function["Ref"])["Configuration"]
        check(config["Timeout"] == 10, "Globals Timeout not applied")
        variables = config["Environment"]["Variables"]
        check(variables == {"GREETING": "hello-from-template", "STAGE": "yes-selfcheck"},
              f"Globals/own Environment merged wrong: {variables}")
        out = start_and_wait(client("stepfunctions"), state["outputs"]["MachineArn"], {"x": 1})
        check(out["status"] == "SUCCEEDED", f"execution {out}")
        echo = json.loads(out["output"])["CallEchoResult"]["echo"]
        check(echo["greeting"] == "hello-from-template" and echo["function"] == function["Ref"],
              f"echo {echo}")
        sqs = client("sqs")
        url = state["resources"]["InQueue"]["QueueUrl"]
        body = f"via-template-{uuid.uuid4().hex}"
        sqs.send_message(QueueUrl=url, MessageBody=body)
        wait_for(lambda: queue_drained(sqs, url), 10, "the template's SQS event to drain")
        check(body in function_log(function["Ref"]), "SQS event did not reach the binary")
    finally:
        localaws("down")
    return "Globals, Metadata binary, SQS event, DefinitionUri + substitutions"


# ----- checks: HTTP API, WebSocket API, schedules (fixtures/apis.yaml) -------------------------


def fixture_env() -> dict[str, str]:
    return {"LOCALAWS_TEMPLATE": str(FIXTURE), "CLANWAR_API_PORT": str(API_PORT),
            "CLANWAR_WS_PORT": str(WS_PORT), "CLANWAR_WS_MGMT_PORT": str(WS_MGMT_PORT),
            "LOCALAWS_SCHEDULE_SPEEDUP": "60"}


def check_fixture_up() -> str:
    result = localaws("up", **fixture_env())
    check(result.returncode == 0, f"up failed: {result.stderr[-2000:]}")
    state = resources()
    http_url = f"http://127.0.0.1:{API_PORT}"
    ws_url = f"ws://127.0.0.1:{WS_PORT}/selfcheck"
    mgmt_url = f"http://127.0.0.1:{WS_MGMT_PORT}/selfcheck"
    check(state["endpoints"] == {"aws": ENDPOINT, "http_api": http_url, "websocket": ws_url,
                                 "websocket_management": mgmt_url},
          f"endpoints {state['endpoints']}")
    check(state["resources"]["HttpApi"]["Url"] == http_url, f"{state['resources']['HttpApi']}")
    ws = state["resources"]["WebSocketApi"]
    check(ws["Url"] == ws_url and ws["ManagementUrl"] == mgmt_url, f"{ws}")
    check(state["outputs"] == {"HttpApiUrl": http_url, "WebSocketUrl": ws_url,
                               "WebSocketManagementUrl": mgmt_url},
          f"execute-api URLs in Outputs not made local: {state['outputs']}")
    variables = client("lambda").get_function(FunctionName=FIXTURE_ECHO)[
        "Configuration"]["Environment"]["Variables"]
    check(variables.get("WS_MANAGEMENT_ENDPOINT") == mgmt_url, f"function env {variables}")
    for line in ("HTTP_API " + http_url, "WEBSOCKET " + ws_url, "WEBSOCKET_MANAGEMENT " + mgmt_url):
        check(line in (STATE_DIR / "launcher.log").read_text(), f"{line!r} not in the log")
    return f"{http_url}, {ws_url}, {mgmt_url}"


def check_http_api_event() -> str:
    state = resources()
    body = json.dumps({"clan": "c-1"})
    status, headers, data = http_request(
        state["endpoints"]["http_api"], "POST", "/wars/w-42/join?x=1&x=2&y=", body.encode(),
        [("Content-Type", "application/json"), ("Cookie", "a=1; b=2"), ("X-Multi", "1"),
         ("X-Multi", "2"), ("User-Agent", "selfcheck-http")])
    check(status == 200, f"status {status}: {data[:300]!r}")
    check(headers.get("x-echo-function") == FIXTURE_ECHO, f"function headers lost: {headers}")
    check(headers.get("set-cookie") == "echo=1; Path=/", f"cookies not set: {headers}")
    check(headers.get("content-type") == "application/json", f"headers {headers}")
    answer = json.loads(data)
    check(answer["function"] == FIXTURE_ECHO, f"answer {answer}")
    event = answer["echo"]
    expected = {
        "version": "2.0", "routeKey": "POST /wars/{war_id}/join", "rawPath": "/wars/w-42/join",
        "rawQueryString": "x=1&x=2&y=", "queryStringParameters": {"x": "1,2", "y": ""},
        "pathParameters": {"war_id": "w-42"}, "cookies": ["a=1", "b=2"], "body": body,
        "isBase64Encoded": False,
    }
    wrong = {k: event.get(k) for k, v in expected.items() if event.get(k) != v}
    check(not wrong, f"event fields {wrong}, want {expected}")
    hdrs = event["headers"]
    check(all(k == k.lower() for k in hdrs), f"headers not lower-cased: {list(hdrs)}")
    check(hdrs.get("x-multi") == "1,2" and hdrs.get("content-type") == "application/json"
          and "cookie" not in hdrs, f"headers {hdrs}")
    ctx = event["requestContext"]
    want_ctx = {"accountId": "123456789012", "apiId": state["resources"]["HttpApi"]["Ref"],
                "routeKey": "POST /wars/{war_id}/join", "stage": "$default",
                "requestId": headers.get("apigw-requestid"),
                "domainName": f"127.0.0.1:{API_PORT}"}
    wrong = {k: ctx.get(k) for k, v in want_ctx.items() if ctx.get(k) != v}
    check(not wrong, f"requestContext fields {wrong}, want {want_ctx}")
    check(ctx["http"] == {"method": "POST", "path": "/wars/w-42/join", "protocol": "HTTP/1.1",
                          "sourceIp": "127.0.0.1", "userAgent": "selfcheck-http"},
          f"requestContext.http {ctx['http']}")
    check(isinstance(ctx["timeEpoch"], int) and abs(ctx["timeEpoch"] / 1000 - time.time()) < 60
          and ctx["time"].endswith(" +0000"), f"time {ctx['time']} / {ctx['timeEpoch']}")
    return "routeKey, pathParameters, query, headers, cookies, body, requestContext"


def check_http_api_routing() -> str:
    url = resources()["endpoints"]["http_api"]

    def route_of(method: str, path: str, **kw: Any) -> tuple[str, dict]:
        status, _, data = http_request(url, method, path, **kw)
        check(status == 200, f"{method} {path}: {status} {data[:200]!r}")
        event = json.loads(data)["echo"]
        return event["routeKey"], event.get("pathParameters") or {}

    check(route_of("GET", "/wars/mine") == ("GET /wars/mine", {}), "literal /wars/mine lost")
    check(route_of("GET", "/wars/w-7") == ("GET /wars/{war_id}", {"war_id": "w-7"}), "param")
    got = route_of("DELETE", "/files/a/b%20c/d")
    check(got == ("ANY /files/{proxy+}", {"proxy": "a/b c/d"}), f"greedy ANY route: {got}")
    for method, path in (("GET", "/nope"), ("GET", "/wars/w-7/join"), ("GET", "/wars"),
                         ("GET", "/wars/w-7/"), ("GET", "/files")):
        status, _, data = http_request(url, method, path)
        check(status == 404 and json.loads(data) == {"message": "Not Found"},
              f"{method} {path}: {status} {data!r}, want 404 Not Found")
    status, _, data = http_request(url, "GET", "/wars/w-7?status=418")
    check(status == 418 and json.loads(data)["echo"]["routeKey"] == "GET /wars/{war_id}",
          f"statusCode not applied: {status}")
    status, _, data = http_request(url, "GET", "/wars/w-7?fail=1")
    check(status == 500 and json.loads(data) == {"message": "Internal Server Error"},
          f"function error: {status} {data!r}")
    blob = bytes(range(256))
    status, _, data = http_request(url, "PUT", "/files/blob", blob,
                                   [("Content-Type", "application/octet-stream")])
    event = json.loads(data)["echo"]
    check(event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == blob,
          f"binary body: {event.get('isBase64Encoded')} {event.get('body', '')[:40]}")
    # A body over 10 MB: 413 as soon as the headers are read.
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /wars/w-7/join HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\n\r\n" % (10 * 1024 * 1024 + 1) + b"x" * 1024)
        reply = ""
        while '"}' not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk.decode("latin-1")
    check(reply.startswith("HTTP/1.1 413") and '{"message":"Request Entity Too Large"}' in reply,
          f"oversized body: {reply[:200]!r}")
    return "literal > {param} > {proxy+}, 404, 418, 500, base64, 413"


def check_http_api_named_stage() -> str:
    """In-process: a named stage prefixes every path; the answer without statusCode is JSON."""
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    from localaws.apigw import ApiRegistry, Route
    from localaws.http_api import HttpApiServer

    registry = ApiRegistry(http_port=0)
    api = registry.add_api("Api", "abc123", "HTTP", "api")
    registry.set_stage(api, "v1", {"flavour": "local"}, "Stage")
    for key in ("GET /items/{id}", "$default"):
        registry.add_route(api, Route(key, f"arn:aws:lambda:{REGION}:123456789012:function:f"), key)
    seen: list[dict] = []

    def invoke(arn: str, event: dict) -> tuple[str, bool]:
        seen.append(event)
        return json.dumps({"route": event["routeKey"]}), False  # no statusCode: 200, as JSON

    server = HttpApiServer(api, "127.0.0.1", 0, invoke)
    server.start()
    url = f"http://127.0.0.1:{server._server.server_address[1]}"
    try:
        status, headers, body = http_request(url, "GET", "/v1/items/7")
        check(status == 200 and json.loads(body) == {"route": "GET /items/{id}"}
              and headers.get("content-type") == "application/json", f"{status} {body!r}")
        event = seen[-1]
        check(event["rawPath"] == "/v1/items/7" and event["pathParameters"] == {"id": "7"}
              and event["requestContext"]["stage"] == "v1"
              and event["stageVariables"] == {"flavour": "local"}, f"event {event}")
        status, _, body = http_request(url, "POST", "/v1/anything/else")
        check(status == 200 and json.loads(body) == {"route": "$default"}, f"$default: {body!r}")
        status, _, _ = http_request(url, "GET", "/items/7")
        check(status == 404, f"a path without the stage: {status}")
    finally:
        server.stop()
    return "/v1 prefix, stageVariables, $default, answer without statusCode"


def mgmt_client(url: str) -> Any:
    return boto3.client("apigatewaymanagementapi", endpoint_url=url, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def check_websocket() -> str:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    state = resources()
    ws_url = state["endpoints"]["websocket"]
    mgmt_url = state["endpoints"]["websocket_management"]
    api_id = state["resources"]["WebSocketApi"]["Ref"]
    mgmt = mgmt_client(mgmt_url)
    with connect(ws_url + "?token=abc", user_agent_header="selfcheck-ws") as ws:
        # subscribe is a two-way route: the function's body comes back.
        message = json.dumps({"action": "subscribe", "war": "w-1"})
        ws.send(message)
        event = json.loads(ws.recv(timeout=15))["echo"]
        ctx = event["requestContext"]
        conn_id = ctx["connectionId"]
        want = {"routeKey": "subscribe", "eventType": "MESSAGE", "stage": "selfcheck",
                "apiId": api_id, "messageDirection": "IN"}
        wrong = {k: ctx.get(k) for k, v in want.items() if ctx.get(k) != v}
        check(not wrong and event["body"] == message and event["isBase64Encoded"] is False,
              f"MESSAGE event {event}")
        check(all(isinstance(ctx.get(k), int) for k in ("connectedAt", "requestTimeEpoch"))
              and ctx.get("messageId") and ctx.get("requestId"), f"requestContext {ctx}")
        connects = [e for e in logged_events(FIXTURE_ECHO)
                    if e.get("requestContext", {}).get("connectionId") == conn_id
                    and e["requestContext"].get("eventType") == "CONNECT"]
        check(len(connects) == 1, f"{len(connects)} CONNECT events for {conn_id}")
        connect_event = connects[0]
        check(connect_event["requestContext"]["routeKey"] == "$connect"
              and connect_event.get("queryStringParameters") == {"token": "abc"}
              and connect_event["headers"].get("User-Agent") == "selfcheck-ws"
              and connect_event["requestContext"]["connectedAt"] == ctx["connectedAt"],
              f"CONNECT event {connect_event}")
        # $default is one-way: nothing comes back.
        ws.send(json.dumps({"action": "no-such-route", "n": 1}))
        try:
            unexpected = ws.recv(timeout=1.5)
            raise AssertionError(f"one-way $default route answered {unexpected!r}")
        except TimeoutError:
            pass
        check(any(e.get("requestContext", {}).get("routeKey") == "$default"
                  and "no-such-route" in e.get("body", "") for e in logged_events(FIXTURE_ECHO)),
              "$default route not invoked")
        # Management API: the SDK (stage in the endpoint) and a plain POST without the stage.
        data = f"pushed-{uuid.uuid4().hex}"
        mgmt.post_to_connection(ConnectionId=conn_id, Data=data.encode())
        check(ws.recv(timeout=5) == data, "PostToConnection did not reach the client")
        status, _, _ = http_request(mgmt_url.rsplit("/", 1)[0], "POST",
                                    f"/@connections/{conn_id}", b"no-stage")
        check(status == 200 and ws.recv(timeout=5) == "no-stage", f"POST without stage: {status}")
        info = mgmt.get_connection(ConnectionId=conn_id)
        check(info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "selfcheck-ws"},
              f"GetConnection {info}")
        try:
            mgmt.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
            raise AssertionError("PostToConnection to an unknown connection succeeded")
        except mgmt.exceptions.GoneException as exc:
            check(exc.response["ResponseMetadata"]["HTTPStatusCode"] == 410, f"{exc.response}")
        status, _, body = http_request(mgmt_url, "POST", "/@connections/AAAAAAAAAAAAAAA=", b"x")
        check(status == 410 and json.loads(body) == {"message": "Gone"}, f"{status} {body!r}")
    # Closed by the client: $disconnect, then the connection is gone.
    disconnect = wait_for(lambda: [e for e in logged_events(FIXTURE_ECHO)
                                   if e.get("requestContext", {}).get("connectionId") == conn_id
                                   and e["requestContext"].get("eventType") == "DISCONNECT"],
                          10, "the DISCONNECT event")[0]
    check(disconnect["requestContext"]["routeKey"] == "$disconnect"
          and disconnect["requestContext"]["disconnectStatusCode"] == 1000,
          f"DISCONNECT event {disconnect}")
    try:
        mgmt.post_to_connection(ConnectionId=conn_id, Data=b"late")
        raise AssertionError("PostToConnection to a closed connection succeeded")
    except mgmt.exceptions.GoneException:
        pass
    # $connect answering 403 refuses the handshake.
    try:
        with connect(ws_url + "?deny=1"):
            raise AssertionError("a connection refused by $connect was opened")
    except InvalidStatus as exc:
        check(exc.response.status_code == 403, f"refused with {exc.response.status_code}")
    # DeleteConnection closes the client's connection and runs $disconnect.
    with connect(ws_url) as ws:
        ws.send(json.dumps({"action": "subscribe"}))
        other = json.loads(ws.recv(timeout=15))["echo"]["requestContext"]["connectionId"]
        mgmt.delete_connection(ConnectionId=other)
        try:
            ws.recv(timeout=5)
            raise AssertionError("the connection stayed open after DeleteConnection")
        except ConnectionClosed:
            pass
    wait_for(lambda: any(e.get("requestContext", {}).get("connectionId") == other
                         and e["requestContext"].get("eventType") == "DISCONNECT"
                         for e in logged_events(FIXTURE_ECHO)), 10, "$disconnect after delete")
    return "CONNECT/MESSAGE/DISCONNECT events, two-way reply, @connections POST/GET/DELETE, 410"


def check_schedules() -> str:
    events_api = client("events")
    rule = events_api.describe_rule(Name="clanwar-selfcheck-TickFunctionEveryMinute")
    check(rule["ScheduleExpression"] == "rate(1 minute)" and rule["State"] == "ENABLED", f"{rule}")

    def ticks() -> list[dict]:
        return [e for e in logged_events(FIXTURE_TICK) if e.get("detail-type") == "Scheduled Event"]

    fired = wait_for(lambda: len(ticks()) >= 2 and ticks(), 10, "two scheduled events (speedup 60)")
    event = fired[0]
    check(event["source"] == "aws.events" and event["detail"] == {} and event["version"] == "0"
          and event["resources"] == [rule["Arn"]] and event["account"] == "123456789012",
          f"scheduled event {event}")
    wait_for(lambda: any(e == {"tick": "custom-input"} for e in logged_events(FIXTURE_TICK)), 10,
             "the schedule with Input")
    check(not any(e == {"tick": "disabled"} for e in logged_events(FIXTURE_TICK)),
          "a disabled schedule fired")
    events_api.disable_rule(Name=rule["Name"])
    time.sleep(1.5)
    before = len(ticks())
    time.sleep(2.5)
    check(len(ticks()) == before, "the schedule still fires after DisableRule")
    return f"rate(1 minute) at speedup 60 fired {before}x, Input, Enabled: false, DisableRule"


def main() -> int:
    checks = Checks()
    if checks.run("echo lambda builds", build_echo_lambda) is None:
        print("0 passed, 1 failed")
        return 1
    localaws("down")  # a leftover selfcheck stack from an interrupted run
    shutil.rmtree(STATE_DIR / "logs", ignore_errors=True)  # checks count lines in these logs
    role_arn = "arn:aws:iam::123456789012:role/selfcheck"
    try:
        if checks.run("up (with a stale pid file)", check_up_with_stale_pid) is None:
            print(f"{checks.passed} passed, {checks.failed} failed")  # its output has the log tail
            return 1
        role_arn = client("iam").create_role(RoleName="selfcheck",
                                             AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        checks.run("table with gsi1, gsi2, TTL, PITR", check_table)
        checks.run("16 threads x 50 TransactWriteItems: no 500, exact count",
                   check_ddb_concurrent_transactions)
        checks.run("clanwar event on the bus lands in the fanout queue", check_bus_to_fanout)
        checks.run("state machine Wait 1s -> Pass succeeds", lambda: check_sfn_wait_pass(role_arn))
        create_echo_function(role_arn)
        checks.run("(a) direct invoke returns the binary's output", check_direct_invoke)
        checks.run("(b) lambda:invoke task gets the output", lambda: check_sfn_lambda_task(role_arn))
        checks.run("(c) Rust error_type is the Step Functions error name",
                   lambda: check_sfn_error_name(role_arn))
        checks.run("(d) SQS event source mapping drains the queue",
                   lambda: check_sqs_event_source(role_arn))
        checks.run("batch item failures are retried, then go to the DLQ",
                   check_sqs_batch_failures_to_dlq)
        checks.run("2 invocations run in parallel processes", check_concurrency)
        checks.run("a crashed process is replaced", check_crash_restart)
        checks.run("timeout kills the process", check_timeout)
        checks.run("missing binary is a clear error", lambda: check_missing_binary(role_arn))
        checks.run("down leaves no process", check_down_leaves_nothing)
    finally:
        localaws("down")
    checks.run("up fails clearly when the port is taken", check_port_taken)
    checks.run("template functions and state machines", check_template_functions)
    try:
        if checks.run("fixture with HTTP/WebSocket APIs and schedules is up, URLs local",
                      check_fixture_up) is not None:
            checks.run("HTTP API event (payload 2.0) and response", check_http_api_event)
            checks.run("HTTP API routing, errors and limits", check_http_api_routing)
            checks.run("HTTP API with a named stage (in-process)", check_http_api_named_stage)
            checks.run("WebSocket API and @connections", check_websocket)
            checks.run("schedules fire with the scheduled-event payload", check_schedules)
    finally:
        localaws("down")
    checks.run("no process left at the end", lambda: check(not lambda_processes(), "leftovers") or "")
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
