"""LocalStack Lambda runtime executor that runs the project's real Rust `bootstrap` binaries.

LocalStack (host mode, no Docker) creates one `ExecutionEnvironment` per concurrent
invocation of a function and gives each a `RuntimeExecutor` from the plugin named by
`LAMBDA_RUNTIME_EXECUTOR` (namespace `localstack.lambda.runtime_executor`, see
localstack/services/lambda_/invocation/runtime_executor.py and execution_environment.py of
localstack-core 2026.3.0). This executor gives each environment a one-process pool of the
moto stack's Lambda bridge (tools/localaws/lambda_bridge.py: one implementation of the
Lambda Runtime API emulator, process lifecycle, timeouts and crash handling for both
emulators):

- `start(env_vars)`: the function's binary is `$CLANWAR_BIN_DIR/<binary>`, `<binary>` from the
  template's `Metadata.BuildProperties.Binary` (the launcher writes the map to
  `$LOCALAWS_BINARIES_FILE`), else the function name. The process starts on the first invoke
  with LocalStack's environment (credentials, `AWS_ENDPOINT_URL`, the function's variables).
- `invoke(payload)`: one invocation through the Runtime API; the result or the runtime's
  `/error` body (`errorType` kept, so Step Functions Retry/Catch on Rust error types work).
  A timeout kills the process and answers `Sandbox.Timedout`; the next invoke starts a fresh
  process (re-init), as Lambda does. A crash answers `Runtime.ExitError`.
- Concurrency is LocalStack's: one environment (so one process) per in-flight invocation.

The `localaws` package (tools/localaws) must be importable: the launcher puts tools/ on
LocalStack's PYTHONPATH.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import RuntimeExecutor

from localaws.lambda_bridge import FunctionPool, FunctionSpec, Invocation, LambdaBridge

LOG = logging.getLogger(__name__)

# LocalStack's own variables that mean nothing to a local process (container paths).
_DROPPED_ENV = ("LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR")

_bridge: LambdaBridge | None = None
_bridge_lock = threading.Lock()


def _required_dir(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: start LocalStack through scripts/localstack.sh")
    return Path(value)


def bridge() -> LambdaBridge:
    """One bridge per LocalStack process (its spawner thread forks every function process)."""
    global _bridge
    with _bridge_lock:
        if _bridge is None:
            state = _required_dir("LOCALAWS_STATE_DIR")
            _bridge = LambdaBridge(
                endpoint=f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}",
                region=os.environ.get("AWS_REGION", "us-east-1"),
                bin_dir=_required_dir("CLANWAR_BIN_DIR"),
                workdir=Path(os.environ.get("LOCALAWS_WORKDIR") or os.getcwd()),
                log_dir=state / "logs",
                pool_size=1,
            )
        return _bridge


def binary_name(function_name: str) -> str:
    path = os.environ.get("LOCALAWS_BINARIES_FILE")
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text(encoding="utf-8")).get(function_name, function_name)
    return function_name


class LocalProcessRuntimeExecutor(RuntimeExecutor):
    """One LocalStack execution environment = one local process of the function's binary."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self.pool: FunctionPool | None = None

    def start(self, env_vars: dict[str, str]) -> None:
        b = bridge()
        name = self.function_version.id.function_name
        binary = b.bin_dir / binary_name(name)
        if not binary.is_file():
            raise RuntimeError(
                f"no binary for Lambda function {name}: {binary} does not exist (build it with "
                f"`cargo build -p {binary.name}`, or set CLANWAR_BIN_DIR)")
        cfg = self.function_version.config
        spec = FunctionSpec(
            function_name=name,
            function_arn=self.function_version.qualified_arn,
            binary=binary,
            binary_mtime=binary.stat().st_mtime,
            timeout=float(cfg.timeout or 3),
            memory_mb=int(cfg.memory_size or 128),
            region=self.function_version.id.region,
            endpoint=str(env_vars.get("AWS_ENDPOINT_URL") or b.endpoint),
            workdir=str(b.workdir),
            variables=tuple(sorted((k, str(v)) for k, v in env_vars.items()
                                   if k not in _DROPPED_ENV)),
        )
        self.pool = FunctionPool(spec, 1, b)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.stop()

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        if self.pool is None:
            raise RuntimeError(f"environment {self.id} was not started")
        body = payload.get("payload") or "{}"
        inv = Invocation(
            request_id=payload["invoke-id"],
            payload=body.encode("utf-8") if isinstance(body, str) else bytes(body),
            function_arn=payload.get("invoked-function-arn") or self.pool.spec.function_arn,
            timeout=self.pool.spec.timeout,
        )
        bridge().run(self.pool, inv)
        return InvocationResult(inv.request_id, inv.output.encode("utf-8"), inv.errored,
                                inv.log_tail())

    def get_logs(self) -> str:
        return ""

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        pass  # nothing to unpack: the binary is run from the build directory

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass


class LocalProcessExecutorPlugin(RuntimeExecutorPlugin):
    name = "localaws-process"

    def load(self, *args, **kwargs):
        return LocalProcessRuntimeExecutor
