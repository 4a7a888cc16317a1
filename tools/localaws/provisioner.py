"""Creates the resources of infra/template.yaml in the emulator, one handler per resource type.

Table-driven: HANDLERS maps a CloudFormation/SAM type to a function that creates the resource
through the emulator's AWS API and returns its Physical (Ref value + GetAtt attributes).
A type that is neither handled nor in LOCAL_SKIP fails the whole start, so nothing in the
template is silently missing locally.
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from pathlib import Path
from typing import Any
from collections.abc import Callable

import boto3

from .apigw import (ApiRegistry, Authorizer, LocalApi, Route, function_arn_from_uri,
                    parse_identity_source)
from .ddb_streams import StreamMappings
from .schedules import Scheduler, parse_input
from .template import Physical, Stack, TemplateError

log = logging.getLogger("localaws.provisioner")

# Types that have no local effect (permissions, monitoring). Kept explicit and small: anything
# else unknown is an error.
LOCAL_SKIP = {
    "AWS::SQS::QueuePolicy": "queue policies are not enforced by the emulator",
    "AWS::IAM::Role": "IAM is not enforced locally",
    "AWS::IAM::Policy": "IAM is not enforced locally",
    "AWS::IAM::ManagedPolicy": "IAM is not enforced locally",
    "AWS::Logs::LogGroup": "Lambda logs go to .localaws/logs/",
    "AWS::CloudWatch::Alarm": "no metrics locally",
    "AWS::CloudWatch::Dashboard": "no metrics locally",
    "AWS::SNS::Topic": "alarm notifications only, and there are no alarms locally",
    "AWS::SNS::Subscription": "alarm notifications only, and there are no alarms locally",
    "AWS::Lambda::Permission": "resource policies are not enforced locally",
    "AWS::ApiGatewayV2::Deployment": "local APIs serve their routes as soon as they exist",
    "AWS::ApiGatewayV2::RouteResponse": "a route's RouteResponseSelectionExpression is what "
                                        "makes it two-way locally",
}

# SAM function event sources with a local effect. Others fail (see _function_events).
LOCAL_SKIP_FUNCTION_EVENTS: dict[str, str] = {}

# "moto": the moto server with the launcher's own Lambda bridge, ESM pollers, stream pollers and
# scheduler. "localstack": LocalStack's own Lambda (with the project's runtime executor),
# event source mappings and scheduled rules; only API Gateway v2 stays local.
TARGETS = ("moto", "localstack")

LOCAL_ROLE_NAME = "localaws-execution-role"
DEFAULT_LAMBDA_TIMEOUT = 30
DEFAULT_LAMBDA_MEMORY = 128


def _dummy_zip() -> bytes:
    """Lambda code placeholder: the bridge runs the real binary, moto only needs a package."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bootstrap", "#!/bin/sh\necho 'run by localaws lambda bridge' >&2\nexit 1\n")
    return buf.getvalue()


def _tags_dict(tags: Any) -> dict[str, str]:
    if isinstance(tags, list):
        return {t["Key"]: str(t["Value"]) for t in tags}
    return {k: str(v) for k, v in (tags or {}).items()}


def _tags_list(tags: Any) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in _tags_dict(tags).items()]


def _compact(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


class Provisioner:
    """Walks the stack in dependency order and creates each resource in the emulator."""

    def __init__(
        self,
        stack: Stack,
        *,
        endpoint: str,
        template_dir: Path,
        register_binary: Callable[[str, str], None] = lambda function, binary: None,
        apis: ApiRegistry | None = None,
        schedules: Scheduler | None = None,
        streams: StreamMappings | None = None,
        target: str = "moto",
        sqs_visibility_cap: int | None = None,
    ):
        if target not in TARGETS:
            raise TemplateError(f"unknown emulator target {target!r}: one of {', '.join(TARGETS)}")
        self.stack = stack
        self.target = target
        # LOCALAWS_SQS_VISIBILITY_TIMEOUT: a failed message comes back after the queue's
        # visibility timeout, so a poison message reaches its DLQ after maxReceiveCount of them
        # (5 x 180 s in the template). Tests on LocalStack, which honours it as SQS does,
        # shorten it; the moto stack re-drives failures every second instead (sqs_esm.py).
        self.sqs_visibility_cap = sqs_visibility_cap
        self.template_dir = template_dir
        self.register_binary = register_binary
        self.apis = apis or ApiRegistry()
        self.schedules = schedules or Scheduler(lambda arn, event: ("{}", False))
        self.streams = streams or StreamMappings(lambda arn, event: ("{}", False))
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=stack.region
        )
        self._client = lambda service: session.client(service, endpoint_url=endpoint)
        self._clients: dict[str, Any] = {}
        self._role_arn: str | None = None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if service == "apigatewayv2" and self.target == "localstack":
                from .localstack_target import LocalApiGatewayV2  # Pro-only in LocalStack

                self._clients[service] = LocalApiGatewayV2()
            else:
                self._clients[service] = self._client(service)
        return self._clients[service]

    @property
    def localstack(self) -> bool:
        return self.target == "localstack"

    def provision(self) -> dict[str, Physical]:
        order = self.stack.creation_order()
        unknown = sorted(
            {self.stack.resources[r]["Type"] for r in order} - set(HANDLERS) - set(LOCAL_SKIP)
        )
        if unknown:
            raise TemplateError(
                "resource types not supported by the local stack: "
                + ", ".join(unknown)
                + " (add a handler in tools/localaws/provisioner.py HANDLERS, or, if it has no "
                "local effect, an entry in LOCAL_SKIP)"
            )
        for logical_id in order:
            resource = self.stack.resources[logical_id]
            kind = resource["Type"]
            if kind in LOCAL_SKIP:
                log.info("skip %s (%s): %s", logical_id, kind, LOCAL_SKIP[kind])
                physical = self._placeholder(logical_id, kind)
            else:
                physical = self._create(logical_id, kind, resource)
                log.info("created %s (%s): %s", logical_id, kind, physical.ref)
            self.stack.created[logical_id] = physical
        return self.stack.created

    def _create(self, logical_id: str, kind: str, resource: dict) -> Physical:
        try:
            props = self.stack.resolve(resource.get("Properties") or {})
            return HANDLERS[kind](self, logical_id, props)
        except TemplateError as exc:
            raise TemplateError(f"{logical_id} ({kind}): {exc}") from exc
        except Exception as exc:  # botocore errors etc.: name the resource that failed
            raise TemplateError(f"{logical_id} ({kind}): {type(exc).__name__}: {exc}") from exc

    # ----- helpers -------------------------------------------------------------------------

    def default_name(self, logical_id: str, max_len: int = 64) -> str:
        """Deterministic stand-in for CloudFormation's generated names."""
        return f"{self.stack.stack_name}-{logical_id}"[:max_len]

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.stack.region}:{self.stack.account_id}:{resource}"

    def _placeholder(self, logical_id: str, kind: str) -> Physical:
        name = self.default_name(logical_id)
        service = kind.split("::")[1].lower()
        arn = f"arn:aws:iam::{self.stack.account_id}:role/{name}" if kind == "AWS::IAM::Role" \
            else self.arn(service, f"local/{name}")
        return Physical(kind, name, {"Arn": arn, "Name": name})

    def role_arn(self) -> str:
        """One IAM role for every local function and state machine (moto checks it exists)."""
        if self._role_arn is None:
            trust = {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                    "Action": "sts:AssumeRole",
                }],
            }
            iam = self.client("iam")
            try:
                role = iam.create_role(
                    RoleName=LOCAL_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust)
                )["Role"]
            except iam.exceptions.EntityAlreadyExistsException:
                role = iam.get_role(RoleName=LOCAL_ROLE_NAME)["Role"]
            self._role_arn = role["Arn"]
        return self._role_arn


# ----- DynamoDB ----------------------------------------------------------------------------


def _dynamodb_table(p: Provisioner, logical_id: str, props: dict) -> Physical:
    ddb = p.client("dynamodb")
    name = props.get("TableName") or p.default_name(logical_id, 255)
    indexes = [
        {k: v for k, v in gsi.items() if k != "ContributorInsightsSpecification"}
        for gsi in props.get("GlobalSecondaryIndexes") or []
    ]
    stream = props.get("StreamSpecification")
    sse = props.get("SSESpecification")
    request = _compact(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode=props.get("BillingMode", "PROVISIONED"),
        ProvisionedThroughput=props.get("ProvisionedThroughput"),
        GlobalSecondaryIndexes=indexes or None,
        LocalSecondaryIndexes=props.get("LocalSecondaryIndexes"),
        StreamSpecification={"StreamEnabled": True, **stream} if stream else None,
        SSESpecification=_compact(
            Enabled=sse.get("SSEEnabled"), SSEType=sse.get("SSEType"),
            KMSMasterKeyId=sse.get("KMSMasterKeyId"),
        ) if sse else None,
        TableClass=props.get("TableClass"),
        DeletionProtectionEnabled=props.get("DeletionProtectionEnabled"),
        Tags=_tags_list(props.get("Tags")) or None,
    )
    table = ddb.create_table(**request)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr and pitr.get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    attrs = {"Arn": table["TableArn"], "Name": name}
    if table.get("LatestStreamArn"):
        attrs["StreamArn"] = table["LatestStreamArn"]
    return Physical("AWS::DynamoDB::Table", name, attrs)


# ----- SQS ---------------------------------------------------------------------------------

# CloudFormation property -> SQS attribute, where both exist.
_SQS_ATTRIBUTES = (
    "ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoQueue",
    "FifoThroughputLimit", "KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId",
    "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy", "RedrivePolicy", "SqsManagedSseEnabled", "VisibilityTimeout",
)


def _sqs_attribute_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sqs_queue(p: Provisioner, logical_id: str, props: dict) -> Physical:
    sqs = p.client("sqs")
    name = props.get("QueueName") or p.default_name(logical_id, 80)
    if props.get("FifoQueue") and not name.endswith(".fifo"):
        name = name[:75] + ".fifo"
    attributes = {
        key: _sqs_attribute_value(props[key]) for key in _SQS_ATTRIBUTES if key in props
    }
    cap = p.sqs_visibility_cap
    if cap is not None and int(attributes.get("VisibilityTimeout", 30)) > cap:
        log.info("%s: VisibilityTimeout %s s shortened to %s s (LOCALAWS_SQS_VISIBILITY_TIMEOUT)",
                 logical_id, attributes.get("VisibilityTimeout", 30), cap)
        attributes["VisibilityTimeout"] = str(cap)
    request = _compact(QueueName=name, Attributes=attributes or None,
                       tags=_tags_dict(props.get("Tags")) or None)
    url = sqs.create_queue(**request)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Physical("AWS::SQS::Queue", url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


# ----- EventBridge -------------------------------------------------------------------------


def _events_bus(p: Provisioner, logical_id: str, props: dict) -> Physical:
    name = props["Name"]
    arn = p.client("events").create_event_bus(**_compact(
        Name=name, Description=props.get("Description"),
        Tags=_tags_list(props.get("Tags")) or None,
    ))["EventBusArn"]
    return Physical("AWS::Events::EventBus", name, {"Arn": arn, "Name": name})


def _bus_name(name_or_arn: str | None) -> str:
    return (name_or_arn or "default").split("/")[-1]


def _events_rule(p: Provisioner, logical_id: str, props: dict) -> Physical:
    events = p.client("events")
    name = props.get("Name") or p.default_name(logical_id)
    bus = _bus_name(props.get("EventBusName"))
    pattern = props.get("EventPattern")
    arn = events.put_rule(**_compact(
        Name=name,
        EventBusName=bus,
        EventPattern=json.dumps(pattern) if isinstance(pattern, dict) else pattern,
        ScheduleExpression=props.get("ScheduleExpression"),
        State=props.get("State", "ENABLED"),
        Description=props.get("Description"),
    ))["RuleArn"]
    targets = props.get("Targets") or []
    if targets:
        result = events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        if result.get("FailedEntryCount"):
            raise TemplateError(f"{logical_id}: put_targets failed: {result['FailedEntries']}")
    ref = name if bus == "default" else f"{bus}|{name}"  # what CloudFormation's Ref returns
    return Physical("AWS::Events::Rule", ref, {"Arn": arn})


# ----- Lambda ------------------------------------------------------------------------------


def _function_binary(p: Provisioner, logical_id: str, function_name: str) -> str:
    """Binary to run for a function: Metadata.BuildProperties.Binary (the SAM cargo-lambda
    convention), else the function name."""
    metadata = p.stack.resources[logical_id].get("Metadata") or {}
    return (metadata.get("BuildProperties") or {}).get("Binary") or function_name


def _serverless_function(p: Provisioner, logical_id: str, props: dict) -> Physical:
    lam = p.client("lambda")
    name = props.get("FunctionName") or p.default_name(logical_id)
    variables = (props.get("Environment") or {}).get("Variables") or {}
    config = lam.create_function(**_compact(
        FunctionName=name,
        Runtime=props.get("Runtime", "provided.al2023"),
        Handler=props.get("Handler", "bootstrap"),
        Role=p.role_arn(),
        Code={"ZipFile": _dummy_zip()},
        Timeout=int(props.get("Timeout", DEFAULT_LAMBDA_TIMEOUT)),
        MemorySize=int(props.get("MemorySize", DEFAULT_LAMBDA_MEMORY)),
        Environment={"Variables": {k: str(v) for k, v in variables.items()}},
        Architectures=props.get("Architectures"),
        Description=props.get("Description"),
        Tags=_tags_dict(props.get("Tags")) or None,
    ))
    binary = _function_binary(p, logical_id, name)
    p.register_binary(name, binary)
    if p.localstack:  # LocalStack creates functions asynchronously (Pending -> Active)
        lam.get_waiter("function_active_v2").wait(FunctionName=name,
                                                  WaiterConfig={"Delay": 0.5, "MaxAttempts": 120})
    _function_events(p, logical_id, name, config["FunctionArn"], props.get("Events") or {})
    return Physical("AWS::Serverless::Function", name,
                    {"Arn": config["FunctionArn"], "Binary": binary})


def _function_events(p: Provisioner, logical_id: str, function: str, function_arn: str,
                     events: dict) -> None:
    for event_id, event in events.items():
        kind, props = event.get("Type"), event.get("Properties") or {}
        if kind == "SQS":
            # moto hands each message to the function as a one-record batch, synchronously
            # inside SendMessage; the launcher's poller retries failures (see launcher.py).
            p.client("lambda").create_event_source_mapping(**_compact(
                EventSourceArn=props["Queue"],
                FunctionName=function,
                BatchSize=props.get("BatchSize"),
                Enabled=props.get("Enabled", True),
                FunctionResponseTypes=props.get("FunctionResponseTypes"),
                MaximumBatchingWindowInSeconds=props.get("MaximumBatchingWindowInSeconds"),
            ))
        elif kind == "DynamoDB" and p.localstack:
            _dynamodb_stream_mapping(p, function, props)
        elif kind == "DynamoDB":
            # Delivered by the launcher's stream pollers (filters, batches, retries, partial
            # batch failures), not by moto inside each write: see ddb_streams.py.
            p.streams.add(f"{logical_id}.Events.{event_id}", function_arn, props)
        elif kind == "HttpApi":
            _http_api_event(p, f"{logical_id}.Events.{event_id}", function_arn, props)
        elif kind == "Schedule":
            _schedule_event(p, logical_id, event_id, function_arn, props)
        elif kind in LOCAL_SKIP_FUNCTION_EVENTS:
            log.info("skip event %s.%s (%s): %s", logical_id, event_id, kind,
                     LOCAL_SKIP_FUNCTION_EVENTS[kind])
        else:
            raise TemplateError(
                f"{logical_id}.Events.{event_id}: event type {kind} is not supported by the "
                "local stack (add it in provisioner._function_events)"
            )


def _dynamodb_stream_mapping(p: Provisioner, function: str, props: dict) -> None:
    """SAM `DynamoDB` event as the event source mapping AWS creates (LocalStack runs it)."""
    destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    p.client("lambda").create_event_source_mapping(**_compact(
        EventSourceArn=props["Stream"],
        FunctionName=function,
        StartingPosition=props.get("StartingPosition", "LATEST"),
        BatchSize=props.get("BatchSize"),
        Enabled=props.get("Enabled", True),
        MaximumBatchingWindowInSeconds=props.get("MaximumBatchingWindowInSeconds"),
        BisectBatchOnFunctionError=props.get("BisectBatchOnFunctionError"),
        MaximumRetryAttempts=props.get("MaximumRetryAttempts"),
        MaximumRecordAgeInSeconds=props.get("MaximumRecordAgeInSeconds"),
        ParallelizationFactor=props.get("ParallelizationFactor"),
        FunctionResponseTypes=props.get("FunctionResponseTypes"),
        FilterCriteria=props.get("FilterCriteria"),
        DestinationConfig={"OnFailure": {"Destination": destination}} if destination else None,
    ))


def _http_api_event(p: Provisioner, who: str, function_arn: str, props: dict) -> None:
    """SAM `HttpApi` event: a route of the HTTP API (payload format 2.0) to the function."""
    version = str(props.get("PayloadFormatVersion", "2.0"))
    if version != "2.0":
        raise TemplateError(f"{who}: PayloadFormatVersion {version} is not supported locally "
                            "(2.0 only)")
    for key in ("Auth", "RouteSettings"):
        if key in props:
            log.warning("%s: %s is not emulated locally", who, key)
    api = p.apis.get(props["ApiId"], who) if "ApiId" in props else _implicit_http_api(p)
    path, method = props.get("Path"), props.get("Method")
    key = "$default" if path is None and method is None else \
        f"{str(method or 'ANY').upper()} {path or '/'}"
    v2 = p.client("apigatewayv2")
    integration = v2.create_integration(ApiId=api.api_id, IntegrationType="AWS_PROXY",
                                        IntegrationUri=function_arn,
                                        PayloadFormatVersion="2.0")["IntegrationId"]
    route_id = v2.create_route(ApiId=api.api_id, RouteKey=key,
                               Target=f"integrations/{integration}")["RouteId"]
    api.integrations[integration] = function_arn
    p.apis.add_route(api, Route(key, function_arn, route_id), who)


def _implicit_http_api(p: Provisioner) -> LocalApi:
    """The API SAM creates for HttpApi events without ApiId (logical id ServerlessHttpApi)."""
    logical_id = "ServerlessHttpApi"
    if logical_id not in p.stack.created:
        p.stack.created[logical_id] = _create_http_api(
            p, logical_id, {}, "AWS::Serverless::HttpApi")
    return p.apis.get(p.stack.created[logical_id].ref, logical_id)


def _schedule_event(p: Provisioner, logical_id: str, event_id: str, function_arn: str,
                    props: dict) -> None:
    """SAM `Schedule` event: an EventBridge rule in moto, fired by the local scheduler."""
    who = f"{logical_id}.Events.{event_id}"
    expression = props["Schedule"]
    enabled = str(props.get("Enabled", True)).lower() != "false" and \
        str(props.get("State", "ENABLED")).upper() != "DISABLED"
    name = props.get("Name") or p.default_name(f"{logical_id}{event_id}")
    events = p.client("events")
    rule_arn = events.put_rule(**_compact(
        Name=name, ScheduleExpression=expression, State="ENABLED" if enabled else "DISABLED",
        Description=props.get("Description"),
    ))["RuleArn"]
    target = _compact(Id=f"{logical_id}{event_id}LambdaTarget"[:64], Arn=function_arn,
                      Input=props.get("Input"))
    events.put_targets(Rule=name, Targets=[target])
    if p.localstack:  # LocalStack's EventBridge fires scheduled rules itself
        return
    p.schedules.add(who, name, rule_arn, expression, function_arn,
                    parse_input(props.get("Input"), who))


# ----- API Gateway (HTTP and WebSocket APIs) -----------------------------------------------


def _create_http_api(p: Provisioner, logical_id: str, props: dict, kind: str) -> Physical:
    name = props.get("Name") or p.default_name(logical_id, 128)
    v2 = p.client("apigatewayv2")
    api_id = v2.create_api(**_compact(Name=name, ProtocolType="HTTP",
                                      Description=props.get("Description")))["ApiId"]
    api = p.apis.add_api(logical_id, api_id, "HTTP", name)
    p.stack.api_urls[api_id] = {"https": api.base_url}
    if kind == "AWS::Serverless::HttpApi":  # SAM creates the stage ($default unless StageName)
        stage = str(props.get("StageName") or "$default")
        p.apis.set_stage(api, stage, props.get("StageVariables") or {}, logical_id)
        v2.create_stage(ApiId=api_id, StageName=stage, AutoDeploy=True,
                        StageVariables={k: str(v) for k, v in
                                        (props.get("StageVariables") or {}).items()})
    return Physical(kind, api_id, {"ApiId": api_id, "ApiEndpoint": api.base_url, "Url": api.url,
                                   "Stage": api.stage})


def _serverless_http_api(p: Provisioner, logical_id: str, props: dict) -> Physical:
    for key in ("DefinitionBody", "DefinitionUri"):
        if key in props:
            raise TemplateError(f"{key} (OpenAPI) is not supported locally: declare the routes "
                                "as HttpApi events of the functions")
    for key in ("Auth", "CorsConfiguration", "Domain", "RouteSettings"):
        if key in props:
            log.warning("%s: %s is not emulated locally", logical_id, key)
    return _create_http_api(p, logical_id, props, "AWS::Serverless::HttpApi")


def _apigwv2_api(p: Provisioner, logical_id: str, props: dict) -> Physical:
    for key in ("Body", "BodyS3Location", "Target", "CredentialsArn", "RouteKey"):
        if key in props:
            raise TemplateError(f"{key} is not supported locally: declare Route and Integration "
                                "resources")
    protocol = str(props.get("ProtocolType", "")).upper()
    if protocol == "HTTP":
        if "CorsConfiguration" in props:
            log.warning("%s: CorsConfiguration is not emulated locally", logical_id)
        physical = _create_http_api(p, logical_id, props, "AWS::ApiGatewayV2::Api")
        return physical
    if protocol != "WEBSOCKET":
        raise TemplateError(f"ProtocolType {protocol!r}: HTTP or WEBSOCKET")
    name = props.get("Name") or p.default_name(logical_id, 128)
    selection = props.get("RouteSelectionExpression", "")
    api_id = p.client("apigatewayv2").create_api(**_compact(
        Name=name, ProtocolType="WEBSOCKET", RouteSelectionExpression=selection,
        Description=props.get("Description"),
        ApiKeySelectionExpression=props.get("ApiKeySelectionExpression"),
    ))["ApiId"]
    api = p.apis.add_api(logical_id, api_id, "WEBSOCKET", name, selection)
    api.region, api.account_id = p.stack.region, p.stack.account_id
    p.stack.api_urls[api_id] = {"wss": api.base_url, "https": api.management_base_url}
    return Physical("AWS::ApiGatewayV2::Api", api_id, {
        "ApiId": api_id, "ApiEndpoint": api.base_url, "Url": api.url,
        "ManagementUrl": api.management_url, "Stage": api.stage,
    })


def _apigwv2_stage(p: Provisioner, logical_id: str, props: dict) -> Physical:
    api = p.apis.get(props["ApiId"], logical_id)
    stage = str(props["StageName"])
    variables = {k: str(v) for k, v in (props.get("StageVariables") or {}).items()}
    for key in ("AccessLogSettings", "DefaultRouteSettings", "RouteSettings"):
        if key in props:
            log.info("%s: %s has no local effect", logical_id, key)
    p.apis.set_stage(api, stage, variables, logical_id)
    p.client("apigatewayv2").create_stage(ApiId=api.api_id, StageName=stage,
                                          AutoDeploy=bool(props.get("AutoDeploy", False)),
                                          StageVariables=variables)
    api_physical = p.stack.created.get(api.logical_id)
    if api_physical is not None:  # URLs with the stage, for resources.json
        api_physical.attrs.update({"Url": api.url, "Stage": api.stage})
        if api.protocol == "WEBSOCKET":
            api_physical.attrs["ManagementUrl"] = api.management_url
    return Physical("AWS::ApiGatewayV2::Stage", stage, {})


def _apigwv2_integration(p: Provisioner, logical_id: str, props: dict) -> Physical:
    api = p.apis.get(props["ApiId"], logical_id)
    kind = props.get("IntegrationType")
    if kind != "AWS_PROXY":
        raise TemplateError(f"IntegrationType {kind!r}: only AWS_PROXY (Lambda proxy) is "
                            "supported locally")
    function_arn = function_arn_from_uri(props.get("IntegrationUri", ""))
    version = props.get("PayloadFormatVersion")
    if api.protocol == "HTTP" and str(version) != "2.0":
        raise TemplateError(f"PayloadFormatVersion {version!r}: the local HTTP API supports "
                            "2.0 only (and AWS requires it for HTTP APIs)")
    integration_id = p.client("apigatewayv2").create_integration(**_compact(
        ApiId=api.api_id, IntegrationType=kind, IntegrationUri=props["IntegrationUri"],
        PayloadFormatVersion=str(version) if version is not None else None,
    ))["IntegrationId"]
    api.integrations[integration_id] = function_arn
    return Physical("AWS::ApiGatewayV2::Integration", integration_id, {})


def _apigwv2_route(p: Provisioner, logical_id: str, props: dict) -> Physical:
    api = p.apis.get(props["ApiId"], logical_id)
    key = props["RouteKey"]
    target = props.get("Target")
    function_arn = None
    if target is not None:
        match = re.fullmatch(r"integrations/(\S+)", str(target))
        if not match or match.group(1) not in api.integrations:
            raise TemplateError(f"Target {target!r}: expected integrations/<id of an "
                                f"Integration of {api.logical_id}>")
        function_arn = api.integrations[match.group(1)]
    authorization = str(props.get("AuthorizationType", "NONE")).upper()
    authorizer = None
    if authorization == "CUSTOM":
        authorizer = api.authorizers.get(str(props.get("AuthorizerId")))
        if authorizer is None:
            raise TemplateError(f"AuthorizerId {props.get('AuthorizerId')!r}: expected the id of "
                                f"an Authorizer of {api.logical_id}")
        if api.protocol != "WEBSOCKET" or key != "$connect":
            raise TemplateError("a CUSTOM authorizer is supported locally on a WebSocket API's "
                                "$connect route only (the only route AWS allows it on)")
    elif authorization != "NONE":
        log.warning("%s: AuthorizationType %s is not enforced locally", logical_id,
                    props["AuthorizationType"])
    two_way = bool(props.get("RouteResponseSelectionExpression"))
    route_id = p.client("apigatewayv2").create_route(**_compact(
        ApiId=api.api_id, RouteKey=key, Target=target,
        RouteResponseSelectionExpression=props.get("RouteResponseSelectionExpression"),
        AuthorizationType=authorization if authorization != "NONE" else None,
        AuthorizerId=authorizer.authorizer_id if authorizer else None,
    ))["RouteId"]
    p.apis.add_route(api, Route(key, function_arn, route_id, route_response=two_way,
                                authorizer=authorizer), logical_id)
    return Physical("AWS::ApiGatewayV2::Route", route_id, {})


def _apigwv2_authorizer(p: Provisioner, logical_id: str, props: dict) -> Physical:
    """A Lambda REQUEST authorizer; websocket_api.py runs it before `$connect` as API Gateway
    does (identity sources, the REQUEST event, the policy, `requestContext.authorizer`)."""
    api = p.apis.get(props["ApiId"], logical_id)
    kind = str(props.get("AuthorizerType", ""))
    if api.protocol != "WEBSOCKET" or kind != "REQUEST":
        raise TemplateError(f"AuthorizerType {kind!r} on a {api.protocol} API: only Lambda "
                            "REQUEST authorizers of WebSocket APIs are supported locally")
    function_arn = function_arn_from_uri(props.get("AuthorizerUri", ""))
    sources = tuple(parse_identity_source(s) for s in props.get("IdentitySource") or [])
    if not sources:
        raise TemplateError("IdentitySource is required (AWS requires it for WebSocket "
                            "REQUEST authorizers)")
    if "AuthorizerResultTtlInSeconds" in props:
        log.warning("%s: AuthorizerResultTtlInSeconds: WebSocket authorizers are not cached",
                    logical_id)
    name = props.get("Name") or p.default_name(logical_id, 128)
    authorizer_id = p.client("apigatewayv2").create_authorizer(**_compact(
        ApiId=api.api_id, AuthorizerType=kind, AuthorizerUri=props["AuthorizerUri"],
        IdentitySource=list(props.get("IdentitySource") or []), Name=name,
    ))["AuthorizerId"]
    api.authorizers[authorizer_id] = Authorizer(authorizer_id, name, function_arn, sources)
    return Physical("AWS::ApiGatewayV2::Authorizer", authorizer_id,
                    {"AuthorizerId": authorizer_id})


# ----- Secrets Manager ---------------------------------------------------------------------

# GenerateSecretString property -> GetRandomPassword parameter.
_PASSWORD_OPTIONS = ("PasswordLength", "ExcludeCharacters", "ExcludeNumbers",
                     "ExcludePunctuation", "ExcludeUppercase", "ExcludeLowercase",
                     "IncludeSpace", "RequireEachIncludedType")


def _secret(p: Provisioner, logical_id: str, props: dict) -> Physical:
    """A secret with its value: `SecretString`, or generated as CloudFormation does
    (`GenerateSecretString`: the emulator's own GetRandomPassword, placed under
    `GenerateStringKey` of `SecretStringTemplate`). Ref is the secret's ARN."""
    sm = p.client("secretsmanager")
    name = props.get("Name") or p.default_name(logical_id, 512)
    generate = props.get("GenerateSecretString")
    if "SecretString" in props and generate is None:
        value = str(props["SecretString"])
    elif generate is not None and "SecretString" not in props:
        options = {k: generate[k] for k in _PASSWORD_OPTIONS if k in generate}
        if "PasswordLength" in options:
            options["PasswordLength"] = int(options["PasswordLength"])
        password = sm.get_random_password(**options)["RandomPassword"]
        template, key = generate.get("SecretStringTemplate"), generate.get("GenerateStringKey")
        if (template is None) != (key is None):
            raise TemplateError("GenerateSecretString: SecretStringTemplate and "
                                "GenerateStringKey go together")
        if template is None:
            value = password
        else:
            document = json.loads(template)
            if not isinstance(document, dict):
                raise TemplateError("SecretStringTemplate must be a JSON object")
            document[key] = password
            value = json.dumps(document)
    else:
        raise TemplateError("needs exactly one of SecretString and GenerateSecretString")
    arn = sm.create_secret(**_compact(
        Name=name, SecretString=value, Description=props.get("Description"),
        Tags=_tags_list(props.get("Tags")) or None,
    ))["ARN"]
    return Physical("AWS::SecretsManager::Secret", arn, {"Id": arn})


# ----- Step Functions ----------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


def _definition_text(p: Provisioner, logical_id: str, props: dict) -> str:
    if "Definition" in props:
        text = json.dumps(props["Definition"])
    elif "DefinitionString" in props:
        text = props["DefinitionString"]
    elif isinstance(props.get("DefinitionUri"), str):
        text = (p.template_dir / props["DefinitionUri"]).read_text(encoding="utf-8")
    else:
        raise TemplateError(f"{logical_id}: needs Definition, DefinitionString or a local "
                            "DefinitionUri file (S3 locations are not supported locally)")
    substitutions = {k: str(v) for k, v in (props.get("DefinitionSubstitutions") or {}).items()}
    text = _PLACEHOLDER.sub(lambda m: substitutions.get(m.group(1), m.group(0)), text)
    missing = sorted(set(_PLACEHOLDER.findall(text)))
    if missing:
        raise TemplateError(f"{logical_id}: placeholders without DefinitionSubstitutions: "
                            + ", ".join(missing))
    json.loads(text)  # fail here, with the resource name, rather than inside moto
    return text


def _state_machine(p: Provisioner, logical_id: str, props: dict) -> Physical:
    name = props.get("Name") or props.get("StateMachineName") or p.default_name(logical_id, 80)
    for event_id, event in (props.get("Events") or {}).items():
        log.warning("state machine %s: event %s (%s) is not wired locally",
                    logical_id, event_id, event.get("Type"))
    arn = p.client("stepfunctions").create_state_machine(**_compact(
        name=name,
        definition=_definition_text(p, logical_id, props),
        roleArn=p.role_arn(),
        type=props.get("Type") or props.get("StateMachineType") or "STANDARD",
    ))["stateMachineArn"]
    kind = p.stack.resources[logical_id]["Type"]
    return Physical(kind, arn, {"Arn": arn, "Name": name})


HANDLERS: dict[str, Callable[[Provisioner, str, dict], Physical]] = {
    "AWS::DynamoDB::Table": _dynamodb_table,
    "AWS::SQS::Queue": _sqs_queue,
    "AWS::Events::EventBus": _events_bus,
    "AWS::Events::Rule": _events_rule,
    "AWS::Serverless::Function": _serverless_function,
    "AWS::Serverless::HttpApi": _serverless_http_api,
    "AWS::ApiGatewayV2::Api": _apigwv2_api,
    "AWS::ApiGatewayV2::Stage": _apigwv2_stage,
    "AWS::ApiGatewayV2::Integration": _apigwv2_integration,
    "AWS::ApiGatewayV2::Route": _apigwv2_route,
    "AWS::ApiGatewayV2::Authorizer": _apigwv2_authorizer,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::Serverless::StateMachine": _state_machine,
    "AWS::StepFunctions::StateMachine": _state_machine,
}
