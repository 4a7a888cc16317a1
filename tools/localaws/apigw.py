"""API Gateway (v2) of the local stack: the APIs of the template and how they reach Lambda.

The provisioner records here what the template declares (an `AWS::Serverless::HttpApi` with
the `HttpApi` events of SAM functions, or `AWS::ApiGatewayV2::Api` + `Route` + `Integration` +
`Stage` for HTTP and WebSocket APIs); `http_api.py` and `websocket_api.py` serve them, and
invoke the integrated functions through moto's Lambda, i.e. through the same bridge as every
other invocation (lambda_bridge.py).

One HTTP API and one WebSocket API per stack (one port each); a second one fails the start.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .template import TemplateError

log = logging.getLogger("localaws.apigw")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
DEFAULT_WS_PORT = 8081
DEFAULT_WS_MGMT_PORT = 8082
DEFAULT_STAGE = "$default"

_LAMBDA_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(?::[A-Za-z0-9$_-]+)?")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "ANY")


def function_arn_from_uri(uri: str) -> str:
    """Lambda ARN inside an integration URI (`arn:aws:apigateway:{region}:lambda:path/
    2015-03-31/functions/{arn}/invocations`) or a plain function ARN."""
    match = _LAMBDA_ARN.search(uri or "")
    if not match:
        raise TemplateError(f"IntegrationUri {uri!r} names no Lambda function ARN "
                            "(only Lambda proxy integrations are supported locally)")
    return match.group(0)


def request_id() -> str:
    """An id in the style of API Gateway's (`JKJaXmPLvHcESHA=`)."""
    return base64.b64encode(os.urandom(11)).decode()


def request_time(epoch: float) -> str:
    """API Gateway's requestTime format: 09/Feb/2024:18:11:43 +0000."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch))


def invoke_function(function_arn: str, event: dict) -> tuple[str, bool]:
    """Invokes a function of the emulator as API Gateway does (synchronously) and returns
    (output, errored). Goes through moto's `LambdaFunction._invoke_lambda`, which the bridge
    replaces: the real binary runs, with its warm pool, timeout and logs."""
    from moto.awslambda.utils import get_backend

    parts = function_arn.split(":")
    try:
        fn = get_backend(parts[4], parts[3]).get_function(function_arn)
    except Exception as exc:  # deleted since the stack started, ...
        log.error("cannot invoke %s: %s", function_arn, exc)
        return json.dumps({"errorType": "ResourceNotFoundException", "errorMessage": str(exc)}), True
    output, errored, _logs = fn._invoke_lambda(event)
    return output, errored


@dataclass
class Authorizer:
    """A Lambda REQUEST authorizer (AWS::ApiGatewayV2::Authorizer) of a WebSocket API."""
    authorizer_id: str
    name: str
    function_arn: str
    # ("querystring" | "header", name) from IdentitySource `route.request.querystring.<name>`
    # / `route.request.header.<name>`: all must be present, or API Gateway answers 401 itself.
    identity_sources: tuple[tuple[str, str], ...]


_IDENTITY_SOURCE = re.compile(r"route\.request\.(querystring|header)\.([A-Za-z0-9_.-]+)")


def parse_identity_source(source: str) -> tuple[str, str]:
    match = _IDENTITY_SOURCE.fullmatch(str(source))
    if not match:
        raise TemplateError(f"IdentitySource {source!r}: only route.request.querystring.<name> "
                            "and route.request.header.<name> are supported locally")
    return match.group(1), match.group(2)


@dataclass
class Route:
    key: str  # "POST /wars/{war_id}/join", "$default", "$connect", "subscribe"
    function_arn: str | None  # None: a route without integration (nothing is invoked)
    route_id: str = ""
    route_response: bool = False  # WebSocket: RouteResponseSelectionExpression is set
    authorizer: Authorizer | None = None  # WebSocket $connect: AuthorizationType CUSTOM


@dataclass
class LocalApi:
    logical_id: str
    api_id: str
    protocol: str  # HTTP | WEBSOCKET
    name: str
    route_selection_expression: str = ""
    stage: str = DEFAULT_STAGE
    stage_variables: dict[str, str] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    integrations: dict[str, str] = field(default_factory=dict)  # integration id -> function ARN
    authorizers: dict[str, Authorizer] = field(default_factory=dict)  # authorizer id -> it
    region: str = "us-east-1"  # of the stack: authorizers' methodArn
    account_id: str = "123456789012"
    base_url: str = ""  # http://127.0.0.1:8080 or ws://127.0.0.1:8081
    management_base_url: str = ""  # WebSocket only: http://127.0.0.1:8082

    @property
    def url(self) -> str:
        """What a client uses: the base URL, plus /{stage} unless it is $default."""
        return self.base_url + ("" if self.stage == DEFAULT_STAGE else f"/{self.stage}")

    @property
    def management_url(self) -> str:
        return self.management_base_url + ("" if self.stage == DEFAULT_STAGE else f"/{self.stage}")


class ApiRegistry:
    """The APIs of the local stack, filled during provisioning, read by the servers."""

    def __init__(self, *, host: str = DEFAULT_HOST, http_port: int = DEFAULT_HTTP_PORT,
                 ws_port: int = DEFAULT_WS_PORT, ws_mgmt_port: int = DEFAULT_WS_MGMT_PORT):
        self.host = host
        self.http_port = http_port
        self.ws_port = ws_port
        self.ws_mgmt_port = ws_mgmt_port
        self.apis: dict[str, LocalApi] = {}
        self._stages_seen: set[str] = set()

    @classmethod
    def from_env(cls) -> ApiRegistry:
        def port(name: str, default: int) -> int:
            value = os.environ.get(name) or str(default)
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise TemplateError(f"{name}={value!r} is not a TCP port")
            return int(value)

        return cls(host=DEFAULT_HOST,
                   http_port=port("CLANWAR_API_PORT", DEFAULT_HTTP_PORT),
                   ws_port=port("CLANWAR_WS_PORT", DEFAULT_WS_PORT),
                   ws_mgmt_port=port("CLANWAR_WS_MGMT_PORT", DEFAULT_WS_MGMT_PORT))

    def add_api(self, logical_id: str, api_id: str, protocol: str, name: str,
                route_selection_expression: str = "") -> LocalApi:
        protocol = protocol.upper()
        if protocol not in ("HTTP", "WEBSOCKET"):
            raise TemplateError(f"ProtocolType {protocol!r}: HTTP or WEBSOCKET")
        other = self.by_protocol(protocol)
        if other is not None:
            raise TemplateError(f"a second {protocol} API ({logical_id}; {other.logical_id} is "
                                "the first): the local stack serves one per protocol")
        if protocol == "WEBSOCKET":
            _check_selection_expression(route_selection_expression)
            api = LocalApi(logical_id, api_id, protocol, name, route_selection_expression,
                           base_url=f"ws://{self.host}:{self.ws_port}",
                           management_base_url=f"http://{self.host}:{self.ws_mgmt_port}")
        else:
            api = LocalApi(logical_id, api_id, protocol, name,
                           base_url=f"http://{self.host}:{self.http_port}")
        self.apis[api_id] = api
        return api

    def get(self, api_id: str, who: str) -> LocalApi:
        if api_id not in self.apis:
            raise TemplateError(f"{who}: ApiId {api_id!r} is not an API of this template")
        return self.apis[api_id]

    def by_protocol(self, protocol: str) -> LocalApi | None:
        return next((a for a in self.apis.values() if a.protocol == protocol), None)

    def set_stage(self, api: LocalApi, stage: str, variables: dict[str, str], who: str) -> None:
        if api.api_id in self._stages_seen:
            log.warning("%s: %s already has stage %r; the local stack serves only that one",
                        who, api.logical_id, api.stage)
            return
        self._stages_seen.add(api.api_id)
        api.stage = stage
        api.stage_variables = {k: str(v) for k, v in (variables or {}).items()}

    def add_route(self, api: LocalApi, route: Route, who: str) -> None:
        if route.key in api.routes:
            raise TemplateError(f"{who}: {api.logical_id} already has a route {route.key!r}")
        if api.protocol == "HTTP":
            parse_http_route_key(route.key)  # fail at start, not at the first request
        api.routes[route.key] = route

    def urls(self) -> dict[str, str]:
        """The local endpoints, for resources.json and the start log."""
        result = {}
        http = self.by_protocol("HTTP")
        if http:
            result["http_api"] = http.url
        ws = self.by_protocol("WEBSOCKET")
        if ws:
            result["websocket"] = ws.url
            result["websocket_management"] = ws.management_url
        return result


def _check_selection_expression(expression: str) -> None:
    if not re.fullmatch(r"\$request\.body\.[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*", expression or ""):
        raise TemplateError(f"RouteSelectionExpression {expression!r} is not supported locally "
                            "(only $request.body.<field>[.<field>...])")


def select_ws_route(expression: str, body: Any) -> str | None:
    """Value of `$request.body.a.b` in a JSON text message, or None."""
    if not isinstance(body, str):
        return None
    try:
        value: Any = json.loads(body)
    except (ValueError, RecursionError):
        # Not JSON, or nested deeper than Python parses: no key, so the `$default` route (as
        # on AWS) — the frame used to end the connection instead.
        return None
    for part in expression.split(".")[2:]:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, (dict, list)) or value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


# ----- HTTP route keys ---------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRoute:
    key: str
    method: str  # GET ... or ANY; "" for $default
    segments: tuple[tuple[str, str], ...]  # ("lit", "wars") | ("param", "war_id") | ("greedy", "proxy")


def parse_http_route_key(key: str) -> HttpRoute:
    if key == "$default":
        return HttpRoute(key, "", ())
    method, _, path = key.partition(" ")
    if method not in HTTP_METHODS or not path.startswith("/"):
        raise TemplateError(f"route key {key!r}: expected '$default' or 'METHOD /path' "
                            f"with METHOD one of {', '.join(HTTP_METHODS)}")
    segments = []
    parts = path[1:].split("/") if path != "/" else []
    for i, part in enumerate(parts):
        greedy = re.fullmatch(r"\{([A-Za-z0-9_.-]+)\+\}", part)
        param = re.fullmatch(r"\{([A-Za-z0-9_.-]+)\}", part)
        if greedy:
            if i != len(parts) - 1:
                raise TemplateError(f"route key {key!r}: a greedy {{name+}} must be last")
            segments.append(("greedy", greedy.group(1)))
        elif param:
            segments.append(("param", param.group(1)))
        elif "{" in part or "}" in part or not part:
            raise TemplateError(f"route key {key!r}: bad path segment {part!r}")
        else:
            segments.append(("lit", part))
    return HttpRoute(key, method, tuple(segments))


def match_http_route(routes: list[HttpRoute], method: str,
                     path_segments: list[str]) -> tuple[HttpRoute, dict[str, str]] | None:
    """API Gateway's choice among matching routes: the most specific path wins, segment by
    segment from the left (literal > {param} > {greedy+}, so a greedy route with a longer literal
    prefix wins), then an exact method over ANY; `$default` if nothing else matches."""
    best: tuple[tuple, HttpRoute, dict[str, str]] | None = None
    default = None
    for route in routes:
        if route.key == "$default":
            default = route
            continue
        if route.method not in (method, "ANY"):
            continue
        params = _match_segments(route.segments, path_segments)
        if params is None:
            continue
        rank = tuple({"lit": 2, "param": 1, "greedy": 0}[kind] for kind, _ in route.segments)
        score = (rank, route.method != "ANY")
        if best is None or score > best[0]:
            best = (score, route, params)
    if best is not None:
        return best[1], best[2]
    if default is not None:
        return default, {}
    return None


def _match_segments(template: tuple[tuple[str, str], ...],
                     segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for i, (kind, value) in enumerate(template):
        if kind == "greedy":
            rest = segments[i:]
            if not rest or not "/".join(rest):
                return None
            params[value] = "/".join(rest)
            return params
        if i >= len(segments):
            return None
        if kind == "lit":
            if segments[i] != value:
                return None
        elif not segments[i]:
            return None
        else:
            params[value] = segments[i]
    return params if len(segments) == len(template) else None
