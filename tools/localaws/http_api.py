"""Local API Gateway HTTP API (payload format 2.0) in front of the Lambda bridge.

Each request is matched to a route of the template's HTTP API (`apigw.match_http_route`), turned
into the event API Gateway sends to a Lambda proxy integration (payload format version 2.0),
and the function's answer into the HTTP response, as API Gateway does:

- an answer with `statusCode` gives that status, its `headers`, `cookies` (Set-Cookie) and
  `body` (base64-decoded when `isBase64Encoded`);
- any other valid JSON answer gives 200, `content-type: application/json` and that JSON as body;
- a function error, a timeout or an answer that is not JSON gives 500
  `{"message":"Internal Server Error"}`;
- no route: 404 `{"message":"Not Found"}`; a body over 10 MB: 413
  `{"message":"Request Entity Too Large"}`.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from .apigw import (DEFAULT_STAGE, LocalApi, match_http_route, parse_http_route_key,
                    request_id, request_time)

log = logging.getLogger("localaws.http")

MAX_BODY_BYTES = 10 * 1024 * 1024  # HTTP API payload limit
Invoke = Callable[[str, dict], tuple[str, bool]]

_TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml",
               "application/ecmascript", "application/graphql")


def _is_text(content_type: str | None, body: bytes) -> bool:
    """API Gateway base64-encodes request bodies that are not text; decided on Content-Type
    (and, without one, on whether the bytes are UTF-8)."""
    if content_type:
        media = content_type.split(";")[0].strip().lower()
        if media.startswith(_TEXT_TYPES) or media.endswith(("+json", "+xml")):
            return True
        return False
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def build_event(api: LocalApi, route_key: str, method: str, raw_path: str, raw_query: str,
                headers: list[tuple[str, str]], body: bytes, path_params: dict[str, str],
                source_ip: str, server_port: int, req_id: str) -> dict:
    """The payload format 2.0 event of one request."""
    now = time.time()
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    joined.setdefault("x-forwarded-for", source_ip)
    joined.setdefault("x-forwarded-port", str(server_port))
    joined.setdefault("x-forwarded-proto", "http")
    joined.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}")
    host = joined.get("host") or f"127.0.0.1:{server_port}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    if raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": "123456789012",
        "apiId": api.api_id,
        "domainName": host,
        "domainPrefix": api.api_id,
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": req_id,
        "routeKey": route_key,
        "stage": api.stage,
        "time": request_time(now),
        "timeEpoch": int(now * 1000),
    }
    if body:
        if _is_text(joined.get("content-type"), body):
            event["body"] = body.decode("utf-8", "replace")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    if path_params:
        event["pathParameters"] = path_params
    if api.stage_variables:
        event["stageVariables"] = api.stage_variables
    return event


class HttpResult:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status, self.headers, self.body = status, headers, body


def _error(status: int, message: str) -> HttpResult:
    return HttpResult(status, [("content-type", "application/json")],
                      json.dumps({"message": message}, separators=(",", ":")).encode())


def map_response(output: str, errored: bool) -> HttpResult:
    """The function's answer (payload format 2.0) as API Gateway turns it into a response."""
    if errored:
        return _error(500, "Internal Server Error")
    try:
        answer = json.loads(output)
    except ValueError:
        return _error(500, "Internal Server Error")
    if not (isinstance(answer, dict) and "statusCode" in answer):
        return HttpResult(200, [("content-type", "application/json")], output.encode("utf-8"))
    try:
        status = int(answer["statusCode"])
        headers = [(str(k), str(v)) for k, v in (answer.get("headers") or {}).items()]
        headers += [("set-cookie", str(c)) for c in answer.get("cookies") or []]
        body = answer.get("body")
        if body is None:
            data = b""
        elif not isinstance(body, str):
            data = json.dumps(body).encode("utf-8")
        elif answer.get("isBase64Encoded"):
            data = base64.b64decode(body)
        else:
            data = body.encode("utf-8")
    except (TypeError, ValueError, AttributeError):
        return _error(500, "Internal Server Error")
    if not 100 <= status <= 599:
        return _error(500, "Internal Server Error")
    return HttpResult(status, headers, data)


class _TooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "localaws"
    server: _Server

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (every method goes to _handle)
        self._handle()

    # TRACE and CONNECT too: API Gateway answers a method no route takes with 404, not
    # http.server's 501 (a 5xx the hostile-input campaign rightly flags).
    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_CONNECT = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _TooLarge
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _TooLarge
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        started = time.monotonic()
        api = self.server.api
        req_id = request_id()
        method = self.command.upper()
        raw_path, _, raw_query = self.path.partition("?")
        try:
            body = self._read_body()
        except _TooLarge:
            self.close_connection = True  # the rest of the body is not read
            return self._send(_error(413, "Request Entity Too Large"), req_id, method)
        except ValueError:
            self.close_connection = True
            return self._send(_error(400, "Bad Request"), req_id, method)
        route_path = raw_path
        if api.stage != DEFAULT_STAGE:  # a named stage is the first segment of every path
            prefix = f"/{api.stage}"
            route_path = raw_path[len(prefix):] if raw_path == prefix or \
                raw_path.startswith(prefix + "/") else None
        match = None
        if route_path is not None:
            segments = [unquote(s) for s in route_path[1:].split("/")] if route_path not in ("", "/") else []
            match = match_http_route(self.server.routes, method, segments)
        if match is None:
            result = _error(404, "Not Found")
            log.info("%s %s -> no route: 404", method, self.path)
            return self._send(result, req_id, method)
        route, params = match
        function_arn = api.routes[route.key].function_arn
        event = build_event(api, route.key, method, raw_path, raw_query, list(self.headers.items()),
                            body, params, self.client_address[0], self.server.server_address[1],
                            req_id)
        if function_arn is None:
            result = _error(500, "Internal Server Error")
        else:
            result = map_response(*self.server.invoke(function_arn, event))
        log.info("%s %s -> %s: %d in %.0f ms", method, self.path, route.key, result.status,
                 (time.monotonic() - started) * 1000)
        self._send(result, req_id, method)

    def _send(self, result: HttpResult, req_id: str, method: str) -> None:
        self.send_response(result.status)
        names = {name.lower() for name, _ in result.headers}
        for name, value in result.headers:
            self.send_header(name, value)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(result.body)))
        self.send_header("apigw-requestid", req_id)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(result.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: LocalApi, invoke: Invoke):
        self.api = api
        self.invoke = invoke
        self.routes = [parse_http_route_key(key) for key in api.routes]
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("HTTP API connection from %s failed", client_address, exc_info=True)


class HttpApiServer:
    """Serves one HTTP API on host:port in a background thread."""

    def __init__(self, api: LocalApi, host: str, port: int, invoke: Invoke):
        self.api = api
        self._server = _Server((host, port), api, invoke)  # binds now: errors surface at start
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-api",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
