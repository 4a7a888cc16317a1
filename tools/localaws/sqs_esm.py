"""Makes moto's SQS -> Lambda event source mappings behave closer to AWS.

moto delivers a queue's messages to its mapped function only inside SendMessage (synchronously,
one message per invocation) and never polls again. So, in moto alone, a sender waits for the
consumer (EventBridge's PutEvents waits for every rule target's function), a message whose
invocation failed is made visible again but never retried, its receive count never reaches the
redrive policy's maxReceiveCount, and messages sent before the mapping existed (or delayed ones)
stay put.

This module adds:
- asynchronous delivery, as Lambda's pollers do on AWS: SendMessage only enqueues and wakes the
  poller, which delivers each mapped queue's messages in its own worker (one batch in flight per
  queue), so no sender waits for a consumer;
- retries: a batch that failed becomes visible again and is re-driven every `interval` seconds,
  so after maxReceiveCount receives it lands in the DLQ (much faster than AWS, which waits for
  the visibility timeout: tests stay short);
- ReportBatchItemFailures: when the mapping enables it and the function answers
  {"batchItemFailures": [...]} with entries, only the messages it names go back to the queue
  and the rest of the batch is deleted (moto ignores the answer). The poller delivers each
  received batch in one invocation, as Lambda does; moto's own inline path (one record per
  invocation) counts a reported item as the whole batch.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("localaws.sqs")
_ctx = threading.local()


def _reports_item_failures(lambda_backend: Any, function_arn: str, queue_arn: str) -> bool:
    for esm in lambda_backend._event_source_mappings.values():
        if esm.function_arn == function_arn and esm.event_source_arn == queue_arn:
            return "ReportBatchItemFailures" in (esm.function_response_types or [])
    return False


def _has_item_failures(output: str) -> bool:
    try:
        answer = json.loads(output)
    except ValueError:
        return False
    return isinstance(answer, dict) and bool(answer.get("batchItemFailures"))


def install_batch_item_failures() -> None:
    """Wraps moto's SQS delivery and `_invoke_lambda` (call after LambdaBridge.install())."""
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    original_send = LambdaBackend._send_sqs_message
    original_invoke = LambdaFunction._invoke_lambda

    def _send_sqs_message(self: Any, function_arn: str, message: Any, queue_arn: str) -> bool:
        _ctx.report_item_failures = _reports_item_failures(self, function_arn, queue_arn)
        try:
            return original_send(self, function_arn, message, queue_arn)
        finally:
            _ctx.report_item_failures = False

    def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
        output, errored, logs = original_invoke(fn, event)
        if not errored and getattr(_ctx, "report_item_failures", False) \
                and _has_item_failures(output):
            errored = True  # moto then makes the message visible again
        return output, errored, logs

    LambdaBackend._send_sqs_message = _send_sqs_message
    LambdaFunction._invoke_lambda = _invoke_lambda


_wake = threading.Event()
_swap = threading.Lock()


def install_async_delivery() -> None:
    """SendMessage no longer runs the mapped function itself: it enqueues and wakes the poller."""
    from moto.sqs.models import Queue

    original = Queue.add_message
    if getattr(original, "_localaws_async", False):
        return

    def add_message(self: Any, message: Any) -> None:
        with _swap:  # the mappings are hidden from moto's inline delivery, then put back
            mappings = self.lambda_event_source_mappings
            self.lambda_event_source_mappings = {}
            try:
                original(self, message)
            finally:
                self.lambda_event_source_mappings = mappings
        if mappings:
            _wake.set()

    add_message._localaws_async = True  # type: ignore[attr-defined]
    Queue.add_message = add_message


class EsmPoller:
    """Delivers the messages of SQS queues that have Lambda event source mappings."""

    def __init__(self, interval: float = 1.0, workers: int = 8):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-esm-poller", daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sqs-esm")
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        _wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            _wake.wait(self.interval)
            _wake.clear()
            try:
                self.poll_once()
            except Exception:
                log.exception("SQS event source mapping poll failed")

    def poll_once(self) -> None:
        from moto.sqs.models import sqs_backends

        for regions in list(sqs_backends.values()):
            for backend in list(regions.values()):
                for queue in list(backend.queues.values()):
                    for function_arn, esm in list(queue.lambda_event_source_mappings.items()):
                        if esm.enabled and queue.messages:
                            self._drain_in_worker(backend, queue, function_arn, esm)

    def _drain_in_worker(self, backend: Any, queue: Any, function_arn: str, esm: Any) -> None:
        key = f"{queue.queue_arn}|{function_arn}"
        with self._busy_lock:
            if key in self._busy:
                return
            self._busy.add(key)

        def drain() -> None:
            try:
                # Until the queue is empty or a batch fails (a failure waits for the next tick).
                while not self._stop.is_set() and _deliver_batch(backend, queue, function_arn, esm):
                    pass
            except Exception:
                log.exception("SQS delivery to %s failed", function_arn)
            finally:
                with self._busy_lock:
                    self._busy.discard(key)

        self._pool.submit(drain)


def _record(message: Any, queue: Any) -> dict:
    """One record of an SQS event, as Lambda's poller builds it."""
    record = {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": {
            "ApproximateReceiveCount": str(getattr(message, "approximate_receive_count", 1)),
            "SentTimestamp": str(int(getattr(message, "sent_timestamp", 0) or 0)),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": str(
                int(getattr(message, "approximate_first_receive_timestamp", 0) or 0)),
        },
        "messageAttributes": {},
        "md5OfBody": message.body_md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.queue_arn,
        "awsRegion": queue.region,
    }
    if queue.queue_arn.endswith(".fifo"):
        record["attributes"].update({"MessageGroupId": message.group_id,
                                     "MessageDeduplicationId": message.deduplication_id})
    return record


def failed_items(payload: Any, message_ids: list[str], errored: bool,
                 report_item_failures: bool) -> set[str]:
    """The ids of a delivered batch's messages that go back to the queue, as Lambda decides:
    all of them when the invocation failed; with ReportBatchItemFailures, the ones the answer's
    `batchItemFailures` name, or all of them when an entry is malformed or names no message of
    the batch; otherwise none. Every other message of the batch is deleted."""
    every = set(message_ids)
    if errored:
        return every
    if not report_item_failures:
        return set()
    try:
        answer = json.loads(payload) if payload else None
    except (TypeError, ValueError):
        return set()  # Lambda treats an unparsable answer as "no failures" too
    if not isinstance(answer, dict) or not answer.get("batchItemFailures"):
        return set()
    failures = answer["batchItemFailures"]
    if not isinstance(failures, list):
        return every
    named: set[str] = set()
    for entry in failures:
        item = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(item, str) or item not in every:
            return every
        named.add(item)
    return named


def _deliver_batch(sqs_backend: Any, queue: Any, function_arn: str, esm: Any) -> bool:
    """Receives up to the mapping's batch size and delivers it in one invocation, as Lambda's
    pollers do; then deletes the messages that succeeded and makes the failed ones visible
    again (ReportBatchItemFailures). Whether every message of the batch succeeded."""
    from moto.awslambda.utils import get_backend

    messages = sqs_backend.receive_message(
        queue.name, esm.batch_size, 0, queue.visibility_timeout
    )
    if not messages:
        return False
    lambda_backend = get_backend(queue.account_id, queue.region)
    event = {"Records": [_record(m, queue) for m in messages]}
    response_headers: dict[str, Any] = {}
    payload = lambda_backend.invoke(function_arn, None, json.dumps(event), {}, response_headers)
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", "replace")
    failed = failed_items(
        payload, [m.id for m in messages], "x-amz-function-error" in response_headers,
        _reports_item_failures(lambda_backend, function_arn, queue.queue_arn))
    for message in messages:
        if message.id in failed:
            sqs_backend.change_message_visibility(
                queue.name, message.receipt_handle, visibility_timeout=0
            )
        else:
            sqs_backend.delete_message(queue.name, message.receipt_handle)
    return not failed
