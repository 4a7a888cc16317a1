"""Local API Gateway WebSocket API and its @connections management API.

WebSocket server (`websockets` sync server, one thread per connection), at
`ws://host:CLANWAR_WS_PORT/` or `/{stage}`:
- opening handshake: with a Lambda REQUEST authorizer on `$connect` (AuthorizationType CUSTOM),
  first as API Gateway does: an identity source (`route.request.querystring.<name>` /
  `route.request.header.<name>`) missing or empty refuses the handshake with 401 without
  invoking anything; else the authorizer function gets the REQUEST event (`type`, `methodArn`
  `arn:aws:execute-api:{region}:{account}:{api}/{stage}/$connect`, headers, query string,
  stage variables, the CONNECT requestContext); an `Unauthorized` error is 401, another error
  or a malformed answer 500; its policy must Allow `execute-api:Invoke` on the methodArn (an
  explicit Deny or no Allow: 403). Its `context` (string, number or boolean values) plus
  `principalId` and `integrationLatency` is `requestContext.authorizer` of every later event of
  the connection ($connect, messages, $disconnect). Then the `$connect` route's function gets a
  CONNECT event; an error gives HTTP 500, a `statusCode` outside 2xx refuses the handshake with
  that status; no `$connect` route accepts every connection. A `Sec-WebSocket-Protocol` header
  in the answer is returned to the client, as API Gateway does.
- each message: the route is the value of the RouteSelectionExpression
  (`$request.body.action`) in the JSON message, else `$default`; its function gets a MESSAGE
  event. No route: the client gets `{"message": "Forbidden", ...}`; a function error:
  `{"message": "Internal server error", ...}` (API Gateway's texts).
  The function's `body` is sent back to the client only when the route has a
  RouteResponseSelectionExpression (a two-way route, as on AWS, where it also needs an
  AWS::ApiGatewayV2::RouteResponse); otherwise it is dropped, with a warning in the log.
- close (by the client, by DeleteConnection or at shutdown): `$disconnect` gets a DISCONNECT
  event (not at launcher shutdown).

Management API (plain HTTP, at `http://host:CLANWAR_WS_MGMT_PORT[/{stage}]`), what
`aws-sdk-apigatewaymanagement` calls; SigV4 signatures are accepted unchecked:
- `POST /@connections/{id}`: body sent to the client (text frame if UTF-8, else binary); 200.
- `GET /@connections/{id}`: `{"connectedAt", "identity": {"sourceIp", "userAgent"}, "lastActiveAt"}`.
- `DELETE /@connections/{id}`: closes the connection (1000); 204.
- unknown or closed connection: 410 `{"message":"Gone"}` with `x-amzn-ErrorType: GoneException`
  (the header is what makes the SDK return `GoneException`); a POST body over 128 KB: 413
  PayloadTooLargeException; a stage other than the API's: 403 Forbidden.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .apigw import Authorizer, LocalApi, request_id, request_time, select_ws_route

log = logging.getLogger("localaws.websocket")

MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway: 128 KB per message (and per PostToConnection)
Invoke = Callable[[str, dict], tuple[str, bool]]


def connection_id() -> str:
    """In the style of API Gateway's (`d4_GYeZ-IAMCJVA=`): URL-safe base64, 16 characters."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


@dataclass
class Connection:
    id: str
    ws: Any  # websockets.sync.server.ServerConnection
    connected_at: int  # ms
    source_ip: str
    user_agent: str
    domain_name: str
    last_active: int = 0
    closed_by_api: bool = False
    authorizer: dict | None = None  # requestContext.authorizer, once an authorizer allowed it


class WebSocketApiServer:
    """The WebSocket server and the management API of one WebSocket API."""

    def __init__(self, api: LocalApi, host: str, port: int, mgmt_port: int, invoke: Invoke):
        from websockets.sync.server import serve

        self.api = api
        self.invoke = invoke
        self.connections: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._warned_no_route_response: set[str] = set()
        self._mgmt = _MgmtServer((host, mgmt_port), self)  # binds now: errors surface at start
        self._ws = serve(self._handler, host, port, process_request=self._process_request,
                         process_response=self._process_response, compression=None,
                         max_size=MAX_MESSAGE_BYTES, open_timeout=10, close_timeout=3,
                         server_header=None,
                         logger=logging.getLogger("localaws.websocket.server"))
        self._threads = [
            threading.Thread(target=self._ws.serve_forever, name="websocket-api", daemon=True),
            threading.Thread(target=self._mgmt.serve_forever, name="websocket-mgmt", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._mgmt.shutdown()
        self._mgmt.server_close()
        self._ws.shutdown()

    # ----- events ---------------------------------------------------------------------------

    def _context(self, conn: Connection, route_key: str, event_type: str, req_id: str) -> dict:
        now = time.time()
        context = {} if conn.authorizer is None else {"authorizer": dict(conn.authorizer)}
        return {
            **context,
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": req_id,
            "requestTime": request_time(now),
            "messageDirection": "IN",
            "stage": self.api.stage,
            "connectedAt": conn.connected_at,
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
            "requestId": req_id,
            "domainName": conn.domain_name,
            "connectionId": conn.id,
            "apiId": self.api.api_id,
        }

    @staticmethod
    def _request_parts(conn: Connection, headers: list[tuple[str, str]], query: str) -> dict:
        """headers, multiValueHeaders and the query string maps of a CONNECT request."""
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in headers:
            multi.setdefault(name, []).append(value)
            single[name] = value if name not in single else f"{single[name]},{value}"
        for name, value in (("X-Forwarded-For", conn.source_ip), ("X-Forwarded-Proto", "http")):
            if name not in single:
                single[name], multi[name] = value, [value]
        event: dict[str, Any] = {"headers": single, "multiValueHeaders": multi}
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            event["queryStringParameters"] = {k: v for k, v in pairs}  # last one wins, as AWS
            mv: dict[str, list[str]] = {}
            for k, v in pairs:
                mv.setdefault(k, []).append(v)
            event["multiValueQueryStringParameters"] = mv
        return event

    def connect_event(self, conn: Connection, headers: list[tuple[str, str]], query: str,
                      req_id: str) -> dict:
        event = self._request_parts(conn, headers, query)
        event["requestContext"] = self._context(conn, "$connect", "CONNECT", req_id)
        event["isBase64Encoded"] = False
        if self.api.stage_variables:
            event["stageVariables"] = self.api.stage_variables
        return event

    def _event(self, conn: Connection, route_key: str, event_type: str, req_id: str,
               **context: Any) -> dict:
        event: dict[str, Any] = {
            "requestContext": {**self._context(conn, route_key, event_type, req_id), **context},
            "isBase64Encoded": False,
        }
        if self.api.stage_variables:
            event["stageVariables"] = self.api.stage_variables
        return event

    # ----- handshake ------------------------------------------------------------------------

    def _process_request(self, ws: Any, request: Any) -> Any:
        path, _, query = request.path.partition("?")
        if path.rstrip("/") not in ("", f"/{self.api.stage}"):
            log.info("connect to %s: unknown stage path, 403", request.path)
            return ws.respond(403, '{"message":"Forbidden"}')
        conn = Connection(
            id=connection_id(), ws=ws, connected_at=int(time.time() * 1000),
            source_ip=str(ws.remote_address[0]), user_agent=request.headers.get("User-Agent", ""),
            domain_name=request.headers.get("Host", ""),
        )
        conn.last_active = conn.connected_at
        ws.localaws = conn  # read back in _process_response and _handler
        route = self.api.routes.get("$connect")
        if route is None:
            return None
        req_id = request_id()
        headers = list(request.headers.raw_items())
        if route.authorizer is not None:
            refusal = self._authorize(ws, route.authorizer, conn, headers, query, req_id)
            if refusal is not None:
                return refusal
        if route.function_arn is None:
            return None
        event = self.connect_event(conn, headers, query, req_id)
        output, errored = self.invoke(route.function_arn, event)
        status, headers, _body = _proxy_answer(output, errored)
        log.info("$connect %s: %d", conn.id, status)
        if not 200 <= status < 300:
            return ws.respond(status, json.dumps({"message": "Forbidden" if status < 500
                                                  else "Internal server error"}))
        protocol = headers.get("sec-websocket-protocol")
        if protocol:
            ws.localaws_protocol = protocol
        return None

    def authorizer_event(self, conn: Connection, headers: list[tuple[str, str]], query: str,
                         req_id: str) -> dict:
        """API Gateway's REQUEST authorizer event of a WebSocket `$connect`."""
        api = self.api
        event: dict[str, Any] = {
            "type": "REQUEST",
            "methodArn": f"arn:aws:execute-api:{api.region}:{api.account_id}:{api.api_id}/"
                         f"{api.stage}/$connect",
            **self._request_parts(conn, headers, query),
            "stageVariables": dict(api.stage_variables),
            "requestContext": self._context(conn, "$connect", "CONNECT", req_id),
        }
        return event

    def _authorize(self, ws: Any, authorizer: Authorizer, conn: Connection,
                   headers: list[tuple[str, str]], query: str, req_id: str) -> Any:
        """None when the authorizer allows the connection (conn.authorizer is then set), else
        the handshake's refusal."""
        pairs = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        lower = {name.lower(): value for name, value in headers}
        for where, name in authorizer.identity_sources:
            value = pairs.get(name) if where == "querystring" else lower.get(name.lower())
            if not value:
                log.info("$connect %s: identity source %s.%s missing, 401", conn.id, where, name)
                return ws.respond(401, '{"message":"Unauthorized"}')
        event = self.authorizer_event(conn, headers, query, req_id)
        started = time.time()
        output, errored = self.invoke(authorizer.function_arn, event)
        latency = int((time.time() - started) * 1000)
        decision, answer = _authorizer_decision(output, errored, event["methodArn"])
        log.info("$connect %s: authorizer %s: %s", conn.id, authorizer.name, decision)
        if decision == "unauthorized":
            return ws.respond(401, '{"message":"Unauthorized"}')
        if decision == "error":
            return ws.respond(500, '{"message":"Internal server error"}')
        if decision == "deny":
            return ws.respond(403, '{"message":"Forbidden"}')
        conn.authorizer = {**(answer.get("context") or {}),
                           "principalId": answer.get("principalId"),
                           "integrationLatency": latency}
        return None

    @staticmethod
    def _process_response(ws: Any, request: Any, response: Any) -> Any:
        protocol = getattr(ws, "localaws_protocol", None)
        if protocol and response.status_code == 101:
            response.headers["Sec-WebSocket-Protocol"] = protocol
        return None

    # ----- connection -----------------------------------------------------------------------

    def _handler(self, ws: Any) -> None:
        conn: Connection = ws.localaws
        with self._lock:
            self.connections[conn.id] = conn
        try:
            for message in ws:
                conn.last_active = int(time.time() * 1000)
                self._on_message(conn, message)
        except Exception as exc:  # ConnectionClosedError: abnormal close, already logged by code
            log.debug("connection %s ended: %s", conn.id, exc)
        finally:
            with self._lock:
                self.connections.pop(conn.id, None)
            self._on_disconnect(conn)

    def _on_message(self, conn: Connection, message: str | bytes) -> None:
        req_id = request_id()
        if isinstance(message, str):
            body, is_b64 = message, False
            key = select_ws_route(self.api.route_selection_expression, message)
        else:
            body, is_b64, key = base64.b64encode(message).decode(), True, None
        route = self.api.routes.get(key) if key is not None else None
        route = route or self.api.routes.get("$default")
        if route is None or route.function_arn is None:
            log.info("message on %s: no route for %r and no $default", conn.id, key)
            return self._reply_error(conn, "Forbidden", req_id)
        event = self._event(conn, route.key, "MESSAGE", req_id,
                            messageId=request_id())
        event["body"] = body
        event["isBase64Encoded"] = is_b64
        output, errored = self.invoke(route.function_arn, event)
        status, _headers, answer = _proxy_answer(output, errored)
        log.info("message on %s -> %s: %d", conn.id, route.key, status)
        if errored:
            return self._reply_error(conn, "Internal server error", req_id)
        if answer:
            if route.route_response:
                self._send(conn, answer)
            elif route.key not in self._warned_no_route_response:
                self._warned_no_route_response.add(route.key)
                log.warning("route %s returned a body but has no RouteResponseSelectionExpression: "
                            "not sent to the client (as on AWS; post it with @connections, or "
                            "make the route two-way)", route.key)

    def _reply_error(self, conn: Connection, message: str, req_id: str) -> None:
        self._send(conn, json.dumps({"message": message, "connectionId": conn.id,
                                     "requestId": req_id}))

    def _on_disconnect(self, conn: Connection) -> None:
        route = self.api.routes.get("$disconnect")
        if self._stopping or route is None or route.function_arn is None:
            return
        code = conn.ws.close_code
        if conn.closed_by_api:
            code, reason = 1000, "Connection deleted by API"
        else:
            code = 1006 if code is None else code
            reason = conn.ws.close_reason or {1000: "Normal closure", 1001: "Going away",
                                              1005: "Client-side close frame status not set",
                                              1006: "Connection closed abnormally"}.get(code, "")
        event = self._event(conn, "$disconnect", "DISCONNECT", request_id(),
                            disconnectStatusCode=code, disconnectReason=reason)
        event["headers"] = {"Host": conn.domain_name, "X-Forwarded-For": conn.source_ip}
        event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
        output, errored = self.invoke(route.function_arn, event)
        log.info("$disconnect %s (%s): %s", conn.id, code, "ERROR" if errored else "ok")

    @staticmethod
    def _send(conn: Connection, data: str | bytes) -> bool:
        try:
            conn.ws.send(data)
            return True
        except Exception as exc:  # ConnectionClosed
            log.debug("send to %s failed: %s", conn.id, exc)
            return False

    # ----- management API -------------------------------------------------------------------

    def post_to_connection(self, conn_id: str, data: bytes) -> bool:
        conn = self.connections.get(conn_id)
        if conn is None:
            return False
        try:
            payload: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        return self._send(conn, payload)

    def delete_connection(self, conn_id: str) -> bool:
        with self._lock:
            conn = self.connections.pop(conn_id, None)  # gone for the API from now on
        if conn is None:
            return False
        conn.closed_by_api = True
        threading.Thread(target=conn.ws.close, name=f"close-{conn_id}", daemon=True).start()
        return True


def _authorizer_decision(output: str, errored: bool, method_arn: str) -> tuple[str, dict]:
    """("allow" | "deny" | "unauthorized" | "error", the answer) of a REQUEST authorizer, as
    API Gateway judges it: an `Unauthorized` error is 401; any other error, an answer without
    `principalId` and `policyDocument`, or a context value that is not a string, number or
    boolean is a 500; otherwise an explicit Deny of `execute-api:Invoke` on the method wins,
    then an Allow; no matching statement is a Deny."""
    try:
        answer = json.loads(output)
    except ValueError:
        return "error", {}
    if errored:
        message = answer.get("errorMessage") if isinstance(answer, dict) else None
        return ("unauthorized" if message == "Unauthorized" else "error"), {}
    if not isinstance(answer, dict) or "principalId" not in answer or \
            not isinstance(answer.get("policyDocument"), dict):
        return "error", {}
    context = answer.get("context") or {}
    if not isinstance(context, dict) or any(
            isinstance(v, (dict, list)) or v is None for v in context.values()):
        return "error", {}
    statements = answer["policyDocument"].get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    matching = []
    for statement in statements:
        if not isinstance(statement, dict):
            return "error", {}
        actions = statement.get("Action") or []
        resources = statement.get("Resource") or []
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions) and \
                any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            matching.append(str(statement.get("Effect", "")))
    if "Deny" in matching or "Allow" not in matching:
        return "deny", answer
    return "allow", answer


def _proxy_answer(output: str, errored: bool) -> tuple[int, dict[str, str], str | bytes]:
    """(statusCode, lower-cased headers, body) of a Lambda proxy answer; an answer without
    statusCode counts as 200 with no body."""
    if errored:
        return 500, {}, ""
    try:
        answer = json.loads(output)
    except ValueError:
        return 500, {}, ""
    if not isinstance(answer, dict) or "statusCode" not in answer:
        return 200, {}, ""
    try:
        status = int(answer["statusCode"])
    except (TypeError, ValueError):
        return 500, {}, ""
    headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
    body = answer.get("body")
    if body is None:
        return status, headers, ""
    if not isinstance(body, str):
        body = json.dumps(body)
    if answer.get("isBase64Encoded"):
        return status, headers, base64.b64decode(body)
    return status, headers, body


class _MgmtHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "localaws"
    server: _MgmtServer

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict | None = None, error_type: str | None = None) -> None:
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("x-amzn-RequestId", request_id())
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _connection_id(self) -> str | None:
        """`[/{stage}]/@connections/{id}` -> id; None after replying with an error."""
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        api = self.server.owner.api
        if len(parts) == 3 and parts[1] == "@connections":
            if parts[0] != api.stage:
                self._reply(403, {"message": "Forbidden"}, "ForbiddenException")
                return None
            return parts[2]
        if len(parts) == 2 and parts[0] == "@connections":
            return parts[1]
        self._reply(404, {"message": "Not Found"}, "NotFoundException")
        return None

    def _gone(self, conn_id: str, what: str) -> None:
        log.info("%s @connections/%s: 410 Gone", what, conn_id)
        self._reply(410, {"message": "Gone"}, "GoneException")

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_MESSAGE_BYTES:
            self.close_connection = True
            self._reply(413, {"message": "Request entity too large"}, "PayloadTooLargeException")
            return None
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if body is None:
            return
        conn_id = self._connection_id()
        if conn_id is None:
            return
        if not self.server.owner.post_to_connection(conn_id, body):
            return self._gone(conn_id, "POST")
        log.info("POST @connections/%s: %d bytes", conn_id, len(body))
        self._reply(200)

    def do_GET(self) -> None:  # noqa: N802
        conn_id = self._connection_id()
        if conn_id is None:
            return
        conn = self.server.owner.connections.get(conn_id)
        if conn is None:
            return self._gone(conn_id, "GET")
        self._reply(200, {"connectedAt": _iso(conn.connected_at),
                          "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
                          "lastActiveAt": _iso(conn.last_active)})

    def do_DELETE(self) -> None:  # noqa: N802
        conn_id = self._connection_id()
        if conn_id is None:
            return
        if not self.server.owner.delete_connection(conn_id):
            return self._gone(conn_id, "DELETE")
        log.info("DELETE @connections/%s", conn_id)
        self._reply(204)


class _MgmtServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: WebSocketApiServer):
        self.owner = owner
        super().__init__(address, _MgmtHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("management API connection from %s failed", client_address, exc_info=True)
