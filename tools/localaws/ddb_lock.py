"""Serializes moto's DynamoDB requests: moto's DynamoDB backend is not thread-safe.

ThreadedMotoServer serves each request in its own thread. moto's TransactWriteItems deep-copies
the table while other threads write to it, and fails with `RuntimeError: dictionary changed size
during iteration` (an HTTP 500) under concurrent load; scans and queries iterate the same dicts.
`LocalMotoServer` wraps moto's WSGI app so that every request whose `X-Amz-Target` is a
DynamoDB (or DynamoDB Streams) operation runs under one global lock. Real DynamoDB is
serializable per item, so clients see no semantic difference, only less parallelism.

One moto path calls back into the server from inside a DynamoDB write: a table stream with a
Lambda event source mapping invokes the function synchronously in the write
(`LambdaBackend.send_dynamodb_items`). A function that calls DynamoDB would then wait for the
lock its own trigger holds, so those deliveries are deferred until the write has released the
lock (still before the write's HTTP response, as moto does it).

Relies on moto 5.2.5 internals (ThreadedMotoServer._server_entry, send_dynamodb_items): the
version is pinned in requirements.txt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

SERIALIZED_TARGET_PREFIXES = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")

_ctx = threading.local()


class SerializedDynamoDB:
    """WSGI middleware: DynamoDB requests one at a time, everything else unchanged."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(SERIALIZED_TARGET_PREFIXES):
            return self.app(environ, start_response)
        deferred: list[Callable[[], Any]] = []
        with self.lock:
            _ctx.deferred = deferred
            try:
                result = self.app(environ, start_response)
                try:
                    body = list(result)  # the whole response is produced under the lock
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            finally:
                _ctx.deferred = None
        for call in deferred:
            call()
        return body


def _defer_stream_deliveries() -> None:
    from moto.awslambda.models import LambdaBackend

    original = LambdaBackend.send_dynamodb_items
    if getattr(original, "_localaws_deferred", False):
        return

    def send_dynamodb_items(self: Any, function_arn: str, items: list[Any], source: str) -> Any:
        pending = getattr(_ctx, "deferred", None)
        if pending is None:
            return original(self, function_arn, items, source)
        snapshot = list(items)  # moto empties its shard list when this returns something truthy
        pending.append(lambda: original(self, function_arn, snapshot, source))
        return "deferred"

    send_dynamodb_items._localaws_deferred = True  # type: ignore[attr-defined]
    LambdaBackend.send_dynamodb_items = send_dynamodb_items


def local_moto_server_class() -> type:
    """ThreadedMotoServer whose WSGI app serializes DynamoDB (import moto lazily: MOTO_PORT
    must be set first, see launcher._start_moto)."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    _defer_stream_deliveries()
    from localaws import ddb_transactions

    ddb_transactions.install()

    class LocalMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:  # moto 5.2.5's, with the app wrapped
            app = SerializedDynamoDB(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self._ip_address, self._port, app, True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return LocalMotoServer
