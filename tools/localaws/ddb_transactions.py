"""Cheap, exact rollback for moto's TransactWriteItems.

moto 5.2.5 backs up a transaction by deep-copying the whole table once per item of the
transaction, before applying anything. Every transaction therefore costs O(items × table size)
in time and memory, so a test run or a demo slows down and grows by gigabytes as the table fills.

This replaces that backup with a snapshot of just the items the transaction touches: moto's
`copy.deepcopy` of a Table returns the live table (its own rollback becomes a no-op), and on any
failure the touched items are put back exactly as they were. DynamoDB requests are already
serialized (ddb_lock), so nothing else can interleave. Semantics are unchanged: all or nothing.

It also gives moto what DynamoDB has and moto lacks: `ClientRequestToken` idempotency. A
transaction sent again with the token of one that succeeded in the last 10 minutes succeeds
without changing anything (the SDK resends a transaction whose answer was lost, e.g. a
timeout after it landed); the same token with other items is refused with
`IdempotentParameterMismatchException`.

Relies on moto 5.2.5 internals (DynamoDBBackend.transact_write_items, Table.items,
DynamoHandler.transact_write_items): pinned.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from typing import Any

TOKEN_TTL_S = 600  # DynamoDB: a client token is valid for 10 minutes


class _KeepTables:
    """Stands in for the `copy` module inside moto.dynamodb.models: tables are not copied."""

    @staticmethod
    def deepcopy(value: Any, memo: dict | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    """(table, hash key, range key) of every item the transaction names, known tables only."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    touched = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            continue
        key = op.get("Key") or {
            name: value
            for name, value in (op.get("Item") or {}).items()
            if name in (table.hash_key_attr, table.range_key_attr)
        }
        if table.hash_key_attr not in key:
            continue
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.has_range_key and table.range_key_attr in key else None
        touched.append((table, hash_key, range_key))
    return touched


def _snapshot(touched: list[tuple[Any, Any, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    saved = []
    for table, hash_key, range_key in touched:
        if table.has_range_key and range_key is None:
            continue
        current = table.get_item(hash_key, range_key)
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
    return saved


def _restore(saved: list[tuple[Any, Any, Any, Any]]) -> None:
    for table, hash_key, range_key, old in reversed(saved):
        if range_key is not None:
            bucket = table.items[hash_key]
            if old is None:
                bucket.pop(range_key, None)
            else:
                bucket[range_key] = old
            if not bucket:
                table.items.pop(hash_key, None)
        elif old is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = old


def install() -> None:
    """Patches moto's DynamoDB backend (import moto lazily: after MOTO_PORT is set)."""
    from moto.dynamodb import models

    if getattr(models.DynamoDBBackend.transact_write_items, "_cheap_rollback", False):
        return
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = _snapshot(_touched(self, transact_items))
        try:
            return original(self, transact_items)
        except Exception:
            _restore(saved)
            raise

    transact_write_items._cheap_rollback = True  # type: ignore[attr-defined]
    models.copy = _KeepTables  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items
    _install_client_tokens()


def _install_client_tokens() -> None:
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.transact_write_items
    succeeded: dict[str, tuple[float, str, Any]] = {}  # token -> (when, items' hash, answer)
    lock = threading.Lock()

    class IdempotentParameterMismatch(DynamodbException):
        def __init__(self) -> None:
            super().__init__(ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
                             message="The request uses the same client token as a previous, "
                                     "but non-identical request.")

    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return original(self)
        digest = hashlib.sha256(json.dumps(self.body["TransactItems"], sort_keys=True).encode()).hexdigest()
        now = time.monotonic()
        with lock:
            for stale in [t for t, (at, _, _) in succeeded.items() if now - at > TOKEN_TTL_S]:
                del succeeded[stale]
            seen = succeeded.get(token)
        if seen is not None:
            if seen[1] != digest:
                raise IdempotentParameterMismatch()
            return seen[2]
        answer = original(self)
        with lock:
            succeeded[token] = (now, digest, answer)
        return answer

    DynamoHandler.transact_write_items = transact_write_items
