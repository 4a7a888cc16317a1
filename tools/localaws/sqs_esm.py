"""Makes moto's SQS -> Lambda event source mappings behave closer to AWS.

moto delivers a queue's messages to its mapped function only inside SendMessage (synchronously,
one message per invocation) and never polls again. So, in moto alone, a message whose invocation
failed is made visible again but never retried, its receive count never reaches the redrive
policy's maxReceiveCount, and messages sent before the mapping existed (or delayed ones) stay put.

This module adds:
- a poller thread that re-drives visible messages of mapped queues every `interval` seconds,
  so failures are retried and, after maxReceiveCount receives, land in the DLQ (much faster than
  AWS, which waits for the visibility timeout: tests stay short);
- ReportBatchItemFailures: when the mapping enables it and the function answers
  {"batchItemFailures": [...]} with entries, the message counts as failed (moto ignores the
  answer). moto sends one-record batches, so a reported item is the whole batch.
"""

from __future__ import annotations

import json
import logging
import threading
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


class EsmPoller:
    """Background re-drive of SQS queues that have Lambda event source mappings."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-esm-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:
                log.exception("SQS event source mapping poll failed")

    @staticmethod
    def poll_once() -> None:
        from moto.sqs.models import sqs_backends

        for regions in list(sqs_backends.values()):
            for backend in list(regions.values()):
                for queue in list(backend.queues.values()):
                    for function_arn, esm in list(queue.lambda_event_source_mappings.items()):
                        if esm.enabled and queue.messages:
                            _deliver_batch(backend, queue, function_arn, esm)


def _deliver_batch(sqs_backend: Any, queue: Any, function_arn: str, esm: Any) -> None:
    """The same steps moto runs inside SendMessage (moto/sqs/models.py Queue.add_message)."""
    from moto.awslambda.utils import get_backend

    messages = sqs_backend.receive_message(
        queue.name, esm.batch_size, 0, queue.visibility_timeout
    )
    if not messages:
        return
    ok = get_backend(queue.account_id, queue.region).send_sqs_batch(
        function_arn, messages, queue.queue_arn
    )
    for message in messages:
        if ok:
            sqs_backend.delete_message(queue.name, message.receipt_handle)
        else:
            sqs_backend.change_message_visibility(
                queue.name, message.receipt_handle, visibility_timeout=0
            )
