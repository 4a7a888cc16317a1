"""DynamoDB stream -> Lambda event source mappings, run the way Lambda runs them.

moto hands a table's stream to its mapped functions synchronously inside every write (while
the emulator's global lock is held), with every record since the last success, without
filter criteria, batch size, retries or partial batch responses. This module takes the
template's `DynamoDB` events over instead:

- every write's stream record is matched against the mapping's `FilterCriteria` (EventBridge
  pattern syntax, as on AWS) and queued; nothing runs inside the write;
- one poller thread per mapping delivers the queued records in order, in batches of up to
  `BatchSize`, through the Lambda bridge (the real binary);
- a function error retries the batch (with backoff) up to `MaximumRetryAttempts`, then the
  batch's description goes to the `DestinationConfig.OnFailure` queue and the poller moves on;
- with `ReportBatchItemFailures`, the reported records and everything after the first of
  them are retried, the ones before are done (AWS checkpoints at the lowest failed sequence
  number).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

log = logging.getLogger("localaws.streams")

Invoke = Callable[[str, dict], "tuple[str, bool]"]

#: First pause before retrying a failed batch; it doubles up to MAX_BACKOFF (seconds).
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 5.0


@dataclass
class StreamMapping:
    who: str
    table: str
    stream_arn: str
    function_arn: str
    batch_size: int = 100
    max_retries: int = -1  # -1: until it succeeds (the AWS default for streams)
    report_item_failures: bool = False
    filters: list[Any] = field(default_factory=list)
    on_failure_queue_arn: str | None = None
    pending: "queue.Queue[dict]" = field(default_factory=queue.Queue)

    def wants(self, record: dict) -> bool:
        return not self.filters or any(f.matches_event(record) for f in self.filters)


class StreamMappings:
    """The local stack's DynamoDB stream event source mappings."""

    def __init__(self, invoke: Invoke, region: str = "us-east-1"):
        self.invoke = invoke
        self.region = region
        self._mappings: list[StreamMapping] = []
        self._sequence = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add(self, who: str, function_arn: str, props: dict) -> None:
        from moto.events.models import EventPattern

        stream_arn = props["Stream"]
        # arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>
        table = stream_arn.split(":table/", 1)[1].split("/", 1)[0]
        filters = [EventPattern.load(f["Pattern"]) for f in
                   ((props.get("FilterCriteria") or {}).get("Filters") or [])]
        failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {})
        self._mappings.append(StreamMapping(
            who=who, table=table, stream_arn=stream_arn, function_arn=function_arn,
            batch_size=int(props.get("BatchSize", 100)),
            max_retries=int(props.get("MaximumRetryAttempts", -1)),
            report_item_failures="ReportBatchItemFailures" in
            (props.get("FunctionResponseTypes") or []),
            filters=filters,
            on_failure_queue_arn=failure.get("Destination"),
        ))
        log.info("%s: stream of table %s -> %s", who, table, function_arn.rsplit(":", 1)[-1])

    def install(self) -> None:
        """Routes the stream records of mapped tables here instead of through moto."""
        from moto.dynamodb.models.table import StreamRecord, StreamShard

        original_add = StreamShard.add
        mappings = self

        def add(shard: Any, old: Any, new: Any) -> None:
            mapped = [m for m in mappings._mappings if m.table == shard.table.name]
            if not mapped:
                return original_add(shard, old, new)
            view = shard.table.stream_specification["StreamViewType"]
            name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
            with mappings._lock:
                mappings._sequence += 1
                sequence = mappings._sequence
            record = StreamRecord(shard.table, view, name, old, new, sequence).to_json()
            for mapping in mapped:
                event = _lambda_record(record, mapping.stream_arn, mappings.region)
                if mapping.wants(event):
                    held = getattr(_in_transaction, "records", None)
                    if held is None:
                        mapping.pending.put(event)
                    else:
                        held.append((mapping, event))

        StreamShard.add = add
        _hold_until_committed()

    def start(self) -> None:
        for mapping in self._mappings:
            thread = threading.Thread(target=self._run, args=(mapping,),
                                      name=f"ddb-stream-{mapping.who}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self, mapping: StreamMapping) -> None:
        batch: list[dict] = []
        attempt = 0
        while not self._stop.is_set():
            if not batch:
                attempt = 0
                try:
                    batch.append(mapping.pending.get(timeout=0.5))
                except queue.Empty:
                    continue
            while len(batch) < mapping.batch_size:
                try:
                    batch.append(mapping.pending.get_nowait())
                except queue.Empty:
                    break
            try:
                batch = self._deliver(mapping, batch)
            except Exception:
                log.exception("%s: stream delivery failed", mapping.who)
            if batch:
                attempt += 1
                if 0 <= mapping.max_retries < attempt:
                    self._give_up(mapping, batch, attempt)
                    batch = []
                else:
                    self._stop.wait(min(FIRST_BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF))

    def _deliver(self, mapping: StreamMapping, batch: list[dict]) -> list[dict]:
        """Invokes the function with `batch`; returns the records still to deliver."""
        output, errored = self.invoke(mapping.function_arn, {"Records": batch})
        if errored:
            log.warning("%s: function error on %d records; retrying", mapping.who, len(batch))
            return batch
        if not mapping.report_item_failures:
            return []
        failed = _failed_sequence_numbers(output)
        if not failed:
            return []
        numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
        first = min((numbers.index(n) for n in failed if n in numbers), default=0)
        log.warning("%s: %d of %d records reported failed; retrying from #%d",
                    mapping.who, len(failed), len(batch), first)
        return batch[first:]

    def _give_up(self, mapping: StreamMapping, batch: list[dict], attempts: int) -> None:
        log.error("%s: %d records failed %d times; dropped", mapping.who, len(batch), attempts)
        if not mapping.on_failure_queue_arn:
            return
        from moto.sqs.models import sqs_backends

        parts = mapping.on_failure_queue_arn.split(":")
        numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
        body = json.dumps({
            "requestContext": {"condition": "RetryAttemptsExhausted",
                               "functionArn": mapping.function_arn,
                               "approximateInvokeCount": attempts},
            "DDBStreamBatchInfo": {"streamArn": mapping.stream_arn, "batchSize": len(batch),
                                   "startSequenceNumber": numbers[0],
                                   "endSequenceNumber": numbers[-1]},
        })
        sqs_backends[parts[4]][parts[3]].send_message(parts[5], body)


#: The stream records of the transaction being applied on this thread (moto applies a
#: transaction's items one by one and rolls them back if one fails: a rolled-back write must
#: not reach the stream).
_in_transaction = threading.local()


def _hold_until_committed() -> None:
    """Wraps TransactWriteItems so its stream records are released only once it committed."""
    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items
    if getattr(original, "_stream_after_commit", False):
        return

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        _in_transaction.records = []
        try:
            result = original(self, transact_items)
            held = _in_transaction.records
        finally:
            _in_transaction.records = None
        for mapping, event in held:
            mapping.pending.put(event)
        return result

    transact_write_items._stream_after_commit = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items


def _lambda_record(record: dict, stream_arn: str, region: str) -> dict:
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": dynamodb, "awsRegion": region, "eventSourceARN": stream_arn}


def _failed_sequence_numbers(output: str) -> list[str]:
    try:
        answer = json.loads(output)
    except ValueError:
        return []
    if not isinstance(answer, dict):
        return []
    return [f.get("itemIdentifier") for f in answer.get("batchItemFailures") or []
            if isinstance(f, dict) and f.get("itemIdentifier")]
