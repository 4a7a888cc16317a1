"""Offline validation of infra/template.yaml against the code (run by `make test`).

    .venv/bin/python tools/infra_check.py                      # every offline check
    .venv/bin/python tools/infra_check.py --against .localaws/test/resources.json [--local-only]
                                         # + the running local stack matches the template
                                         #   (resources, routes, queue mappings, schedules)
    .venv/bin/python tools/infra_check.py --expected-resources [--param Name=Value ...]
                                         # JSON: the logical ids the local stack must have
    .venv/bin/python tools/infra_check.py --self-test          # the checker's own checks

Offline checks (each failure says what is wrong and where):
  functions   functions/<pkg> <-> AWS::Serverless::Function with Metadata.BuildProperties.Binary
              <pkg>, BuildMethod rust-cargolambda, provided.al2023, arm64, Handler bootstrap
  workflows   statemachines/*.asl.json <-> DefinitionUri; every ${Name} substituted, every
              substitution used, no account id / region literal; the state machine's policies
              allow its Task resources (Lambda invoke, SQS send)
  iam         per function: an own AWS::IAM::Role (Role: !GetAtt; SAM's generated roles attach
              AWS managed policies with Resource "*"), no AWS managed policy; the actions its
              code calls (REQUIREMENTS below, keyed by what its src/*.rs constructs; the key
              prefixes where a path touches only some) and what Lambda itself needs (its own
              log group, its event sources, X-Ray) are allowed on the right resources (and keys,
              for grants with a dynamodb:LeadingKeys condition), nothing else is granted, a
              table grant used only by key-scoped paths carries the LeadingKeys condition, and
              no grant has Resource "*" but the WILDCARD_RESOURCE_ACTIONS
  routes      HttpApi events <-> docs/openapi.json operations, and each route is in the Rust
              route table (clanwar_edge::routes::all_routes) of the function serving it
  invoke      GameServerInvokePolicy / GuildServiceInvokePolicy / OperatorInvokePolicy (managed
              policies, exported): evaluated (Allow, explicit Deny) against every HttpApi route:
              game servers reach every route but /admin/* and PUT /clans/{clan_id}, the guild
              service only that upsert, operators only /admin/*
  secrets     no function variable named like a secret is a literal; such parameters NoEcho
  operations  every queue has a DLQ + redrive (or is one); every DLQ has a depth alarm; every
              function has a /aws/lambda/<FunctionName> log group with retention; every
              ClanWars alarm's metric is emitted by the Rust code; alarms notify AlarmTopic
Plain Python (stdlib + PyYAML through tools/localaws/cfn_yaml.py).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from localaws.cfn_yaml import load_template  # noqa: E402
from localaws.provisioner import HANDLERS, LOCAL_SKIP  # noqa: E402
from localaws.template import Physical, Stack, TemplateError  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
FUNCTION_TYPE = "AWS::Serverless::Function"
STATE_MACHINE_TYPES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")

# ----- what the code calls -------------------------------------------------------------------
#
# One row per thing a function's sources construct or call (matched as text in
# functions/<pkg>/src/*.rs). `needs`: (IAM action, resource kind); the kinds are resolved to ARNs
# from the function's own environment (TABLE_NAME, EVENT_BUS_NAME, *_STATE_MACHINE_ARN,
# WS_MANAGEMENT_ENDPOINT), so a policy on another table, bus or state machine does not count.
# Derived from shared/aws/src/*.rs (the adapters) and shared/edge/src/{config.rs,routes/*.rs}:
#   DynamoDbStore: GetItem, BatchGetItem, Query (table, gsi1, gsi2), PutItem, BatchWriteItem and
#     TransactWriteItems of Put / Update / Delete (IAM checks the item actions; no
#     ConditionCheck items are written, so no ConditionCheckItem).
#   EventBridgePublisher: PutEvents.  StepFunctionsWorkflows: StartExecution, StopExecution.
#   DynamoDbConnections: connect PutItem; subscribe PutItem + UpdateItem (and GetItem of the
#     connection's player; the war or clan and the war's clans through DynamoDbStore: GetItem,
#     BatchGetItem); disconnect GetItem + BatchWriteItem (deletes); subscribers Query (table).
#     ApiGatewayPusher: PostToConnection.
#   SecretsManagerSessionKeys (sessions_from_env): GetSecretValue of SESSION_KEY_SECRET_ARN.
STORE_ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                      "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem")


@dataclass(frozen=True)
class Requirement:
    marker: str  # regex searched in the function's src/*.rs
    why: str
    env: tuple[str, ...]  # environment variables the code requires with it
    needs: tuple[tuple[str, str], ...]  # (action, resource kind)
    # Partition-key prefixes of every item these calls touch (string constants of
    # shared/aws/src/keys.rs or the function's own sources); empty: any key (the store's
    # records of every kind). A policy may hold them to these with dynamodb:LeadingKeys.
    keys: tuple[str, ...] = ()
    # A marker that, also present, means the function uses another path instead (the relay
    # builds the same deps but calls only the outbox port).
    excluded_by: str | None = None


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        r"\bdeps_from_env\(", "deps_from_env(): DynamoDbStore (+ an EventBridgePublisher that "
        "only the outbox relay calls)",
        ("TABLE_NAME", "EVENT_BUS_NAME"),
        tuple((a, "table") for a in STORE_ITEM_ACTIONS)
        + (("dynamodb:Query", "table"), ("dynamodb:Query", "indexes")),
        excluded_by=r"\bclanwar_edge::outbox::",
    ),
    Requirement(
        r"\bclanwar_edge::outbox::", "the outbox relay: publishes the outbox's events (every "
        "other function only writes them to the table)", ("EVENT_BUS_NAME",),
        (("events:PutEvents", "bus"),),
    ),
    Requirement(
        r"\bclanwar_edge::outbox::", "the outbox relay's outbox port (shared/aws/src/outbox.rs, "
        "services/outbox.rs deliver/relay): the sweep's Query of each partition, moving an "
        "entry to its partition (TransactWriteItems Put + Delete), deleting published entries "
        "(BatchWriteItem)", ("TABLE_NAME",),
        tuple((a, "table") for a in ("dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem",
                                     "dynamodb:BatchWriteItem")),
        keys=("OUTBOX#",),
    ),
    Requirement(
        r"\broutes::wars::", "routes::wars: declarations start the declare-war saga (with_"
        "declaration_saga), its StartLifecycle step the lifecycle, its compensation stops it",
        ("DECLARE_WAR_STATE_MACHINE_ARN", "LIFECYCLE_STATE_MACHINE_ARN",
         "REWARDS_STATE_MACHINE_ARN"),
        (("states:StartExecution", "sm:DECLARE_WAR_STATE_MACHINE_ARN"),
         ("states:StartExecution", "sm:LIFECYCLE_STATE_MACHINE_ARN"),
         ("states:StopExecution", "exec:LIFECYCLE_STATE_MACHINE_ARN")),
    ),
    Requirement(
        r"\broutes::phases::", "routes::phases: a declaration's event makes sure its saga runs; "
        "a war's end starts the reward saga and stops the lifecycle after a surrender or "
        "cancellation",
        ("DECLARE_WAR_STATE_MACHINE_ARN", "LIFECYCLE_STATE_MACHINE_ARN",
         "REWARDS_STATE_MACHINE_ARN"),
        (("states:StartExecution", "sm:DECLARE_WAR_STATE_MACHINE_ARN"),
         ("states:StartExecution", "sm:REWARDS_STATE_MACHINE_ARN"),
         ("states:StopExecution", "exec:LIFECYCLE_STATE_MACHINE_ARN")),
    ),
    Requirement(
        r"\broutes::realtime::handle_ws\b", "realtime_from_env() + handle_ws: connect PutItem "
        "(the connection), subscribe PutItem (the subscription), disconnect BatchWriteItem "
        "(deletes of both)", ("TABLE_NAME", "WS_MANAGEMENT_ENDPOINT"),
        (("dynamodb:PutItem", "table"), ("dynamodb:BatchWriteItem", "table")),
        keys=("WSCONN#", "WSTOPIC#"),
    ),
    Requirement(
        r"\broutes::realtime::handle_ws\b", "handle_ws: the connection's player and topics "
        "(GetItem in subscribe and disconnect), its topics (UpdateItem in subscribe)",
        ("TABLE_NAME",), (("dynamodb:GetItem", "table"), ("dynamodb:UpdateItem", "table")),
        keys=("WSCONN#",),
    ),
    Requirement(
        r"\broutes::realtime::handle_ws\b", "handle_ws subscribe: the war or clan subscribed "
        "to (DynamoDbStore GetItem) and the war's clans (BatchGetItem), Realtime::subscribe",
        ("TABLE_NAME",),
        (("dynamodb:GetItem", "table"), ("dynamodb:BatchGetItem", "table")),
        keys=("WAR#", "CLAN#"),
    ),
    Requirement(
        r"\bsessions_from_env\(", "sessions_from_env(): the session signing keys "
        "(SecretsManagerSessionKeys)", ("SESSION_KEY_SECRET_ARN",),
        (("secretsmanager:GetSecretValue", "secret"),),
    ),
    Requirement(
        r"\broutes::realtime::fan_out\b", "realtime_from_env() + fan_out: subscribers (Query "
        "of a topic's partition)", ("TABLE_NAME", "WS_MANAGEMENT_ENDPOINT"),
        (("dynamodb:Query", "table"),), keys=("WSTOPIC#",),
    ),
    Requirement(
        r"\broutes::realtime::fan_out\b", "fan_out: forgetting a gone connection (GetItem of "
        "its topics)", ("TABLE_NAME",), (("dynamodb:GetItem", "table"),), keys=("WSCONN#",),
    ),
    Requirement(
        r"\broutes::realtime::fan_out\b", "fan_out: forgetting a gone connection "
        "(BatchWriteItem deletes of it and its subscriptions)", ("TABLE_NAME",),
        (("dynamodb:BatchWriteItem", "table"),), keys=("WSCONN#", "WSTOPIC#"),
    ),
    Requirement(
        r"\broutes::realtime::fan_out\b", "fan_out: pushes (PostToConnection)",
        ("WS_MANAGEMENT_ENDPOINT",), (("execute-api:ManageConnections", "connections"),),
    ),
    Requirement(
        r"\bDynamoDbLedger\b", "economy-simulator ledger (functions/economy-simulator/src/"
        "ledger.rs): reads and counts of its entries (ECON#) and failure switches (ECONCFG#)",
        ("TABLE_NAME",), (("dynamodb:GetItem", "table"), ("dynamodb:UpdateItem", "table")),
        keys=("ECON#", "ECONCFG#"),
    ),
    Requirement(
        r"\bDynamoDbLedger\b", "economy-simulator ledger: a grant's new entry (PutItem ECON#)",
        ("TABLE_NAME",), (("dynamodb:PutItem", "table"),), keys=("ECON#",),
    ),
    Requirement(
        r"\.send_task_success\(\)", "answers task tokens (SendTaskSuccess)", (),
        (("states:SendTaskSuccess", "*"),),
    ),
    Requirement(
        r"\.send_task_failure\(\)", "answers task tokens (SendTaskFailure)", (),
        (("states:SendTaskFailure", "*"),),
    ),
)

# Actions a function policy may grant on Resource "*", each with the reason: they have no
# resource-level permissions (Service Authorization Reference), or the resource is unknowable.
# Any other action on "*" fails the check.
WILDCARD_RESOURCE_ACTIONS: dict[str, str] = {
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions (Tracing: Active)",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions (Tracing: Active)",
    "states:SendTaskSuccess": "a task token of a service integration (the reward saga's "
                              "sqs:sendMessage.waitForTaskToken) names no resource IAM can scope",
    "states:SendTaskFailure": "as SendTaskSuccess",
}

# What Lambda itself does with a function's role, per event source type: (action, resource
# attribute of the source). Only what the service needs: AWS's managed execution roles grant
# the same actions on "*".
EVENT_SOURCE_NEEDS: dict[str, tuple[str, ...]] = {
    "SQS": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
    "DynamoDB": ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                 "dynamodb:ListStreams"),
}
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
TRACING_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
# Where the key prefixes of REQUIREMENTS are defined (besides the function's own sources).
KEY_SOURCES = ("shared/aws/src/keys.rs",)

# Excess grants the checker reports as warnings instead of failures, for resources another
# piece of work owns (logical id -> why). Remove an entry once its policy is exact.
LEAST_PRIVILEGE_PENDING: dict[str, str] = {}

# ----- SAM policy templates (samtranslator/policy_templates_data/policy_templates.json) ------
_ARN = "arn:${AWS::Partition}:%s:${AWS::Region}:${AWS::AccountId}:%s"
POLICY_TEMPLATES: dict[str, tuple[str, list[tuple[list[str], list[str]]]]] = {
    # name: (parameter, [(actions, resource patterns with ${p} = the parameter's value)])
    "DynamoDBCrudPolicy": ("TableName", [(
        ["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan",
         "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
         "dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"],
        [_ARN % ("dynamodb", "table/${p}"), _ARN % ("dynamodb", "table/${p}/index/*")])]),
    "DynamoDBReadPolicy": ("TableName", [(
        ["dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem",
         "dynamodb:DescribeTable"],
        [_ARN % ("dynamodb", "table/${p}"), _ARN % ("dynamodb", "table/${p}/index/*")])]),
    "DynamoDBWritePolicy": ("TableName", [(
        ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"],
        [_ARN % ("dynamodb", "table/${p}"), _ARN % ("dynamodb", "table/${p}/index/*")])]),
    "EventBridgePutEventsPolicy": ("EventBusName", [(
        ["events:PutEvents"], [_ARN % ("events", "event-bus/${p}")])]),
    "SQSPollerPolicy": ("QueueName", [(
        ["sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch", "sqs:DeleteMessage",
         "sqs:DeleteMessageBatch", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
        [_ARN % ("sqs", "${p}")])]),
    "SQSSendMessagePolicy": ("QueueName", [(["sqs:SendMessage*"], [_ARN % ("sqs", "${p}")])]),
    "StepFunctionsExecutionPolicy": ("StateMachineName", [(
        ["states:StartExecution"], [_ARN % ("states", "stateMachine:${p}")])]),
    "LambdaInvokePolicy": ("FunctionName", [(
        ["lambda:InvokeFunction"], [_ARN % ("lambda", "function:${p}*")])]),
    "SNSPublishMessagePolicy": ("TopicName", [(["sns:Publish"], [_ARN % ("sns", "${p}")])]),
}

# Step Functions service integrations -> (IAM action, how to find the resource in Parameters).
TASK_INTEGRATIONS = {
    "arn:aws:states:::lambda:invoke": ("lambda:InvokeFunction", "FunctionName"),
    "arn:aws:states:::lambda:invoke.waitForTaskToken": ("lambda:InvokeFunction", "FunctionName"),
    "arn:aws:states:::sqs:sendMessage": ("sqs:SendMessage", "QueueUrl"),
    "arn:aws:states:::sqs:sendMessage.waitForTaskToken": ("sqs:SendMessage", "QueueUrl"),
    "arn:aws:states:::events:putEvents": ("events:PutEvents", None),
}

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")
_ACCOUNT_LITERAL = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")
_REGION_LITERAL = re.compile(
    r"\b(?:us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov)-(?:north|south|east|west|central|northeast|"
    r"southeast|northwest|southwest)-[0-9]\b")


# ----- reporting -----------------------------------------------------------------------------

@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passes: list[str] = field(default_factory=list)

    def check(self, section: str, ok: bool, message: str) -> bool:
        (self.passes if ok else self.failures).append(f"[{section}] {message}")
        return ok

    def fail(self, section: str, message: str) -> None:
        self.failures.append(f"[{section}] {message}")

    def warn(self, section: str, message: str) -> None:
        self.warnings.append(f"[{section}] {message}")

    def print(self, verbose: bool) -> None:
        if verbose:
            for line in self.passes:
                print(f"PASS {line}")
        for line in self.warnings:
            print(f"WARN {line}")
        for line in self.failures:
            print(f"FAIL {line}")
        print(f"infra_check: {len(self.passes)} passed, {len(self.warnings)} warnings, "
              f"{len(self.failures)} failed")


# ----- a symbolic stack: every resource gets deterministic physical ids ----------------------

class _AnyAttrs(dict):
    """GetAtt of an attribute nobody modelled still resolves (to '<LogicalId>.<Attr>')."""

    def __init__(self, logical_id: str, attrs: dict[str, str]):
        super().__init__(attrs)
        self.logical_id = logical_id

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return f"{self.logical_id}.{key}"


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def symbolic_stack(template: dict, parameters: dict[str, str] | None = None) -> Stack:
    """The template evaluated as if deployed to account 123456789012 / us-east-1: every
    resource (enabled or not) has a Physical whose Ref/GetAtt values are real-looking ARNs,
    names and URLs, so policies and environments resolve to comparable strings."""
    stack = Stack(template, parameters=parameters or {}, region=REGION, account_id=ACCOUNT,
                  stack_name=f"clanwar-{(parameters or {}).get('Stage', 'dev')}")
    stack.stack_name = f"clanwar-{stack.parameters.get('Stage', 'dev')}"
    pending = list(stack.resources)
    for _ in range(5):  # names may refer to other resources: a few passes settle them
        retry = []
        for logical_id in pending:
            try:
                stack.created[logical_id] = _physical(stack, logical_id)
            except TemplateError:
                retry.append(logical_id)
        pending = retry
        if not pending:
            break
    for logical_id in pending:  # unresolvable names: fall back to the logical id
        stack.created[logical_id] = Physical(stack.resources[logical_id]["Type"], logical_id,
                                             _AnyAttrs(logical_id, {}))
    return stack


def _physical(stack: Stack, logical_id: str) -> Physical:
    resource = stack.resources[logical_id]
    kind = resource["Type"]
    props = resource.get("Properties") or {}

    def name(key: str) -> str:
        return str(stack.resolve(props[key])) if key in props else \
            f"{stack.stack_name}-{logical_id}"

    attrs: dict[str, str]
    if kind == "AWS::DynamoDB::Table":
        n = name("TableName")
        ref, attrs = n, {"Arn": _arn("dynamodb", f"table/{n}"),
                         "StreamArn": _arn("dynamodb", f"table/{n}/stream/local")}
    elif kind == "AWS::SQS::Queue":
        n = name("QueueName")
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{n}"
        ref, attrs = url, {"Arn": _arn("sqs", n), "QueueName": n, "QueueUrl": url}
    elif kind == "AWS::Events::EventBus":
        n = name("Name")
        ref, attrs = n, {"Arn": _arn("events", f"event-bus/{n}"), "Name": n}
    elif kind == "AWS::Events::Rule":
        n = name("Name")
        ref, attrs = n, {"Arn": _arn("events", f"rule/{n}")}
    elif kind == FUNCTION_TYPE:
        n = name("FunctionName")
        ref, attrs = n, {"Arn": _arn("lambda", f"function:{n}")}
    elif kind in STATE_MACHINE_TYPES:
        n = name("Name") if "Name" in props else name("StateMachineName")
        arn = _arn("states", f"stateMachine:{n}")
        ref, attrs = arn, {"Arn": arn, "Name": n}
    elif kind in ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"):
        api_id = re.sub(r"[^a-z0-9]", "", logical_id.lower())[:10]
        ref, attrs = api_id, {"ApiId": api_id,
                              "ApiEndpoint": f"https://{api_id}.execute-api.{REGION}.amazonaws.com"}
    elif kind == "AWS::SNS::Topic":
        n = name("TopicName")
        ref, attrs = _arn("sns", n), {"TopicArn": _arn("sns", n), "TopicName": n}
    elif kind == "AWS::Logs::LogGroup":
        n = name("LogGroupName")
        ref, attrs = n, {"Arn": _arn("logs", f"log-group:{n}:*")}
    elif kind == "AWS::IAM::ManagedPolicy":
        ref, attrs = f"arn:aws:iam::{ACCOUNT}:policy/{logical_id}", {}
    else:
        ref, attrs = logical_id, {"Arn": _arn(kind.split("::")[1].lower(), logical_id)}
    return Physical(kind, ref, _AnyAttrs(logical_id, attrs))


# ----- IAM -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grant:
    action: str  # may contain wildcards
    resource: str  # may contain wildcards
    source: str  # where in the template
    # A dynamodb:LeadingKeys pattern (StringLike) the item's partition key must match; None:
    # no condition. A statement with several patterns becomes one grant per pattern.
    leading_key: str | None = None

    def allows(self, action: str, resource: str, key: str | None = None) -> bool:
        """Whether this grant allows `action` on `resource` for an item with partition key
        `key` (None: any key, which a key-conditioned grant never covers)."""
        if self.leading_key is not None and (key is None or
                                             not _iam_match(self.leading_key, key)):
            return False
        return _iam_match(self.action.lower(), action.lower()) and \
            _iam_match(self.resource, resource)


def _iam_match(pattern: str, value: str) -> bool:
    # IAM wildcards: * any run of characters (':' and '/' included), ? one character.
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def policy_grants(stack: Stack, policies: Any, owner: str) -> tuple[list[Grant], list[str]]:
    """The Allow grants of a SAM `Policies` value; unknown forms are returned as errors."""
    grants: list[Grant] = []
    errors: list[str] = []
    for index, policy in enumerate(_as_list(stack.resolve(policies or []))):
        where = f"{owner}.Policies[{index}]"
        if isinstance(policy, str):
            managed = _managed_policy(stack, policy)
            if managed is None:
                errors.append(f"{where}: managed policy {policy!r} cannot be checked (use a "
                              "policy template, an inline Statement or an AWS::IAM::"
                              "ManagedPolicy of this template)")
                continue
            logical_id, document = managed
            grants += _statement_grants(document, f"{where} ({logical_id})", errors)
        elif isinstance(policy, dict) and "Statement" in policy:
            grants += _statement_grants(policy, where, errors)
        elif isinstance(policy, dict) and len(policy) == 1:
            (name, params), = policy.items()
            if name not in POLICY_TEMPLATES:
                errors.append(f"{where}: SAM policy template {name} is not in the checker's "
                              "POLICY_TEMPLATES (add its documented actions there)")
                continue
            param, statements = POLICY_TEMPLATES[name]
            value = str((params or {}).get(param, ""))
            for actions, resources in statements:
                for action in actions:
                    for pattern in resources:
                        resource = pattern.replace("${AWS::Partition}", "aws") \
                            .replace("${AWS::Region}", REGION) \
                            .replace("${AWS::AccountId}", ACCOUNT).replace("${p}", value)
                        grants.append(Grant(action, resource, f"{where} ({name})"))
        else:
            errors.append(f"{where}: unrecognised policy {policy!r}")
    return grants, errors


def _managed_policy(stack: Stack, arn: str) -> tuple[str, dict] | None:
    for logical_id, physical in stack.created.items():
        if physical.type == "AWS::IAM::ManagedPolicy" and physical.ref == arn:
            props = stack.resources[logical_id].get("Properties") or {}
            return logical_id, stack.resolve(props.get("PolicyDocument") or {})
    return None


def _statement_grants(document: dict, where: str, errors: list[str]) -> list[Grant]:
    grants = []
    for number, statement in enumerate(_as_list(document.get("Statement") or [])):
        if statement.get("Effect") != "Allow":
            errors.append(f"{where}.Statement[{number}]: only Allow statements are expected")
            continue
        if "NotAction" in statement or "NotResource" in statement:
            errors.append(f"{where}.Statement[{number}]: NotAction/NotResource cannot be "
                          "checked")
            continue
        keys: list[str | None] = [None]
        condition = statement.get("Condition")
        if condition is not None:
            keys = _leading_keys(condition)
            if not keys:
                errors.append(f"{where}.Statement[{number}]: Condition {condition!r} cannot be "
                              "checked (only ForAllValues:StringLike / StringEquals on "
                              "dynamodb:LeadingKeys)")
                continue
        for action in _as_list(statement.get("Action") or []):
            for resource in _as_list(statement.get("Resource") or []):
                for key in keys:
                    grants.append(Grant(str(action), str(resource),
                                        f"{where}.Statement[{number}]", key))
    return grants


def _leading_keys(condition: Any) -> list[str | None]:
    """The dynamodb:LeadingKeys patterns of a Condition, or [] if it is anything else."""
    if not isinstance(condition, dict) or len(condition) != 1:
        return []
    (operator, clause), = condition.items()
    if operator not in ("ForAllValues:StringLike", "ForAllValues:StringEquals") or \
            not isinstance(clause, dict) or set(clause) != {"dynamodb:LeadingKeys"}:
        return []
    patterns = [str(p) for p in _as_list(clause["dynamodb:LeadingKeys"])]
    if operator.endswith("StringEquals"):  # literal: escape the wildcards of the matcher
        patterns = [re.sub(r"([*?\[])", r"[\1]", p) for p in patterns]
    return patterns


def _function_sources(package_dir: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8")
                     for p in sorted((package_dir / "src").rglob("*.rs")))


def _needed_resources(kind: str, env: dict[str, str], stack: Stack) -> list[str]:
    """ARNs (samples for patterns: an execution, a connection, an index) for a resource kind."""
    if kind == "*":
        return ["*"]
    if kind in ("table", "indexes"):
        table = env.get("TABLE_NAME", "<no TABLE_NAME>")
        if kind == "table":
            return [_arn("dynamodb", f"table/{table}")]
        indexes = []
        for logical_id, resource in stack.resources.items():
            if resource["Type"] == "AWS::DynamoDB::Table" and \
                    stack.created[logical_id].ref == table:
                props = resource.get("Properties") or {}
                indexes = [g["IndexName"] for g in props.get("GlobalSecondaryIndexes") or []]
                indexes += [g["IndexName"] for g in props.get("LocalSecondaryIndexes") or []]
        return [_arn("dynamodb", f"table/{table}/index/{i}") for i in indexes]
    if kind == "bus":
        bus = env.get("EVENT_BUS_NAME", "<no EVENT_BUS_NAME>").split("/")[-1]
        return [_arn("events", f"event-bus/{bus}")]
    if kind.startswith("sm:"):
        return [env.get(kind[3:], f"<no {kind[3:]}>")]
    if kind.startswith("exec:"):
        arn = env.get(kind[5:], f"<no {kind[5:]}>")
        return [arn.replace(":stateMachine:", ":execution:", 1) + ":war-1"]
    if kind == "secret":
        return [env.get("SESSION_KEY_SECRET_ARN", "<no SESSION_KEY_SECRET_ARN>")]
    if kind == "connections":
        endpoint = env.get("WS_MANAGEMENT_ENDPOINT", "")
        match = re.fullmatch(r"https://([^.]+)\.execute-api\.([^.]+)\.amazonaws\.com/([^/]+)/?",
                             endpoint)
        if not match:
            return [f"<WS_MANAGEMENT_ENDPOINT {endpoint!r} is not https://{{api}}.execute-api."
                    "{region}.amazonaws.com/{stage}>"]
        api, region, stage = match.groups()
        return [f"arn:aws:execute-api:{region}:{ACCOUNT}:{api}/{stage}/POST/@connections/c1"]
    raise ValueError(f"unknown resource kind {kind}")


def role_grants(stack: Stack, role_id: str, owner: str) -> tuple[list[Grant], list[str]]:
    """The Allow grants of a template AWS::IAM::Role: its ManagedPolicyArns (policies of this
    template only: an AWS managed policy cannot be checked and grants on "*") and its inline
    Policies."""
    grants: list[Grant] = []
    errors: list[str] = []
    props = stack.resources[role_id].get("Properties") or {}
    for index, arn in enumerate(_as_list(stack.resolve(props.get("ManagedPolicyArns") or []))):
        where = f"{owner} role {role_id}.ManagedPolicyArns[{index}]"
        managed = _managed_policy(stack, str(arn))
        if managed is None:
            errors.append(f"{where}: {arn!r} is not an AWS::IAM::ManagedPolicy of this template "
                          "(AWS managed policies grant their actions on Resource \"*\")")
            continue
        logical_id, document = managed
        grants += _statement_grants(document, f"{where} ({logical_id})", errors)
    for index, policy in enumerate(_as_list(stack.resolve(props.get("Policies") or []))):
        where = f"{owner} role {role_id}.Policies[{index}]"
        if not isinstance(policy, dict) or "PolicyDocument" not in policy:
            errors.append(f"{where}: unrecognised inline policy {policy!r}")
            continue
        grants += _statement_grants(policy["PolicyDocument"], where, errors)
    if props.get("PermissionsBoundary") is not None:
        errors.append(f"{owner} role {role_id}: PermissionsBoundary cannot be checked")
    return grants, errors


def function_role(stack: Stack, logical_id: str, raw_props: dict) -> tuple[str | None, str]:
    """The template role a function runs with, or None and why not."""
    role = raw_props.get("Role")
    if role is None:
        return None, ("no Role: SAM would generate one with AWS managed policies granting on "
                      "Resource \"*\" (AWSLambdaBasicExecutionRole; AWSXrayWriteOnlyAccess with "
                      "Tracing; AWSLambdaSQSQueueExecutionRole / AWSLambdaDynamoDBExecutionRole "
                      "for its event sources) - give it Role: !GetAtt <its AWS::IAM::Role>.Arn")
    target = role.get("Fn::GetAtt") if isinstance(role, dict) else None
    if isinstance(target, str):
        target = target.split(".", 1)
    if not (isinstance(target, list) and len(target) == 2 and target[1] == "Arn"
            and stack.resources.get(target[0], {}).get("Type") == "AWS::IAM::Role"):
        return None, f"Role {role!r} is not !GetAtt <an AWS::IAM::Role of this template>.Arn"
    role_id = target[0]
    if stack.resources[role_id].get("Condition") != stack.resources[logical_id].get("Condition"):
        return None, f"its role {role_id} has another Condition than the function"
    return role_id, ""


def runtime_needs(stack: Stack, logical_id: str, props: dict) -> list[tuple[str, str, str]]:
    """What Lambda itself does with the function's role: write its own log group, read its
    event sources, send to a stream source's on-failure destination, send traces."""
    needs = []
    name = stack.created[logical_id].ref
    group = f"/aws/lambda/{name}"
    stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:2026/01/01/[$LATEST]x"
    for action in LOG_ACTIONS:
        needs.append((action, stream, f"Lambda writes the function's logs to {group}"))
    if props.get("Tracing") == "Active":
        for action in TRACING_ACTIONS:
            needs.append((action, "*", "Tracing: Active (X-Ray)"))
    for event_id, event in (props.get("Events") or {}).items():
        kind = event.get("Type")
        if kind not in EVENT_SOURCE_NEEDS:
            continue
        source = (event.get("Properties") or {}).get("Queue" if kind == "SQS" else "Stream")
        arn = str(stack.resolve(source))
        for action in EVENT_SOURCE_NEEDS[kind]:
            needs.append((action, arn, f"the {kind} event source {event_id}"))
        failure = (((event.get("Properties") or {}).get("DestinationConfig") or {})
                   .get("OnFailure") or {})
        if failure.get("Type") == "SQS":
            needs.append(("sqs:SendMessage", str(stack.resolve(failure.get("Destination"))),
                          f"the on-failure destination of {event_id}"))
    return needs


def _key_defined(prefix: str, sources: str, root: Path) -> bool:
    """Whether a key prefix is a string constant of the key design or the function's code."""
    texts = [sources] + [(root / p).read_text(encoding="utf-8") for p in KEY_SOURCES
                         if (root / p).is_file()]
    return any(f'"{prefix}' in text for text in texts)


def check_iam(template: dict, report: Report, root: Path = ROOT) -> None:
    stack = symbolic_stack(template)
    merged = Stack(template)  # Globals merged into the functions (Tracing)
    for logical_id, resource in stack.resources.items():
        if resource["Type"] != FUNCTION_TYPE:
            continue
        binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        package_dir = root / "functions" / str(binary)
        if not (package_dir / "src").is_dir():
            continue  # reported by the functions check
        sources = _function_sources(package_dir)
        props = resource.get("Properties") or {}
        env = {k: str(v) for k, v in (stack.resolve(
            (props.get("Environment") or {}).get("Variables") or {})).items()}
        who = f"{logical_id} ({binary})"
        role_id, why_not = function_role(stack, logical_id, props)
        if not report.check("iam", role_id is not None,
                            f"{who} runs with its own role" + (f" - {why_not}" if why_not
                                                                else f" ({role_id})")):
            continue
        if props.get("Policies") is not None:
            report.fail("iam", f"{who}: Policies are ignored when Role is set - move them to "
                               f"{role_id}")
        grants, errors = role_grants(stack, role_id, logical_id)
        for error in errors:
            report.fail("iam", error)
        # (action, resource, partition key sample or None, why)
        needs: list[tuple[str, str, str | None, str]] = []
        keyed_only: dict[tuple[str, str], bool] = {}  # (action, arn) -> every need is keyed
        for req in REQUIREMENTS:
            if not re.search(req.marker, sources):
                continue
            if req.excluded_by and re.search(req.excluded_by, sources):
                continue
            for var in req.env:
                report.check("iam", var in env,
                             f"{who}: {req.why} needs environment variable "
                             f"{var}" + ("" if var in env else " - missing from the template"))
            for prefix in req.keys:
                report.check("iam", _key_defined(prefix, sources, root),
                             f"{who}: key prefix {prefix} of '{req.why}' is a string constant "
                             f"of {', '.join(KEY_SOURCES)} or the function's code"
                             + ("" if _key_defined(prefix, sources, root) else
                                " - not found: the requirement no longer matches the keys"))
            for action, kind in req.needs:
                for arn in _needed_resources(kind, env, stack):
                    samples: list[str | None] = [f"{p}sample" for p in req.keys] or [None]
                    for key in samples:
                        needs.append((action, arn, key, req.why))
                    keyed_only[(action, arn)] = keyed_only.get((action, arn), True) \
                        and bool(req.keys)
        for action, arn, why in runtime_needs(stack, logical_id,
                                              merged.resources[logical_id].get("Properties")
                                              or {}):
            needs.append((action, arn, None, why))
        for action, arn, key, why in needs:
            ok = any(g.allows(action, arn, key) for g in grants)
            report.check("iam", ok, f"{who} may call {action} on {arn}"
                         + (f" for key {key}" if key else "")
                         + ("" if ok else f" - NOT ALLOWED by its role (needed by {why})"))
        unused: dict[str, dict[str, list[str]]] = {}  # source -> resource -> actions
        for grant in grants:
            if not any(grant.allows(action, arn, key) for action, arn, key, _ in needs):
                what = grant.resource + (f" (LeadingKeys {grant.leading_key})"
                                         if grant.leading_key else "")
                unused.setdefault(grant.source, {}).setdefault(what, []).append(grant.action)
        for source, by_resource in unused.items():
            excess = "; ".join(f"{', '.join(actions)} on {resource}"
                               for resource, actions in by_resource.items())
            message = (f"{who}: {source} grants what its code never calls "
                       f"(least privilege): {excess}")
            if logical_id in LEAST_PRIVILEGE_PENDING:
                report.warn("iam", f"{message} [pending: {LEAST_PRIVILEGE_PENDING[logical_id]}]")
            else:
                report.fail("iam", message)
        if not unused:
            report.check("iam", True, f"{who}: every grant is used")
        # A table grant without a key condition whose every use is key-scoped could be held to
        # those keys.
        for grant in grants:
            if grant.leading_key is not None or not grant.action.lower().startswith("dynamodb:"):
                continue
            used = [(a, r) for a, r, k, _ in needs if grant.allows(a, r, k)]
            if used and all(keyed_only.get(u, False) for u in used):
                prefixes = sorted({k for a, r, k, _ in needs if (a, r) in used and k})
                report.fail("iam", f"{who}: {grant.source} grants {grant.action} on "
                                   f"{grant.resource} for every key, but its code only touches "
                                   f"{', '.join(p.removesuffix('sample') for p in prefixes)}"
                                   " - add a dynamodb:LeadingKeys condition")
        # Resource "*" only for the actions that cannot be scoped.
        for grant in grants:
            if grant.resource != "*":
                continue
            allowed = next((a for a in WILDCARD_RESOURCE_ACTIONS
                            if a.lower() == grant.action.lower()), None)
            report.check("iam", allowed is not None,
                         f"{who}: {grant.source} grants {grant.action} on Resource \"*\""
                         + (f" (justified: {WILDCARD_RESOURCE_ACTIONS[allowed]})" if allowed else
                            " - scope it to its resources (or, if the action has no resource-"
                            "level permissions, list it in WILDCARD_RESOURCE_ACTIONS with why)"))


# ----- secrets -------------------------------------------------------------------------------

_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|PRIVATE|CREDENTIAL|API_?KEY|(^|_)KEY($|_)|"
                          r"SIGNING|TOKEN", re.I)
# A literal that is no secret even under such a name: a number (a TTL, a refresh period).
_NOT_A_SECRET_VALUE = re.compile(r"[0-9]+")


def check_secrets(template: dict, report: Report) -> None:
    """No secret in the template: a function variable named like one is never a literal (it
    is a Ref / Sub of a generated secret or a parameter), and a parameter named like one has
    NoEcho."""
    merged = Stack(template)
    for logical_id, resource in merged.resources.items():
        if resource["Type"] != FUNCTION_TYPE:
            continue
        variables = ((resource.get("Properties") or {}).get("Environment") or {}) \
            .get("Variables") or {}
        for name, value in variables.items():
            if not _SECRET_NAME.search(name):
                continue
            literal = not isinstance(value, dict) and \
                not _NOT_A_SECRET_VALUE.fullmatch(str(value))
            report.check("secrets", not literal,
                         f"{logical_id}: {name} is not a literal in the template"
                         + (" - a secret-looking value is written into the template; keep it "
                            "in Secrets Manager and pass its ARN" if literal else ""))
    for name, parameter in (template.get("Parameters") or {}).items():
        if _SECRET_NAME.search(name) and not re.search(r"(Seconds|Days|Ttl)$", name):
            report.check("secrets", str((parameter or {}).get("NoEcho")).lower() == "true",
                         f"parameter {name} has NoEcho: true (it looks like a secret)")


# ----- functions -----------------------------------------------------------------------------

def workspace_functions(root: Path = ROOT) -> dict[str, Path]:
    """Package name -> directory, for every functions/<dir>/Cargo.toml."""
    packages = {}
    for manifest in sorted((root / "functions").glob("*/Cargo.toml")):
        name = tomllib.loads(manifest.read_text(encoding="utf-8"))["package"]["name"]
        packages[name] = manifest.parent
    return packages


def check_functions(template: dict, report: Report, template_dir: Path,
                    root: Path = ROOT) -> None:
    stack = Stack(template)  # Globals merged
    packages = workspace_functions(root)
    in_template: dict[str, str] = {}
    for logical_id, resource in stack.resources.items():
        if resource["Type"] != FUNCTION_TYPE:
            continue
        metadata = resource.get("Metadata") or {}
        props = resource.get("Properties") or {}
        binary = (metadata.get("BuildProperties") or {}).get("Binary")
        where = f"{logical_id}"
        if not report.check("functions", bool(binary),
                            f"{where}: Metadata.BuildProperties.Binary names its package"):
            continue
        if binary in in_template:
            report.fail("functions", f"{where}: binary {binary} is also built by "
                                     f"{in_template[binary]}")
        in_template[binary] = logical_id
        report.check("functions", metadata.get("BuildMethod") == "rust-cargolambda",
                     f"{where}: Metadata.BuildMethod is rust-cargolambda (got "
                     f"{metadata.get('BuildMethod')!r})")
        report.check("functions", props.get("Runtime") == "provided.al2023",
                     f"{where}: Runtime provided.al2023 (got {props.get('Runtime')!r})")
        report.check("functions", props.get("Architectures") == ["arm64"],
                     f"{where}: Architectures [arm64] (got {props.get('Architectures')!r})")
        report.check("functions", props.get("Handler") == "bootstrap",
                     f"{where}: Handler bootstrap (got {props.get('Handler')!r})")
        code_uri = props.get("CodeUri")
        workspace = (template_dir / str(code_uri)).resolve() if isinstance(code_uri, str) else None
        report.check("functions", workspace is not None and (workspace / "Cargo.toml").is_file()
                     and "[workspace]" in (workspace / "Cargo.toml").read_text(encoding="utf-8"),
                     f"{where}: CodeUri {code_uri!r} is the Cargo workspace (cargo-lambda builds "
                     "the binary from there)")
        report.check("functions", binary in packages,
                     f"{where}: binary {binary} is a package in functions/"
                     + ("" if binary in packages else " - no functions/*/Cargo.toml has that name"))
        if binary in packages:
            report.check("functions", (packages[binary] / "src/main.rs").is_file(),
                         f"functions/{packages[binary].name}: has src/main.rs (a binary)")
    for package, directory in packages.items():
        report.check("functions", package in in_template,
                     f"functions/{directory.name} (package {package}) is deployed by an "
                     f"{FUNCTION_TYPE}" + ("" if package in in_template else
                                           " - add one with Metadata.BuildProperties.Binary: "
                                           f"{package}"))


# ----- state machines ------------------------------------------------------------------------

def check_workflows(template: dict, report: Report, template_dir: Path,
                    root: Path = ROOT) -> None:
    stack = symbolic_stack(template)
    referenced: set[Path] = set()
    for logical_id, resource in stack.resources.items():
        if resource["Type"] not in STATE_MACHINE_TYPES:
            continue
        props = resource.get("Properties") or {}
        uri = props.get("DefinitionUri")
        if not isinstance(uri, str):
            report.warn("workflows", f"{logical_id}: no local DefinitionUri file, not checked")
            continue
        path = (template_dir / uri).resolve()
        referenced.add(path)
        if not report.check("workflows", path.is_file(),
                            f"{logical_id}: DefinitionUri {uri} exists"):
            continue
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        substitutions = props.get("DefinitionSubstitutions") or {}
        used = set(_PLACEHOLDER.findall(text))
        missing = sorted(used - set(substitutions))
        unused = sorted(set(substitutions) - used)
        report.check("workflows", not missing, f"{logical_id}: every placeholder of {rel} has a "
                     "DefinitionSubstitutions entry" + (f" - missing: {', '.join(missing)}"
                                                        if missing else ""))
        report.check("workflows", not unused, f"{logical_id}: every DefinitionSubstitutions "
                     f"entry is used by {rel}" + (f" - unused: {', '.join(unused)}"
                                                  if unused else ""))
        accounts = sorted(set(_ACCOUNT_LITERAL.findall(text)))
        regions = sorted(set(_REGION_LITERAL.findall(text)))
        report.check("workflows", not accounts and not regions,
                     f"{rel}: no account id or region literal (use placeholders)"
                     + (f" - found {accounts + regions}" if accounts or regions else ""))
        try:
            values = {k: str(v) for k, v in stack.resolve(substitutions).items()}
            definition = json.loads(_PLACEHOLDER.sub(
                lambda m: values.get(m.group(1), m.group(0)), text))
        except (ValueError, TemplateError) as exc:
            report.fail("workflows", f"{rel}: not valid JSON after substitution: {exc}")
            continue
        grants, errors = policy_grants(stack, props.get("Policies"), logical_id)
        for error in errors:
            report.fail("workflows", error)
        for state_name, action, arn in _task_needs(definition):
            ok = any(g.allows(action, arn) for g in grants)
            report.check("workflows", ok, f"{logical_id}: state {state_name} may call {action} "
                         f"on {arn}" + ("" if ok else " - NOT ALLOWED by its Policies"))
    for path in sorted((root / "statemachines").glob("*.asl.json")):
        report.check("workflows", path.resolve() in referenced,
                     f"statemachines/{path.name} is the DefinitionUri of a state machine")


def _task_needs(definition: dict) -> list[tuple[str, str, str]]:
    needs = []

    def walk(states: dict) -> None:
        for name, state in states.items():
            if state.get("Type") == "Task":
                resource = state.get("Resource", "")
                params = state.get("Parameters") or state.get("Arguments") or {}
                if resource in TASK_INTEGRATIONS:
                    action, key = TASK_INTEGRATIONS[resource]
                    target = params.get(key) or params.get(f"{key}.$") if key else None
                    if action == "sqs:SendMessage" and target:
                        match = re.fullmatch(r"https://sqs\.([^.]+)\.amazonaws\.com/(\d+)/(.+)",
                                             target)
                        target = f"arn:aws:sqs:{match.group(1)}:{match.group(2)}:" \
                                 f"{match.group(3)}" if match else target
                    needs.append((name, action, target or "*"))
                elif resource.startswith("arn:aws:lambda:"):
                    needs.append((name, "lambda:InvokeFunction", resource))
            for branch in state.get("Branches") or []:
                walk(branch.get("States") or {})
            for key in ("Iterator", "ItemProcessor"):
                if isinstance(state.get(key), dict):
                    walk(state[key].get("States") or {})

    walk(definition.get("States") or {})
    return needs


# ----- HTTP routes ---------------------------------------------------------------------------

def template_routes(template: dict) -> dict[tuple[str, str], tuple[str, str]]:
    """(METHOD, path) -> (function logical id, binary) for every HttpApi event."""
    routes = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != FUNCTION_TYPE:
            continue
        binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                props = event.get("Properties") or {}
                key = (str(props.get("Method", "ANY")).upper(), str(props.get("Path", "/")))
                routes[key] = (logical_id, str(binary))
    return routes


def rust_routes(root: Path = ROOT) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> function, from shared/edge/src/routes (what all_routes() returns)."""
    routes_dir = root / "shared/edge/src/routes"
    mod = (routes_dir / "mod.rs").read_text(encoding="utf-8")
    body = re.search(r"fn all_routes\(\)[^{]*\{(.*?)\n\}", mod, re.S)
    if not body:
        raise ValueError("shared/edge/src/routes/mod.rs: fn all_routes() not found")
    result = {}
    pairs = re.findall(r'\(\s*"([a-z0-9-]+)"\s*,\s*(\w+)::ROUTES\s*\)', body.group(1))
    if not pairs:
        raise ValueError("all_routes(): no (\"function\", module::ROUTES) pairs found")
    for function, module in pairs:
        source = (routes_dir / f"{module}.rs").read_text(encoding="utf-8")
        const = re.search(r"pub const ROUTES: &\[&str\] = &\[(.*?)\];", source, re.S)
        if not const:
            raise ValueError(f"shared/edge/src/routes/{module}.rs: pub const ROUTES not found")
        for route in re.findall(r'"([A-Z]+) ([^"]+)"', const.group(1)):
            result[route] = function
    return result


def openapi_routes(root: Path = ROOT) -> set[tuple[str, str]]:
    doc = json.loads((root / "docs/openapi.json").read_text(encoding="utf-8"))
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return {(m.upper(), path) for path, item in doc.get("paths", {}).items()
            for m in item if m in methods}


def check_routes(template: dict, report: Report, root: Path = ROOT) -> None:
    in_template = template_routes(template)
    documented = openapi_routes(root)
    try:
        served = rust_routes(root)
    except (OSError, ValueError) as exc:
        report.fail("routes", f"cannot read the Rust route tables: {exc}")
        served = {}
    for key in sorted(set(in_template) | documented | set(served)):
        route = f"{key[0]} {key[1]}"
        where = in_template.get(key)
        report.check("routes", where is not None,
                     f"{route} is an HttpApi event in the template"
                     + ("" if where else " - documented in docs/openapi.json / served by "
                        f"{served.get(key, '?')} but missing from infra/template.yaml"))
        report.check("routes", key in documented, f"{route} is in docs/openapi.json"
                     + ("" if key in documented else " - the template routes it, the API "
                        "document does not"))
        if served:
            function = served.get(key)
            ok = where is not None and function == where[1]
            report.check("routes", ok, f"{route} goes to the function whose Rust route table has "
                         f"it ({function or 'none'})" + ("" if ok else
                         f" - the template sends it to {where[1] if where else 'nothing'}"))


# ----- who may call which route (execute-api:Invoke managed policies) -------------------------

def _is_admin(key: tuple[str, str]) -> bool:
    return key[1].startswith("/admin/")


def _is_clan_upsert(key: tuple[str, str]) -> bool:
    return key == ("PUT", "/clans/{clan_id}")


# War health metrics (EMF, `clanwar_edge::telemetry::war_metric`) carry a Stage dimension: their
# alarms must watch their own stage's series, so two stages in one account never share an alarm.
STAGED_METRICS = {"PhaseTransitionLateness", "ScoreIngestionLag", "ScoreIngestionLagMean",
                  "RewardSagaDuration", "RewardSagaFailures"}

# Each caller policy a studio attaches, and exactly the routes it must reach (SPEC §1: game
# servers never reach the admin routes or the clan upsert; only the guild service upserts clans;
# operators reach the admin routes).
INVOKE_POLICIES = {
    "GameServerInvokePolicy": lambda key: not _is_admin(key) and not _is_clan_upsert(key),
    "GuildServiceInvokePolicy": _is_clan_upsert,
    "OperatorInvokePolicy": _is_admin,
}


def invoke_allowed(document: dict, resource: str) -> bool:
    """IAM evaluation of execute-api:Invoke on `resource` by one policy document: some Allow
    matches and no Deny does (an explicit Deny always wins)."""
    allowed = denied = False
    for statement in _as_list(document.get("Statement") or []):
        actions = [str(a).lower() for a in _as_list(statement.get("Action") or [])]
        if not any(_iam_match(a, "execute-api:invoke") for a in actions):
            continue
        if any(_iam_match(str(r), resource) for r in _as_list(statement.get("Resource") or [])):
            if statement.get("Effect") == "Deny":
                denied = True
            elif statement.get("Effect") == "Allow":
                allowed = True
    return allowed and not denied


def route_arn(api_id: str, key: tuple[str, str], stage: str = "$default") -> str:
    """The execute-api ARN a request to the route is authorised against (path parameters
    filled with a sample value, as a real request has them)."""
    path = re.sub(r"\{[^}]+\}", "sample-id", key[1]).lstrip("/")
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/{stage}/{key[0]}/{path}"


def check_invoke_policies(template: dict, report: Report) -> None:
    stack = symbolic_stack(template)
    routes = template_routes(template)
    api_ids = {p.ref for p in stack.created.values() if p.type == "AWS::Serverless::HttpApi"}
    for logical_id, should_reach in INVOKE_POLICIES.items():
        resource = stack.resources.get(logical_id)
        if not report.check("invoke", bool(resource) and
                            resource.get("Type") == "AWS::IAM::ManagedPolicy",
                            f"{logical_id} is an AWS::IAM::ManagedPolicy of the template"):
            continue
        report.check("invoke", logical_id in json.dumps(template.get("Outputs") or {}),
                     f"{logical_id} is exported as a stack output")
        document = stack.resolve((resource.get("Properties") or {}).get("PolicyDocument") or {})
        for key in sorted(routes):
            route = f"{key[0]} {key[1]}"
            want = should_reach(key)
            for api_id in sorted(api_ids):
                got = invoke_allowed(document, route_arn(api_id, key))
                report.check("invoke", got == want,
                             f"{logical_id} {'allows' if want else 'denies'} {route}"
                             + ("" if got == want else
                                f" - it {'allows' if got else 'denies'} it"))


# ----- operations (logs, DLQs, alarms) -------------------------------------------------------

def check_operations(template: dict, report: Report, root: Path = ROOT) -> None:
    stack = symbolic_stack(template)
    resources = stack.resources

    def resolved(value: Any) -> Any:
        try:
            return stack.resolve(value)
        except TemplateError:
            return None

    # Queues: a DLQ with redrive for each, or being one.
    dlq_arns = {}
    for lid, res in resources.items():
        if res["Type"] != "AWS::SQS::Queue":
            continue
        redrive = resolved((res.get("Properties") or {}).get("RedrivePolicy")) or {}
        if redrive:
            dlq_arns[redrive.get("deadLetterTargetArn")] = lid
    # A stream event source's on-failure destination is a dead-letter queue too.
    for lid, res in resources.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        for event in ((res.get("Properties") or {}).get("Events") or {}).values():
            failure = (((event.get("Properties") or {}).get("DestinationConfig") or {})
                       .get("OnFailure") or {})
            if failure.get("Type") == "SQS":
                dlq_arns[resolved(failure.get("Destination"))] = lid
    queue_by_arn = {stack.created[lid].attrs["Arn"]: lid for lid, r in resources.items()
                    if r["Type"] == "AWS::SQS::Queue"}
    dlqs = {queue_by_arn[arn] for arn in dlq_arns if arn in queue_by_arn}
    for lid, res in resources.items():
        if res["Type"] != "AWS::SQS::Queue" or lid in dlqs:
            continue
        redrive = resolved((res.get("Properties") or {}).get("RedrivePolicy")) or {}
        report.check("operations", bool(redrive.get("deadLetterTargetArn"))
                     and int(redrive.get("maxReceiveCount", 0)) > 0,
                     f"{lid}: RedrivePolicy to a DLQ with maxReceiveCount")

    # Alarms.
    alarms = {lid: res for lid, res in resources.items()
              if res["Type"] == "AWS::CloudWatch::Alarm"}
    topic_refs = {stack.created[lid].ref for lid, r in resources.items()
                  if r["Type"] == "AWS::SNS::Topic"}
    for dlq in sorted(dlqs):
        name = stack.created[dlq].attrs["QueueName"]
        watched = [lid for lid, a in alarms.items()
                   if (a.get("Properties") or {}).get("MetricName") ==
                   "ApproximateNumberOfMessagesVisible"
                   and any(resolved(d.get("Value")) == name for d in
                           (a.get("Properties") or {}).get("Dimensions") or [])]
        report.check("operations", bool(watched),
                     f"DLQ {dlq} has an ApproximateNumberOfMessagesVisible alarm"
                     + (f" ({', '.join(watched)})" if watched else " - add one"))
    for metric in ("PhaseTransitionLateness", "RewardSagaFailures"):
        report.check("operations", any((a.get("Properties") or {}).get("MetricName") == metric
                                       for a in alarms.values()),
                     f"an alarm watches ClanWars/{metric}")
    rust = "\n".join(p.read_text(encoding="utf-8") for base in ("shared", "functions")
                     for p in (root / base).rglob("*.rs"))
    for lid, alarm in sorted(alarms.items()):
        props = alarm.get("Properties") or {}
        if props.get("Namespace") == "ClanWars":
            metric = props.get("MetricName")
            report.check("operations", f'"{metric}"' in rust,
                         f"{lid}: EMF metric ClanWars/{metric} is emitted by the Rust code"
                         + ("" if f'"{metric}"' in rust else " - no string literal "
                            f'"{metric}" in shared/ or functions/'))
        if props.get("Namespace") == "ClanWars" and props.get("MetricName") in STAGED_METRICS:
            dims = [(d.get("Name"), resolved(d.get("Value"))) for d in props.get("Dimensions") or []]
            stage = stack.parameters.get("Stage", "dev")
            report.check("operations", dims == [("Stage", stage)],
                         f"{lid}: watches {props.get('MetricName')} of its own stage only "
                         f"(Dimensions [Stage = Ref Stage])" + ("" if dims == [("Stage", stage)]
                                                               else f" - it has {dims}"))
        actions = resolved(props.get("AlarmActions")) or []
        if topic_refs and not set(actions) & topic_refs:
            report.warn("operations", f"{lid}: no AlarmActions to the alarm topic (nobody is "
                                      "notified)")

    # Log groups with retention, one per function, under the function's name.
    groups = {}
    for lid, res in resources.items():
        if res["Type"] == "AWS::Logs::LogGroup":
            props = res.get("Properties") or {}
            groups[str(resolved(props.get("LogGroupName")))] = (lid, res)
    for lid, res in resources.items():
        if res["Type"] != FUNCTION_TYPE:
            continue
        expected = f"/aws/lambda/{stack.created[lid].ref}"
        group = groups.get(expected)
        ok = group is not None and bool((group[1].get("Properties") or {})
                                        .get("RetentionInDays"))
        report.check("operations", ok, f"{lid}: log group {expected} with RetentionInDays"
                     + ("" if ok else " - missing"))
        if group is not None:
            report.check("operations", group[1].get("Condition") == res.get("Condition"),
                         f"{lid}: its log group {group[0]} has the same Condition "
                         f"({res.get('Condition')})")


# ----- the local stack -----------------------------------------------------------------------

def expected_local_resources(template: dict, parameters: dict[str, str]) -> dict:
    """What the local stack must hold for these parameters: every enabled resource (created by
    a handler, or skipped by LOCAL_SKIP with its reason) and the disabled ones."""
    stack = Stack(template, parameters=parameters)
    result: dict[str, Any] = {"resources": {}, "disabled": {}, "unsupported": {}}
    for lid, res in stack.resources.items():
        kind = res["Type"]
        if not stack.is_enabled(lid):
            result["disabled"][lid] = {"Type": kind, "Condition": res.get("Condition")}
        elif kind in LOCAL_SKIP:
            result["resources"][lid] = {"Type": kind, "local": "skipped",
                                        "reason": LOCAL_SKIP[kind]}
        elif kind in HANDLERS:
            result["resources"][lid] = {"Type": kind, "local": "created"}
        else:
            result["unsupported"][lid] = {"Type": kind}
    return result


def check_local_types(template: dict, report: Report) -> None:
    kinds = sorted({r["Type"] for r in (template.get("Resources") or {}).values()})
    for kind in kinds:
        report.check("local", kind in HANDLERS or kind in LOCAL_SKIP,
                     f"type {kind} is created (provisioner.HANDLERS) or skipped with a reason "
                     "(LOCAL_SKIP) by the local stack")


def check_against(template: dict, state: dict, report: Report) -> None:
    """The running local stack (its resources.json, and the emulator itself) vs the template."""
    params = {k: (",".join(v) if isinstance(v, list) else str(v))
              for k, v in (state.get("parameters") or {}).items()}
    expected = expected_local_resources(template, params)
    have = state.get("resources") or {}
    implicit = {"ServerlessHttpApi"}  # SAM's implicit HTTP API, if events have no ApiId
    for lid, info in sorted(expected["resources"].items()):
        entry = have.get(lid)
        ok = entry is not None and entry.get("Type") == info["Type"]
        report.check("local", ok, f"{lid} ({info['Type']}) is in the local stack"
                     + (f" [skipped locally: {info['reason']}]" if info["local"] == "skipped"
                        else "") + ("" if ok else f" - local: {entry!r}"))
    for lid, info in sorted(expected["disabled"].items()):
        report.check("local", lid not in have, f"{lid} is absent locally (Condition "
                     f"{info['Condition']} is false for {params})")
    for lid in sorted(set(have) - set(expected["resources"]) - implicit):
        report.fail("local", f"{lid} ({have[lid].get('Type')}) is in the local stack but not "
                             "an enabled resource of the template")
    for lid, info in expected["unsupported"].items():
        report.fail("local", f"{lid}: type {info['Type']} is neither handled nor skipped")
    endpoint = state.get("endpoint")
    if endpoint:
        _check_emulator(template, state, params, report)


def _check_emulator(template: dict, state: dict, params: dict[str, str],
                    report: Report) -> None:
    """Asks the emulator for the routes, event source mappings, schedules, functions and state
    machines it really has, and compares them with the template."""
    import boto3  # the venv's; only needed for this mode

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=state.get("region", REGION))

    def client(service: str):
        return session.client(service, endpoint_url=state["endpoint"])

    stack = Stack(template, parameters=params)
    have = state.get("resources") or {}
    functions = {lid: have[lid]["Ref"] for lid, r in stack.resources.items()
                 if r["Type"] == FUNCTION_TYPE and lid in have}
    arn_to_function = {have[lid].get("Arn"): name for lid, name in functions.items()}

    # Functions and state machines: exactly the template's.
    lam = client("lambda")
    listed = {f["FunctionName"] for page in lam.get_paginator("list_functions").paginate()
              for f in page["Functions"]}
    report.check("local", listed == set(functions.values()),
                 "the emulator's Lambda functions are exactly the template's"
                 + ("" if listed == set(functions.values()) else
                    f" - only local: {sorted(listed - set(functions.values()))}, only in the "
                    f"template: {sorted(set(functions.values()) - listed)}"))
    machines = {have[lid]["Name"] for lid, r in stack.resources.items()
                if r["Type"] in STATE_MACHINE_TYPES and lid in have}
    sfn = client("stepfunctions")
    listed = {m["name"] for m in sfn.list_state_machines()["stateMachines"]}
    report.check("local", listed == machines,
                 "the emulator's state machines are exactly the template's"
                 + ("" if listed == machines else f" - only local: {sorted(listed - machines)}, "
                    f"only in the template: {sorted(machines - listed)}"))

    # Event source mappings: SQS; on LocalStack also the DynamoDB streams (the moto stack runs
    # those with pollers of its own, tools/localaws/ddb_streams.py).
    on_localstack = state.get("emulator") == "localstack"
    kinds = ("SQS", "DynamoDB") if on_localstack else ("SQS",)
    expected_esm = set()
    for lid, res in stack.resources.items():
        if res["Type"] != FUNCTION_TYPE or lid not in have:
            continue
        for event in ((res.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") in kinds:
                props = event.get("Properties") or {}
                queue = props.get("Queue") or props.get("Stream") or {}
                queue_lid = (queue.get("Fn::GetAtt") or [None])[0] if isinstance(queue, dict) \
                    else None
                attr = "StreamArn" if event.get("Type") == "DynamoDB" else "Arn"
                expected_esm.add((have.get(queue_lid, {}).get(attr, str(queue)),
                                  functions[lid]))
    listed = {(m["EventSourceArn"], arn_to_function.get(m["FunctionArn"], m["FunctionArn"]))
              for page in lam.get_paginator("list_event_source_mappings").paginate()
              for m in page["EventSourceMappings"]}
    report.check("local", listed == expected_esm,
                 f"{'/'.join(kinds)} event source mappings match the template ({len(expected_esm)})"
                 + ("" if listed == expected_esm else f" - only local: "
                    f"{sorted(listed - expected_esm)}, only in the template: "
                    f"{sorted(expected_esm - listed)}"))

    # API routes (HTTP API from HttpApi events, WebSocket API from Route resources). LocalStack's
    # community edition has no API Gateway v2: the project's own gateways serve the routes the
    # provisioner read from the template (the same code as on moto, where this is checked).
    v2 = None if on_localstack else client("apigatewayv2")
    if on_localstack:
        report.warnings.append("[local] API routes not checked: LocalStack has no API Gateway "
                               "v2 (served by tools/localaws/http_api.py, websocket_api.py)")
    for lid, res in stack.resources.items():
        if v2 is None:
            break
        if lid not in have or res["Type"] not in ("AWS::Serverless::HttpApi",
                                                  "AWS::ApiGatewayV2::Api"):
            continue
        api_id = have[lid]["Ref"]
        integrations = {i["IntegrationId"]: i.get("IntegrationUri", "")
                        for i in v2.get_integrations(ApiId=api_id).get("Items", [])}
        local = set()
        for route in v2.get_routes(ApiId=api_id).get("Items", []):
            uri = integrations.get(str(route.get("Target", "")).removeprefix("integrations/"),
                                   "")
            function = next((name for arn, name in arn_to_function.items()
                             if arn and arn in uri), uri)
            local.add((route["RouteKey"], function))
        if res["Type"] == "AWS::Serverless::HttpApi":
            wanted = {(f"{m} {p}", functions[f_lid])
                      for (m, p), (f_lid, _) in template_routes(template).items()
                      if f_lid in functions}
        else:
            wanted = set()
            for r_lid, route in stack.resources.items():
                props = route.get("Properties") or {}
                if route["Type"] == "AWS::ApiGatewayV2::Route" and \
                        props.get("ApiId") == {"Ref": lid} and r_lid in have:
                    wanted.add(props["RouteKey"])
            local = {key for key, _ in local}
        report.check("local", local == wanted, f"{lid}: the emulator's routes are exactly the "
                     f"template's ({len(wanted)})" + ("" if local == wanted else
                     f" - only local: {sorted(local - wanted)}, only in the template: "
                     f"{sorted(wanted - local)}"))

    # Schedules and rules.
    events = client("events")
    for lid, res in stack.resources.items():
        if res["Type"] == FUNCTION_TYPE and lid in have:
            for eid, event in ((res.get("Properties") or {}).get("Events") or {}).items():
                if event.get("Type") != "Schedule":
                    continue
                name = (event.get("Properties") or {}).get("Name") or \
                    f"{state.get('stack_name')}-{lid}{eid}"[:64]
                rules = events.list_rules(NamePrefix=name).get("Rules", [])
                expression = (event.get("Properties") or {}).get("Schedule")
                ok = any(r["Name"] == name and r.get("ScheduleExpression") == expression
                         for r in rules)
                report.check("local", ok, f"{lid}.Events.{eid}: rule {name} ({expression}) "
                             "exists locally")
        elif res["Type"] == "AWS::Events::Rule" and lid in have:
            ref = have[lid]["Ref"]
            bus, _, name = ref.rpartition("|")
            rules = events.list_rules(NamePrefix=name, EventBusName=bus or "default")["Rules"]
            report.check("local", any(r["Name"] == name for r in rules),
                         f"{lid}: rule {name} exists locally on bus {bus or 'default'}")


# ----- self-test -----------------------------------------------------------------------------

def self_test() -> int:
    """The checker's building blocks on small inputs (no pytest needed)."""
    problems = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)

    expect(_iam_match("arn:aws:states:r:1:execution:sm:*", "arn:aws:states:r:1:execution:sm:w1"),
           "wildcard matches an execution")
    expect(not _iam_match("arn:aws:dynamodb:r:1:table/t", "arn:aws:dynamodb:r:1:table/t/index/g"),
           "a table ARN does not cover its indexes")
    expect(Grant("sqs:SendMessage*", "*", "x").allows("sqs:SendMessage", "q"),
           "action wildcards")
    expect(Grant("DynamoDB:getitem", "*", "x").allows("dynamodb:GetItem", "t"),
           "actions are case-insensitive")
    template = {
        "Parameters": {"Stage": {"Type": "String", "Default": "dev"},
                       "On": {"Type": "String", "Default": "false"}},
        "Conditions": {"IsOn": {"Fn::Equals": [{"Ref": "On"}, "true"]}},
        "Resources": {
            "T": {"Type": "AWS::DynamoDB::Table",
                  "Properties": {"TableName": {"Fn::Sub": "t-${Stage}"},
                                 "GlobalSecondaryIndexes": [{"IndexName": "g1"}]}},
            "P": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": {
                "Statement": [{"Effect": "Allow", "Action": ["dynamodb:GetItem"],
                               "Resource": {"Fn::GetAtt": ["T", "Arn"]}}]}}},
            "F": {"Type": FUNCTION_TYPE, "Condition": "IsOn", "Properties": {
                "Policies": [{"Ref": "P"}, {"DynamoDBCrudPolicy": {"TableName": {"Ref": "T"}}}]}},
        },
    }
    stack = symbolic_stack(template)
    grants, errors = policy_grants(stack, stack.resources["F"]["Properties"]["Policies"], "F")
    expect(not errors, f"policies resolve: {errors}")
    table = _arn("dynamodb", "table/t-dev")
    expect(any(g.allows("dynamodb:GetItem", table) and "(P)" in g.source for g in grants),
           "managed policy of the template expands")
    expect(any(g.allows("dynamodb:Scan", table + "/index/g1") for g in grants),
           "DynamoDBCrudPolicy expands to Scan on indexes")
    expect(_needed_resources("indexes", {"TABLE_NAME": "t-dev"}, stack) == [table + "/index/g1"],
           "indexes come from the table's GSIs")
    expected = expected_local_resources(template, {})
    expect("F" in expected["disabled"] and "F" not in expected["resources"],
           "a resource behind a false condition is expected absent locally")
    expected = expected_local_resources(template, {"On": "true"})
    expect(expected["resources"].get("F", {}).get("local") == "created",
           "... and present when the condition holds")
    expect(expected["resources"]["P"]["local"] == "skipped", "IAM policies are skipped locally")
    asl = {"States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage."
                            "waitForTaskToken", "Parameters": {
                                "QueueUrl": "https://sqs.r.amazonaws.com/1/q"}},
                      "P": {"Type": "Parallel", "Branches": [{"States": {"B": {
                          "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                          "Parameters": {"FunctionName": "arn:aws:lambda:r:1:function:f"}}}}]}}}
    expect(_task_needs(asl) == [("A", "sqs:SendMessage", "arn:aws:sqs:r:1:q"),
                                ("B", "lambda:InvokeFunction", "arn:aws:lambda:r:1:function:f")],
           f"task needs: {_task_needs(asl)}")
    expect(bool(_REGION_LITERAL.search('"arn:aws:lambda:eu-west-1:x"')), "region literal found")
    expect(not _ACCOUNT_LITERAL.search('"Seconds": 1209600'), "7-digit numbers are fine")
    everything = {"Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke",
                                 "Resource": "arn:aws:execute-api:r:1:api/*/*/*"}]}
    admin = route_arn("api", ("POST", "/admin/wars/{war_id}/end")).replace(
        f"{REGION}:{ACCOUNT}", "r:1")
    expect(invoke_allowed(everything, admin), "an allow-all policy reaches an admin route")
    fenced = {"Statement": everything["Statement"] + [{
        "Effect": "Deny", "Action": "execute-api:Invoke",
        "Resource": "arn:aws:execute-api:r:1:api/*/*/admin/*"}]}
    expect(not invoke_allowed(fenced, admin), "an explicit Deny wins over the Allow")
    expect(invoke_allowed(fenced, admin.replace("/admin/wars", "/wars")),
           "... and leaves the game routes reachable")
    # Key conditions, roles and the Resource "*" rule.
    conditioned = Grant("dynamodb:GetItem", table, "x", "WSCONN#*")
    expect(conditioned.allows("dynamodb:GetItem", table, "WSCONN#c1"), "a key in the pattern")
    expect(not conditioned.allows("dynamodb:GetItem", table, "WAR#w1"), "a key outside it")
    expect(not conditioned.allows("dynamodb:GetItem", table), "any key is not a key pattern")
    expect(Grant("dynamodb:GetItem", table, "x").allows("dynamodb:GetItem", table, "WAR#w1"),
           "an unconditioned grant covers every key")
    expect(_leading_keys({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["A#*"]}})
           == ["A#*"], "LeadingKeys patterns are read")
    expect(_leading_keys({"StringEquals": {"aws:SourceVpc": "v"}}) == [],
           "other conditions are not understood (so they are reported)")
    expect(function_role(stack, "F", {})[0] is None, "a function without Role is refused")
    template["Resources"]["R"] = {"Type": "AWS::IAM::Role", "Condition": "IsOn", "Properties": {
        "ManagedPolicyArns": ["arn:aws:iam::aws:policy/service-role/"
                              "AWSLambdaSQSQueueExecutionRole", {"Ref": "P"}]}}
    stack = symbolic_stack(template)
    expect(function_role(stack, "F", {"Role": {"Fn::GetAtt": ["R", "Arn"]}})[0] == "R",
           "Role: !GetAtt <role>.Arn is the function's role")
    grants, errors = role_grants(stack, "R", "F")
    expect(len(errors) == 1 and "AWS managed" in errors[0], f"AWS managed policy refused: {errors}")
    expect(any("(P)" in g.source for g in grants), "the role's template managed policy expands")
    # The real template, broken on purpose: each change must be caught.
    real = load_template(ROOT / "infra/template.yaml")

    def failures_after(change) -> list[str]:
        broken = json.loads(json.dumps(real))
        change(broken["Resources"])
        found = Report()
        check_iam(broken, found)
        return found.failures

    def statements(resources: dict, role: str) -> list[dict]:
        return resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]

    def drop_condition(resources: dict) -> None:
        for statement in statements(resources, "EventHandlerRole"):
            statement.pop("Condition", None)

    def narrow_keys(resources: dict) -> None:
        for statement in statements(resources, "WsConnectionsRole"):
            keys = (statement.get("Condition") or {}).get("ForAllValues:StringLike", {})
            if "CLAN#*" in keys.get("dynamodb:LeadingKeys", []):
                keys["dynamodb:LeadingKeys"].remove("CLAN#*")

    def wildcard(resources: dict) -> None:
        statements(resources, "BattleManagerRole").append(
            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"})

    def managed(resources: dict) -> None:
        resources["ScoreCalculatorRole"]["Properties"]["ManagedPolicyArns"].append(
            "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole")

    def sam_role(resources: dict) -> None:
        del resources["TerritoryManagerFunction"]["Properties"]["Role"]

    def other_log_group(resources: dict) -> None:
        statements(resources, "AllianceManagerRole")[0]["Resource"] = {
            "Fn::GetAtt": ["BattleManagerLogGroup", "Arn"]}

    for change, expected in ((drop_condition, "add a dynamodb:LeadingKeys condition"),
                             (narrow_keys, "for key CLAN#sample - NOT ALLOWED"),
                             (wildcard, 'dynamodb:GetItem on Resource "*" - scope it'),
                             (managed, "AWSLambdaSQSQueueExecutionRole' is not an"),
                             (sam_role, "TerritoryManagerFunction (territory-manager) runs with "
                                        "its own role - no Role"),
                             (other_log_group, "AllianceManagerFunction (alliance-manager) may "
                                               "call logs:PutLogEvents")):
        found = failures_after(change)
        expect(any(expected in f for f in found),
               f"{change.__name__} is caught ({expected!r}); got {found[:3]}")
    leaky = json.loads(json.dumps(real))
    leaky["Resources"]["WsAuthorizerFunction"]["Properties"]["Environment"]["Variables"][
        "SESSION_SIGNING_KEY"] = "hunter2-hunter2"
    found = Report()
    check_secrets(leaky, found)
    expect(any("SESSION_SIGNING_KEY is not a literal" in f for f in found.failures),
           f"a literal secret in a function's environment is caught: {found.failures}")
    found = Report()
    check_secrets(real, found)
    expect(not found.failures, f"the real template has no literal secret: {found.failures}")
    for problem in problems:
        print(f"FAIL self-test: {problem}")
    print(f"infra_check self-test: {'OK' if not problems else f'{len(problems)} failed'}")
    return 1 if problems else 0


# ----- main ----------------------------------------------------------------------------------

def run_offline(template_path: Path, report: Report) -> dict:
    template = load_template(template_path)
    template_dir = template_path.parent
    check_functions(template, report, template_dir)
    check_workflows(template, report, template_dir)
    check_iam(template, report)
    check_secrets(template, report)
    check_routes(template, report)
    check_invoke_policies(template, report)
    check_operations(template, report)
    check_local_types(template, report)
    return template


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--template", type=Path, default=ROOT / "infra/template.yaml")
    parser.add_argument("--against", type=Path, metavar="RESOURCES_JSON",
                        help="also compare a running local stack (its resources.json)")
    parser.add_argument("--local-only", action="store_true",
                        help="with --against: only the local-stack comparison")
    parser.add_argument("--expected-resources", action="store_true",
                        help="print the logical ids the local stack must have, as JSON")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passed checks too")
    args = parser.parse_args(argv)

    if args.self_test:
        return self_test()
    if args.expected_resources:
        params = dict(p.split("=", 1) for p in args.param)
        print(json.dumps(expected_local_resources(load_template(args.template), params),
                         indent=2, sort_keys=True))
        return 0
    report = Report()
    if args.local_only and args.against:
        template = load_template(args.template)
    else:
        if self_test() != 0:
            return 1
        template = run_offline(args.template, report)
    if args.against:
        state = json.loads(args.against.read_text(encoding="utf-8"))
        check_against(template, state, report)
    report.print(args.verbose)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
