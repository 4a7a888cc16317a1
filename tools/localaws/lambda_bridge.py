"""Runs moto's Lambda invocations on the project's real Rust binaries.

moto funnels every invocation (Invoke API, Step Functions lambda:invoke tasks, SQS event source
mappings) through `LambdaFunction._invoke_lambda(self, event) -> (output, errored, logs)`, which
normally starts a Docker container. `LambdaBridge.install()` replaces it: the event is queued for
the function and served to the binary through a Lambda Runtime API emulator, as in AWS:

    GET  /2018-06-01/runtime/invocation/next          (long poll; the event + Lambda-Runtime-* headers)
    POST /2018-06-01/runtime/invocation/{id}/response
    POST /2018-06-01/runtime/invocation/{id}/error    ({"errorType", "errorMessage"})
    POST /2018-06-01/runtime/init/error

Each binary process is one "execution environment" with its own runtime API server on an
ephemeral port (AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>; older lambda_runtime crates ignore a
path prefix, so routing is by port). A function keeps a small warm pool of such processes,
started on demand; a process that dies is replaced on the next invocation, and a rebuilt binary
(new mtime) or changed configuration retires the old processes.

Errors are returned to moto as the runtime's JSON body with errored=True. moto's Step Functions
interpreter reads `errorType` from that body and uses it as the state's error name (see
moto/stepfunctions/parser/.../state_task_lambda.py and service/state_task_service_lambda.py),
so Retry/Catch on the Rust error_type works. Failures of the environment itself use AWS's names:
Sandbox.Timedout, Runtime.ExitError, Runtime.InvalidEntrypoint.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from collections.abc import Callable

log = logging.getLogger("localaws.lambda")

RUNTIME_PREFIX = "/2018-06-01/runtime"
INIT_TIMEOUT_SECONDS = 30.0  # AWS allows 10 s of init; debug binaries on a busy box need more
LOG_TAIL_BYTES = 4096  # what Lambda returns in X-Amz-Log-Result
# CLANWAR_FAULTS: the fault plan of the fault and delivery tests (clanwar_aws::faults).
_PASS_THROUGH_ENV = ("PATH", "HOME", "LANG", "TZ", "RUST_LOG", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE",
                     "CLANWAR_FAULTS")
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: no dlopen in the child


def error_body(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message})


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the thread that spawned it dies, so a killed
    launcher never leaves binaries behind. (That is why processes are spawned from one
    long-lived thread, see LambdaBridge._spawner.)"""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# ----- one invocation ----------------------------------------------------------------------


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    function_arn: str
    timeout: float
    started: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    deadline_ms: int = 0
    output: str = ""
    errored: bool = False
    logs: list[str] = field(default_factory=list)
    holder: Sandbox | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, holder: Sandbox) -> bool:
        """Hands the invocation to an environment; False if it already finished (timed out)."""
        with self._lock:
            if self.done.is_set():
                return False
            self.holder = holder
            self.deadline_ms = int((time.time() + self.timeout) * 1000)
            self.started.set()
            return True

    def complete(self, output: str, errored: bool) -> bool:
        """First completion wins (a late response after a timeout is dropped)."""
        with self._lock:
            if self.done.is_set():
                return False
            self.output, self.errored = output, errored
            self.started.set()
            self.done.set()
            return True

    def log_tail(self) -> str:
        return "\n".join(self.logs)[-LOG_TAIL_BYTES:]


# ----- one execution environment (process + runtime API server) ----------------------------


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # lambda_runtime keeps connections alive
    server: _RuntimeApiServer

    def log_message(self, fmt: str, *args: Any) -> None:  # silence per-request logging
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path != f"{RUNTIME_PREFIX}/invocation/next":
            return self._reply(404, b'{"errorMessage":"unknown path"}')
        inv = self.server.sandbox.next_invocation()
        if inv is None:  # environment is being shut down
            return self._reply(410, b'{"errorMessage":"environment stopped"}')
        self._reply(200, inv.payload, {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
            "Lambda-Runtime-Trace-Id": _trace_id(),
        })

    def do_POST(self) -> None:
        body = self._body()
        parts = self.path.removeprefix(RUNTIME_PREFIX).strip("/").split("/")
        sandbox = self.server.sandbox
        if parts == ["init", "error"]:
            sandbox.init_failed(_error_json(body, self.headers))
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "response":
            sandbox.finish(parts[1], body.decode("utf-8", "replace"), errored=False)
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "error":
            sandbox.finish(parts[1], _error_json(body, self.headers), errored=True)
        else:
            return self._reply(404, b'{"errorMessage":"unknown path"}')
        self._reply(202, b'{"status":"OK"}')


def _error_json(body: bytes, headers: Any) -> str:
    """The runtime's error body, guaranteed to be JSON with an errorType."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and parsed.get("errorType"):
            return json.dumps(parsed)
    except ValueError:
        pass
    error_type = headers.get("Lambda-Runtime-Function-Error-Type") or "Runtime.Unknown"
    return error_body(error_type, text)


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


class _RuntimeApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A process killed during its /next long poll leaves a broken connection: expected.
        log.debug("runtime API connection from %s failed", client_address, exc_info=True)

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        super().__init__(("127.0.0.1", 0), _RuntimeApiHandler)


class Sandbox:
    """One binary process and the runtime API it polls."""

    def __init__(self, pool: FunctionPool, number: int):
        self.pool = pool
        self.name = f"{pool.spec.function_name}#{number}"
        self.server = _RuntimeApiServer(self)
        self.port = self.server.server_address[1]
        self.process: subprocess.Popen | None = None
        self.current: Invocation | None = None
        self.initialized = False  # has polled /next at least once
        self.idle = False
        self.init_error: str | None = None
        self.stopping = False  # exited or asked to stop: /next returns no more work
        self.stop_requested = False  # we stopped it (timeout, retire, shutdown): not a crash
        self._lock = threading.Lock()

    def start(self, spawn: Callable[..., subprocess.Popen]) -> None:
        threading.Thread(target=self.server.serve_forever, name=f"rapi-{self.name}",
                         daemon=True).start()
        env = self.pool.spec.process_env(runtime_api=f"127.0.0.1:{self.port}")
        self.process = spawn(
            [str(self.pool.spec.binary)], env=env, cwd=self.pool.spec.workdir,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.info("started %s (pid %s, runtime api port %s)", self.name, self.process.pid, self.port)
        threading.Thread(target=self._pump_output, name=f"out-{self.name}", daemon=True).start()
        threading.Thread(target=self._wait_exit, name=f"wait-{self.name}", daemon=True).start()

    def next_invocation(self) -> Invocation | None:
        self.initialized = True
        self.current = None
        self.idle = True
        try:
            while not self.stopping:
                try:
                    inv = self.pool.pending.get(timeout=0.2)
                except queue.Empty:
                    if self.pool.retired:  # old binary/config: leave once nothing is queued
                        self.stop()
                    continue
                with self._lock:  # vs. _wait_exit: never hand work to a dead process
                    if self.stopping:
                        self.pool.pending.put(inv)
                        return None
                    if inv.take(self):
                        self.current = inv
                        return inv
            return None
        finally:
            self.idle = False

    def finish(self, request_id: str, output: str, errored: bool) -> None:
        inv = self.current
        if inv is None or inv.request_id != request_id:
            log.warning("%s: result for unknown request %s dropped", self.name, request_id)
            return
        self.current = None
        inv.complete(output, errored)

    def init_failed(self, error: str) -> None:
        self.init_error = error
        log.error("%s: init error %s", self.name, error)

    def _pump_output(self) -> None:
        assert self.process and self.process.stdout
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.pool.write_log(f"[{self.name}] {line}")
            inv = self.current
            if inv is not None:
                inv.logs.append(line)

    def _wait_exit(self) -> None:
        assert self.process
        code = self.process.wait()
        with self._lock:
            self.stopping = True
            inv = self.current
        log.info("%s exited with %s", self.name, code)
        self.pool.on_exit(self, code, inv)  # first: shutdown() below waits for the server's poll tick
        self.server.shutdown()
        self.server.server_close()

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 2 s)."""
        with self._lock:
            self.stopping = True
            self.stop_requested = True
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()


# ----- the processes of one function -------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    """Everything that, when it changes, requires fresh processes."""

    function_name: str
    function_arn: str
    binary: Path
    binary_mtime: float
    timeout: float
    memory_mb: int
    region: str
    endpoint: str
    workdir: str
    variables: tuple[tuple[str, str], ...]

    def process_env(self, runtime_api: str) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASS_THROUGH_ENV if k in os.environ}
        env.update({
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(self.timeout)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{uuid.uuid4().hex}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": self.endpoint,
        })
        env.update(dict(self.variables))  # the function's own Environment.Variables
        return env


class FunctionPool:
    """Warm processes of one function (up to `size`), fed from one queue of invocations."""

    def __init__(self, spec: FunctionSpec, size: int, bridge: LambdaBridge):
        self.spec = spec
        self.size = size
        self.bridge = bridge
        self.pending: queue.Queue[Invocation] = queue.Queue()
        self.sandboxes: list[Sandbox] = []
        self.retired = False
        self._lock = threading.Lock()

    def submit(self, inv: Invocation) -> None:
        self.pending.put(inv)
        self.ensure_capacity()

    def ensure_capacity(self) -> None:
        """Start processes while invocations wait and no process is idle or starting.
        (A retired pool may still start one to serve invocations queued just before it was
        replaced; its processes leave once its queue is empty.)"""
        with self._lock:
            if self.bridge.stopping:
                return
            starting = sum(1 for s in self.sandboxes if not s.initialized)
            idle = sum(1 for s in self.sandboxes if s.idle)
            wanted = min(self.pending.qsize() - idle - starting, self.size - len(self.sandboxes))
            for _ in range(max(0, wanted)):
                sandbox = Sandbox(self, next(self.bridge.sandbox_numbers))
                self.sandboxes.append(sandbox)
                try:
                    sandbox.start(self.bridge.spawn)
                except OSError as exc:
                    self.sandboxes.remove(sandbox)
                    sandbox.server.server_close()
                    self._fail_one_pending(error_body(
                        "Runtime.InvalidEntrypoint", f"cannot start {self.spec.binary}: {exc}"))

    def on_exit(self, sandbox: Sandbox, code: int, inv: Invocation | None) -> None:
        with self._lock:
            if sandbox in self.sandboxes:
                self.sandboxes.remove(sandbox)
        if inv is not None:
            inv.complete(error_body(
                "Runtime.ExitError",
                f"RequestId: {inv.request_id} Error: Runtime exited with error: exit status {code}",
            ), errored=True)
        elif not sandbox.initialized and not sandbox.stop_requested:
            # Died before asking for work: fail one waiting invocation instead of crash-looping.
            self._fail_one_pending(sandbox.init_error or error_body(
                "Runtime.ExitError",
                f"Runtime exited with error: exit status {code} before init completed "
                f"(see .localaws/logs/{self.spec.function_name}.log)",
            ))
        self.ensure_capacity()

    def _fail_one_pending(self, body: str) -> None:
        while True:
            try:
                inv = self.pending.get_nowait()
            except queue.Empty:
                return
            if inv.complete(body, errored=True):
                return

    def write_log(self, line: str) -> None:
        self.bridge.write_log(self.spec.function_name, line)

    def retire(self) -> None:
        """Stop taking new work; idle processes leave once the queue is empty."""
        self.retired = True

    def stop(self) -> None:
        """Retire the pool and stop its processes now (LocalStack stopping an environment)."""
        self.retired = True
        for sandbox in list(self.sandboxes):
            sandbox.stop()


# ----- the bridge moto calls into ----------------------------------------------------------


class MissingBinary(Exception):
    pass


def _payload_bytes(event: Any) -> bytes:
    """moto passes the parsed request body, or the string "{}" for an empty one."""
    if event is None or event == "{}":
        return b"{}"
    if isinstance(event, bytes):
        return event
    return json.dumps(event).encode("utf-8")


class LambdaBridge:
    """Owns the function pools and stands in for moto's Docker-based `_invoke_lambda`."""

    def __init__(self, *, endpoint: str, region: str, bin_dir: Path, workdir: Path,
                 log_dir: Path, pool_size: int = 2):
        self.endpoint = endpoint
        self.region = region
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.log_dir = log_dir
        self.pool_size = pool_size
        self.binaries: dict[str, str] = {}  # function name -> binary name (from the template)
        self.pools: dict[str, FunctionPool] = {}
        self._retired: list[FunctionPool] = []  # replaced pools whose processes may still run
        self.sandbox_numbers = itertools.count(1)  # process names in logs: <function>#<n>
        self.stopping = False
        self._lock = threading.Lock()
        self._log_files: dict[str, Any] = {}
        self._log_lock = threading.Lock()
        # One long-lived thread forks every process: PR_SET_PDEATHSIG fires when the *thread*
        # that forked a child exits, and moto's request threads are short-lived.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="lambda-spawner")

    # -- wiring --

    def install(self) -> None:
        from moto.awslambda.models import LambdaFunction

        bridge = self

        def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
            return bridge.invoke(fn, event)

        LambdaFunction._invoke_lambda = _invoke_lambda

    def register_binary(self, function_name: str, binary: str) -> None:
        self.binaries[function_name] = binary

    def spawn(self, *args: Any, **kwargs: Any) -> subprocess.Popen:
        return self._spawner.submit(subprocess.Popen, *args, **kwargs).result()

    def write_log(self, function_name: str, line: str) -> None:
        with self._log_lock:
            fh = self._log_files.get(function_name)
            if fh is None:  # kept open for the launcher's lifetime, closed in shutdown()
                self.log_dir.mkdir(parents=True, exist_ok=True)
                fh = open(self.log_dir / f"{function_name}.log", "a", encoding="utf-8")  # noqa: SIM115
                self._log_files[function_name] = fh
            fh.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            fh.flush()

    # -- invocation --

    def invoke(self, fn: Any, event: Any) -> tuple[str, bool, str]:
        request_id = str(uuid.uuid4())
        try:
            spec = self._spec(fn)
        except MissingBinary as exc:
            log.error("%s", exc)
            return error_body("Runtime.InvalidEntrypoint", str(exc)), True, ""
        inv = Invocation(request_id, _payload_bytes(event), fn.function_arn, spec.timeout)
        self.run(self._pool_for(spec), inv)
        self._save_cloudwatch_logs(fn, inv)
        return inv.output, inv.errored, inv.log_tail()

    def run(self, pool: FunctionPool, inv: Invocation) -> Invocation:
        """Runs one invocation on a process of `pool` and waits for its result (or the
        timeout, which kills the process that had it). Also the entry point of the LocalStack
        runtime executor (tools/localstack/executor), which gives each LocalStack execution
        environment a pool of its own, of size 1."""
        started_at = time.monotonic()
        pool.submit(inv)
        self._await(inv, pool.spec)
        log.info("%s %s %s in %.0f ms", pool.spec.function_name, inv.request_id,
                 "ERROR" if inv.errored else "ok", (time.monotonic() - started_at) * 1000)
        return inv

    def _await(self, inv: Invocation, spec: FunctionSpec) -> None:
        """Waits for the result; on timeout the environment is killed, as Lambda does."""
        if not inv.started.wait(spec.timeout + INIT_TIMEOUT_SECONDS):
            message = (f"RequestId: {inv.request_id} Error: no execution environment took the "
                       f"invocation in time (init failing or slow, or all {self.pool_size} "
                       "processes busy: see LOCALAWS_POOL_SIZE)")
            inv.complete(error_body("Sandbox.Timedout", message), errored=True)
            return
        remaining = inv.deadline_ms / 1000 - time.time() if inv.deadline_ms else 0
        if inv.done.wait(max(0.0, remaining)):
            return
        message = f"RequestId: {inv.request_id} Error: Task timed out after {spec.timeout:.2f} seconds"
        if inv.complete(error_body("Sandbox.Timedout", message), errored=True) and inv.holder:
            inv.holder.stop()  # as in AWS: the environment is reset after a timeout

    def _spec(self, fn: Any) -> FunctionSpec:
        binary = self.bin_dir / self.binaries.get(fn.function_name, fn.function_name)
        if not binary.is_file():
            raise MissingBinary(
                f"no binary for Lambda function {fn.function_name}: {binary} does not exist "
                f"(build it with `cargo build -p {binary.name}`, or point CLANWAR_BIN_DIR at the "
                "directory holding it; a template function can name its binary with "
                "Metadata.BuildProperties.Binary)"
            )
        return FunctionSpec(
            function_name=fn.function_name,
            function_arn=fn.function_arn,
            binary=binary,
            binary_mtime=binary.stat().st_mtime,
            timeout=float(fn.timeout or 3),
            memory_mb=int(fn.memory_size or 128),
            region=fn.region,
            endpoint=self.endpoint,
            workdir=str(self.workdir),
            variables=tuple(sorted((k, str(v)) for k, v in (fn.environment_vars or {}).items())),
        )

    def _pool_for(self, spec: FunctionSpec) -> FunctionPool:
        with self._lock:
            pool = self.pools.get(spec.function_name)
            if pool is not None and pool.spec != spec:
                log.info("%s: binary or configuration changed, replacing its processes",
                         spec.function_name)
                pool.retire()
                self._retired.append(pool)
                pool = None
            if pool is None:
                pool = FunctionPool(spec, self.pool_size, self)
                self.pools[spec.function_name] = pool
            return pool

    @staticmethod
    def _save_cloudwatch_logs(fn: Any, inv: Invocation) -> None:
        """Keep moto's behaviour of writing the invocation's output to CloudWatch Logs."""
        try:
            fn.logs_backend.ensure_log_group(fn.logs_group_name)
            fn.save_logs("\n".join(inv.logs) or f"(no output) {inv.request_id}")
        except Exception:
            log.debug("could not write CloudWatch logs for %s", fn.function_name, exc_info=True)

    # -- shutdown --

    def shutdown(self) -> None:
        """Stops every process (SIGTERM, SIGKILL after 2 s) and waits for them."""
        self.stopping = True
        with self._lock:
            pools = list(self.pools.values()) + self._retired
        sandboxes = [s for pool in pools for s in list(pool.sandboxes)]
        for pool in pools:
            pool.retired = True
        threads = [threading.Thread(target=s.stop) for s in sandboxes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._spawner.shutdown(wait=True)
        with self._log_lock:
            for fh in self._log_files.values():
                fh.close()
            self._log_files.clear()
